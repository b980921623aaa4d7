"""Acoustic features computed inside the model, on its device: Kaldi-compatible log-mel fbank."""
from wesv.features.fbank import Fbank, FbankConfig

__all__ = ["Fbank", "FbankConfig"]
