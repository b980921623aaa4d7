"""wesv.features.fbank against kaldi-native-fbank (the C++ port of Kaldi's compute-fbank-feats)."""
import dataclasses

import kaldi_native_fbank as knf
import numpy as np
import pytest
import scipy.signal
import torch

from wesv.errors import WesvError
from wesv.features.fbank import Fbank, FbankConfig, feature_window, mel_matrix

SR = 16000


def knf_fbank(wave: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """Reference features for one utterance, dither 0, no CMN."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = cfg.sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = cfg.snip_edges
    opts.frame_opts.window_type = cfg.window
    opts.frame_opts.frame_length_ms = cfg.frame_length_ms
    opts.frame_opts.frame_shift_ms = cfg.frame_shift_ms
    opts.frame_opts.preemph_coeff = cfg.preemphasis
    opts.frame_opts.remove_dc_offset = cfg.remove_dc
    opts.mel_opts.num_bins = cfg.num_mel_bins
    opts.mel_opts.low_freq = cfg.low_freq
    opts.mel_opts.high_freq = cfg.high_freq
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(cfg.sample_rate, (wave.astype(np.float64) * 32768.0).tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)], dtype=np.float32).reshape(
        -1, cfg.num_mel_bins
    )


def random_signal(n: int, rng: np.random.Generator) -> np.ndarray:
    # Noise with speech's spectral tilt (AR(1), pole 0.9). Pre-emphasis leaves white noise ~1e-3 of its power in
    # the lowest filters, where two float32 implementations differ by ~1e-3 in log; white noise is checked against
    # float64 in test_white_noise_and_low_freq_zero_against_float64.
    white = rng.standard_normal(n)
    return (0.03 * scipy.signal.lfilter([1.0], [1.0, -0.9], white)).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


def tonal_signal(n: int, rng: np.random.Generator) -> np.ndarray:
    # Harmonics and a chirp over a noise floor with speech's tilt, ~40 dB down. Pure tones leave filters 100 dB under
    # the peak, where any two float32 implementations differ by ~1e-2 in log (kaldi-native-fbank vs float64 too).
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 250)
    x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 8))
    x = x + 0.1 * np.sin(2 * np.pi * (300 * t + 2000 * t**2)) + 0.1 * random_signal(n, rng)
    return x.astype(np.float32)


OPTION_SETS = [
    dict(),
    dict(snip_edges=False),
    dict(num_mel_bins=40, low_freq=100, high_freq=-400),
    dict(num_mel_bins=40, snip_edges=False, window="hamming", high_freq=7000),
    dict(window="hanning", low_freq=60, high_freq=3800),
    dict(window="hann", snip_edges=False, num_mel_bins=64),
]
LENGTHS = [399, 400, 401, 560, 1234, 8000, 32000]


@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_matches_kaldi_native_fbank(opts: dict) -> None:
    cfg = FbankConfig(dither=0.0, cmn=False, **opts)
    fbank = Fbank(cfg).eval()
    rng = np.random.default_rng(len(str(opts)))
    for n in LENGTHS:
        for make in (random_signal, tonal_signal):
            wave = make(n, rng)
            ref = knf_fbank(wave, cfg)
            out = fbank(torch.from_numpy(wave)[None])[0].numpy()
            assert out.shape == ref.shape, (n, make.__name__)
            assert fbank.num_frames(n) == ref.shape[0]
            if ref.size:
                assert np.abs(out - ref).max() < 1e-3, (n, make.__name__, np.abs(out - ref).max())


def kaldi_float64(wave: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """Kaldi's fbank recipe (snip_edges, no CMN) evaluated in float64: the exact values both float32 codes round."""
    x = torch.from_numpy(wave).double() * 32768
    frames = x.unfold(0, cfg.frame_length, cfg.frame_shift)
    frames = frames - frames.mean(-1, keepdim=True)
    frames = frames - cfg.preemphasis * torch.cat([frames[:, :1], frames[:, :-1]], -1)
    power = torch.fft.rfft(frames * feature_window(cfg), n=cfg.padded_length).abs() ** 2
    return (power @ mel_matrix(cfg)).clamp(min=np.finfo(np.float32).eps).log().numpy()


@pytest.mark.parametrize("low_freq", [20.0, 0.0])
def test_white_noise_and_low_freq_zero_against_float64(low_freq: float) -> None:
    # White noise after pre-emphasis, and with low_freq=0 a first filter holding only the 31 Hz FFT bin, put some
    # filters ~1e-6 under the peak power; there kaldi-native-fbank itself is up to ~2e-3 off the exact value in log.
    cfg = FbankConfig(dither=0.0, cmn=False, window="hanning", low_freq=low_freq, high_freq=3800)
    rng = np.random.default_rng(7)
    for wave in (white_noise(32000, rng), tonal_signal(32000, rng)):
        exact = kaldi_float64(wave, cfg)
        ours = Fbank(cfg)(torch.from_numpy(wave)[None])[0].numpy()
        assert np.abs(ours - exact).max() < 1e-3
        assert np.abs(ours - knf_fbank(wave, cfg)).max() < 5e-3


def test_very_short_inputs() -> None:
    cfg = FbankConfig(dither=0.0, cmn=False)
    rng = np.random.default_rng(1)
    assert Fbank(cfg)(torch.zeros(3, 399)).shape == (3, 0, 80)
    assert Fbank(cfg)(torch.zeros(2, 0)).shape == (2, 0, 80)
    # snip_edges=False reflects the signal, so even 1 sample gives frames once it reaches half a shift.
    cfg2 = dataclasses.replace(cfg, snip_edges=False)
    for n in (80, 100, 200, 399):
        wave = white_noise(n, rng)
        ref = knf_fbank(wave, cfg2)
        out = Fbank(cfg2)(torch.from_numpy(wave)[None])[0].numpy()
        assert out.shape == ref.shape == (Fbank(cfg2).num_frames(n), 80)
        assert np.abs(out - ref).max() < 1e-3


def test_batch_equals_per_utterance_and_cmn() -> None:
    rng = np.random.default_rng(2)
    waves = np.stack([random_signal(8000, rng), tonal_signal(8000, rng)])
    for snip in (True, False):
        cfg = FbankConfig(dither=0.0, cmn=True, snip_edges=snip)
        batch = Fbank(cfg)(torch.from_numpy(waves))
        for b in range(2):
            ref = knf_fbank(waves[b], cfg)
            ref = ref - ref.mean(axis=0)
            assert np.abs(batch[b].numpy() - ref).max() < 1e-3
        assert batch.mean(dim=1).abs().max() < 1e-4


@pytest.mark.parametrize("snip", [True, False])
def test_lengths_normalise_each_item_over_its_own_frames(snip: bool) -> None:
    rng = np.random.default_rng(3)
    lens = [8000, 5000, 1234]
    waves = torch.zeros(3, max(lens))
    for b, n in enumerate(lens):
        waves[b, :n] = torch.from_numpy(tonal_signal(n, rng))
    fbank = Fbank(FbankConfig(dither=0.0, cmn=True, snip_edges=snip))
    out = fbank(waves, lengths=torch.tensor(lens))
    for b, n in enumerate(lens):
        alone = fbank(waves[b : b + 1, :n])[0]
        valid = alone.shape[0]
        assert valid == fbank.num_frames(torch.tensor(lens))[b]
        # Exact: with snip_edges=False the tail is reflected at the item's own end, not at the padding.
        assert torch.allclose(out[b, :valid], alone, atol=1e-4)
        assert torch.all(out[b, valid:] == 0)


def test_dither_only_in_training_and_zero_disables_it() -> None:
    wave = torch.from_numpy(random_signal(4000, np.random.default_rng(4)))[None]
    fbank = Fbank(FbankConfig(dither=1.0))
    fbank.eval()
    assert torch.equal(fbank(wave), fbank(wave))
    fbank.train()
    torch.manual_seed(0)
    a = fbank(wave)
    b = fbank(wave)
    assert not torch.equal(a, b)
    assert (a - b).abs().max() < 0.5  # dither of 1 int16 step is small next to speech-level signal
    # Digital silence: dither keeps the log away from the floor, as in Kaldi.
    silent = torch.zeros(1, 4000)
    assert fbank(silent).std() > 0
    fbank_nodither = Fbank(FbankConfig(dither=0.0, cmn=False)).train()
    assert torch.all(fbank_nodither(silent) == np.log(np.finfo(np.float32).eps).astype(np.float32))


def test_buffers_move_with_module_and_autocast_kept_float32() -> None:
    fbank = Fbank(FbankConfig(dither=0.0))
    wave = torch.from_numpy(random_signal(4000, np.random.default_rng(5)))[None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fbank(wave)
    assert out.dtype == torch.float32
    out64 = fbank.double()(wave)
    assert out64.dtype == torch.float64 and (out64 - out).abs().max() < 1e-3
    assert "window" not in fbank.state_dict()  # derived from the config, not saved


def test_window_and_mel_match_kaldi_native_fbank() -> None:
    for window in ("povey", "hamming", "hanning", "hann"):
        opts = knf.FrameExtractionOptions()
        opts.window_type = window
        ref = np.array(knf.FeatureWindowFunction(opts).window)
        assert np.abs(feature_window(FbankConfig(window=window)).numpy() - ref).max() < 1e-6
    mel = mel_matrix(FbankConfig(num_mel_bins=40))
    assert mel.shape == (257, 40)
    assert torch.all(mel[-1] == 0) and torch.all(mel.sum(0) > 0)


def test_bad_options_raise_wesv_error() -> None:
    with pytest.raises(WesvError, match="unknown window 'hammming'"):
        FbankConfig(window="hammming")
    with pytest.raises(WesvError, match="low_freq"):
        FbankConfig(low_freq=9000)
    with pytest.raises(WesvError, match="num_mel_bins"):
        FbankConfig(num_mel_bins=0)


@pytest.mark.parametrize("snip", [True, False])
def test_fbank_implements_the_frontend_protocol(snip: bool) -> None:
    from wesv.features import FrontEnd

    fb = Fbank(FbankConfig(snip_edges=snip, num_mel_bins=40))
    assert isinstance(fb, FrontEnd)
    assert (fb.sample_rate, fb.frame_shift, fb.feature_dim, fb.frame_rate) == (SR, 160, 40, 100.0)
    # The closed form agrees with the protocol's generic search and with the frames actually produced.
    assert fb.min_samples == FrontEnd.min_samples.fget(fb) == (400 if snip else 80)
    assert fb.num_frames(fb.min_samples) == 1 and fb.num_frames(fb.min_samples - 1) == 0
    assert fb(torch.zeros(1, fb.min_samples)).shape == (1, 1, 40)
    assert fb.num_frames(torch.tensor([fb.min_samples, 16000])).tolist() == [1, fb.num_frames(16000)]
