"""Spherical k-means: faiss (flat or HNSW assignment, CPU or faiss-gpu) or torch (GPU, or CPU without faiss), and
the choice between them. faiss is imported lazily: the torch path runs where faiss is not installed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.cluster")

BACKENDS = ("auto", "faiss", "torch")
KMEANS_INDEXES = ("auto", "flat", "hnsw")
ASSIGN_DTYPES = ("float32", "bfloat16")  # torch assignment matmul; bfloat16 shortlists, float32 rescores
# --kmeans-index auto picks HNSW assignment on the CPU from this many centroids on (bench/RESULTS.md: at fewer,
# BLAS flat search is about as fast and exact).
HNSW_MIN_CENTROIDS = 20000
HNSW_M = 32
HNSW_EF_SEARCH = 32


@dataclass(frozen=True)
class Backend:
    """Where the clustering runs: ``name`` faiss or torch, ``device`` cpu or cuda."""

    name: str
    device: str


def _faiss():
    """The faiss module, or None when it is not installed (the torch backend then serves)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _faiss_gpus() -> int:
    faiss = _faiss()
    return faiss.get_num_gpus() if faiss is not None and hasattr(faiss, "get_num_gpus") else 0


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def resolve_backend(device: str = "auto", backend: str = "auto") -> Backend:
    """Map ``--device auto|cpu|cuda`` and ``--kmeans-backend auto|faiss|torch`` to one Backend.

    auto device: cuda when faiss or torch sees a GPU. auto backend: faiss when it can run on that device (faiss-gpu
    for cuda), else torch; asking for what cannot run is an error saying what to install or pass instead.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise WesvError(f"--device {device!r}: expected auto, cpu or cuda")
    if backend not in BACKENDS:
        raise WesvError(f"--kmeans-backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    have_faiss = _faiss() is not None
    faiss_gpu = _faiss_gpus() > 0
    if device == "auto":
        if backend == "faiss":
            device = "cuda" if faiss_gpu else "cpu"
        else:
            device = "cuda" if faiss_gpu or _cuda_available() else "cpu"
    if device == "cuda" and backend != "faiss" and not faiss_gpu and not _cuda_available():
        raise WesvError("--device cuda: neither torch nor faiss sees a GPU — run on a GPU machine or pass "
                        "--device cpu")
    if backend == "auto":
        backend = "faiss" if have_faiss and (device == "cpu" or faiss_gpu) else "torch"
    if backend == "faiss" and not have_faiss:
        raise WesvError("--kmeans-backend faiss: faiss is not installed (pip install faiss-cpu) — or pass "
                        "--kmeans-backend torch")
    if backend == "faiss" and device == "cuda" and not faiss_gpu:
        raise WesvError("--kmeans-backend faiss --device cuda: this faiss build sees no GPU (faiss.get_num_gpus() "
                        "== 0) — install faiss-gpu, or pass --kmeans-backend torch")
    return Backend(backend, device)


def resolve_index(index: str, backend: Backend, k: int) -> str:
    """Map ``--kmeans-index auto|flat|hnsw`` to flat or hnsw: HNSW only with faiss on the CPU."""
    if index not in KMEANS_INDEXES:
        raise WesvError(f"--kmeans-index {index!r}: expected one of {', '.join(KMEANS_INDEXES)}")
    if index == "hnsw" and (backend.name != "faiss" or backend.device != "cpu"):
        raise WesvError(f"--kmeans-index hnsw runs with faiss on the CPU, not {backend.name} on {backend.device} — "
                        "pass --kmeans-index flat (exact search is fast on a GPU)")
    if index == "auto":
        return "hnsw" if backend.name == "faiss" and backend.device == "cpu" and k >= HNSW_MIN_CENTROIDS else "flat"
    return index


def _faiss_train(x: np.ndarray, k: int, niter: int, seed: int, use_gpu: bool, index: str) -> np.ndarray:
    """Unit centroids (k, d) of one faiss spherical k-means on every row of ``x``."""
    faiss = _faiss()
    n, d = x.shape
    clus = faiss.Clustering(d, k)
    clus.spherical = True
    clus.niter = niter
    clus.seed = seed
    clus.verbose = False
    # min_points_per_centroid=1 silences faiss' "please provide at least ..." warning for small cells;
    # max_points_per_centroid is lifted because the caller subsamples (faiss would do it silently).
    clus.min_points_per_centroid = 1
    clus.max_points_per_centroid = max(256, -(-n // k))
    if index == "hnsw":
        # faiss rebuilds the graph from the centroids each iteration; assignment is then ~log k per point.
        train_index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        train_index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        train_index = faiss.IndexFlatIP(d)
        if use_gpu:
            train_index = faiss.index_cpu_to_all_gpus(train_index)
    clus.train(x, train_index)
    return faiss.vector_float_to_array(clus.centroids).reshape(k, d)


def _faiss_assign(x: np.ndarray, centroids: np.ndarray, use_gpu: bool) -> np.ndarray:
    """Exact nearest centroid (inner product) of every row."""
    faiss = _faiss()
    index = faiss.IndexFlatIP(x.shape[1])
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(centroids)
    _, assign = index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def _kmeans(x: np.ndarray, k: int, niter: int, seed: int, backend: Backend, index: str,
            max_points_per_centroid: int | None = None, assign_dtype: str = "float32"
            ) -> tuple[np.ndarray, np.ndarray]:
    """Train on all rows (or a seeded subsample of ``max_points_per_centroid * k``), then assign every row
    exactly: the final assignment is what the agglomeration sees, whatever trained the centroids."""
    n = len(x)
    if k >= n:  # k-means needs more points than centroids; every point is its own cluster
        return x.copy(), np.arange(n, dtype=np.int64)
    train = None
    if max_points_per_centroid is not None and max_points_per_centroid * k < n:
        pick = np.sort(np.random.default_rng(seed).choice(n, max_points_per_centroid * k, replace=False))
        train = x[pick]
    if backend.name == "torch":
        from wesv.cluster.torch_kmeans import torch_spherical_kmeans
        return torch_spherical_kmeans(x, k, niter=niter, seed=seed, device=backend.device, train=train,
                                      assign_dtype=assign_dtype)
    use_gpu = backend.device == "cuda"
    centroids = _faiss_train(x if train is None else train, k, niter, seed, use_gpu, index)
    return centroids, _faiss_assign(x, centroids, use_gpu)


def _allocate(counts: np.ndarray, k: int) -> np.ndarray:
    """Split k centroids over cells in proportion to their sizes (largest remainder), at most a cell's size."""
    quota = counts * (k / counts.sum())
    alloc = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[: k - alloc.sum()]] += 1
    alloc = np.minimum(np.maximum(alloc, (counts > 0).astype(np.int64)), counts)
    return alloc


