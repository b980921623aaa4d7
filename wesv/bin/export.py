"""Export a trained encoder with its fbank front-end inside (waveform in, embedding out) as TorchScript or ONNX."""
import argparse
import os

from wesv.cli import entry_point
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.bin.export")
SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.export``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.export", description=__doc__)
    p.add_argument("--model-dir", help="experiment dir holding encoder.pt")
    p.add_argument("--model", help="encoder file (default MODEL_DIR/encoder.pt; e.g. encoder_avg.pt)")
    p.add_argument("--format", required=True, choices=sorted(SUFFIX), help="torchscript or onnx")
    p.add_argument("--out", help="file to write (default: beside the encoder, encoder.ts / encoder.onnx)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    model = args.model or (os.path.join(args.model_dir, "encoder.pt") if args.model_dir else None)
    if model is None:
        raise WesvError("give --model-dir (holding encoder.pt) or --model FILE")
    from wesv.deploy.export import export_encoder_file
    from wesv.models import load_encoder

    encoder = load_encoder(model)
    out = args.out or os.path.splitext(model)[0] + SUFFIX[args.format]
    export_encoder_file(encoder, out, args.format)
    log.info("%s export of %s written to %s (input: float waveform (batch, samples) at %d Hz in [-1, 1]; output: "
             "(batch, %d) embeddings)", args.format, model, out, encoder.sample_rate, encoder.embed_dim)


if __name__ == "__main__":
    main()
