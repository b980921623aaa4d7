"""Padding masks over time: which frames of a padded batch are real, and statistics over those frames only."""
import torch


def frame_mask(num_frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Bool ``(B, max_frames)``: True on each item's first ``num_frames[b]`` frames."""
    return torch.arange(max_frames, device=num_frames.device)[None, :] < num_frames[:, None]


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` (time last) with padded frames set to 0 (also NaN/inf ones), so a conv sees what zero padding gives."""
    return x if mask is None else x.masked_fill(~mask, 0.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Mean over the last (time) axis of the frames where ``mask`` (broadcastable to ``x``) is True."""
    count = mask.sum(dim=-1, keepdim=True).clamp(min=1).to(x.dtype)
    mean = x.masked_fill(~mask, 0.0).sum(dim=-1, keepdim=True) / count
    return mean if keepdim else mean.squeeze(-1)


def masked_mean_var(x: torch.Tensor, mask: torch.Tensor, keepdim: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over the last axis of the masked-in frames."""
    mean = masked_mean(x, mask, keepdim=True)
    var = masked_mean((x - mean).square(), mask, keepdim=True)
    return (mean, var) if keepdim else (mean.squeeze(-1), var.squeeze(-1))
