"""Build the embedded corpus: speakers, utterances (each its own session), trials, augmentation sets, docs."""
from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import soundfile as sf

from wesv.corpus.augsets import write_noise_set
from wesv.corpus.faces import FaceConfig, face_baseline_eer, write_faces
from wesv.corpus.phones import SAMPLE_RATE, VOWEL_NAMES, plan_utterance
from wesv.corpus.plots import plot_spectrograms
from wesv.corpus.population import SpeakerTraits, draw_population
from wesv.corpus.rooms import write_rir_set
from wesv.corpus.session import ChannelConfig, apply_session, draw_session, to_int16
from wesv.corpus.synth import render
from wesv.data.datadir import atomic_write_lines, utt2spk_to_spk2utt, write_scp
from wesv.data.trials import Trials, write_trials
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.corpus")

VERSION = "1.0"


@dataclass
class CorpusConfig:
    """Every size and population knob of the generated corpus (recorded in meta.json)."""

    num_train_speakers: int = 120
    utts_per_speaker: int = 10
    num_test_speakers: int = 40
    test_utts_per_speaker: int = 10
    min_dur: float = 2.0
    max_dur: float = 5.0
    num_trials: int = 6000  # upper bound; the target fraction is kept exactly
    target_fraction: float = 0.35
    trait_spread: float = 1.0  # scales every between-speaker trait deviation
    within_var: float = 1.0  # scales a speaker's utterance-to-utterance deviations (mood, tempo, effort)
    twin_fraction: float = 0.05
    channel: bool = True  # False: clean close-talk recordings (calibration)
    channel_cfg: ChannelConfig = field(default_factory=ChannelConfig)
    augment_sets: bool = True
    num_noise: int = 16
    num_music: int = 10
    num_speech: int = 14
    rooms_per_class: int = 4
    rirs_per_room: int = 2
    faces: bool = True  # the visual stream: face.scp (+ stream_info.json) in train/ and test/, arks in face/
    face_cfg: FaceConfig = field(default_factory=FaceConfig)
    num_workers: int = 2

    def validate(self) -> None:
        """Raise WesvError for impossible sizes."""
        if self.num_train_speakers < 1 or self.num_test_speakers < 2:
            raise WesvError("make_corpus: need >= 1 train speaker and >= 2 test speakers (for nontarget trials)")
        if self.utts_per_speaker < 1 or self.test_utts_per_speaker < 2:
            raise WesvError("make_corpus: need >= 1 utterance per train speaker and >= 2 per test speaker "
                            "(for target trials)")
        if not 0.1 <= self.min_dur <= self.max_dur:
            raise WesvError(f"make_corpus: need 0.1 <= --min-dur <= --max-dur, got {self.min_dur}, {self.max_dur}")
        if not 0.0 < self.target_fraction < 1.0:
            raise WesvError(f"make_corpus: --target-fraction must be in (0, 1), got {self.target_fraction}")
        if self.num_workers < 1:
            raise WesvError("make_corpus: --num-workers must be >= 1")
        if self.faces and (self.face_cfg.dim < 1 or not self.face_cfg.frame_rate > 0):
            raise WesvError(f"make_corpus: need --face-dim >= 1 and --face-frame-rate > 0, got {self.face_cfg.dim}, "
                            f"{self.face_cfg.frame_rate}")


def _render_job(job: tuple) -> dict | None:
    """Render, record and write one utterance (module-level so a process pool can run it)."""
    path, traits_dict, seed_key, num_samples, channel_cfg, within_var = job
    rng = np.random.default_rng(seed_key)
    traits = SpeakerTraits.from_dict(traits_dict)
    session = draw_session(rng, channel_cfg) if channel_cfg is not None else None
    clean = render(plan_utterance(rng, traits, num_samples, within_var), traits, rng, num_samples)
    if session is not None:
        y = apply_session(clean, session, rng)
    else:
        y = clean * (10 ** (-26 / 20) / (np.sqrt(np.mean(clean ** 2)) + 1e-12))
    sf.write(path, to_int16(y), SAMPLE_RATE, subtype="PCM_16")
    return session.to_dict() if session is not None else None


