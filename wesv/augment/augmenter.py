"""On-the-fly augmentation of a crop: one of noise / music / babble / reverb (Kaldi's recipe), optional speed and
a per-crop random channel (``wesv.augment.channel``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wesv.augment.channel import channel_augment
from wesv.augment.ops import add_noise, change_speed, reverberate, speed_perturb
from wesv.augment.sets import AudioCache, read_noise_set, read_rir_set
from wesv.errors import WesvError

TYPES = ("noise", "music", "babble", "reverb")


@dataclass
class AugmentConfig:
    """What to do to a crop. Set directories hold a ``wav.scp`` in the format of ``wesv.augment.sets``.

    One type is drawn per augmented crop by weight, among the types whose set is given (``noise_dir`` for
    noise/music/babble, ``rir_dir`` for reverb).
    """

    prob: float = 0.6  # probability that a crop is augmented at all
    noise_weight: float = 1.0
    music_weight: float = 1.0
    babble_weight: float = 1.0
    reverb_weight: float = 1.0
    noise_snr: tuple[float, float] = (0.0, 15.0)
    music_snr: tuple[float, float] = (5.0, 15.0)
    babble_snr: tuple[float, float] = (13.0, 20.0)
    babble_sources: tuple[int, int] = (3, 7)
    reverb_prob: float = 0.0  # extra chance to reverberate before an additive type (reverb + noise)
    speed_perturb: bool = False
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_dir: str | None = None  # MUSAN-style set (noise/, music/, speech/ keys)
    rir_dir: str | None = None  # RIR set
    sample_rate: int = 16000
    cache_mb: int = 512  # per-process cache of decoded augmentation files
    # Per-crop channel (wesv.augment.channel), applied after noise / reverb and independently of ``prob``: each view
    # of an utterance gets its own EQ, tilt, band limits and codec, so views agree in speaker, not in channel.
    channel_prob: float = 0.0  # chance that a crop gets a new random channel (0: off)
    eq_bands: tuple[int, int] = (1, 3)  # number of peaking filters, drawn in [low, high]
    eq_gain_db: float = 6.0  # each peak's gain uniform in ±this
    eq_freq_hz: tuple[float, float] = (150.0, 6000.0)  # peak frequencies, log-uniform
    tilt_db: float = 6.0  # high shelf at 1 kHz, gain uniform in ±this (0: no tilt)
    band_prob: float = 0.5  # chance of band limits: a high-pass in lowcut_hz and a low-pass in highcut_hz
    lowcut_hz: tuple[float, float] = (50.0, 400.0)
    highcut_hz: tuple[float, float] = (3400.0, 7500.0)
    # A noise floor on every view at 5-30 dB: of the channel parts it is the one that hides a session's own noise
    # and reverberation tail, which mean normalisation cannot remove; bench/RESULTS.md ("What limits DINO") measured
    # DINO at 19.5 +- 0.2 % EER with it against 23.2 +- 1.3 % with the earlier (0.5, 15-40 dB), 3 seeds each, and
    # MoCo at 19.9 +- 0.6 % against 24.6 +- 2.5 % (2 seeds).
    floor_prob: float = 1.0  # chance of a coloured noise floor (hiss / hum) at an SNR in floor_snr (dB)
    floor_snr: tuple[float, float] = (5.0, 30.0)
    codec_prob: float = 0.2  # chance of a codec-like distortion: mu-law (mulaw_bits) or soft clipping (clip_level)
    mulaw_bits: tuple[int, int] = (6, 8)
    clip_level: tuple[float, float] = (0.3, 0.8)  # saturation point as a fraction of the crop's peak

    def validate(self) -> None:
        """Raise WesvError naming the bad field."""
        for name in ("prob", "reverb_prob", "channel_prob", "band_prob", "floor_prob", "codec_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise WesvError(f"augment.{name} = {v}: must be a probability in [0, 1]")
        for t in TYPES:
            if getattr(self, f"{t}_weight") < 0:
                raise WesvError(f"augment.{t}_weight = {getattr(self, f'{t}_weight')}: weights must be >= 0")
        for name in ("noise_snr", "music_snr", "babble_snr", "babble_sources", "eq_bands", "eq_freq_hz", "lowcut_hz",
                     "highcut_hz", "floor_snr", "mulaw_bits", "clip_level"):
            v = tuple(getattr(self, name))
            if len(v) != 2 or v[0] > v[1]:
                raise WesvError(f"augment.{name} = {list(v)}: give [low, high] with low <= high")
        if self.babble_sources[0] < 1:
            raise WesvError(f"augment.babble_sources = {list(self.babble_sources)}: need at least 1 source")
        nyquist = self.sample_rate / 2
        for name in ("eq_freq_hz", "lowcut_hz", "highcut_hz"):
            lo, hi = getattr(self, name)
            if lo <= 0 or hi >= nyquist:
                raise WesvError(f"augment.{name} = {[lo, hi]}: frequencies must lie in (0, {nyquist:g}) Hz")
        if self.eq_bands[0] < 0 or self.eq_gain_db < 0 or self.tilt_db < 0:
            raise WesvError("augment.eq_bands, eq_gain_db and tilt_db must be >= 0")
        if self.mulaw_bits[0] < 2 or not 0 < self.clip_level[0] <= self.clip_level[1] <= 1:
            raise WesvError(f"augment.mulaw_bits = {list(self.mulaw_bits)} must be >= 2 and augment.clip_level = "
                            f"{list(self.clip_level)} in (0, 1]")
        if any(s <= 0 for s in self.speeds) or not self.speeds:
            raise WesvError(f"augment.speeds = {list(self.speeds)}: speeds must be > 0")


class Augmenter:
    """``augmenter(wave, rng) -> wave`` of the same length; every random choice comes from ``rng``.

    Lists are read at construction; audio files are decoded on first use and cached per process, so an
    Augmenter built in the main process can be used in DataLoader workers.
    """

    def __init__(self, cfg: AugmentConfig):
        cfg.validate()
        self.cfg = cfg
        self.noise: dict[str, list[str]] = read_noise_set(cfg.noise_dir) if cfg.noise_dir else \
            {"noise": [], "music": [], "speech": []}
        self.rirs: list[str] = read_rir_set(cfg.rir_dir) if cfg.rir_dir else []
        pools = {"noise": self.noise["noise"], "music": self.noise["music"], "babble": self.noise["speech"],
                 "reverb": self.rirs}
        for t in TYPES:  # a type whose set is not given is off; a given set must hold every weighted part
            where = cfg.rir_dir if t == "reverb" else cfg.noise_dir
            if getattr(cfg, f"{t}_weight") > 0 and not pools[t] and where:
                part = {"babble": "speech"}.get(t, t)
                raise WesvError(f"augment: {t}_weight > 0 but {where} has no {part} entries — "
                                f"set augment.{t}_weight 0 or give a set that has them")
        self.types = [t for t in TYPES if getattr(cfg, f"{t}_weight") > 0 and pools[t]]
        w = np.array([getattr(cfg, f"{t}_weight") for t in self.types], dtype=np.float64)
        self.weights = w / w.sum() if w.size else w
        self.cache = AudioCache(cfg.cache_mb * 2 ** 20, cfg.sample_rate)

    def _pick(self, specs: list[str], rng: np.random.Generator) -> np.ndarray:
        return self.cache.get(specs[int(rng.integers(len(specs)))])

    def _segment(self, specs: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
        return self.cache.segment(specs[int(rng.integers(len(specs)))], n, rng)

    def _additive(self, x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        if kind == "babble":
            k = int(rng.integers(cfg.babble_sources[0], cfg.babble_sources[1] + 1))
            noise = np.zeros(x.size, dtype=np.float64)
            for _ in range(k):  # equal-power talkers, so none dominates the mixture
                s = self._segment(self.noise["speech"], x.size, rng).astype(np.float64)
                noise += s / (np.sqrt(np.mean(s * s)) + 1e-8)
            snr = cfg.babble_snr
        else:
            noise = self._segment(self.noise[kind], x.size, rng)
            snr = cfg.noise_snr if kind == "noise" else cfg.music_snr
        return add_noise(x, noise, float(rng.uniform(*snr)))

    def draw_speed(self, rng: np.random.Generator) -> float | None:
        """One speed factor from ``speeds`` (None when ``speed_perturb`` is off): a multi-view dataset draws it
        once per utterance and applies it with ``apply_speed`` before cropping, so its views share one pitch."""
        if not self.cfg.speed_perturb:
            return None
        return float(self.cfg.speeds[int(rng.integers(len(self.cfg.speeds)))])

    def apply_speed(self, wave: np.ndarray, speed: float) -> np.ndarray:
        """The whole wave played ``speed`` times faster (its length changes by 1 / speed)."""
        return change_speed(np.asarray(wave, dtype=np.float32), speed)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, speed: bool = True) -> np.ndarray:
        """Augment one crop (float array); returns a new float32 array of the same length.

        ``speed=False``: no speed perturbation here (the caller applied one per utterance with ``apply_speed``).
        """
        cfg = self.cfg
        x = np.asarray(wave, dtype=np.float32)
        if cfg.speed_perturb and speed:
            x = speed_perturb(x, self.draw_speed(rng), rng)
        x = self._sources(x, rng)
        if cfg.channel_prob > 0 and rng.random() < cfg.channel_prob:
            x = channel_augment(x, cfg, rng)
        return x

    def _sources(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise, music, babble or reverb (one type, ``prob``), as Kaldi's recipe; a copy when none is drawn."""
        cfg = self.cfg
        if not self.types or rng.random() >= cfg.prob:
            return x.copy()
        kind = self.types[int(rng.choice(len(self.types), p=self.weights))]
        if kind == "reverb":
            return reverberate(x, self._pick(self.rirs, rng))
        if self.rirs and cfg.reverb_prob > 0 and rng.random() < cfg.reverb_prob:
            x = reverberate(x, self._pick(self.rirs, rng))
        return self._additive(x, kind, rng).astype(np.float32, copy=False)
