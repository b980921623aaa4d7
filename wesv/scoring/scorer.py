"""Score a trial list: cosine on mean-subtracted, L2-normalised embeddings, optionally AS-normalised."""
from __future__ import annotations

import os
import time

import numpy as np

from wesv.data.textcols import encode
from wesv.data.trials import read_trial_columns
from wesv.log import get_logger
from wesv.scoring.asnorm import asnorm, cohort_stats, speaker_cohort
from wesv.scoring.cosine import lookup, normalize, pair_scores
from wesv.scoring.io import check_embeddings, read_embeddings, read_mean, write_scores

log = get_logger(__name__)


def _side_stats(matrix: np.ndarray, idx: np.ndarray, cohort: np.ndarray,
                top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cohort mean/std per trial, computed once for each distinct embedding the trials use."""
    rows, inverse = np.unique(idx, return_inverse=True)
    mean, std = cohort_stats(matrix[rows], cohort, top_k)
    return mean[inverse], std[inverse]


def score_trials(enroll_utts: np.ndarray, test_utts: np.ndarray, enroll: tuple[list[str], np.ndarray],
                 test: tuple[list[str], np.ndarray], trials_path: str = "trials", mean: np.ndarray | None = None,
                 cohort: np.ndarray | None = None, top_k: int | None = 300) -> np.ndarray:
    """Cosine score of each trial (float64); with a cohort (already normalised), AS-norm with ``top_k``.

    ``enroll_utts``/``test_utts`` are str or bytes (``S``) arrays; ``enroll``/``test`` are ``(keys, raw matrix)``;
    ``mean`` is subtracted before normalising.
    """
    ekeys, emat = enroll
    tkeys, tmat = test
    ekeys_b = encode(ekeys)
    ei = lookup(enroll_utts, ekeys_b, trials_path, "enroll")
    ti = lookup(test_utts, ekeys_b if tkeys is ekeys else tkeys, trials_path, "test")
    e = normalize(emat, mean)
    t = e if tmat is emat else normalize(tmat, mean)
    raw = pair_scores(e, t, ei, ti)
    if cohort is None:
        return raw
    e_mean, e_std = _side_stats(e, ei, cohort, top_k)
    t_mean, t_std = _side_stats(t, ti, cohort, top_k)
    return asnorm(raw, e_mean, e_std, t_mean, t_std)


def run_scoring(trials_path: str, enroll_scp: str, test_scp: str, out: str, mean_path: str | None = None,
                cohort_scp: str | None = None, cohort_utt2spk: str | None = None,
                top_k: int | None = 300) -> dict:
    """Read trials and embeddings, score, write ``enroll test score`` lines to ``out``; return timings."""
    t0 = time.perf_counter()
    enroll_utts, test_utts, _ = read_trial_columns(trials_path)
    enroll = read_embeddings(enroll_scp)
    check_embeddings(*enroll, enroll_scp)
    same = os.path.abspath(enroll_scp) == os.path.abspath(test_scp)
    test = enroll if same else read_embeddings(test_scp)
    if not same:
        check_embeddings(*test, test_scp)
    mean = read_mean(mean_path) if mean_path else None
    cohort = None
    if cohort_scp:
        ckeys, cmat = read_embeddings(cohort_scp)
        check_embeddings(ckeys, cmat, cohort_scp)
        if cohort_utt2spk:
            from wesv.data.datadir import read_utt2spk
            ckeys, cohort = speaker_cohort(ckeys, cmat, read_utt2spk(cohort_utt2spk), mean, cohort_utt2spk)
        else:
            cohort = normalize(cmat, mean)
        log.info("AS-norm cohort: %d %s, top-k %s", len(ckeys), "speakers" if cohort_utt2spk else "embeddings",
                 top_k if top_k is not None else "all")
    t_read = time.perf_counter()
    scores = score_trials(enroll_utts, test_utts, enroll, test, trials_path, mean, cohort, top_k)
    t_score = time.perf_counter()
    write_scores(out, enroll_utts, test_utts, scores)
    t_write = time.perf_counter()
    log.info("scored %d trials (%.1f s reading, %.1f s scoring, %.1f s writing) → %s",
             len(scores), t_read - t0, t_score - t_read, t_write - t_score, out)
    return {"num_trials": len(scores), "read_s": t_read - t0, "score_s": t_score - t_read,
            "write_s": t_write - t_score}
