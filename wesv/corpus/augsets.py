"""Generated MUSAN-like augmentation material: noises, music and single talkers for babble, laid out like MUSAN."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from wesv.corpus.phones import SAMPLE_RATE, VOWEL_NAMES, plan_utterance
from wesv.corpus.population import draw_speaker
from wesv.corpus.session import coloured_noise
from wesv.corpus.synth import render

NOISE_KINDS = ("coloured", "modulated", "impulsive", "hum", "sweep")


def make_noise(rng: np.random.Generator, n: int, kind: str | None = None) -> np.ndarray:
    """A noise clip: stationary coloured noise or one of several non-stationary kinds; RMS about 0.1."""
    kind = kind or NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    t = np.arange(n) / SAMPLE_RATE
    base = coloured_noise(rng, n, float(rng.uniform(-0.5, 2.0)))
    if kind == "coloured":
        x = base
    elif kind == "modulated":  # traffic / wind: slow random loudness swings
        knots = rng.uniform(0.05, 1.0, int(n / SAMPLE_RATE * rng.uniform(1, 6)) + 2)
        env = np.interp(t, np.linspace(0, t[-1], knots.size), knots)
        x = base * env
    elif kind == "impulsive":  # knocks, clicks, door slams: decaying resonances over a quiet floor
        x = 0.05 * base
        for _ in range(int(rng.integers(3, 15))):
            start = int(rng.integers(0, n))
            dur = int(rng.uniform(0.02, 0.3) * SAMPLE_RATE)
            tt = np.arange(min(dur, n - start)) / SAMPLE_RATE
            f = rng.uniform(80, 3000)
            burst = np.sin(2 * np.pi * f * tt) * np.exp(-tt * rng.uniform(10, 80)) \
                + 0.5 * rng.standard_normal(tt.size) * np.exp(-tt * 60)
            x[start:start + tt.size] += rng.uniform(0.5, 3.0) * burst
    elif kind == "hum":  # mains hum with harmonics plus hiss
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 8))
        x = x + rng.uniform(0.05, 0.5) * coloured_noise(rng, n, 0.0)
    else:  # sweep: a machine running up and down
        f = np.exp(np.interp(t, np.linspace(0, t[-1], 4), np.log(rng.uniform(100, 2000, 4))))
        x = np.sign(np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)) * 0.3 + 0.3 * base
    return 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def make_music(rng: np.random.Generator, n: int) -> np.ndarray:
    """A music clip: melody and chords of harmonic tones on a scale, with a drum rhythm; RMS about 0.1."""
    x = np.zeros(n)
    tempo = rng.uniform(70, 160)
    beat = int(60.0 / tempo * SAMPLE_RATE)
    root = 48 + int(rng.integers(0, 12))  # MIDI note
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    n_harm = int(rng.integers(3, 12))
    decay = rng.uniform(0.5, 1.5)  # harmonic roll-off exponent: timbre

    def tone(midi: float, length: int, amp: float) -> np.ndarray:
        f = 440.0 * 2 ** ((midi - 69) / 12)
        tt = np.arange(length) / SAMPLE_RATE
        k = np.arange(1, n_harm + 1)[:, None]
        k = k[(k[:, 0] * f) < 7500]
        wave = np.sum(np.sin(2 * np.pi * f * k * tt) / k ** decay, axis=0)
        attack = np.minimum(1.0, tt / 0.01)
        return amp * wave * attack * np.exp(-tt * rng.uniform(1.0, 4.0))

    pos = 0
    while pos < n:  # melody
        length = beat * int(rng.choice([1, 1, 2])) // int(rng.choice([1, 2]))
        note = root + 12 + scale[int(rng.integers(len(scale)))] + 12 * int(rng.integers(0, 2))
        seg = tone(note, min(length, n - pos), 0.6)
        x[pos:pos + seg.size] += seg
        pos += length
    for pos in range(0, n, 4 * beat):  # chords every bar
        deg = int(rng.integers(len(scale)))
        for step in (0, 2, 4):
            note = root + scale[(deg + step) % 7] + 12 * ((deg + step) // 7)
            seg = tone(note, min(4 * beat, n - pos), 0.3)
            x[pos:pos + seg.size] += seg
    if rng.random() < 0.7:  # drums: kick on beats, hi-hat off-beats
        for pos in range(0, n, beat):
            tt = np.arange(min(int(0.15 * SAMPLE_RATE), n - pos)) / SAMPLE_RATE
            x[pos:pos + tt.size] += 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 20)
            h = pos + beat // 2
            if h < n:
                m = min(int(0.05 * SAMPLE_RATE), n - h)
                x[h:h + m] += 0.2 * np.diff(rng.standard_normal(m + 1)) * np.exp(-np.arange(m) / SAMPLE_RATE * 80)
    return 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def make_talker_clip(rng: np.random.Generator, n: int) -> np.ndarray:
    """One utterance of a fresh speaker (not in the train or test population), for babble; RMS about 0.1."""
    traits = draw_speaker(rng, len(VOWEL_NAMES))
    y = render(plan_utterance(rng, traits, n), traits, rng, n)
    return 0.1 * y / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def write_noise_set(out_dir: str, seed: int, num_noise: int, num_music: int, num_speech: int,
                    dur_s: tuple[float, float] = (3.0, 6.0)) -> dict[str, str]:
    """Write ``out_dir/{noise,music,speech}/synth/<type>-synth-NNNN.wav``; return ``{key: path}`` (MUSAN keys)."""
    entries: dict[str, str] = {}
    makers = {"noise": make_noise, "music": make_music, "speech": make_talker_clip}
    counts = {"noise": num_noise, "music": num_music, "speech": num_speech}
    for part_id, (part, maker) in enumerate(makers.items()):
        sub = os.path.join(out_dir, part, "synth")
        os.makedirs(sub, exist_ok=True)
        for i in range(counts[part]):
            rng = np.random.default_rng([seed, 7, part_id, i])
            n = int(rng.uniform(*dur_s) * SAMPLE_RATE)
            x = np.clip(maker(rng, n), -1.0, 1.0)
            name = f"{part}-synth-{i:04d}.wav"
            path = os.path.abspath(os.path.join(sub, name))
            sf.write(path, x.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
            entries[f"{part}/synth/{name}"] = path
    return entries
