"""Column text files (trials, scores) parsed in numpy over the raw bytes: no Python object per line or field.

Only the common, clean layout takes this path: ASCII, fields separated by one space or tab, every line ending in a
newline. Anything else makes :func:`split_columns` return None, and the caller falls back to its per-line parser,
which reports the offending ``file:line`` (a fast path never decides an error message).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 20  # lines per vectorised block: bounds the temporary index arrays to a few hundred MB
_NL, _SP, _TAB = 10, 32, 9
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class TextColumns:
    """A file of ``n`` lines × ``k`` fields: its bytes and each field's ``[start, end)`` byte offsets, ``(n, k)``."""

    data: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def field(self, col: int) -> np.ndarray:
        """Column ``col`` as a fixed-width bytes array (``S<max length>``; shorter fields NUL-padded)."""
        return gather_fields(self.data, self.start[:, col], self.end[:, col])


def split_columns(raw: bytes, num_fields: int) -> TextColumns | None:
    """Field offsets of ``raw`` when every line has exactly ``num_fields`` clean fields, else None.

    Clean: ASCII, no control characters, one space or tab between fields, a newline after each line (the last
    line's may be missing). An empty file gives None, so callers report emptiness their own way.
    """
    if not raw:
        return None
    if raw[-1] != _NL:
        raw += b"\n"
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.max() >= 128:  # non-ASCII: Unicode whitespace and UTF-8 checks are left to the per-line parser
        return None
    seps = np.flatnonzero(data <= _SP)
    if seps.size % num_fields or seps[0] == 0:
        return None
    kinds = data[seps].reshape(-1, num_fields)
    if not (kinds[:, -1] == _NL).all():
        return None
    inner = kinds[:, :-1]
    if not ((inner == _SP) | (inner == _TAB)).all():
        return None
    if not (np.diff(seps) > 1).all():  # two separators in a row: an empty field or a blank line
        return None
    end = seps.reshape(-1, num_fields)
    start = np.empty_like(seps)
    start[0] = 0
    start[1:] = seps[:-1] + 1
    return TextColumns(data, start.reshape(-1, num_fields), end)


def gather_fields(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The byte ranges ``data[start[i]:end[i]]`` as one fixed-width, NUL-padded ``S`` array."""
    lengths = end - start
    width = max(int(lengths.max(initial=0)), 1)
    out = np.zeros((len(start), width), dtype=np.uint8)
    cols = np.arange(width)
    last = len(data) - 1
    for s in range(0, len(start), CHUNK):
        st, ln = start[s:s + CHUNK, None], lengths[s:s + CHUNK, None]
        block = data[np.minimum(st + cols, last)]
        block[cols >= ln] = 0
        out[s:s + CHUNK] = block
    return out.view(f"S{width}").reshape(-1)


def as_width(a: np.ndarray, width: int) -> np.ndarray:
    """A fixed-width bytes array widened (NUL-padded) to ``width`` bytes per item."""
    return a if a.dtype.itemsize == width else a.astype(f"S{width}")


def hash_bytes(a: np.ndarray) -> np.ndarray:
    """A 64-bit FNV-style hash of each item of a fixed-width bytes array (equal items → equal hashes)."""
    words = -(-a.dtype.itemsize // 8)
    u = as_width(a, 8 * words).view(np.uint64).reshape(len(a), words)
    h = np.full(len(a), 0xCBF29CE484222325, dtype=np.uint64)
    for j in range(words):
        h ^= u[:, j]
        h *= _PRIME
    return h ^ (h >> np.uint64(29))


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit key per ``(a[i], b[i])`` pair of bytes items; equal pairs → equal keys, collisions possible."""
    hb = hash_bytes(b)
    return hash_bytes(a) * _MIX + (hb ^ (hb >> np.uint64(31)))


def match_items(queries: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For each query, the index of the equal item of ``table`` (items distinct), or -1 if there is none."""
    width = max(queries.dtype.itemsize, table.dtype.itemsize)
    queries, table = as_width(queries, width), as_width(table, width)
    th = hash_bytes(table)
    order = np.argsort(th)
    sh = th[order]
    if sh.size > 1 and (sh[1:] == sh[:-1]).any():  # a hash collision among the keys: exact dict instead
        index = {k: i for i, k in enumerate(table.tolist())}
        return np.fromiter((index.get(q, -1) for q in queries.tolist()), dtype=np.int64, count=len(queries))
    if not len(sh):
        return np.full(len(queries), -1, dtype=np.int64)
    pos = order[np.minimum(np.searchsorted(sh, hash_bytes(queries)), len(sh) - 1)]
    found = table[pos] == queries
    return np.where(found, pos, -1)


def decode(item: bytes | np.bytes_) -> str:
    """One field for a message (the fast path only accepts ASCII)."""
    return bytes(item).decode("ascii")


def format_fixed6(values: np.ndarray) -> np.ndarray | None:
    """``'%.6f' % v`` for each value, as a fixed-width right-aligned NUL-padded ``uint8`` matrix ``(n, width)``.

    None if any value is not finite or too large for exact integer arithmetic (the caller formats those with
    Python). Rounding is to the nearest millionth of the float64 value (can differ from printf in the last digit
    only for values within ~1e-10 of a half-millionth).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    mag = np.abs(v)
    if not np.isfinite(v).all() or mag.max() >= 1e9:
        return None
    units = np.rint(mag * 1e6).astype(np.int64)
    ipart, frac = np.divmod(units, 1_000_000)
    ndig = max(len(str(int(ipart.max()))), 1)
    width = 1 + ndig + 7  # sign, integer digits, '.', six decimals
    out = np.zeros((v.size, width), dtype=np.uint8)
    for j in range(6):
        out[:, width - 1 - j] = 48 + frac % 10
        frac //= 10
    out[:, width - 7] = ord(".")
    ip = ipart.copy()
    for j in range(ndig):
        col = width - 8 - j
        digit = 48 + ip % 10
        out[:, col] = np.where((ip > 0) | (j == 0), digit, 0)
        ip //= 10
    # The minus sign goes just left of the first digit (printf keeps it for values that round to -0.000000).
    neg = np.flatnonzero(np.signbit(v))
    if neg.size:
        digits = np.ones(neg.size, dtype=np.int64)
        for j in range(1, ndig):
            digits += ipart[neg] >= 10 ** j
        out[neg, width - 8 - digits] = ord("-")
    return out


def join_lines(parts: list[np.ndarray]) -> bytes:
    """Lines built from ``(n, w)`` uint8 blocks placed side by side, NUL padding dropped: one bytes object."""
    mat = np.concatenate(parts, axis=1).ravel()
    return mat[mat != 0].tobytes()


def as_matrix(a: np.ndarray) -> np.ndarray:
    """A fixed-width bytes array as an ``(n, width)`` uint8 matrix (no copy)."""
    return a.view(np.uint8).reshape(len(a), a.dtype.itemsize)
