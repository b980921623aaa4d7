"""Column text files (trials, scores) parsed in numpy over the raw bytes: no Python object per line or field.

Only the common, clean layout takes this path: ASCII, fields separated by one space or tab, every line ending in a
newline. Anything else makes :func:`split_columns` return None, and the caller falls back to its per-line parser,
which reports the offending ``file:line`` (a fast path never decides an error message).
"""
from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from wesv.data.textfile import BOM_BYTES, warn_bom

CHUNK = 1 << 20  # lines per vectorised block: bounds the temporary arrays to some tens of MB
MAX_FIELD = 4096  # longer fields (no id is) send a file to the per-line parser
SCAN = 1 << 22  # bytes per block when looking for separators
_NL, _SP, _TAB = 10, 32, 9
_PRIME = np.uint64(0x9FB21C651E98DF25)
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class TextColumns:
    """A file of lines of ``num_fields`` fields: its bytes and the offset of the separator ending each field."""

    data: np.ndarray
    seps: np.ndarray
    num_fields: int

    def __len__(self) -> int:
        return self.seps.size // self.num_fields

    def bounds(self, col: int) -> tuple[np.ndarray, np.ndarray]:
        """``(start, end)`` byte offsets of column ``col`` on every line."""
        k = self.num_fields
        end = self.seps[col::k]
        if col:
            return self.seps[col - 1::k] + 1, end
        start = np.zeros(len(end), dtype=np.int64)
        start[1:] = self.seps[k - 1:-1:k] + 1
        return start, end

    def field(self, col: int) -> np.ndarray:
        """Column ``col`` as a fixed-width bytes array (``S<max length>``; shorter fields NUL-padded)."""
        return gather_fields(self.data, *self.bounds(col))


def read_columns(path: str, num_fields: int) -> TextColumns | None:
    """``split_columns`` of a file, read straight into a zero-padded buffer (no copy of a large file); a leading
    UTF-8 BOM is skipped with a warning.

    ``OSError`` propagates, for the caller's message.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = np.zeros(size + 1 + MAX_FIELD, dtype=np.uint8)
        got = f.readinto(memoryview(buf)[:size])
        if f.read(1):  # the file grew while being read: the byte count no longer holds
            return None
    if got >= len(BOM_BYTES) and buf[:len(BOM_BYTES)].tobytes() == BOM_BYTES:
        cols = split_columns(buf[len(BOM_BYTES):], num_fields, got - len(BOM_BYTES))
        if cols is not None:  # (else the per-line parser warns)
            warn_bom(path)
        return cols
    return split_columns(buf, num_fields, got)


def split_columns(buf: bytes | np.ndarray, num_fields: int, size: int | None = None) -> TextColumns | None:
    """Field offsets of the first ``size`` bytes of ``buf`` when every line has exactly ``num_fields`` clean fields,
    else None.

    Clean: ASCII, no control characters, one space or tab between fields, a newline after each line (the last
    line's may be missing), fields at most ``MAX_FIELD`` bytes. An empty file gives None, so callers report
    emptiness their own way. A ``uint8`` buffer with ``MAX_FIELD + 1`` spare zero bytes after ``size`` is used in
    place; anything else is copied into one.
    """
    size = len(buf) if size is None else size
    if not size:
        return None
    if not (isinstance(buf, np.ndarray) and buf.dtype == np.uint8 and buf.size >= size + 1 + MAX_FIELD
            and buf.flags.writeable):
        padded = np.zeros(size + 1 + MAX_FIELD, dtype=np.uint8)
        padded[:size] = np.frombuffer(buf, dtype=np.uint8, count=size)
        buf = padded
    if buf[size - 1] != _NL:
        buf[size] = _NL
        size += 1
    data = buf[:size]
    # Blocks of a few MB keep the temporaries in cache (a file-sized mask costs more in page faults than in work).
    parts = []
    for at in range(0, size, SCAN):
        block = data[at:at + SCAN]
        if block.max() >= 128:  # non-ASCII: Unicode whitespace and UTF-8 checks are left to the per-line parser
            return None
        found = np.flatnonzero(block <= _SP)
        found += at
        parts.append(found)
    seps = np.concatenate(parts)
    if seps.size % num_fields or seps[0] == 0 or seps[0] > MAX_FIELD:
        return None
    expect = np.full(num_fields, _SP, dtype=np.uint8)
    expect[-1] = _NL
    step = SCAN // 8 // num_fields * num_fields
    for at in range(0, seps.size, step):
        part = seps[at:at + step + 1]  # one more, for the gap to the next block
        kinds = data[part[:step]].reshape(-1, num_fields)
        kinds[kinds == _TAB] = _SP  # (a copy: the file's bytes stay as they are)
        if not (kinds == expect).all():
            return None
        gaps = np.diff(part)
        if gaps.size and (gaps.min() < 2 or gaps.max() > MAX_FIELD + 1):
            return None  # two separators in a row (an empty field or a blank line), or an absurdly long field
    return TextColumns(buf, seps, num_fields)


def gather_fields(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The byte ranges ``data[start[i]:end[i]]`` as one fixed-width, NUL-padded ``S`` array.

    ``data`` must extend at least the longest range's length past every ``start`` (``split_columns`` pads it).
    """
    lengths = end - start
    width = max(int(lengths.max(initial=0)), 1)
    windows = sliding_window_view(data, width)  # row i = data[i:i + width], no copy
    out = np.empty((len(start), width), dtype=np.uint8)
    cols = np.arange(width, dtype=np.int32)
    for s in range(0, len(start), CHUNK):
        block = windows[start[s:s + CHUNK]]
        block[cols >= lengths[s:s + CHUNK, None]] = 0
        out[s:s + CHUNK] = block
    return out.view(f"S{width}").reshape(-1)


def as_width(a: np.ndarray, width: int) -> np.ndarray:
    """A fixed-width bytes array widened (NUL-padded) to ``width`` bytes per item."""
    return a if a.dtype.itemsize == width else a.astype(f"S{width}")


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place: every output bit depends on every input bit."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def hash_bytes(a: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each item of a fixed-width bytes array (equal items → equal hashes, whatever
    the widths of the arrays they come from)."""
    words = -(-a.dtype.itemsize // 8)
    u = np.ascontiguousarray(as_width(a, 8 * words)).view(np.uint64).reshape(len(a), words)
    h = np.full(len(a), 0xCBF29CE484222325, dtype=np.uint64)
    # Words after an item's last non-zero one are NUL padding: skipping them makes the hash independent of the
    # array's width, so ids read from two files (of different longest ids) hash alike.
    used = np.full(len(a), words, dtype=np.int64)
    if words > 1 and len(a):
        nonzero = u != 0
        used = np.where(nonzero.any(axis=1), words - np.argmax(nonzero[:, ::-1], axis=1), 0)
    always = int(used.min(initial=words))
    for j in range(words):  # a bijective step per word; the finaliser spreads the bits
        step = h ^ u[:, j]
        step *= _PRIME
        step ^= step >> np.uint64(29)
        h = step if j < always else np.where(used > j, step, h)
    return _fmix(h)


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit key per ``(a[i], b[i])`` pair of bytes items; equal pairs → equal keys, collisions possible."""
    return _fmix(hash_bytes(a) * _MIX + hash_bytes(b))


