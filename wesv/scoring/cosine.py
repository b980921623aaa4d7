"""Cosine scoring of trials: mean subtraction, L2 normalisation, chunked row-wise dot products."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

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


def lookup(keys: Sequence[str], index: dict[str, int], trials_path: str, side: str) -> np.ndarray:
    """Row numbers of ``keys`` in ``index``; an unknown key raises naming the trials line (1-based)."""
    if isinstance(keys, np.ndarray):
        keys = keys.tolist()  # iterating a list is several times faster than an object array
    try:
        return np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))
    except KeyError as err:
        missing = err.args[0]
        lineno = next(i for i, k in enumerate(keys, 1) if k == missing)
        raise WesvError(f"{where(trials_path, lineno)}: {side} utterance {missing!r} has no embedding — extract "
                        f"embeddings for every utterance the trials name (or fix the trials list)") from None


def pair_scores(a: np.ndarray, b: np.ndarray, a_idx: np.ndarray, b_idx: np.ndarray,
                chunk: int = 1 << 14) -> np.ndarray:
    """``sum(a[a_idx[i]] * b[b_idx[i]])`` for every i, in chunks so memory stays at a few chunk-sized copies."""
    ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
    ia, ib = torch.from_numpy(a_idx), torch.from_numpy(b_idx)
    out = torch.empty(len(a_idx), dtype=torch.float32)
    with torch.inference_mode():
        for s in range(0, len(a_idx), chunk):
            e = s + chunk
            out[s:e] = (ta.index_select(0, ia[s:e]) * tb.index_select(0, ib[s:e])).sum(dim=1)
    return out.numpy().astype(np.float64)
