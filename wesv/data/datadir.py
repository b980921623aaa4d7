"""Kaldi data directories: read and write ``wav.scp``, ``utt2spk``, ``spk2utt``; shard them for array jobs.

Validation is in ``wesv.data.validate``; fix, subset and split in ``wesv.data.datadir_ops``.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, TypeVar

from wesv.data.textfile import read_text_lines, strip_bom
from wesv.errors import WesvError, where
from wesv.log import get_logger

logger = get_logger("wesv.data")

# Files keyed by utterance id that fix/subset/split carry along when present.
PER_UTT_FILES = ("wav.scp", "utt2spk", "utt2dur", "utt2num_samples", "utt2num_frames", "utt2lang", "text",
                 "feats.scp", "vad.scp")
PER_SPK_FILES = ("spk2gender",)

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------------- writing
def c_sorted(keys: Iterable[str]) -> list[str]:
    """Sort keys as ``LC_ALL=C sort`` does (byte order; for UTF-8, code-point order is the same)."""
    return sorted(keys)


def atomic_write_lines(path: str, lines: Iterable[str]) -> None:
    """Write text lines to ``path`` through a temp file in the same directory, renamed on success."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_scp(path: str, mapping: Mapping[str, str | Sequence[str]], sort: bool = True) -> None:
    """Write ``key value`` lines atomically, keys in C order (list values are joined with spaces)."""
    keys = c_sorted(mapping) if sort else list(mapping)
    lines = []
    for key in keys:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"key {key!r} is empty or holds whitespace; Kaldi keys are single tokens")
        value = mapping[key]
        text = value if isinstance(value, str) else " ".join(value)
        lines.append(f"{key} {text}\n")
    atomic_write_lines(path, lines)


def format_problems(title: str, problems: list[str], limit: int = 200) -> str:
    """One error message: a title, then each problem on its own line (the first ``limit``, then a count); a single
    problem stays on the title's line."""
    if len(problems) == 1:
        return f"{title}: {problems[0]}"
    shown = problems[:limit]
    more = len(problems) - len(shown)
    body = "\n".join(f"  {p}" for p in shown)
    tail = f"\n  ... and {more} more problems" if more > 0 else ""
    return f"{title} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{body}{tail}"


# ----------------------------------------------------------------------------------------------------- reading
@dataclass
class Table:
    """A leniently parsed ``key value`` file: good lines (first of duplicates kept) and one message per problem."""

    path: str
    values: dict[str, str] = field(default_factory=dict)
    lineno: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    dropped: int = 0  # lines not kept (blank, bad column count, duplicate)


def scan_table(path: str, min_fields: int = 2, max_fields: int | None = None, *, fix_hint: str | None = None,
               check_sorted: bool = True) -> Table:
    """Parse ``path`` line by line, collecting problems (blank, columns, duplicates, order) instead of raising."""
    fix = fix_hint or f"run tools/fix_data_dir.sh {os.path.dirname(path) or '.'}"
    table = Table(path)
    lines = read_text_lines(path, "Kaldi data", "check the data dir path and its permissions")
    if not lines:
        table.problems.append(f"{path}: empty file — remove it or fill it (an empty data dir cannot be used)")
        return table
    expect = f"{min_fields}" if max_fields == min_fields else f"at least {min_fields}"
    prev_key, prev_line, unsorted_reported = None, 0, False
    for lineno, line in enumerate(lines, 1):
        parts = line.split(None, 1)
        if not parts:
            table.problems.append(f"{where(path, lineno)}: blank line — delete it ({fix})")
            table.dropped += 1
            continue
        # Count every field only when it matters (a full split of 1M wav.scp pipes is the slow part).
        count = len(line.split()) if len(parts) < 2 or max_fields is not None or min_fields > 2 else 2
        if count < min_fields or (max_fields is not None and count > max_fields):
            table.problems.append(
                f"{where(path, lineno)}: expected {expect} whitespace-separated fields, got {count} — "
                f"fix or delete the line ({fix})")
            table.dropped += 1
            continue
        key = parts[0]
        if key in table.values:
            table.problems.append(
                f"{where(path, lineno)}: duplicate key {key!r} (first on line {table.lineno[key]}) — "
                f"keep one line per key ({fix})")
            table.dropped += 1
            continue
        if check_sorted and prev_key is not None and key < prev_key and not unsorted_reported:
            table.problems.append(
                f"{where(path, lineno)}: key {key!r} is out of order (after {prev_key!r} on line {prev_line}) — "
                f"sort with 'LC_ALL=C sort -k1,1 {path}' or {fix}")
            unsorted_reported = True
        prev_key, prev_line = key, lineno
        table.values[key] = parts[1].strip()
        table.lineno[key] = lineno
    return table


def _strict(table: Table) -> Table:
    if table.problems:
        raise WesvError(format_problems(f"{table.path} cannot be read", table.problems))
    return table


def read_scp(path: str) -> dict[str, str]:
    """Read ``key value...`` lines into an insertion-ordered dict (value = the rest of the line)."""
    return _strict(scan_table(path, 2, check_sorted=False)).values


def read_utt2spk(path: str) -> dict[str, str]:
    """Read ``utt spk`` lines (exactly two fields)."""
    return _strict(scan_table(path, 2, 2, check_sorted=False)).values


def read_spk2utt(path: str) -> dict[str, list[str]]:
    """Read ``spk utt1 utt2 ...`` lines."""
    return {k: v.split() for k, v in _strict(scan_table(path, 2, check_sorted=False)).values.items()}


