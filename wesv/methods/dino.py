"""DINO for speakers: a student matches an EMA teacher's centred, sharpened prototype distribution across crops."""
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from wesv import distributed as dist
from wesv.data.views import ViewsConfig, ViewsDataset, build_views_dataset, view_logs
from wesv.errors import WesvError
from wesv.log import get_logger
from wesv.nn.ema import ema_update_, frozen_copy
from wesv.nn.heads import DinoHead
from wesv.nn.schedules import cosine_schedule, linear_warmup
from wesv.trainer.method import DataInfo, Method, register_method

log = get_logger("wesv.methods.dino")


@dataclass
class DinoConfig(ViewsConfig):
    """DINO settings (VoxCeleb defaults from METHODS.md); view fields come from ``ViewsConfig``."""

    out_dim: int | Literal["auto"] = 65536  # K prototypes; "auto": scaled to the training set (``auto_prototypes``)
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    head_layers: int = 3
    student_temp: float = 0.1
    teacher_temp_start: float = 0.04
    teacher_temp: float = 0.07  # reached after the warm-up
    teacher_temp_warmup_epochs: int = 10
    center_momentum: float = 0.9
    ema_base: float = 0.996
    ema_final: float = 1.0
    freeze_last_layer_epochs: int = 1
    collapse_grace_epochs: int = 2  # collapse is checked at the end of epochs >= this
    collapse_tolerance: float = 0.02  # fraction of log K (and of samples) that counts as "at the limit"


UTTS_PER_PROTOTYPE = 16  # VoxCeleb2 dev: 1,092,009 utterances / 65,536 prototypes ≈ 16.7 (ImageNet: ≈ 19.5)
MIN_PROTOTYPES, MAX_PROTOTYPES = 256, 65536


def auto_prototypes(num_samples: int) -> int:
    """K for ``method.out_dim: auto``: ``clamp(2^round(log2(N / 16)), 256, 65536)`` for N training utterances.

    N / 16 keeps the published ratio (K = 65,536 for VoxCeleb2's 1.09 M utterances, which the rule gives back
    exactly), so on a small set most prototypes can still be the teacher's choice for some utterances instead of
    sitting unused (4,096 prototypes for 1,200 utterances). A power of two, at least 256 so that even a tiny set is
    over-partitioned (more prototypes than speakers in any corpus that small), at most DINO's 65,536.
    """
    k = 2 ** int(round(math.log2(max(1.0, num_samples / UTTS_PER_PROTOTYPE))))
    return int(min(MAX_PROTOTYPES, max(MIN_PROTOTYPES, k)))


def resolve_prototypes(out_dim: int | str, num_samples: int) -> int:
    """The number of prototypes K: ``out_dim`` itself when an int, else ``auto_prototypes(num_samples)``."""
    if out_dim == "auto":
        return auto_prototypes(num_samples)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 2:
        raise WesvError(f"method.out_dim must be an int >= 2 or 'auto' (got {out_dim!r})")
    return out_dim


class DinoCollapseError(WesvError):
    """Training collapsed (one prototype for everything, or uniform outputs); raised after the grace period."""


