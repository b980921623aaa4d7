"""Decision thresholds measured on an evaluation set (EER and minDCF operating points), stored beside a model.

``thresholds.json`` in a model dir holds what ``python -m wesv.bin.verify`` needs to turn a score into a decision:
the thresholds, and the scoring that produced the scores (cosine, with the mean embedding that was subtracted).
"""
import json
import os

import numpy as np

from wesv.errors import WesvError
from wesv.scoring.metrics import eer_from_rates, error_rates

FORMAT = "wesv-thresholds"
VERSION = 1
FILENAME = "thresholds.json"
#: minDCF prior of the stored minDCF threshold.
P_TARGET = 0.01
CHOICES = ("eer", "mindcf")


def min_dcf_threshold(p_miss: np.ndarray, p_fa: np.ndarray, thresholds: np.ndarray, p_target: float,
                      c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minDCF and the threshold (accept ``score >= t``) where it is reached, from ``error_rates``."""
    dcf = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    i = int(np.argmin(dcf))
    t = float(thresholds[i])
    if not np.isfinite(t):  # rejecting everything is best: accept nothing seen on the evaluation set
        t = float(np.nextafter(thresholds[i - 1], np.inf)) if i else 0.0
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1 - p_target))), t


def thresholds_record(scores: np.ndarray, labels: np.ndarray, *, eval_set: str, trials: str, scores_path: str,
                      mean: np.ndarray | None = None, mean_source: str | None = None) -> dict:
    """The ``thresholds.json`` content for cosine scores of a trial list (``mean``: the one subtracted, if any)."""
    p_miss, p_fa, thr = error_rates(scores, labels)
    eer, eer_t = eer_from_rates(p_miss, p_fa, thr)
    dcf, dcf_t = min_dcf_threshold(p_miss, p_fa, thr, P_TARGET)
    return {
        "format": FORMAT, "version": VERSION, "eval_set": eval_set, "trials": os.path.abspath(trials),
        "scores": os.path.abspath(scores_path), "num_trials": int(len(labels)),
        "scoring": {"method": "cosine", "mean_subtraction": mean is not None,
                    "mean_source": os.path.abspath(mean_source) if mean_source else None,
                    "mean": None if mean is None else [float(v) for v in np.asarray(mean, dtype=np.float32)]},
        "eer": {"value_percent": 100.0 * eer, "threshold": eer_t},
        "mindcf": {"p_target": P_TARGET, "value": dcf, "threshold": dcf_t},
    }


def write_thresholds(directory: str, record: dict) -> str:
    """Write ``directory/thresholds.json`` atomically; returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILENAME)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_thresholds(path: str) -> dict:
    """Read and check a ``thresholds.json``; missing or foreign files raise WesvError saying how to make one."""
    hint = ("write one with python -m wesv.bin.compute_metrics ... --save-thresholds MODEL_DIR, or give "
            "--threshold <number>")
    if not os.path.isfile(path):
        raise WesvError(f"{path}: no thresholds file; {hint}")
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as err:
        raise WesvError(f"{path}: not readable JSON ({err}); {hint}") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise WesvError(f"{path}: not a wesv thresholds file (no '{FORMAT}' header); {hint}")
    if rec.get("version", 0) > VERSION:
        raise WesvError(f"{path}: thresholds file version {rec['version']} is newer than this wesv; upgrade wesv")
    return rec


def pick_threshold(rec: dict, which: str) -> float:
    """The threshold ``which`` (``eer`` or ``mindcf``) of a thresholds record."""
    if which not in CHOICES:
        raise WesvError(f"--threshold {which!r}: use eer, mindcf or a number")
    return float(rec[which]["threshold"])


def record_mean(rec: dict) -> np.ndarray | None:
    """The mean embedding the stored thresholds were measured with (None: no mean subtraction)."""
    mean = rec.get("scoring", {}).get("mean")
    return None if mean is None else np.asarray(mean, dtype=np.float32)
