"""Cleaning pseudo-labels: keep the utterances closest to their cluster centroid, drop clusters that are too small."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def cluster_sums(x: np.ndarray, labels: np.ndarray, num_clusters: int | None = None) -> np.ndarray:
    """Per-cluster sums of rows, ``(K, d)`` float64, through one sparse product (fast for millions of rows)."""
    k = int(labels.max()) + 1 if num_clusters is None else num_clusters
    onehot = sp.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    return np.asarray(onehot @ np.asarray(x, dtype=np.float64))


def centroid_similarity(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine similarity of each unit row with its own cluster's (normalised) mean."""
    sums = cluster_sums(x, labels)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return np.einsum("ij,ij->i", x, centroids[labels])


def keep_closest(x: np.ndarray, labels: np.ndarray, fraction: float) -> np.ndarray:
    """Mask keeping ``round(fraction * n)`` rows, those most similar to their cluster centroid (global ranking,
    so loose clusters lose more than tight ones); ties go to the earlier row."""
    n = len(labels)
    num_keep = int(round(fraction * n))
    order = np.argsort(-centroid_similarity(x, labels), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:num_keep]] = True
    return mask


def drop_small(labels: np.ndarray, mask: np.ndarray, min_size: int) -> np.ndarray:
    """Mask ``mask`` less every row whose cluster has fewer than ``min_size`` rows inside ``mask``."""
    sizes = np.bincount(labels[mask], minlength=int(labels.max()) + 1)
    return mask & (sizes[labels] >= min_size)
