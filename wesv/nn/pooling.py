"""Statistics pooling over time: plain mean+std (ResNet) and attentive with global context (ECAPA-TDNN)."""
import torch
from torch import nn

#: Variance floor before the square root, as WeSpeaker (keeps gradients finite on constant channels).
VAR_FLOOR = 1e-7


class TemporalStatsPool(nn.Module):
    """Mean and standard deviation over the last (time) axis: ``(B, D, T)`` → ``(B, 2D)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool; population variance so a single frame gives std 0 rather than NaN."""
        mean = x.mean(dim=-1)
        std = torch.sqrt(x.var(dim=-1, correction=0) + VAR_FLOOR)
        return torch.cat([mean, std], dim=1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (channel-wise attention, optional global context): ``(B, D, T)`` → ``(B, 2D)``."""

    def __init__(self, in_dim: int, bottleneck_dim: int = 128, global_context: bool = True):
        super().__init__()
        self.global_context = global_context
        self.linear1 = nn.Conv1d(in_dim * 3 if global_context else in_dim, bottleneck_dim, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool with attention weights softmax-normalised over time per channel."""
        if self.global_context:
            mean = x.mean(dim=-1, keepdim=True).expand_as(x)
            std = torch.sqrt(x.var(dim=-1, keepdim=True, correction=0) + VAR_FLOOR).expand_as(x)
            x_in = torch.cat([x, mean, std], dim=1)
        else:
            x_in = x
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(x_in))), dim=-1)
        mean = torch.sum(alpha * x, dim=-1)
        var = torch.sum(alpha * x.square(), dim=-1) - mean.square()
        return torch.cat([mean, torch.sqrt(var.clamp(min=VAR_FLOOR))], dim=1)
