"""Embedding, vector and score files: Kaldi ``ark,scp`` through kaldiio, and ``enroll test score`` text."""
from __future__ import annotations

import os
import re

import kaldiio
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from wesv.data.textcols import (as_matrix, decode, encode, format_fixed6, gc_paused, join_lines, read_columns,
                                to_str_array)
from wesv.data.textfile import read_text_lines, strip_bom
from wesv.errors import WesvError, where


def read_embeddings(scp: str) -> tuple[list[str], np.ndarray]:
    """Read every embedding an scp names: ``(keys, matrix (N, D) float32)`` in scp order.

    A relative ark path is opened relative to the working directory when it exists there, else relative to the
    scp's own directory (so an scp works from anywhere); a missing ark is named as resolved.
    """
    if not os.path.isfile(scp):
        raise WesvError(f"{scp}: embedding scp not found — run extraction (and its merge step) first")
    fast = _read_float_vectors(scp)
    keys, matrix = fast if fast is not None else _read_with_kaldiio(scp)
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        for i, k in enumerate(keys, 1):
            if k in seen:
                raise WesvError(f"{where(scp, i)}: key {k!r} appears twice — merge each shard once")
            seen.add(k)
    return keys, matrix


def resolve_ark(ark: str, scp: str) -> str:
    """Where an scp's ark path opens: as written when absolute or present from the working directory, else
    relative to the scp's directory (returned even when absent there, for the error message)."""
    if os.path.isabs(ark):
        return ark
    if os.path.exists(ark):
        return os.path.abspath(ark)
    return os.path.join(os.path.dirname(os.path.abspath(scp)), ark)


def _resolve_value(value: str, scp: str) -> tuple[str, str | None]:
    """An scp value with its ark path resolved, and that path (None for pipes and other forms kaldiio reads)."""
    m = _ARK_VALUE.match(value)
    if m is None or value.endswith("|"):
        return value, None
    ark = resolve_ark(m.group(1), scp)
    return f"{ark}:{m.group(2)}{m.group(3) or ''}", ark


def check_embeddings(keys: list[str], matrix: np.ndarray, scp: str) -> None:
    """Refuse NaN/inf or all-zero embeddings (they would score as NaN), naming the first one and the scp."""
    bad = ~np.isfinite(matrix).all(axis=1)
    zero = ~bad & ~matrix.any(axis=1)
    for mask, what in ((bad, "holds NaN/inf values"), (zero, "is all zeros (no direction to score)")):
        if mask.any():
            i = int(np.argmax(mask))
            raise WesvError(f"{scp}: embedding of utterance {keys[i]!r} {what} ({int(mask.sum())} such embeddings) "
                            "— re-extract it (check its audio) or drop it from the scp")


def _read_with_kaldiio(scp: str) -> tuple[list[str], np.ndarray]:
    """Any scp kaldiio reads (matrices, pipes, ranges), one entry at a time; a bad entry names its line."""
    keys: list[str] = []
    rows: list[np.ndarray] = []
    lines = read_text_lines(scp, "embedding scp", "check the path")
    for lineno, line in enumerate(lines, 1):
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        value, ark = _resolve_value(value.strip(), scp)
        if ark is not None and not os.path.isfile(ark):
            raise WesvError(f"{where(scp, lineno)}: cannot read embedding {key!r}: the ark {ark} does not exist — "
                            "extract again, or fix the path in the scp")
        try:
            mat = kaldiio.load_mat(value)
        except Exception as err:  # kaldiio raises plain OSError/ValueError/KeyError for bad lines and arks
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            m = _ARK_VALUE.match(value)
            if ark is not None and m and int(m.group(2)) >= os.path.getsize(ark):
                reason = f"offset {m.group(2)} is past the end of the ark {ark} ({os.path.getsize(ark)} bytes)"
            raise WesvError(f"{where(scp, lineno)}: cannot read embedding {key!r} ({reason}) — check that the ark "
                            "it points to exists and is complete") from err
        if isinstance(mat, tuple):
            raise WesvError(f"{where(scp, lineno)}: {key!r} points at audio, not an embedding — give an embedding "
                            "scp")
        vec = np.asarray(mat, dtype=np.float32).reshape(-1)
        if rows and vec.size != rows[0].size:
            raise WesvError(f"{where(scp, lineno)}: embedding {key!r} has dimension {vec.size}, the first has "
                            f"{rows[0].size} — were two models' embeddings mixed?")
        keys.append(key)
        rows.append(vec)
    if not rows:
        raise WesvError(f"{scp}: no embeddings — the scp is empty")
    return keys, np.stack(rows)


