"""DLG-LC: a pseudo-label classifier whose noisy labels are gated by a GMM on per-sample losses and corrected.

Each epoch records every training sample's AAM loss on its augmented view (per-sample state, gathered from all
ranks). From ``gate_start_epoch`` a 2-component GMM fitted on the previous epoch's log-losses gives τ; a sample is
reliable when ``log ℓ ≤ τ`` (the dynamic loss-gate). From ``correction_start_epoch`` a gated-out sample whose clean
(unaugmented) crop the model predicts with confidence ``> correction_threshold`` trains on that prediction ŷ, with
the margin at ŷ (the public code puts it at the old label: ``correction_margin: original`` reproduces that).
Epoch numbers in the config are 1-based, as in the paper and the log.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from wesv import distributed as dist
from wesv.log import get_logger
from wesv.loss_gate.gmm import LossGmm, fit_loss_gmm, gmm_threshold, weighted_crossing  # noqa: F401 (API)
from wesv.loss_gate.plots import plot_gate_epochs
from wesv.loss_gate.record import RECORD_DIR, read_records, write_record
from wesv.methods.classifier import Classifier, ClassifierConfig
from wesv.trainer.method import DataInfo, register_method
from wesv.trainer.sample_state import Column

log = get_logger("wesv.methods.dlg_lc")


@dataclass
class DlgLcConfig(ClassifierConfig):
    """The ``method:`` section of ``type: dlg_lc`` (defaults: the public DLG-LC code; epochs from 1)."""

    gate_start_epoch: int = 5  # first epoch trained on gated samples (τ from the epoch before)
    correction_start_epoch: int = 9  # first epoch with label correction (0 or less than gate start: never)
    correction_temperature: float = 0.1
    correction_threshold: float = 0.5  # a gated-out sample is corrected when max p > this
    correction_scores: Literal["linear", "cosine"] = "linear"  # p = softmax(W·x / T) as published, or cosines
    correction_margin: Literal["corrected", "original"] = "corrected"  # "original": the public code's margin bug
    # public: gate-only epochs Σ r ℓ / max(1, Σ r), correction epochs mean over the batch; batch: always the mean
    # over the batch; kept: the mean over the samples that contribute
    loss_normalisation: Literal["public", "batch", "kept"] = "public"
    no_crossing: Literal["keep_previous", "no_gate"] = "keep_previous"  # when the GMM gives no τ
    gmm_max_points: int = 200_000  # subsample larger tables for the fit (seeded)
    gmm_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gate_start_epoch < 2:
            raise ValueError("gate_start_epoch must be >= 2: τ is fitted on the losses of the epoch before")
        if not 0 < self.correction_temperature:
            raise ValueError("correction_temperature must be > 0")
        if not 0 <= self.correction_threshold < 1:
            raise ValueError("correction_threshold must be in [0, 1)")


def shared_threshold(losses: np.ndarray, max_points: int, seed: int,
                     device: torch.device | str = "cpu") -> tuple[float | None, LossGmm | None]:
    """The GMM crossing of ``log(losses)`` fitted on rank 0 and broadcast: the same τ (or None) on every rank.

    The GMM itself is returned on rank 0 only (for the records, which rank 0 writes).
    """
    gmm = tau = None
    if dist.rank() == 0 and len(losses):
        logs = np.log(np.clip(losses, 1e-30, None))
        gmm = fit_loss_gmm(logs, max_points=max_points, seed=seed)
        tau = None if gmm is None else weighted_crossing(gmm)
    shared = torch.tensor([math.nan if tau is None else tau], dtype=torch.float64, device=device)
    dist.broadcast_(shared, src=0)
    return (None if math.isnan(float(shared[0])) else float(shared[0])), gmm


def combine_losses(loss_y: torch.Tensor, reliable: torch.Tensor, loss_hat: torch.Tensor | None,
                   corrected: torch.Tensor | None, normalisation: str) -> torch.Tensor:
    """``Σ r ℓ(y) + Σ c ℓ(ŷ)`` over the batch, divided as ``normalisation`` says (see ``DlgLcConfig``)."""
    r = reliable.to(loss_y.dtype)
    total = (r * loss_y).sum()
    kept = r.sum()
    if loss_hat is not None:
        c = corrected.to(loss_y.dtype)
        total = total + (c * loss_hat).sum()
        kept = kept + c.sum()
    if normalisation == "batch" or (normalisation == "public" and loss_hat is not None):
        return total / loss_y.numel()
    return total / kept.clamp_min(1.0)


@register_method("dlg_lc", config=DlgLcConfig)
class DlgLc(Classifier):
    """Classifier on pseudo-labels with the dynamic loss-gate and label correction."""

    needs_clean = True

    def __init__(self, cfg: DlgLcConfig, encoder: nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        self.utts = list(data_info.utts or [])
        self.threshold: float | None = None  # τ of the running epoch (None: no gate)
        self._fitted: float | None = None  # τ fitted at the end of the last epoch, for the next one
        self._gmm: LossGmm | None = None
        self._epoch = 0
        self.gate_on = False
        self.correcting = False

    @classmethod
    def data_info(cls, cfg: DlgLcConfig, dataset: Dataset) -> DataInfo:
        """Number of samples and classes, and the utterance ids (for the per-epoch records)."""
        info = super().data_info(cfg, dataset)
        info.utts = list(dataset.utts)
        return info

    def sample_columns(self) -> list[Column]:
        """The classifier's per-sample loss, plus each sample's gate decision, corrected label and pseudo-label."""
        return super().sample_columns() + [Column("reliable", torch.bool, True, per_epoch=True),
                                           Column("corrected_label", torch.long, -1, per_epoch=True),
                                           Column("label", torch.long, -1)]

    # ---- the step ------------------------------------------------------------------------------------------
    def _clean_scores(self, clean: torch.Tensor) -> torch.Tensor:
        """Class scores of the clean crops: no gradient, BatchNorm statistics untouched (eval mode)."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                emb = self.encoder(clean).float()
        finally:
            self.encoder.train(was_training)
        if self.cfg.correction_scores == "cosine" and hasattr(self.head, "cosine"):
            return self.head.cosine(emb)
        weight = self.head.weight if hasattr(self.head, "weight") else self.head.linear.weight
        return F.linear(emb, weight.float())

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Per-sample losses, the gate, label correction from the clean pass; records everything per sample."""
        cfg = self.cfg
        emb = self.encoder(batch["wave"])
        y, index = batch["label"], batch["index"]
        with torch.autocast(emb.device.type, enabled=False):
            emb = emb.float()
            loss_y, logits = self.head(emb, y, reduction="none")
            detached = loss_y.detach()
            reliable = torch.ones_like(y, dtype=torch.bool)
            if self.gate_on and self.threshold is not None:
                reliable = torch.log(detached.clamp_min(1e-30)) <= self.threshold
            loss_hat = corrected = None
            y_hat = torch.full_like(y, -1)
            if self.correcting:
                probs = F.softmax(self._clean_scores(batch["clean"]) / cfg.correction_temperature, dim=-1)
                confidence, pred = probs.max(dim=-1)
                corrected = ~reliable & (confidence > cfg.correction_threshold)
                margin_at = pred if cfg.correction_margin == "corrected" else y
                loss_hat, _ = self.head(emb, pred, margin_target=margin_at, reduction="none")
                y_hat = torch.where(corrected, pred, y_hat)
            loss = combine_losses(loss_y, reliable, loss_hat, corrected, cfg.loss_normalisation)
        state = self.sample_state
        state.update("loss", index, detached)
        state.update("label", index, y)
        state.update("reliable", index, reliable)
        state.update("corrected_label", index, y_hat)
        target = torch.where(y_hat >= 0, y_hat, y)
        logs = {"acc": (logits.argmax(dim=-1) == target).float().mean(),
                "gated_out": (~reliable).float().mean(),
                "corrected": (y_hat >= 0).float().mean()}
        if hasattr(self.head, "margin"):
            logs["margin"] = float(self.head.margin)
        return self.regularized(loss, logs)  # the encoder's own penalty (L2-SP of ssl_mhfa); the gate saw CE only

    # ---- the epoch -----------------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Gate with the τ fitted on the previous epoch; correct from ``correction_start_epoch`` (idempotent)."""
        super().on_epoch_start(epoch, num_epochs)
        cfg, number = self.cfg, epoch + 1
        self._epoch = epoch
        self.gate_on = number >= cfg.gate_start_epoch
        self.correcting = self.gate_on and 0 < cfg.correction_start_epoch <= number
        if self.gate_on and self._fitted is not None:
            self.threshold = self._fitted
        elif self.gate_on and cfg.no_crossing == "no_gate":
            self.threshold = None

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Fit next epoch's τ on the gathered losses (rank 0, broadcast), write the epoch record, log the gate."""
        state = self.sample_state
        loss = state["loss"].cpu().numpy()
        seen = np.isfinite(loss)
        reliable = state["reliable"].cpu().numpy() & seen
        corrected = (state["corrected_label"].cpu().numpy() >= 0) & seen
        tau_used = self.threshold if self.gate_on else None
        next_tau, gmm = self._fit_next(loss[seen])
        if self.artifact_dir is not None:
            write_record(self.artifact_dir, epoch + 1,
                         {"utt": np.array(self.utts if self.utts else [str(i) for i in range(len(loss))]),
                          "loss": loss, "label": state["label"].cpu().numpy(), "reliable": reliable,
                          "corrected_label": state["corrected_label"].cpu().numpy()},
                         tau_used, next_tau, gmm)
            plot_gate_epochs(read_records(self.artifact_dir), os.path.join(self.artifact_dir, RECORD_DIR,
                                                                         "loss_gate.png"))
        n = max(1, int(seen.sum()))
        mean = (lambda m: float(loss[m].mean()) if m.any() else float("nan"))
        return {"gate_threshold": float("nan") if tau_used is None else tau_used,
                "gated_out": float((seen & ~reliable).sum()) / n, "corrected_share": float(corrected.sum()) / n,
                "loss_reliable": mean(reliable), "loss_gated_out": mean(seen & ~reliable)}

    def _fit_next(self, losses: np.ndarray) -> tuple[float | None, LossGmm | None]:
        """τ for the next epoch from this epoch's losses (see ``shared_threshold``), with the no-crossing rule."""
        cfg = self.cfg
        tau, gmm = shared_threshold(losses, cfg.gmm_max_points, cfg.gmm_seed, self.sample_state.device)
        if tau is None:
            kept = "keeping τ = %.4f" % self._fitted if (self._fitted is not None
                                                          and cfg.no_crossing == "keep_previous") else "no gate"
            log.info("loss gate: the GMM of epoch %d's log-losses has no crossing between its means (or is "
                     "degenerate); %s next epoch", self._epoch + 1, kept)
            if cfg.no_crossing == "no_gate":
                self._fitted = None
        else:
            self._fitted = tau
        self._gmm = gmm
        return tau, gmm

    def extra_state(self) -> dict:
        """Margin (classifier) plus τ of the running epoch and the one fitted for the next."""
        state = super().extra_state()
        state.update({"threshold": self.threshold, "fitted_threshold": self._fitted})
        return state

    def load_extra_state(self, state: dict) -> None:
        """Restore what ``extra_state`` saved."""
        super().load_extra_state(state)
        self.threshold = state.get("threshold")
        self._fitted = state.get("fitted_threshold")
