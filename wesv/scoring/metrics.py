"""Detection metrics: EER and minDCF from scores and target/nontarget labels, vectorised."""
import numpy as np


def error_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold: ``(p_miss, p_fa, thresholds)``.

    Accepting ``score >= threshold``; ties are handled by evaluating only between distinct score values.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be 1-D and equally long")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    n_tar = int(labels.sum())
    n_non = labels.size - n_tar
    if n_tar == 0 or n_non == 0:
        raise ValueError("need at least one target and one nontarget trial")
    order = np.argsort(scores)  # any order among equal scores will do: only distinct values are cut points
    s = scores[order]
    lab = labels[order]
    # Rejecting everything below s[i]: misses = targets among the first i trials.
    tar_cum = np.concatenate([[0], np.cumsum(lab)])
    non_cum = np.concatenate([[0], np.cumsum(~lab)])
    # Only thresholds at the first occurrence of each distinct score (and +inf) are valid cut points.
    first = np.concatenate([[True], s[1:] != s[:-1]])
    idx = np.concatenate([np.nonzero(first)[0], [s.size]])
    thresholds = np.concatenate([s[first], [np.inf]])
    p_miss = tar_cum[idx] / n_tar
    p_fa = (n_non - non_cum[idx]) / n_non
    return p_miss, p_fa, thresholds


def eer_from_rates(p_miss: np.ndarray, p_fa: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """EER (fraction) and its threshold from ``error_rates`` output, interpolating where the curves cross."""
    # p_miss rises and p_fa falls with the threshold; find where they cross.
    diff = p_miss - p_fa
    i = int(np.searchsorted(diff, 0.0, side="left"))
    if i == 0:
        return float(p_fa[0]), float(thresholds[0])
    j = i - 1
    d0, d1 = diff[j], diff[i]
    w = d0 / (d0 - d1) if d1 != d0 else 0.0
    eer = p_miss[j] + w * (p_miss[i] - p_miss[j])
    eer_fa = p_fa[j] + w * (p_fa[i] - p_fa[j])
    t_hi = thresholds[i] if np.isfinite(thresholds[i]) else thresholds[j]
    return float((eer + eer_fa) / 2), float(thresholds[j] + w * (t_hi - thresholds[j]))


def min_dcf_from_rates(p_miss: np.ndarray, p_fa: np.ndarray, p_target: float, c_miss: float = 1.0,
                       c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost from ``error_rates`` output."""
    dcf = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    default = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(dcf.min() / default)


def compute_eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate (fraction) and the threshold at it, interpolating between the two nearest cut points."""
    return eer_from_rates(*error_rates(scores, labels))


def compute_min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost at prior ``p_target``."""
    p_miss, p_fa, _ = error_rates(scores, labels)
    return min_dcf_from_rates(p_miss, p_fa, p_target, c_miss, c_fa)


def detection_summary(scores: np.ndarray, labels: np.ndarray,
                      p_targets: tuple[float, ...] = (0.01, 0.05)) -> dict:
    """EER (%), its threshold, minDCF at each prior and the counts, sorting the scores once."""
    return summary_from_rates(*error_rates(scores, labels), labels, p_targets)


def summary_from_rates(p_miss: np.ndarray, p_fa: np.ndarray, thr: np.ndarray, labels: np.ndarray,
                       p_targets: tuple[float, ...] = (0.01, 0.05)) -> dict:
    """``detection_summary`` from ``error_rates`` output already at hand (e.g. also drawn as a DET curve)."""
    eer, eer_thr = eer_from_rates(p_miss, p_fa, thr)
    labels = np.asarray(labels, dtype=bool)
    out = {"EER": 100.0 * eer, "eer_threshold": eer_thr}
    for p in p_targets:
        out[f"minDCF@{p:g}"] = min_dcf_from_rates(p_miss, p_fa, p)
    out.update(num_trials=int(labels.size), num_target=int(labels.sum()),
               num_nontarget=int(labels.size - labels.sum()))
    return out
