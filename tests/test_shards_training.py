"""Training from data.shards: same crops and utterances as from the data dir, every row once per epoch, 2 workers,
labels from data.train/utt2spk (pseudo-labels) or the shards, views for SSL methods, resume rules."""
import json
import os

import numpy as np
import pytest
import torch

from trainer_helpers import SampleProbe, make_tiny_corpus, tiny_config  # noqa: F401  (registers sample_probe)
from wesv.config import load_config
from wesv.data.datadir import read_scp
from wesv.data.shards import ShardIndex, ShardStream, write_shards
from wesv.errors import WesvError
from wesv.trainer import Trainer
from wesv.trainer.checkpoint import load_checkpoint
from wesv.trainer.loaders import ShardBatches, check_shard_resume
from wesv.trainer.resume_check import check_resume_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    data = make_tiny_corpus(str(root))  # 24 utterances, 4 speakers
    utt2spk = dict(line.split() for line in open(os.path.join(data, "utt2spk")))
    shards = str(root / "shards")
    write_shards(read_scp(os.path.join(data, "wav.scp")), utt2spk, shards, 4)  # 6 shards
    return data, shards


def train(tmp_path, name, train_dir, overrides=(), **sections):
    path = tmp_path / f"{name}.yaml"
    path.write_text(tiny_config(train_dir, **sections))
    exp = str(tmp_path / name)
    assert Trainer(load_config(str(path), list(overrides)), exp).fit() == 0
    records = [json.loads(line) for line in open(os.path.join(exp, "metrics.jsonl"))]
    return exp, [r for r in records if r["kind"] == "epoch"]


def test_classifier_from_shards_sees_the_crops_of_the_data_dir_every_row_once(tmp_path, corpus):
    data, shards = corpus
    probe = ["--type", "sample_probe", "--trainer.epochs", "3"]
    raw_exp, raw = train(tmp_path, "raw", data, probe)
    exp, epochs = train(tmp_path, "shards", data, probe + ["--data.shards", shards, "--data.num_workers", "2"])
    assert [r["rows_seen"] for r in epochs] == [r["rows_seen"] for r in raw] == [24.0] * 3
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    state = load_checkpoint(os.path.join(exp, "checkpoints", "latest.pt"))["sample_state"]["columns"]
    ref = load_checkpoint(os.path.join(raw_exp, "checkpoints", "latest.pt"))["sample_state"]["columns"]
    assert state["seen"].tolist() == [3] * 24  # each utterance once per epoch
    # index = position in the shards = position in wav.scp; crops drawn from (seed, epoch, index): the same audio
    assert torch.allclose(state["crop_sum"], ref["crop_sum"], atol=1e-6)
    # a batch order of its own (shard order + shuffle buffer), so the steps differ, not the epoch's data
    assert not torch.equal(state["loss"], ref["loss"])


def test_labels_come_from_data_train_utt2spk_else_from_the_shards(tmp_path, corpus):
    data, shards = corpus
    from wesv.data.datasets import build_labelled_dataset

    cfg = load_config_text(tmp_path, tiny_config(str(tmp_path / "none")), ["--data.shards", shards])
    ds = build_labelled_dataset(cfg.data, None, 0)  # no data.train dir: the shards' labels
    assert len(ds) == 24 and ds.speakers == ["spk0", "spk1", "spk2", "spk3"]
    pseudo = tmp_path / "pseudo"  # a pseudo-label dir: other labels, and a filtered subset of the utterances
    pseudo.mkdir()
    utts = list(read_scp(os.path.join(data, "wav.scp")))
    kept = utts[::2]
    (pseudo / "utt2spk").write_text("".join(f"{u} c{i % 3}\n" for i, u in enumerate(kept)))
    cfg = load_config_text(tmp_path, tiny_config(str(pseudo)), ["--data.shards", shards])
    ds = build_labelled_dataset(cfg.data, None, 0)
    assert ds.utts == kept and ds.speakers == ["c0", "c1", "c2"]
    stream = ShardStream(ShardIndex(shards), ds, seed=1, buffer_size=3)
    seen = {s["utt"]: (s["index"], s["label"]) for s in stream}
    assert seen == {u: (i, i % 3) for i, u in enumerate(kept)}
    assert stream.min_rank_samples() == 12
    (pseudo / "utt2spk").write_text("other-utt c0\n")
    with pytest.raises(WesvError, match="none of the 24 utterances"):
        build_labelled_dataset(cfg.data, None, 0)


