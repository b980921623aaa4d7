"""Feature streams beside the audio (seam 11): per-utterance frame sequences such as ``face.scp``.

A stream is a Kaldi ``scp`` (``utt-id ark-path:offset``, kaldiio) of float matrices ``(frames, dim)``, one per
utterance; utterances may be missing from it (a sample without the stream falls back to the other branches). Its
frame rate lives in the data dir's ``stream_info.json``: ``{"face": {"frame_rate": 5.0, "dim": 64}}``, keyed by the
scp's name without ``.scp``. Frame ``i`` covers the audio from ``i / frame_rate`` s to ``(i + 1) / frame_rate`` s.
"""
from __future__ import annotations

import json
import math
import os
from typing import Iterator, Mapping

import kaldiio
import numpy as np

from wesv.errors import WesvError, where

STREAM_INFO = "stream_info.json"


def stream_name(scp: str) -> str:
    """The stream's name: the scp's file name without ``.scp`` (``face.scp`` → ``face``)."""
    base = os.path.basename(scp)
    return base[:-4] if base.endswith(".scp") else base


def read_stream_info(data_dir: str) -> dict[str, dict]:
    """``data_dir/stream_info.json`` as a dict (empty when absent); a bad file is a WesvError."""
    path = os.path.join(data_dir, STREAM_INFO)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as err:
        raise WesvError(f"{path}: not readable JSON ({err}) — write it as {{\"face\": {{\"frame_rate\": 5.0}}}}") \
            from None
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise WesvError(f"{path}: must map each stream name to an object, e.g. {{\"face\": {{\"frame_rate\": 5.0}}}}")
    return info


def write_stream_info(data_dir: str, name: str, **fields) -> None:
    """Set the entry of stream ``name`` in ``data_dir/stream_info.json`` (other streams' entries kept)."""
    info = read_stream_info(data_dir)
    info[name] = fields
    path = os.path.join(data_dir, STREAM_INFO)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def stream_scps(data_dir: str) -> list[str]:
    """The stream scps a data dir carries: ``face.scp`` and every ``NAME.scp`` that ``stream_info.json`` names."""
    names = dict.fromkeys(["face", *read_stream_info(data_dir)])
    return [f"{n}.scp" for n in names if os.path.isfile(os.path.join(data_dir, f"{n}.scp"))]


def stream_frame_rate(scp: str) -> float | None:
    """Frame rate of the stream ``scp`` from the ``stream_info.json`` beside it (None when not recorded)."""
    entry = read_stream_info(os.path.dirname(scp) or ".").get(stream_name(scp), {})
    rate = entry.get("frame_rate")
    if rate is None:
        return None
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise WesvError(f"{os.path.join(os.path.dirname(scp), STREAM_INFO)}: {stream_name(scp)}.frame_rate must be "
                        f"a positive number of frames per second, got {rate!r}")
    return float(rate)


def iter_stream(scp: str) -> Iterator[tuple[int, str, np.ndarray]]:
    """``(line, utt, matrix)`` of every entry in scp order; an unreadable entry is a WesvError naming its line."""
    if not os.path.isfile(scp):
        raise WesvError(f"{scp}: stream scp not found — give a kaldiio scp of per-utterance (frames, dim) matrices")
    lineno = 0
    try:
        for lineno, (utt, mat) in enumerate(kaldiio.load_scp_sequential(scp), 1):
            yield lineno, utt, np.asarray(mat)
    except WesvError:
        raise
    except Exception as err:  # kaldiio raises plain OSError/ValueError/KeyError for bad lines and arks
        raise WesvError(f"{where(scp, lineno + 1)}: cannot read the matrix ({type(err).__name__}: {err}) — check "
                        "that the ark it points to exists and is complete") from None


def read_stream(scp: str) -> dict[str, np.ndarray]:
    """Every matrix of a stream, read eagerly (streams are small: a face track is ~1 KB/s) as float32 ``(frames,
    dim)``; not 2-D, empty, non-finite, mixed dimensions or repeated keys are WesvErrors naming file:line."""
    out: dict[str, np.ndarray] = {}
    dim = None
    for lineno, utt, mat in iter_stream(scp):
        loc = where(scp, lineno)
        if utt in out:
            raise WesvError(f"{loc}: utterance {utt!r} appears twice — keep one line per utterance")
        problem = matrix_problem(mat, dim)
        if problem:
            raise WesvError(f"{loc}: utterance {utt!r}: {problem}")
        dim = mat.shape[1]
        out[utt] = mat.astype(np.float32, copy=False)
    return out


def matrix_problem(mat: np.ndarray, dim: int | None) -> str | None:
    """What is wrong with one stream matrix (None if fine): shape, emptiness, finiteness, dimension ``dim``."""
    if mat.ndim != 2:
        return f"holds a {mat.ndim}-D array of shape {mat.shape}, need a (frames, dim) matrix — write matrices"
    if mat.shape[0] == 0 or mat.shape[1] == 0:
        return f"matrix of shape {mat.shape} is empty — drop the utterance from the scp instead"
    if dim is not None and mat.shape[1] != dim:
        return f"has dimension {mat.shape[1]}, earlier entries have {dim} — extract every utterance with one model"
    if not np.isfinite(mat).all():
        return "holds NaN or inf values — re-extract it or drop it from the scp"
    return None


class Stream:
    """A stream opened lazily (kaldiio reads a matrix when asked), with the crop helper for datasets."""

    def __init__(self, scp: str, frame_rate: float | None = None):
        if not os.path.isfile(scp):
            raise WesvError(f"{scp}: stream scp not found — give a kaldiio scp of (frames, dim) matrices")
        self.scp = scp
        self.frame_rate = frame_rate if frame_rate is not None else stream_frame_rate(scp)
        if self.frame_rate is None:
            raise WesvError(f"{scp}: no frame rate — add {{\"{stream_name(scp)}\": {{\"frame_rate\": FPS}}}} to "
                            f"{os.path.join(os.path.dirname(scp), STREAM_INFO)} or pass frame_rate")
        self._mats: Mapping[str, np.ndarray] = kaldiio.load_scp(scp)

    def __contains__(self, utt: str) -> bool:
        return utt in self._mats

    def __len__(self) -> int:
        return len(self._mats)

    def __getitem__(self, utt: str) -> np.ndarray:
        return np.asarray(self._mats[utt], dtype=np.float32)

    def num_frames(self, dur_s: float) -> int:
        """Frames matching ``dur_s`` seconds of audio (at least one): equal audio crops give equal frame counts."""
        return max(1, int(round(dur_s * self.frame_rate)))

    def frames_for(self, utt: str, start_s: float, dur_s: float) -> np.ndarray:
        """The ``num_frames(dur_s)`` frames from the one covering ``start_s`` (the audio crop's span); past the end
        of the sequence the last frame repeats, so every crop of one length has one shape. KeyError if missing."""
        mat = self[utt]
        n = self.num_frames(dur_s)
        first = min(max(0, int(math.floor(start_s * self.frame_rate + 1e-9))), mat.shape[0] - 1)
        idx = np.minimum(np.arange(first, first + n), mat.shape[0] - 1)
        return mat[idx]
