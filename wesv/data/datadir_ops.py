"""Data-dir tools as Kaldi's ``fix_data_dir.sh``, ``subset_data_dir.sh`` and ``split_data.sh``."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wesv.data.datadir import (PER_SPK_FILES, PER_UTT_FILES, DataDir, Table, atomic_write_lines, c_sorted, read_list,
                               read_scp, scan_table, split_indices, trials_paths, utt2spk_to_spk2utt, write_scp)
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.data")


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
    _fix_streams(path, backup, keep_set)
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


def _fix_streams(path: str, backup: str, keep: set[str]) -> None:
    """Drop stream lines (``face.scp`` ...) of utterances no longer in the dir (a stream may lack utterances)."""
    from wesv.data.streams import stream_scps

    for name in stream_scps(path):
        f = os.path.join(path, name)
        table = scan_table(f, 2, check_sorted=False)
        if table.dropped or any(u not in keep for u in table.values):
            shutil.copyfile(f, os.path.join(backup, name))
            write_scp(f, {u: v for u, v in table.values.items() if u in keep})


def _copy_streams(src: str, dst: str, keep: Sequence[str], sort: bool) -> None:
    """Feature streams (``face.scp`` ...) restricted to ``keep`` (an utterance may lack one) and ``stream_info.json``;
    the scps keep pointing at ``src``'s arks."""
    from wesv.data.streams import STREAM_INFO, stream_scps

    for name in stream_scps(src):
        values = read_scp(os.path.join(src, name))
        write_scp(os.path.join(dst, name), {u: values[u] for u in keep if u in values}, sort=sort)
    if os.path.isfile(os.path.join(src, STREAM_INFO)):
        shutil.copyfile(os.path.join(src, STREAM_INFO), os.path.join(dst, STREAM_INFO))


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
    _copy_streams(src, dst, keep, sort)
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
