"""Sharded extraction with a tiny encoder: batching exactness, shards + merge, resubmission, kills, bad audio."""
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from wesv.bin import extract, merge_embeddings
from wesv.errors import WesvError
from wesv.extract.segments import Segment, plan_batches, plan_segments
from wesv.extract.shards import extract_shard, merge_shards
from wesv.models import build_encoder, save_encoder
from wesv.scoring.io import read_embeddings, read_vector

torch.set_num_threads(1)
TINY = {"channels": 16, "mfa_channels": 0, "embed_dim": 8, "res2_scale": 2, "se_bottleneck": 8,
        "attention_bottleneck": 8, "fbank": {"num_mel_bins": 20}}
LENGTHS = {"u1": 8000, "u2": 8000, "u3": 12000, "u4": 8000, "u5": 16000, "u6": 9600, "u7": 16000}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_encoder("ecapa_tdnn_small", TINY).eval()


@pytest.fixture()
def data(tmp_path, encoder):
    """A data dir of 7 noise utterances (some of equal length) and an experiment dir with encoder.pt."""
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    lines = []
    for utt, n in LENGTHS.items():
        path = d / "wav" / f"{utt}.wav"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
        lines.append(f"{utt} {path}\n")
    (d / "wav.scp").write_text("".join(lines))
    exp = tmp_path / "exp"
    save_encoder(str(exp / "encoder.pt"), encoder)
    return d, exp


def embed_direct(encoder, path, start=0, length=None):
    wave, _ = sf.read(path, dtype="float32")
    wave = wave[start:None if length is None else start + length]
    with torch.inference_mode():
        return encoder(torch.from_numpy(wave)[None])[0].numpy()


def run(argv):
    with pytest.raises(SystemExit) as ex:
        extract.main(argv)
    return ex.value.code


def as_dict(scp):
    keys, mat = read_embeddings(str(scp))
    return dict(zip(keys, mat))


def test_plan_segments_and_batches():
    segs = plan_segments({"a": 10, "b": 25, "c": 4}, chunk_samples=10)
    assert segs == [Segment("a", 0, 10), Segment("b", 0, 10), Segment("b", 10, 10), Segment("b", 15, 10),
                    Segment("c", 0, 4)]
    batches = plan_batches(segs, batch_size=2)
    assert [[(s.utt, s.start) for s in b] for b in batches] == [[("a", 0), ("b", 0)], [("b", 10), ("b", 15)],
                                                                [("c", 0)]]
    # Mixed lengths share a batch (padded and masked), longest first; equal lengths keep their data-dir order.
    mixed = plan_batches(plan_segments({"a": 10, "b": 7, "c": 4, "d": 7, "e": 12}), batch_size=2)
    assert [[s.utt for s in b] for b in mixed] == [["e", "a"], ["b", "d"], ["c"]]
    # A cap on padded samples per batch: count × longest <= 21; a segment over the cap is batched alone.
    capped = plan_batches(plan_segments({"a": 10, "b": 7, "c": 4, "d": 7, "e": 30, "f": 5}), 8, max_samples=21)
    assert [[s.utt for s in b] for b in capped] == [["e"], ["a", "b"], ["d", "f", "c"]]


def test_embedding_same_alone_and_in_a_batch(data, encoder, tmp_path):
    d, _ = data
    wav = {line.split()[0]: line.split()[1] for line in (d / "wav.scp").read_text().splitlines()}
    extract_shard(encoder, wav, str(tmp_path / "b1"), batch_size=1, device="cpu", progress=False)
    extract_shard(encoder, wav, str(tmp_path / "b8"), batch_size=8, device="cpu", progress=False)
    alone, batched = as_dict(tmp_path / "b1" / "xvector.1.scp"), as_dict(tmp_path / "b8" / "xvector.1.scp")
    assert list(alone) == list(LENGTHS)  # scp in wav.scp order whatever the batching order
    for utt in LENGTHS:
        np.testing.assert_allclose(batched[utt], alone[utt], atol=1e-4)
        np.testing.assert_allclose(alone[utt], embed_direct(encoder, wav[utt]), atol=1e-4)


