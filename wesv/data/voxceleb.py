"""VoxCeleb: verification lists (``1 a.wav b.wav``) to Kaldi trials; VoxCeleb1/2 trees to data dirs."""
from __future__ import annotations

import os
import shlex

from wesv.data.datadir import DataDir, c_sorted, format_problems, utt2spk_to_spk2utt, write_scp
from wesv.data.trials import Trials, write_trials
from wesv.errors import WesvError, where
from wesv.log import get_logger

logger = get_logger("wesv.data")

VOX_LABELS = {"1": True, "0": False}


def voxceleb_utt_id(relpath: str) -> str:
    """Utterance id of ``spk/video/n.ext``: the path without extension, ``/`` → ``-`` (``spk-video-n``)."""
    stem = os.path.splitext(relpath.strip().replace(os.sep, "/"))[0]
    return stem.strip("/").replace("/", "-")


def read_voxceleb_list(path: str, audio_root: str | None = None) -> Trials:
    """Read a VoxCeleb list (``label enroll.wav test.wav``, label 1/0) as trials with data-dir utterance ids.

    With ``audio_root``, every file the list names must exist under it.
    """
    problems: list[str] = []
    enroll, test, label = [], [], []
    checked: dict[str, bool] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise WesvError(f"{path}: cannot read the VoxCeleb list ({err.strerror}) — check the path") from err
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            problems.append(f"{where(path, lineno)}: expected 3 fields 'label enroll.wav test.wav', got "
                            f"{len(fields)} — is this a VoxCeleb list (veri_test2.txt, list_test_hard2.txt)?")
            continue
        if fields[0] not in VOX_LABELS:
            problems.append(f"{where(path, lineno)}: label {fields[0]!r} is not 1 (target) or 0 (nontarget)")
            continue
        if audio_root is not None:
            bad = False
            for rel in fields[1:]:
                if rel not in checked:
                    checked[rel] = os.path.isfile(os.path.join(audio_root, rel))
                if not checked[rel]:
                    problems.append(f"{where(path, lineno)}: {os.path.join(audio_root, rel)} does not exist — "
                                    "check the audio root (the 'wav' dir of VoxCeleb1) or the download")
                    bad = True
            if bad:
                continue
        label.append(VOX_LABELS[fields[0]])
        enroll.append(voxceleb_utt_id(fields[1]))
        test.append(voxceleb_utt_id(fields[2]))
    if not problems and not label:
        problems.append(f"{path}: no trials — the list is empty")
    if problems:
        raise WesvError(format_problems(f"{path} is not a usable VoxCeleb list", problems))
    return Trials.from_lists(enroll, test, label)


def voxceleb_list_to_trials(list_path: str, trials_path: str, *, audio_root: str | None = None,
                            data_dir: str | None = None) -> Trials:
    """Convert a VoxCeleb list to a Kaldi trials file; with ``data_dir``, every id must be in its ``wav.scp``."""
    trials = read_voxceleb_list(list_path, audio_root)
    if data_dir is not None:
        known = DataDir.load(data_dir).wav_scp
        unknown = [u for u in c_sorted(trials.utts()) if u not in known]
        if unknown:
            raise WesvError(f"{list_path}: {len(unknown)} utterance(s) are not in {data_dir}/wav.scp, e.g. "
                            f"{unknown[0]!r} — build the data dir from the same VoxCeleb tree as the list")
    write_trials(trials_path, trials)
    logger.info("%s -> %s: %d trials (%d target)", list_path, trials_path, len(trials), trials.num_target)
    return trials


def _walk_utts(top: str, exts: tuple[str, ...]) -> dict[str, str]:
    """Map ``spk/video/n`` (no extension) → path for files exactly three levels under ``top``."""
    found: dict[str, str] = {}
    for spk in sorted(os.scandir(top), key=lambda e: e.name):
        if not spk.is_dir():
            continue
        for video in sorted(os.scandir(spk.path), key=lambda e: e.name):
            if not video.is_dir():
                continue
            for entry in os.scandir(video.path):
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() in exts and entry.is_file():
                    found[f"{spk.name}/{video.name}/{stem}"] = os.path.abspath(entry.path)
    return found


