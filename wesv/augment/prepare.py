"""Turn the real MUSAN and RIRS_NOISES trees into the augmentation lists that ``Augmenter`` reads."""
from __future__ import annotations

import os

from wesv.augment.sets import PARTS
from wesv.data.datadir import write_scp
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.augment")
ROOM_CLASSES = ("smallroom", "mediumroom", "largeroom")


def _wavs(root: str) -> list[str]:
    """Every ``*.wav`` under ``root`` (sorted relative paths with '/')."""
    found = []
    for d, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(".wav"):
                found.append(os.path.relpath(os.path.join(d, name), root).replace(os.sep, "/"))
    return sorted(found)


def prepare_musan(musan_dir: str, out: str) -> dict[str, int]:
    """List ``musan_dir/{noise,music,speech}/**.wav`` into ``out/wav.scp`` (keys ``part/subdir/file.wav``)."""
    if not os.path.isdir(musan_dir):
        raise WesvError(f"{musan_dir}: not a directory — give the unpacked MUSAN root (with noise/ music/ speech/)")
    missing = [p for p in PARTS if not os.path.isdir(os.path.join(musan_dir, p))]
    if len(missing) == len(PARTS):
        raise WesvError(f"{musan_dir}: has none of noise/, music/, speech/ — is this the MUSAN root?")
    entries, counts = {}, {}
    for part in PARTS:
        rels = _wavs(os.path.join(musan_dir, part)) if part not in missing else []
        counts[part] = len(rels)
        for rel in rels:
            key = f"{part}/{rel}"
            if any(c.isspace() for c in key):
                raise WesvError(f"{os.path.join(musan_dir, key)}: file name holds whitespace; rename it")
            entries[key] = os.path.abspath(os.path.join(musan_dir, part, rel))
    if not entries:
        raise WesvError(f"{musan_dir}: no .wav files under noise/, music/ or speech/")
    if missing:
        logger.warning("%s: no %s part(s); give their augmentation weights 0", musan_dir, ", ".join(missing))
    write_scp(os.path.join(out, "wav.scp"), entries)
    logger.info("wrote %s: %s", os.path.join(out, "wav.scp"), counts)
    return counts


def prepare_rirs(rirs_dir: str, out: str, include_real: bool = False) -> dict[str, int]:
    """List ``RIRS_NOISES/simulated_rirs/<class>/RoomN/*.wav`` (and real RIRs if asked) into ``out/wav.scp``.

    Keys are ``<class>/RoomN/<file>.wav`` for simulated RIRs and ``real/<file>.wav`` for the real ones (files of
    ``real_rirs_isotropic_noises/`` whose name has ``_rir_``; the isotropic noises there are left out).
    """
    if not os.path.isdir(rirs_dir):
        raise WesvError(f"{rirs_dir}: not a directory — give the unpacked RIRS_NOISES root")
    sim = os.path.join(rirs_dir, "simulated_rirs")
    if not os.path.isdir(sim) and any(os.path.isdir(os.path.join(rirs_dir, c)) for c in ROOM_CLASSES):
        sim = rirs_dir  # given simulated_rirs/ itself
    entries, counts = {}, {}
    for cls in ROOM_CLASSES:
        rels = _wavs(os.path.join(sim, cls)) if os.path.isdir(os.path.join(sim, cls)) else []
        counts[cls] = len(rels)
        for rel in rels:
            entries[f"{cls}/{rel}"] = os.path.abspath(os.path.join(sim, cls, rel))
    if include_real:
        real = os.path.join(rirs_dir, "real_rirs_isotropic_noises")
        if not os.path.isdir(real):
            raise WesvError(f"{real}: missing — drop --include-real or give the full RIRS_NOISES root")
        rels = [r for r in _wavs(real) if "_rir_" in os.path.basename(r).lower()]
        counts["real"] = len(rels)
        for rel in rels:
            entries[f"real/{rel}"] = os.path.abspath(os.path.join(real, rel))
    if not entries:
        raise WesvError(f"{rirs_dir}: no RIR .wav files under simulated_rirs/{{{','.join(ROOM_CLASSES)}}}/ — "
                        "is this the RIRS_NOISES root?")
    write_scp(os.path.join(out, "wav.scp"), entries)
    logger.info("wrote %s: %s", os.path.join(out, "wav.scp"), counts)
    return counts
