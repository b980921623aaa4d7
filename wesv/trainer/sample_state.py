"""Per-sample state (design seam 9): a table with one row per training utterance, indexed by ``batch["index"]``.

A method declares its columns (``Method.sample_columns()``) and writes rows during the epoch with
``method.sample_state.update(name, batch["index"], values)``. Each rank only writes the rows of the samples it saw;
``sync()`` (called by the trainer before ``on_epoch_end`` and before every checkpoint) merges the rows written
since the last sync from every rank by index, so that every rank then holds the same full table. The table is
saved in checkpoints and restored on resume, also inside an epoch. It is not an ``nn.Module`` buffer: DDP never
sees it.
"""
from dataclasses import dataclass
from typing import Sequence

import torch

from wesv import distributed as dist
from wesv.errors import WesvError


@dataclass(frozen=True)
class Column:
    """One column: its name, dtype and fill value; ``per_epoch`` columns are reset to ``fill`` as an epoch starts."""

    name: str
    dtype: torch.dtype = torch.float32
    fill: float | int | bool = 0
    per_epoch: bool = False  # e.g. the epoch's per-sample loss; False for state kept across epochs (labels, gates)


def last_occurrence(index: torch.Tensor) -> torch.Tensor:
    """Mask of the entries of ``index`` that are the last to name their row (later writes win, deterministically).

    A stable sort of the indices only (no table-sized scratch, no host sync): cheap enough for every step.
    """
    ordered, order = torch.sort(index, stable=True)
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    mask = torch.zeros_like(last)
    mask[order[last]] = True
    return mask


class SampleState:
    """Named columns of ``num_samples`` rows on one device; ``update`` during the epoch, ``sync`` across ranks."""

    def __init__(self, num_samples: int, columns: Sequence[Column] = (), device: torch.device | str = "cpu"):
        self.num_samples = int(num_samples)
        self.specs: dict[str, Column] = {}
        for col in columns:
            if col.name in self.specs:
                raise ValueError(f"sample state column {col.name!r} declared twice")
            self.specs[col.name] = col
        self.device = torch.device(device)
        self.columns = {n: torch.full((self.num_samples,), c.fill, dtype=c.dtype, device=self.device)
                        for n, c in self.specs.items()}
        # Rows this rank wrote since the last sync: only those travel in ``sync``.
        self.touched = {n: torch.zeros(self.num_samples, dtype=torch.bool, device=self.device) for n in self.specs}

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> torch.Tensor:
        """The whole column (read-only by convention: write through ``update``)."""
        return self.columns[name]

    def to(self, device: torch.device | str) -> "SampleState":
        """Move the table to ``device`` (the training device: updates then need no host sync)."""
        self.device = torch.device(device)
        self.columns = {n: c.to(self.device) for n, c in self.columns.items()}
        self.touched = {n: t.to(self.device) for n, t in self.touched.items()}
        return self

    def update(self, name: str, index: torch.Tensor, values: torch.Tensor | float | int) -> None:
        """Write ``values`` (one per entry of ``index``, or a scalar) into rows ``index`` of column ``name``."""
        col = self.columns[name]
        index = torch.as_tensor(index, device=self.device).long().reshape(-1)
        values = torch.as_tensor(values).detach().to(self.device, col.dtype)
        values = values.expand(index.shape) if values.dim() == 0 else values.reshape(-1)
        if values.shape != index.shape:
            raise ValueError(f"sample state {name!r}: {values.numel()} values for {index.numel()} indices")
        keep = last_occurrence(index)
        col[index[keep]] = values[keep]
        self.touched[name][index] = True

    def start_epoch(self) -> None:
        """Reset the ``per_epoch`` columns to their fill (the trainer calls this at a fresh epoch, not on resume)."""
        for name, spec in self.specs.items():
            if spec.per_epoch:
                self.columns[name].fill_(spec.fill)
                self.touched[name].zero_()

    def sync(self) -> None:
        """Merge every rank's rows written since the last sync (by index; a higher rank wins a tie); a collective."""
        for name, col in self.columns.items():
            touched = self.touched[name]
            index = touched.nonzero().reshape(-1)
            if dist.world_size() > 1:
                index, values = dist.all_gather_rows(index, col[index])
                keep = last_occurrence(index)
                col[index[keep]] = values[keep]
            touched.zero_()

    def state_dict(self) -> dict:
        """The table on the CPU (call ``sync`` first so it holds every rank's rows)."""
        return {"num_samples": self.num_samples, "columns": {n: c.cpu() for n, c in self.columns.items()}}

    def load_state_dict(self, state: dict, source: str = "checkpoint") -> None:
        """Restore a saved table; columns the checkpoint lacks keep their fill, others it holds are dropped."""
        if not state:
            return
        if int(state["num_samples"]) != self.num_samples:
            raise WesvError(f"{source}: its per-sample state has {state['num_samples']} rows but the training data "
                            f"has {self.num_samples} utterances; resume with the data dir the run was started on")
        for name, values in state["columns"].items():
            if name in self.columns:
                self.columns[name].copy_(values.to(self.device, self.columns[name].dtype))
        for t in self.touched.values():
            t.zero_()