def test_chunked_embedding_is_the_mean_of_chunks(data, encoder, tmp_path):
    d, _ = data
    wav = {line.split()[0]: line.split()[1] for line in (d / "wav.scp").read_text().splitlines()}
    extract_shard(encoder, wav, str(tmp_path / "c"), chunk_seconds=0.5, device="cpu", progress=False)
    got = as_dict(tmp_path / "c" / "xvector.1.scp")
    # u3 has 12000 samples: chunks [0, 8000) and [4000, 12000) (the last aligned to the end).
    want = (embed_direct(encoder, wav["u3"], 0, 8000) + embed_direct(encoder, wav["u3"], 4000, 8000)) / 2
    np.testing.assert_allclose(got["u3"], want, atol=1e-4)
    np.testing.assert_allclose(got["u1"], embed_direct(encoder, wav["u1"]), atol=1e-4)  # one chunk = whole


def test_three_shards_and_merge_equal_one_shard(data, tmp_path):
    d, exp = data
    common = ["--model-dir", str(exp), "--data", str(d), "--device", "cpu", "--batch-size", "4"]
    assert run([*common, "--out", str(tmp_path / "one")]) == 0
    assert merge_embeddings.main.__wrapped__(["--out", str(tmp_path / "one"), "--num-jobs", "1",
                                              "--data", str(d)]) is None
    for job in (1, 2, 3):
        assert run([*common, "--out", str(tmp_path / "three"), "--job", str(job), "--num-jobs", "3"]) == 0
    # Kaldi split_scp.pl: 7 lines in 3 → 3, 2, 2.
    assert [len((tmp_path / "three" / f"xvector.{j}.scp").read_text().splitlines()) for j in (1, 2, 3)] == [3, 2, 2]
    assert run([*common, "--out", str(tmp_path / "three"), "--num-jobs", "3", "--merge"]) == 0
    one, three = as_dict(tmp_path / "one" / "xvector.scp"), as_dict(tmp_path / "three" / "xvector.scp")
    assert list(three) == list(one) == list(LENGTHS)
    for utt in one:
        np.testing.assert_allclose(three[utt], one[utt], atol=1e-6)
    mean = read_vector(str(tmp_path / "three" / "mean.vec"))
    np.testing.assert_allclose(mean, np.mean(list(one.values()), axis=0), atol=1e-6)


def test_merge_refuses_unfinished_or_mismatched_shards(data, tmp_path):
    d, exp = data
    common = ["--model-dir", str(exp), "--data", str(d), "--device", "cpu", "--out", str(tmp_path / "o")]
    run([*common, "--job", "1", "--num-jobs", "2"])
    wav = {line.split()[0]: line.split()[1] for line in (d / "wav.scp").read_text().splitlines()}
    with pytest.raises(WesvError, match="shards 2 of 2 are not finished"):
        merge_shards(str(tmp_path / "o"), 2, wav)
    run([*common, "--job", "2", "--num-jobs", "2"])
    scp2 = tmp_path / "o" / "xvector.2.scp"
    scp2.write_text("".join(scp2.read_text().splitlines(keepends=True)[:-1]))  # lose u7
    with pytest.raises(WesvError, match=r"6 embeddings, expected 7 .*first: u7"):
        merge_shards(str(tmp_path / "o"), 2, wav)
    with pytest.raises(WesvError, match="extracted with --num-jobs 2, not 3"):
        extract_shard(None, wav, str(tmp_path / "o"), 1, 3)


def test_resubmitted_finished_shard_does_nothing(data, tmp_path, monkeypatch):
    d, exp = data
    out = tmp_path / "o"
    common = ["--data", str(d), "--device", "cpu", "--out", str(out), "--job", "2", "--num-jobs", "2"]
    assert run(["--model-dir", str(exp), *common]) == 0
    before = {p: os.stat(out / p).st_mtime_ns for p in ("xvector.2.ark", "xvector.2.scp", ".done.2")}
    # Same model (a copy, even): the model is not even loaded.
    import shutil

    import wesv.models
    shutil.copy(exp / "encoder.pt", tmp_path / "copy.pt")
    monkeypatch.setattr(wesv.models, "load_encoder", lambda path: pytest.fail("the model was loaded"))
    assert run(["--model", str(tmp_path / "copy.pt"), *common]) == 0
    assert {p: os.stat(out / p).st_mtime_ns for p in before} == before
    assert not (out / "xvector.1.scp").exists()


