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
    corpus = make_tiny_corpus(str(tmp_path / "corpus"))
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--config", str(conf), "--trainer.epochs", "3"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    # One process, batch 8 == two processes × batch 4: each step sees the same 8 utterances.
    subprocess.run([sys.executable, "-m", "wesv.bin.train", *args, "--exp-dir", one, "--data.batch_size", "8"],
                   check=True, env=env, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "wesv.bin.train", *args, "--exp-dir", two, "--data.batch_size", "4"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    a, b = epoch_losses(one), epoch_losses(two)
    assert len(a) == len(b) == 3 and b[-1] < b[0] and a[-1] < a[0]
    # BatchNorm sees 4 rather than 8 crops per process, so the curves agree closely but not exactly.
    assert all(abs(x - y) / x < 0.1 for x, y in zip(a, b)), (a, b)
    ckpt = load_checkpoint(os.path.join(two, "checkpoints", "latest.pt"))
    assert ckpt["global_step"] == 3 * 3 and len(ckpt["rng"]) == 2  # 24 utts / (2 × 4) per epoch; RNG per rank
    w1 = load_checkpoint(os.path.join(one, "checkpoints", "latest.pt"))["method"]
    assert all(torch.isfinite(v).all() for v in ckpt["method"].values() if v.is_floating_point())
    assert set(w1) == set(ckpt["method"])
