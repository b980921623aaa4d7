"""Sequence encoder of a feature stream (seam 11, one branch): frames ``(B, frames, input_dim)`` → embedding.

Temporal convolutions over the frames (1-D, dilated, each Conv → ReLU → BatchNorm with a residual where the widths
match), then attentive statistics pooling and a linear embedding layer. No front-end: the stream is already features
(e.g. ``face.scp`` from a face model, 64-D at 5 frames/s). ``lengths`` (frames per item) marks padding, under the
encoders' mask contract: padded frames are zeroed before every conv wider than one frame and skipped by the pooling.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wesv.errors import WesvError
from wesv.models.base import ENCODERS
from wesv.nn.mask import frame_mask, zero_padding
from wesv.nn.pooling import AttentiveStatsPool


@dataclass
class SequenceTdnnConfig:
    """A small TDNN over a feature stream (defaults: 64-D input, 3 layers of 128 channels, embed 128; ~0.19 M)."""

    input_dim: int = 64
    channels: int = 128
    kernel_size: int = 3
    dilations: list[int] = field(default_factory=lambda: [1, 2, 3])  # one conv layer each
    attention_bottleneck: int = 64
    global_context: bool = True
    embed_dim: int = 128
    embed_bn: bool = True

    def __post_init__(self) -> None:
        if min(self.input_dim, self.channels, self.kernel_size, self.embed_dim) < 1 or not self.dilations \
                or min(self.dilations) < 1 or self.kernel_size % 2 == 0:
            raise WesvError(f"sequence_tdnn: input_dim, channels, embed_dim and dilations must be positive and "
                            f"kernel_size odd, got input_dim {self.input_dim}, channels {self.channels}, "
                            f"kernel_size {self.kernel_size}, dilations {self.dilations}, embed_dim {self.embed_dim}")


class _TdnnLayer(nn.Module):
    """Dilated Conv1d → ReLU → BatchNorm, residual when input and output widths match."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                              dilation=dilation)
        self.bn = nn.BatchNorm1d(out_ch)
        self.residual = in_ch == out_ch

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.bn(F.relu(self.conv(zero_padding(x, mask))))
        return x + out if self.residual else out


class SequenceTdnn(nn.Module):
    """``forward(frames (B, T, input_dim), lengths=None) -> (B, embed_dim)``; ``lengths`` counts each item's frames."""

    registry_name: str = ""

    def __init__(self, cfg: SequenceTdnnConfig):
        super().__init__()
        self.cfg = cfg
        self.input_dim = cfg.input_dim
        self.embed_dim = cfg.embed_dim
        widths = [cfg.input_dim] + [cfg.channels] * len(cfg.dilations)
        self.layers = nn.ModuleList([_TdnnLayer(widths[i], widths[i + 1], cfg.kernel_size, d)
                                     for i, d in enumerate(cfg.dilations)])
        self.pool = AttentiveStatsPool(cfg.channels, cfg.attention_bottleneck, cfg.global_context)
        self.pool_bn = nn.BatchNorm1d(2 * cfg.channels)
        self.linear = nn.Linear(2 * cfg.channels, cfg.embed_dim)
        self.embed_bn = nn.BatchNorm1d(cfg.embed_dim) if cfg.embed_bn else nn.Identity()

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch of frame sequences; frames past ``lengths[b]`` are padding (equal lengths: no mask)."""
        if frames.dim() != 3 or frames.shape[2] != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects frames (batch, frames, {self.input_dim}), got "
                             f"{tuple(frames.shape)}")
        if frames.shape[1] == 0:
            raise WesvError("a stream sequence with no frame cannot be embedded; drop it (the sample falls back to "
                            "its other branches)")
        mask = None
        if lengths is not None:
            lengths = lengths.to(frames.device)
            if lengths.shape != (frames.shape[0],) or int(lengths.min()) < 1 or int(lengths.max()) > frames.shape[1]:
                raise ValueError(f"lengths must be ({frames.shape[0]},) frame counts in [1, {frames.shape[1]}], got "
                                 f"{lengths.tolist()}")
            if not bool((lengths == frames.shape[1]).all()):
                mask = frame_mask(lengths, frames.shape[1])[:, None, :]
        x = frames.transpose(1, 2)
        for layer in self.layers:
            x = layer(x, mask)
        pooled = self.pool(x, None if mask is None else mask[:, 0, :])
        return self.embed_bn(self.linear(self.pool_bn(pooled)))


ENCODERS.register("sequence_tdnn", config=SequenceTdnnConfig)(SequenceTdnn)
