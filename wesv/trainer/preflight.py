"""Checks of the training audio before the first step: every problem listed at once, not when its batch is drawn."""
import math
from typing import Any

from tqdm import tqdm

from wesv.data.audio import audio_info
from wesv.data.datadir import format_problems
from wesv.distributed import all_gather_objects, rank
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.trainer")

#: ``trainer.preflight: auto`` checks data dirs of up to this many utterances (a header read each: seconds).
AUTO_MAX_UTTS = 20_000


def wants_preflight(setting: Any, num_utts: int) -> bool:
    """Whether ``trainer.preflight`` (true, false or "auto") asks for a check of ``num_utts`` utterances."""
    return num_utts <= AUTO_MAX_UTTS if setting == "auto" else bool(setting)


def crop_samples(dataset: Any) -> int:
    """The longest crop a dataset cuts (0 when it does not say)."""
    return int(getattr(dataset, "num_samples", 0) or max(getattr(dataset, "max_lengths", [0]) or [0]))


def scan_audio(utts: list[str], specs: list[str], sample_rate: int, resample: bool, min_samples: int,
               crop: int = 0) -> tuple[list[str], int]:
    """``(problems, number shorter than crop)`` from every utterance's header (a full decode for pipes and arks)."""
    problems, short = [], 0
    for utt, spec in tqdm(zip(utts, specs), total=len(utts), desc="preflight", unit="utt",
                          disable=len(utts) < 1000):
        try:
            num, rate = audio_info(spec, utt=utt)
        except WesvError as err:
            problems.append(str(err))
            continue
        if rate != sample_rate and not resample:
            problems.append(f"utterance {utt!r} ({spec!r}): sample rate {rate} Hz, expected {sample_rate} Hz — "
                            "resample it or set data.resample true")
            continue
        n = num if rate == sample_rate else math.ceil(num * sample_rate / rate)
        if n < min_samples:
            problems.append(f"utterance {utt!r} ({spec!r}): only {n} samples, fewer than the {min_samples} the "
                            "encoder's front end needs (extraction refuses it too) — remove it from the data dir")
        elif n < crop:
            short += 1
    return problems, short


def prepare_training_data(cfg: Any, dataset: Any, encoder: Any, preflight: bool = True) -> None:
    """Give the dataset the encoder's shortest usable length; run the preflight check if ``trainer.preflight`` asks.

    ``preflight=False`` on resume: the run's start checked the data (and the resume check keeps ``data.train``),
    so a preempted 1 M-utterance run does not reread every header at each restart. A collective under DDP: rank 0
    reads the audio, every rank raises the same error.
    """
    min_samples = int(getattr(encoder, "min_samples", 1))
    if hasattr(dataset, "min_samples"):
        dataset.min_samples = min_samples
    utts, specs = getattr(dataset, "utts", None), getattr(dataset, "specs", None)
    if not preflight or utts is None or specs is None or not wants_preflight(cfg.trainer.preflight, len(utts)):
        return
    message = None
    if rank() == 0:
        d = cfg.data
        crop = crop_samples(dataset)
        problems, short = scan_audio(utts, specs, d.sample_rate, d.resample, min_samples, crop)
        if problems:
            message = format_problems(f"{d.train}: the training audio failed the preflight check (set "
                                      "trainer.preflight false to skip it)", problems)
        else:
            log.info("preflight: %d utterances of %s read fine", len(utts), d.train)
            if short:
                how = {"repeat": "repeated", "pad": "zero-padded", "error": "refused"}[d.short]
                log.warning("preflight: %d of %d utterances are shorter than the %.2f s crop; data.short %s: "
                            "they are %s", short, len(utts), crop / d.sample_rate, d.short, how)
    message = all_gather_objects(message)[0]
    if message:
        raise WesvError(message)
