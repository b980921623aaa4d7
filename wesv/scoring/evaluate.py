"""Match a score file to a trial list by key and compute EER / minDCF (and the DET curve)."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from wesv.data.textcols import as_width, decode, pair_keys
from wesv.data.trials import read_trial_columns
from wesv.errors import WesvError, where
from wesv.log import get_logger
from wesv.scoring.io import read_score_columns
from wesv.scoring.metrics import error_rates, summary_from_rates

log = get_logger(__name__)

P_TARGETS = (0.01, 0.05)


def _first_duplicate(keys: np.ndarray, enroll: np.ndarray, test: np.ndarray) -> tuple[int, int] | None:
    """Positions (earlier, later) of the repeated pair whose repeat comes first, or None when all are distinct."""
    sk = np.sort(keys)
    if not (sk[1:] == sk[:-1]).any():
        return None  # the usual case, settled by one sort
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    cand = np.nonzero(sk[1:] == sk[:-1])[0]
    for c in cand[np.argsort(order[cand + 1])]:
        b = int(order[c + 1])
        lo = int(np.searchsorted(sk, sk[c]))
        same = [int(p) for p in order[lo:c + 1] if enroll[p] == enroll[b] and test[p] == test[b]]
        if same:
            return min(same), b
    return None


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality of two bytes arrays of possibly different widths."""
    width = max(a.dtype.itemsize, b.dtype.itemsize)
    return as_width(a, width) == as_width(b, width)


def match_scores(trial_ids: tuple[np.ndarray, np.ndarray], score_file: tuple[np.ndarray, np.ndarray, np.ndarray],
                 trials_path: str, scores_path: str) -> tuple[np.ndarray, int]:
    """The score of each trial in trial order, and how many score lines name no trial.

    Ids are bytes (``S``) arrays (``read_trial_columns``, ``read_score_columns``). Missing or duplicated keys raise
    naming the file and line.
    """
    t_enroll, t_test = trial_ids
    s_enroll, s_test, s_values = score_file
    t_keys = pair_keys(t_enroll, t_test)
    dup = _first_duplicate(t_keys, t_enroll, t_test)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(trials_path, b + 1)}: trial '{decode(t_enroll[b])} {decode(t_test[b])}' repeats "
                        f"line {a + 1} — delete the duplicate")
    if len(s_enroll) == len(t_enroll) and _same(s_enroll, t_enroll).all() and _same(s_test, t_test).all():
        return s_values, 0  # the usual case: scored from this very list, in order
    s_keys = pair_keys(s_enroll, s_test)
    dup = _first_duplicate(s_keys, s_enroll, s_test)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(scores_path, b + 1)}: score for '{decode(s_enroll[b])} {decode(s_test[b])}' "
                        f"repeats line {a + 1} — each trial must be scored once (was a score file concatenated "
                        "twice?)")
    order = np.argsort(s_keys)
    sorted_keys = s_keys[order]
    pos = order[np.minimum(np.searchsorted(sorted_keys, t_keys), len(sorted_keys) - 1)]
    found = s_keys[pos] == t_keys
    found &= _same(s_enroll[pos], t_enroll)
    found &= _same(s_test[pos], t_test)
    if not found.all():
        i = int(np.argmin(found))
        raise WesvError(f"{where(trials_path, i + 1)}: trial '{decode(t_enroll[i])} {decode(t_test[i])}' has no "
                        f"score in {scores_path} ({int((~found).sum())} trials missing) — score the same trials "
                        "list")
    unused = len(s_keys) - len(t_keys)
    if unused:
        log.warning("%s: %d score lines name no trial in %s; ignored", scores_path, unused, trials_path)
    return s_values[pos], unused


def matched_scores(trials_path: str, scores_path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Read a trials list and a score file: ``(scores in trial order, labels, unused score lines)``."""
    enroll, test, labels = read_trial_columns(trials_path)
    scores, unused = match_scores((enroll, test), read_score_columns(scores_path), trials_path, scores_path)
    return scores, labels, unused


def evaluate(trials_path: str, scores_path: str, system: str | None = None,
             extra: dict | None = None, det_png: str | None = None) -> dict:
    """EER (%), minDCF@0.01/0.05, the EER threshold and counts for a score file against its trials."""
    t0 = time.perf_counter()
    scores, labels, unused = matched_scores(trials_path, scores_path)
    t_read = time.perf_counter()
    num_target = int(labels.sum())
    if num_target == 0 or num_target == len(labels):
        raise WesvError(f"{trials_path}: needs both target and nontarget trials to compute EER/minDCF")
    result: dict = {"system": system or os.path.basename(os.path.dirname(os.path.abspath(scores_path)))}
    rates = error_rates(scores, labels)
    result.update(summary_from_rates(*rates, labels, P_TARGETS))
    result["trials"] = os.path.abspath(trials_path)
    result["scores"] = os.path.abspath(scores_path)
    result["num_scores_unused"] = unused
    t_metrics = time.perf_counter()
    if det_png:
        from wesv.scoring.det import DetCurve, plot_det
        plot_det([DetCurve(result["system"], rates[0], rates[1], result["EER"] / 100)], det_png)
        result["det_png"] = os.path.abspath(det_png)
    log.info("evaluated %d trials (%.1f s reading and matching, %.1f s metrics, %.1f s DET plot)", len(labels),
             t_read - t0, t_metrics - t_read, time.perf_counter() - t_metrics)
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


def save_thresholds(model_dir: str, trials_path: str, scores_path: str, mean_path: str | None = None,
                    eval_set: str | None = None) -> str:
    """Write ``model_dir/thresholds.json`` from cosine scores of a trial list; returns its path."""
    from wesv.scoring.io import read_mean
    from wesv.scoring.thresholds import thresholds_record, write_thresholds

    if not os.path.isdir(model_dir):
        raise WesvError(f"--save-thresholds {model_dir}: not a directory; give the model's experiment dir")
    mean = read_mean(mean_path) if mean_path else None
    scores, labels, _ = matched_scores(trials_path, scores_path)
    name = eval_set or os.path.basename(os.path.dirname(os.path.abspath(trials_path)))
    rec = thresholds_record(scores, labels, eval_set=name, trials=trials_path, scores_path=scores_path, mean=mean,
                            mean_source=mean_path)
    path = write_thresholds(model_dir, rec)
    log.info("thresholds of %s (EER %.4f, minDCF@%g %.4f) written to %s", name, rec["eer"]["threshold"],
             rec["mindcf"]["p_target"], rec["mindcf"]["threshold"], path)
    return path
