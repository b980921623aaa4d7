"""Audio loading from paths, pipes and arks; its errors; resampling, channels; crop and crops."""
import io
import os
import struct

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from wesv.data.audio import audio_info, audio_num_samples, crop, crops, load_audio, spec_kind
from wesv.errors import WesvError

RATE = 16000


@pytest.fixture
def wave():
    return (0.5 * np.sin(np.arange(4000) * 0.01)).astype(np.float32)


def write_wav(path, data, rate=RATE, subtype="PCM_16"):
    sf.write(str(path), data, rate, subtype=subtype)
    return str(path)


def test_spec_kind(tmp_path):
    assert spec_kind("/a/b.wav") == "file"
    assert spec_kind("sox a.flac -t wav - |") == "pipe"
    assert spec_kind("/a/b.ark:1234") == "ark"
    assert spec_kind("/a/b.ark:1234[0:100]") == "ark"


def test_load_file_and_partial_read(tmp_path, wave):
    p = write_wav(tmp_path / "a.wav", wave)
    full = load_audio(p)
    assert full.dtype == np.float32 and full.shape == (4000,)
    np.testing.assert_allclose(full, wave, atol=2 / 32768)  # PCM_16 quantisation
    part = load_audio(p, start=1000, num_samples=500)
    np.testing.assert_array_equal(part, full[1000:1500])
    assert load_audio(p, start=3900, num_samples=500).shape == (100,)  # reads what is there
    with pytest.raises(WesvError, match="start 5000 is past the end"):
        load_audio(p, start=5000)
    assert audio_num_samples(p) == 4000 and audio_info(p) == (4000, RATE)


def test_load_pipe(tmp_path, wave):
    p = write_wav(tmp_path / "a.wav", wave)
    spec = f"cat {p} |"
    np.testing.assert_array_equal(load_audio(spec), load_audio(p))
    np.testing.assert_array_equal(load_audio(spec, start=10, num_samples=20), load_audio(p)[10:30])
    assert audio_num_samples(spec) == 4000


def test_failed_pipe_shows_stderr(tmp_path):
    with pytest.raises(WesvError, match=r"utterance 'u1' \('false \|'\): command failed with exit code 1"):
        load_audio("false |", utt="u1")
    with pytest.raises(WesvError, match="its stderr: .*no_such_file.wav"):
        load_audio(f"cat {tmp_path}/no_such_file.wav |")
    # pipefail: the first stage failing is caught even when the last succeeds
    with pytest.raises(WesvError, match="command failed"):
        load_audio(f"cat {tmp_path}/nope.wav | cat |")
    with pytest.raises(WesvError, match="wrote no audio"):
        load_audio("true |")


def test_pipe_with_streamed_wav_header(tmp_path, wave):
    # Tools writing wav to a pipe leave the RIFF and data sizes at 0 (they cannot seek back).
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    i = data.find(b"data")
    data[4:8] = struct.pack("<I", 0)
    data[i + 4:i + 8] = struct.pack("<I", 0)
    p = tmp_path / "streamed.bin"
    p.write_bytes(bytes(data))
    np.testing.assert_allclose(load_audio(f"cat {p} |"), wave, atol=2 / 32768)


def test_load_ark(tmp_path, wave):
    ints = np.round(wave * 32767).astype(np.int16)
    ark, scp = str(tmp_path / "w.ark"), str(tmp_path / "w.scp")
    kaldiio.save_ark(ark, {"u1": (RATE, ints), "u2": (RATE, ints[:100])}, scp=scp)
    specs = dict(line.split() for line in open(scp))
    got = load_audio(specs["u1"])
    np.testing.assert_allclose(got, ints / 32768.0, atol=1e-7)
    assert load_audio(specs["u2"]).shape == (100,)
    np.testing.assert_array_equal(load_audio(specs["u1"], start=5, num_samples=10), got[5:15])
    assert audio_num_samples(specs["u2"]) == 100
    with pytest.raises(WesvError, match="does not exist"):
        load_audio(str(tmp_path / "other.ark:3"), utt="u9")
    kaldiio.save_ark(str(tmp_path / "m.ark"), {"m": np.zeros((3, 4), dtype=np.float32)})
    with pytest.raises(WesvError, match="holds a matrix, not audio"):
        load_audio(str(tmp_path / "m.ark:2"))


