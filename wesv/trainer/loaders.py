"""The trainer's data loader: an index sampler over a map-style dataset, or a stream of ``data.shards``.

Both give the same batches (the dataset's ``collate_fn`` of its ``make_sample`` dicts) and the same
``set_epoch(epoch, skip)`` handle. The shard stream's order comes from ``(seed, epoch, rank, data.num_workers)``:
a run resumed inside an epoch reads the epoch again from its start and drops the samples already trained on
(they are decoded, not trained: exact, at the cost of reading them), so it must keep the process count and
``data.num_workers`` of the run it resumes; otherwise the resume is refused.
"""
import math
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from wesv.errors import WesvError
from wesv.log import get_logger
from wesv.trainer.sampler import EpochIndexed, EpochSampler, worker_init_fn

log = get_logger("wesv.trainer")


def _as_is(sample: dict) -> dict:
    return sample  # samples stay numpy until the dataset's collate_fn (DataLoader would make tensors of them)


def _pin(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {k: _pin(v) for k, v in batch.items()}
    if isinstance(batch, list) and batch and isinstance(batch[0], torch.Tensor):
        return [_pin(v) for v in batch]
    return batch


class ShardBatches:
    """Batches of a ``ShardStream``: workers yield samples, this process collates ``batch_size`` of them in
    stream order (a worker's share may end anywhere, so batching per worker would leave a partial batch each)."""

    def __init__(self, stream: Any, loader: DataLoader, batch_size: int, drop_last: bool, collate_fn: Any,
                 pin: bool = False):
        self.stream, self.loader = stream, loader
        self.batch_size, self.drop_last, self.collate_fn, self.pin = batch_size, drop_last, collate_fn, pin
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch (it reaches the workers); ``skip`` drops the stream's first samples (already trained)."""
        self.stream.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[dict]:
        samples, skip = [], self.skip
        for sample in self.loader:
            if skip:
                skip -= 1
                continue
            samples.append(sample)
            if len(samples) == self.batch_size:
                yield self._collate(samples)
                samples = []
        if samples and not self.drop_last:
            yield self._collate(samples)

    def _collate(self, samples: list[dict]) -> dict:
        batch = self.collate_fn(samples)
        return _pin(batch) if self.pin else batch


def check_shard_resume(ckpt: dict, num_workers: int, world_size: int, where_: str) -> None:
    """Refuse a resume inside an epoch of a shard run whose stream order would differ (see the module doc)."""
    if not ckpt.get("batch_in_epoch"):
        return
    saved_workers = (ckpt.get("config") or {}).get("data", {}).get("num_workers", num_workers)
    saved_world = len(ckpt.get("rng") or []) or world_size
    if saved_workers != num_workers or saved_world != world_size:
        raise WesvError(f"{where_}: this run reads data.shards and stopped inside epoch {ckpt['epoch'] + 1}, with "
                        f"{saved_world} process(es) and data.num_workers {saved_workers} (now {world_size} and "
                        f"{num_workers}): the shard stream's order depends on both; resume with the old values "
                        "(or from an epoch checkpoint)")


def build_loader(cfg: Any, dataset: Any, env: Any, device: torch.device, ckpt: dict | None = None,
                 where_: str = "") -> tuple[Any, Any, int]:
    """``(epoch handle with set_epoch(epoch, skip), batches, full steps per epoch)`` for ``cfg.data``."""
    d = cfg.data
    workers = d.num_workers
    common = dict(num_workers=workers, worker_init_fn=worker_init_fn,
                  persistent_workers=d.persistent_workers and workers > 0,
                  generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global torch RNG untouched
    pin = d.pin_memory and device.type == "cuda"
    if not d.shards:
        sampler = EpochSampler(dataset, env.world_size, env.rank, cfg.seed)
        loader = DataLoader(EpochIndexed(dataset), batch_size=d.batch_size, sampler=sampler, drop_last=d.drop_last,
                            collate_fn=getattr(dataset, "collate_fn", None), pin_memory=pin,
                            prefetch_factor=d.prefetch_factor if workers > 0 else None, **common)
        n = len(sampler)
        return sampler, loader, n // d.batch_size if d.drop_last else math.ceil(n / d.batch_size)
    from wesv.data.shards import ShardIndex, ShardStream

    index = ShardIndex(d.shards)
    if index.sample_rate and index.sample_rate != d.sample_rate:
        raise WesvError(f"{index.list_path}: the shards hold {index.sample_rate} Hz audio but data.sample_rate is "
                        f"{d.sample_rate}; write them again with make_shards --sample-rate {d.sample_rate}")
    if ckpt is not None:
        check_shard_resume(ckpt, workers, env.world_size, where_)
    stream = ShardStream(index, dataset, rank=env.rank, world_size=env.world_size, seed=cfg.seed,
                         buffer_size=d.shard_buffer)
    # Workers yield samples: prefetch a batch's worth each, as the map-style loader prefetches whole batches.
    loader = DataLoader(stream, batch_size=None, collate_fn=_as_is,
                        prefetch_factor=d.prefetch_factor * d.batch_size if workers > 0 else None, **common)
    batches = ShardBatches(stream, loader, d.batch_size, d.drop_last, dataset.collate_fn, pin)
    n = stream.min_rank_samples()
    log.info("data.shards: %d shards, %d utterances; each of %d process(es) reads at least %d per epoch",
             len(index.shards), len(dataset), env.world_size, n)
    return batches, batches, n // d.batch_size if d.drop_last else math.ceil(n / d.batch_size)
