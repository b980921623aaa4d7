"""Tar shards of a data dir: audio bytes (FLAC or WAV) with key and label, read back sequentially for training.

A shard ``shard_NNNNNN.tar`` holds, per utterance, ``I.json`` (``{"utt", "spk", "index"}``; ``index`` is the
utterance's position in wav.scp) then ``I.flac`` (or ``I.wav``). Member names are numbers, so no utterance id
needs escaping. ``shards.list`` names every shard (one path a line) and ``shards.json`` the sorted speaker list
that maps labels to ids, plus the utterance ids and labels in shard order (``ShardIndex`` reads them without
opening a shard). ``ShardDataset`` streams them: rank r of W takes every W-th shard of the epoch's shard order,
worker k of K every K-th of those, and a shuffle buffer mixes utterances across the shards it reads. The per-sample
transform (crop, augmentation, views) is not here: the stream hands each whole wave to a map-style dataset's
``make_sample(index, wave)`` (``LabelledCropDataset``, ``ViewsDataset``), the one home of that transform.
"""
import io
import json
import os
import tarfile
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info

from wesv.data.audio import load_audio
from wesv.data.datadir import split_indices
from wesv.errors import WesvError, where
from wesv.log import get_logger

log = get_logger("wesv.data")

FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
LIST_NAME, MANIFEST_NAME = "shards.list", "shards.json"


