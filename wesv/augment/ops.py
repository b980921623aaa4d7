"""Signal operations of augmentation: add noise at an SNR, reverberate with an RIR, speed perturbation."""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, resample_poly

EPS = 1e-10


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample window of ``x``; a shorter ``x`` is looped from a random offset."""
    if x.size >= n:
        start = int(rng.integers(0, x.size - n + 1))
        return x[start:start + n]
    start = int(rng.integers(0, x.size))
    return np.tile(np.roll(x, -start), n // x.size + 1)[:n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + g * noise`` with ``g`` chosen so that the SNR of the two actual signals is ``snr_db``.

    ``noise`` must already have ``x``'s length. A silent ``x`` or ``noise`` is returned unchanged (SNR undefined).
    """
    p_x = float(np.mean(np.square(x, dtype=np.float64)))
    p_n = float(np.mean(np.square(noise, dtype=np.float64)))
    if p_x < EPS or p_n < EPS:
        return x.copy()
    gain = np.sqrt(p_x / (p_n * 10.0 ** (snr_db / 10.0)))
    return (x + gain * noise).astype(x.dtype, copy=False)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` aligned to its direct path (peak), same length, dry-signal energy preserved."""
    rir = np.asarray(rir, dtype=np.float64)
    if rir.size == 0 or not np.any(rir):
        return x.copy()
    peak = int(np.argmax(np.abs(rir)))
    y = fftconvolve(x.astype(np.float64), rir)[peak:peak + x.size]
    e_x, e_y = float(np.sum(np.square(x, dtype=np.float64))), float(np.sum(y * y))
    if e_y < EPS:
        return x.copy()
    return (y * np.sqrt(e_x / e_y)).astype(x.dtype, copy=False)


def change_speed(x: np.ndarray, speed: float) -> np.ndarray:
    """Play ``x`` ``speed`` times faster (pitch and tempo, as sox ``speed``): ``len(x) / speed`` samples."""
    if speed == 1.0:
        return x
    # 0.9 -> up 10 / down 9 samples: resample_poly keeps it exact and fast for these ratios.
    up, down = 100, int(round(100 * speed))
    g = np.gcd(up, down)
    return resample_poly(x.astype(np.float64), up // g, down // g).astype(x.dtype, copy=False)


def speed_perturb(x: np.ndarray, speed: float, rng: np.random.Generator) -> np.ndarray:
    """``change_speed``, then crop/loop back to the length of ``x``."""
    if speed == 1.0:
        return x
    return fit_length(change_speed(x, speed), x.size, rng)
