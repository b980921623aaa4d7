"""What a run uses: torch's CPU thread count (``trainer.num_threads``) and parameter counts for the log."""
import os

import torch
from torch import nn


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota when one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def auto_num_threads(num_workers: int, cores: int | None = None, local_processes: int | None = None) -> int:
    """Threads for one training process: its share of the node's cores (at least 1).

    torch's default (one thread per core) ignores the other DDP processes of the node. The loader workers are
    not subtracted: they run single-threaded (``worker_init_fn``) and mostly wait, and on the idle 2-core box the
    mini supervised config with 2 workers ran 226 samples/s with 2 threads against 170 with 1 (bench/RESULTS.md).
    ``num_workers`` is kept for callers that want to subtract them by hand (``trainer.num_threads``).
    """
    cores = available_cores() if cores is None else cores
    if local_processes is None:
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, cores // max(1, local_processes))


def set_torch_threads(num_threads: int, num_workers: int) -> int:
    """``torch.set_num_threads`` to ``num_threads`` (0 = ``auto_num_threads``); returns the count set."""
    threads = num_threads if num_threads > 0 else auto_num_threads(num_workers)
    torch.set_num_threads(threads)
    return threads


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
