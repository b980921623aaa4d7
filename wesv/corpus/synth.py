"""Source–filter rendering of planned tracks: Rosenberg glottal pulses + noise through a time-varying tract (STFT)."""
from __future__ import annotations

import numpy as np
from scipy.signal import istft, stft

from wesv.corpus.phones import HOP, SAMPLE_RATE, Tracks
from wesv.corpus.population import SpeakerTraits

NFFT = 512


def _cascade(freqs: np.ndarray, centres: np.ndarray, bws: np.ndarray, sr: int) -> np.ndarray:
    """Product of the resonators of every column of ``centres``/``bws`` (frames, K): one division, complex64."""
    z1 = np.exp(-2j * np.pi * freqs / sr).astype(np.complex64)
    z2 = z1 * z1
    r = np.exp(-np.pi * bws / sr).astype(np.float32)
    c = (2.0 * r * np.cos(2.0 * np.pi * centres / sr)).astype(np.float32)
    r2 = r * r
    num = np.prod(1.0 - c + r2, axis=1)[:, None]
    den = np.ones((centres.shape[0], freqs.size), dtype=np.complex64)
    for k in range(centres.shape[1]):
        den *= 1.0 - c[:, k:k + 1] * z1 + r2[:, k:k + 1] * z2
    return num / den


def glottal_source(tracks: Tracks, traits: SpeakerTraits, rng: np.random.Generator, num_samples: int,
                   sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Voiced excitation (flow derivative with jitter and shimmer) and the glottal flow itself, per sample."""
    t_frames = np.arange(tracks.num_frames) * HOP + HOP / 2
    t = np.arange(num_samples)
    f0 = np.interp(t, t_frames, tracks.f0)
    # Jitter: a new random period-length deviation each cycle (cycle index from the undisturbed phase).
    cycle = np.floor(np.cumsum(f0) / sr).astype(np.int64)
    n_cycles = int(cycle[-1]) + 2
    f0 = f0 * (1.0 + traits.jitter * rng.standard_normal(n_cycles))[cycle]
    phase = np.cumsum(f0) / sr
    cycle = np.floor(phase).astype(np.int64)
    phi = phase - cycle
    oq, sq = traits.open_quotient, traits.speed_quotient
    tp, tn = oq * sq / (1.0 + sq), oq / (1.0 + sq)
    flow = np.where(phi < tp, 0.5 * (1.0 - np.cos(np.pi * phi / tp)),
                    np.where(phi < tp + tn, np.cos(np.pi * (phi - tp) / (2.0 * tn)), 0.0))
    dflow = np.diff(flow, prepend=flow[0]) * sr / f0  # per-cycle units: level independent of F0
    shimmer = np.clip(1.0 + traits.shimmer * rng.standard_normal(int(cycle[-1]) + 2), 0.2, None)[cycle]
    return dflow * shimmer, flow


def render(tracks: Tracks, traits: SpeakerTraits, rng: np.random.Generator, num_samples: int,
           sr: int = SAMPLE_RATE) -> np.ndarray:
    """Render ``tracks`` for a speaker into ``num_samples`` of clean speech (float64, RMS about 0.05)."""
    t_frames = np.arange(tracks.num_frames) * HOP + HOP / 2
    t = np.arange(num_samples)
    dflow, flow = glottal_source(tracks, traits, rng, num_samples, sr)
    breath = traits.breathiness * (0.25 + flow) * rng.standard_normal(num_samples) * 3.0
    voiced = np.interp(t, t_frames, tracks.voicing) * (dflow + breath)
    noise = rng.standard_normal(num_samples)

    kw = dict(fs=sr, nperseg=NFFT, noverlap=NFFT - HOP, boundary="zeros", padded=True)
    freqs, times, V = stft(voiced, **kw)
    _, _, N = stft(noise, **kw)
    # Track values at the STFT frame centres.
    centres = times * sr
    def at(x: np.ndarray) -> np.ndarray:
        return np.interp(centres, t_frames, x)[:, None]

    fmt = np.stack([np.interp(centres, t_frames, tracks.formants[:, k]) for k in range(tracks.formants.shape[1])],
                   axis=1)
    bws = np.stack([np.interp(centres, t_frames, tracks.bandwidths[:, k]) for k in range(tracks.bandwidths.shape[1])],
                   axis=1)
    tract = _cascade(freqs, fmt, bws, sr)  # (frames, bins)
    pole_hz = 270.0 * traits.formant_scale
    zero_hz = pole_hz + at(tracks.nasal) * (at(tracks.nasal_zero) - pole_hz)
    hundred = np.full_like(zero_hz, 100.0)
    tract = tract * _cascade(freqs, np.full_like(zero_hz, pole_hz), hundred, sr) \
        / _cascade(freqs, zero_hz, hundred, sr)
    tilt = (np.maximum(freqs, 1000.0) / 1000.0) ** (traits.tilt_db_per_oct / 6.02)
    fric_shape = np.exp(-0.5 * ((freqs[None, :] - at(tracks.fric_hz)) / (0.5 * at(tracks.fric_bw))) ** 2) + 0.03
    spec = (V * tilt[:, None]) * tract.T
    spec = spec + N * (at(tracks.fric_amp) * fric_shape * 4.0 + at(tracks.asp) * tract * 0.5).T
    spec = spec * at(tracks.amp).T
    _, y = istft(spec, fs=sr, nperseg=NFFT, noverlap=NFFT - HOP, boundary=True)
    y = y[:num_samples]
    if y.size < num_samples:
        y = np.pad(y, (0, num_samples - y.size))
    rms = np.sqrt(np.mean(y ** 2)) + 1e-12
    return y * (0.05 / rms)
