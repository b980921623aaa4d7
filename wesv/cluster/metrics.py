"""How well clusters match true speakers: NMI, AMI, ARI, purity, inverse purity (only ever to *measure* pseudo-labels).

NMI and purity reward many small clusters even when they are random (purity is 1 for singletons); AMI and ARI are
corrected for chance (0 for a random partition), and ``chance_metrics`` gives every number for a random partition
with the same cluster sizes, so that a report shows how far above chance a labelling is.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

CHANCE_SEED = 0  # fixed, so the chance row of a report repeats


def purity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of items that belong to their cluster's majority speaker."""
    table = contingency_matrix(truth, pred, sparse=True)  # speakers x clusters
    return float(table.max(axis=0).sum() / len(pred))


def inverse_purity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of items that sit in their speaker's majority cluster (penalises splitting a speaker)."""
    return purity(truth, pred)


def cluster_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """NMI, AMI, ARI, purity, inverse purity, numbers of clusters and of true speakers for one labelling."""
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    return {
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "ami": float(adjusted_mutual_info_score(truth, pred)),
        "ari": float(adjusted_rand_score(truth, pred)),
        "purity": purity(pred, truth),
        "inverse_purity": inverse_purity(pred, truth),
        "num_clusters": int(len(np.unique(pred))),
        "num_speakers": int(len(np.unique(truth))),
        "num_utts": int(len(pred)),
    }


def chance_partition(pred: np.ndarray, seed: int = CHANCE_SEED) -> np.ndarray:
    """The labels of ``pred`` shuffled over the items: the same cluster sizes, assignment at random."""
    return np.random.default_rng(seed).permutation(np.asarray(pred))


def chance_metrics(pred: np.ndarray, truth: np.ndarray, seed: int = CHANCE_SEED) -> dict[str, float | int]:
    """``cluster_metrics`` of the chance partition of ``pred`` (what the cluster sizes alone score)."""
    return cluster_metrics(chance_partition(pred, seed), truth)
