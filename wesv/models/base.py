"""The encoder registry and the base class of fbank encoders (the frontend belongs to the model, seam 5)."""
from typing import Any

import torch
from torch import nn

from wesv.errors import WesvError
from wesv.features.fbank import Fbank, FbankConfig
from wesv.registry import Registry

ENCODERS: Registry = Registry("encoder")


class FbankEncoder(nn.Module):
    """Waveform ``(B, T)`` in [-1, 1] → fbank (a submodule, runs on the model's device) → ``(B, embed_dim)``.

    Subclasses build their layers in ``__init__`` and implement ``embed(feats)`` on ``(B, frames, bins)``.
    ``registry_name`` and ``cfg`` are what ``save_encoder`` stores to rebuild the module.
    """

    registry_name: str = ""

    def __init__(self, cfg: Any, fbank_cfg: FbankConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.embed_dim = embed_dim
        self.frontend = Fbank(fbank_cfg)

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields one fbank frame."""
        fb = self.frontend.cfg
        return fb.frame_length if fb.snip_edges else (fb.frame_shift + 1) // 2

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Embed a batch of equal-length waveforms (any length of at least one frame)."""
        if wave.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects waveforms (batch, samples), got {tuple(wave.shape)}")
        feats = self.frontend(wave)
        if feats.shape[1] == 0:
            raise WesvError(
                f"a waveform of {wave.shape[1]} samples gives no fbank frame (need at least {self.min_samples}); "
                "drop such utterances or pad them (e.g. repeat) before embedding"
            )
        return self.embed(feats)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``(B, frames, bins)`` → embeddings ``(B, embed_dim)``."""
        raise NotImplementedError
