"""Supervised (or pseudo-label) speaker classifier: encoder + AAM-softmax on the training data dir's utt2spk.

The labels may be true speakers or cluster ids (seam 1); this method never knows which. Options: margin warm-up,
and Hyperion's two-step fine-tuning (``frozen_backbone_epochs``: head + embedding layer first, backbone frozen).
An encoder that names its parts (``Encoder.param_groups``, e.g. ssl_mhfa's SSL layers and back-end) sets their lr
scales instead of the backbone / embedding-layer split, and its ``regularize`` (L2-SP) is applied to the loss.
"""
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from wesv.data.datasets import build_labelled_dataset
from wesv.errors import WesvError
from wesv.trainer.method import DataInfo, Method, register_method
from wesv.trainer.sample_state import Column


@dataclass
class ClassifierConfig:
    """The ``method:`` section of ``type: classifier``."""

    loss: Literal["aam", "softmax"] = "aam"
    scale: float = 30.0
    margin: float = 0.2
    easy_margin: bool = False
    # Margin warm-up (WeSpeaker's): 0 before margin_increase_start_epoch, `margin` from margin_fix_start_epoch.
    margin_increase_start_epoch: float = 0.0
    margin_fix_start_epoch: float = 0.0
    margin_increase_type: Literal["linear", "exp"] = "linear"
    frozen_backbone_epochs: int = 0  # two-step fine-tuning: train only the head + embedding layer first
    backbone_lr_scale: float = 1.0  # lr multiplier of the backbone (everything but the embedding layer and head)
    embedding_prefixes: Optional[list[str]] = None  # encoder params of the "embedding layer"; null = auto-detect
    # (both unused with an encoder that names its own parts: its ``backbone`` parts are the backbone then)

    def __post_init__(self) -> None:
        if self.margin < 0 or self.scale <= 0:
            raise ValueError(f"need margin >= 0 and scale > 0 (got {self.margin}, {self.scale})")
        if self.margin_fix_start_epoch < self.margin_increase_start_epoch:
            raise ValueError("margin_fix_start_epoch must be >= margin_increase_start_epoch")
        if self.frozen_backbone_epochs < 0 or self.backbone_lr_scale < 0:
            raise ValueError("frozen_backbone_epochs and backbone_lr_scale must be >= 0")


def embedding_layer_names(encoder: nn.Module, prefixes: list[str] | None = None) -> list[str]:
    """Names of the encoder parameters forming its embedding layer: the last Linear (or 1×1 conv) and what follows."""
    names = [n for n, _ in encoder.named_parameters()]
    if prefixes:
        chosen = [n for n in names if any(n == p or n.startswith(p.rstrip(".") + ".") for p in prefixes)]
        if not chosen:
            raise WesvError(f"method.embedding_prefixes {prefixes} match no encoder parameter; "
                            f"encoder parameters start with: {sorted({n.split('.')[0] for n in names})}")
        return chosen
    last = None
    for mod_name, mod in encoder.named_modules():
        if isinstance(mod, nn.Linear) or (isinstance(mod, nn.Conv1d) and mod.kernel_size == (1,)):
            if any(True for _ in mod.parameters(recurse=False)):
                last = mod_name
    if last is None:
        raise WesvError("cannot find the encoder's embedding layer (no Linear layer); set method.embedding_prefixes")
    first = next(i for i, n in enumerate(names) if n.startswith(last + "."))
    return names[first:]