def spherical_kmeans(x: np.ndarray, k: int, *, niter: int = 20, seed: int = 0, backend: Backend | None = None,
                     index: str = "auto", max_points_per_centroid: int | None = None,
                     assign_dtype: str = "float32", num_coarse: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit rows into about ``k`` clusters: ``(centroids (k', d), assignment (n,))``.

    ``backend`` defaults to faiss on the CPU; ``index`` (auto, flat, hnsw) is how faiss assigns points while
    training; ``max_points_per_centroid`` trains on a seeded subsample of that many points per centroid (None: all),
    every row is then assigned exactly; ``assign_dtype`` (torch only: float32, bfloat16) is the type of the
    assignment matmul. ``num_coarse`` None or < 2 runs flat k-means; else two-level with that many coarse cells: k-means
    inside each coarse cell with centroids in proportion to its size, so each point is compared with ~sqrt(k)
    centroids instead of k; ``k'`` can fall a little short of ``k`` when a cell has fewer points than its share.
    Two-level is opt-in: when nuisance (channel) directions dominate the variance, the coarse cells split along them
    and every cell holds most speakers (bench/RESULTS.md: NMI 0.27 at 1.1 M points), so it needs data whose coarse
    structure is the speakers.
    """
    backend = backend or Backend("faiss", "cpu")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if num_coarse is None or num_coarse <= 1 or num_coarse * 2 > k:
        return _kmeans(x, k, niter, seed, backend, resolve_index(index, backend, k), max_points_per_centroid,
                       assign_dtype)

    _, cell = _kmeans(x, num_coarse, niter, seed, backend, resolve_index(index, backend, num_coarse),
                      assign_dtype=assign_dtype)
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
        cen, sub = _kmeans(x[idx], int(alloc[c]), niter, seed + 1 + c, backend,
                           resolve_index(index, backend, int(alloc[c])), max_points_per_centroid,
                           assign_dtype)
        centroids.append(cen)
        assign[idx] = sub + offset
        offset += len(cen)
    return np.concatenate(centroids), assign
