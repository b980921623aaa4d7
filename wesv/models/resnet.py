"""ResNet speaker encoders in WeSpeaker's style: 2-D BasicBlocks over (freq, time), temporal statistics pooling.

With a padding mask (bool ``(B, 1, 1, T)``), each 3x3 conv's input is zeroed past each item's end (what the item
alone gets from zero padding); a stride-2 conv keeps every other frame from 0, so the mask follows as
``mask[..., ::2]`` (an item of n frames keeps ceil(n / 2), as alone). The pooling skips padded frames.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wesv.errors import WesvError
from wesv.features.fbank import Fbank, FbankConfig
from wesv.models.base import ENCODERS, Encoder
from wesv.nn.mask import zero_padding
from wesv.nn.pooling import TemporalStatsPool


@dataclass
class ResNetConfig:
    """ResNet; the defaults are WeSpeaker's ResNet34 (blocks [3,4,6,3], width 32, embed 256, one embedding layer)."""

    fbank: FbankConfig = field(default_factory=FbankConfig)
    num_blocks: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    base_width: int = 32
    embed_dim: int = 256
    two_emb_layer: bool = False  # WeSpeaker's option: Linear → ReLU → BN → Linear

    def __post_init__(self) -> None:
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1 or self.base_width < 1:
            raise WesvError(f"resnet: num_blocks must be 4 positive counts and base_width positive, got "
                            f"{self.num_blocks} / {self.base_width}")


@dataclass
class ResNetSmallConfig(ResNetConfig):
    """A CPU-sized ResNet for the embedded corpus (blocks [1,1,1,1], width 8; ~0.25 M parameters)."""

    num_blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    base_width: int = 8
    embed_dim: int = 128


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN and a (projected when needed) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            out = F.relu(self.bn1(self.conv1(x)))
        else:
            out = F.relu(self.bn1(self.conv1(zero_padding(x, mask))))
            out = zero_padding(out, mask[..., ::self.stride])
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Encoder):
    """ResNet encoder: stem conv, four stages (stride 1, 2, 2, 2), mean+std over time of (channels × freq)."""

    def __init__(self, cfg: ResNetConfig):
        super().__init__(cfg, Fbank(cfg.fbank), cfg.embed_dim)
        w = cfg.base_width
        self.conv1 = nn.Conv2d(1, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages, in_planes = [], w
        for i, (blocks, stride) in enumerate(zip(cfg.num_blocks, (1, 2, 2, 2))):
            planes = w * 2**i
            layers = [BasicBlock(in_planes, planes, stride)]
            layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        freq = self.frontend.feature_dim
        for _ in range(3):  # a 3x3 stride-2 conv with padding 1 maps F to ceil(F / 2)
            freq = (freq + 1) // 2
        self.stats_dim = in_planes * freq
        self.pool = TemporalStatsPool()
        self.seg_1 = nn.Linear(2 * self.stats_dim, cfg.embed_dim)
        if cfg.two_emb_layer:
            self.seg_bn_1 = nn.BatchNorm1d(cfg.embed_dim, affine=False)
            self.seg_2 = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def embed(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, frames, bins)`` (padded frames where ``mask`` is False) → ``(B, embed_dim)``."""
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        if mask is None:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
            emb = self.seg_1(self.pool(out.flatten(1, 2)))
        else:
            m = mask[:, None, None, :]
            out = F.relu(self.bn1(self.conv1(zero_padding(x, m))))
            for block in (*self.layer1, *self.layer2, *self.layer3, *self.layer4):
                out = block(out, m)
                m = m[..., ::block.stride]
            emb = self.seg_1(self.pool(out.flatten(1, 2), m[:, 0, 0, :]))
        if self.cfg.two_emb_layer:
            emb = self.seg_2(self.seg_bn_1(F.relu(emb)))
        return emb


ENCODERS.register("resnet34", config=ResNetConfig)(ResNet)
ENCODERS.register("resnet_small", config=ResNetSmallConfig)(ResNet)
