"""The embedded corpus: determinism, speakers vs sessions, data dirs and trials, augmentation-set layout."""
import filecmp
import json
import os

import numpy as np
import pytest
import soundfile as sf

from wesv.augment.prepare import prepare_musan, prepare_rirs
from wesv.corpus import make_corpus, make_trials
from wesv.corpus.phones import SAMPLE_RATE, VOWEL_NAMES, plan_utterance
from wesv.corpus.population import draw_speaker
from wesv.corpus.synth import render
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.data.trials import read_trials
from wesv.data.validate import validate_data_dir
from wesv.errors import WesvError

TINY = dict(num_train_speakers=6, utts_per_speaker=3, num_test_speakers=4, test_utts_per_speaker=3, min_dur=1.0,
            max_dur=1.5, num_noise=2, num_music=2, num_speech=3, rooms_per_class=1, rirs_per_room=1, num_workers=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("corpus") / "c")
    make_corpus(out, 3, **TINY)
    return out


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_same_seed_gives_identical_bytes_whatever_the_workers(corpus, tmp_path):
    other = str(tmp_path / "again")
    make_corpus(other, 3, **{**TINY, "num_workers": 2, "augment_sets": False})
    wavs = [f for f in _files(os.path.join(corpus, "wav"))]
    assert len(wavs) == 6 * 3 + 4 * 3
    match, mismatch, errors = filecmp.cmpfiles(os.path.join(corpus, "wav"), os.path.join(other, "wav"), wavs,
                                               shallow=False)
    assert not mismatch and not errors
    for name in ("train/utt2spk", "train/spk2utt", "test/utt2spk", "test/trials", "spectrograms.png"):
        assert filecmp.cmp(os.path.join(corpus, name), os.path.join(other, name), shallow=False), name
    a = open(os.path.join(corpus, "train/wav.scp")).read().replace(corpus, "ROOT")
    b = open(os.path.join(other, "train/wav.scp")).read().replace(other, "ROOT")
    assert a == b
    ma, mb = json.load(open(os.path.join(corpus, "meta.json"))), json.load(open(os.path.join(other, "meta.json")))
    assert ma["speakers"] == mb["speakers"] and ma["utterances"] == mb["utterances"]


def test_other_seed_differs(corpus, tmp_path):
    other = str(tmp_path / "seed4")
    make_corpus(other, 4, **{**TINY, "augment_sets": False, "num_train_speakers": 1, "num_test_speakers": 2})
    a = sf.read(os.path.join(corpus, "wav/spk0001/spk0001-utt0001.wav"))[0]
    b = sf.read(os.path.join(other, "wav/spk0001/spk0001-utt0001.wav"))[0]
    assert a.shape != b.shape or not np.array_equal(a, b)


def _median_f0(x: np.ndarray) -> float:
    """Autocorrelation F0 of the loud frames (a crude pitch tracker is enough to tell 110 Hz from 220 Hz)."""
    frame, hop = 640, 320
    f0s = []
    for i in range(0, x.size - frame, hop):
        seg = x[i:i + frame] - x[i:i + frame].mean()
        if np.sqrt(np.mean(seg ** 2)) < 0.5 * np.sqrt(np.mean(x ** 2)):
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1:]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            f0s.append(SAMPLE_RATE / lag)
    return float(np.median(f0s))


def test_speaker_traits_stay_within_a_speaker_and_vary_across():
    rng = np.random.default_rng(0)
    low, high = draw_speaker(rng, len(VOWEL_NAMES)), draw_speaker(rng, len(VOWEL_NAMES))
    low.f0_mean, high.f0_mean = 110.0, 220.0
    est = {}
    for name, traits in (("low", low), ("high", high)):
        est[name] = []
        for u in range(3):
            r = np.random.default_rng([1, u, int(traits.f0_mean)])
            n = 2 * SAMPLE_RATE
            est[name].append(_median_f0(render(plan_utterance(r, traits, n), traits, r, n)))
    for name, target in (("low", 110.0), ("high", 220.0)):
        assert all(abs(f - target) / target < 0.15 for f in est[name]), est
    assert min(est["high"]) > 1.6 * max(est["low"])


def test_population_traits_and_sessions_in_meta(corpus):
    meta = json.load(open(os.path.join(corpus, "meta.json")))
    spk = meta["speakers"]
    f0 = [s["traits"]["f0_mean"] for s in spk.values()]
    vtl = [s["traits"]["vtl_cm"] for s in spk.values()]
    assert len(set(f0)) == len(f0) and np.std(vtl) > 0.3
    by_spk = {}
    for utt, u in meta["utterances"].items():
        assert utt.startswith(u["spk"] + "-utt")
        by_spk.setdefault(u["spk"], []).append(u["session"])
    for sessions in by_spk.values():
        snrs = {s["snr_db"] for s in sessions}
        eqs = {tuple(s["eq_gains_db"]) for s in sessions}
        assert len(snrs) == len(sessions) and len(eqs) == len(sessions)  # each utterance its own session
    assert meta["seed"] == 3 and meta["counts"]["train_utts"] == 18


