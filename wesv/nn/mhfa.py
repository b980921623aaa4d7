"""Back-ends over the stacked hidden states of an SSL front-end: MHFA (Peng et al., SLT 2022) and layer-sum + ASP.

Both take ``(B, frames, layers, hidden)`` and a bool frame mask ``(B, frames)`` (None: every frame real); padded
frames change no item's embedding.
"""
import torch
from torch import nn

from wesv.nn.pooling import AttentiveStatsPool


def layer_sum(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, T, L, H)`` → ``(B, T, H)``: the layers weighted by ``softmax(weights)``."""
    return torch.einsum("btlh,l->bth", x, torch.softmax(weights, dim=0).to(x.dtype))


class MHFA(nn.Module):
    """Multi-head factorized attentive pooling: layer-weighted keys and values, H heads attend over time.

    Keys and values each get their own softmax-normalised layer weights (initialised to ones) and a linear
    compression hidden → ``compress_dim``; a linear layer ``compress_dim`` → ``heads`` gives each head's attention
    logits, softmax-normalised over (real) frames; each head pools the values, and a linear layer maps the
    ``heads × compress_dim`` concatenation to the embedding. No normalisation, no dropout (as published).
    """

    def __init__(self, num_layers: int, hidden: int, heads: int = 64, compress_dim: int = 128, embed_dim: int = 256):
        super().__init__()
        self.weights_k = nn.Parameter(torch.ones(num_layers))
        self.weights_v = nn.Parameter(torch.ones(num_layers))
        self.cmp_k = nn.Linear(hidden, compress_dim)
        self.cmp_v = nn.Linear(hidden, compress_dim)
        self.att_head = nn.Linear(compress_dim, heads)
        self.pooling_fc = nn.Linear(heads * compress_dim, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, L, H)`` → ``(B, embed_dim)``."""
        k = self.cmp_k(layer_sum(x, self.weights_k))
        v = self.cmp_v(layer_sum(x, self.weights_v))
        logits = self.att_head(k)  # (B, T, heads)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, :, None], float("-inf"))
        att = torch.softmax(logits, dim=1)
        pooled = torch.einsum("bth,btc->bhc", att, v)
        return self.pooling_fc(pooled.reshape(pooled.shape[0], -1))


class LayerSumASP(nn.Module):
    """ECAPA-style back-end kept simple: softmax-weighted layer sum → 1×1 conv + ReLU + BN → attentive stats pooling
    (global context) → BN → linear embedding."""

    def __init__(self, num_layers: int, hidden: int, channels: int = 512, embed_dim: int = 256,
                 attention_bottleneck: int = 128):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(num_layers))
        self.proj = nn.Sequential(nn.Conv1d(hidden, channels, kernel_size=1), nn.ReLU(), nn.BatchNorm1d(channels))
        self.pool = AttentiveStatsPool(channels, attention_bottleneck, global_context=True)
        self.pool_bn = nn.BatchNorm1d(2 * channels)
        self.linear = nn.Linear(2 * channels, embed_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, L, H)`` → ``(B, embed_dim)``."""
        h = self.proj(layer_sum(x, self.weights).transpose(1, 2))  # per frame: padded frames stay per-frame
        return self.linear(self.pool_bn(self.pool(h, mask)))
