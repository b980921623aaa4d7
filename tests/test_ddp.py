"""DDP: ``torchrun --nproc_per_node 2`` with gloo on CPU trains like one process with the same global batch."""
import json
import os
import subprocess
import sys

import pytest
import torch

from wesv.trainer.checkpoint import load_checkpoint

from trainer_helpers import make_tiny_corpus, tiny_config


def epoch_losses(exp: str) -> list[float]:
    with open(os.path.join(exp, "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if r["kind"] == "epoch"]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=8, utts_per_speaker=8)
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A gentle schedule so that three short epochs give a smooth curve to compare.
    args = ["--config", str(conf), "--trainer.epochs", "3", "--optim.lr", "0.05", "--optim.warmup_epochs", "0",
            "--method.margin", "0"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    # One process, batch 16 == two processes × batch 8: each step sees the same 16 utterances.
    subprocess.run([sys.executable, "-m", "wesv.bin.train", *args, "--exp-dir", one, "--data.batch_size", "16"],
                   check=True, env=env, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "wesv.bin.train", *args, "--exp-dir", two, "--data.batch_size", "8"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    a, b = epoch_losses(one), epoch_losses(two)
    assert len(a) == len(b) == 3
    # Both curves fall every epoch; the first epoch (near the shared initial weights) agrees closely. Later
    # epochs drift apart a little: BatchNorm sees 8 rather than 16 crops per process.
    assert a[0] > a[1] > a[2] and b[0] > b[1] > b[2], (a, b)
    assert abs(a[0] - b[0]) / a[0] < 0.1 and b[2] < 0.6 * b[0], (a, b)
    ckpt = load_checkpoint(os.path.join(two, "checkpoints", "latest.pt"))
    assert ckpt["global_step"] == 3 * 4 and len(ckpt["rng"]) == 2  # 64 utts / (2 × 8) per epoch; RNG per rank
    w1 = load_checkpoint(os.path.join(one, "checkpoints", "latest.pt"))["method"]
    assert all(torch.isfinite(v).all() for v in ckpt["method"].values() if v.is_floating_point())
    assert set(w1) == set(ckpt["method"])


@pytest.mark.slow
def test_two_process_per_sample_state_matches_one_process(tmp_path):
    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=8, utts_per_speaker=4)
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus).replace("type: classifier", "type: sample_probe"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_sample_probe.py")
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    subprocess.run([sys.executable, runner, "--config", str(conf), "--exp-dir", one, "--data.batch_size", "8"],
                   check=True, env=env, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           runner, "--config", str(conf), "--exp-dir", two, "--data.batch_size", "4"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (load_checkpoint(os.path.join(e, "checkpoints", "latest.pt"))["sample_state"]["columns"] for e in (one, two))
    # Each rank wrote only its half of the rows; the gathered table is the one-process table.
    for name in ("crop_sum", "seen", "hit"):
        assert torch.equal(a[name], b[name]), name
    assert (b["seen"] == 2).all() and torch.isfinite(b["loss"]).all()
    with open(os.path.join(two, "metrics.jsonl")) as f:
        epochs = [r for r in map(json.loads, f) if r["kind"] == "epoch"]
    # on_epoch_end saw the full table, and the same table and BN statistics on both ranks.
    assert [(r["rows_seen"], r["ranks_agree"]) for r in epochs] == [(32.0, 1.0), (32.0, 1.0)]
