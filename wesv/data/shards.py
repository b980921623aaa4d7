"""Tar shards of a data dir: audio bytes (FLAC or WAV) with key and label, read back sequentially for training.

A shard ``shard_NNNNNN.tar`` holds, per utterance, ``I.json`` (``{"utt", "spk", "index"}``; ``index`` is the
utterance's position in wav.scp) then ``I.flac`` (or ``I.wav``). Member names are numbers, so no utterance id
needs escaping. ``shards.list`` names every shard (one path a line) and ``shards.json`` the sorted speaker list
that maps labels to ids. ``ShardDataset`` streams them: rank r of W takes every W-th shard of the epoch's shard
order, worker k of K every K-th of those, and a shuffle buffer mixes utterances across the shards it reads.
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

from wesv.data.audio import crop, load_audio
from wesv.data.datadir import split_indices
from wesv.errors import WesvError, where

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
    _write_text(os.path.join(out, MANIFEST_NAME), json.dumps({"num_utts": len(utts), "num_shards": num_shards,
                                                              "format": fmt, "speakers": speakers}) + "\n")
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


class ShardDataset(IterableDataset):
    """Random crops streamed from shards: ``{"wave", "label", "index", "utt"}`` as ``LabelledCropDataset``'s samples.

    ``rank``/``world_size`` split the shards between processes and DataLoader workers split each rank's share, so
    every utterance is read exactly once per epoch. The shard order and the shuffle buffer draw from
    ``(seed, epoch)``; each crop from ``default_rng([seed, epoch, index])``.
    """

    def __init__(self, shard_list: str, num_samples: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 buffer_size: int = 256, augmenter: Callable | None = None, short: str = "repeat"):
        self.shards = read_shard_list(shard_list)
        if len(self.shards) < world_size:
            raise WesvError(f"{shard_list}: {len(self.shards)} shards for {world_size} processes; write more, "
                            "smaller shards (--utts-per-shard)")
        manifest = os.path.join(os.path.dirname(os.path.abspath(shard_list)), MANIFEST_NAME)
        info = json.load(open(manifest)) if os.path.isfile(manifest) else {}
        self.speakers = info.get("speakers") or []
        self._spk_id = {s: i for i, s in enumerate(self.speakers)}
        self.num_samples, self.rank, self.world_size = int(num_samples), int(rank), int(world_size)
        self.seed, self.buffer_size, self.epoch = int(seed), max(1, int(buffer_size)), 0
        self.augmenter, self.short = augmenter, short

    @property
    def num_classes(self) -> int:
        """Number of distinct labels (from ``shards.json``; 0 without utt2spk)."""
        return len(self.speakers)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order, buffer and crops)."""
        self.epoch = int(epoch)

    def my_shards(self, worker: int = 0, num_workers: int = 1) -> list[str]:
        """The shards this rank's ``worker`` reads this epoch."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        mine = order[self.rank::self.world_size][worker::num_workers]
        return [self.shards[i] for i in mine]

    def _sample(self, meta: dict, wave: np.ndarray) -> dict:
        index = int(meta["index"])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clip = crop(wave, self.num_samples, rng, short=self.short, utt=meta["utt"])
        if self.augmenter is not None:
            clip = self.augmenter(clip, rng)
        label = self._spk_id.get(meta.get("spk"), -1)
        return {"wave": np.ascontiguousarray(clip, dtype=np.float32), "label": label, "index": index,
                "utt": meta["utt"]}

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 7])
        buffer: list[dict] = []
        for path in self.my_shards(worker, num_workers):
            for meta, wave in read_shard(path):
                buffer.append(self._sample(meta, wave))
                if len(buffer) >= self.buffer_size:
                    yield buffer.pop(int(rng.integers(len(buffer))))
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    @staticmethod
    def collate_fn(samples: list[dict]) -> dict:
        """Stack samples into a batch: ``wave`` (B, T), ``label`` (B,), ``index`` (B,), ``utt`` list."""
        return {"wave": torch.from_numpy(np.stack([s["wave"] for s in samples])),
                "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
                "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
                "utt": [s["utt"] for s in samples]}