def load_config_text(tmp_path, text, overrides):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(str(path), list(overrides))


MOCO = "queue_size: 8\n  num_global: 2\n  global_seconds: 0.25\n  proj_dim: 8\n  proj_hidden_dim: 16"
DINO = ("num_global: 2\n  num_local: 2\n  global_seconds: 0.25\n  local_seconds: 0.2\n  out_dim: 16\n"
        "  hidden_dim: 16\n  bottleneck_dim: 8\n  collapse_grace_epochs: 99")


@pytest.mark.parametrize("method,body", [("moco", MOCO), ("dino", DINO)])
def test_views_methods_train_from_shards_with_two_workers(tmp_path, corpus, method, body):
    data, shards = corpus
    exp, epochs = train(tmp_path, method, str(tmp_path / "absent"),
                        ["--type", method, "--data.shards", shards, "--data.num_workers", "2",
                         "--trainer.epochs", "1"], method=body)
    assert len(epochs) == 1 and np.isfinite(epochs[0]["loss"]) and os.path.isfile(os.path.join(exp, "encoder.pt"))


def test_stream_skip_resumes_the_same_order_and_resume_rules(tmp_path, corpus):
    data, shards = corpus
    from torch.utils.data import DataLoader

    from wesv.data.datasets import build_labelled_dataset
    from wesv.trainer.loaders import _as_is

    cfg = load_config_text(tmp_path, tiny_config(data), ["--data.shards", shards])
    ds = build_labelled_dataset(cfg.data, None, 0)
    stream = ShardStream(ShardIndex(shards), ds, seed=2, buffer_size=3)
    batches = ShardBatches(stream, DataLoader(stream, batch_size=None, num_workers=2, collate_fn=_as_is,
                                              persistent_workers=True), 4, True, ds.collate_fn)
    runs = {}
    for epoch, skip in [(0, 0), (1, 0), (1, 8)]:  # persistent workers see the new epoch
        batches.set_epoch(epoch, skip)
        runs[epoch, skip] = [u for b in batches for u in b["utt"]]
    assert sorted(runs[0, 0]) == sorted(runs[1, 0]) and runs[0, 0] != runs[1, 0]
    assert runs[1, 8] == runs[1, 0][8:]
    ckpt = {"epoch": 0, "batch_in_epoch": 2, "rng": [None], "config": {"data": {"num_workers": 2}}}
    check_shard_resume(ckpt, 2, 1, "latest.pt")
    with pytest.raises(WesvError, match="data.num_workers 2 \\(now 1 and 0\\)"):
        check_shard_resume(ckpt, 0, 1, "latest.pt")
    check_shard_resume({**ckpt, "batch_in_epoch": 0}, 0, 3, "latest.pt")  # an epoch boundary: anything goes
    with pytest.raises(WesvError, match="data.shards"):
        check_resume_config({"data": {"shards": None}}, {"data": {"shards": shards}}, "latest.pt", "exp")


def test_mid_epoch_resume_from_shards_is_exact(tmp_path, corpus, monkeypatch):
    import signal

    from wesv.methods.classifier import Classifier

    data, shards = corpus
    args = ["--data.shards", shards, "--data.num_workers", "2"]
    full, _ = train(tmp_path, "full", data, args)
    path = tmp_path / "part.yaml"
    path.write_text(tiny_config(data))
    cfg = load_config(str(path), args)
    part = str(tmp_path / "part")
    real, calls = Classifier.forward, {"n": 0}

    def hook(self, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # the 3rd step of epoch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, batch)
    monkeypatch.setattr(Classifier, "forward", hook)
    assert Trainer(cfg, part).fit() == 128 + signal.SIGTERM
    assert load_checkpoint(os.path.join(part, "checkpoints", "latest.pt"))["batch_in_epoch"] == 3
    monkeypatch.undo()
    assert Trainer(cfg, part, resume=True).fit() == 0
    steps = [{r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(e, "metrics.jsonl")))
              if r["kind"] == "step"} for e in (full, part)]
    assert steps[0] == pytest.approx(steps[1], abs=1e-6) and len(steps[0]) == 12


