"""Run an encoder over a set of utterances: padded length-sorted batches, chunk averaging, bad-audio handling."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from wesv.data.audio import audio_num_samples, check_samples, load_audio
from wesv.errors import WesvError
from wesv.extract.segments import Segment, plan_batches, plan_segments
from wesv.features.frontend import FrontEnd
from wesv.log import get_logger

log = get_logger(__name__)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise WesvError(f"--device {device!r}: {err} — use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WesvError(f"--device {device}: no CUDA GPU is visible here — use --device auto or cpu")
    return dev


def encoder_frontend(encoder: nn.Module) -> FrontEnd:
    """The encoder's front-end, which says the sample rate and the shortest usable input."""
    frontend = getattr(encoder, "frontend", None)
    if not isinstance(frontend, FrontEnd):
        raise TypeError(f"{type(encoder).__name__} has no .frontend implementing wesv.features.FrontEnd")
    return frontend


def encoder_sample_rate(encoder: nn.Module) -> int:
    """The sample rate (Hz) the encoder's front-end expects."""
    return encoder_frontend(encoder).sample_rate


def pad_batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms of any lengths → zero-padded ``(B, longest)`` float tensor and their lengths (LongTensor)."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    if bool((lengths == lengths[0]).all()):
        return torch.from_numpy(np.stack(waves)), lengths
    batch = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for row, w in zip(batch, waves):
        row[:len(w)] = w
    return torch.from_numpy(batch), lengths


class BadUtterance(Exception):
    """Raised inside the loop for one utterance's audio; turned into a skip or a WesvError."""


def embed_utterances(encoder: nn.Module, wav_scp: dict[str, str], on_bad: Callable[[str, str], None], *,
                     device: torch.device, batch_size: int = 32, chunk_samples: int | None = None,
                     max_batch_samples: int | None = None, progress: bool | None = None,
                     allow_truncated: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, embedding float32)`` for each good utterance (mean over chunks when ``chunk_samples``).

    Segments are batched by length (``plan_batches``: at most ``batch_size``, and ``max_batch_samples`` padded
    samples), zero-padded and passed with their ``lengths``, so an embedding does not depend on its batch-mates.

    ``on_bad(utt, reason)`` is called for unreadable, truncated, empty, too-short or NaN/inf audio; it raises to
    stop (the default behaviour of extraction) or returns to skip the utterance.
    """
    frontend = encoder_frontend(encoder)
    sample_rate, min_samples = frontend.sample_rate, frontend.min_samples
    lengths: dict[str, int] = {}
    for utt, spec in wav_scp.items():
        try:
            n = audio_num_samples(spec, sample_rate, utt=utt, allow_truncated=allow_truncated)
        except WesvError as err:
            on_bad(utt, str(err))
            continue
        if n < min_samples:
            on_bad(utt, f"only {n} samples, the encoder needs at least {min_samples}")
            continue
        lengths[utt] = n
    segments = plan_segments(lengths, chunk_samples)
    counts = {utt: 0 for utt in lengths}
    for seg in segments:
        counts[seg.utt] += 1
    remaining = dict(counts)
    sums: dict[str, np.ndarray] = {}
    bad: set[str] = set()
    cache: tuple[str, np.ndarray] | None = None  # one utterance's chunks are consecutive: keep its audio

    def load(seg: Segment) -> np.ndarray:
        nonlocal cache
        whole = seg.start == 0 and seg.length == lengths[seg.utt]
        if cache is None or cache[0] != seg.utt:
            try:
                wave = load_audio(wav_scp[seg.utt], sample_rate, utt=seg.utt, allow_truncated=allow_truncated)
                check_samples(wave, wav_scp[seg.utt], seg.utt, min_samples)  # the rule validate_data_dir applies
            except WesvError as err:
                raise BadUtterance(str(err)) from None
            if wave.shape[0] != lengths[seg.utt]:
                raise BadUtterance(f"read {wave.shape[0]} samples, its header said {lengths[seg.utt]}")
            cache = (seg.utt, wave) if not whole else None
            if whole:
                return wave
        return cache[1][seg.start:seg.start + seg.length]

    encoder.eval()
    with torch.inference_mode():
        batches = plan_batches(segments, batch_size, max_batch_samples)
        for batch in tqdm(batches, desc="extract", unit="batch", disable=None if progress is None else not progress):
            waves, owners = [], []
            for seg in batch:
                if seg.utt in bad:
                    continue
                try:
                    waves.append(load(seg))
                    owners.append(seg.utt)
                except BadUtterance as err:
                    bad.add(seg.utt)
                    sums.pop(seg.utt, None)
                    on_bad(seg.utt, str(err))
            if not waves:
                continue
            wave, wave_lengths = pad_batch(waves)
            emb = encoder(wave.to(device), wave_lengths.to(device)).float().cpu().numpy()
            for utt, e in zip(owners, emb):
                if utt in bad:
                    continue
                sums[utt] = sums[utt] + e if utt in sums else e.astype(np.float64)
                remaining[utt] -= 1
                if remaining[utt] == 0:
                    mean = (sums.pop(utt) / counts[utt]).astype(np.float32)
                    if not np.all(np.isfinite(mean)):
                        on_bad(utt, "the encoder gave a non-finite embedding (NaN/inf in the audio or model?)")
                        continue
                    yield utt, mean
