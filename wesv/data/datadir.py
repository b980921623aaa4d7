"""Kaldi data directories: read/write ``wav.scp``, ``utt2spk``, ``spk2utt``; validate; fix, subset, split."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, TypeVar

import numpy as np

from wesv.data.textfile import read_text_lines
from wesv.errors import WesvError, where
from wesv.log import get_logger

logger = get_logger("wesv.data")

# Files keyed by utterance id that fix/subset/split carry along when present.
PER_UTT_FILES = ("wav.scp", "utt2spk", "utt2dur", "utt2num_samples", "utt2num_frames", "utt2lang", "text",
                 "feats.scp", "vad.scp")
PER_SPK_FILES = ("spk2gender",)
MAX_PER_KIND = 20  # mismatch messages listed per kind before summarising, so a broken 1M-line dir stays readable

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
    """One error message: a title, then each problem on its own line (the first ``limit``, then a count)."""
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
            return [line.split()[0] for line in f if line.strip()]
    except OSError as err:
        raise WesvError(f"{path}: cannot read list ({err.strerror}) — check the path") from err


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


# ----------------------------------------------------------------------------------------------------- validation
@dataclass
class ValidationSummary:
    """What a valid data dir holds."""

    path: str
    num_utts: int
    num_speakers: int | None
    num_trials: int | None = None  # over all trial lists
    num_target: int | None = None
    trials: dict[str, tuple[int, int]] = field(default_factory=dict)  # list name -> (trials, targets)

    def __str__(self) -> str:
        parts = [f"{self.num_utts:,} utterances"]
        parts.append(f"{self.num_speakers:,} speakers" if self.num_speakers is not None else "no utt2spk")
        if len(self.trials) == 1:
            parts.append(f"{self.num_trials:,} trials ({self.num_target:,} target)")
        elif self.trials:
            parts.append("trials " + ", ".join(f"{name} {n:,} ({t:,} target)" for name, (n, t) in self.trials.items()))
        return f"{self.path}: OK — " + ", ".join(parts)


class _Capped:
    """Collects mismatch messages per kind, listing the first few of each and counting the rest."""

    def __init__(self, problems: list[str]):
        self.problems, self.counts, self.tails = problems, Counter(), {}

    def add(self, kind: str, msg: str, tail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= MAX_PER_KIND:
            self.problems.append(msg)
        self.tails[kind] = tail

    def close(self) -> None:
        for kind, n in self.counts.items():
            if n > MAX_PER_KIND:
                self.problems.append(f"... {n - MAX_PER_KIND} more {kind} — {self.tails[kind]}")


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


def validate_data_dir(path: str, check_trials: bool = True, *, check_audio: bool = False,
                      sample_rate: int | None = None) -> ValidationSummary:
    """Check a data dir; raise one ``WesvError`` listing every problem as ``file:line: what — fix``."""
    from wesv.data.trials import scan_trials  # trials.py imports this module's writers

    fix = f"run tools/fix_data_dir.sh {path}"
    regen = f"regenerate it: tools/utt2spk_to_spk2utt.sh {os.path.join(path, 'utt2spk')} > " \
            f"{os.path.join(path, 'spk2utt')} (or {fix})"
    if not os.path.isdir(path):
        raise WesvError(f"{path}: not a directory — give a Kaldi data dir holding wav.scp")
    problems: list[str] = []
    capped = _Capped(problems)
    files = {name: os.path.join(path, name) for name in ("wav.scp", "utt2spk", "spk2utt")}
    wav = utt2spk = spk2utt = None
    if os.path.isfile(files["wav.scp"]):
        wav = scan_table(files["wav.scp"], 2, fix_hint=fix)
        problems += wav.problems
        _check_wav_values(wav, problems)
    else:
        problems.append(f"{files['wav.scp']}: missing — every data dir needs wav.scp ('utt-id path-or-pipe' lines)")
    if os.path.isfile(files["utt2spk"]):
        utt2spk = scan_table(files["utt2spk"], 2, 2, fix_hint=fix)
        problems += utt2spk.problems
    if os.path.isfile(files["spk2utt"]):
        spk2utt = scan_table(files["spk2utt"], 2, fix_hint=fix)
        problems += spk2utt.problems
        if utt2spk is None:
            problems.append(f"{files['spk2utt']}: present without utt2spk — create utt2spk from it or delete it")

    if wav is not None and utt2spk is not None:
        for utt, n in utt2spk.lineno.items():
            if utt not in wav.values:
                capped.add("utt2spk utterances missing from wav.scp",
                           f"{where(utt2spk.path, n)}: utterance {utt!r} has no line in wav.scp — {fix}", fix)
        for utt, n in wav.lineno.items():
            if utt not in utt2spk.values:
                capped.add("wav.scp utterances missing from utt2spk",
                           f"{where(wav.path, n)}: utterance {utt!r} has no speaker in utt2spk — {fix}", fix)
    if utt2spk is not None and spk2utt is not None:
        _check_spk2utt(utt2spk, spk2utt, capped, regen)

    counts: dict[str, tuple[int, int]] = {}
    if check_trials and wav is not None:
        for tpath in trials_paths(path):
            trials, tproblems = scan_trials(tpath)
            problems += tproblems
            counts[os.path.relpath(tpath, path)] = (len(trials), trials.num_target)
            _check_trial_utts(tpath, wav.values, capped)

    if check_audio and wav is not None:
        _check_audio(wav, sample_rate, capped)
    capped.close()
    if problems:
        raise WesvError(format_problems(f"data dir {path} is not valid", problems))
    speakers = None if utt2spk is None else len(set(utt2spk.values.values()))
    num_trials = sum(n for n, _ in counts.values()) if counts else None
    num_target = sum(t for _, t in counts.values()) if counts else None
    return ValidationSummary(path, len(wav.values), speakers, num_trials, num_target, counts)


def _check_wav_values(wav: Table, problems: list[str]) -> None:
    for utt, value in wav.values.items():
        if " " in value.strip() and not value.rstrip().endswith("|"):
            problems.append(
                f"{where(wav.path, wav.lineno[utt])}: value {value!r} has spaces but is not a pipe ending in '|' — "
                "give one path without spaces, a command ending in ' |', or file.ark:offset")


def _check_spk2utt(utt2spk: Table, spk2utt: Table, capped: _Capped, regen: str) -> None:
    expected: dict[str, list[str]] = {}
    for utt, spk in utt2spk.values.items():
        expected.setdefault(spk, []).append(utt)
    for spk, n in spk2utt.lineno.items():
        listed = spk2utt.values[spk].split()
        loc = where(spk2utt.path, n)
        if spk not in expected:
            capped.add("spk2utt speakers unknown to utt2spk",
                       f"{loc}: speaker {spk!r} has no utterance in utt2spk — {regen}", regen)
            continue
        dup = [u for u, c in Counter(listed).items() if c > 1]
        extra = [u for u in listed if utt2spk.values.get(u) != spk]
        missing = sorted(set(expected[spk]) - set(listed))
        if dup or extra or missing:
            what = []
            if extra:
                what.append(f"lists {extra[0]!r}" + (f" (+{len(extra) - 1} more)" if len(extra) > 1 else "") +
                            " which utt2spk does not give to this speaker")
            if missing:
                what.append(f"lacks {missing[0]!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                            + " which utt2spk gives to it")
            if dup:
                what.append(f"repeats {dup[0]!r}")
            capped.add("spk2utt lines inconsistent with utt2spk",
                       f"{loc}: speaker {spk!r} {'; '.join(what)} — {regen}", regen)
    for spk in c_sorted(set(expected) - set(spk2utt.values)):
        first = utt2spk.lineno[expected[spk][0]]
        capped.add("utt2spk speakers missing from spk2utt",
                   f"{spk2utt.path}: speaker {spk!r} (utt2spk line {first}) is missing — {regen}", regen)


def _check_trial_utts(tpath: str, utts: Mapping[str, str], capped: _Capped) -> None:
    hint = "use utterance ids from wav.scp, or drop these trials (tools/fix_data_dir.sh removes them)"
    with open(tpath, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 3:
                continue  # already reported by scan_trials
            for side, utt in zip(("enroll", "test"), fields[:2]):
                if utt not in utts:
                    capped.add("trials naming unknown utterances",
                               f"{where(tpath, lineno)}: {side} utterance {utt!r} is not in wav.scp — {hint}", hint)


def _check_audio(wav: Table, sample_rate: int | None, capped: _Capped) -> None:
    from tqdm import tqdm

    from wesv.data.audio import audio_info

    hint = "fix or remove these files (tools/fix_data_dir.sh keeps what wav.scp lists)"
    for utt, spec in tqdm(wav.values.items(), total=len(wav.values), desc="checking audio", unit="utt",
                          disable=len(wav.values) < 1000):
        try:
            num, rate = audio_info(spec, utt=utt)
        except WesvError as err:
            capped.add("unreadable audio files", f"{where(wav.path, wav.lineno[utt])}: {err}", hint)
            continue
        if num == 0:
            capped.add("unreadable audio files", f"{where(wav.path, wav.lineno[utt])}: {spec!r} holds no samples "
                       f"— {hint}", hint)
        elif sample_rate is not None and rate != sample_rate:
            capped.add("files at the wrong sample rate",
                       f"{where(wav.path, wav.lineno[utt])}: {spec!r} is {rate} Hz, expected {sample_rate} Hz — "
                       "resample it (sox in.wav -r 16000 out.wav) or train with resampling on", hint)


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


# ----------------------------------------------------------------------------------------------------- tools
@dataclass
class FixReport:
    """What ``fix_data_dir`` kept and removed."""

    kept: int
    removed: dict[str, int]
    bad_lines: dict[str, int]
    backup: str

    def __str__(self) -> str:
        total = sum(self.removed.values())
        why = ", ".join(f"{n} {reason}" for reason, n in self.removed.items() if n) or "none"
        bad = ", ".join(f"{n} in {name}" for name, n in self.bad_lines.items() if n)
        return (f"kept {self.kept:,} utterances, removed {total:,} ({why})"
                + (f"; dropped bad/duplicate lines: {bad}" if bad else "") + f"; originals in {self.backup}")


def fix_data_dir(path: str) -> FixReport:
    """Make a data dir consistent as Kaldi's fix_data_dir.sh does: intersect keys, sort, regenerate spk2utt."""
    from wesv.data.trials import scan_trials, write_trials

    if not os.path.isfile(os.path.join(path, "wav.scp")):
        raise WesvError(f"{os.path.join(path, 'wav.scp')}: missing — nothing to fix without wav.scp")
    backup = os.path.join(path, ".backup")
    os.makedirs(backup, exist_ok=True)
    present = [n for n in (*PER_UTT_FILES, "spk2utt", *PER_SPK_FILES) if os.path.isfile(os.path.join(path, n))]
    trial_files = trials_paths(path)
    for f in [os.path.join(path, n) for n in present] + trial_files:
        dest = os.path.join(backup, os.path.relpath(f, path))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(f, dest)

    tables = {n: scan_table(os.path.join(path, n), 2, 2 if n == "utt2spk" else None, check_sorted=False)
              for n in PER_UTT_FILES if n in present}
    bad_lines = {n: t.dropped for n, t in tables.items()}
    if "utt2spk" not in tables and "spk2utt" in present:
        spk_table = scan_table(os.path.join(path, "spk2utt"), 2, check_sorted=False)
        bad_lines["spk2utt"] = spk_table.dropped
        derived = Table(os.path.join(path, "utt2spk"))
        for spk, utts in spk_table.values.items():
            for utt in utts.split():
                derived.values.setdefault(utt, spk)
        tables["utt2spk"] = derived

    removed: dict[str, int] = {}
    reasons: dict[str, str] = {}
    utts: set[str] = set().union(*(t.values for t in tables.values()))
    for name, table in tables.items():
        gone = utts - set(table.values)
        for utt in gone:
            reasons[utt] = f"not in {name}"
        removed[f"not in {name}"] = len(gone)
        utts -= gone
    if "utt2spk" in tables and "spk2gender" in present:
        genders = scan_table(os.path.join(path, "spk2gender"), 2, 2, check_sorted=False).values
        gone = {u for u in utts if tables["utt2spk"].values[u] not in genders}
        for utt in gone:
            reasons[utt] = "speaker not in spk2gender"
        removed["with speaker not in spk2gender"] = len(gone)
        utts -= gone
    keep = c_sorted(utts)
    if not keep:
        raise WesvError(f"{path}: no utterance is in all of {', '.join(tables)} — check that the files share ids "
                        f"(originals kept in {backup})")

    for name, table in tables.items():
        write_scp(os.path.join(path, name), {u: table.values[u] for u in keep})
    if "utt2spk" in tables:
        utt2spk = {u: tables["utt2spk"].values[u] for u in keep}
        write_scp(os.path.join(path, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
        if "spk2gender" in present:
            genders = scan_table(os.path.join(path, "spk2gender"), 2, 2, check_sorted=False).values
            write_scp(os.path.join(path, "spk2gender"), {s: genders[s] for s in set(utt2spk.values())})
    keep_set = set(keep)
    for tpath in trial_files:
        trials, tproblems = scan_trials(tpath)
        mask = np.array([e in keep_set and t in keep_set for e, t in zip(trials.enroll, trials.test)], dtype=bool)
        bad_lines[os.path.relpath(tpath, path)] = len(tproblems) + int((~mask).sum())
        real = os.path.realpath(tpath)  # through a 'trials -> trials_O' link, so the link stays a link
        if mask.any():
            write_trials(real, trials.subset(mask))
        else:
            os.remove(real)
            logger.warning("%s: no trial is left after fixing; removed it (original in %s)", tpath, backup)
    atomic_write_lines(os.path.join(backup, "removed_utts"),
                       (f"{u} {reasons[u].replace(' ', '_')}\n" for u in c_sorted(reasons)))
    report = FixReport(len(keep), {k: v for k, v in removed.items() if v}, bad_lines, backup)
    logger.info("fix_data_dir %s: %s", path, report)
    return report


def _copy_subset(src: str, dst: str, keep: Sequence[str], *, sort: bool = True, trials: bool = True) -> None:
    """Write per-utt files of ``src`` restricted to ``keep`` into ``dst``; regenerate spk2utt; filter extras."""
    from wesv.data.trials import read_trials, write_trials

    keep_set = set(keep)
    os.makedirs(dst, exist_ok=True)
    utt2spk = None
    for name in PER_UTT_FILES:
        f = os.path.join(src, name)
        if not os.path.isfile(f):
            continue
        values = read_scp(f)
        missing = [u for u in keep if u not in values]
        if missing:
            raise WesvError(f"{f}: lacks {len(missing)} utterance(s) of wav.scp (e.g. {missing[0]!r}) — "
                            f"run tools/fix_data_dir.sh {src}")
        sub = {u: values[u] for u in keep}
        write_scp(os.path.join(dst, name), sub, sort=sort)
        if name == "utt2spk":
            utt2spk = sub
    if utt2spk is not None:
        write_scp(os.path.join(dst, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
        gender_file = os.path.join(src, "spk2gender")
        if os.path.isfile(gender_file):
            genders = read_scp(gender_file)
            write_scp(os.path.join(dst, "spk2gender"), {s: genders[s] for s in set(utt2spk.values()) if s in genders})
    if not trials or os.path.isdir(os.path.join(src, "trials")):
        return
    names = [n for n in os.listdir(src) if (n == "trials" or n.startswith("trials_"))
             and os.path.isfile(os.path.join(src, n))]
    for name in sorted(names, key=lambda n: (os.path.islink(os.path.join(src, n)), n)):  # links last
        tfile = os.path.join(src, name)
        target = os.readlink(tfile) if os.path.islink(tfile) else None
        if target is not None and "/" not in target:  # 'trials -> trials_O': keep the link if its target is kept
            if os.path.lexists(os.path.join(dst, name)):
                os.remove(os.path.join(dst, name))
            if os.path.isfile(os.path.join(dst, target)):
                os.symlink(target, os.path.join(dst, name))
            continue
        t = read_trials(tfile)
        mask = np.array([e in keep_set and x in keep_set for e, x in zip(t.enroll, t.test)], dtype=bool)
        if mask.any():
            write_trials(os.path.join(dst, name), t.subset(mask))
        logger.info("%s: kept %d of %d trials (both sides in the subset)", name, int(mask.sum()), len(t))


def subset_data_dir(src: str, dst: str, *, utt_list: str | None = None, spk_list: str | None = None,
                    first: int | None = None, random: int | None = None, seed: int = 0) -> DataDir:
    """Write a data dir holding a subset of ``src`` chosen by exactly one of the selectors."""
    chosen = [name for name, v in (("--utt-list", utt_list), ("--spk-list", spk_list), ("--first", first),
                                   ("--random", random)) if v is not None]
    if len(chosen) != 1:
        raise WesvError(f"give exactly one of --utt-list, --spk-list, --first, --random (got {chosen or 'none'})")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise WesvError(f"{dst}: the subset must go to a new directory, not the source")
    data = DataDir.load(src)
    utts = data.utts
    if utt_list is not None:
        wanted = set(read_list(utt_list))
        keep = [u for u in utts if u in wanted]
        if len(keep) < len(wanted):
            logger.warning("%s: %d listed utterances are not in %s", utt_list, len(wanted) - len(keep), src)
    elif spk_list is not None:
        if data.utt2spk is None:
            raise WesvError(f"{src}: no utt2spk, so --spk-list cannot select utterances — use --utt-list")
        speakers = set(read_list(spk_list))
        keep = [u for u in utts if data.utt2spk[u] in speakers]
        unknown = speakers - set(data.utt2spk.values())
        if unknown:
            logger.warning("%s: %d listed speakers are not in %s", spk_list, len(unknown), src)
    else:
        n = first if first is not None else random
        if n < 1 or n > len(utts):
            raise WesvError(f"{chosen[0]} {n}: choose between 1 and {len(utts)} (the utterances in {src})")
        if first is not None:
            keep = utts[:n]
        else:
            idx = np.sort(np.random.default_rng(seed).choice(len(utts), size=n, replace=False))
            keep = [utts[i] for i in idx]
    if not keep:
        raise WesvError(f"{chosen[0]} selects no utterance of {src} — check the list against wav.scp")
    _copy_subset(src, dst, keep)
    logger.info("subset_data_dir: %d of %d utterances of %s -> %s", len(keep), len(utts), src, dst)
    return DataDir.load(dst)


def split_data_dir(path: str, num_jobs: int) -> list[str]:
    """Write ``DIR/split{N}/{1..N}/`` data dirs, contiguous ``wav.scp`` chunks as ``split_scp.pl``."""
    data = DataDir.load(path)
    utts = data.utts
    out = []
    for job, (start, end) in enumerate(split_indices(len(utts), num_jobs), 1):
        d = os.path.join(path, f"split{num_jobs}", str(job))
        _copy_subset(path, d, utts[start:end], sort=False, trials=False)
        out.append(d)
    logger.info("split_data_dir: %d utterances of %s into %d parts", len(utts), path, num_jobs)
    return out