def test_another_model_or_data_redoes_the_shard_or_fails(data, encoder, tmp_path, capsys, caplog):
    """A finished dir extracted again with another model is not 'already done' with the old ark."""
    d, exp = data
    out = tmp_path / "o"
    for job in (1, 2):
        assert run(["--model-dir", str(exp), "--data", str(d), "--device", "cpu", "--out", str(out), "--job",
                    str(job), "--num-jobs", "2"]) == 0
    assert run(["--model-dir", str(exp), "--data", str(d), "--out", str(out), "--num-jobs", "2", "--merge"]) == 0
    old = as_dict(out / "xvector.scp")
    fingerprint = json.loads((out / "fingerprint").read_text())
    assert fingerprint["model"]["sha1"] and fingerprint["data"]["num_utts"] == 7
    torch.manual_seed(1)
    other = tmp_path / "exp2"
    save_encoder(str(other / "encoder.pt"), build_encoder("ecapa_tdnn_small", TINY).eval())
    common = ["--model-dir", str(other), "--data", str(d), "--device", "cpu", "--out", str(out), "--num-jobs", "2"]
    before = {p: (out / p).read_bytes() for p in ("xvector.1.ark", ".done.1", "xvector.scp")}
    assert run([*common, "--job", "1", "--on-mismatch", "fail"]) == 2
    err = capsys.readouterr().err
    assert "shard 1 was extracted with another model" in err and "--on-mismatch redo" in err
    assert {p: (out / p).read_bytes() for p in before} == before
    assert run([*common, "--job", "1"]) == 0
    assert "extracting it again" in caplog.text
    assert not (out / "xvector.scp").exists()  # the merged list no longer describes the shards
    assert run([*common, "--merge"]) == 2
    assert "shard 2 differs from shard 1: another model" in capsys.readouterr().err
    assert run([*common, "--job", "2"]) == 0 and run([*common, "--merge"]) == 0
    new = as_dict(out / "xvector.scp")
    assert list(new) == list(old) and not np.allclose(new["u1"], old["u1"])
    # another wav.scp (one utterance dropped) also redoes the shards
    (d / "wav.scp").write_text("".join((d / "wav.scp").read_text().splitlines(keepends=True)[:-1]))
    assert run([*common, "--job", "1", "--on-mismatch", "fail"]) == 2
    assert "another wav.scp" in capsys.readouterr().err


