"""Multi-modal DLG-LC: branches of several input streams trained on the same pseudo-labels, gated and corrected
together (seed 001's extension; no formulation of it is public, this is wesv's).

A branch is an encoder of one stream with its own AAM head over the same pseudo-labels: the audio encoder on the
waveform, and per feature stream of the data dir (``face.scp``: frames × D face embeddings) a sequence encoder
(``sequence_tdnn`` by default) on the frames under the audio crop. Per sample:

- **gate** (``gate_mode``): ``mean`` — one GMM τ on the mean of the branches' losses the sample has (the sum when
  every branch is there, divided so that samples missing a stream are on the same scale); ``all`` — a τ per branch
  on its own losses, reliable only when every branch the sample has passes its own gate;
- **correction**: from the mean of the branches' clean-input probabilities (``softmax(W x / T)`` per branch),
  optionally only when every branch the sample has predicts the same class (``correction_agree``);
- samples missing a stream fall back to the branches they have (a branch sees only its present samples).

Verification is scored on audio alone: ``export_encoder`` is the audio encoder; each stream's encoder is written
beside it (``branch_NAME.pt``) so its embeddings can be extracted for fused clustering.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from wesv.data.datasets import build_labelled_dataset
from wesv.log import get_logger
from wesv.methods.dlg_lc import DlgLc, DlgLcConfig, combine_losses, shared_threshold
from wesv.trainer.method import DataInfo, register_method
from wesv.trainer.sample_state import Column

log = get_logger("wesv.methods.dlg_lc_mm")


@dataclass
class MultiModalDlgLcConfig(DlgLcConfig):
    """The ``method:`` section of ``type: dlg_lc_mm``: DLG-LC's keys plus the streams and how branches combine."""

    streams: list[str] = field(default_factory=lambda: ["face"])  # NAME.scp of each stream branch
    stream_dir: str | None = None  # the data dir holding NAME.scp and stream_info.json (default: data.train)
    stream_encoder: dict[str, Any] = field(default_factory=lambda: {"name": "sequence_tdnn"})
    stream_loss_weight: float = 1.0  # weight of each stream branch's loss against the audio branch's
    gate_mode: Literal["mean", "all"] = "mean"
    correction_agree: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.streams:
            raise ValueError("streams must name at least one stream (else use type: dlg_lc)")
        if "name" not in self.stream_encoder:
            raise ValueError("stream_encoder needs a name (e.g. sequence_tdnn) and that encoder's settings")


