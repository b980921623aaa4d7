"""Embedding, vector and score files: Kaldi ``ark,scp`` through kaldiio, and ``enroll test score`` text."""
from __future__ import annotations

import contextlib
import gc
import os
from typing import Iterator

import kaldiio
import numpy as np

from wesv.errors import WesvError, where


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing millions of lines into lists otherwise spends ~10× longer in
    collections that find nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_embeddings(scp: str) -> tuple[list[str], np.ndarray]:
    """Read every embedding an scp names: ``(keys, matrix (N, D) float32)`` in scp order."""
    if not os.path.isfile(scp):
        raise WesvError(f"{scp}: embedding scp not found — run extraction (and its merge step) first")
    keys: list[str] = []
    rows: list[np.ndarray] = []
    lineno = 0
    try:
        for lineno, (key, mat) in enumerate(kaldiio.load_scp_sequential(scp), 1):
            vec = np.asarray(mat, dtype=np.float32).reshape(-1)
            if rows and vec.size != rows[0].size:
                raise WesvError(f"{where(scp, lineno)}: embedding {key!r} has dimension {vec.size}, the first has "
                                f"{rows[0].size} — were two models' embeddings mixed?")
            keys.append(key)
            rows.append(vec)
    except WesvError:
        raise
    except Exception as err:  # kaldiio raises plain OSError/ValueError/KeyError for bad lines and arks
        raise WesvError(f"{where(scp, lineno + 1)}: cannot read embedding ({type(err).__name__}: {err}) — "
                        "check that the ark it points to exists and is complete") from err
    if not rows:
        raise WesvError(f"{scp}: no embeddings — the scp is empty")
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        for i, k in enumerate(keys, 1):
            if k in seen:
                raise WesvError(f"{where(scp, i)}: key {k!r} appears twice — merge each shard once")
            seen.add(k)
    return keys, np.stack(rows)


def read_vector(path: str) -> np.ndarray:
    """Read one Kaldi vector (e.g. ``mean.vec``) as float32."""
    try:
        return np.asarray(kaldiio.load_mat(path), dtype=np.float32).reshape(-1)
    except Exception as err:
        raise WesvError(f"{path}: cannot read a Kaldi vector ({err}) — write it with merge_embeddings") from err


def write_vector(path: str, vec: np.ndarray) -> None:
    """Write one Kaldi binary vector atomically (temp name, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        kaldiio.save_mat(f, np.asarray(vec, dtype=np.float32).reshape(-1))
    os.replace(tmp, path)


def read_mean(path: str) -> np.ndarray:
    """A mean embedding: from a ``.vec`` file as is, or the mean of every embedding an scp names."""
    if path.endswith(".scp"):
        return read_embeddings(path)[1].mean(axis=0, dtype=np.float64).astype(np.float32)
    return read_vector(path)


def read_scores(path: str) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``enroll test score`` lines: ``(enroll, test, scores float64)``; a bad line names file:line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as err:
        raise WesvError(f"{path}: cannot read scores ({err.strerror}) — check the path") from err
    if lines and lines[-1] == "":
        lines.pop()
    fields = list(map(str.split, lines))  # C-level loops: this file can have millions of lines
    if set(map(len, fields)) != {3}:
        lineno = next((i for i, f in enumerate(fields, 1) if len(f) != 3), 1)
        got = len(fields[lineno - 1]) if fields else 0
        raise WesvError(f"{where(path, lineno)}: expected 'enroll test score', got {got} fields — "
                        "fix or delete the line")
    enroll, test, values = (list(c) for c in zip(*fields))
    del fields
    try:
        scores = np.array(values, dtype=np.float64)
    except ValueError:
        scores = np.empty(len(values))
        for i, v in enumerate(values):
            try:
                scores[i] = float(v)
            except ValueError:
                raise WesvError(f"{where(path, i + 1)}: score {v!r} is not a number — fix the line") from None
    bad = np.nonzero(~np.isfinite(scores))[0]
    if bad.size:
        raise WesvError(f"{where(path, int(bad[0]) + 1)}: score {values[bad[0]]!r} is not finite — "
                        "re-run scoring (a zero embedding gives NaN)")
    if not enroll:
        raise WesvError(f"{path}: no scores — the file is empty")
    return enroll, test, scores


def write_scores(path: str, enroll: np.ndarray, test: np.ndarray, scores: np.ndarray) -> None:
    """Write ``enroll test score`` lines atomically, scores with 6 decimals."""
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    chunk = 1 << 18
    with open(tmp, "w", encoding="utf-8") as f:
        for s in range(0, len(scores), chunk):
            e_part = enroll[s:s + chunk]
            t_part = test[s:s + chunk]
            v_part = np.char.mod("%.6f", scores[s:s + chunk]).tolist()
            f.write("".join(map("{} {} {}\n".format, e_part, t_part, v_part)))
    os.replace(tmp, path)
