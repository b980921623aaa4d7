"""The encoder registry and the encoder base class: front-end + backbone + pooling (seams 5 and 10)."""
from typing import Any

import torch
from torch import nn

from wesv.errors import WesvError
from wesv.features.frontend import FrontEnd
from wesv.nn.mask import frame_mask
from wesv.registry import Registry

ENCODERS: Registry = Registry("encoder")


class Encoder(nn.Module):
    """Waveform ``(B, T)`` in [-1, 1] → front-end (a submodule, runs on the model's device) → ``(B, embed_dim)``.

    Subclasses build their backbone and pooling in ``__init__`` and implement ``embed(feats, mask)`` on
    ``(B, frames, feature_dim)`` with ``mask`` None (every frame real) or bool ``(B, frames)``: padded frames must not
    change any item's embedding. ``registry_name`` and ``cfg`` are what ``save_encoder`` stores to rebuild the module.
    """

    registry_name: str = ""

    def __init__(self, cfg: Any, frontend: FrontEnd, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.embed_dim = embed_dim
        self.frontend = frontend

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the waveforms this encoder takes (its front-end's)."""
        return self.frontend.sample_rate

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields one frame (its front-end's)."""
        return self.frontend.min_samples

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch of waveforms; ``lengths`` (samples per item) marks the rest of each row as padding."""
        if wave.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects waveforms (batch, samples), got {tuple(wave.shape)}")
        if lengths is not None:
            lengths = self._check_lengths(wave, lengths)
        if lengths is not None and bool((lengths == wave.shape[1]).all()):
            lengths = None  # nothing padded: the unmasked path, identical to a call without lengths
        shortest = wave.shape[1] if lengths is None else int(lengths.min())
        if shortest < self.min_samples:
            raise WesvError(
                f"a waveform of {shortest} samples gives no {type(self.frontend).__name__.lower()} frame (need at "
                f"least {self.min_samples}); drop such utterances or pad them (e.g. repeat) before embedding"
            )
        feats = self.frontend(wave, lengths)
        mask = None if lengths is None else frame_mask(self.frontend.num_frames(lengths), feats.shape[1])
        return self.embed(feats, mask)

    @staticmethod
    def _check_lengths(wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if lengths.shape != (wave.shape[0],) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be an integer tensor of shape ({wave.shape[0]},), got "
                             f"{lengths.dtype} {tuple(lengths.shape)}")
        lengths = lengths.to(wave.device)
        if bool((lengths > wave.shape[1]).any()):
            raise ValueError(f"lengths exceed the padded waveform length {wave.shape[1]}: {lengths.tolist()}")
        return lengths

    def embed(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``(B, frames, feature_dim)`` (padded frames where ``mask`` is False) → ``(B, embed_dim)``."""
        raise NotImplementedError

    def param_groups(self) -> list[dict] | None:
        """Named parts with their own lr, ``[{"name", "params", "lr_scale", "backbone"?}]``; None: no parts.

        Methods that build per-part groups (the classifier) use these when given; ``backbone: True`` marks the
        parts that ``frozen_backbone_epochs`` and ``backbone_lr_scale`` act on.
        """
        return None

    def regularize(self, loss: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The training loss with the encoder's own penalty (e.g. L2-SP) and numbers to log; default unchanged."""
        return loss, {}

    def export_files(self, directory: str, name: str) -> dict:
        """Write what encoder file ``name`` should not hold (e.g. a ``save_pretrained`` model) into ``directory``.

        Returns ``{"config": overrides, "relative_paths": [config keys relative to the encoder file's directory],
        "external_prefixes": [state-dict prefixes left out of the file], "files": [written paths, relative to
        directory, whose digest the file keeps and checks on load]}``; the default writes nothing.
        """
        return {}


#: The name the encoders had when fbank was their only front-end.
FbankEncoder = Encoder
