"""The base class every training method (supervised, DINO, MoCo, ...) implements, and its registry."""
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from wesv.registry import Registry
from wesv.trainer.sample_state import Column, SampleState

METHODS: Registry = Registry("method")


def register_method(name: str, config: type | None = None) -> Callable:
    """Class decorator: ``@register_method("dino", config=DinoConfig)``; the config's ``type:`` selects it."""
    return METHODS.register(name, config=config)


#: Packages whose modules register methods; imported on first look-up of an unknown name.
METHOD_PACKAGES = ("wesv.methods",)


def find_method(name: str) -> Any:
    """Registry entry of a method, importing the packages that define methods when needed."""
    import wesv.methods  # noqa: F401  (registers the supervised methods)

    if name not in METHODS:
        for pkg_name in METHOD_PACKAGES:
            pkg = importlib.import_module(pkg_name)
            for mod in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
                importlib.import_module(mod.name)
    return METHODS.get(name)


@dataclass
class DataInfo:
    """What a method may know about its training data when it is built (never true labels for SSL methods)."""

    num_samples: int
    num_classes: int = 0  # speakers or clusters in the training data dir's utt2spk; 0 when labels are not used
    utts: list[str] | None = None  # utterance ids in dataset index order, for methods that write per-sample files
    stream_dims: dict[str, int] | None = None  # frame dimension of each feature stream (multi-modal methods)


class Method(nn.Module):
    """A training method: owns its networks and loss; the one trainer owns devices, DDP, optimiser, checkpoints.

    ``forward(batch)`` is the training step and returns ``(loss, logs)``: the trainer wraps the method in DDP, so
    the step must go through ``forward``.
    """

    #: Whether the method reads the data dir's utt2spk (SSL methods must not).
    uses_labels: bool = False
    #: Where the method may write its own per-epoch files (the exp dir on rank 0, None elsewhere); set by the trainer.
    artifact_dir: str | None = None

    def __init__(self, cfg: Any, encoder: nn.Module, data_info: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.data_info = data_info
        #: Per-sample table (seam 9), one row per training utterance; not a buffer. The trainer moves it to the
        #: training device, syncs it across ranks and checkpoints it. ``sample_columns`` may read only ``cfg`` and
        #: ``data_info`` (it runs here, before a subclass's ``__init__`` body).
        self.sample_state = SampleState(data_info.num_samples, self.sample_columns())

    @classmethod
    def build_dataset(cls, cfg: Any, data_cfg: Any, augmenter: Callable | None, seed: int) -> Dataset:
        """Return the training dataset: the method decides what one sample is (a labelled crop, a set of views)."""
        raise NotImplementedError

    @classmethod
    def data_info(cls, cfg: Any, dataset: Dataset) -> DataInfo:
        """Describe the dataset to the method's constructor (number of samples, number of classes)."""
        return DataInfo(num_samples=len(dataset), num_classes=int(getattr(dataset, "num_classes", 0)))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """One training step on a batch: return the scalar loss and a dict of numbers to log."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Parameter groups as ``{"name", "params", "lr_scale"}``; the trainer splits off 1-D params (no decay)."""
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad], "lr_scale": 1.0}]

    def sample_columns(self) -> list[Column]:
        """Columns of the per-sample table ``self.sample_state`` (none by default)."""
        return []

    def synced_buffers(self) -> dict[str, str]:
        """Buffers kept identical across ranks: ``{buffer or module name: "mean" | "broadcast"}`` (see buffers.py).

        DDP does not broadcast buffers; the trainer syncs these before ``on_epoch_end`` and before each checkpoint.
        Default: the encoder's BatchNorm statistics, averaged.
        """
        return {"encoder": "mean"}

    def attach_run(self, dataset: Dataset, exp_dir: str) -> None:
        """Called on every rank once the method is on its device, before a resume restores it: the training
        dataset and the exp dir, for methods that steer their data during the run (C-DINO's cluster refresh)."""

    def on_fresh_start(self) -> None:
        """Called once when a run starts from scratch (never on resume), after ``attach_run``: the place to
        initialise from another run's state (C-DINO's ``method.continue_from``)."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Called before each epoch (0-based)."""

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """Called after each epoch with ``sample_state`` gathered from every rank (identical everywhere) and the
        synced buffers synced; returned numbers go into the epoch's log line and metrics file."""
        return {}

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step (EMA teachers, schedules that follow the step)."""

    def export_encoder(self) -> nn.Module:
        """The network whose embeddings are extracted after training (DINO: the teacher backbone)."""
        return self.encoder

    def extra_state(self) -> dict:
        """Method state that is not a parameter or buffer (per-sample losses, ...), saved in checkpoints."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what ``extra_state`` returned."""