def test_no_channel_has_no_session(tmp_path):
    out = str(tmp_path / "clean")
    meta = make_corpus(out, 1, **{**TINY, "channel": False, "augment_sets": False, "num_train_speakers": 1,
                                  "num_test_speakers": 2, "test_utts_per_speaker": 2})
    assert all(u["session"] is None for u in meta["utterances"].values())
    assert "--no-channel" in open(os.path.join(out, "README")).read()


def test_data_dirs_and_trials(corpus):
    train = validate_data_dir(os.path.join(corpus, "train"))
    test = validate_data_dir(os.path.join(corpus, "test"))
    assert (train.num_utts, train.num_speakers, test.num_speakers) == (18, 6, 4)
    tr_spk = set(read_utt2spk(os.path.join(corpus, "train/utt2spk")).values())
    te = read_utt2spk(os.path.join(corpus, "test/utt2spk"))
    assert not tr_spk & set(te.values())
    trials = read_trials(os.path.join(corpus, "test/trials"))
    assert trials.utts() <= set(te)
    for e, t, lab in zip(trials.enroll, trials.test, trials.label):
        assert lab == (te[e] == te[t]) and e != t
    assert trials.num_target / len(trials) >= 0.3
    info = sf.info(read_scp(os.path.join(corpus, "test/wav.scp"))["spk0007-utt0001"])
    assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)
    assert os.path.getsize(os.path.join(corpus, "spectrograms.png")) > 10000
    assert "seed 3" in open(os.path.join(corpus, "README")).read().lower().replace("seed: ", "seed ")


def test_trials_at_default_sizes_meet_the_targets():
    spk2utt = {f"s{i:02d}": [f"s{i:02d}-u{j}" for j in range(10)] for i in range(40)}
    t = make_trials(np.random.default_rng(0), spk2utt, 6000, 0.35)
    pairs = set(zip(t.enroll.tolist(), t.test.tolist()))
    assert len(pairs) == len(t) >= 5000 and t.num_target / len(t) >= 0.3
    assert all((e[:3] == s[:3]) == lab for e, s, lab in zip(t.enroll, t.test, t.label))


def test_augment_sets_match_the_prepared_real_format(corpus, tmp_path):
    noise = read_scp(os.path.join(corpus, "noise/wav.scp"))
    assert {k.split("/")[0] for k in noise} == {"noise", "music", "speech"}
    prepare_musan(os.path.join(corpus, "noise"), str(tmp_path / "musan"))
    assert read_scp(str(tmp_path / "musan/wav.scp")) == noise
    rirs = read_scp(os.path.join(corpus, "rirs/wav.scp"))
    assert {k.split("/")[0] for k in rirs} == {"smallroom", "mediumroom", "largeroom"}
    prepare_rirs(os.path.join(corpus, "rirs"), str(tmp_path / "rirs"))
    assert read_scp(str(tmp_path / "rirs/wav.scp")) == rirs
    rir = sf.read(next(iter(rirs.values())))[0]
    assert rir.ndim == 1 and np.argmax(np.abs(rir)) < 0.2 * rir.size


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(WesvError, match="unknown option"):
        make_corpus(str(tmp_path / "x"), 0, num_speakers=3)
    with pytest.raises(WesvError, match="min-dur"):
        make_corpus(str(tmp_path / "x"), 0, min_dur=3.0, max_dur=2.0)
    with pytest.raises(WesvError, match="test speakers"):
        make_corpus(str(tmp_path / "x"), 0, num_test_speakers=1)


def test_cli_and_baseline_embeddings(tmp_path, capsys, monkeypatch):
    from wesv.bin.baseline_embeddings import main as baseline_main
    from wesv.bin.make_corpus import main as make_main
    from wesv.scoring.io import read_embeddings

    out = str(tmp_path / "cli")
    with pytest.raises(SystemExit) as e:
        make_main(["--out", out, "--num-train-speakers", "1", "--utts-per-speaker", "1", "--num-test-speakers", "2",
                   "--test-utts-per-speaker", "2", "--min-dur", "0.5", "--max-dur", "0.6", "--no-augment-sets",
                   "--num-workers", "1"])
    assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        monkeypatch.chdir(tmp_path)  # a relative --out: the scp still holds absolute paths
        baseline_main(["--data", os.path.join(out, "test"), "--out", "emb"])
    assert e.value.code == 0
    keys, emb = read_embeddings(str(tmp_path / "emb/xvector.scp"))
    assert (tmp_path / "emb/xvector.scp").read_text().split()[1].startswith(str(tmp_path / "emb/xvector.ark:"))
    assert keys == sorted(read_scp(os.path.join(out, "test/wav.scp"))) and emb.shape == (4, 80)
    with pytest.raises(SystemExit) as e:
        make_main(["--out", out, "--snr", "nonsense"])
    assert e.value.code == 2


