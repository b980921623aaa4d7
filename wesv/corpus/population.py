"""Speaker traits and the population they are drawn from (two sexes, overlapping spreads, a few near-twins)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

#: Number of formants the synthesiser models (F1..F5).
NUM_FORMANTS = 5
#: Reference vocal-tract length (cm) of the formant targets in ``phones.py``.
REFERENCE_VTL_CM = 17.0


@dataclass
class SpeakerTraits:
    """Fixed voice of one speaker: everything here stays the same in all of the speaker's utterances."""

    sex: str  # "m" or "f"
    f0_mean: float  # Hz
    f0_range: float  # semitones of prosodic excursion (accents)
    vtl_cm: float  # vocal-tract length: scales every formant by REFERENCE_VTL_CM / vtl_cm
    formant_offsets: list[float]  # per-formant multiplicative deviation (log), timbre peculiarity
    bandwidth_scale: float  # multiplies the reference formant bandwidths
    tilt_db_per_oct: float  # extra source spectral tilt above 1 kHz (negative = darker voice)
    open_quotient: float  # Rosenberg pulse: fraction of the period the glottis is open
    speed_quotient: float  # opening / closing phase duration ratio (pulse skew)
    jitter: float  # relative per-period F0 perturbation (std)
    shimmer: float  # relative per-period amplitude perturbation (std)
    breathiness: float  # aspiration noise level relative to the voiced source
    speaking_rate: float  # multiplies phone durations (>1 = slower)
    nasality: float  # baseline velum coupling in vowels (0..1)
    nasal_zero_hz: float  # antiresonance of the speaker's nasal tract (before VTL scaling)
    fricative_shift: float  # log-multiplier on fricative noise centre frequencies (articulation habit)
    vowel_offsets: list[float]  # per-vowel (log) shift of F1/F2, an accent: 2 values per vowel, flattened

    def to_dict(self) -> dict:
        """Plain-JSON form (floats rounded so meta.json stays readable and stable)."""
        out = {}
        for k, v in asdict(self).items():
            out[k] = [round(float(x), 6) for x in v] if isinstance(v, list) else (
                round(float(v), 6) if isinstance(v, float) else v)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "SpeakerTraits":
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    @property
    def formant_scale(self) -> float:
        """Global formant multiplier from the vocal-tract length."""
        return REFERENCE_VTL_CM / self.vtl_cm


def draw_speaker(rng: np.random.Generator, num_vowels: int, spread: float = 1.0) -> SpeakerTraits:
    """Draw one speaker from the population; ``spread`` scales every within-sex deviation (calibration knob)."""
    sex = "m" if rng.random() < 0.5 else "f"
    s = spread
    if sex == "m":
        f0 = 118.0 * np.exp(s * 0.17 * rng.standard_normal())
        vtl = 17.2 + s * 0.9 * rng.standard_normal()
    else:
        f0 = 205.0 * np.exp(s * 0.15 * rng.standard_normal())
        vtl = 14.9 + s * 0.8 * rng.standard_normal()
    return SpeakerTraits(
        sex=sex,
        f0_mean=float(np.clip(f0, 70.0, 330.0)),
        f0_range=float(np.clip(3.5 + s * 1.2 * rng.standard_normal(), 1.0, 8.0)),
        vtl_cm=float(np.clip(vtl, 12.5, 20.0)),
        formant_offsets=(s * 0.045 * rng.standard_normal(NUM_FORMANTS)).tolist(),
        bandwidth_scale=float(np.exp(s * 0.25 * rng.standard_normal())),
        tilt_db_per_oct=float(-1.0 + s * 2.5 * rng.standard_normal()),
        open_quotient=float(np.clip(0.6 + s * 0.08 * rng.standard_normal(), 0.35, 0.85)),
        speed_quotient=float(np.clip(2.4 + s * 0.6 * rng.standard_normal(), 1.2, 4.0)),
        jitter=float(np.clip(0.008 * np.exp(s * 0.5 * rng.standard_normal()), 0.001, 0.04)),
        shimmer=float(np.clip(0.05 * np.exp(s * 0.4 * rng.standard_normal()), 0.01, 0.2)),
        breathiness=float(np.clip(0.08 * np.exp(s * 0.7 * rng.standard_normal()), 0.005, 0.5)),
        speaking_rate=float(np.exp(s * 0.12 * rng.standard_normal())),
        nasality=float(np.clip(0.15 + s * 0.12 * rng.standard_normal(), 0.0, 0.7)),
        nasal_zero_hz=float(np.clip(1300.0 * np.exp(s * 0.15 * rng.standard_normal()), 700.0, 2500.0)),
        fricative_shift=float(s * 0.1 * rng.standard_normal()),
        vowel_offsets=(s * 0.04 * rng.standard_normal(2 * num_vowels)).tolist(),
    )


