"""Buffers that must stay identical across DDP ranks, synced explicitly (DDP's per-step broadcast is off).

A method names them in ``Method.synced_buffers()`` as ``{name_or_prefix: "mean" | "broadcast"}``: a key names one
buffer or every buffer of a submodule (``"teacher_encoder"``; one without buffers names nothing). ``"mean"``
averages floating buffers over ranks (BatchNorm running statistics, which each rank estimates on its own data);
``"broadcast"`` copies rank 0's (state that every rank computes identically from all-reduced inputs, e.g. DINO's
centre or MoCo's queue: the broadcast only guards against drift). Integer buffers (``num_batches_tracked``,
pointers) are always broadcast. The trainer syncs them before ``on_epoch_end`` and before every checkpoint.
"""
from typing import Literal

import torch
from torch import nn

from wesv import distributed as dist

SyncMode = Literal["mean", "broadcast"]


def resolve_synced_buffers(module: nn.Module, spec: dict[str, SyncMode]) -> list[tuple[str, torch.Tensor, str]]:
    """``(name, buffer, mode)`` for every buffer that a key of ``spec`` names; a key naming nothing is an error."""
    buffers = dict(module.named_buffers())
    modules = dict(module.named_modules())
    chosen: dict[str, str] = {}
    for key, mode in spec.items():
        if mode not in ("mean", "broadcast"):
            raise ValueError(f"synced buffer {key!r}: mode must be 'mean' or 'broadcast', got {mode!r}")
        names = [n for n in buffers if not key or n == key or n.startswith(key + ".")]
        if not names and key not in modules:  # a module without buffers (a head without BN) is fine
            raise ValueError(f"synced_buffers() names {key!r}, which is no buffer or submodule of the method")
        for n in names:
            chosen[n] = mode
    return [(n, buffers[n], chosen[n]) for n in buffers if n in chosen]


@torch.no_grad()
def sync_buffers_(items: list[tuple[str, torch.Tensor, str]]) -> None:
    """Make the buffers identical on every rank: average (floating, ``mean``) or rank 0's copy (a collective)."""
    if dist.world_size() == 1:
        return
    for _, buf, mode in items:
        if mode == "mean" and buf.is_floating_point():
            dist.average_(buf)
        else:
            dist.broadcast_(buf, src=0)