def test_audio_errors(tmp_path, wave):
    with pytest.raises(WesvError, match=r"utterance 'u1' \('.*missing.wav'\): no such file"):
        load_audio(str(tmp_path / "missing.wav"), utt="u1")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(WesvError, match="empty file"):
        load_audio(str(tmp_path / "empty.wav"))
    with pytest.raises(WesvError, match="empty file"):
        audio_num_samples(str(tmp_path / "empty.wav"))
    (tmp_path / "corrupt.wav").write_bytes(os.urandom(64) + b"garbage")
    with pytest.raises(WesvError, match="cannot decode audio"):
        load_audio(str(tmp_path / "corrupt.wav"))
    with pytest.raises(WesvError, match="cannot decode audio"):
        audio_num_samples(str(tmp_path / "corrupt.wav"))
    p = write_wav(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(WesvError, match="holds no samples"):
        load_audio(p)
    with pytest.raises(WesvError, match="channel='left'"):
        load_audio(write_wav(tmp_path / "a.wav", wave), channel="left")


def test_wrong_rate_and_resampling(tmp_path):
    t = np.arange(8000) / 8000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    p = write_wav(tmp_path / "8k.wav", x, rate=8000, subtype="FLOAT")
    with pytest.raises(WesvError, match="sample rate is 8000 Hz, expected 16000 Hz"):
        load_audio(p, utt="u1")
    y = load_audio(p, resample=True)
    assert y.shape == (16000,) and y.dtype == np.float32
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=1e-2)  # same tone at the new rate
    np.testing.assert_array_equal(load_audio(p, resample=True, start=100, num_samples=50), y[100:150])
    assert audio_num_samples(p) == 8000 and audio_num_samples(p, sample_rate=16000) == 16000
    assert load_audio(p, sample_rate=8000).shape == (8000,)


def test_multichannel(tmp_path):
    left = np.full(100, 0.25, dtype=np.float32)
    right = np.full(100, -0.75, dtype=np.float32)
    p = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p), left)
    np.testing.assert_allclose(load_audio(p, channel="mean"), (left + right) / 2)
    np.testing.assert_allclose(load_audio(f"cat {p} |", channel="mean"), (left + right) / 2)


# ------------------------------------------------------------------------------------------- crops
def test_crop_long_wave():
    w = np.arange(100, dtype=np.float32)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        c = crop(w, 30, rng)
        assert c.shape == (30,) and np.all(np.diff(c) == 1)
        starts.add(int(c[0]))
    assert min(starts) >= 0 and max(starts) <= 70 and len(starts) > 10  # random positions
    np.testing.assert_array_equal(crop(w, 30, np.random.default_rng(5)), crop(w, 30, np.random.default_rng(5)))
    assert crop(w, 100, rng).tolist() == w.tolist()


def test_crop_short_wave():
    w = np.arange(1, 11, dtype=np.float32)
    rng = np.random.default_rng(0)
    r = crop(w, 25, rng, short="repeat")
    assert r.shape == (25,)
    # A repeat is a window of the periodic signal: consecutive samples step by 1 modulo 10.
    assert np.all(((r[1:] - r[:-1]) % 10) == 1)
    p = crop(w, 25, rng, short="pad")
    assert p[:10].tolist() == w.tolist() and not p[10:].any()
    with pytest.raises(WesvError, match="utterance 'u7' has 10 samples, shorter than the 25-sample crop"):
        crop(w, 25, rng, short="error", utt="u7")
    with pytest.raises(WesvError, match="short='cut'"):
        crop(w, 5, rng, short="cut")
    with pytest.raises(WesvError, match="empty"):
        crop(np.zeros(0, dtype=np.float32), 5, rng)


def test_crops_non_overlapping_when_possible():
    w = np.arange(1000, dtype=np.float32)
    rng = np.random.default_rng(1)
    sizes = [300, 300, 100, 100]
    for _ in range(100):
        out = crops(w, sizes, rng)
        assert [c.shape[0] for c in out] == sizes
        spans = sorted((int(c[0]), int(c[0]) + c.shape[0]) for c in out)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
        assert spans[0][0] >= 0 and spans[-1][1] <= 1000
    # exactly enough samples: the crops tile the wave
    out = crops(np.arange(10, dtype=np.float32), [4, 6], rng)
    assert sorted(np.concatenate(out).tolist()) == list(range(10))


