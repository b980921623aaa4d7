"""Classification heads for speaker training: additive angular margin softmax (ArcFace) and plain softmax."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class AAMSoftmax(nn.Module):
    """ArcFace head: cross-entropy on ``s·cos(θ_y + m)`` at the margin label and ``s·cos θ`` elsewhere."""

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.2,
                 easy_margin: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale
        self.easy_margin = easy_margin
        self.margin = margin

    @property
    def margin(self) -> float:
        """The additive angular margin m (radians); settable, e.g. for a warm-up."""
        return self._margin

    @margin.setter
    def margin(self, value: float) -> None:
        self._margin = float(value)
        self._cos_m, self._sin_m = math.cos(value), math.sin(value)
        # Past θ = π - m, cos(θ + m) stops decreasing in θ; there ArcFace uses cos θ - m·sin(m) instead.
        self._th = math.cos(math.pi - value)
        self._mm = math.sin(math.pi - value) * value

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine between each embedding and each class weight: ``(B, num_classes)``."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, emb: torch.Tensor, target: torch.Tensor, margin_target: torch.Tensor | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """Loss against ``target`` with the margin at ``margin_target`` (default ``target``), and ``s·cos θ``."""
        cosine = self.cosine(emb.float())
        margin_target = target if margin_target is None else margin_target
        cos_t = cosine.gather(1, margin_target.view(-1, 1))
        sin_t = torch.sqrt((1.0 - cos_t.square()).clamp(0.0, 1.0))
        phi = cos_t * self._cos_m - sin_t * self._sin_m
        if self.easy_margin:
            phi = torch.where(cos_t > 0, phi, cos_t)
        else:
            phi = torch.where(cos_t > self._th, phi, cos_t - self._mm)
        margined = cosine.scatter(1, margin_target.view(-1, 1), phi)
        loss = F.cross_entropy(self.scale * margined, target, reduction=reduction)
        return loss, self.scale * cosine.detach()

    def extra_repr(self) -> str:
        return (f"embed_dim={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, scale={self.scale}, "
                f"margin={self.margin}, easy_margin={self.easy_margin}")


class Softmax(nn.Module):
    """Linear classifier with cross-entropy, same interface as AAMSoftmax (``margin_target`` is ignored)."""

    def __init__(self, embed_dim: int, num_classes: int, **_: object):
        super().__init__()
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, emb: torch.Tensor, target: torch.Tensor, margin_target: torch.Tensor | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the logits against ``target``; returns ``(loss, logits)``."""
        logits = self.linear(emb.float())
        return F.cross_entropy(logits, target, reduction=reduction), logits.detach()


def margin_schedule(epoch: float, final_margin: float, increase_start_epoch: float, fix_start_epoch: float,
                    initial_margin: float = 0.0, increase_type: str = "linear") -> float:
    """WeSpeaker's margin warm-up: ``initial`` before ``increase_start``, rising to ``final`` at ``fix_start``.

    ``epoch`` may be fractional (update every step). ``increase_type`` "exp" is WeSpeaker's default curve,
    ``1 - 1e-3 ** progress`` (fast rise, then flat); "linear" a straight ramp.
    """
    if increase_type not in ("linear", "exp"):
        raise ValueError(f"increase_type must be 'linear' or 'exp', got {increase_type!r}")
    if epoch < increase_start_epoch:
        return initial_margin
    if epoch >= fix_start_epoch:
        return final_margin
    progress = (epoch - increase_start_epoch) / (fix_start_epoch - increase_start_epoch)
    ratio = progress if increase_type == "linear" else 1.0 - math.exp(progress * math.log(1e-3))
    return initial_margin + (final_margin - initial_margin) * ratio