def _no_spaces(path: str) -> str:
    if any(c.isspace() for c in path):
        raise WesvError(f"{path}: holds whitespace, which a wav.scp path cannot — move the corpus to a path "
                        "without spaces")
    return path


def _write(out_dir: str, wav_scp: dict[str, str], utt2spk: dict[str, str], trials_list: str | None,
           audio_root: str) -> DataDir:
    utt2spk = {u: utt2spk[u] for u in c_sorted(utt2spk)}  # so each speaker's list in spk2utt is sorted too
    write_scp(os.path.join(out_dir, "wav.scp"), wav_scp)
    write_scp(os.path.join(out_dir, "utt2spk"), utt2spk)
    write_scp(os.path.join(out_dir, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
    if trials_list is not None:
        voxceleb_list_to_trials(trials_list, os.path.join(out_dir, "trials"), audio_root=audio_root,
                                data_dir=out_dir)
    logger.info("%s: %d utterances, %d speakers", out_dir, len(wav_scp), len(set(utt2spk.values())))
    return DataDir.load(out_dir)


def make_voxceleb1_data_dir(root: str, out_dir: str, *, trials_list: str | None = None) -> DataDir:
    """Data dir from a VoxCeleb1 tree ``root/wav/<spk>/<video>/<n>.wav`` (``root`` may be the ``wav`` dir)."""
    wav_dir = os.path.join(root, "wav") if os.path.isdir(os.path.join(root, "wav")) else root
    if not os.path.isdir(wav_dir):
        raise WesvError(f"{root}: not a directory — give the VoxCeleb1 root holding wav/<spk>/<video>/<n>.wav")
    files = _walk_utts(wav_dir, (".wav",))
    if not files:
        raise WesvError(f"{wav_dir}: no <spk>/<video>/<n>.wav files found — is this the VoxCeleb1 'wav' tree?")
    wav_scp = {voxceleb_utt_id(rel): _no_spaces(p) for rel, p in files.items()}
    utt2spk = {voxceleb_utt_id(rel): rel.split("/")[0] for rel in files}
    return _write(out_dir, wav_scp, utt2spk, trials_list, wav_dir)


def ffmpeg_pipe(path: str, sample_rate: int = 16000) -> str:
    """The ``wav.scp`` pipe decoding ``path`` (m4a/aac) to a mono wav on stdout."""
    return f"ffmpeg -nostdin -loglevel error -i {shlex.quote(path)} -ac 1 -ar {sample_rate} -f wav - |"


def make_voxceleb2_data_dir(root: str, out_dir: str, *, subset: str = "dev", sample_rate: int = 16000) -> DataDir:
    """Data dir from VoxCeleb2 ``root/<subset>/aac/<spk>/<video>/<n>.m4a`` (ffmpeg pipes; a ``.wav`` beside
    it, or under ``root/<subset>/wav/``, is used as a plain path)."""
    aac_dir = os.path.join(root, subset, "aac")
    wav_dir = os.path.join(root, subset, "wav")
    if not os.path.isdir(aac_dir) and not os.path.isdir(wav_dir):
        raise WesvError(f"{root}: neither {aac_dir} nor {wav_dir} exists — give the VoxCeleb2 root holding "
                        f"{subset}/aac/<spk>/<video>/<n>.m4a")
    found = _walk_utts(aac_dir, (".m4a", ".wav")) if os.path.isdir(aac_dir) else {}
    wavs = _walk_utts(wav_dir, (".wav",)) if os.path.isdir(wav_dir) else {}
    # _walk_utts keeps the last extension seen per stem; re-check so that a .wav always wins over its .m4a.
    wav_scp, utt2spk = {}, {}
    for rel in set(found) | set(wavs):
        beside = os.path.join(aac_dir, rel + ".wav")
        if rel in wavs:
            spec = _no_spaces(wavs[rel])
        elif os.path.isfile(beside):
            spec = _no_spaces(os.path.abspath(beside))
        else:
            spec = ffmpeg_pipe(found[rel], sample_rate)
        utt = voxceleb_utt_id(rel)
        wav_scp[utt] = spec
        utt2spk[utt] = rel.split("/")[0]
    if not wav_scp:
        raise WesvError(f"{aac_dir}: no <spk>/<video>/<n>.m4a files found — is this the VoxCeleb2 tree?")
    return _write(out_dir, wav_scp, utt2spk, None, aac_dir)
