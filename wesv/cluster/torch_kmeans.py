"""Spherical k-means and exact nearest-neighbour search in torch: the GPU path when faiss has no GPU (and a CPU
fallback where faiss is not installed)."""
from __future__ import annotations

import numpy as np
import torch

# Bytes of one chunk's (rows x k) similarity block; bounds memory whatever k is (1 GiB at 50 k centroids = 5 k rows).
_BLOCK_BYTES = 1 << 30
# Relative perturbation when an empty cluster copies a large one (faiss' EPS in Clustering.cpp).
_SPLIT_EPS = 1.0 / 1024.0
# Centroids a 16-bit assignment matmul shortlists for exact float32 rescoring.
_SHORTLIST = 4
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _rows_per_chunk(k: int) -> int:
    return max(1, _BLOCK_BYTES // (4 * max(k, 1)))


def assign_nearest(x: torch.Tensor, centroids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Index of the most similar centroid (inner product) of every row, in row chunks. With a 16-bit ``dtype`` the
    matmul only shortlists the best few centroids (its output is rounded to ~3 digits), which are then rescored in
    float32."""
    c = centroids.to(dtype)
    out = torch.empty(len(x), dtype=torch.int64, device=x.device)
    step = _rows_per_chunk(len(c))
    for s in range(0, len(x), step):
        xs = x[s:s + step]
        sim = xs.to(dtype) @ c.T
        if dtype == torch.float32:
            out[s:s + step] = torch.argmax(sim, dim=1)
            continue
        cand = torch.topk(sim, min(_SHORTLIST, len(c)), dim=1).indices
        exact = torch.einsum("nd,nkd->nk", xs, centroids[cand])
        out[s:s + step] = cand.gather(1, exact.argmax(dim=1, keepdim=True))[:, 0]
    return out


def nearest_other(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row, the index of its most similar *other* row (exact inner product) and that similarity."""
    n = len(m)
    nbr = torch.empty(n, dtype=torch.int64, device=m.device)
    sim = torch.empty(n, dtype=m.dtype, device=m.device)
    step = _rows_per_chunk(n)
    for s in range(0, n, step):
        block = m[s:s + step] @ m.T
        rows = torch.arange(len(block), device=m.device)
        block[rows, rows + s] = -torch.inf  # a row is not its own neighbour
        sim[s:s + step], nbr[s:s + step] = block.max(dim=1)
    return nbr, sim


def _split_empty(cen: torch.Tensor, counts: np.ndarray, rng: np.random.Generator) -> int:
    """Re-seed empty clusters as faiss does: copy a cluster drawn with probability ~ (size - 1), nudge the two copies
    apart, and give each half of its points. Returns how many were re-seeded."""
    empty = np.nonzero(counts == 0)[0]
    if empty.size == 0:
        return 0
    donors = np.empty(empty.size, dtype=np.int64)
    for i, e in enumerate(empty):  # sequential: a split cluster is less likely to be drawn again
        p = np.maximum(counts - 1, 0).astype(np.float64)
        donors[i] = rng.choice(len(counts), p=p / p.sum())
        counts[e] = counts[donors[i]] // 2
        counts[donors[i]] -= counts[e]
    sign = torch.ones(cen.shape[1], device=cen.device, dtype=cen.dtype)
    sign[1::2] = -1
    e_t = torch.from_numpy(empty).to(cen.device)
    # one donor may be drawn several times: nudge it once per draw, in order, as faiss' loop does
    for d_idx, e_idx in zip(donors.tolist(), e_t):
        cen[e_idx] = cen[d_idx] * (1 + _SPLIT_EPS * sign)
        cen[d_idx] = cen[d_idx] * (1 - _SPLIT_EPS * sign)
    return int(empty.size)


def torch_spherical_kmeans(x: np.ndarray, k: int, *, niter: int = 20, seed: int = 0, device: str = "cpu",
                           assign_dtype: str = "float32", train: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit rows on ``device``: unit centroids ``(k, d)`` and each row's nearest centroid.

    Lloyd iterations as faiss runs them: random distinct rows as the initial centroids (from ``seed``), chunked
    matmul assignment, sums by ``index_add_``, empty clusters re-seeded by splitting a large one, then projection
    onto the sphere; the returned assignment (of every row of ``x``) is against the final centroids. ``train``
    (default ``x``) holds the rows that train the centroids, e.g. a subsample.
    """
    n, d = x.shape
    if k >= n:
        return np.array(x, dtype=np.float32), np.arange(n, dtype=np.int64)
    if assign_dtype not in _DTYPES:
        raise ValueError(f"assign_dtype {assign_dtype!r}: expected one of {', '.join(_DTYPES)}")
    dtype = _DTYPES[assign_dtype]
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x if train is None else train, dtype=np.float32)).to(device)
    cen = xt[torch.from_numpy(rng.choice(len(xt), k, replace=False)).to(device)].clone()
    for _ in range(niter):
        assign = assign_nearest(xt, cen, dtype)
        sums = torch.zeros_like(cen).index_add_(0, assign, xt)
        counts = torch.bincount(assign, minlength=k).cpu().numpy()
        cen = torch.where(torch.from_numpy(counts > 0).to(device)[:, None], sums, cen)
        _split_empty(cen, counts, rng)
        cen = cen / cen.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if train is not None:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    assign = assign_nearest(xt, cen, dtype)
    return cen.cpu().numpy(), assign.cpu().numpy()
