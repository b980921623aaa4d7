"""The shared phone inventory and the planning of one utterance: phone sequence, prosody, frame-level tracks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wesv.corpus.population import NUM_FORMANTS, SpeakerTraits

SAMPLE_RATE = 16000
#: Frame hop of the parameter tracks (and of the synthesis STFT): 8 ms at 16 kHz.
HOP = 128

# Formant targets F1..F5 (Hz) for a 17 cm vocal tract (Peterson & Barney style averages).
VOWELS: dict[str, tuple[float, ...]] = {
    "i": (270, 2290, 3010, 3500, 4500),
    "I": (390, 1990, 2550, 3500, 4500),
    "e": (530, 1840, 2480, 3500, 4500),
    "ae": (660, 1720, 2410, 3450, 4500),
    "a": (730, 1090, 2440, 3400, 4500),
    "o": (570, 840, 2410, 3400, 4500),
    "U": (440, 1020, 2240, 3400, 4500),
    "u": (300, 870, 2240, 3400, 4500),
    "V": (640, 1190, 2390, 3450, 4500),
    "3r": (490, 1350, 1690, 3300, 4500),
}
VOWEL_NAMES = list(VOWELS)


@dataclass(frozen=True)
class Consonant:
    """Acoustic recipe of one consonant (amplitudes relative to a vowel's voicing of 1)."""

    kind: str  # nasal | approximant | fricative | stop
    dur_ms: float
    voicing: float = 0.0
    fric_amp: float = 0.0
    fric_hz: float = 0.0
    fric_bw: float = 0.0
    asp: float = 0.0
    formants: tuple[float, ...] | None = None  # own targets (nasals, approximants); else interpolated
    nasal_zero: float = 0.0  # multiplier of the speaker's nasal zero (nasals only)


CONSONANTS: dict[str, Consonant] = {
    "m": Consonant("nasal", 65, voicing=0.55, formants=(250, 1100, 2300, 3400, 4500), nasal_zero=0.8),
    "n": Consonant("nasal", 60, voicing=0.55, formants=(250, 1600, 2500, 3400, 4500), nasal_zero=1.3),
    "N": Consonant("nasal", 65, voicing=0.5, formants=(250, 2000, 2600, 3400, 4500), nasal_zero=2.0),
    "l": Consonant("approximant", 55, voicing=0.75, formants=(360, 1300, 2700, 3400, 4500)),
    "r": Consonant("approximant", 55, voicing=0.75, formants=(420, 1300, 1600, 3300, 4500)),
    "w": Consonant("approximant", 50, voicing=0.7, formants=(300, 700, 2200, 3300, 4500)),
    "j": Consonant("approximant", 50, voicing=0.7, formants=(280, 2200, 3000, 3500, 4500)),
    "s": Consonant("fricative", 95, fric_amp=0.45, fric_hz=6000, fric_bw=2200),
    "S": Consonant("fricative", 95, fric_amp=0.45, fric_hz=3000, fric_bw=1400),
    "f": Consonant("fricative", 85, fric_amp=0.12, fric_hz=5500, fric_bw=6000),
    "T": Consonant("fricative", 85, fric_amp=0.09, fric_hz=7000, fric_bw=5000),
    "h": Consonant("fricative", 70, asp=0.35),
    "z": Consonant("fricative", 80, voicing=0.45, fric_amp=0.25, fric_hz=6000, fric_bw=2200),
    "v": Consonant("fricative", 70, voicing=0.55, fric_amp=0.08, fric_hz=5000, fric_bw=6000),
    "Z": Consonant("fricative", 80, voicing=0.45, fric_amp=0.25, fric_hz=3000, fric_bw=1400),
    "p": Consonant("stop", 95, fric_amp=0.6, fric_hz=1200, fric_bw=2500, asp=0.3),
    "t": Consonant("stop", 90, fric_amp=0.7, fric_hz=4500, fric_bw=3000, asp=0.3),
    "k": Consonant("stop", 100, fric_amp=0.7, fric_hz=2400, fric_bw=1500, asp=0.3),
    "b": Consonant("stop", 80, voicing=0.12, fric_amp=0.35, fric_hz=1200, fric_bw=2500),
    "d": Consonant("stop", 75, voicing=0.12, fric_amp=0.4, fric_hz=4500, fric_bw=3000),
    "g": Consonant("stop", 85, voicing=0.12, fric_amp=0.4, fric_hz=2400, fric_bw=1500),
}
CONSONANT_NAMES = list(CONSONANTS)
BANDWIDTHS = np.array([60.0, 90.0, 130.0, 180.0, 250.0])


@dataclass
class Tracks:
    """Frame-level synthesis parameters (one row per HOP samples)."""

    f0: np.ndarray  # Hz, defined everywhere (phase continuity); voicing gates it
    voicing: np.ndarray
    formants: np.ndarray  # (frames, NUM_FORMANTS) Hz
    bandwidths: np.ndarray  # (frames, NUM_FORMANTS) Hz
    fric_amp: np.ndarray
    fric_hz: np.ndarray
    fric_bw: np.ndarray
    asp: np.ndarray
    nasal: np.ndarray  # velum coupling 0..1
    nasal_zero: np.ndarray  # Hz
    amp: np.ndarray  # loudness contour
    phones: list[str]

    @property
    def num_frames(self) -> int:
        return int(self.f0.size)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Hann-window moving average along axis 0 (edges padded by repetition): coarticulation / anti-click."""
    if width <= 1:
        return x
    w = np.hanning(width + 2)[1:-1]
    w /= w.sum()
    pad = width // 2
    xp = np.pad(x, [(pad, width - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    if x.ndim == 1:
        return np.convolve(xp, w, mode="valid")
    return np.stack([np.convolve(xp[:, k], w, mode="valid") for k in range(x.shape[1])], axis=1)


def draw_phone_sequence(rng: np.random.Generator, total_ms: float, rate: float) -> list[tuple[str, float, bool]]:
    """Words of CV/CVC syllables with pauses until ``total_ms`` is filled: ``(phone, dur_ms, stressed)`` list."""
    seq: list[tuple[str, float, bool]] = [("#", float(rng.uniform(40, 160)), False)]
    used = seq[0][1]
    while used < total_ms:
        n_syl = int(rng.choice([1, 2, 2, 3]))
        stress_at = int(rng.integers(0, n_syl))
        for s in range(n_syl):
            parts: list[tuple[str, float, bool]] = []
            if rng.random() < 0.8:
                c = CONSONANT_NAMES[int(rng.integers(len(CONSONANT_NAMES)))]
                parts.append((c, CONSONANTS[c].dur_ms, False))
            v = VOWEL_NAMES[int(rng.integers(len(VOWEL_NAMES)))]
            stressed = s == stress_at
            parts.append((v, 135.0 if stressed else 85.0, stressed))
            if rng.random() < 0.35:
                c = CONSONANT_NAMES[int(rng.integers(len(CONSONANT_NAMES)))]
                parts.append((c, CONSONANTS[c].dur_ms, False))
            for name, dur, st in parts:
                d = dur * rate * float(np.exp(0.2 * rng.standard_normal()))
                seq.append((name, d, st))
                used += d
        if rng.random() < 0.2:
            d = float(rng.uniform(80, 280)) * rate
            seq.append(("#", d, False))
            used += d
    return seq


def plan_utterance(rng: np.random.Generator, traits: SpeakerTraits, num_samples: int,
                   within_var: float = 1.0) -> Tracks:
    """Content and prosody of one new utterance of ``traits`` with exactly ``ceil(num_samples / HOP)`` frames.

    ``within_var`` scales the utterance-level deviations of a speaker from their own habits (mood, effort, tempo).
    """
    n_frames = -(-num_samples // HOP)
    frame_ms = 1000.0 * HOP / SAMPLE_RATE
    tempo = traits.speaking_rate * float(np.exp(within_var * 0.08 * rng.standard_normal()))
    seq = draw_phone_sequence(rng, n_frames * frame_ms + 50, tempo)

    scale = traits.formant_scale * np.exp(np.asarray(traits.formant_offsets))
    vowel_off = np.asarray(traits.vowel_offsets).reshape(-1, 2)
    fric_scale = traits.formant_scale * np.exp(traits.fricative_shift)
    nz = traits.nasal_zero_hz * traits.formant_scale

    voicing = np.zeros(n_frames)
    formants = np.full((n_frames, NUM_FORMANTS), np.nan)
    fric_amp, fric_hz, fric_bw = np.zeros(n_frames), np.full(n_frames, 4000.0), np.full(n_frames, 2000.0)
    asp, nasal, nasal_zero = np.zeros(n_frames), np.full(n_frames, traits.nasality), np.full(n_frames, nz)
    amp = np.ones(n_frames)
    accents: list[tuple[int, float]] = []
    phones: list[str] = []

    pos = 0
    for name, dur, stressed in seq:
        n = max(1, int(round(dur / frame_ms)))
        a, b = pos, min(pos + n, n_frames)
        if a >= n_frames:
            break
        phones.append(name)
        if name in VOWELS:
            vi = VOWEL_NAMES.index(name)
            tgt = np.asarray(VOWELS[name]) * scale
            tgt[:2] *= np.exp(vowel_off[vi])
            formants[a:b] = tgt
            voicing[a:b] = 1.0
            amp[a:b] = 1.25 if stressed else 1.0
            if stressed:
                accents.append(((a + b) // 2, float(rng.uniform(0.3, 1.0))))
        elif name in CONSONANTS:
            c = CONSONANTS[name]
            if c.formants is not None:
                formants[a:b] = np.asarray(c.formants) * scale
            if c.kind == "stop":
                # closure (silence or voice bar), burst, aspiration
                m = b - a
                close = max(1, int(0.6 * m))
                burst = max(1, int(0.15 * m))
                voicing[a:a + close] = c.voicing
                fric_amp[a + close:a + close + burst] = c.fric_amp
                fric_hz[a:b] = c.fric_hz * fric_scale
                fric_bw[a:b] = c.fric_bw * fric_scale
                asp[a + close + burst:b] = c.asp
                voicing[a + close + burst:b] = 0.3 * (c.voicing > 0)
            else:
                voicing[a:b] = c.voicing
                fric_amp[a:b] = c.fric_amp
                if c.fric_hz:
                    fric_hz[a:b] = c.fric_hz * fric_scale
                    fric_bw[a:b] = c.fric_bw * fric_scale
                asp[a:b] = c.asp
            if c.kind == "nasal":
                nasal[a:b] = 1.0
                nasal_zero[a:b] = nz * c.nasal_zero
        else:  # pause
            amp[a:b] = 1.0
        pos += n

    # Consonants without their own targets take the formants of their neighbours.
    idx = np.arange(n_frames)
    for k in range(NUM_FORMANTS):
        ok = ~np.isnan(formants[:, k])
        formants[:, k] = np.interp(idx, idx[ok], formants[ok, k]) if ok.any() else VOWELS["V"][k] * scale[k]
    formants = _smooth(formants, 6)
    bandwidths = np.tile(BANDWIDTHS * traits.bandwidth_scale, (n_frames, 1)) * \
        (1.0 + 0.6 * (formants[:, :1] < 350))  # low F1 with closed tract is damped more

    f0 = _f0_contour(rng, traits, n_frames, accents, within_var)
    return Tracks(
        f0=f0, voicing=_smooth(voicing, 3), formants=formants, bandwidths=bandwidths,
        fric_amp=_smooth(fric_amp, 2), fric_hz=_smooth(fric_hz, 3), fric_bw=_smooth(fric_bw, 3),
        asp=_smooth(asp, 3), nasal=_smooth(nasal, 4), nasal_zero=_smooth(nasal_zero, 4),
        amp=_smooth(amp, 5), phones=phones,
    )


def _f0_contour(rng: np.random.Generator, traits: SpeakerTraits, n: int, accents: list[tuple[int, float]],
                within_var: float) -> np.ndarray:
    """Declination + pitch accents + final fall/rise + slow wander, in semitones around the speaker's mean."""
    t = np.linspace(0.0, 1.0, n)
    decl = float(rng.uniform(1.0, 4.0))
    mood = within_var * 1.0 * rng.standard_normal()
    st = decl * (0.5 - t)
    k = np.arange(n)
    width = 12.0  # frames (~100 ms)
    for centre, size in accents:
        st = st + size * traits.f0_range * np.exp(-0.5 * ((k - centre) / width) ** 2)
    tail = np.clip((k - (n - 40)) / 40.0, 0.0, 1.0)
    st = st + (2.5 if rng.random() < 0.3 else -2.0) * tail
    wander = np.cumsum(rng.standard_normal(n)) * 0.08
    st = st + _smooth(wander - wander.mean(), 15)
    # accents raise the mean; re-centre so the speaker's mean F0 stays their trait (plus today's mood)
    st = st - st.mean() + mood
    return traits.f0_mean * 2.0 ** (st / 12.0)
