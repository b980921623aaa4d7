"""Recording sessions: a random channel (EQ, band limits), reverberation, background noise and gain per utterance."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import fftconvolve

from wesv.corpus.phones import SAMPLE_RATE


@dataclass
class ChannelConfig:
    """Population of sessions: the calibration knobs for how much a recording hides the speaker."""

    # Defaults calibrated so that the mean-log-mel cosine baseline sits near 30 % EER (bench/RESULTS.md).
    eq_db: float = 3.0  # std (dB) of the random EQ bumps
    num_eq_bumps: int = 3
    low_cut_hz: tuple[float, float] = (50.0, 200.0)  # log-uniform high-pass corner
    high_cut_hz: tuple[float, float] = (4500.0, 8000.0)  # log-uniform low-pass corner (>= 7.6 kHz: none)
    snr_db: tuple[float, float] = (10.0, 35.0)
    noise_slope: tuple[float, float] = (0.8, 1.8)  # background noise power ~ f ** -slope (pink to brown)
    reverb_prob: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 0.7)
    level_dbfs: tuple[float, float] = (-32.0, -20.0)


@dataclass
class Session:
    """What one recording did to the speech (stored in meta.json; drawn independently of the speaker)."""

    low_cut_hz: float
    high_cut_hz: float
    eq_centres_hz: list[float]
    eq_gains_db: list[float]
    eq_widths_oct: list[float]
    noise_slope: float  # noise power ~ f ** -slope
    snr_db: float
    rt60_s: float  # 0: dry
    drr_db: float
    level_dbfs: float

    def to_dict(self) -> dict:
        """JSON form, rounded."""
        return {k: ([round(float(x), 4) for x in v] if isinstance(v, list) else round(float(v), 4))
                for k, v in asdict(self).items()}


def draw_session(rng: np.random.Generator, cfg: ChannelConfig) -> Session:
    """Draw one session from the channel population."""
    def logu(lo_hi: tuple[float, float]) -> float:
        return float(np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]))))

    k = cfg.num_eq_bumps
    reverb = rng.random() < cfg.reverb_prob
    return Session(
        low_cut_hz=logu(cfg.low_cut_hz),
        high_cut_hz=logu(cfg.high_cut_hz),
        eq_centres_hz=np.exp(rng.uniform(np.log(150.0), np.log(7000.0), k)).tolist(),
        eq_gains_db=(cfg.eq_db * rng.standard_normal(k)).tolist(),
        eq_widths_oct=rng.uniform(0.4, 1.5, k).tolist(),
        noise_slope=float(rng.uniform(*cfg.noise_slope)),
        snr_db=float(rng.uniform(*cfg.snr_db)),
        rt60_s=float(rng.uniform(*cfg.rt60_s)) if reverb else 0.0,
        drr_db=float(rng.uniform(-3.0, 10.0)),
        level_dbfs=float(rng.uniform(*cfg.level_dbfs)),
    )


def channel_response(s: Session, freqs: np.ndarray) -> np.ndarray:
    """Magnitude response of the session's microphone/codec chain at ``freqs`` (Hz)."""
    f = np.maximum(freqs, 1.0)
    gain_db = np.zeros_like(f)
    for c, g, w in zip(s.eq_centres_hz, s.eq_gains_db, s.eq_widths_oct):
        gain_db += g * np.exp(-0.5 * (np.log2(f / c) / (w / 2.0)) ** 2)
    mag = 10.0 ** (gain_db / 20.0)
    mag = mag / np.sqrt(1.0 + (s.low_cut_hz / f) ** 4)  # 2nd-order high-pass
    if s.high_cut_hz < 7600.0:
        mag = mag / np.sqrt(1.0 + (f / s.high_cut_hz) ** 8)  # 4th-order low-pass
    return mag


def coloured_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    """Gaussian noise whose power falls as ``f ** -slope`` (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    x = np.fft.irfft(spec * f ** (-slope / 2.0), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def synthetic_rir(rng: np.random.Generator, rt60: float, drr_db: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A cheap statistical room response: direct impulse + exponentially decaying noise tail at ``drr_db``."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * sr)] = 0.0  # first reflections arrive after ~2 ms
    tail *= 10.0 ** (-drr_db / 20.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    tail[0] = 1.0
    return tail


def apply_session(clean: np.ndarray, s: Session, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Record ``clean`` in session ``s``: reverb, channel, additive noise at the session SNR, then the level."""
    n = clean.size
    x = clean
    if s.rt60_s > 0:
        x = fftconvolve(x, synthetic_rir(rng, s.rt60_s, s.drr_db, sr))[:n]
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    x = np.fft.irfft(np.fft.rfft(x) * channel_response(s, freqs), n)
    noise = coloured_noise(rng, n, s.noise_slope)
    p_speech = np.mean(x ** 2)
    x = x + noise * np.sqrt(p_speech / 10.0 ** (s.snr_db / 10.0))
    return x * (10.0 ** (s.level_dbfs / 20.0) / (np.sqrt(np.mean(x ** 2)) + 1e-12))


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] → int16 PCM with clipping (peaks above full scale are rare at the chosen levels)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
