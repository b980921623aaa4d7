"""Checkpoint averaging: exact means, identity on equal checkpoints, DINO's teacher, clean errors."""
import json
import os

import pytest
import torch

from badinput import assert_clean_error, run_entry, tree_digest
from trainer_helpers import make_tiny_corpus, tiny_config
from wesv.config import load_config
from wesv.trainer.average import average_state_dicts, export_prefix
from wesv.trainer.checkpoint import atomic_torch_save, load_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 3-epoch tiny classifier run keeping all epoch checkpoints."""
    from wesv.trainer.trainer import Trainer

    root = tmp_path_factory.mktemp("avg")
    corpus = make_tiny_corpus(str(root))
    conf = root / "c.yaml"
    conf.write_text(tiny_config(corpus, trainer="epochs: 3\n  device: cpu\n  log_every: 1\n  progress: false\n"
                                               "  keep_checkpoints: 0\n  max_steps_per_epoch: 2"))
    exp = str(root / "exp")
    assert Trainer(load_config(str(conf)), exp).fit() == 0
    return exp, corpus


def _encoder_state(ckpt_path: str) -> dict:
    return {k[len("encoder."):]: v for k, v in load_checkpoint(ckpt_path)["method"].items() if k.startswith("encoder.")}


def test_mean_is_exact_and_integer_buffers_come_from_the_last():
    a = {"w": torch.tensor([1.0, 2.0, 0.1]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 5.0, 0.2]), "n": torch.tensor(7)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], ((a["w"].double() + b["w"].double()) / 2).float())
    assert out["n"].item() == 7 and out["n"].dtype == torch.int64
    w = torch.randn(50)
    assert torch.equal(average_state_dicts([{"w": w}] * 3)["w"], w)


def test_average_of_one_is_the_exported_encoder_and_of_two_their_mean(run, tmp_path, capsys):
    from wesv.models import load_encoder

    exp, corpus = run
    out1 = tmp_path / "one.pt"
    assert run_entry("average_model", ["--exp-dir", exp, "--num-avg", 1, "--out", out1], capsys).code == 0
    last = load_encoder(os.path.join(exp, "encoder.pt")).state_dict()
    assert all(torch.equal(v, last[k]) for k, v in load_encoder(str(out1)).state_dict().items())
    assert run_entry("average_model", ["--exp-dir", exp, "--num-avg", 2], capsys).code == 0
    avg = load_encoder(os.path.join(exp, "encoder_avg.pt")).state_dict()
    s2, s3 = (_encoder_state(os.path.join(exp, "checkpoints", f"epoch_{e}.pt")) for e in (2, 3))
    for k, v in avg.items():
        if v.is_floating_point():
            assert torch.equal(v, ((s2[k].double() + s3[k].double()) / 2).to(v.dtype)), k
        else:
            assert torch.equal(v, s3[k]), k
    assert not torch.equal(avg["layer1.conv.weight"], s3["layer1.conv.weight"])
    # extract takes the averaged file like any encoder.pt
    emb = tmp_path / "emb"
    assert run_entry("extract", ["--model", os.path.join(exp, "encoder_avg.pt"), "--data", corpus, "--out", emb],
                     capsys).code == 0
    assert (emb / "xvector.1.scp").exists()


def test_dino_averages_the_teacher():
    from wesv.config.train import config_from_dict
    from wesv.models import build_encoder
    from wesv.trainer.method import DataInfo, find_method

    cfg = config_from_dict({"type": "dino", "encoder": {"name": "ecapa_tdnn_small", "channels": 16, "embed_dim": 16,
                            "se_bottleneck": 8, "attention_bottleneck": 8},
                            "method": {"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16}})
    method = find_method("dino").factory(cfg.method, build_encoder(cfg.encoder.name, cfg.encoder.config),
                                         DataInfo(num_samples=8))
    assert export_prefix(method) == "teacher_encoder."


def test_bad_inputs_fail_cleanly(run, tmp_path, capsys):
    exp, _ = run
    before = tree_digest(exp)
    assert_clean_error(run_entry("average_model", ["--exp-dir", exp, "--num-avg", 5], capsys),
                       "3 epoch checkpoint(s)", "--trainer.keep_checkpoints 5")
    assert_clean_error(run_entry("average_model", ["--exp-dir", exp, "--num-avg", 0], capsys), "--num-avg")
    assert_clean_error(run_entry("average_model", ["--exp-dir", exp, "--num-avg", 2, "--by", "best-val"], capsys),
                       "val_eer", "--by last")
    assert tree_digest(exp) == before
    # best-val picks the epochs of lowest val_eer once validation wrote them
    fake = tmp_path / "fake"
    os.makedirs(fake / "checkpoints")
    for e in (1, 2, 3):
        os.link(os.path.join(exp, "checkpoints", f"epoch_{e}.pt"), fake / "checkpoints" / f"epoch_{e}.pt")
    with open(fake / "metrics.jsonl", "w") as f:
        for e, eer in ((1, 0.3), (2, 0.1), (3, 0.2)):
            f.write(json.dumps({"kind": "epoch", "epoch": e, "val_eer": eer}) + "\n")
    from wesv.trainer.average import select_checkpoints

    assert [e for e, _ in select_checkpoints(str(fake), 2, "best-val")] == [2, 3]
    os.remove(fake / "checkpoints" / "epoch_2.pt")
    assert_clean_error(run_entry("average_model", ["--exp-dir", fake, "--num-avg", 1, "--by", "best-val"], capsys),
                       "pruned", "epoch_2.pt")
    torn = tmp_path / "torn" / "checkpoints"
    os.makedirs(torn)
    (torn / "epoch_1.pt").write_bytes(b"junk")
    assert_clean_error(run_entry("average_model", ["--exp-dir", tmp_path / "torn", "--num-avg", 1], capsys),
                       "epoch_1.pt")
    atomic_torch_save({"foo": 1}, str(torn / "epoch_1.pt"))
    assert_clean_error(run_entry("average_model", ["--exp-dir", tmp_path / "torn", "--num-avg", 1], capsys),
                       "not a wesv training checkpoint")