def match_items(queries: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For each query, the index of the equal item of ``table`` (items distinct), or -1 if there is none.

    A vectorised open-addressing hash table over ``table`` (load ≤ 1/4, so about one probe per query); every
    match is confirmed on the bytes.
    """
    width = max(queries.dtype.itemsize, table.dtype.itemsize)
    queries, table = as_width(queries, width), as_width(table, width)
    th = hash_bytes(table)
    if len(np.unique(th)) != len(th):  # equal items, or a hash collision: an exact dict instead
        index = {k: i for i, k in enumerate(table.tolist())}
        return np.fromiter((index.get(q, -1) for q in queries.tolist()), dtype=np.int64, count=len(queries))
    bits = max(int(len(th) * 4).bit_length(), 4)
    slots = _build_slots(th, bits)
    qh = hash_bytes(queries)
    home = (qh >> np.uint64(64 - bits)).astype(np.int64)
    found = np.full(len(queries), -1, dtype=np.int64)
    active = np.arange(len(queries))
    probe = 0
    while active.size:
        cand = slots[(home[active] + probe) & ((1 << bits) - 1)]
        hit = cand >= 0
        hit[hit] = th[cand[hit]] == qh[active[hit]]
        found[active[hit]] = cand[hit]
        active = active[(cand >= 0) & ~hit]  # an occupied slot of another key: probe on
        probe += 1
    if (found >= 0).all():  # the usual case: no masked copies
        return np.where(table[found] == queries, found, -1)
    ok = found >= 0
    ok[ok] = table[found[ok]] == queries[ok]
    return np.where(ok, found, -1)


def _build_slots(th: np.ndarray, bits: int) -> np.ndarray:
    """Linear-probing slot array (``2**bits`` entries, -1 = empty) holding the index of each distinct hash."""
    slots = np.full(1 << bits, -1, dtype=np.int64)
    home = (th >> np.uint64(64 - bits)).astype(np.int64)
    pending = np.arange(len(th))
    probe = 0
    while pending.size:
        want = (home[pending] + probe) & ((1 << bits) - 1)
        free = np.flatnonzero(slots[want] < 0)
        _, first = np.unique(want[free], return_index=True)  # one key per free slot this round
        winners = free[first]
        slots[want[winners]] = pending[winners]
        placed = np.zeros(pending.size, dtype=bool)
        placed[winners] = True
        pending = pending[~placed]
        probe += 1
    return slots


def decode(item: bytes | np.bytes_) -> str:
    """One field as text (for messages)."""
    return bytes(item).decode("utf-8")


def encode(items) -> np.ndarray:
    """A sequence of str as a fixed-width UTF-8 bytes (``S``) array."""
    if isinstance(items, np.ndarray) and items.dtype.kind == "S":
        return items
    out = np.array([s.encode("utf-8") for s in items], dtype=np.bytes_)
    return out if out.size else np.zeros(0, dtype="S1")


def to_str_array(a: np.ndarray) -> np.ndarray:
    """A fixed-width bytes array as an object array of str, one shared str per distinct value (ids repeat a lot)."""
    if not len(a):
        return np.zeros(0, dtype=object)
    _, first, inverse = np.unique(hash_bytes(a), return_index=True, return_inverse=True)
    if not (a[first][inverse] == a).all():  # a hash collision: decode every item instead
        return np.array([decode(x) for x in a.tolist()], dtype=object)
    uniq = np.array([decode(x) for x in a[first].tolist()], dtype=object)
    return uniq[inverse]


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
