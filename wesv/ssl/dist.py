"""The collectives DINO and MoCo need, written so that one process without a process group works unchanged."""
import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of DDP processes (1 when no process group is initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's DDP rank (0 when no process group is initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


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
    padded = t.new_zeros((biggest,) + tuple(t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]), sizes


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Broadcast ``t`` from ``src`` in place (no-op in one process)."""
    if world_size() > 1:
        dist.broadcast(t, src)
    return t