def shard_name(i: int) -> str:
    """File name of shard ``i`` (0-based)."""
    return f"shard_{i:06d}.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(wav_scp: dict[str, str], utt2spk: dict[str, str] | None, out: str, utts_per_shard: int,
                 job: int = 1, num_jobs: int = 1, fmt: str = "flac", sample_rate: int = 16000) -> list[str]:
    """Write this job's shards (contiguous groups of ``utts_per_shard`` utterances); returns their paths."""
    if utts_per_shard < 1:
        raise WesvError(f"--utts-per-shard must be at least 1, got {utts_per_shard}")
    if fmt not in FORMATS:
        raise WesvError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not 1 <= job <= num_jobs:
        raise WesvError(f"--job {job} is outside 1..{num_jobs} (jobs count from 1)")
    utts = list(wav_scp)
    if utt2spk is not None:
        missing = [u for u in utts if u not in utt2spk]
        if missing:
            raise WesvError(f"{len(missing)} utterances of wav.scp have no utt2spk entry (first: {missing[0]}); "
                            "run wesv.bin.fix_data_dir")
    num_shards = -(-len(utts) // utts_per_shard)
    os.makedirs(out, exist_ok=True)
    paths = [os.path.abspath(os.path.join(out, shard_name(i))) for i in range(num_shards)]
    speakers = sorted(set(utt2spk.values())) if utt2spk is not None else None
    _write_text(os.path.join(out, LIST_NAME), "".join(p + "\n" for p in paths))
    manifest = {"num_utts": len(utts), "num_shards": num_shards, "format": fmt, "speakers": speakers,
                "sample_rate": sample_rate, "utts_per_shard": utts_per_shard, "utts": utts,
                "spks": None if utt2spk is None else [utt2spk[u] for u in utts]}
    _write_text(os.path.join(out, MANIFEST_NAME), json.dumps(manifest) + "\n")
    start, end = split_indices(num_shards, num_jobs)[job - 1]
    container, subtype = FORMATS[fmt]
    for s in range(start, end):
        tmp = f"{paths[s]}.tmp{os.getpid()}"
        with tarfile.open(tmp, "w") as tar:
            for i in range(s * utts_per_shard, min(len(utts), (s + 1) * utts_per_shard)):
                utt = utts[i]
                wave = load_audio(wav_scp[utt], sample_rate, utt=utt)
                buf = io.BytesIO()
                sf.write(buf, wave, sample_rate, format=container, subtype=subtype)
                meta = {"utt": utt, "spk": None if utt2spk is None else utt2spk[utt], "index": i}
                _add(tar, f"{i}.json", json.dumps(meta).encode())
                _add(tar, f"{i}.{fmt}", buf.getvalue())
        os.replace(tmp, paths[s])
    return paths[start:end]


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_shard(path: str) -> Iterator[tuple[dict, np.ndarray]]:
    """``(meta, wave float32)`` of each utterance of one shard, in order."""
    try:
        with tarfile.open(path) as tar:
            meta = None
            for member in tar:
                data = tar.extractfile(member).read()
                if member.name.endswith(".json"):
                    meta = json.loads(data)
                else:
                    wave, _ = sf.read(io.BytesIO(data), dtype="float32")
                    yield meta, wave
    except (OSError, tarfile.TarError, RuntimeError, ValueError) as err:
        raise WesvError(f"{path}: unreadable shard ({err}); rewrite it with python -m wesv.bin.make_shards") from None


def read_shard_list(path: str) -> list[str]:
    """Shard paths of a ``shards.list`` (relative paths are taken from its directory)."""
    if not os.path.isfile(path):
        raise WesvError(f"{path}: no shard list; write one with python -m wesv.bin.make_shards")
    base = os.path.dirname(os.path.abspath(path))
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            p = line.strip()
            if p:
                out.append(p if os.path.isabs(p) else os.path.join(base, p))
    if not out:
        raise WesvError(f"{where(path)}: empty shard list")
    return out


def _scan_shard(path: str) -> list[dict]:
    """The ``I.json`` records of one shard (its audio members are skipped, not decoded)."""
    try:
        with tarfile.open(path) as tar:
            return [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    except (OSError, tarfile.TarError, ValueError) as err:
        raise WesvError(f"{path}: unreadable shard ({err}); rewrite it with python -m wesv.bin.make_shards") from None


class ShardIndex:
    """What a shard dir holds, in shard order: ``shards`` (paths), ``utts``, ``spks`` (None without utt2spk),
    ``shard_utts`` (the utterance ids of each shard) and ``sample_rate`` (None when shards.json does not say).

    Read from ``shards.json`` (make_shards writes the ids and labels there); shards written before it did are
    scanned once (their ``I.json`` records only).
    """

    def __init__(self, shard_dir: str):
        list_path = shard_dir if os.path.isfile(shard_dir) else os.path.join(shard_dir, LIST_NAME)
        self.list_path = list_path
        self.shards = read_shard_list(list_path)
        manifest = os.path.join(os.path.dirname(os.path.abspath(list_path)), MANIFEST_NAME)
        try:
            info = json.load(open(manifest, encoding="utf-8")) if os.path.isfile(manifest) else {}
        except ValueError as err:
            raise WesvError(f"{manifest}: not JSON ({err}); rewrite the shards with python -m wesv.bin.make_shards") \
                from None
        self.sample_rate = info.get("sample_rate")
        ups, utts = info.get("utts_per_shard"), info.get("utts")
        if ups and utts is not None and info.get("num_shards") == len(self.shards):
            spks = info.get("spks")
            self.shard_utts = [utts[s * ups:(s + 1) * ups] for s in range(len(self.shards))]
            self.utts, self.spks = list(utts), (list(spks) if spks is not None else None)
        else:
            records = [_scan_shard(p) for p in self.shards]
            self.shard_utts = [[r["utt"] for r in recs] for recs in records]
            self.utts = [u for group in self.shard_utts for u in group]
            spks = [r.get("spk") for recs in records for r in recs]
            self.spks = None if any(s is None for s in spks) else spks
        if not self.utts:
            raise WesvError(f"{list_path}: the shards hold no utterance; rewrite them with python -m "
                            "wesv.bin.make_shards")
        dup = len(self.utts) - len(set(self.utts))
        if dup:
            raise WesvError(f"{list_path}: {dup} utterance ids appear in more than one shard entry; each must be "
                            "written once (rewrite the shards from one data dir)")

    def utt2spk(self) -> dict[str, str] | None:
        """The labels the shards carry (None when they were written without utt2spk)."""
        return None if self.spks is None else dict(zip(self.utts, self.spks))

    def wav_scp(self, keep: set | dict | None = None) -> dict[str, str]:
        """A stand-in wav.scp in shard order (``SHARD#utt`` specs, never opened), of the ``keep`` utterances."""
        return {u: f"{path}#{u}" for path, group in zip(self.shards, self.shard_utts) for u in group
                if keep is None or u in keep}


def shard_labels(shards: str, train_dir: str | None) -> tuple[ShardIndex, dict[str, str]]:
    """The shard index and the labels to train on: ``train_dir/utt2spk`` when it exists (e.g. a pseudo-label dir
    whose clusters differ from the labels packed into the shards), else the shards' own labels."""
    index = ShardIndex(shards)
    path = os.path.join(train_dir, "utt2spk") if train_dir else None
    if path and os.path.isfile(path):
        from wesv.data.datadir import read_utt2spk

        labels = read_utt2spk(path)
        kept = sum(u in labels for u in index.utts)
        if not kept:
            raise WesvError(f"{path}: none of the {len(index.utts)} utterances of {index.list_path} has a label "
                            "here; data.train must name the data dir the shards were written from (or its "
                            "pseudo-label dir)")
        if kept < len(index.utts):
            log.info("data.shards: %d of %d utterances have a label in %s; the others are skipped", kept,
                     len(index.utts), path)
        return index, labels
    labels = index.utt2spk()
    if labels is None:
        raise WesvError(f"{index.list_path}: the shards carry no labels (written without utt2spk) and "
                        f"{path or 'data.train'} does not exist; give data.train a data dir with utt2spk")
    return index, labels


def _shared_epoch() -> torch.Tensor:
    # Shared memory: set_epoch in the main process reaches persistent DataLoader workers at their next __iter__.
    return torch.zeros(1, dtype=torch.long).share_memory_()


class ShardStream(IterableDataset):
    """Samples of ``dataset`` (a map-style dataset over ``index``'s utterances with ``make_sample(i, wave)``) from
    the shards' waves. Rank r of W reads every W-th shard of the ``(seed, epoch)`` shard order, DataLoader worker k
    of K every K-th of those, so every utterance is read exactly once per epoch; a buffer of ``buffer_size``
    samples, drawn from ``[seed, epoch, rank, worker]``, shuffles them. Utterances the dataset lacks are skipped.
    """

    def __init__(self, index: ShardIndex, dataset, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 buffer_size: int = 256):
        if len(index.shards) < world_size:
            raise WesvError(f"{index.list_path}: {len(index.shards)} shards for {world_size} processes; write more, "
                            "smaller shards (--utts-per-shard)")
        self.index, self.dataset = index, dataset
        self.position = {u: i for i, u in enumerate(dataset.utts)}  # utt → dataset index (sample-state row)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed, self.buffer_size = int(seed), max(1, int(buffer_size))
        self._epoch = _shared_epoch()

    @property
    def epoch(self) -> int:
        """The selected epoch."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order, buffer, and the dataset's crops and augmentations)."""
        self._epoch[0] = int(epoch)

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.index.shards))

    def my_shards(self, worker: int = 0, num_workers: int = 1) -> list[str]:
        """The shards this rank's ``worker`` reads this epoch."""
        return [self.index.shards[i] for i in self._order()[self.rank::self.world_size][worker::num_workers]]

    def min_rank_samples(self) -> int:
        """The fewest samples any rank reads in any epoch: its share is at least the S // W smallest shards."""
        counts = sorted(sum(u in self.position for u in group) for group in self.index.shard_utts)
        return sum(counts[:len(counts) // self.world_size])

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        rng = np.random.default_rng([self.seed, epoch, self.rank, worker, 7])
        buffer: list[dict] = []
        for path in self.my_shards(worker, num_workers):
            for meta, wave in read_shard(path):
                i = self.position.get(meta["utt"])
                if i is None:
                    continue
                buffer.append(self.dataset.make_sample(i, wave))
                if len(buffer) >= self.buffer_size:
                    yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))


class ShardDataset(ShardStream):
    """Labelled random crops streamed from shards (``{"wave", "label", "index", "utt"}``), labels from the shards:
    a ``ShardStream`` over a ``LabelledCropDataset`` of the shard index (``index``: position in shard order)."""

    def __init__(self, shard_list: str, num_samples: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 buffer_size: int = 256, augmenter: Callable | None = None, short: str = "repeat"):
        from wesv.data.datasets import LabelledCropDataset

        index = ShardIndex(shard_list)
        labels = index.utt2spk() or {u: "" for u in index.utts}
        dataset = LabelledCropDataset(index.wav_scp(), labels, num_samples, augmenter, seed,
                                      index.sample_rate or 16000, short)
        if index.spks is None:
            dataset.labels[:] = -1  # no utt2spk was packed: no label
        super().__init__(index, dataset, rank=rank, world_size=world_size, seed=seed, buffer_size=buffer_size)
        self.speakers = dataset.speakers if index.spks is not None else []
        self.collate_fn = dataset.collate_fn

    @property
    def num_classes(self) -> int:
        """Number of distinct labels (0 without utt2spk)."""
        return len(self.speakers)