def dino_loss(student_logits: list[torch.Tensor], teacher_logits: list[torch.Tensor], center: torch.Tensor,
              student_temp: float, teacher_temp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over (teacher global i, student view v ≠ i) of −Σ softmax((t_i − c)/τ_t) · log_softmax(s_v/τ_s).

    Student view ``i`` for ``i < len(teacher_logits)`` is the same crop as teacher global ``i``. Returns the loss
    and the teacher probabilities ``(num_global · B, K)``.
    """
    t_probs = [F.softmax((t - center) / teacher_temp, dim=-1) for t in teacher_logits]
    s_logp = [F.log_softmax(s / student_temp, dim=-1) for s in student_logits]
    total, pairs = student_logits[0].new_zeros(()), 0
    for i, pt in enumerate(t_probs):
        for v, ls in enumerate(s_logp):
            if v != i:
                total = total + torch.sum(-pt * ls, dim=-1).mean()
                pairs += 1
    if pairs == 0:
        raise ValueError("DINO needs at least two views")
    return total / pairs, torch.cat(t_probs)


def teacher_stats(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean per-sample entropy, KL(batch-mean ‖ uniform) and the share of samples on the most common prototype.

    Returned as 0-d tensors on the device: the trainer sums them there and reads them once per epoch.
    """
    k = probs.shape[-1]
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean()
    mean = probs.mean(0)
    kl_uniform = (mean * torch.log(mean.clamp_min(1e-12))).sum() + math.log(k)
    top1 = torch.bincount(probs.argmax(-1), minlength=k).max().float() / probs.shape[0]
    return {"teacher_entropy": entropy, "teacher_kl_uniform": kl_uniform, "teacher_top1": top1}


def check_collapse(stats: dict[str, float], num_prototypes: int, tolerance: float) -> None:
    """Raise ``DinoCollapseError`` when the teacher output is one prototype for all samples, or uniform."""
    log_k = math.log(num_prototypes)
    ent, kl, top1 = (float(stats[k]) for k in ("teacher_entropy", "teacher_kl_uniform", "teacher_top1"))
    if ent < tolerance * log_k and top1 > 1.0 - tolerance:
        raise DinoCollapseError(
            f"DINO collapsed to one prototype (teacher entropy {ent:.4f}, {top1:.1%} of samples on one prototype):"
            " lower optim.lr, lengthen method.teacher_temp_warmup_epochs or check method.center_momentum (0.9)")
    if kl < tolerance * log_k and ent > (1.0 - tolerance) * log_k:
        raise DinoCollapseError(
            f"DINO collapsed to uniform outputs (teacher entropy {ent:.3f} of log K = {log_k:.3f}, KL to uniform "
            f"{kl:.4f}): lower method.teacher_temp (sharpening) or optim.lr")


def forward_views(encoder: nn.Module, head: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """Head outputs per view; consecutive views of equal length go through the network as one batch."""
    out: list[torch.Tensor] = []
    start = 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        out.extend(head(encoder(torch.cat(views[start:end]))).chunk(end - start))
        start = end
    return out


@register_method("dino", config=DinoConfig)
class Dino(Method):
    """Student (``encoder`` + head) trained on all views against an EMA teacher that sees the global views."""

    uses_labels = False

    def __init__(self, cfg: DinoConfig, encoder: nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        if cfg.num_global + cfg.num_local < 2:
            raise WesvError("DINO needs at least two views: set method.num_global + method.num_local >= 2")
        self.num_prototypes = resolve_prototypes(cfg.out_dim, data_info.num_samples)
        log.info("DINO: K = %d prototypes for %d training utterances (method.out_dim: %s%s)", self.num_prototypes,
                 data_info.num_samples, cfg.out_dim, ", rule clamp(2^round(log2(N/16)), 256, 65536)"
                 if cfg.out_dim == "auto" else "")
        self.head = DinoHead(encoder.embed_dim, self.num_prototypes, cfg.hidden_dim, cfg.bottleneck_dim,
                             cfg.head_layers)
        self.teacher_encoder = frozen_copy(encoder)
        self.teacher_head = frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(1, self.num_prototypes))
        self.teacher_temp_now = cfg.teacher_temp_start
        self.freeze_last_layer = cfg.freeze_last_layer_epochs > 0
        # Zero (not drop) the gradient so DDP sees every parameter used; weight decay only rescales the
        # weight-normalised rows, so the prototypes stay frozen as a function.
        self.head.last_layer.weight.register_hook(
            lambda g: torch.zeros_like(g) if self.freeze_last_layer else g)
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0

    @classmethod
    def build_dataset(cls, cfg: DinoConfig, data_cfg: Any, augmenter: Callable | None, seed: int) -> ViewsDataset:
        """K global + L local augmented crops of each training utterance (never reads its utt2spk)."""
        return build_views_dataset(cfg, data_cfg.train, augmenter, seed, data_cfg.sample_rate, data_cfg.short,
                                   data_cfg.resample, data_cfg.shards)

    @classmethod
    def data_info(cls, cfg: DinoConfig, dataset: ViewsDataset) -> DataInfo:
        """Number of samples only: DINO uses no labels."""
        return DataInfo(num_samples=len(dataset))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        """Loss over (teacher global, student view) pairs; updates the centre; returns loss and teacher stats."""
        views = batch["views"]
        k = self.cfg.num_global
        student = forward_views(self.encoder, self.head, views)
        with torch.no_grad():
            teacher = forward_views(self.teacher_encoder, self.teacher_head, views[:k])
        loss, probs = dino_loss(student, teacher, self.center, self.cfg.student_temp, self.teacher_temp_now)
        self._update_center(torch.cat(teacher))
        stats = teacher_stats(probs.detach())
        for key, value in stats.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._steps += 1
        return loss, {**stats, "teacher_temp": self.teacher_temp_now, **view_logs(batch)}

    @torch.no_grad()
    def _update_center(self, teacher_logits: torch.Tensor) -> None:
        """c ← m·c + (1 − m)·mean of teacher outputs over every rank's batch."""
        teacher_logits = teacher_logits.float()
        summed = torch.cat([teacher_logits.sum(0), teacher_logits.new_tensor([teacher_logits.shape[0]])])
        dist.all_reduce_sum(summed)
        batch_center = (summed[:-1] / summed[-1]).unsqueeze(0)
        m = self.cfg.center_momentum
        self.center.mul_(m).add_(batch_center, alpha=1.0 - m)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Set the teacher temperature and the last-layer freeze for ``epoch``; reset the epoch's statistics."""
        cfg = self.cfg
        self.teacher_temp_now = linear_warmup(cfg.teacher_temp_start, cfg.teacher_temp, epoch,
                                              cfg.teacher_temp_warmup_epochs)
        self.freeze_last_layer = epoch < cfg.freeze_last_layer_epochs
        self._sums, self._steps = {}, 0

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Epoch means of the teacher statistics; stops with ``DinoCollapseError`` on collapse after the grace."""
        if not self._steps:
            return {}
        stats = {key: float(value) / self._steps for key, value in self._sums.items()}
        if epoch >= self.cfg.collapse_grace_epochs:
            check_collapse(stats, self.num_prototypes, self.cfg.collapse_tolerance)
        return stats

    def synced_buffers(self) -> dict[str, str]:
        """BN statistics of student and teacher averaged; the centre (all-reduced, so identical) guarded."""
        return {**super().synced_buffers(), "head": "mean", "teacher_encoder": "mean", "teacher_head": "mean",
                "center": "broadcast"}

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """EMA of the student into the teacher with the cosine momentum schedule (base → final)."""
        m = cosine_schedule(self.cfg.ema_base, self.cfg.ema_final, step, total_steps)
        ema_update_(self.teacher_encoder, self.encoder, m)
        ema_update_(self.teacher_head, self.head, m)

    def export_encoder(self) -> nn.Module:
        """The teacher backbone: DINO's embeddings come from the teacher."""
        return self.teacher_encoder
