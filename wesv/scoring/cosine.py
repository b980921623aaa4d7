"""Cosine scoring of trials: mean subtraction, L2 normalisation, chunked row-wise dot products (numpy only)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from wesv.data.textcols import decode, encode, match_items
from wesv.errors import WesvError, where


def normalize(matrix: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Subtract ``mean`` (if given) and L2-normalise each row (float32; a zero row stays zero)."""
    x = np.asarray(matrix, dtype=np.float32)
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        if mean.size != x.shape[1]:
            raise WesvError(f"mean embedding has dimension {mean.size}, embeddings have {x.shape[1]} — "
                            "use the mean of embeddings from the same model")
        x = x - mean
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def lookup(utts: Sequence[str] | np.ndarray, keys: Sequence[str] | np.ndarray, trials_path: str,
           side: str) -> np.ndarray:
    """Row numbers of the trial ids ``utts`` among the embedding ``keys`` (str or bytes arrays, keys distinct).

    An id with no embedding raises naming its trials line (1-based).
    """
    utts = encode(utts)
    rows = match_items(utts, encode(keys))
    if len(rows) and rows.min() < 0:
        lineno = int(np.argmax(rows < 0)) + 1
        raise WesvError(f"{where(trials_path, lineno)}: {side} utterance {decode(utts[lineno - 1])!r} has no "
                        "embedding — extract embeddings for every utterance the trials name (or fix the trials list)")
    return rows


def pair_scores(a: np.ndarray, b: np.ndarray, a_idx: np.ndarray, b_idx: np.ndarray,
                chunk: int = 1 << 12, threads: int | None = None) -> np.ndarray:
    """``sum(a[a_idx[i]] * b[b_idx[i]])`` for every i (float64 out), in cache-sized chunks on ``threads`` threads.

    Memory-bound (two gathered rows per trial), so numpy's gather and einsum, which release the GIL, run on all
    the cores ``num_threads()`` allows.
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    out = np.empty(len(a_idx), dtype=np.float64)

    def block(s: int) -> None:
        e = s + chunk
        out[s:e] = np.einsum("ij,ij->i", a[a_idx[s:e]], b[b_idx[s:e]])

    starts = range(0, len(a_idx), chunk)
    threads = num_threads() if threads is None else threads
    if threads <= 1 or len(starts) < 2 * threads:
        for s in starts:
            block(s)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(block, starts))
    return out


def num_threads() -> int:
    """Threads for numpy work: the cores this process may use, capped by ``OMP_NUM_THREADS`` when it is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", "") or cores)
    except ValueError:
        cap = cores
    return max(1, min(cores, cap))