def test_crops_overlap_when_too_short():
    w = np.arange(500, dtype=np.float32)
    out = crops(w, [300, 300], np.random.default_rng(0))
    assert [c.shape[0] for c in out] == [300, 300] and all(np.all(np.diff(c) == 1) for c in out)
    out = crops(np.arange(50, dtype=np.float32), [100, 20], np.random.default_rng(0), short="pad")
    assert out[0][50:].sum() == 0 and out[1].shape == (20,)
    with pytest.raises(WesvError, match="shorter than"):
        crops(np.arange(50, dtype=np.float32), [100], np.random.default_rng(0), short="error")


def test_truncated_wav_is_refused_unless_allowed(tmp_path, wave):
    from wesv.data.audio import wav_truncation
    p = write_wav(tmp_path / "a.wav", wave)
    assert wav_truncation(p) is None
    with open(p, "r+b") as f:
        f.truncate(44 + 3000)
    assert wav_truncation(p) == (8000, 3000)
    for read in (lambda: load_audio(p, utt="u1"), lambda: audio_num_samples(p, utt="u1")):
        with pytest.raises(WesvError, match=r"utterance 'u1' .*: truncated wav — its header announces 8000 bytes of "
                                            r"audio, the file holds 3000 .*--allow-truncated"):
            read()
    assert load_audio(p, allow_truncated=True).shape == (1500,)
    assert audio_num_samples(p, allow_truncated=True) == 1500


def test_stereo_takes_channel_0_and_says_so_once(tmp_path, wave, caplog, monkeypatch):
    import wesv.data.audio as audio
    monkeypatch.setattr(audio, "_told_stereo", False)
    p = write_wav(tmp_path / "s.wav", np.stack([wave, -wave], axis=1))
    np.testing.assert_allclose(load_audio(p), wave, atol=2 / 32768)
    load_audio(p)
    assert caplog.text.count("taking channel 0") == 1


def test_acceptable_audio_is_the_rule_of_extraction(tmp_path, wave):
    from wesv.data.audio import acceptable_audio
    assert acceptable_audio(write_wav(tmp_path / "a.wav", wave)) == (4000, RATE)
    p = write_wav(tmp_path / "inf.wav", np.where(np.arange(4000) == 7, np.inf, wave).astype(np.float32),
                  subtype="FLOAT")
    with pytest.raises(WesvError, match=r"holds NaN/inf samples \(1, the first at sample 7\)"):
        acceptable_audio(p)
    with pytest.raises(WesvError, match=r"only 160 samples, at least 400"):
        acceptable_audio(write_wav(tmp_path / "short.wav", wave[:160]))
    with pytest.raises(WesvError, match=r"sample rate is 16000 Hz, expected 8000 Hz"):
        acceptable_audio(write_wav(tmp_path / "b.wav", wave), 8000)


def test_load_audio_refuses_non_finite_samples_naming_utterance_and_spec(tmp_path, wave):
    bad = wave.copy()
    bad[[10, 20, 3000]] = [np.nan, np.inf, np.nan]
    path = write_wav(tmp_path / "bad.wav", bad, subtype="FLOAT")
    with pytest.raises(WesvError, match=r"utterance 'u1' \('.*bad\.wav'\): holds NaN/inf samples \(3, the first at "
                                        r"sample 10\)"):
        load_audio(path, utt="u1")
    with pytest.raises(WesvError, match=r"NaN/inf samples \(1, the first at sample 1000\)"):
        load_audio(path, start=2000, num_samples=1500)  # a partial read checks what it read
    assert load_audio(path, start=100, num_samples=1000).shape == (1000,)  # a clean stretch loads
    with pytest.raises(WesvError, match=r"'cat .*bad\.wav \|'\): holds NaN/inf samples \(3"):
        load_audio(f"cat {path} |", utt="u2")


def test_crop_refuses_a_wave_under_the_minimum_whatever_short_says():
    rng = np.random.default_rng(0)
    for short in ("repeat", "pad"):
        with pytest.raises(WesvError, match=r"utterance 'u' has only 160 samples, fewer than the 400"):
            crop(np.ones(160, np.float32), 4000, rng, short, utt="u", min_samples=400)
        assert crop(np.ones(400, np.float32), 4000, rng, short, min_samples=400).shape == (4000,)
    with pytest.raises(WesvError, match="only 160 samples"):
        crops(np.ones(160, np.float32), [4000, 2000], rng, utt="u", min_samples=400)
