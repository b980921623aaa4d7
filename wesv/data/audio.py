"""Load ``wav.scp`` values (file path, Kaldi pipe ``cmd |``, ``file.ark:offset``) as float32 mono; random crops."""
from __future__ import annotations

import io
import math
import os
import re
import struct
import subprocess
from typing import Sequence

import numpy as np
import soundfile as sf

from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger(__name__)

_ARK = re.compile(r"^(?P<path>.+):(?P<offset>\d+)(?P<slice>\[[^\]]*\])?$")
CHANNELS = ("first", "mean")
SHORT = ("repeat", "pad", "error")
_STDERR_TAIL = 1500  # characters of a failed command's stderr put in the error
MIN_SECONDS = 0.025  # one 25 ms fbank frame: the shortest audio an encoder embeds (validate's default minimum)
_HEADER_BYTES = 1 << 16
_told_stereo = False  # "taking channel 0" is logged once per process


def spec_kind(spec: str) -> str:
    """``"pipe"`` (ends in ``|``), ``"ark"`` (``file.ark:offset``) or ``"file"``."""
    s = spec.strip()
    if s.endswith("|"):
        return "pipe"
    if _ARK.match(s) and not os.path.exists(s):
        return "ark"
    return "file"


def _who(spec: str, utt: str | None) -> str:
    return f"utterance {utt!r} ({spec!r})" if utt is not None else repr(spec)


def _fix_streamed_wav(data: bytes) -> bytes:
    """Patch RIFF/data sizes left at 0 by tools writing a wav header to a pipe (they cannot seek back)."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if chunk == b"data":
            actual = len(data) - pos - 8
            if size == 0 or size > actual:
                buf = bytearray(data)
                buf[4:8] = struct.pack("<I", min(len(data) - 8, 0xFFFFFFFF))
                buf[pos + 4:pos + 8] = struct.pack("<I", min(actual, 0xFFFFFFFF))
                return bytes(buf)
            return data
        pos += 8 + size + (size & 1)
    return data


def _run_pipe(spec: str, utt: str | None) -> bytes:
    cmd = spec.strip()[:-1].strip()
    try:
        # pipefail: a failing first stage of 'a | b' must not pass as an empty success
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        raise WesvError(f"{_who(spec, utt)}: cannot start the command ({err.strerror})") from err
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        raise WesvError(f"{_who(spec, utt)}: command failed with exit code {proc.returncode}"
                        + (f"; its stderr: {stderr}" if stderr else "") + " — run the command by hand to see why")
    if not proc.stdout:
        raise WesvError(f"{_who(spec, utt)}: command wrote no audio to stdout — it must write a wav to '-'")
    return proc.stdout


def _decode(source, spec: str, utt: str | None) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, EOFError) as err:
        raise WesvError(f"{_who(spec, utt)}: cannot decode audio ({err}) — is it a valid audio file?") from err
    return data, rate


def _read_ark(spec: str, utt: str | None) -> tuple[np.ndarray, int]:
    import kaldiio

    m = _ARK.match(spec.strip())
    path = m.group("path")
    if not os.path.isfile(path):
        raise WesvError(f"{_who(spec, utt)}: ark file {path!r} does not exist — check wav.scp")
    size = os.path.getsize(path)
    if int(m.group("offset")) >= size:
        raise WesvError(f"{_who(spec, utt)}: offset {m.group('offset')} is past the end of the ark {path!r} ({size} "
                        "bytes) — is the offset right, or was the ark cut short?")
    try:
        loaded = kaldiio.load_mat(spec.strip())
    except Exception as err:  # kaldiio raises bare ValueError/EOFError/struct.error for a bad offset
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise WesvError(f"{_who(spec, utt)}: cannot read from the ark ({reason}) — is the offset right?") from err
    if not isinstance(loaded, tuple):
        raise WesvError(f"{_who(spec, utt)}: the ark holds a matrix, not audio — wav.scp must point at wav data")
    rate, array = loaded
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    array = array.astype(np.float32, copy=False)
    return (array[:, None] if array.ndim == 1 else array), int(rate)


def wav_truncation(path: str) -> tuple[int, int] | None:
    """``(bytes the data chunk claims, bytes there are)`` of a RIFF/WAVE file cut short, else None.

    libsndfile quietly reads what is there; a size of 0 or 0xFFFFFFFF (a header streamed before its length was
    known) is not counted as a claim.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if chunk == b"data":
            there = size - pos - 8
            return (length, there) if there < length and length not in (0, 0xFFFFFFFF) else None
        pos += 8 + length + (length & 1)
    return None