def test_only_augment_sets_for_a_corpus_of_ones_own(tmp_path, capsys):
    """make_corpus --only-augment-sets: the MUSAN / RIRS_NOISES stand-ins alone, in the prepared formats."""
    from badinput import assert_clean_error, run_entry, tree_digest

    out = tmp_path / "aug"
    sizes = ["--num-noise", "1", "--num-music", "1", "--num-speech", "1", "--rooms-per-class", "1",
             "--rirs-per-room", "1"]
    assert run_entry("make_corpus", ["--out", out, "--only-augment-sets", *sizes], capsys).code == 0
    assert sorted(os.listdir(out)) == ["noise", "rirs"]  # no speakers, trials or meta.json
    noise = read_scp(str(out / "noise/wav.scp"))
    assert sorted(k.split("/")[0] for k in noise) == ["music", "noise", "speech"]
    prepare_musan(str(out / "noise"), str(tmp_path / "musan"))
    assert read_scp(str(tmp_path / "musan/wav.scp")) == noise
    rirs = read_scp(str(out / "rirs/wav.scp"))
    assert sorted(k.split("/")[0] for k in rirs) == ["largeroom", "mediumroom", "smallroom"]
    prepare_rirs(str(out / "rirs"), str(tmp_path / "rirs"))
    assert read_scp(str(tmp_path / "rirs/wav.scp")) == rirs
    before = tree_digest(str(out))
    outcome = run_entry("make_corpus", ["--out", out, "--only-augment-sets", "--num-noise", "0", "--num-music", "0",
                                        "--num-speech", "0"], capsys)
    assert_clean_error(outcome, "at least one noise/music/speech clip")
    assert tree_digest(str(out)) == before
    assert run_entry("make_corpus", ["--out", out, "--only-augment-sets", "--no-augment-sets"], capsys).code == 2


def test_faces_stream_is_valid_deterministic_and_leaves_the_audio_alone(corpus, tmp_path):
    from wesv.data.streams import Stream, read_stream

    for split, n in (("train", 18), ("test", 12)):
        summary = validate_data_dir(os.path.join(corpus, split))
        assert summary.streams["face"].num_utts == n and summary.streams["face"].dim == 64
    meta = json.load(open(os.path.join(corpus, "meta.json")))
    assert 0.0 <= meta["faces"]["mean_frame_cosine_eer"] <= 0.5 and meta["faces"]["frame_rate"] == 5.0
    faces = read_stream(os.path.join(corpus, "train", "face.scp"))
    u = meta["utterances"]["spk0001-utt0001"]
    assert faces["spk0001-utt0001"].shape == (max(1, round(u["num_samples"] / SAMPLE_RATE * 5)), 64)
    assert Stream(os.path.join(corpus, "train", "face.scp")).frame_rate == 5.0
    # Same seed, faces on again: identical face bytes; faces off: every audio and list file identical.
    again, off = str(tmp_path / "again"), str(tmp_path / "off")
    make_corpus(again, 3, **TINY)
    make_corpus(off, 3, **{**TINY, "faces": False})
    for split in ("train", "test"):
        assert filecmp.cmp(os.path.join(corpus, "face", f"{split}.ark"), os.path.join(again, "face", f"{split}.ark"),
                           shallow=False)
        assert open(os.path.join(corpus, split, "face.scp")).read().replace(corpus, "R") == \
            open(os.path.join(again, split, "face.scp")).read().replace(again, "R")
    assert not os.path.exists(os.path.join(off, "face")) and not os.path.exists(os.path.join(off, "train", "face.scp"))
    shared = [f for f in _files(off) if f not in ("meta.json", "README")]
    assert set(shared) == {f for f in _files(corpus) if not (f.startswith("face") or "face.scp" in f or
                                                            "stream_info" in f)} - {"meta.json", "README"}
    for f in shared:
        a, b = open(os.path.join(corpus, f), "rb").read(), open(os.path.join(off, f), "rb").read()
        assert a.replace(corpus.encode(), b"R") == b.replace(off.encode(), b"R"), f
    mo = json.load(open(os.path.join(off, "meta.json")))
    assert mo["faces"] is None and mo["utterances"] == meta["utterances"] and mo["speakers"] == meta["speakers"]
