#!/usr/bin/env python3
"""Write a miniature VoxCeleb tree from the embedded corpus, to exercise the VoxCeleb preparation without VoxCeleb.

Usage: python tools/make_mini_voxceleb.py --corpus corpus --out mini_vox [--utts-per-video 2]

From CORPUS/test (wav.scp, utt2spk, trials) it writes OUT/voxceleb1/wav/id1NNNN/<video>/NNNNN.wav and the three
cleaned VoxCeleb1 lists in their original 'label path path' format: veri_test2.txt (every corpus trial),
list_test_all2.txt (every trial, enrolment and test sides swapped) and list_test_hard2.txt (every second trial) —
distinct lists, so a test can tell them apart. From CORPUS/train it writes OUT/voxceleb2/dev/aac/id0NNNN/<video>/
NNNNN.wav (wav rather than m4a, so no ffmpeg is needed). Speakers are numbered in sorted order; every
--utts-per-video utterances of a speaker share a made-up 11-character video id. OUT/mapping.tsv lists
'corpus-utt tree-path' for checks.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil

from wesv.cli import entry_point
from wesv.data.datadir import read_scp, read_utt2spk, utt2spk_to_spk2utt
from wesv.data.trials import Trials, read_trials
from wesv.errors import WesvError


def video_id(speaker: str, index: int) -> str:
    """A stable YouTube-like 11-character id for the index-th video of a speaker."""
    digest = hashlib.sha1(f"{speaker}/{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def tree_paths(utt2spk: dict[str, str], id_prefix: str, utts_per_video: int) -> dict[str, str]:
    """Map each utterance to ``idXNNNN/<video>/NNNNN.wav``; speakers numbered in sorted order."""
    paths = {}
    for n, (spk, utts) in enumerate(utt2spk_to_spk2utt(utt2spk).items(), 1):
        vox_spk = f"{id_prefix}{n:04d}"
        for k, utt in enumerate(utts):
            paths[utt] = f"{vox_spk}/{video_id(vox_spk, k // utts_per_video)}/{k % utts_per_video + 1:05d}.wav"
    return paths


def copy_audio(spec: str, dest: str, utt: str) -> None:
    """Copy a wav file, or decode any other wav.scp value (pipe, ark) to a 16 kHz wav."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isfile(spec):
        shutil.copyfile(spec, dest)
        return
    import soundfile as sf

    from wesv.data.audio import load_audio

    sf.write(dest, load_audio(spec, utt=utt), 16000, subtype="PCM_16")


def write_list(path: str, trials: Trials, paths: dict[str, str]) -> None:
    """Write a VoxCeleb list: ``1|0 enroll-path test-path`` per trial."""
    with open(path, "w") as f:
        for e, t, lab in zip(trials.enroll.tolist(), trials.test.tolist(), trials.label.tolist()):
            f.write(f"{int(lab)} {paths[e]} {paths[t]}\n")


def load_part(corpus: str, part: str) -> tuple[dict[str, str], dict[str, str]]:
    """wav.scp and utt2spk of CORPUS/part, with clear errors."""
    d = os.path.join(corpus, part)
    for name in ("wav.scp", "utt2spk"):
        if not os.path.isfile(os.path.join(d, name)):
            raise WesvError(f"{os.path.join(d, name)}: missing — is {corpus} a corpus written by "
                            "python -m wesv.bin.make_corpus?")
    return read_scp(os.path.join(d, "wav.scp")), read_utt2spk(os.path.join(d, "utt2spk"))


def make_mini_voxceleb(corpus: str, out: str, utts_per_video: int = 2) -> None:
    """Write the miniature tree (see the module docstring)."""
    wav, utt2spk = load_part(corpus, "test")
    paths = tree_paths(utt2spk, "id1", utts_per_video)
    mapping = []
    for utt, rel in paths.items():
        copy_audio(wav[utt], os.path.join(out, "voxceleb1", "wav", rel), utt)
        mapping.append(f"{utt} voxceleb1/wav/{rel}\n")
    trials = read_trials(os.path.join(corpus, "test", "trials"))
    vox1 = os.path.join(out, "voxceleb1")
    write_list(os.path.join(vox1, "veri_test2.txt"), trials, paths)
    write_list(os.path.join(vox1, "list_test_all2.txt"), Trials(trials.test, trials.enroll, trials.label), paths)
    write_list(os.path.join(vox1, "list_test_hard2.txt"), trials.subset(slice(None, None, 2)), paths)

    wav, utt2spk = load_part(corpus, "train")
    for utt, rel in tree_paths(utt2spk, "id0", utts_per_video).items():
        copy_audio(wav[utt], os.path.join(out, "voxceleb2", "dev", "aac", rel), utt)
        mapping.append(f"{utt} voxceleb2/dev/aac/{rel}\n")
    with open(os.path.join(out, "mapping.tsv"), "w") as f:
        f.writelines(mapping)


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="embedded corpus dir (train/, test/ with trials)")
    p.add_argument("--out", required=True, help="where to write the miniature VoxCeleb tree")
    p.add_argument("--utts-per-video", type=int, default=2)
    args = p.parse_args(argv)
    if not os.path.isdir(args.corpus):
        raise WesvError(f"{args.corpus}: no such directory — make one with python -m wesv.bin.make_corpus --out DIR")
    if args.utts_per_video < 1:
        raise WesvError(f"--utts-per-video {args.utts_per_video}: must be at least 1")
    make_mini_voxceleb(args.corpus, args.out, args.utts_per_video)


if __name__ == "__main__":
    main()
