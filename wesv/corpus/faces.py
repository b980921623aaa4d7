"""The corpus's visual stream: per-utterance face-embedding sequences (``face.scp``) with a speaker identity.

Each frame is ``identity + nuisance + noise``: a speaker's face-identity latent (fixed over their utterances), a
per-utterance nuisance (pose, light, expression: a random offset in a low-rank subspace shared by the whole corpus
plus a small isotropic part) and per-frame noise. Faces draw from their own RNG streams (``[seed, 11, ...]``), so
turning them on or off leaves every other file of the corpus unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import kaldiio
import numpy as np

from wesv.data.streams import write_stream_info

FACE_STREAM = 11  # RNG stream id of the faces; the audio, trials and augmentation sets use 1, 2, 5, 7, 8


@dataclass
class FaceConfig:
    """Size and difficulty of the face stream (recorded in meta.json)."""

    dim: int = 64
    frame_rate: float = 5.0  # frames per second of audio
    nuisance_rank: int = 8  # dimension of the shared pose/light/expression subspace
    nuisance_scale: float = 0.55  # std of a nuisance coordinate (basis rows have the identity's norm); calibrated
    nuisance_iso: float = 0.35  # isotropic part of the per-utterance offset
    frame_noise: float = 0.8  # per-frame noise std


def num_face_frames(num_samples: int, sample_rate: int, frame_rate: float) -> int:
    """Frames of an utterance: one per ``1 / frame_rate`` s of audio, at least one."""
    return max(1, int(round(num_samples / sample_rate * frame_rate)))


def _nuisance_basis(seed: int, cfg: FaceConfig) -> np.ndarray:
    """The corpus-wide ``(rank, dim)`` nuisance subspace, scaled so each coordinate has about unit effect."""
    rng = np.random.default_rng([seed, FACE_STREAM, 0])
    q, _ = np.linalg.qr(rng.standard_normal((cfg.dim, cfg.nuisance_rank)))
    return q.T * np.sqrt(cfg.dim)


def face_sequence(seed: int, spk_index: int, utt_index: int, num_frames: int, basis: np.ndarray,
                  cfg: FaceConfig) -> np.ndarray:
    """Frames ``(num_frames, dim)`` float32 of utterance ``utt_index`` of speaker ``spk_index`` (global index)."""
    identity = np.random.default_rng([seed, FACE_STREAM, 1, spk_index]).standard_normal(cfg.dim)
    rng = np.random.default_rng([seed, FACE_STREAM, 2, spk_index, utt_index])
    offset = cfg.nuisance_scale * rng.standard_normal(cfg.nuisance_rank) @ basis \
        + cfg.nuisance_iso * rng.standard_normal(cfg.dim)
    frames = identity + offset + cfg.frame_noise * rng.standard_normal((num_frames, cfg.dim))
    return frames.astype(np.float32)


def write_faces(out: str, seed: int, rows: list[tuple[str, str, int, int, int]], sample_rate: int,
                cfg: FaceConfig) -> dict[str, str]:
    """Write ``out/face/SPLIT.ark`` and ``out/SPLIT/face.scp`` + ``stream_info.json`` for ``rows`` of ``(split,
    utt, spk_index, utt_index, num_samples)``; returns the scp path per split."""
    basis = _nuisance_basis(seed, cfg)
    os.makedirs(os.path.join(out, "face"), exist_ok=True)
    scps = {}
    for split in dict.fromkeys(r[0] for r in rows):
        ark = os.path.join(out, "face", f"{split}.ark")
        scp = os.path.join(out, split, "face.scp")
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
            for s, utt, spk_i, utt_i, n in rows:
                if s == split:
                    writer(utt, face_sequence(seed, spk_i, utt_i, num_face_frames(n, sample_rate, cfg.frame_rate),
                                              basis, cfg))
        write_stream_info(os.path.join(out, split), "face", frame_rate=cfg.frame_rate, dim=cfg.dim,
                          description="synthetic face-identity embeddings (wesv corpus)")
        scps[split] = scp
    return scps


def face_baseline_eer(test_dir: str) -> float:
    """EER of cosine scoring on each utterance's mean face frame over ``test_dir/trials``."""
    from wesv.data.streams import read_stream
    from wesv.data.trials import read_trials
    from wesv.scoring.metrics import compute_eer

    stream = read_stream(os.path.join(test_dir, "face.scp"))
    index = {k: i for i, k in enumerate(stream)}
    means = np.stack([m.astype(np.float64).mean(axis=0) for m in stream.values()])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    trials = read_trials(os.path.join(test_dir, "trials"))
    e = np.array([index[k] for k in trials.enroll.tolist()])
    t = np.array([index[k] for k in trials.test.tolist()])
    return float(compute_eer(np.sum(means[e] * means[t], axis=1), trials.label)[0])