def test_dlg_lc_from_shards_trains_on_the_pseudo_labels_of_data_train(tmp_path, corpus):
    """Shards packed with the true labels, data.train a pseudo-label dir (its utt2spk only): its labels are used."""
    from wesv.loss_gate.record import read_records

    data, shards = corpus
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    utts = list(read_scp(os.path.join(data, "wav.scp")))
    (pseudo / "utt2spk").write_text("".join(f"{u} c{i % 3}\n" for i, u in enumerate(utts)))  # not the speakers
    exp, epochs = train(tmp_path, "dlg", str(pseudo), ["--type", "dlg_lc", "--data.shards", shards,
                                                       "--data.num_workers", "2"],
                        method="scale: 10.0\n  margin: 0.1\n  gate_start_epoch: 2")
    records = read_records(exp)
    assert [e for e, _ in records] == [1, 2] and all(np.isfinite(r["loss"]).all() for _, r in records)
    assert list(records[0][1]["utt"]) == utts  # rows in dataset (shard) order
    assert records[0][1]["label"].tolist() == [i % 3 for i in range(24)]  # ids of c0..c2, not of spk0..spk3


@pytest.mark.slow
def test_two_processes_two_workers_read_every_shard_row_once_per_epoch(tmp_path, corpus):
    """torchrun × 2 (gloo), 2 workers each, from shards: the gathered table has every row once an epoch, and the
    crops are the one-process crops (index and crop draws do not depend on who reads the utterance)."""
    import subprocess
    import sys

    data, shards = corpus
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(data).replace("type: classifier", "type: sample_probe"))
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_sample_probe.py")
    args = [runner, "--config", str(conf), "--data.shards", shards, "--data.num_workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    subprocess.run([sys.executable, *args, "--exp-dir", one], check=True, env=env, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args, "--exp-dir", two], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (load_checkpoint(os.path.join(e, "checkpoints", "latest.pt")) for e in (one, two))
    assert b["global_step"] == 2 * 3  # 6 shards of 4: each rank reads 3 (12 utterances), batch 4
    assert (b["sample_state"]["columns"]["seen"] == 2).all()
    assert torch.equal(a["sample_state"]["columns"]["crop_sum"], b["sample_state"]["columns"]["crop_sum"])
    epochs = [r for r in map(json.loads, open(os.path.join(two, "metrics.jsonl"))) if r["kind"] == "epoch"]
    assert [(r["rows_seen"], r["ranks_agree"]) for r in epochs] == [(24.0, 1.0), (24.0, 1.0)]


def test_bad_shard_settings_fail_in_one_line(tmp_path, corpus, capsys):
    from badinput import assert_clean_error, run_entry

    data, shards = corpus
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(data))
    base = ["--config", str(conf), "--exp-dir", str(tmp_path / "exp")]
    assert_clean_error(run_entry("train", base + ["--data.shards", str(tmp_path / "nowhere")], capsys),
                       "nowhere/shards.list", "make_shards")
    other = tmp_path / "at8k"  # the same shards, declared as 8 kHz audio
    other.mkdir()
    (other / "shards.list").write_text(open(os.path.join(shards, "shards.list")).read())
    manifest = json.load(open(os.path.join(shards, "shards.json")))
    (other / "shards.json").write_text(json.dumps({**manifest, "sample_rate": 8000}))
    assert_clean_error(run_entry("train", base + ["--data.shards", str(other)], capsys),
                       "8000 Hz audio but data.sample_rate is 16000", "--sample-rate 16000")
    dino = tmp_path / "dino.yaml"
    dino.write_text(tiny_config(data, method=DINO + f"\n  p_same_cluster: 0.5\n  cluster_data: {tmp_path}")
                    .replace("type: classifier", "type: dino"))
    assert_clean_error(run_entry("train", ["--config", str(dino), "--exp-dir", str(tmp_path / "exp"),
                                           "--data.shards", shards], capsys),
                       "method.p_same_cluster > 0", "data.shards")
    assert not (tmp_path / "exp").exists()