_ARK_VALUE = re.compile(r"^(.+):(\d+)(\[[^\]]*\])?$")
_FV_HEADER = np.frombuffer(b"\0BFV \x04", dtype=np.uint8)  # binary marker, float32 vector, 4-byte size


def _read_float_vectors(scp: str) -> tuple[list[str], np.ndarray] | None:
    """The usual extraction output, gathered in numpy: every line ``key ark:offset`` pointing at a binary float32
    vector, all of one dimension. None for anything else: kaldiio then reads it (and names a bad line)."""
    try:
        with open(scp, encoding="utf-8") as f:
            lines = strip_bom(f.read(), scp).split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    keys: list[str] = []
    arks: list[str] = []
    offsets: list[int] = []
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            return None
        ark, sep, offset = fields[1].rpartition(":")
        if not sep or not offset.isdigit():
            return None
        keys.append(fields[0])
        arks.append(ark)
        offsets.append(int(offset))
    if not keys:
        return None
    where_ark: dict[str, list[int]] = {}
    for i, ark in enumerate(arks):
        where_ark.setdefault(ark, []).append(i)
    pos = np.array(offsets, dtype=np.int64)
    matrix: np.ndarray | None = None
    for ark, rows in where_ark.items():
        try:
            data = np.memmap(resolve_ark(ark, scp), dtype=np.uint8, mode="r")
        except (OSError, ValueError):
            return None
        at = pos[rows]
        if at.max() + 10 > data.size:
            return None
        head = sliding_window_view(data, 10)[at]
        if not (head[:, :6] == _FV_HEADER).all():
            return None
        dims = np.ascontiguousarray(head[:, 6:]).view("<i4").reshape(-1)
        dim = int(dims[0])
        if dim < 1 or (dims != dim).any() or (matrix is not None and matrix.shape[1] != dim):
            return None
        if at.max() + 10 + 4 * dim > data.size:
            return None
        if matrix is None:
            matrix = np.empty((len(keys), dim), dtype=np.float32)
        matrix[rows] = sliding_window_view(data, 4 * dim)[at + 10].view("<f4")
    return keys, matrix


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
    enroll, test, scores = read_score_columns(path)
    return to_str_array(enroll).tolist(), to_str_array(test).tolist(), scores


def read_score_columns(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``read_scores`` with the ids as fixed-width UTF-8 bytes (``S``) arrays: no Python string per line."""
    try:
        cols = read_columns(path, 3)
    except OSError as err:
        raise WesvError(f"{path}: cannot read scores ({err.strerror}) — check the path") from err
    if cols is not None:
        text = cols.field(2)
        try:
            scores = text.astype(np.float64)  # numpy's C parser, correctly rounded as float()
        except ValueError:
            pass  # the per-line parser names the line
        else:
            bad = np.flatnonzero(~np.isfinite(scores))
            if bad.size:
                raise WesvError(f"{where(path, int(bad[0]) + 1)}: score {decode(text[bad[0]])!r} is not finite — "
                                "re-run scoring (a zero embedding gives NaN)")
            return cols.field(0), cols.field(1), scores
    enroll, test, scores = _read_score_lines(path)
    return encode(enroll), encode(test), scores


def _read_score_lines(path: str) -> tuple[list[str], list[str], np.ndarray]:
    """The per-line parser: slower, but it names the first bad line."""
    with gc_paused():
        return _parse_score_lines(path)


def _parse_score_lines(path: str) -> tuple[list[str], list[str], np.ndarray]:
    lines = read_text_lines(path, "scores", "check the path")
    fields = list(map(str.split, lines))
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
    """Write ``enroll test score`` lines atomically, scores with 6 decimals (``'%.6f'``).

    ``enroll``/``test`` are str sequences or bytes (``S``) arrays; lines are assembled in numpy blocks.
    """
    enroll, test = encode(enroll), encode(test)
    scores = np.asarray(scores, dtype=np.float64)
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    chunk = 1 << 19
    space = np.full((min(chunk, len(scores)), 1), ord(" "), dtype=np.uint8)
    newline = np.full_like(space, ord("\n"))
    with open(tmp, "wb") as f:
        for s in range(0, len(scores), chunk):
            e, t, v = enroll[s:s + chunk], test[s:s + chunk], scores[s:s + chunk]
            digits = format_fixed6(v)
            if digits is None:  # NaN/inf or huge values: printf them one by one
                digits = as_matrix(np.array([b"%.6f" % x for x in v.tolist()]))
            n = len(v)
            f.write(join_lines([as_matrix(e), space[:n], as_matrix(t), space[:n], digits, newline[:n]]))
    os.replace(tmp, path)
