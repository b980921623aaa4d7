"""Score-level fusion of branches (e.g. audio + face): z-normalise each score file over its trials, weighted sum."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from wesv.errors import WesvError, where
from wesv.scoring.io import read_scores


def _trial_index(path: str, enroll: list[str], test: list[str]) -> dict[tuple[str, str], int]:
    index: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(zip(enroll, test)):
        if pair in index:
            raise WesvError(f"{where(path, i + 1)}: trial {pair[0]} {pair[1]} repeats line {index[pair] + 1} — "
                            "score each trial once")
        index[pair] = i
    return index


def znorm(scores: np.ndarray, path: str) -> np.ndarray:
    """``(s - mean) / std`` over the file's trials; a constant file is a WesvError."""
    std = float(scores.std())
    if not std > 0:
        raise WesvError(f"{path}: every score is {scores[0]:g} — z-normalisation needs scores that vary; re-run "
                        "scoring for this branch")
    return (scores - scores.mean()) / std


def fuse_scores(paths: Sequence[str], weights: Sequence[float]) -> tuple[list[str], list[str], np.ndarray]:
    """``(enroll, test, fused)`` in the first file's trial order: ``sum_i w_i * znorm(scores_i)``; every file must
    hold the same trials (any order), else a WesvError names the file, line and trial."""
    if len(paths) < 2:
        raise WesvError(f"--scores needs at least two score files to fuse, got {len(paths)}")
    if len(weights) != len(paths):
        raise WesvError(f"--weights gives {len(weights)} weight(s) for {len(paths)} score files — one per file, in "
                        "order")
    if not all(np.isfinite(w) for w in weights) or not any(w != 0 for w in weights):
        raise WesvError(f"--weights must be finite numbers, not all zero, got {' '.join(map(str, weights))}")
    enroll, test, first = read_scores(paths[0])
    ref = _trial_index(paths[0], enroll, test)
    fused = weights[0] * znorm(first, paths[0])
    for path, w in zip(paths[1:], weights[1:]):
        e, t, s = read_scores(path)
        index = _trial_index(path, e, t)
        unknown = next((i for i, pair in enumerate(zip(e, t)) if pair not in ref), None)
        if unknown is not None:
            raise WesvError(f"{where(path, unknown + 1)}: trial {e[unknown]} {t[unknown]} is not in {paths[0]} — "
                            "fuse scores of one trial list")
        if len(index) != len(ref):
            lost = next(i for i, pair in enumerate(zip(enroll, test)) if pair not in index)
            raise WesvError(f"{path}: has {len(index)} trials, {paths[0]} has {len(ref)}; e.g. "
                            f"{where(paths[0], lost + 1)} ({enroll[lost]} {test[lost]}) is missing — score every "
                            "branch on the same trial list")
        order = np.fromiter((index[pair] for pair in zip(enroll, test)), dtype=np.int64, count=len(enroll))
        fused = fused + w * znorm(s, path)[order]
    return enroll, test, fused
