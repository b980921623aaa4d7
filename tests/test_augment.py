"""On-the-fly augmentation: SNRs, RIR alignment and energy, speed, determinism, real MUSAN/RIRS list formats."""
import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from wesv.augment import AugmentConfig, Augmenter, add_noise, prepare_musan, prepare_rirs, reverberate, speed_perturb
from wesv.augment.sets import AudioCache
from wesv.errors import WesvError

SR = 16000


def _snr(clean, noisy):
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def _write(path, x, sr=SR):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.asarray(x, dtype=np.float32), sr, subtype="PCM_16")


@pytest.fixture(scope="module")
def fake_trees(tmp_path_factory):
    """Small trees with the real MUSAN and RIRS_NOISES layouts, prepared with the real-corpus scripts."""
    root = tmp_path_factory.mktemp("aug")
    rng = np.random.default_rng(0)
    musan = root / "musan"
    t = np.arange(SR * 2) / SR
    _write(str(musan / "noise/free-sound/noise-free-sound-0000.wav"), 0.1 * rng.standard_normal(SR * 2))
    _write(str(musan / "noise/sound-bible/noise-sound-bible-0000.wav"), 0.05 * rng.standard_normal(SR // 2))
    _write(str(musan / "music/fma/music-fma-0000.wav"), 0.2 * np.sin(2 * np.pi * 440 * t))
    for i in range(3):
        _write(str(musan / f"speech/librivox/speech-librivox-{i:04d}.wav"),
               0.1 * np.sin(2 * np.pi * (150 + 50 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t)))
    (musan / "music/fma/ANNOTATIONS").write_text("music-fma-0000 x\n")
    rirs = root / "RIRS_NOISES"
    for cls in ("smallroom", "mediumroom"):
        h = np.zeros(4000)
        h[37] = 1.0
        h[38:] = 0.3 * rng.standard_normal(3962) * np.exp(-np.arange(3962) / 800)
        _write(str(rirs / f"simulated_rirs/{cls}/Room001/Room001-00001.wav"), 0.5 * h)
    real = rirs / "real_rirs_isotropic_noises"
    h2 = np.zeros((3000, 2))
    h2[12, :] = 0.8
    h2[13:, :] = 0.05 * rng.standard_normal((2987, 2))
    _write(str(real / "RVB2014_type1_rir_largeroom1_near_angla.wav"), h2)
    _write(str(real / "RVB2014_type1_noise_largeroom1_1.wav"), 0.1 * rng.standard_normal((SR, 2)))
    prepare_musan(str(musan), str(root / "data/musan"))
    prepare_rirs(str(rirs), str(root / "data/rirs"), include_real=True)
    return root


def test_prepare_scripts_read_the_real_layouts(fake_trees):
    from wesv.data.datadir import read_scp

    musan = read_scp(str(fake_trees / "data/musan/wav.scp"))
    assert list(musan) == sorted(musan) and len(musan) == 6
    assert "noise/free-sound/noise-free-sound-0000.wav" in musan and "music/fma/music-fma-0000.wav" in musan
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in musan.values())
    rirs = read_scp(str(fake_trees / "data/rirs/wav.scp"))
    assert sorted(rirs) == ["mediumroom/Room001/Room001-00001.wav", "real/RVB2014_type1_rir_largeroom1_near_angla.wav",
                            "smallroom/Room001/Room001-00001.wav"]


def test_prepare_errors_name_the_directory(tmp_path):
    from wesv.bin.prepare_musan import main

    with pytest.raises(WesvError, match="MUSAN root"):
        prepare_musan(str(tmp_path), str(tmp_path / "out"))
    (tmp_path / "rirs/simulated_rirs/smallroom").mkdir(parents=True)
    with pytest.raises(WesvError, match="no RIR .wav files"):
        prepare_rirs(str(tmp_path / "rirs"), str(tmp_path / "out"))
    with pytest.raises(SystemExit) as e:
        main(["--musan-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2


def test_add_noise_hits_the_snr_on_the_actual_signals():
    rng = np.random.default_rng(1)
    x = (0.3 * np.sin(np.arange(16000) / 7.0) * rng.random(16000)).astype(np.float32)
    n = rng.standard_normal(16000).astype(np.float32) * 5
    for snr in (0.0, 7.5, 20.0):
        assert abs(_snr(x, add_noise(x, n, snr)) - snr) < 0.01
    assert np.array_equal(add_noise(np.zeros(100, np.float32), n[:100], 5.0), np.zeros(100))


@pytest.mark.parametrize("kind,snr", [("noise", 4.0), ("music", 9.0), ("babble", 17.0)])
def test_augmenter_hits_requested_snr(fake_trees, kind, snr):
    weights = {f"{t}_weight": float(t == kind) for t in ("noise", "music", "babble", "reverb")}
    cfg = AugmentConfig(prob=1.0, noise_dir=str(fake_trees / "data/musan"), rir_dir=str(fake_trees / "data/rirs"),
                        **weights, **{f"{kind}_snr": (snr, snr)})
    aug = Augmenter(cfg)
    x = np.random.default_rng(2).standard_normal(24000).astype(np.float32) * 0.1
    for seed in range(4):
        y = aug(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(_snr(x, y) - snr) < 0.5


def test_reverb_keeps_length_energy_and_alignment():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(8000)
    h = np.zeros(2000)
    h[100] = 1.0
    h[101:] = 0.2 * rng.standard_normal(1899) * np.exp(-np.arange(1899) / 300)
    y = reverberate(x, h)
    assert y.shape == x.shape
    assert np.isclose(np.sum(y ** 2), np.sum(x ** 2), rtol=1e-6)
    xc = np.correlate(y[:4000], x[:4000], "full")
    assert int(np.argmax(xc)) - 3999 == 0  # no delay: the direct path lands on lag 0
    pure = np.zeros(300)
    pure[50] = 0.5
    assert np.allclose(reverberate(x, pure), x)


def test_reverb_with_real_and_simulated_rirs(fake_trees, tmp_path):
    from wesv.corpus.rooms import write_rir_set

    sim = write_rir_set(str(tmp_path / "rirs"), np.random.default_rng(0), 1, 1)
    x = np.random.default_rng(4).standard_normal(16000).astype(np.float32)
    for path in list(sim.values())[:1]:
        y = reverberate(x, sf.read(path)[0])
        lag = int(np.argmax(np.correlate(y, x[:2000], "valid")))
        assert lag == 0
    cfg = AugmentConfig(prob=1.0, noise_weight=0, music_weight=0, babble_weight=0,
                        rir_dir=str(fake_trees / "data/rirs"))
    aug = Augmenter(cfg)
    for seed in range(6):  # also hits the 2-channel real RIR: its first channel is used
        y = aug(x, np.random.default_rng(seed))
        assert y.shape == x.shape and np.isclose(np.sum(y.astype(np.float64) ** 2), np.sum(x.astype(np.float64) ** 2),
                                                 rtol=1e-3)


def test_determinism_and_probability(fake_trees):
    cfg = AugmentConfig(prob=0.5, noise_dir=str(fake_trees / "data/musan"), rir_dir=str(fake_trees / "data/rirs"),
                        reverb_prob=0.3, speed_perturb=True)
    aug = Augmenter(cfg)
    x = np.random.default_rng(5).standard_normal(12000).astype(np.float32)
    a = [aug(x, np.random.default_rng([7, i])) for i in range(20)]
    b = [Augmenter(cfg)(x, np.random.default_rng([7, i])) for i in range(20)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert sum(np.array_equal(u, x) for u in a) < 20
    assert all(u.shape == x.shape for u in a)
    clone = pickle.loads(pickle.dumps(aug))  # DataLoader workers get a copy
    assert np.array_equal(clone(x, np.random.default_rng([7, 0])), a[0])
    off = Augmenter(AugmentConfig(prob=0.0, noise_dir=str(fake_trees / "data/musan")))
    assert np.array_equal(off(x, np.random.default_rng(0)), x)


def test_speed_perturb_changes_pitch_and_keeps_length():
    t = np.arange(16000) / SR
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = speed_perturb(x, 1.1, np.random.default_rng(0))
    assert y.shape == x.shape
    peak = np.argmax(np.abs(np.fft.rfft(y))) * SR / y.size
    assert abs(peak - 1100) < 5


def test_config_errors_name_the_field(fake_trees, tmp_path):
    with pytest.raises(WesvError, match="augment.prob"):
        Augmenter(AugmentConfig(prob=1.5))
    with pytest.raises(WesvError, match="augment.noise_snr"):
        Augmenter(AugmentConfig(noise_snr=(10.0, 5.0)))
    only_noise = tmp_path / "only_noise"
    only_noise.mkdir()
    (only_noise / "wav.scp").write_text("noise/a/x.wav /x.wav\n")
    with pytest.raises(WesvError, match="music_weight"):
        Augmenter(AugmentConfig(noise_dir=str(only_noise)))
    with pytest.raises(WesvError, match="no augmentation list"):
        Augmenter(AugmentConfig(noise_dir=str(tmp_path / "missing")))


def test_cache_is_lazy_and_bounded(fake_trees):
    from wesv.data.datadir import read_scp

    specs = list(read_scp(str(fake_trees / "data/musan/wav.scp")).values())
    cache = AudioCache(max_bytes=2 * SR * 4 + 10)  # room for one 2 s file
    assert len(cache) == 0
    first = cache.get(specs[0])
    assert cache.get(specs[0]) is first and len(cache) == 1
    for s in specs[1:]:
        cache.get(s)
    assert cache._bytes <= cache.max_bytes


def test_long_files_are_read_in_windows_not_cached(fake_trees):
    from wesv.data.datadir import read_scp

    spec = read_scp(str(fake_trees / "data/musan/wav.scp"))["noise/free-sound/noise-free-sound-0000.wav"]
    whole = sf.read(spec, dtype="float32")[0]
    cache = AudioCache(max_bytes=10 ** 9, max_cached_s=0.5)  # the 2 s file counts as long here
    seg = cache.segment(spec, 4000, np.random.default_rng(0))
    assert len(cache) == 0 and seg.shape == (4000,)
    start = int(np.flatnonzero(np.isclose(whole, seg[0]) & np.isclose(np.roll(whole, -1), seg[1]))[0])
    assert np.allclose(whole[start:start + 4000], seg)
    short = AudioCache(max_bytes=10 ** 9)
    assert short.segment(spec, 40000, np.random.default_rng(0)).shape == (40000,) and len(short) == 1


# ------------------------------------------------------------------------------------------- channel
def _speechy(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """White noise shaped like speech (energy up to 8 kHz), 16 kHz."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


def test_channel_off_by_default_and_deterministic_per_seed():
    from wesv.augment.channel import channel_augment
    x = _speechy()
    assert AugmentConfig().channel_prob == 0.0
    np.testing.assert_array_equal(Augmenter(AugmentConfig())(x, np.random.default_rng(0)), x)  # no sets, no channel
    cfg = AugmentConfig(channel_prob=1.0, codec_prob=0.5)
    a = channel_augment(x, cfg, np.random.default_rng(5))
    b = channel_augment(x, cfg, np.random.default_rng(5))
    c = channel_augment(x, cfg, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    for seed in range(20):
        y = Augmenter(cfg)(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
        assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(x.astype(np.float64) ** 2)),
                                                                             rel=1e-3)
    silent = np.zeros(1000, dtype=np.float32)
    np.testing.assert_array_equal(channel_augment(silent, cfg, np.random.default_rng(0)), silent)


def test_band_limits_and_eq_change_the_spectrum():
    from wesv.augment.channel import channel_augment
    x = _speechy()
    # band limits only: energy above 4 kHz (low-pass at most 3.5 kHz) and below 100 Hz (high-pass from 300 Hz) goes
    cfg = AugmentConfig(channel_prob=1.0, eq_bands=(0, 0), tilt_db=0.0, band_prob=1.0, lowcut_hz=(300.0, 400.0),
                        highcut_hz=(3000.0, 3500.0), codec_prob=0.0, floor_prob=0.0)
    y = channel_augment(x, cfg, np.random.default_rng(0))
    assert _band_energy(x, 4500, 8000) > 0.4 and _band_energy(y, 4500, 8000) < 0.01
    assert _band_energy(y, 0, 100) < 0.1 * _band_energy(x, 0, 100)
    # EQ and tilt only: views of one crop get different spectra (high/low band ratio differs between draws)
    cfg = AugmentConfig(channel_prob=1.0, band_prob=0.0, codec_prob=0.0, eq_gain_db=10.0, tilt_db=10.0,
                        floor_prob=0.0)
    ratios = [_band_energy(v, 2000, 8000) / _band_energy(v, 0, 2000)
              for v in (channel_augment(x, cfg, np.random.default_rng(s)) for s in range(10))]
    assert np.std(np.log(ratios)) > 0.3  # differ by tens of percent between views
    # codec: mu-law quantisation leaves a quantisation error at the level a few bits give
    cfg = AugmentConfig(channel_prob=1.0, eq_bands=(0, 0), tilt_db=0.0, band_prob=0.0, codec_prob=1.0,
                        mulaw_bits=(4, 4), clip_level=(0.3, 0.3), floor_prob=0.0)
    y = channel_augment(x, cfg, np.random.default_rng(1))
    assert 0.01 < np.mean((y - x) ** 2) / np.mean(x ** 2) < 0.5


def test_noise_floor_fills_the_quiet_parts_at_the_drawn_snr():
    from wesv.augment.channel import channel_augment
    x = np.zeros(48000, dtype=np.float32)
    x[:24000] = _speechy(1.5)  # speech, then silence
    cfg = AugmentConfig(channel_prob=1.0, eq_bands=(0, 0), tilt_db=0.0, band_prob=0.0, codec_prob=0.0,
                        floor_prob=1.0, floor_snr=(20.0, 20.0))
    y = channel_augment(x, cfg, np.random.default_rng(0)).astype(np.float64)
    # overall RMS kept; the silent half now holds the floor, 20 dB below the signal (+3 dB: speech fills half)
    floor_db = 10 * np.log10(np.mean(y[24000:] ** 2) / np.mean(y ** 2))
    assert floor_db == pytest.approx(-20.0, abs=1.0)


def test_channel_config_errors_name_the_field():
    with pytest.raises(WesvError, match="augment.highcut_hz"):
        Augmenter(AugmentConfig(highcut_hz=(3000.0, 9000.0)))
    with pytest.raises(WesvError, match="augment.channel_prob"):
        Augmenter(AugmentConfig(channel_prob=1.5))
    with pytest.raises(WesvError, match="augment.lowcut_hz"):
        Augmenter(AugmentConfig(lowcut_hz=(400.0, 50.0)))


def test_channel_augmentation_is_fast():
    import time
    from wesv.augment.channel import channel_augment
    x = _speechy(3.0)
    cfg = AugmentConfig(channel_prob=1.0, band_prob=1.0, codec_prob=1.0)
    rng = np.random.default_rng(0)
    channel_augment(x, cfg, rng)
    start = time.perf_counter()
    for _ in range(20):
        channel_augment(x, cfg, rng)
    per_crop = (time.perf_counter() - start) / 20
    assert per_crop < 0.05  # generous on a shared machine; bench/RESULTS.md holds the measured figure


@pytest.mark.parametrize("kind,order,freq", [("low", 4, 3400.0), ("low", 4, 7500.0), ("high", 2, 50.0),
                                             ("high", 2, 400.0), ("high", 4, 300.0)])
def test_butterworth_sos_is_scipys_butter(kind, order, freq):
    from scipy.signal import butter, sosfreqz
    from wesv.augment.channel import butterworth_sos
    ours = butterworth_sos(kind, order, freq, 16000)
    ref = butter(order, freq, kind + "pass", fs=16000, output="sos")
    _, h_ours = sosfreqz(ours, 1024, fs=16000)
    _, h_ref = sosfreqz(ref, 1024, fs=16000)
    np.testing.assert_allclose(h_ours, h_ref, atol=1e-9)
    with pytest.raises(ValueError, match="even order"):
        butterworth_sos(kind, 3, freq, 16000)
