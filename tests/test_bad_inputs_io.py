"""Bad-input catalogue of data dirs, audio, embedding scps, trials and score files (issue 13).

Each case is a tiny input and the entry point it goes to. A bad one must fail cleanly (exit 2, one line naming the
file, and line where there is one, no traceback, existing outputs untouched); a merely unusual one (CRLF, tabs,
trailing spaces, a leading BOM, stereo) must be accepted.
"""
import errno
import os
import re

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from badinput import assert_clean_error, run_entry, tree_digest
from wesv.models import build_encoder, save_encoder

TINY = {"channels": 16, "mfa_channels": 0, "embed_dim": 8, "res2_scale": 2, "se_bottleneck": 8,
        "attention_bottleneck": 8, "fbank": {"num_mel_bins": 20}}
BOM = "\ufeff"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("exp") / "encoder.pt"
    save_encoder(str(path), build_encoder("ecapa_tdnn_small", TINY).eval())
    return path


def noise(n=4000, channels=1):
    shape = (n,) if channels == 1 else (n, channels)
    return (0.1 * np.random.default_rng(n).standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------------------------------- extraction
def make_data(tmp, u2=None, text=None):
    """A data dir u1..u3 of 0.25 s noise; ``u2`` replaces u2's wav.scp value; ``text(lines)`` rewrites wav.scp."""
    d = tmp / "data"
    (d / "wav").mkdir(parents=True)
    lines = []
    for utt in ("u1", "u2", "u3"):
        path = d / "wav" / f"{utt}.wav"
        sf.write(path, noise(), 16000)
        lines.append(f"{utt} {path}\n")
    if u2 is not None:
        lines[1] = f"u2 {u2(d) if callable(u2) else u2}\n"
    text = text or "".join
    (d / "wav.scp").write_text(text(lines), encoding="utf-8")
    (d / "utt2spk").write_text("u1 a\nu2 a\nu3 b\n")
    return d


def wav_bytes(data, rate=16000, subtype="PCM_16"):
    import io
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def put(name, payload):
    """A u2 value: ``payload`` written to DATA/wav/NAME."""
    def make(d):
        path = d / "wav" / name
        path.write_bytes(payload)
        return path
    return make


def audio_ark(d, offset=None):
    ark = d / "wav" / "audio.ark"
    kaldiio.save_ark(str(ark), {"u2": (16000, (noise() * 32767).astype(np.int16))})
    return f"{ark}:{offset if offset is not None else 3}"


BAD_EXTRACT = [
    ("missing file", dict(u2=lambda d: d / "wav" / "nope.wav"), ["utterance 'u2'", "nope.wav", "no such file"]),
    ("zero-byte wav", dict(u2=put("z.wav", b"")), ["utterance 'u2'", "empty file (0 bytes)"]),
    ("header cut short", dict(u2=put("h.wav", wav_bytes(noise())[:30])), ["'u2'", "h.wav", "cannot decode audio"]),
    ("bad RIFF", dict(u2=put("r.wav", b"RIFX" + wav_bytes(noise())[4:])), ["'u2'", "r.wav", "cannot decode audio"]),
    ("text renamed .wav", dict(u2=put("t.wav", b"hello, this is not audio\n" * 20)),
     ["'u2'", "t.wav", "cannot decode audio"]),
    ("8 kHz", dict(u2=put("8k.wav", wav_bytes(noise(2000), 8000))), ["'u2'", "sample rate is 8000 Hz, expected 16000"]),
    ("44.1 kHz", dict(u2=put("44k.wav", wav_bytes(noise(11025), 44100))), ["'u2'", "sample rate is 44100 Hz"]),
    ("NaN samples", dict(u2=put("nan.wav", wav_bytes(np.full(4000, np.nan, np.float32), subtype="FLOAT"))),
     ["'u2'", "nan.wav", "NaN/inf samples"]),
    ("inf samples", dict(u2=put("inf.wav", wav_bytes(np.where(np.arange(4000) == 9, np.inf, noise()).astype(
        np.float32), subtype="FLOAT"))), ["'u2'", "inf.wav", "NaN/inf samples", "sample 9"]),
    ("0.01 s", dict(u2=put("short.wav", wav_bytes(noise(160)))), ["u2", "only 160 samples"]),
    ("truncated wav", dict(u2=put("cut.wav", wav_bytes(noise())[:3000])),
     ["'u2'", "cut.wav", "truncated wav", "--allow-truncated"]),
    ("failing pipe", dict(u2="false |"), ["'u2'", "'false |'", "command failed with exit code 1"]),
    ("pipe of a missing file", dict(u2="cat /no/such.wav |"), ["'u2'", "command failed", "No such file"]),
    ("ark offset past the end", dict(u2=lambda d: audio_ark(d, 10 ** 6)),
     ["'u2'", "audio.ark", "offset 1000000 is past the end"]),
    ("ark offset mid-record", dict(u2=lambda d: audio_ark(d, 7)), ["'u2'", "audio.ark", "cannot read from the ark"]),
    ("missing ark", dict(u2=lambda d: f"{d}/wav/gone.ark:3"), ["'u2'", "gone.ark", "does not exist"]),
    ("empty line mid-file", dict(text=lambda lines: lines[0] + "\n" + "".join(lines[1:])),
     ["wav.scp:2: blank line"]),
    ("duplicate utterance id", dict(text=lambda lines: "".join(lines[:2] + [lines[1]] + lines[2:])),
     ["wav.scp:3: duplicate key 'u2' (first on line 2)"]),
    ("BOM mid-file", dict(text=lambda lines: lines[0] + BOM + "".join(lines[1:])), ["wav.scp:2", "BOM"]),
]


@pytest.mark.parametrize("case, kw, needles", BAD_EXTRACT, ids=[c[0] for c in BAD_EXTRACT])
def test_bad_audio_fails_extraction_cleanly(tmp_path, capsys, model, case, kw, needles):
    d = make_data(tmp_path, **kw)
    out = tmp_path / "emb"
    out.mkdir()
    (out / "xvector.scp").write_text("old output\n")
    before = tree_digest(str(out))
    outcome = run_entry("extract", ["--model", model, "--data", d, "--out", out, "--device", "cpu"], capsys)
    assert_clean_error(outcome, *needles)
    after = tree_digest(str(out))
    assert {k: after[k] for k in before} == before
    assert not [p for p in after if "xvector.1" in p or ".done" in p]


ODD_BUT_GOOD = [
    ("CRLF", dict(text=lambda lines: "".join(line.replace("\n", "\r\n") for line in lines))),
    ("tabs", dict(text=lambda lines: "".join(line.replace(" ", "\t") for line in lines))),
    ("trailing spaces", dict(text=lambda lines: "".join(line.replace("\n", "   \n") for line in lines))),
    ("leading BOM", dict(text=lambda lines: BOM + "".join(lines))),
    ("stereo", dict(u2=put("st.wav", wav_bytes(noise(channels=2))))),
]


@pytest.mark.parametrize("case, kw", ODD_BUT_GOOD, ids=[c[0] for c in ODD_BUT_GOOD])
def test_unusual_but_valid_inputs_are_extracted(tmp_path, capsys, caplog, model, case, kw):
    import wesv.data.audio
    wesv.data.audio._told_stereo = False
    d = make_data(tmp_path, **kw)
    out = tmp_path / "emb"
    outcome = run_entry("extract", ["--model", model, "--data", d, "--out", out, "--device", "cpu"], capsys)
    assert outcome.code == 0, outcome.err
    keys = [line.split()[0] for line in (out / "xvector.1.scp").read_text().splitlines()]
    assert keys == ["u1", "u2", "u3"]
    if case == "stereo":
        assert "taking channel 0" in caplog.text
    if case == "leading BOM":
        assert "BOM" in caplog.text


def test_truncated_wav_is_embedded_when_allowed(tmp_path, capsys, model):
    d = make_data(tmp_path, u2=put("cut.wav", wav_bytes(noise())[:3000]))
    outcome = run_entry("extract", ["--model", model, "--data", d, "--out", tmp_path / "emb", "--device", "cpu",
                                    "--allow-truncated"], capsys)
    assert outcome.code == 0, outcome.err


def test_validate_check_audio_agrees_with_extraction(tmp_path, capsys):
    d = make_data(tmp_path, u2=put("nan.wav", wav_bytes(np.full(4000, np.nan, np.float32), subtype="FLOAT")))
    assert_clean_error(run_entry("validate_data_dir", [d, "--check-audio"], capsys), "wav.scp:2", "NaN/inf samples")
    ok = make_data(tmp_path / "ok")
    outcome = run_entry("validate_data_dir", [ok, "--check-audio"], capsys)
    assert outcome.code == 0 and "3 audio files read" in outcome.out


def test_unsorted_keys_fail_validation(tmp_path, capsys):
    d = make_data(tmp_path, text=lambda lines: "".join([lines[1], lines[0], lines[2]]))
    assert_clean_error(run_entry("validate_data_dir", [d], capsys), "wav.scp:2", "'u1' is out of order")


# ------------------------------------------------------------------------------------------- trials and scores
TRIALS = "u1 u2 target\nu1 u3 nontarget\nu2 u3 nontarget\nu3 u1 target\n"
SCORES = "u1 u2 0.9\nu1 u3 0.1\nu2 u3 0.3\nu3 u1 0.2\n"

BAD_METRICS = [
    ("missing trials file", None, None, ["nope", "No such file"]),
    ("label tgt", TRIALS.replace("u1 u3 nontarget", "u1 u3 tgt"), SCORES, ["trials:2", "label 'tgt'"]),
    ("label 1", TRIALS.replace("u1 u2 target", "u1 u2 1"), SCORES, ["trials:1", "label '1'"]),
    ("empty line mid-file", TRIALS.replace("\n", "\n\n", 1), SCORES, ["trials:2: blank line"]),
    ("BOM mid-file", TRIALS.replace("\nu2", "\n" + BOM + "u2"), SCORES, ["trials:3", "BOM"]),
    ("scores missing trials", TRIALS, SCORES.replace("u2 u3 0.3\n", ""), ["trials:3", "'u2 u3' has no score",
                                                                         "1 trials missing"]),
    ("score nan", TRIALS, SCORES.replace("0.1", "nan"), ["scores:2", "'nan' is not finite"]),
    ("score inf", TRIALS, SCORES.replace("0.1", "inf"), ["scores:2", "'inf' is not finite"]),
    ("score abc", TRIALS, SCORES.replace("0.1", "abc"), ["scores:2", "'abc' is not a number"]),
    ("duplicated score", TRIALS, SCORES + "u1 u3 0.4\n", ["scores:5", "'u1 u3' repeats line 2"]),
    ("duplicated trial", TRIALS + "u1 u2 target\n", SCORES, ["trials:5", "'u1 u2' repeats line 1"]),
]


def write_pair(tmp, trials, scores):
    t, s = tmp / "trials", tmp / "scores"
    for path, text in ((t, trials), (s, scores)):
        if text is not None:
            path.write_text(text, encoding="utf-8", newline="")
    return (t if trials is not None else tmp / "nope"), s


@pytest.mark.parametrize("case, trials, scores, needles", BAD_METRICS, ids=[c[0] for c in BAD_METRICS])
def test_bad_trials_or_scores_fail_compute_metrics_cleanly(tmp_path, capsys, case, trials, scores, needles):
    t, s = write_pair(tmp_path, trials, scores)
    (tmp_path / "m.json").write_text("{}\n")
    before = tree_digest(str(tmp_path))
    outcome = run_entry("compute_metrics", ["--trials", t, "--scores", s, "--json", tmp_path / "m.json"], capsys)
    assert_clean_error(outcome, *needles)
    assert tree_digest(str(tmp_path)) == before


GOOD_METRICS = [
    ("CRLF", TRIALS.replace("\n", "\r\n"), SCORES.replace("\n", "\r\n")),
    ("tabs", TRIALS.replace(" ", "\t"), SCORES.replace(" ", "\t")),
    ("trailing spaces", TRIALS.replace("\n", "  \n"), SCORES.replace("\n", " \n")),
    ("leading BOM", BOM + TRIALS, BOM + SCORES),
    ("extra long-id score line", TRIALS, SCORES + "u1-with-a-much-longer-id-than-any-trial u2 0.5\n"),
    ("scores in another order", TRIALS, "".join(reversed(SCORES.splitlines(keepends=True)))),
]


@pytest.mark.parametrize("case, trials, scores", GOOD_METRICS, ids=[c[0] for c in GOOD_METRICS])
def test_unusual_but_valid_trials_and_scores_are_accepted(tmp_path, capsys, case, trials, scores):
    t, s = write_pair(tmp_path, trials, scores)
    outcome = run_entry("compute_metrics", ["--trials", t, "--scores", s], capsys)
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines()[0] == "EER 50.000"


# ------------------------------------------------------------------------------------------- embeddings (score)
def make_embeddings(tmp, values=None):
    emb = {u: noise(8) for u in ("u1", "u2", "u3")}
    emb.update(values or {})
    kaldiio.save_ark(str(tmp / "e.ark"), emb, scp=str(tmp / "e.scp"))
    return tmp / "e.scp"


def edit_scp(fn):
    def edit(tmp):
        scp = make_embeddings(tmp)
        scp.write_text(fn(scp.read_text(), tmp))
        return scp
    return edit


BAD_SCORE = [
    ("trials naming a missing utterance", None, TRIALS.replace("u2 u3", "u2 ghost"),
     ["trials:3", "test utterance 'ghost' has no embedding"]),
    ("missing scp", lambda tmp: tmp / "none.scp", TRIALS, ["none.scp", "embedding scp not found"]),
    ("missing ark", edit_scp(lambda text, tmp: text.replace("e.ark", "gone.ark")), TRIALS,
     ["e.scp:1", "the ark", "gone.ark does not exist"]),
    ("offset past the end", edit_scp(lambda text, tmp: re.sub(r"e\.ark:\d+", "e.ark:99999", text, count=1)),
     TRIALS, ["e.scp:1", "offset 99999 is past the end"]),
    ("NaN embedding", lambda tmp: make_embeddings(tmp, {"u2": np.full(8, np.nan, np.float32)}), TRIALS,
     ["e.scp", "'u2'", "NaN/inf"]),
    ("zero embedding", lambda tmp: make_embeddings(tmp, {"u3": np.zeros(8, np.float32)}), TRIALS,
     ["e.scp", "'u3'", "all zeros"]),
    ("duplicate key", edit_scp(lambda text, tmp: text + text.splitlines(keepends=True)[0]), TRIALS,
     ["e.scp:4", "'u1' appears twice"]),
    ("BOM mid-file", edit_scp(lambda text, tmp: text.replace("\nu2", "\n" + BOM + "u2")), TRIALS,
     ["e.scp:2", "BOM"]),
]


@pytest.mark.parametrize("case, scp, trials, needles", BAD_SCORE, ids=[c[0] for c in BAD_SCORE])
def test_bad_embeddings_fail_scoring_cleanly(tmp_path, capsys, case, scp, trials, needles):
    scp = scp(tmp_path) if scp else make_embeddings(tmp_path)
    (tmp_path / "trials").write_text(trials)
    (tmp_path / "scores").write_text("old scores\n")
    before = tree_digest(str(tmp_path))
    outcome = run_entry("score", ["--trials", tmp_path / "trials", "--enroll-emb", scp, "--test-emb", scp,
                                  "--out", tmp_path / "scores"], capsys)
    assert_clean_error(outcome, *needles)
    assert tree_digest(str(tmp_path)) == before


def test_scp_with_leading_bom_and_relative_arks_scores_from_anywhere(tmp_path, capsys, monkeypatch):
    scp = make_embeddings(tmp_path)
    scp.write_text(BOM + scp.read_text().replace(str(tmp_path) + "/", ""))
    (tmp_path / "trials").write_text(TRIALS)
    monkeypatch.chdir("/")
    outcome = run_entry("score", ["--trials", tmp_path / "trials", "--enroll-emb", scp, "--test-emb", scp,
                                  "--out", tmp_path / "scores"], capsys)
    assert outcome.code == 0, outcome.err
    assert len((tmp_path / "scores").read_text().splitlines()) == 4


# ------------------------------------------------------------------------------------------- full or read-only disk
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_merge_and_cluster_on_a_full_or_read_only_disk(tmp_path, capsys, monkeypatch, model, code):
    d = make_data(tmp_path)
    out = tmp_path / "emb"
    assert run_entry("extract", ["--model", model, "--data", d, "--out", out, "--device", "cpu"], capsys).code == 0
    assert run_entry("merge_embeddings", ["--out", out, "--num-jobs", 1, "--data", d], capsys).code == 0
    before = tree_digest(str(tmp_path))

    def replace(src, dst, *a, **k):
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", replace)
    outcome = run_entry("merge_embeddings", ["--out", out, "--num-jobs", 1, "--data", d], capsys)
    assert_clean_error(outcome, "cannot write", str(out), os.strerror(code))
    outcome = run_entry("cluster", ["--emb", out / "xvector.scp", "--data", d, "--out", tmp_path / "r1",
                                    "--num-clusters", 2, "--device", "cpu"], capsys)
    assert_clean_error(outcome, "cannot write", str(tmp_path / "r1"), os.strerror(code))
    after = tree_digest(str(tmp_path))
    assert {k: after[k] for k in before} == before
