"""Kaldi trial lists (``enroll test target|nontarget``): read, check, write."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from wesv.data.datadir import atomic_write_lines, format_problems
from wesv.data.textcols import encode, gc_paused, read_columns, to_str_array
from wesv.data.textfile import read_text_lines
from wesv.errors import WesvError, where

LABELS = {"target": True, "nontarget": False}


@dataclass
class Trials:
    """A trial list as parallel arrays: ``enroll``, ``test`` (str) and ``label`` (bool, True = target)."""

    enroll: np.ndarray
    test: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.label.size)

    @classmethod
    def from_lists(cls, enroll: Iterable[str], test: Iterable[str], label: Iterable[bool]) -> "Trials":
        """Build from three equally long sequences."""
        e, t, lab = list(enroll), list(test), list(label)
        if not len(e) == len(t) == len(lab):
            raise ValueError(f"enroll/test/label lengths differ: {len(e)}, {len(t)}, {len(lab)}")
        return cls(np.array(e, dtype=object), np.array(t, dtype=object), np.array(lab, dtype=bool))

    def utts(self) -> set[str]:
        """Every id named on either side."""
        return set(self.enroll.tolist()) | set(self.test.tolist())

    def subset(self, mask: np.ndarray) -> "Trials":
        """Trials where ``mask`` is True, order kept."""
        return Trials(self.enroll[mask], self.test[mask], self.label[mask])

    @property
    def num_target(self) -> int:
        return int(self.label.sum())


def _read_clean(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(enroll, test, label)`` with ids as bytes arrays when the file is clean ASCII ``e t label`` lines, else None.

    Vectorised over the whole file (millions of lines in about a second); a None sends the caller to the per-line
    parser, which reports the problems, so both paths give the same results and messages.
    """
    try:
        cols = read_columns(path, 3)
    except OSError as err:
        raise WesvError(f"{path}: cannot read trials ({err.strerror}) — check the path") from err
    if cols is None:
        return None
    words = cols.field(2)
    label = words == b"target"
    if not (label | (words == b"nontarget")).all():
        return None
    return cols.field(0), cols.field(1), label


def scan_trials(path: str) -> tuple[Trials, list[str]]:
    """Parse a trials file leniently: the good lines as ``Trials`` and one message per bad line."""
    clean = _read_clean(path)
    if clean is not None:
        enroll, test, label = clean
        return Trials(to_str_array(enroll), to_str_array(test), label), []
    with gc_paused():
        return _scan_lines(path)


def _scan_lines(path: str) -> tuple[Trials, list[str]]:
    """The per-line lenient parser: slow, but it names every bad line."""
    enroll: list[str] = []
    test: list[str] = []
    label: list[bool] = []
    problems: list[str] = []
    lines = read_text_lines(path, "trials", "check the path")
    if not lines:
        problems.append(f"{path}: empty — a trials file has lines 'enroll-utt test-utt target|nontarget'")
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            problems.append(f"{where(path, lineno)}: blank line — delete it")
            continue
        if len(fields) != 3:
            problems.append(
                f"{where(path, lineno)}: expected 3 fields 'enroll test target|nontarget', got {len(fields)} — "
                "fix the line (a VoxCeleb list 'label utt utt' is converted by wesv.data.voxceleb)"
            )
            continue
        if fields[2] not in LABELS:
            problems.append(
                f"{where(path, lineno)}: label {fields[2]!r} is not 'target' or 'nontarget' — fix the third column"
            )
            continue
        enroll.append(fields[0])
        test.append(fields[1])
        label.append(LABELS[fields[2]])
    return Trials.from_lists(enroll, test, label), problems


def read_trials(path: str) -> Trials:
    """Read a Kaldi trials file; any malformed line raises ``WesvError`` naming every bad ``file:line``."""
    trials, problems = scan_trials(path)
    if problems:
        raise WesvError(format_problems(f"{path} is not a valid trials file", problems))
    return trials


def read_trial_columns(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``read_trials`` with the ids as fixed-width UTF-8 bytes (``S``) arrays: no Python string per id (scoring)."""
    clean = _read_clean(path)
    if clean is not None:
        return clean
    with gc_paused():
        trials, problems = _scan_lines(path)
    if problems:
        raise WesvError(format_problems(f"{path} is not a valid trials file", problems))
    return encode(trials.enroll), encode(trials.test), trials.label


def write_trials(path: str, trials: Trials) -> None:
    """Write a trials file atomically (temp file + rename), in the given order."""
    lines = (
        f"{e} {t} {'target' if lab else 'nontarget'}\n"
        for e, t, lab in zip(trials.enroll.tolist(), trials.test.tolist(), trials.label.tolist())
    )
    atomic_write_lines(path, lines)