def test_second_writer_of_a_shard_fails_naming_the_holder(data, encoder, tmp_path):
    import subprocess
    import sys

    d, _ = data
    wav = {line.split()[0]: line.split()[1] for line in (d / "wav.scp").read_text().splitlines()}
    out = tmp_path / "o"
    out.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / ".lock.1"), root], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WesvError, match=rf"\.lock\.1.*pid {holder.pid}\b|pid {holder.pid}\b.*\.lock\.1"):
            extract_shard(encoder, wav, str(out), device="cpu", progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(os.listdir(out)) == [".lock.1"]
    extract_shard(encoder, wav, str(out), device="cpu", progress=False)  # the lock died with its holder


HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[2])
from wesv.lock import exclusive_lock
with exclusive_lock(sys.argv[1], "a test holder"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_relative_scp_of_an_old_extraction_works_from_anywhere(data, tmp_path, monkeypatch):
    """Shard scps written with relative ark paths (older wesv, from the recipe dir) merge into absolute ones."""
    d, exp = data
    monkeypatch.chdir(tmp_path)
    assert run(["--model-dir", str(exp), "--data", str(d), "--device", "cpu", "--out", "o"]) == 0
    scp1 = tmp_path / "o" / "xvector.1.scp"
    assert all(line.split()[1].startswith(str(tmp_path / "o" / "xvector.1.ark:"))
               for line in scp1.read_text().splitlines())
    scp1.write_text(scp1.read_text().replace(str(tmp_path) + "/", ""))  # as an older wesv wrote it
    assert merge_embeddings.main.__wrapped__(["--out", "o", "--num-jobs", "1", "--data", str(d)]) is None
    merged = (tmp_path / "o" / "xvector.scp").read_text()
    assert merged.split()[1].startswith(str(tmp_path / "o" / "xvector.1.ark:"))
    (tmp_path / "rel.scp").write_text(scp1.read_text().replace("o/", "o/../o/"))
    (tmp_path / "o" / "rel.scp").write_text(scp1.read_text().replace("o/", ""))
    monkeypatch.chdir(d)  # elsewhere: relative arks resolve against the scp's own dir
    assert list(as_dict(tmp_path / "o" / "rel.scp")) == list(LENGTHS)
    assert list(as_dict(tmp_path / "o" / "xvector.scp")) == list(LENGTHS)


class Killer(torch.nn.Module):
    """Wraps an encoder and raises on the second batch, as if the job were killed mid-way."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.frontend = inner.frontend

    def forward(self, wave, lengths=None):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt("killed")
        return self.inner(wave, lengths)


def test_killed_shard_leaves_no_outputs_and_rerun_completes(data, encoder, tmp_path):
    d, _ = data
    wav = {line.split()[0]: line.split()[1] for line in (d / "wav.scp").read_text().splitlines()}
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        extract_shard(Killer(encoder), wav, str(out), batch_size=2, device="cpu", progress=False)
    left = sorted(os.listdir(out))
    assert left == [".lock.1", "xvector.1.ark.tmp"]  # only a temp file: no partial xvector.1.*, no marker
    extract_shard(encoder, wav, str(out), batch_size=2, device="cpu", progress=False)
    assert sorted(os.listdir(out)) == [".done.1", ".lock.1", "bad_utts.1", "xvector.1.ark", "xvector.1.scp"]
    extract_shard(encoder, wav, str(tmp_path / "ref"), batch_size=2, device="cpu", progress=False)
    got, ref = as_dict(out / "xvector.1.scp"), as_dict(tmp_path / "ref" / "xvector.1.scp")
    assert list(got) == list(ref)
    for utt in ref:
        np.testing.assert_allclose(got[utt], ref[utt], atol=1e-6)


def test_bad_audio_fails_naming_the_utterance_or_is_skipped_and_listed(data, tmp_path, capsys):
    d, exp = data
    (d / "wav" / "u3.wav").write_bytes(b"RIFF not really a wave file")
    os.remove(d / "wav" / "u6.wav")
    common = ["--model-dir", str(exp), "--data", str(d), "--device", "cpu"]
    assert run([*common, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert "wesv: error: utterance 'u3'" in err and "cannot decode audio" in err and "--skip-bad" in err
    assert not os.path.exists(tmp_path / "strict" / ".done.1")
    for job in (1, 2):
        assert run([*common, "--out", str(tmp_path / "lax"), "--skip-bad", "--job", str(job), "--num-jobs", "2"]) == 0
    listed = (tmp_path / "lax" / "bad_utts.1").read_text().splitlines()
    assert [line.split()[0] for line in listed] == ["u3"]
    assert [line.split()[0] for line in (tmp_path / "lax" / "bad_utts.2").read_text().splitlines()] == ["u6"]
    assert "no such file" in (tmp_path / "lax" / "bad_utts.2").read_text()
    assert run([*common, "--out", str(tmp_path / "lax"), "--num-jobs", "2", "--merge"]) == 0
    assert list(as_dict(tmp_path / "lax" / "xvector.scp")) == ["u1", "u2", "u4", "u5", "u7"]
    assert (tmp_path / "lax" / "bad_utts").read_text().split() == ["u3", "u6"]


@pytest.mark.parametrize("name", ["ecapa_tdnn_small", "resnet_small"])
def test_cli_batch_8_mixed_lengths_equals_batch_1(name, tmp_path):
    """Utterances of 9 different lengths share padded batches and still get --batch-size 1's embeddings."""
    from test_models import random_bn_stats

    rng = np.random.default_rng(1)
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    lengths = [9000, 400, 16000, 4321, 12000, 7001, 16000, 2500, 11111]
    lines = []
    for i, n in enumerate(lengths):
        path = d / "wav" / f"utt{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
        lines.append(f"utt{i} {path}\n")
    (d / "wav.scp").write_text("".join(lines))
    torch.manual_seed(0)
    save_encoder(str(tmp_path / "encoder.pt"), random_bn_stats(build_encoder(name)))
    got = {}
    for bs in (1, 8):
        out = tmp_path / f"b{bs}"
        assert run(["--model", str(tmp_path / "encoder.pt"), "--data", str(d), "--out", str(out), "--device",
                    "cpu", "--batch-size", str(bs)]) == 0
        keys = [line.split()[0] for line in (out / "xvector.1.scp").read_text().splitlines()]
        assert keys == [f"utt{i}" for i in range(len(lengths))]  # data-dir order, whatever the batching
        got[bs] = as_dict(out / "xvector.1.scp")
    for utt, ref in got[1].items():
        e = got[8][utt]
        assert np.dot(e, ref) / (np.linalg.norm(e) * np.linalg.norm(ref)) > 0.9999, utt
        np.testing.assert_allclose(e, ref, atol=1e-4)


def test_negative_max_batch_seconds_is_a_clean_error(data, tmp_path, capsys):
    from badinput import assert_clean_error, run_entry

    d, exp = data
    out = run_entry("extract", ["--model-dir", exp, "--data", d, "--out", tmp_path / "o", "--max-batch-seconds", "-1"],
                    capsys)
    assert_clean_error(out, "--max-batch-seconds must be >= 0")
    assert not (tmp_path / "o").exists()
