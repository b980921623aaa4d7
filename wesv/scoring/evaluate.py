"""Match a score file to a trial list by key and compute EER / minDCF (and the DET curve)."""
from __future__ import annotations

import json
import os

import numpy as np

from wesv.data.trials import Trials, read_trials
from wesv.errors import WesvError, where
from wesv.log import get_logger
from wesv.scoring.io import gc_paused, read_scores
from wesv.scoring.metrics import error_rates, summary_from_rates

log = get_logger(__name__)

P_TARGETS = (0.01, 0.05)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _pair_keys(enroll: list[str], test: list[str]) -> np.ndarray:
    """A 64-bit key per (enroll, test) pair from Python's string hashes.

    Hashing is ~10× cheaper than dict look-ups of millions of ids; a key collision is possible in principle, so
    every key match that decides an outcome is confirmed on the strings.
    """
    he = np.fromiter(map(hash, enroll), dtype=np.int64, count=len(enroll)).view(np.uint64)
    ht = np.fromiter(map(hash, test), dtype=np.int64, count=len(test)).view(np.uint64)
    return he * _MIX + (ht ^ (ht >> np.uint64(31)))


def _first_duplicate(keys: np.ndarray, enroll: list[str], test: list[str]) -> tuple[int, int] | None:
    """Positions (earlier, later) of the repeated pair whose repeat comes first, or None when all are distinct."""
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


def match_scores(trials: Trials, score_file: tuple[list[str], list[str], np.ndarray], trials_path: str,
                 scores_path: str) -> tuple[np.ndarray, int]:
    """The score of each trial in trial order, and how many score lines name no trial.

    Missing or duplicated keys raise naming the file and line.
    """
    s_enroll, s_test, s_values = score_file
    t_enroll, t_test = trials.enroll.tolist(), trials.test.tolist()
    t_keys = _pair_keys(t_enroll, t_test)
    dup = _first_duplicate(t_keys, t_enroll, t_test)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(trials_path, b + 1)}: trial '{t_enroll[b]} {t_test[b]}' repeats line "
                        f"{a + 1} — delete the duplicate")
    if s_enroll == t_enroll and s_test == t_test:  # the usual case: scored from this very list, in order
        return s_values, 0
    s_keys = _pair_keys(s_enroll, s_test)
    dup = _first_duplicate(s_keys, s_enroll, s_test)
    if dup is not None:
        a, b = dup
        raise WesvError(f"{where(scores_path, b + 1)}: score for '{s_enroll[b]} {s_test[b]}' repeats line {a + 1} "
                        "— each trial must be scored once (was a score file concatenated twice?)")
    order = np.argsort(s_keys)
    sorted_keys = s_keys[order]
    pos = order[np.minimum(np.searchsorted(sorted_keys, t_keys), len(sorted_keys) - 1)]
    found = (s_keys[pos] == t_keys)
    found &= np.array(s_enroll, dtype=object)[pos] == trials.enroll
    found &= np.array(s_test, dtype=object)[pos] == trials.test
    if not found.all():
        i = int(np.argmin(found))
        raise WesvError(f"{where(trials_path, i + 1)}: trial '{t_enroll[i]} {t_test[i]}' has no score in "
                        f"{scores_path} ({int((~found).sum())} trials missing) — score the same trials list")
    unused = len(s_keys) - len(t_keys)
    if unused:
        log.warning("%s: %d score lines name no trial in %s; ignored", scores_path, unused, trials_path)
    return s_values[pos], unused


def evaluate(trials_path: str, scores_path: str, system: str | None = None,
             extra: dict | None = None, det_png: str | None = None) -> dict:
    """EER (%), minDCF@0.01/0.05, the EER threshold and counts for a score file against its trials."""
    with gc_paused():
        trials = read_trials(trials_path)
        scores, unused = match_scores(trials, read_scores(scores_path), trials_path, scores_path)
    if trials.num_target == 0 or trials.num_target == len(trials):
        raise WesvError(f"{trials_path}: needs both target and nontarget trials to compute EER/minDCF")
    result: dict = {"system": system or os.path.basename(os.path.dirname(os.path.abspath(scores_path)))}
    rates = error_rates(scores, trials.label)
    result.update(summary_from_rates(*rates, trials.label, P_TARGETS))
    result["trials"] = os.path.abspath(trials_path)
    result["scores"] = os.path.abspath(scores_path)
    result["num_scores_unused"] = unused
    if det_png:
        from wesv.scoring.det import DetCurve, plot_det
        plot_det([DetCurve(result["system"], rates[0], rates[1], result["EER"] / 100)], det_png)
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