def read_list(path: str) -> list[str]:
    """Read the first field of every non-blank line (an utterance or speaker list)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise WesvError(f"{path}: cannot read list ({err.strerror}) — check the path") from err
    except UnicodeDecodeError as err:
        raise WesvError(f"{path}: not UTF-8 text (byte {err.start}) — is this really a list file?") from err
    return [line.split()[0] for line in strip_bom(text, path).split("\n") if line.strip()]


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert ``utt2spk``: speakers in C order, each speaker's utterances in ``utt2spk`` order."""
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in utt2spk.items():
        spk2utt.setdefault(spk, []).append(utt)
    return {spk: spk2utt[spk] for spk in c_sorted(spk2utt)}


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Invert ``spk2utt``: utterances in C order."""
    utt2spk = {utt: spk for spk, utts in spk2utt.items() for utt in utts}
    return {utt: utt2spk[utt] for utt in c_sorted(utt2spk)}


# ----------------------------------------------------------------------------------------------------- DataDir
@dataclass
class DataDir:
    """A loaded data dir: ``wav_scp``, ``utt2spk``/``spk2utt`` (None when unlabelled) and the ``trials`` path."""

    path: str
    wav_scp: dict[str, str]
    utt2spk: dict[str, str] | None = None
    spk2utt: dict[str, list[str]] | None = None
    trials: str | None = None

    @classmethod
    def load(cls, path: str) -> "DataDir":
        """Read a data dir (``wav.scp`` required; ``spk2utt`` derived from ``utt2spk`` when absent)."""
        if not os.path.isdir(path):
            raise WesvError(f"{path}: not a directory — give a Kaldi data dir holding wav.scp")
        wav = os.path.join(path, "wav.scp")
        if not os.path.isfile(wav):
            raise WesvError(f"{wav}: missing — a data dir needs wav.scp ('utt-id path-or-pipe' lines)")
        wav_scp = read_scp(wav)
        utt2spk = spk2utt = None
        if os.path.isfile(os.path.join(path, "utt2spk")):
            utt2spk = read_utt2spk(os.path.join(path, "utt2spk"))
            spk_file = os.path.join(path, "spk2utt")
            spk2utt = read_spk2utt(spk_file) if os.path.isfile(spk_file) else utt2spk_to_spk2utt(utt2spk)
        trials = os.path.join(path, "trials")
        return cls(path, wav_scp, utt2spk, spk2utt, trials if os.path.isfile(trials) else None)

    @property
    def utts(self) -> list[str]:
        """Utterance ids in ``wav.scp`` order."""
        return list(self.wav_scp)

    @property
    def num_speakers(self) -> int:
        return len(self.spk2utt) if self.spk2utt is not None else 0

    def save(self, path: str) -> None:
        """Write ``wav.scp`` and, when labelled, ``utt2spk`` and a regenerated ``spk2utt``."""
        write_scp(os.path.join(path, "wav.scp"), self.wav_scp)
        if self.utt2spk is not None:
            write_scp(os.path.join(path, "utt2spk"), self.utt2spk)
            ordered = {u: self.utt2spk[u] for u in c_sorted(self.utt2spk)}
            write_scp(os.path.join(path, "spk2utt"), utt2spk_to_spk2utt(ordered))


def trials_paths(path: str) -> list[str]:
    """Trial lists of a data dir: ``DIR/trials`` and ``DIR/trials_*`` (or the files in a ``DIR/trials/`` folder),
    each file once (``trials`` may be a link to ``trials_O``)."""
    trials = os.path.join(path, "trials")
    if os.path.isdir(trials):
        names = [os.path.join(trials, f) for f in sorted(os.listdir(trials)) if not f.startswith(".")]
    else:
        names = [trials] + [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.startswith("trials_")]
    seen, out = set(), []
    for name in names:
        real = os.path.realpath(name)
        if os.path.isfile(name) and real not in seen:
            seen.add(real)
            out.append(name)
    return out


# ----------------------------------------------------------------------------------------------------- sharding
def split_indices(n: int, num_jobs: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each job, Kaldi ``split_scp.pl``'s rule: contiguous, the first ``n % N`` one longer."""
    if num_jobs < 1:
        raise WesvError(f"number of jobs must be at least 1, got {num_jobs}")
    if n == 0:
        raise WesvError("cannot split an empty list — the data dir has no utterances")
    if n < num_jobs:
        raise WesvError(f"cannot split {n} lines into {num_jobs} jobs — use at most {n} jobs")
    per, rem = divmod(n, num_jobs)
    bounds, start = [], 0
    for j in range(num_jobs):
        end = start + per + (1 if j < rem else 0)
        bounds.append((start, end))
        start = end
    return bounds


def shard(mapping: Mapping[str, T] | Sequence[T], job: int, num_jobs: int) -> dict[str, T] | list[T]:
    """Job ``job``'s (from 1) contiguous share of ``mapping`` (dict → dict, sequence → list), as split_scp.pl."""
    if not 1 <= job <= num_jobs:
        raise WesvError(f"job {job} is outside 1..{num_jobs} — jobs are numbered from 1 (JOB=1:N)")
    start, end = split_indices(len(mapping), num_jobs)[job - 1]
    if isinstance(mapping, Mapping):
        keys = list(mapping)[start:end]
        return {k: mapping[k] for k in keys}
    return list(mapping[start:end])
