"""Augmentation sets on disk: WeSpeaker-style ``wav.scp`` lists for MUSAN and RIRS_NOISES, loaded lazily.

Format (one file per set, the same for real and generated data):
    ``NOISE_DIR/wav.scp``: ``<part>/<subdir>/<file>.wav /abs/path.wav`` with ``<part>`` one of noise, music, speech
    ``RIR_DIR/wav.scp``:   ``<room-class>/<RoomNNN>/<file>.wav /abs/path.wav``
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from wesv.augment.ops import fit_length
from wesv.data.audio import audio_info, load_audio
from wesv.data.datadir import read_scp
from wesv.errors import WesvError

PARTS = ("noise", "music", "speech")


def set_list_path(path: str) -> str:
    """``path`` itself if it is a file, else ``path/wav.scp``; WesvError when neither exists."""
    scp = path if os.path.isfile(path) else os.path.join(path, "wav.scp")
    if not os.path.isfile(scp):
        raise WesvError(f"{path}: no augmentation list (expected {scp}) — prepare it with "
                        "python -m wesv.bin.prepare_musan / prepare_rirs, or use a corpus from make_corpus")
    return scp


def read_noise_set(path: str) -> dict[str, list[str]]:
    """Read a MUSAN-style list: ``{part: [spec, ...]}`` for noise, music and speech (possibly empty)."""
    scp = set_list_path(path)
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for lineno, (key, spec) in enumerate(read_scp(scp).items(), 1):
        part = key.split("/", 1)[0]
        if part not in parts:
            raise WesvError(f"{scp}: key {key!r} does not start with noise/, music/ or speech/ — regenerate the list "
                            "with python -m wesv.bin.prepare_musan")
        parts[part].append(spec)
    return parts


def read_rir_set(path: str) -> list[str]:
    """Read a RIR list: every spec in it."""
    specs = list(read_scp(set_list_path(path)).values())
    if not specs:
        raise WesvError(f"{set_list_path(path)}: empty RIR list — check the RIRS_NOISES path given to prepare_rirs")
    return specs


class AudioCache:
    """Per-process LRU cache of decoded augmentation files, bounded in bytes (fork-safe: each worker has its own).

    Files longer than ``max_cached_s`` (MUSAN speech and music run to minutes) are never cached whole: a random
    window is read from disk each time instead.
    """

    def __init__(self, max_bytes: int, sample_rate: int = 16000, max_cached_s: float = 60.0):
        self.max_bytes = max_bytes
        self.sample_rate = sample_rate
        self.max_cached = int(max_cached_s * sample_rate)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._info: dict[str, tuple[int, int]] = {}
        self._bytes = 0
        self._pid = os.getpid()

    def get(self, spec: str) -> np.ndarray:
        """The decoded file (float32 mono), loaded on first use and resampled to the cache's rate."""
        if os.getpid() != self._pid:  # forked into a worker: start empty rather than share parent pages
            self._items.clear()
            self._bytes, self._pid = 0, os.getpid()
        wave = self._items.get(spec)
        if wave is not None:
            self._items.move_to_end(spec)
            return wave
        wave = load_audio(spec, self.sample_rate, resample=True)
        if wave.nbytes <= self.max_bytes:
            self._items[spec] = wave
            self._bytes += wave.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return wave

    def segment(self, spec: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``num_samples`` window of the file (looped when shorter), decoded at the cache's rate."""
        if spec not in self._info:
            self._info[spec] = audio_info(spec)
        frames, rate = self._info[spec]
        if rate == self.sample_rate and frames > max(self.max_cached, num_samples):
            start = int(rng.integers(0, frames - num_samples + 1))
            return load_audio(spec, self.sample_rate, start=start, num_samples=num_samples)
        return fit_length(self.get(spec), num_samples, rng)

    def __len__(self) -> int:
        return len(self._items)
