"""Process groups and collectives for ``torchrun`` (NCCL on GPU, gloo on CPU); one process needs no process group.

Every collective here is the identity in a single process, so methods and the trainer call them unconditionally.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether collectives are needed (more than one process)."""
        return self.world_size > 1


def init_distributed(use_cuda: bool) -> DistEnv:
    """Read torchrun's environment; start a process group only when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if use_cuda:
        torch.cuda.set_device(env.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return env


def cleanup_distributed() -> None:
    """Tear the process group down (no-op in one process)."""
    if is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    """Whether a process group is running."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of DDP processes (1 when no process group is initialised)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's DDP rank (0 when no process group is initialised)."""
    return dist.get_rank() if is_initialized() else 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks in place and return it (no-op in one process)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_sizes(n: int, device: torch.device) -> list[int]:
    """Every rank's ``n`` (batch sizes may differ on the last batch)."""
    if world_size() == 1:
        return [n]
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def all_gather_cat(t: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Concatenate ``t`` (no grad) along dim 0 over ranks in rank order; batch sizes may differ. Returns sizes too."""
    sizes = all_gather_sizes(t.shape[0], t.device)
    if len(sizes) == 1:
        return t, sizes
    biggest = max(sizes)
    if biggest == 0:  # nothing anywhere (some backends refuse empty collectives)
        return t, sizes
    padded = t.new_zeros((biggest,) + tuple(t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]), sizes


def all_gather_rows(index: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's ``(index, values)`` rows concatenated in rank order (per-sample state; identity in one process).

    Ranks may hold different numbers of rows; ``values`` may be bool (sent as uint8, which every backend takes).
    """
    if world_size() == 1:
        return index, values
    sent = values.to(torch.uint8) if values.dtype == torch.bool else values
    all_index, _ = all_gather_cat(index)
    all_values, _ = all_gather_cat(sent)
    return all_index, all_values.to(values.dtype)


def all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """``[t of rank 0, t of rank 1, ...]`` for same-shaped tensors (``[t]`` in one process)."""
    if world_size() == 1:
        return [t]
    parts = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return parts


def all_gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` for picklable objects (``[obj]`` in one process)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Broadcast ``t`` from ``src`` in place (no-op in one process)."""
    if world_size() > 1:
        dist.broadcast(t, src)
    return t


def average_(t: torch.Tensor) -> torch.Tensor:
    """Replace ``t`` by its mean over ranks in place (floating point; no-op in one process)."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world_size())
    return t


def barrier() -> None:
    """Wait for every process (no-op in one process)."""
    if world_size() > 1:
        dist.barrier()