def near_twin(rng: np.random.Generator, base: SpeakerTraits, closeness: float = 0.15) -> SpeakerTraits:
    """A speaker very like ``base``: every trait perturbed by ``closeness`` times a typical population spread."""
    c = closeness
    return SpeakerTraits(
        sex=base.sex,
        f0_mean=float(base.f0_mean * np.exp(c * 0.16 * rng.standard_normal())),
        f0_range=float(max(1.0, base.f0_range + c * 1.2 * rng.standard_normal())),
        vtl_cm=float(base.vtl_cm + c * 0.85 * rng.standard_normal()),
        formant_offsets=(np.asarray(base.formant_offsets) + c * 0.045 * rng.standard_normal(NUM_FORMANTS)).tolist(),
        bandwidth_scale=float(base.bandwidth_scale * np.exp(c * 0.25 * rng.standard_normal())),
        tilt_db_per_oct=float(base.tilt_db_per_oct + c * 2.5 * rng.standard_normal()),
        open_quotient=float(np.clip(base.open_quotient + c * 0.08 * rng.standard_normal(), 0.35, 0.85)),
        speed_quotient=float(np.clip(base.speed_quotient + c * 0.6 * rng.standard_normal(), 1.2, 4.0)),
        jitter=float(base.jitter * np.exp(c * 0.5 * rng.standard_normal())),
        shimmer=float(base.shimmer * np.exp(c * 0.4 * rng.standard_normal())),
        breathiness=float(base.breathiness * np.exp(c * 0.7 * rng.standard_normal())),
        speaking_rate=float(base.speaking_rate * np.exp(c * 0.12 * rng.standard_normal())),
        nasality=float(np.clip(base.nasality + c * 0.12 * rng.standard_normal(), 0.0, 0.7)),
        nasal_zero_hz=float(base.nasal_zero_hz * np.exp(c * 0.15 * rng.standard_normal())),
        fricative_shift=float(base.fricative_shift + c * 0.1 * rng.standard_normal()),
        vowel_offsets=(np.asarray(base.vowel_offsets)
                       + c * 0.04 * rng.standard_normal(len(base.vowel_offsets))).tolist(),
    )


def draw_population(rng: np.random.Generator, num_speakers: int, num_vowels: int, spread: float = 1.0,
                    twin_fraction: float = 0.05) -> tuple[list[SpeakerTraits], list[int | None]]:
    """Draw ``num_speakers`` speakers; about ``twin_fraction`` of them are near-twins of an earlier one.

    Returns the traits and, per speaker, the index of the speaker it is a twin of (or None).
    """
    speakers: list[SpeakerTraits] = []
    twin_of: list[int | None] = []
    num_twins = int(round(twin_fraction * num_speakers)) if num_speakers >= 4 else 0
    twin_slots = set(rng.choice(np.arange(1, num_speakers), size=num_twins, replace=False).tolist()) \
        if num_twins else set()
    for i in range(num_speakers):
        if i in twin_slots:
            j = int(rng.integers(0, i))
            speakers.append(near_twin(rng, speakers[j]))
            twin_of.append(j)
        else:
            speakers.append(draw_speaker(rng, num_vowels, spread))
            twin_of.append(None)
    return speakers, twin_of