def make_trials(rng: np.random.Generator, spk2utt: dict[str, list[str]], num_trials: int,
                target_fraction: float) -> Trials:
    """All (or ``num_trials * target_fraction``) same-speaker pairs plus nontarget pairs in that proportion."""
    utts = [u for s in sorted(spk2utt) for u in spk2utt[s]]
    spk_of = {u: s for s in spk2utt for u in spk2utt[s]}
    target = [(a, b) for s in sorted(spk2utt) for i, a in enumerate(spk2utt[s]) for b in spk2utt[s][i + 1:]]
    n_tar = min(len(target), int(round(num_trials * target_fraction)))
    target = [target[i] for i in sorted(rng.choice(len(target), n_tar, replace=False).tolist())]
    n_all_non = sum(len(spk2utt[s]) * (len(utts) - len(spk2utt[s])) for s in spk2utt) // 2
    n_non = min(n_all_non, int(round(n_tar * (1 - target_fraction) / target_fraction)))
    chosen: set[tuple[str, str]] = set()
    if n_non > n_all_non // 2:
        pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:] if spk_of[a] != spk_of[b]]
        chosen = {pairs[i] for i in rng.choice(len(pairs), n_non, replace=False).tolist()}
    else:
        while len(chosen) < n_non:
            i, j = sorted(rng.choice(len(utts), 2, replace=False).tolist())
            if spk_of[utts[i]] != spk_of[utts[j]]:
                chosen.add((utts[i], utts[j]))
    rows = sorted([(a, b, True) for a, b in target] + [(a, b, False) for a, b in chosen])
    return Trials.from_lists([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def _write_data_dir(path: str, wav: dict[str, str], utt2spk: dict[str, str]) -> None:
    os.makedirs(path, exist_ok=True)
    write_scp(os.path.join(path, "wav.scp"), wav)
    write_scp(os.path.join(path, "utt2spk"), utt2spk)
    write_scp(os.path.join(path, "spk2utt"), utt2spk_to_spk2utt(utt2spk))


def write_augment_sets(out: str, seed: int, cfg: CorpusConfig) -> dict[str, int]:
    """Write ``out/noise`` (MUSAN-like noise, music, single talkers) and ``out/rirs`` (simulated RIRs), each with its
    ``wav.scp``; return the counts per kind."""
    logger.info("writing augmentation sets (noise/music/speech, simulated RIRs)")
    noise = write_noise_set(os.path.join(out, "noise"), seed, cfg.num_noise, cfg.num_music, cfg.num_speech)
    write_scp(os.path.join(out, "noise", "wav.scp"), noise)
    rirs = write_rir_set(os.path.join(out, "rirs"), np.random.default_rng([seed, 8]), cfg.rooms_per_class,
                         cfg.rirs_per_room)
    write_scp(os.path.join(out, "rirs", "wav.scp"), rirs)
    return {"noise": sum(k.startswith("noise/") for k in noise), "music": sum(k.startswith("music/") for k in noise),
            "speech": sum(k.startswith("speech/") for k in noise), "rirs": len(rirs)}


def _config(overrides: dict) -> CorpusConfig:
    names = {f.name for f in fields(CorpusConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise WesvError(f"make_corpus: unknown option(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
    return CorpusConfig(**overrides)


def make_augment_sets(out: str, seed: int = 0, **overrides) -> dict[str, int]:
    """Only the augmentation sets, ``out/noise`` and ``out/rirs`` (for a corpus of one's own without MUSAN or
    RIRS_NOISES); ``overrides`` as for :func:`make_corpus` (the sizes ``num_noise`` ... ``rirs_per_room``)."""
    cfg = _config(overrides)
    for name in ("num_noise", "num_music", "num_speech", "rooms_per_class", "rirs_per_room"):
        if getattr(cfg, name) < 0:
            raise WesvError(f"make_corpus: --{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.num_noise + cfg.num_music + cfg.num_speech == 0 or cfg.rooms_per_class * cfg.rirs_per_room == 0:
        raise WesvError("make_corpus --only-augment-sets: need at least one noise/music/speech clip and one RIR")
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    counts = write_augment_sets(out, seed, cfg)
    logger.info("augmentation sets written: %s (augment.noise_dir: %s, augment.rir_dir: %s)", counts,
                os.path.join(out, "noise"), os.path.join(out, "rirs"))
    return counts


def make_corpus(out: str, seed: int = 0, **overrides) -> dict:
    """Generate the corpus into ``out`` (see :class:`CorpusConfig` for ``overrides``); returns the meta dict."""
    cfg = _config(overrides)
    cfg.validate()
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)

    pop_rng = np.random.default_rng([seed, 1])
    n_train, n_test = cfg.num_train_speakers, cfg.num_test_speakers
    # Twins are drawn within each split, so some test nontargets are hard on purpose.
    train_spk, train_twin = draw_population(pop_rng, n_train, len(VOWEL_NAMES), cfg.trait_spread, cfg.twin_fraction)
    test_spk, test_twin = draw_population(pop_rng, n_test, len(VOWEL_NAMES), cfg.trait_spread, cfg.twin_fraction)
    speakers: dict[str, dict] = {}
    jobs, utt_rows, face_rows = [], [], []
    channel_cfg = cfg.channel_cfg if cfg.channel else None
    for split, spk_list, twins, offset, n_utt in (("train", train_spk, train_twin, 0, cfg.utts_per_speaker),
                                                  ("test", test_spk, test_twin, n_train, cfg.test_utts_per_speaker)):
        for i, traits in enumerate(spk_list):
            spk = f"spk{offset + i + 1:04d}"
            speakers[spk] = {"split": split, "twin_of": None if twins[i] is None else f"spk{offset + twins[i] + 1:04d}",
                             "traits": traits.to_dict()}
            os.makedirs(os.path.join(out, "wav", spk), exist_ok=True)
            for u in range(n_utt):
                utt = f"{spk}-utt{u + 1:04d}"
                key = [seed, 2, offset + i, u]
                dur = np.random.default_rng(key + [0]).uniform(cfg.min_dur, cfg.max_dur)
                num_samples = int(round(dur * SAMPLE_RATE))
                path = os.path.join(out, "wav", spk, f"{utt}.wav")
                jobs.append((path, speakers[spk]["traits"], key, num_samples, channel_cfg, cfg.within_var))
                utt_rows.append((split, utt, spk, path, num_samples))
                face_rows.append((split, utt, offset + i, u, num_samples))

    logger.info("rendering %d utterances of %d speakers with %d worker(s)", len(jobs), len(speakers), cfg.num_workers)
    if cfg.num_workers > 1:
        with multiprocessing.get_context("fork").Pool(cfg.num_workers) as pool:
            sessions = list(pool.imap(_render_job, jobs, chunksize=8))
    else:
        sessions = [_render_job(j) for j in jobs]

    utterances: dict[str, dict] = {}
    data: dict[str, tuple[dict, dict]] = {"train": ({}, {}), "test": ({}, {})}
    for (split, utt, spk, path, n), sess in zip(utt_rows, sessions):
        data[split][0][utt] = path
        data[split][1][utt] = spk
        utterances[utt] = {"spk": spk, "split": split, "num_samples": n, "session": sess}
    for split, (wav, u2s) in data.items():
        _write_data_dir(os.path.join(out, split), wav, u2s)
    trials = make_trials(np.random.default_rng([seed, 5]), utt2spk_to_spk2utt(data["test"][1]), cfg.num_trials,
                         cfg.target_fraction)
    write_trials(os.path.join(out, "test", "trials"), trials)

    aug = write_augment_sets(out, seed, cfg) if cfg.augment_sets else {}
    faces = None
    if cfg.faces:
        write_faces(out, seed, face_rows, SAMPLE_RATE, cfg.face_cfg)
        faces = {"dim": cfg.face_cfg.dim, "frame_rate": cfg.face_cfg.frame_rate,
                 "mean_frame_cosine_eer": round(face_baseline_eer(os.path.join(out, "test")), 6)}
        logger.info("faces: cosine on the mean frame gives %.2f %% EER on the test trials",
                    100 * faces["mean_frame_cosine_eer"])

    first_two = [s for s in speakers if speakers[s]["split"] == "train"][:2]
    rows = [(s, [(u, data["train"][0][u]) for u in list(data["train"][0]) if u.startswith(s + "-")][:3])
            for s in first_two]
    plot_spectrograms(os.path.join(out, "spectrograms.png"), rows)

    meta = {
        "name": "wesv embedded procedural speech corpus", "version": VERSION, "seed": seed,
        "sample_rate": SAMPLE_RATE, "config": {k: v for k, v in asdict(cfg).items() if k != "num_workers"},
        "counts": {"train_speakers": n_train, "train_utts": len(data["train"][0]), "test_speakers": n_test,
                   "test_utts": len(data["test"][0]), "trials": len(trials), "target_trials": trials.num_target,
                   "hours": round(sum(r[4] for r in utt_rows) / SAMPLE_RATE / 3600, 4), **aug},
        "speakers": speakers, "utterances": utterances, "faces": faces,
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    atomic_write_lines(os.path.join(out, "README"), [readme_text(meta)])
    logger.info("corpus written to %s: %s", out, meta["counts"])
    return meta


def readme_text(meta: dict) -> str:
    """The corpus README: what it is, how it was made, how it is laid out, and its calibration."""
    c, n = meta["config"], meta["counts"]
    cmd = (f"python -m wesv.bin.make_corpus --out DIR --seed {meta['seed']} --num-train-speakers "
           f"{c['num_train_speakers']} --utts-per-speaker {c['utts_per_speaker']} --num-test-speakers "
           f"{c['num_test_speakers']} --test-utts-per-speaker {c['test_utts_per_speaker']} --min-dur {c['min_dur']} "
           f"--max-dur {c['max_dur']}" + ("" if c["channel"] else " --no-channel")
           + ("" if c["augment_sets"] else " --no-augment-sets") + ("" if c["faces"] else " --no-faces"))
    f = meta.get("faces")
    pad = "\n" + " " * 20
    face_block = "" if not f else (
        "  face/SPLIT.ark    the visual stream (--no-faces: none): train/face.scp and test/face.scp name one float32"
        f"{pad}(frames, {f['dim']}) matrix per utterance, {f['frame_rate']:g} frames per second of audio "
        f"(stream_info.json);{pad}each frame = the speaker's face-identity latent + a per-utterance "
        f"pose/light/expression{pad}offset (low-rank) + per-frame noise, independent of the voice; own seed "
        f"stream, so the{pad}audio is the same with or without faces. Cosine on the mean frame: "
        f"{100 * f['mean_frame_cosine_eer']:.1f} %{pad}EER on test/trials (python bench/corpus_faces.py --corpus "
        "DIR).\n")
    return f"""wesv embedded procedural speech corpus, version {meta['version']}
===============================================================

Made by:  {cmd}
(every option, including the channel and population knobs, is in meta.json "config")
Seed {meta['seed']}; the same command and seed give byte-identical wav files.
{n['train_speakers']} train speakers / {n['train_utts']} utterances, {n['test_speakers']} test speakers / \
{n['test_utts']} utterances (disjoint speakers), {n['trials']} trials ({n['target_trials']} target), \
{n['hours']} hours, 16 kHz 16-bit PCM. Channel/noise/reverb: {'on' if c['channel'] else 'off (--no-channel)'}.

How it is made
- Speakers draw fixed traits from a two-sex population (meta.json "speakers"): mean F0 and pitch range, vocal-tract
  length (scales all formants), per-formant offsets, formant bandwidths, source tilt, Rosenberg glottal pulse shape
  (open and speed quotients), jitter, shimmer, breathiness, speaking rate, nasality, fricative articulation and a
  per-vowel accent. About {c['twin_fraction']:.0%} of speakers are near-twins of another speaker of their split.
- Each utterance is new content from a shared inventory (10 vowels, nasals, approximants, fricatives, stops, pauses)
  with its own prosody, rendered by source–filter synthesis (glottal pulses + aspiration/frication noise through a
  time-varying cascade of formant resonators with a nasal pole–zero pair).
- Each utterance is its own recording session, independent of the speaker (meta.json "utterances"): random EQ and
  band limits, optional reverberation, coloured background noise at a random SNR, and a random level. So crops of one
  utterance share a channel that other utterances of the same speaker do not, as on VoxCeleb.

Layout
  train/  test/     Kaldi data dirs (wav.scp, utt2spk, spk2utt); test/trials is "enroll test target|nontarget"
  wav/SPK/UTT.wav   audio; utterance ids are SPK-uttNNNN
  noise/wav.scp     MUSAN-like augmentation list, keys noise/..., music/..., speech/... (single talkers for babble),
                    same format as `python -m wesv.bin.prepare_musan --musan-dir /path/musan --out data/musan`
  rirs/wav.scp      simulated RIRs (image-source method, pyroomacoustics), simulated_rirs/{{small,medium,large}}room,
                    same format as `python -m wesv.bin.prepare_rirs --rirs-dir /path/RIRS_NOISES --out data/rirs`;
                    rirs/rir_info.txt gives room sizes and RT60s
{face_block}  meta.json         every option, every speaker's traits, every utterance's session
  spectrograms.png  three utterances of each of two speakers

Calibration (default sizes, seed 0; see bench/RESULTS.md "Embedded corpus calibration")
{CALIBRATION}
"""


#: Filled in from bench/corpus_baseline.py's output at the default settings.
CALIBRATION = """  python -m wesv.bin.make_corpus --out DIR --seed 0
  python bench/corpus_baseline.py --corpus DIR      # also builds DIR_nochannel with --no-channel
  Cosine scoring of each utterance's mean raw log-mel fbank (python -m wesv.bin.baseline_embeddings):
    32.2 % EER with sessions on, 15.1 % with --no-channel.
  LDA on mean+std fbank statistics, fitted on the train speakers only: 10.9 % (5.2 % with --no-channel),
  so speaker identity is learnable well below the training-free baseline."""
