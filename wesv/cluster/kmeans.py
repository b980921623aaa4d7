"""Spherical k-means with faiss: flat on a GPU, two-level (coarse cells, then k-means inside each) on a CPU."""
from __future__ import annotations

import faiss
import numpy as np

from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.cluster")



def resolve_device(device: str) -> bool:
    """Map ``--device auto|cpu|cuda`` to "use a faiss GPU"; ``cuda`` without faiss GPU support is an error."""
    num_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device == "cpu":
        return False
    if device == "auto":
        return num_gpus > 0
    if device == "cuda":
        if num_gpus == 0:
            raise WesvError("--device cuda: this faiss build sees no GPU (faiss.get_num_gpus() == 0) — install "
                            "faiss-gpu on a GPU machine or use --device cpu")
        return True
    raise WesvError(f"--device {device!r}: expected auto, cpu or cuda")


def _kmeans(x: np.ndarray, k: int, niter: int, seed: int, use_gpu: bool) -> tuple[np.ndarray, np.ndarray]:
    """One faiss spherical k-means: unit centroids (k, d) and each row's nearest centroid."""
    n, d = x.shape
    if k >= n:  # faiss needs more points than centroids; every point is its own cluster
        return x.copy(), np.arange(n, dtype=np.int64)
    # min_points_per_centroid=1 silences faiss' per-call "please provide at least ..." warning for small cells;
    # max_points_per_centroid is lifted so every point trains (faiss would otherwise subsample silently).
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=True, gpu=use_gpu, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, -(-n // k)))
    km.train(x)
    _, assign = km.index.search(x, 1)
    return km.centroids, assign[:, 0].astype(np.int64)


def _allocate(counts: np.ndarray, k: int) -> np.ndarray:
    """Split k centroids over cells in proportion to their sizes (largest remainder), at most a cell's size."""
    quota = counts * (k / counts.sum())
    alloc = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[: k - alloc.sum()]] += 1
    alloc = np.minimum(np.maximum(alloc, (counts > 0).astype(np.int64)), counts)
    return alloc


def spherical_kmeans(x: np.ndarray, k: int, *, niter: int = 20, seed: int = 0, use_gpu: bool = False,
                     num_coarse: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit rows into about ``k`` clusters: ``(centroids (k', d), assignment (n,))``.

    ``num_coarse`` None or < 2 runs flat k-means; else two-level with that many coarse cells. Two-level trains k-means inside each coarse cell with centroids in proportion to its size,
    so each point is compared with ~sqrt(k) centroids instead of k; ``k'`` can fall a little short of ``k`` when a
    cell has fewer points than its share. Two-level is opt-in: when nuisance (channel) directions dominate the
    variance, the coarse cells split along them and every cell holds most speakers (bench/RESULTS.md: NMI 0.27
    at 1.1 M points against 0.97 flat at 30 k), so it needs data whose coarse structure is the speakers.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if num_coarse is None or num_coarse <= 1 or num_coarse * 2 > k:
        return _kmeans(x, k, niter, seed, use_gpu)

    _, cell = _kmeans(x, num_coarse, niter, seed, use_gpu)
    counts = np.bincount(cell, minlength=num_coarse)
    alloc = _allocate(counts, k)
    logger.info("two-level k-means: %d coarse cells of %d-%d points, %d-%d centroids each",
                num_coarse, counts.min(), counts.max(), alloc.min(), alloc.max())
    order = np.argsort(cell, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    centroids: list[np.ndarray] = []
    assign = np.empty(n, dtype=np.int64)
    offset = 0
    for c in range(num_coarse):
        idx = order[bounds[c]:bounds[c + 1]]
        if len(idx) == 0:
            continue
        cen, sub = _kmeans(x[idx], int(alloc[c]), niter, seed + 1 + c, use_gpu)
        centroids.append(cen)
        assign[idx] = sub + offset
        offset += len(cen)
    return np.concatenate(centroids), assign