@register_method("classifier", config=ClassifierConfig)
class Classifier(Method):
    """Encoder + (AAM-)softmax over the classes of the data dir's utt2spk."""

    uses_labels = True
    #: Subclasses that need the unaugmented crop (DLG-LC label correction) set this.
    needs_clean = False

    def __init__(self, cfg: ClassifierConfig, encoder: nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        from wesv.losses import AAMSoftmax, Softmax

        if data_info.num_classes < 2:
            raise WesvError(f"the training utt2spk has {data_info.num_classes} label(s); a classifier needs >= 2")
        if cfg.loss == "aam":
            self.head = AAMSoftmax(encoder.embed_dim, data_info.num_classes, scale=cfg.scale, margin=cfg.margin,
                                   easy_margin=cfg.easy_margin)
        else:
            self.head = Softmax(encoder.embed_dim, data_info.num_classes)
        # An encoder naming its own parts (SSL layers, back-end) sets their lr scales; others get the
        # backbone / embedding-layer split.
        parts = encoder.param_groups() if hasattr(encoder, "param_groups") else None
        self._encoder_groups = [dict(g) for g in parts] if parts is not None else None
        if self._encoder_groups is not None:
            self._backbone = [p for g in self._encoder_groups if g.get("backbone") for p in g["params"]]
            self._embedding = []
        else:
            emb = set(embedding_layer_names(encoder, cfg.embedding_prefixes))
            self._backbone = [p for n, p in encoder.named_parameters() if n not in emb]
            self._embedding = [p for n, p in encoder.named_parameters() if n in emb]
        self._num_epochs = 1
        self._set_margin(0)

    @classmethod
    def build_dataset(cls, cfg: ClassifierConfig, data_cfg: Any, augmenter: Callable | None, seed: int) -> Dataset:
        """Random fixed-length labelled crops of ``data_cfg.train``."""
        return build_labelled_dataset(data_cfg, augmenter, seed, return_clean=cls.needs_clean)

    def margin_at(self, epoch: float) -> float:
        """The AAM margin at a (fractional) epoch under the warm-up settings."""
        from wesv.losses import margin_schedule

        cfg = self.cfg
        return margin_schedule(epoch, cfg.margin, cfg.margin_increase_start_epoch, cfg.margin_fix_start_epoch,
                               increase_type=cfg.margin_increase_type)

    def _set_margin(self, epoch: float) -> None:
        if hasattr(self.head, "margin"):
            self.head.margin = self.margin_at(epoch)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Embed the crops and score them against the class weights; logs accuracy (and the margin)."""
        emb = self.encoder(batch["wave"])
        with torch.autocast(emb.device.type, enabled=False):  # the margin softmax in float32, also under AMP
            losses, logits = self.head(emb.float(), batch["label"], reduction="none")
        self.sample_state.update("loss", batch["index"], losses.detach())
        loss = losses.mean()
        acc = (logits.detach().argmax(dim=-1) == batch["label"]).float().mean()
        logs = {"acc": acc}
        if hasattr(self.head, "margin"):
            logs["margin"] = float(self.head.margin)
        return self.regularized(loss, logs)

    def regularized(self, loss: torch.Tensor, logs: dict) -> tuple[torch.Tensor, dict]:
        """The task loss with the encoder's own penalty (L2-SP of an SSL encoder) added; subclasses call it too."""
        if not hasattr(self.encoder, "regularize"):
            return loss, logs
        loss, extra = self.encoder.regularize(loss)
        return loss, {**logs, **extra}

    def sample_columns(self) -> list[Column]:
        """Each utterance's loss in the current epoch (NaN until seen): what a loss gate (DLG-LC) reads."""
        return [Column("loss", torch.float32, float("nan"), per_epoch=True)]

    def param_groups(self) -> list[dict]:
        """Backbone (at ``backbone_lr_scale``) and head (embedding layer + classifier) — frozen ones included.

        With an encoder that names its parts, those groups come first (``backbone`` parts × ``backbone_lr_scale``),
        then the classifier head at lr scale 1.
        """
        if self._encoder_groups is not None:
            groups = [{"name": g["name"], "params": g["params"], "lr_scale": float(g.get("lr_scale", 1.0)) *
                       (self.cfg.backbone_lr_scale if g.get("backbone") else 1.0)} for g in self._encoder_groups]
            return groups + [{"name": "head", "params": list(self.head.parameters()), "lr_scale": 1.0}]
        head = self._embedding + list(self.head.parameters())
        groups = [{"name": "head", "params": head, "lr_scale": 1.0}]
        if self._backbone:
            groups.append({"name": "backbone", "params": self._backbone, "lr_scale": self.cfg.backbone_lr_scale})
        return groups

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Freeze the backbone during the first ``frozen_backbone_epochs`` epochs."""
        self._num_epochs = num_epochs
        frozen = epoch < self.cfg.frozen_backbone_epochs
        for p in self._backbone:
            p.requires_grad_(not frozen)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Margin warm-up follows the step (fractional epochs)."""
        self._set_margin((step + 1) / max(1, total_steps) * self._num_epochs)

    def extra_state(self) -> dict:
        """The current margin (a plain attribute of the loss)."""
        return {"margin": getattr(self.head, "margin", None), "num_epochs": self._num_epochs}

    def load_extra_state(self, state: dict) -> None:
        """Restore the margin saved by ``extra_state``."""
        self._num_epochs = state.get("num_epochs", self._num_epochs)
        if state.get("margin") is not None and hasattr(self.head, "margin"):
            self.head.margin = state["margin"]