def _check_file(spec: str, utt: str | None, allow_truncated: bool = False) -> str:
    path = spec.strip()
    if not os.path.exists(path):
        raise WesvError(f"{_who(spec, utt)}: no such file — check wav.scp or the audio path")
    if os.path.isdir(path):
        raise WesvError(f"{_who(spec, utt)}: is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise WesvError(f"{_who(spec, utt)}: empty file (0 bytes) — re-create it or remove it from wav.scp")
    cut = wav_truncation(path)
    if cut is not None and not allow_truncated:
        raise WesvError(f"{_who(spec, utt)}: truncated wav — its header announces {cut[0]} bytes of audio, the file "
                        f"holds {cut[1]} — re-create or re-download it, or pass --allow-truncated to use what is "
                        "there")
    return path


def check_samples(wave: np.ndarray, spec: str, utt: str | None = None, min_samples: int = 1) -> None:
    """Refuse decoded audio an encoder cannot embed: NaN/inf samples, or fewer than ``min_samples``.

    With the file checks of ``load_audio`` this is the one rule of acceptable audio, used by extraction and by
    ``validate_data_dir --check-audio``.
    """
    if wave.shape[0] < min_samples:
        raise WesvError(f"{_who(spec, utt)}: only {wave.shape[0]} samples, at least {min_samples} are needed (one "
                        "fbank frame) — drop such short utterances from the data dir")
    finite = np.isfinite(wave)
    if not finite.all():
        first = int(np.argmin(finite))
        raise WesvError(f"{_who(spec, utt)}: holds NaN/inf samples ({int((~finite).sum())}, the first at sample "
                        f"{first}) — re-create the file (float wavs must hold finite values)")


def acceptable_audio(spec: str, sample_rate: int | None = None, *, min_seconds: float = MIN_SECONDS,
                     allow_truncated: bool = False, utt: str | None = None) -> tuple[int, int]:
    """Decode a ``wav.scp`` value whole and apply every check extraction applies (file checks, truncation, the
    sample rate when given, NaN/inf, at least ``min_seconds``); ``(num_samples, sample_rate)``."""
    kind = spec_kind(spec)
    if kind == "file":
        path = _check_file(spec, utt, allow_truncated)
        data, rate = _decode(path, spec, utt)
    elif kind == "ark":
        data, rate = _read_ark(spec, utt)
    else:
        data, rate = _decode(io.BytesIO(_fix_streamed_wav(_run_pipe(spec, utt))), spec, utt)
    if sample_rate is not None and rate != sample_rate:
        raise WesvError(f"{_who(spec, utt)}: sample rate is {rate} Hz, expected {sample_rate} Hz — resample "
                        f"the data (e.g. sox in.wav -r {sample_rate} out.wav) or turn resampling on")
    check_samples(data[:, 0] if data.shape[1] else data.reshape(-1), spec, utt,
                  max(1, math.ceil(min_seconds * rate)))
    return int(data.shape[0]), rate


def audio_info(spec: str, utt: str | None = None, *, allow_truncated: bool = False) -> tuple[int, int]:
    """``(num_samples, sample_rate)`` of a spec: header only for files, a full load for pipes and arks."""
    kind = spec_kind(spec)
    if kind == "file":
        path = _check_file(spec, utt, allow_truncated)
        try:
            info = sf.info(path)
        except (RuntimeError, ValueError) as err:
            raise WesvError(f"{_who(spec, utt)}: cannot decode audio ({err}) — is it a valid audio file?") from err
        return int(info.frames), int(info.samplerate)
    data, rate = _read_ark(spec, utt) if kind == "ark" else _decode(io.BytesIO(_fix_streamed_wav(
        _run_pipe(spec, utt))), spec, utt)
    return int(data.shape[0]), rate


def audio_num_samples(spec: str, sample_rate: int | None = None, utt: str | None = None, *,
                      allow_truncated: bool = False) -> int:
    """Length in samples (at ``sample_rate`` when given, i.e. after resampling); cheap for plain files."""
    num, rate = audio_info(spec, utt, allow_truncated=allow_truncated)
    if sample_rate is None or sample_rate == rate:
        return num
    g = math.gcd(rate, sample_rate)
    return math.ceil(num * (sample_rate // g) / (rate // g))


def load_audio(spec: str, sample_rate: int = 16000, *, resample: bool = False, channel: str = "first",
               start: int = 0, num_samples: int | None = None, utt: str | None = None,
               allow_truncated: bool = False) -> np.ndarray:
    """Load a ``wav.scp`` value as float32 mono in [-1, 1].

    ``start``/``num_samples`` count samples at ``sample_rate`` (fewer come back where the audio ends first);
    plain files at the right rate are read partially, pipes and arks are decoded whole and then sliced. A wav file
    cut short (its header claims more audio than it holds) is refused unless ``allow_truncated``; of a stereo file
    channel 0 is taken with ``channel="first"`` (logged once).
    """
    if channel not in CHANNELS:
        raise WesvError(f"channel={channel!r}: choose one of {', '.join(CHANNELS)}")
    if start < 0 or (num_samples is not None and num_samples < 1):
        raise WesvError(f"start={start}, num_samples={num_samples}: start must be >= 0 and num_samples >= 1")
    kind = spec_kind(spec)
    sliced = False
    if kind == "file":
        path = _check_file(spec, utt, allow_truncated)
        try:
            with sf.SoundFile(path) as f:
                rate, frames = f.samplerate, f.frames
                if rate == sample_rate:  # partial read: seek, then read only what is asked
                    if start >= frames > 0:
                        raise WesvError(f"{_who(spec, utt)}: start {start} is past the end ({frames} samples)")
                    f.seek(start)
                    data = f.read(-1 if num_samples is None else num_samples, dtype="float32", always_2d=True)
                    sliced = True
                else:
                    data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, TypeError, EOFError) as err:
            raise WesvError(f"{_who(spec, utt)}: cannot decode audio ({err}) — is it a valid audio file?") from err
    elif kind == "ark":
        data, rate = _read_ark(spec, utt)
    else:
        data, rate = _decode(io.BytesIO(_fix_streamed_wav(_run_pipe(spec, utt))), spec, utt)

    if data.shape[0] == 0:
        raise WesvError(f"{_who(spec, utt)}: holds no samples — re-create the file or remove it from wav.scp")
    if data.shape[1] > 1 and channel == "first":
        global _told_stereo
        if not _told_stereo:
            log.warning("%s has %d channels: taking channel 0 (and of every other multi-channel file)",
                     _who(spec, utt), data.shape[1])
            _told_stereo = True
    wave = data[:, 0] if channel == "first" or data.shape[1] == 1 else data.mean(axis=1)
    if rate != sample_rate:
        if not resample:
            raise WesvError(f"{_who(spec, utt)}: sample rate is {rate} Hz, expected {sample_rate} Hz — resample "
                            f"the data (e.g. sox in.wav -r {sample_rate} out.wav) or turn resampling on")
        from scipy.signal import resample_poly

        g = math.gcd(rate, sample_rate)
        wave = resample_poly(wave, sample_rate // g, rate // g)
    if not sliced and (start or num_samples is not None):
        if start >= wave.shape[0]:
            raise WesvError(f"{_who(spec, utt)}: start {start} is past the end ({wave.shape[0]} samples)")
        wave = wave[start:None if num_samples is None else start + num_samples]
    check_samples(wave, spec, utt)  # NaN/inf: training would only see a non-finite loss, extraction a NaN vector
    return np.ascontiguousarray(wave, dtype=np.float32)


def crop(wave: np.ndarray, num_samples: int, rng: np.random.Generator, short: str = "repeat", *,
         utt: str | None = None, min_samples: int = 1) -> np.ndarray:
    """A random ``num_samples`` window; a shorter wave is repeated, zero-padded at the end, or refused.

    A wave under ``min_samples`` (the encoder's one-frame minimum, which extraction also enforces) is refused
    whatever ``short`` says: repeating 10 ms of audio to a 2 s crop trains on a buzz, not on a voice.
    """
    if short not in SHORT:
        raise WesvError(f"short={short!r}: choose one of {', '.join(SHORT)}")
    n = wave.shape[0]
    if n >= num_samples:
        start = int(rng.integers(0, n - num_samples + 1))
        return wave[start:start + num_samples].copy()
    who = f"utterance {utt!r}" if utt is not None else "the wave"
    if n == 0:
        raise WesvError(f"{who} is empty — nothing to crop")
    check_min_samples(n, min_samples, who)
    if short == "error":
        raise WesvError(f"{who} has {n} samples, shorter than the {num_samples}-sample crop — drop short "
                        "utterances from the data dir or crop with short='repeat' or 'pad'")
    if short == "pad":
        return np.concatenate([wave, np.zeros(num_samples - n, dtype=wave.dtype)])
    tiled = np.tile(wave, num_samples // n + 2)
    start = int(rng.integers(0, n))
    return tiled[start:start + num_samples].copy()


def check_min_samples(n: int, min_samples: int, who: str) -> None:
    """Refuse audio shorter than the encoder's front end can take (training and extraction agree on this)."""
    if n < min_samples:
        raise WesvError(f"{who} has only {n} samples, fewer than the {min_samples} the encoder's front end needs "
                        "(one fbank frame; extraction refuses it too) — remove it from the data dir")


SPREAD_JITTER = 0.05  # crops that cannot sit side by side move inwards by up to this fraction of the shortest


def crop_spans(num_samples: int, sizes: Sequence[int], rng: np.random.Generator,
               jitter: float = SPREAD_JITTER) -> list[tuple[int, int] | None]:
    """``(start, end)`` of each crop in a ``num_samples`` wave; ``None`` for a crop longer than the wave.

    Crops that fit side by side get a random order and random gaps (no overlap). Otherwise the ones no longer
    than the wave are spread as far apart as it allows: in a random order, starts evenly spaced from 0 to the end
    (two crops: one at the start, one ending at the end, so their overlap is the minimum ``2·size − n``), each
    moved inwards by a random ``jitter`` (a fraction of the shortest crop) so positions still vary.
    """
    sizes = [int(x) for x in sizes]
    n, total = int(num_samples), sum(sizes)
    spans: list[tuple[int, int] | None] = [None] * len(sizes)
    if sizes and total <= n:
        # Random order of the segments, and the spare samples shared out as sorted random gaps between them.
        order = rng.permutation(len(sizes))
        gaps = np.sort(rng.integers(0, n - total + 1, size=len(sizes)))
        pos = 0
        for gap, i in zip(gaps, order):
            start = int(gap) + pos
            spans[i] = (start, start + sizes[i])
            pos += sizes[i]
        return spans
    fit = [i for i, size in enumerate(sizes) if size <= n]
    if not fit:
        return spans
    order = [fit[j] for j in rng.permutation(len(fit))]
    wobble = int(jitter * min(sizes[i] for i in fit))
    for rank, i in enumerate(order):
        room = n - sizes[i]
        start = room // 2 if len(order) == 1 else int(round(rank * room / (len(order) - 1)))
        if wobble:
            start += int(rng.integers(-wobble, wobble + 1))
        start = min(max(start, 0), room)
        spans[i] = (start, start + sizes[i])
    return spans


def crops(wave: np.ndarray, num_samples_list: Sequence[int], rng: np.random.Generator, short: str = "repeat", *,
          utt: str | None = None, jitter: float = SPREAD_JITTER, spans_out: list | None = None,
          min_samples: int = 1) -> list[np.ndarray]:
    """Several random crops, non-overlapping when the wave holds them all, else spread as far apart as it allows
    (``crop_spans``); a crop longer than the wave is repeated / padded / refused by ``crop``.

    ``spans_out``, when given, receives each crop's ``(start, end)`` (``(0, len(wave))`` for a repeated or padded
    crop, which holds the whole wave).
    """
    sizes = [int(s) for s in num_samples_list]
    spans = crop_spans(wave.shape[0], sizes, rng, jitter)
    out = [crop(wave, size, rng, short, utt=utt, min_samples=min_samples) if span is None else wave[span[0]:span[1]].copy()
           for size, span in zip(sizes, spans)]
    if spans_out is not None:
        spans_out.extend((0, wave.shape[0]) if span is None else span for span in spans)
    return out


def overlap_fraction(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Shared samples of two spans as a fraction of the shorter one (1: one holds the other)."""
    shared = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return shared / max(1, min(a[1] - a[0], b[1] - b[0]))
