"""Statistics pooling over time: plain mean+std (ResNet) and attentive with global context (ECAPA-TDNN).

Both take an optional ``mask`` (bool ``(B, T)``, True on real frames): padded frames then carry no weight, whatever
they hold. Without a mask every frame counts, on the unmasked (faster) code path.
"""
import torch
from torch import nn

from wesv.nn.mask import masked_mean_var

#: Variance floor before the square root, as WeSpeaker (keeps gradients finite on constant channels).
VAR_FLOOR = 1e-7


class TemporalStatsPool(nn.Module):
    """Mean and standard deviation over the last (time) axis: ``(B, D, T)`` → ``(B, 2D)``."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool; population variance so a single frame gives std 0 rather than NaN."""
        if mask is None:
            mean = x.mean(dim=-1)
            var = x.var(dim=-1, correction=0)
        else:
            mean, var = masked_mean_var(x, mask[:, None, :])
        return torch.cat([mean, torch.sqrt(var + VAR_FLOOR)], dim=1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (channel-wise attention, optional global context): ``(B, D, T)`` → ``(B, 2D)``."""

    def __init__(self, in_dim: int, bottleneck_dim: int = 128, global_context: bool = True):
        super().__init__()
        self.global_context = global_context
        self.linear1 = nn.Conv1d(in_dim * 3 if global_context else in_dim, bottleneck_dim, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool with attention weights softmax-normalised over time per channel (over real frames with ``mask``)."""
        m = None if mask is None else mask[:, None, :]
        if m is not None:
            x = x.masked_fill(~m, 0.0)
        if self.global_context:
            if m is None:
                mean = x.mean(dim=-1, keepdim=True)
                var = x.var(dim=-1, keepdim=True, correction=0)
            else:
                mean, var = masked_mean_var(x, m, keepdim=True)
            x_in = torch.cat([x, mean.expand_as(x), torch.sqrt(var + VAR_FLOOR).expand_as(x)], dim=1)
        else:
            x_in = x
        logits = self.linear2(torch.tanh(self.linear1(x_in)))
        if m is not None:
            logits = logits.masked_fill(~m, float("-inf"))
        alpha = torch.softmax(logits, dim=-1)
        mean = torch.sum(alpha * x, dim=-1)
        var = torch.sum(alpha * x.square(), dim=-1) - mean.square()
        return torch.cat([mean, torch.sqrt(var.clamp(min=VAR_FLOOR))], dim=1)
