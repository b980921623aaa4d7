"""How well clusters match true speakers: NMI, purity, inverse purity (only ever to *measure* pseudo-labels)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def purity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of items that belong to their cluster's majority speaker."""
    table = contingency_matrix(truth, pred, sparse=True)  # speakers x clusters
    return float(table.max(axis=0).sum() / len(pred))


def inverse_purity(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of items that sit in their speaker's majority cluster (penalises splitting a speaker)."""
    return purity(truth, pred)


def cluster_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """NMI, purity, inverse purity, numbers of clusters and of true speakers for one labelling."""
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    return {
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "purity": purity(pred, truth),
        "inverse_purity": inverse_purity(pred, truth),
        "num_clusters": int(len(np.unique(pred))),
        "num_speakers": int(len(np.unique(truth))),
        "num_utts": int(len(pred)),
    }
