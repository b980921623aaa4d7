"""ECAPA-TDNN (Desplanques et al. 2020) in WeSpeaker's layout: SE-Res2Blocks, multi-layer aggregation, ASP.

With a padding mask (bool ``(B, 1, T)``), the input of every conv wider than one frame is zeroed past each item's end
(what that item alone gets from the conv's zero padding), the SE means and the pooling skip padded frames: a padded
item's embedding is the one it has alone.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wesv.errors import WesvError
from wesv.features.fbank import Fbank, FbankConfig
from wesv.models.base import ENCODERS, Encoder
from wesv.nn.mask import masked_mean, zero_padding
from wesv.nn.pooling import AttentiveStatsPool


@dataclass
class EcapaTdnnConfig:
    """ECAPA-TDNN; channels 512 is WeSpeaker's ECAPA_TDNN_GLOB_c512, 1024 its ..._c1024."""

    fbank: FbankConfig = field(default_factory=FbankConfig)
    channels: int = 512
    mfa_channels: int = 1536  # the aggregation conv's width; 0 means 3 × channels (SpeechBrain's 1024 → 3072)
    embed_dim: int = 192
    res2_scale: int = 8
    se_bottleneck: int = 128
    attention_bottleneck: int = 128
    global_context: bool = True
    embed_bn: bool = True  # BatchNorm on the embedding (WeSpeaker's emb_bn)

    def __post_init__(self) -> None:
        if self.channels <= 0 or self.channels % self.res2_scale:
            raise WesvError(f"ecapa_tdnn: channels ({self.channels}) must be a positive multiple of res2_scale "
                            f"({self.res2_scale})")


@dataclass
class EcapaTdnnSmallConfig(EcapaTdnnConfig):
    """A CPU-sized ECAPA-TDNN for the embedded corpus (channels 128, embed 128; ~0.57 M parameters)."""

    channels: int = 128
    mfa_channels: int = 0
    embed_dim: int = 128
    se_bottleneck: int = 64
    attention_bottleneck: int = 64


class Conv1dReluBn(nn.Module):
    """Conv1d → ReLU → BatchNorm (WeSpeaker's order)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                              dilation=dilation)
        self.bn = nn.BatchNorm1d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net conv: ``scale`` channel groups, each conv sees its group plus the previous group's output."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int):
        super().__init__()
        self.width = channels // scale
        self.nums = max(1, scale - 1)
        self.blocks = nn.ModuleList(
            [Conv1dReluBn(self.width, self.width, kernel_size, dilation) for _ in range(self.nums)]
        )
        self.scale = scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        groups = torch.split(x, self.width, dim=1)
        out, sp = [], groups[0]
        for i, block in enumerate(self.blocks):
            if i >= 1:
                sp = sp + groups[i]
            sp = block(zero_padding(sp, mask))
            out.append(sp)
        if self.scale != 1:
            out.append(groups[self.nums])
        return torch.cat(out, dim=1)


class SqueezeExcite(nn.Module):
    """Channel gates from the time-averaged input."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mean = x.mean(dim=2) if mask is None else masked_mean(x, mask)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(mean))))
        return x * gate.unsqueeze(2)


class SERes2Block(nn.Module):
    """1x1 conv → dilated Res2 conv → 1x1 conv → SE, with a residual connection."""

    def __init__(self, channels: int, dilation: int, scale: int, se_bottleneck: int):
        super().__init__()
        self.body = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, kernel_size=3, dilation=dilation, scale=scale),
            Conv1dReluBn(channels, channels),
            SqueezeExcite(channels, se_bottleneck),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x + self.body(x)
        conv_in, res2, conv_out, se = self.body  # 1x1 convs are per frame: only res2 and SE need the mask
        return x + se(conv_out(res2(conv_in(x), mask)), mask)


class EcapaTdnn(Encoder):
    """ECAPA-TDNN speaker encoder on Kaldi fbank."""

    def __init__(self, cfg: EcapaTdnnConfig):
        super().__init__(cfg, Fbank(cfg.fbank), cfg.embed_dim)
        c = cfg.channels
        self.layer1 = Conv1dReluBn(self.frontend.feature_dim, c, kernel_size=5)
        self.layer2 = SERes2Block(c, dilation=2, scale=cfg.res2_scale, se_bottleneck=cfg.se_bottleneck)
        self.layer3 = SERes2Block(c, dilation=3, scale=cfg.res2_scale, se_bottleneck=cfg.se_bottleneck)
        self.layer4 = SERes2Block(c, dilation=4, scale=cfg.res2_scale, se_bottleneck=cfg.se_bottleneck)
        mfa = cfg.mfa_channels or 3 * c
        self.mfa = nn.Conv1d(3 * c, mfa, kernel_size=1)
        self.pool = AttentiveStatsPool(mfa, cfg.attention_bottleneck, cfg.global_context)
        self.pool_bn = nn.BatchNorm1d(2 * mfa)
        self.linear = nn.Linear(2 * mfa, cfg.embed_dim)
        self.embed_bn = nn.BatchNorm1d(cfg.embed_dim) if cfg.embed_bn else nn.Identity()

    def embed(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, frames, bins)`` (padded frames where ``mask`` is False) → ``(B, embed_dim)``."""
        m = None if mask is None else mask[:, None, :]
        out1 = self.layer1(zero_padding(feats.transpose(1, 2), m))
        out2 = self.layer2(out1, m)
        out3 = self.layer3(out2, m)
        out4 = self.layer4(out3, m)
        out = F.relu(self.mfa(torch.cat([out2, out3, out4], dim=1)))
        return self.embed_bn(self.linear(self.pool_bn(self.pool(out, mask))))


ENCODERS.register("ecapa_tdnn", config=EcapaTdnnConfig)(EcapaTdnn)
ENCODERS.register("ecapa_tdnn_small", config=EcapaTdnnSmallConfig)(EcapaTdnn)
