"""Using a trained model: self-contained export (TorchScript / ONNX), stored decision thresholds, verification."""
