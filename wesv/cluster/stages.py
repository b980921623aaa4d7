"""The clustering itself, on unit rows in memory: settings, k-means stage, agglomeration stage (no file I/O, so it
runs where only numpy, scipy, sklearn and torch or faiss are installed)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from wesv.cluster.ahc import cosine_ahc, weighted_average_linkage
from wesv.cluster.filtering import cluster_sums
from wesv.cluster.kmeans import ASSIGN_DTYPES, BACKENDS, KMEANS_INDEXES, Backend, resolve_backend, spherical_kmeans
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.cluster")

ALGORITHMS = ("kmeans_ahc", "ahc", "kmeans")


@dataclass
class ClusterConfig:
    """Settings of one clustering round (the CLI options)."""

    algorithm: str = "kmeans_ahc"
    num_clusters: int | None = None
    num_kmeans: int | None = None  # k-means stage of kmeans_ahc; default 4 x num_clusters, at most n
    threshold: float | None = None  # cosine distance (1 - mean cosine similarity) at which merging stops
    min_cluster_size: int = 1
    keep_fraction: float = 1.0
    kmeans_iters: int = 20
    seed: int = 0
    device: str = "auto"
    kmeans_backend: str = "auto"  # faiss or torch (auto: faiss where it can run on the device, else torch)
    kmeans_index: str = "auto"  # flat or hnsw assignment while faiss trains on the CPU (auto: by k)
    kmeans_max_points_per_centroid: int | None = None  # train on a subsample of this many per centroid (None: all)
    kmeans_assign_dtype: str = "float32"  # torch backend: matmul type of the assignment (float32, bfloat16)
    subtract_mean: str | None = None  # before L2 normalising: "auto" (the clustered set's mean), a mean.vec or scp


def check_config(cfg: ClusterConfig) -> None:
    """Reject option combinations that cannot run, naming the option."""
    if cfg.algorithm not in ALGORITHMS:
        raise WesvError(f"--algorithm {cfg.algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    if cfg.num_clusters is not None and cfg.num_clusters < 1:
        raise WesvError(f"--num-clusters {cfg.num_clusters}: must be at least 1")
    if cfg.algorithm == "kmeans" and cfg.num_clusters is None:
        raise WesvError("--algorithm kmeans needs --num-clusters")
    if cfg.algorithm == "kmeans" and cfg.threshold is not None:
        raise WesvError("--threshold applies to ahc and kmeans_ahc, not to --algorithm kmeans")
    if cfg.algorithm == "kmeans_ahc" and cfg.num_clusters is None and cfg.threshold is None:
        raise WesvError("--algorithm kmeans_ahc needs --num-clusters and/or --threshold")
    if cfg.algorithm == "ahc" and (cfg.num_clusters is None) == (cfg.threshold is None):
        raise WesvError("--algorithm ahc: give exactly one of --num-clusters and --threshold")
    if cfg.threshold is not None and not 0.0 <= cfg.threshold <= 2.0:
        raise WesvError(f"--threshold {cfg.threshold}: a cosine distance lies in [0, 2]")
    if cfg.num_kmeans is not None and cfg.num_clusters is not None and cfg.num_kmeans < cfg.num_clusters:
        raise WesvError(f"--num-kmeans {cfg.num_kmeans} is below --num-clusters {cfg.num_clusters}: the k-means "
                        "stage must over-cluster")
    if not 0.0 < cfg.keep_fraction <= 1.0:
        raise WesvError(f"--keep-fraction {cfg.keep_fraction}: must be in (0, 1]")
    if cfg.kmeans_backend not in BACKENDS:
        raise WesvError(f"--kmeans-backend {cfg.kmeans_backend!r}: expected one of {', '.join(BACKENDS)}")
    if cfg.kmeans_index not in KMEANS_INDEXES:
        raise WesvError(f"--kmeans-index {cfg.kmeans_index!r}: expected one of {', '.join(KMEANS_INDEXES)}")
    if cfg.kmeans_max_points_per_centroid is not None and cfg.kmeans_max_points_per_centroid < 1:
        raise WesvError(f"--kmeans-max-points-per-centroid {cfg.kmeans_max_points_per_centroid}: must be at "
                        "least 1")
    if cfg.kmeans_assign_dtype not in ASSIGN_DTYPES:
        raise WesvError(f"--kmeans-assign-dtype {cfg.kmeans_assign_dtype!r}: expected one of "
                        f"{', '.join(ASSIGN_DTYPES)}")
    if cfg.min_cluster_size < 1:
        raise WesvError(f"--min-cluster-size {cfg.min_cluster_size}: must be at least 1")


def kmeans_stage(x: np.ndarray, cfg: ClusterConfig, backend: Backend) -> np.ndarray:
    """The k-means of ``kmeans``/``kmeans_ahc``: each unit row's k-means cluster (``cfg.num_clusters`` for kmeans,
    else ``cfg.num_kmeans``, default 4 x num_clusters, at most n)."""
    n = len(x)
    k0 = cfg.num_clusters if cfg.algorithm == "kmeans" else cfg.num_kmeans
    if k0 is None:
        k0 = 4 * cfg.num_clusters if cfg.num_clusters is not None else int(np.sqrt(n) * 4)
    _, assign = spherical_kmeans(x, min(k0, n), niter=cfg.kmeans_iters, seed=cfg.seed, backend=backend,
                                 index=cfg.kmeans_index, max_points_per_centroid=cfg.kmeans_max_points_per_centroid,
                                 assign_dtype=cfg.kmeans_assign_dtype)
    return assign


def ahc_stage(x: np.ndarray, assign: np.ndarray, cfg: ClusterConfig, backend: Backend) -> np.ndarray:
    """Merge k-means clusters by size-weighted average linkage to ``cfg.num_clusters`` / ``cfg.threshold``."""
    sizes = np.bincount(assign)
    means = (cluster_sums(x, assign, len(sizes)) / np.maximum(sizes, 1)[:, None]).astype(np.float32)
    used = sizes > 0
    atom = np.cumsum(used) - 1  # atoms left empty by k-means are skipped
    min_sim = None if cfg.threshold is None else 1.0 - cfg.threshold
    merged = weighted_average_linkage(means[used], sizes[used], num_clusters=cfg.num_clusters,
                                      min_similarity=min_sim, backend=backend)
    return merged[atom[assign]]


def cluster_embeddings(x: np.ndarray, cfg: ClusterConfig, timings: dict[str, float] | None = None) -> np.ndarray:
    """Cluster unit rows with ``cfg.algorithm``; returns labels 0..K-1. ``timings`` collects seconds per phase."""
    timings = {} if timings is None else timings
    backend = resolve_backend(cfg.device, cfg.kmeans_backend)
    n = len(x)
    if cfg.num_clusters is not None and cfg.num_clusters > n:
        raise WesvError(f"--num-clusters {cfg.num_clusters} exceeds the {n} utterances")
    t0 = time.perf_counter()
    if cfg.algorithm == "ahc":
        labels = cosine_ahc(x, cfg.num_clusters, cfg.threshold)
        timings["ahc"] = time.perf_counter() - t0
        return labels
    assign = kmeans_stage(x, cfg, backend)
    timings["kmeans"] = time.perf_counter() - t0
    logger.info("k-means (%s on %s): %d utterances -> %d clusters in %.1f s", backend.name, backend.device, n,
                int(assign.max()) + 1, timings["kmeans"])
    if cfg.algorithm == "kmeans":
        return assign
    t1 = time.perf_counter()
    labels = ahc_stage(x, assign, cfg, backend)
    timings["ahc"] = time.perf_counter() - t1
    return labels