@register_method("dlg_lc_mm", config=MultiModalDlgLcConfig)
class MultiModalDlgLc(DlgLc):
    """DLG-LC over an audio branch and one branch per feature stream."""

    def __init__(self, cfg: MultiModalDlgLcConfig, encoder: nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        from wesv.losses import AAMSoftmax
        from wesv.models import build_encoder

        self.stream_encoders = nn.ModuleDict()
        self.stream_heads = nn.ModuleDict()
        spec = dict(cfg.stream_encoder)
        name = spec.pop("name")
        for stream in cfg.streams:
            dims = data_info.stream_dims or {}
            settings = {"input_dim": dims[stream], **spec} if stream in dims else spec
            enc = build_encoder(name, settings)
            self.stream_encoders[stream] = enc
            self.stream_heads[stream] = AAMSoftmax(enc.embed_dim, data_info.num_classes, scale=cfg.scale,
                                                   margin=cfg.margin, easy_margin=cfg.easy_margin)
        self.branch_thresholds: dict[str, float | None] = {b: None for b in self.branches}
        self._branch_fitted: dict[str, float | None] = {b: None for b in self.branches}

    @property
    def branches(self) -> list[str]:
        """Branch names: ``audio`` then the streams."""
        return ["audio", *self.cfg.streams]

    @classmethod
    def build_dataset(cls, cfg: MultiModalDlgLcConfig, data_cfg: Any, augmenter, seed: int) -> Dataset:
        """Labelled crops, their clean version, and the frames of every stream under each crop."""
        return build_labelled_dataset(data_cfg, augmenter, seed, return_clean=True, streams=cfg.streams,
                                      stream_dir=cfg.stream_dir)

    @classmethod
    def data_info(cls, cfg: MultiModalDlgLcConfig, dataset: Dataset) -> DataInfo:
        """DLG-LC's, plus each stream's frame dimension."""
        info = super().data_info(cfg, dataset)
        info.stream_dims = dict(dataset.stream_dims)
        return info

    def sample_columns(self) -> list[Column]:
        """DLG-LC's columns (``loss`` is the gate's loss) plus each branch's own loss."""
        return super().sample_columns() + [Column(f"loss_{b}", torch.float32, float("nan"), per_epoch=True)
                                           for b in self.branches]

    def synced_buffers(self) -> dict[str, str]:
        """The audio encoder's and the stream encoders' BatchNorm statistics, averaged over ranks."""
        return {**super().synced_buffers(), "stream_encoders": "mean"}

    def param_groups(self) -> list[dict]:
        """The classifier's groups plus the stream branches (encoder and head) at the head's learning rate."""
        groups = super().param_groups()
        extra = list(self.stream_encoders.parameters()) + list(self.stream_heads.parameters())
        return groups + [{"name": "streams", "params": extra, "lr_scale": 1.0}]

    # ---- the step ------------------------------------------------------------------------------------------
    def _branch_scores(self, branch: str, x: torch.Tensor, head: nn.Module) -> torch.Tensor:
        """Class scores of a branch's inputs for label correction: no gradient, BatchNorm in eval mode."""
        encoder = self.encoder if branch == "audio" else self.stream_encoders[branch]
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.no_grad():
                emb = encoder(x).float()
        finally:
            encoder.train(was_training)
        if self.cfg.correction_scores == "cosine":
            return head.cosine(emb)
        return F.linear(emb, head.weight.float())

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Each branch's per-sample loss; the combined gate; correction from the fused clean predictions."""
        cfg = self.cfg
        y, index = batch["label"], batch["index"]
        b = len(y)
        inputs = {"audio": (batch["wave"], batch.get("clean"), torch.ones(b, dtype=torch.bool, device=y.device))}
        for s in cfg.streams:
            mask = batch[f"stream_{s}_mask"].to(y.device)
            inputs[s] = (batch[f"stream_{s}"], batch[f"stream_{s}"], mask)
        embs, losses, present = {}, {}, {}
        with torch.autocast(y.device.type, enabled=False):
            for branch, (x, _, mask) in inputs.items():
                if int(mask.sum()) < 2:  # BatchNorm needs two samples; the others fall back to their branches
                    mask = torch.zeros_like(mask)
                    present[branch] = mask
                    continue
                encoder = self.encoder if branch == "audio" else self.stream_encoders[branch]
                head = self.head if branch == "audio" else self.stream_heads[branch]
                emb = encoder(x[mask]).float()
                loss_b, _ = head(emb, y[mask], reduction="none")
                full = torch.full((b,), float("nan"), device=y.device)
                full[mask] = loss_b.detach()
                embs[branch], losses[branch], present[branch] = emb, (loss_b, full), mask
            stacked = torch.stack([losses[br][1] for br in losses])  # (branches, B), NaN where missing
            gate_loss = torch.nanmean(stacked, dim=0)
            reliable = self._reliable(gate_loss, {br: losses[br][1] for br in losses})
            corrected = torch.zeros_like(reliable)
            pred = torch.full_like(y, -1)
            if self.correcting:
                probs = torch.zeros(b, self.head.weight.shape[0], device=y.device)
                votes = []
                for branch in losses:
                    x_clean, mask = inputs[branch][1], present[branch]
                    head = self.head if branch == "audio" else self.stream_heads[branch]
                    p = F.softmax(self._branch_scores(branch, x_clean[mask], head)
                                  / cfg.correction_temperature, dim=-1)
                    probs[mask] += p
                    vote = torch.full_like(y, -1)
                    vote[mask] = p.argmax(dim=-1)
                    votes.append(vote)
                count = torch.stack([present[br] for br in losses]).sum(0).clamp_min(1)
                probs = probs / count[:, None]
                confidence, pred = probs.max(dim=-1)
                agree = torch.ones_like(reliable)
                if cfg.correction_agree:
                    for vote in votes:
                        agree &= (vote < 0) | (vote == pred)
                corrected = ~reliable & (confidence > cfg.correction_threshold) & agree
            total = torch.zeros((), device=y.device)
            for branch, (loss_b, _) in losses.items():
                mask = present[branch]
                head = self.head if branch == "audio" else self.stream_heads[branch]
                loss_hat = cor = None
                if self.correcting:
                    margin_at = pred[mask] if cfg.correction_margin == "corrected" else y[mask]
                    loss_hat, _ = head(embs[branch], pred[mask], margin_target=margin_at, reduction="none")
                    cor = corrected[mask]
                weight = 1.0 if branch == "audio" else cfg.stream_loss_weight
                total = total + weight * combine_losses(loss_b, reliable[mask], loss_hat, cor, cfg.loss_normalisation)
        state = self.sample_state
        state.update("loss", index, gate_loss)
        for branch in self.branches:
            if branch in losses:
                state.update(f"loss_{branch}", index, losses[branch][1])
        state.update("label", index, y)
        state.update("reliable", index, reliable)
        y_hat = torch.where(corrected, pred, torch.full_like(y, -1))
        state.update("corrected_label", index, y_hat)
        logs = {"gated_out": (~reliable).float().mean(), "corrected": corrected.float().mean()}
        for s in cfg.streams:
            logs[f"{s}_present"] = present[s].float().mean()
        return total, logs

    def _reliable(self, gate_loss: torch.Tensor, branch_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The gate of each sample: on the mean loss, or every present branch under its own τ."""
        reliable = torch.ones_like(gate_loss, dtype=torch.bool)
        if not self.gate_on:
            return reliable
        if self.cfg.gate_mode == "mean":
            if self.threshold is not None:
                reliable = torch.log(gate_loss.clamp_min(1e-30)) <= self.threshold
            return reliable
        for branch, full in branch_losses.items():
            tau = self.branch_thresholds.get(branch)
            if tau is not None:
                passed = torch.log(full.clamp_min(1e-30)) <= tau
                reliable &= passed | torch.isnan(full)
        return reliable

    # ---- the epoch -----------------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """DLG-LC's schedule; with ``gate_mode: all`` each branch gates with its own fitted τ."""
        super().on_epoch_start(epoch, num_epochs)
        if self.gate_on:
            for branch, tau in self._branch_fitted.items():
                if tau is not None or self.cfg.no_crossing == "no_gate":
                    self.branch_thresholds[branch] = tau

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """DLG-LC's epoch end (τ of the mean loss, the record), plus per-branch τ and losses."""
        out = super().on_epoch_end(epoch)
        state = self.sample_state
        for branch in self.branches:
            values = state[f"loss_{branch}"].cpu().numpy()
            seen = np.isfinite(values)
            out[f"loss_{branch}"] = float(values[seen].mean()) if seen.any() else float("nan")
            out[f"{branch}_share"] = float(seen.mean())
            if self.cfg.gate_mode == "all":
                tau, _ = shared_threshold(values[seen], self.cfg.gmm_max_points, self.cfg.gmm_seed, state.device)
                if tau is not None or self.cfg.no_crossing == "no_gate":
                    self._branch_fitted[branch] = tau
                out[f"gate_threshold_{branch}"] = float("nan") if tau is None else tau
        if self.artifact_dir is not None:
            self.save_branches(self.artifact_dir)
        return out

    def save_branches(self, exp_dir: str) -> list[str]:
        """Write each stream branch's encoder as ``exp_dir/branch_NAME.pt`` (loadable by ``load_encoder``)."""
        from wesv.models import save_encoder

        paths = []
        for stream, enc in self.stream_encoders.items():
            path = os.path.join(exp_dir, f"branch_{stream}.pt")
            save_encoder(path, enc)
            paths.append(path)
        return paths

    def extra_state(self) -> dict:
        """DLG-LC's state plus the per-branch thresholds."""
        state = super().extra_state()
        state.update({"branch_thresholds": dict(self.branch_thresholds), "branch_fitted": dict(self._branch_fitted)})
        return state

    def load_extra_state(self, state: dict) -> None:
        """Restore what ``extra_state`` saved."""
        super().load_extra_state(state)
        self.branch_thresholds.update(state.get("branch_thresholds", {}))
        self._branch_fitted.update(state.get("branch_fitted", {}))

