"""Adaptive symmetric score normalisation (AS-norm) against a cohort of (speaker-averaged) embeddings."""
from __future__ import annotations

import numpy as np

from wesv.errors import WesvError
from wesv.log import get_logger
from wesv.scoring.cosine import normalize

log = get_logger(__name__)


def speaker_cohort(keys: list[str], matrix: np.ndarray, utt2spk: dict[str, str],
                   mean: np.ndarray | None = None, source: str = "utt2spk") -> tuple[list[str], np.ndarray]:
    """Average the normalised embeddings of each speaker (or cluster) and renormalise: ``(speakers, matrix)``."""
    spk_of = [utt2spk.get(k) for k in keys]
    keep = np.array([s is not None for s in spk_of])
    if not keep.any():
        raise WesvError(f"{source}: names none of the cohort embeddings' utterances — pass the utt2spk of the "
                        "data dir the cohort embeddings were extracted from")
    if not keep.all():
        log.warning("%d of %d cohort embeddings have no speaker in %s; left out of the cohort",
                    int((~keep).sum()), len(keys), source)
    speakers, inverse = np.unique(np.array([s for s in spk_of if s is not None], dtype=object), return_inverse=True)
    x = normalize(matrix[keep], mean)
    sums = np.zeros((len(speakers), x.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, x)
    return speakers.tolist(), normalize(sums.astype(np.float32))


def cohort_stats(emb: np.ndarray, cohort: np.ndarray, top_k: int | None,
                 chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each (normalised) row's cosine scores against its ``top_k`` closest cohort members.

    ``top_k`` None or at least the cohort size uses the whole cohort (plain S-norm).
    """
    cohort = np.ascontiguousarray(cohort, dtype=np.float32)
    k = cohort.shape[0] if top_k is None or top_k >= cohort.shape[0] else int(top_k)
    if k < 1:
        raise WesvError(f"AS-norm top-k must be at least 1, got {top_k}")
    means = np.empty(emb.shape[0])
    stds = np.empty(emb.shape[0])
    for s in range(0, emb.shape[0], chunk):
        sc = np.asarray(emb[s:s + chunk], dtype=np.float32) @ cohort.T
        if k < sc.shape[1]:
            sc = np.partition(sc, sc.shape[1] - k, axis=1)[:, -k:]
        sc = sc.astype(np.float64)
        means[s:s + chunk] = sc.mean(axis=1)
        stds[s:s + chunk] = sc.std(axis=1)
    return means, np.maximum(stds, 1e-8)


def asnorm(raw: np.ndarray, enroll_mean: np.ndarray, enroll_std: np.ndarray, test_mean: np.ndarray,
           test_std: np.ndarray) -> np.ndarray:
    """Symmetric normalisation: the mean of the enroll-side and test-side z-normalised scores."""
    return 0.5 * ((raw - enroll_mean) / enroll_std + (raw - test_mean) / test_std)
