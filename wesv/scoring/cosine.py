"""Cosine scoring of trials: mean subtraction, L2 normalisation, chunked row-wise dot products (numpy only)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from wesv.errors import WesvError, where
from wesv.scoring.textcols import decode, encode, match_items


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
                chunk: int = 1 << 13) -> np.ndarray:
    """``sum(a[a_idx[i]] * b[b_idx[i]])`` for every i, in chunks so memory stays at a few chunk-sized copies."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    out = np.empty(len(a_idx), dtype=np.float64)
    for s in range(0, len(a_idx), chunk):
        e = s + chunk
        out[s:e] = np.einsum("ij,ij->i", a[a_idx[s:e]], b[b_idx[s:e]])
    return out
