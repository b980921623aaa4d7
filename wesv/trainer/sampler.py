"""Deterministic, resumable sampling: the order comes from ``(seed, epoch)``; items carry their epoch to workers."""
import random
import signal
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


class EpochSampler(DistributedSampler):
    """A DistributedSampler (also for one process) that yields ``(epoch, index)`` and can skip a resumed prefix."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's permutation; ``skip`` drops its first items (those a resumed run already trained on)."""
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in list(super().__iter__())[self.skip:]:
            yield self.epoch, index

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


class EpochIndexed(Dataset):
    """Feeds ``(epoch, index)`` items to a dataset with ``set_epoch``: persistent workers see each new epoch."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        epoch, index = item
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


#: Seconds a DataLoader worker lives on after a SIGTERM: the main process needs it to finish its step and save.
WORKER_GRACE_S = 60


def _grace_then_exit(signum: int, frame) -> None:
    signal.alarm(WORKER_GRACE_S)  # SIGALRM's default action ends the worker


def worker_init_fn(worker_id: int) -> None:
    """DataLoader workers: leave Ctrl-C to the main process and outlive a SIGTERM briefly; seed global RNGs.

    A scheduler's SIGTERM reaches every process of a job; a worker dying at once would make torch raise in the
    main process before it could save. A worker still ends (after the grace) when nobody shuts it down.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _grace_then_exit)
    # One thread per worker (torch, and the BLAS under numpy/scipy augmentation): the cores are the trainer's.
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
