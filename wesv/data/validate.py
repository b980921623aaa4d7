"""Validation of Kaldi data dirs: every problem listed as ``file:line: what — fix``, optionally audio checks."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import kaldiio
import numpy as np

from wesv.data.datadir import Table, c_sorted, format_problems, scan_table, trials_paths
from wesv.data.streams import matrix_problem, stream_name, stream_scps
from wesv.errors import WesvError, where

MAX_PER_KIND = 20  # mismatch messages listed per kind before summarising, so a broken 1M-line dir stays readable


@dataclass
class ValidationSummary:
    """What a valid data dir holds."""

    path: str
    num_utts: int
    num_speakers: int | None
    num_trials: int | None = None  # over all trial lists
    num_target: int | None = None
    trials: dict[str, tuple[int, int]] = field(default_factory=dict)  # list name -> (trials, targets)
    num_audio_read: int | None = None  # with check_audio
    streams: dict[str, "StreamSummary"] = field(default_factory=dict)  # stream name -> what it holds

    def __str__(self) -> str:
        parts = [f"{self.num_utts:,} utterances"]
        parts.append(f"{self.num_speakers:,} speakers" if self.num_speakers is not None else "no utt2spk")
        if len(self.trials) == 1:
            parts.append(f"{self.num_trials:,} trials ({self.num_target:,} target)")
        elif self.trials:
            parts.append("trials " + ", ".join(f"{name} {n:,} ({t:,} target)" for name, (n, t) in self.trials.items()))
        if self.num_audio_read is not None:
            parts.append(f"{self.num_audio_read:,} audio files read and accepted")
        parts += [str(s) for s in self.streams.values()]
        return f"{self.path}: OK — " + ", ".join(parts)


@dataclass
class StreamSummary:
    """What a valid stream (e.g. ``face.scp``) holds; ``num_missing`` utterances of wav.scp have no entry."""

    name: str
    num_utts: int
    num_missing: int
    dim: int | None

    def __str__(self) -> str:
        return f"stream {self.name} ({self.num_utts:,} utterances, dim {self.dim}, {self.num_missing:,} missing)"


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


def validate_data_dir(path: str, check_trials: bool = True, *, check_audio: bool = False,
                      sample_rate: int | None = None, allow_truncated: bool = False,
                      streams: Sequence[str] | None = None) -> ValidationSummary:
    """Check a data dir; raise one ``WesvError`` listing every problem as ``file:line: what — fix``.

    ``check_audio`` decodes every audio file with extraction's rule (``wesv.data.audio.acceptable_audio``).
    ``streams`` names feature-stream scps (file names in the dir, or paths) to check; None checks those the dir
    carries (``face.scp`` and the scps ``stream_info.json`` names). A stream's keys must be utterances of wav.scp
    (missing ones are allowed and counted), each matrix readable with kaldiio, 2-D, non-empty, finite and of one
    dimension across utterances.
    """
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

    num_audio = None
    if check_audio and wav is not None:
        num_audio = _check_audio(wav, sample_rate, capped, allow_truncated)
    stream_summaries: dict[str, StreamSummary] = {}
    if wav is not None:
        for scp in _stream_paths(path, streams, problems):
            summary = _check_stream(scp, wav, capped, problems)
            if summary is not None:
                stream_summaries[summary.name] = summary
    capped.close()
    if problems:
        raise WesvError(format_problems(f"data dir {path} is not valid", problems))
    speakers = None if utt2spk is None else len(set(utt2spk.values.values()))
    num_trials = sum(n for n, _ in counts.values()) if counts else None
    num_target = sum(t for _, t in counts.values()) if counts else None
    return ValidationSummary(path, len(wav.values), speakers, num_trials, num_target, counts, num_audio,
                             stream_summaries)


def _stream_paths(path: str, streams: Sequence[str] | None, problems: list[str]) -> list[str]:
    """The stream scps to check: those named (relative to the data dir unless a path), else ``face.scp`` if there."""
    if streams is None:
        return [os.path.join(path, name) for name in stream_scps(path)]
    out = []
    for name in streams:
        scp = name if os.path.dirname(name) else os.path.join(path, name)
        if os.path.isfile(scp):
            out.append(scp)
        else:
            problems.append(f"{scp}: stream scp not found — give the name of an scp in {path} (e.g. face.scp) or "
                            "its path")
    return out


def _check_stream(scp: str, wav: Table, capped: _Capped, problems: list[str]) -> StreamSummary | None:
    """Keys a subset of wav.scp, every matrix readable, 2-D, finite and of one dimension."""
    hint = f"fix or drop these lines of {os.path.basename(scp)} (an utterance may lack a stream; it may not be " \
           "unknown or broken)"
    table = scan_table(scp, 2, fix_hint=f"fix {scp}", check_sorted=False)
    problems += table.problems
    dim, bad = None, bool(table.problems)
    for utt, value in table.values.items():
        loc = where(scp, table.lineno[utt])
        if utt not in wav.values:
            capped.add(f"{os.path.basename(scp)} utterances not in wav.scp",
                       f"{loc}: utterance {utt!r} is not in wav.scp — {hint}", hint)
            bad = True
            continue
        try:
            mat = kaldiio.load_mat(value.strip())
        except Exception as err:  # kaldiio raises plain OSError/ValueError for bad paths, offsets and arks
            capped.add(f"unreadable {os.path.basename(scp)} entries",
                       f"{loc}: cannot read {value.strip()!r} ({type(err).__name__}: {err}) — {hint}", hint)
            bad = True
            continue
        mat = np.asarray(mat)
        problem = matrix_problem(mat, dim)
        if problem is not None:
            capped.add(f"bad {os.path.basename(scp)} matrices", f"{loc}: utterance {utt!r} {problem}", hint)
            bad = True
            continue
        if dim is None:
            dim = mat.shape[1]
    if bad:
        return None
    present = sum(u in table.values for u in wav.values)
    return StreamSummary(stream_name(scp), present, len(wav.values) - present, dim)


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


def _check_audio(wav: Table, sample_rate: int | None, capped: _Capped, allow_truncated: bool) -> int:
    """Decode every file as extraction would; returns how many were read."""
    from tqdm import tqdm

    from wesv.data.audio import acceptable_audio

    hint = "fix or remove these files (tools/fix_data_dir.sh keeps what wav.scp lists)"
    for utt, spec in tqdm(wav.values.items(), total=len(wav.values), desc="checking audio", unit="utt",
                          disable=len(wav.values) < 1000):
        try:
            acceptable_audio(spec, sample_rate, allow_truncated=allow_truncated, utt=utt)
        except WesvError as err:
            kind = "files at the wrong sample rate" if "sample rate is" in str(err) else "unreadable audio files"
            capped.add(kind, f"{where(wav.path, wav.lineno[utt])}: {err}", hint)
    return len(wav.values)
