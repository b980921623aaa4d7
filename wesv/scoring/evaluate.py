"""Match a score file to a trial list by key and compute EER / minDCF (and the DET curve)."""
from __future__ import annotations

import json
import os

import numpy as np

from wesv.data.trials import Trials, read_trials
from wesv.errors import WesvError, where
from wesv.log import get_logger
from wesv.scoring.io import gc_paused, read_scores
from wesv.scoring.metrics import detection_summary, error_rates

log = get_logger(__name__)

P_TARGETS = (0.01, 0.05)


class _Codes(dict):
    """utt id → small int, numbering new ids as they are met (``__missing__`` keeps lookups at C speed)."""

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self)
        return code


def _codes(keys: list[str], codes: _Codes) -> np.ndarray:
    return np.fromiter(map(codes.__getitem__, keys), dtype=np.int64, count=len(keys))


def _first_duplicate(pairs: np.ndarray) -> tuple[int, int] | None:
    """Positions (first, second) of the earliest-repeated value, or None when all are distinct."""
    order = np.argsort(pairs, kind="stable")
    sp = pairs[order]
    dup = np.nonzero(sp[1:] == sp[:-1])[0]
    if dup.size == 0:
        return None
    # Of all repeats, report the one whose second occurrence comes first in the file.
    second = order[dup + 1]
    k = int(np.argmin(second))
    value = sp[dup[k]]
    first = int(order[np.searchsorted(sp, value)])
    return first, int(second[k])


def match_scores(trials: Trials, score_file: tuple[list[str], list[str], np.ndarray], trials_path: str,
                 scores_path: str) -> tuple[np.ndarray, int]:
    """The score of each trial in trial order, and how many score lines name no trial.

    Missing or duplicated keys raise naming the file and line.
    """
    s_enroll, s_test, s_values = score_file
    t_enroll, t_test = trials.enroll.tolist(), trials.test.tolist()
    codes = _Codes()
    te, tt = _codes(t_enroll, codes), _codes(t_test, codes)
    # Pair ids from utt codes; the multiplier leaves room for ids first seen in the score file.
    n = len(codes) + 2 * len(s_enroll) + 1
    t_pairs = te * n + tt
    dup = _first_duplicate(t_pairs)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(trials_path, b + 1)}: trial '{t_enroll[b]} {t_test[b]}' repeats line "
                        f"{a + 1} — delete the duplicate")
    if s_enroll == t_enroll and s_test == t_test:  # the usual case: scored from this very list, in order
        return s_values, 0
    s_pairs = _codes(s_enroll, codes) * n + _codes(s_test, codes)
    dup = _first_duplicate(s_pairs)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(scores_path, b + 1)}: score for '{s_enroll[b]} {s_test[b]}' repeats line {a + 1} "
                        "— each trial must be scored once (was a score file concatenated twice?)")
    order = np.argsort(s_pairs)
    sorted_pairs = s_pairs[order]
    pos = np.minimum(np.searchsorted(sorted_pairs, t_pairs), len(sorted_pairs) - 1)
    found = sorted_pairs[pos] == t_pairs
    if not found.all():
        i = int(np.argmin(found))
        raise WesvError(f"{where(trials_path, i + 1)}: trial '{trials.enroll[i]} {trials.test[i]}' has no score in "
                        f"{scores_path} ({int((~found).sum())} trials missing) — score the same trials list")
    unused = len(s_pairs) - len(t_pairs)
    if unused:
        log.warning("%s: %d score lines name no trial in %s; ignored", scores_path, unused, trials_path)
    return s_values[order[pos]], unused


def evaluate(trials_path: str, scores_path: str, system: str | None = None,
             extra: dict | None = None, det_png: str | None = None) -> dict:
    """EER (%), minDCF@0.01/0.05, the EER threshold and counts for a score file against its trials."""
    with gc_paused():
        trials = read_trials(trials_path)
        scores, unused = match_scores(trials, read_scores(scores_path), trials_path, scores_path)
    if trials.num_target == 0 or trials.num_target == len(trials):
        raise WesvError(f"{trials_path}: needs both target and nontarget trials to compute EER/minDCF")
    result: dict = {"system": system or os.path.basename(os.path.dirname(os.path.abspath(scores_path)))}
    result.update(detection_summary(scores, trials.label, P_TARGETS))
    result["trials"] = os.path.abspath(trials_path)
    result["scores"] = os.path.abspath(scores_path)
    result["num_scores_unused"] = unused
    if det_png:
        from wesv.scoring.det import DetCurve, plot_det
        p_miss, p_fa, _ = error_rates(scores, trials.label)
        plot_det([DetCurve(result["system"], p_miss, p_fa, result["EER"] / 100)], det_png)
        result["det_png"] = os.path.abspath(det_png)
    result["extra"] = dict(extra or {})
    return result


def format_result(result: dict) -> str:
    """The printed lines: ``EER 3.210`` (percent), ``minDCF@0.01 0.3210``, ``minDCF@0.05 0.2100``."""
    lines = [f"EER {result['EER']:.3f}"]
    lines += [f"minDCF@{p:g} {result[f'minDCF@{p:g}']:.4f}" for p in P_TARGETS]
    return "\n".join(lines)


def write_json(path: str, result: dict) -> None:
    """Write the result dict as indented JSON, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
