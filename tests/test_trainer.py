"""The one trainer: artefacts, optimiser groups, schedules, atomic checkpoints, exact resume, SIGTERM, NaN stops."""
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from wesv.config import load_config
from wesv.errors import WesvError
from wesv.methods.classifier import Classifier
from wesv.trainer import Trainer
from wesv.trainer.checkpoint import atomic_torch_save, load_checkpoint, prune_checkpoints
from wesv.trainer.optim import lr_factor, split_groups
from wesv.trainer.sampler import EpochSampler

from trainer_helpers import SampleProbe, make_tiny_corpus, tiny_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return make_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


def config(tmp_path, corpus, overrides=(), **sections):
    path = tmp_path / "conf.yaml"
    path.write_text(tiny_config(corpus, **sections))
    return load_config(str(path), list(overrides))


def read_metrics(exp) -> list[dict]:
    with open(os.path.join(exp, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def step_losses(exp) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(exp) if r["kind"] == "step"}


def final_state(exp) -> dict:
    return load_checkpoint(os.path.join(exp, "checkpoints", "latest.pt"))["method"]


# ---- pieces -----------------------------------------------------------------------------------------------

def test_no_weight_decay_on_1d_params_and_lr_scale():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    head = nn.Linear(4, 2)
    groups = split_groups([{"name": "backbone", "params": list(net.parameters()), "lr_scale": 0.1},
                           {"name": "head", "params": list(head.parameters()), "lr_scale": 1.0}], 1e-3, 0.5)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone.no_decay", "head", "head.no_decay"}
    assert [p.shape for p in by_name["backbone"]["params"]] == [torch.Size([4, 3])]
    assert len(by_name["backbone.no_decay"]["params"]) == 3  # linear bias, BN weight and bias
    assert by_name["backbone.no_decay"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] == 1e-3
    assert by_name["backbone"]["lr"] == pytest.approx(0.05) and by_name["head"]["lr"] == 0.5
    with pytest.raises(ValueError, match="repeats a parameter"):
        split_groups([{"params": list(head.parameters())}, {"params": list(head.parameters())}], 0, 1)


def test_lr_schedules(tmp_path, corpus):
    cfg = config(tmp_path, corpus).optim
    cfg.lr, cfg.final_lr, cfg.warmup_start_lr = 0.1, 0.001, 0.0
    total, warm = 101, 10
    assert lr_factor(0, total, warm, cfg) == 0.0 and lr_factor(5, total, warm, cfg) == pytest.approx(0.5)
    assert lr_factor(warm, total, warm, cfg) == pytest.approx(1.0)
    assert lr_factor(total - 1, total, warm, cfg) == pytest.approx(0.01)
    mid = warm + (total - 1 - warm) // 2
    assert lr_factor(mid, total, warm, cfg) == pytest.approx(0.505, abs=1e-3)  # cosine half-way
    cfg.schedule = "exponential"
    assert lr_factor(mid, total, warm, cfg) == pytest.approx(0.1, rel=1e-3)  # geometric mean of 1 and 0.01
    assert lr_factor(total - 1, total, warm, cfg) == pytest.approx(0.01)
    cfg.schedule = "constant"
    assert lr_factor(total - 1, total, warm, cfg) == 1.0


def test_sampler_order_from_seed_and_epoch_and_skip():
    data = list(range(10))
    a, b = EpochSampler(data, seed=1), EpochSampler(data, seed=1)
    a.set_epoch(2)
    b.set_epoch(2, skip=4)
    full = list(a)
    assert sorted(i for _, i in full) == data and all(e == 2 for e, _ in full)
    assert list(b) == full[4:] and len(b) == 6
    a.set_epoch(3)
    assert list(a) != full
    ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=1) for r in range(2)]
    for s in ranks:
        s.set_epoch(2)
    shards = [[i for _, i in s] for s in ranks]
    assert sorted(shards[0] + shards[1]) == data and shards[0] == [i for _, i in full][0::2]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.pt")
    atomic_torch_save({"step": 1, "w": torch.arange(5)}, path)
    real_save = torch.save

    def crash(obj, f, *a, **k):  # writes half a file, then the machine "dies"
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        atomic_torch_save({"step": 2, "w": torch.zeros(5)}, path)
    monkeypatch.undo()
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.arange(5))
    assert os.listdir(tmp_path) == ["latest.pt"]  # no temp file left behind
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(WesvError, match="torn.pt: cannot load checkpoint"):
        load_checkpoint(str(tmp_path / "torn.pt"))


def test_prune_keeps_the_newest(tmp_path):
    for e in (1, 2, 3, 10):
        (tmp_path / f"epoch_{e}.pt").write_bytes(b"x")
    prune_checkpoints(str(tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["epoch_10.pt", "epoch_3.pt"]


# ---- whole runs -------------------------------------------------------------------------------------------

def test_run_writes_every_artefact_and_repeats_with_a_seed(tmp_path, corpus):
    from wesv.models import load_encoder

    cfg = config(tmp_path, corpus)
    exp = str(tmp_path / "a")
    assert Trainer(cfg, exp).fit() == 0
    for name in ("config.yaml", "encoder.pt", "metrics.jsonl", "loss.png", "train.log",
                 "checkpoints/latest.pt", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt"):
        assert os.path.isfile(os.path.join(exp, name)), name
    records = read_metrics(exp)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all("acc" in r and "samples_per_s" in r for r in epochs)
    assert len([r for r in records if r["kind"] == "step"]) == epochs[-1]["step"] == 12  # 24 utts / 4 × 2
    enc = load_encoder(os.path.join(exp, "encoder.pt"))
    assert enc(torch.zeros(2, 4000)).shape == (2, 16)
    assert load_config(os.path.join(exp, "config.yaml")) == cfg  # the saved config reruns the run
    # Same seed, same losses and weights; the exp dir refuses a second run without --resume.
    exp_b = str(tmp_path / "b")
    Trainer(cfg, exp_b).fit()
    assert step_losses(exp) == step_losses(exp_b)
    with pytest.raises(WesvError, match="already holds a run; pass --resume"):
        Trainer(cfg, exp).fit()
    # A finished run does nothing on --resume.
    mtime = os.path.getmtime(os.path.join(exp, "checkpoints", "latest.pt"))
    assert Trainer(cfg, exp, resume=True).fit() == 0
    assert os.path.getmtime(os.path.join(exp, "checkpoints", "latest.pt")) == mtime


@pytest.mark.parametrize("stop_at", ["epoch_end", "mid_epoch"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, corpus, monkeypatch, stop_at):
    cfg = config(tmp_path, corpus)
    straight = str(tmp_path / "straight")
    assert Trainer(cfg, straight).fit() == 0

    calls = {"n": 0}
    if stop_at == "epoch_end":
        real = Classifier.on_epoch_end

        def hook(self, epoch):
            if epoch == 0:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(self, epoch)
        monkeypatch.setattr(Classifier, "on_epoch_end", hook)
    else:
        real = Classifier.forward

        def hook(self, batch):
            calls["n"] += 1
            if calls["n"] == 8:  # the 2nd step of epoch 2
                os.kill(os.getpid(), signal.SIGTERM)
            return real(self, batch)
        monkeypatch.setattr(Classifier, "forward", hook)
    resumed = str(tmp_path / "resumed")
    assert Trainer(cfg, resumed).fit() == 128 + signal.SIGTERM
    ckpt = load_checkpoint(os.path.join(resumed, "checkpoints", "latest.pt"))
    assert (ckpt["epoch"], ckpt["batch_in_epoch"]) == ((1, 0) if stop_at == "epoch_end" else (1, 2))
    monkeypatch.undo()
    assert Trainer(cfg, resumed, resume=True).fit() == 0
    assert step_losses(resumed) == step_losses(straight)  # including the first step after the resume
    a, b = final_state(straight), final_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The epoch records too: an epoch resumed in its middle reports all its steps, not those after the resume.
    assert epoch_records(resumed) == epoch_records(straight)
    ta, tb = (load_checkpoint(os.path.join(e, "checkpoints", "latest.pt"))["sample_state"] for e in (straight, resumed))
    assert torch.equal(ta["columns"]["loss"], tb["columns"]["loss"])  # the classifier's per-sample losses


def test_per_sample_state_survives_a_mid_epoch_stop(tmp_path, corpus, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="wesv")
    path = tmp_path / "conf.yaml"
    path.write_text(tiny_config(corpus).replace("type: classifier", "type: sample_probe"))
    cfg = load_config(str(path), ["--trainer.num_threads", "2"])
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    assert Trainer(cfg, straight).fit() == 0
    calls = {"n": 0}
    real = SampleProbe.forward

    def hook(self, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # the 3rd step of epoch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, batch)
    monkeypatch.setattr(SampleProbe, "forward", hook)
    assert Trainer(cfg, resumed).fit() == 128 + signal.SIGTERM
    partial = load_checkpoint(os.path.join(resumed, "checkpoints", "latest.pt"))["sample_state"]["columns"]
    # Epoch 2's first 3 batches (12 of 24 rows) are in the checkpoint; the other rows still hold epoch 1's count.
    assert int(torch.isfinite(partial["loss"]).sum()) == 12 == int((partial["seen"] == 2).sum())
    monkeypatch.undo()
    assert Trainer(cfg, resumed, resume=True).fit() == 0
    a, b = (load_checkpoint(os.path.join(e, "checkpoints", "latest.pt"))["sample_state"]["columns"]
            for e in (straight, resumed))
    assert set(a) == {"loss", "crop_sum", "seen", "hit"} and all(torch.equal(a[k], b[k]) for k in a)
    assert (b["seen"] == 2).all() and b["hit"].all() and torch.isfinite(b["loss"]).all()
    epochs = [r for r in read_metrics(resumed) if r["kind"] == "epoch"]
    assert [r["rows_seen"] for r in epochs] == [24.0, 24.0]  # on_epoch_end saw the full table
    text = caplog.text
    encoder = sum(p.numel() for p in load_encoder_of(straight).parameters())
    assert f"parameters: encoder (exported): {encoder}, trained total: " in text
    assert "torch threads: 2 (trainer.num_threads 2)" in text
    assert torch.get_num_threads() == 1  # fit() gives the process its thread count back


def load_encoder_of(exp: str) -> nn.Module:
    from wesv.models import load_encoder

    return load_encoder(os.path.join(exp, "encoder.pt"))


def epoch_records(exp) -> list[dict]:
    timing = ("time_s", "samples_per_s")
    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(exp) if r["kind"] == "epoch"]


_KILL_IN_SAVE = """
import os, signal, sys
import torch
import wesv.trainer.checkpoint as ck
from wesv.config import load_config
from wesv.trainer import Trainer

real, calls = torch.save, [0]
def save(obj, f, *a, **k):  # the 3rd checkpoint write dies half-way: kill -9 while in atomic_torch_save
    calls[0] += 1
    real(obj, f, *a, **k)
    if calls[0] == 3:
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
ck.torch.save = save
Trainer(load_config(sys.argv[1], ["--trainer.save_every_steps", "2"]), sys.argv[2]).fit()
"""


def test_kill_9_during_a_checkpoint_write_leaves_a_loadable_latest(tmp_path, corpus):
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    exp = tmp_path / "exp"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_IN_SAVE, str(conf), str(exp)], stderr=subprocess.PIPE,
                            text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    ckpt_dir = exp / "checkpoints"
    assert [n for n in os.listdir(ckpt_dir) if ".tmp." in n] == [f"latest.pt.tmp.{proc.pid}"]
    assert load_checkpoint(str(ckpt_dir / "latest.pt"))["global_step"] == 4  # the 2nd save, intact
    assert Trainer(config(tmp_path, corpus), str(exp), resume=True).fit() == 0
    assert not [n for n in os.listdir(ckpt_dir) if ".tmp." in n]  # the dead writer's temp file is cleaned
    assert load_checkpoint(str(ckpt_dir / "latest.pt"))["finished"]


def test_stale_temp_files_of_dead_writers_only_are_removed(tmp_path):
    from wesv.trainer.checkpoint import remove_stale_temps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        names = [f"latest.pt.tmp.{dead.pid}", f".encoder.pt.tmp.{dead.pid}.pt", f"latest.pt.tmp.{live.pid}",
                 f"epoch_3.pt.tmp.{os.getpid()}", "epoch_3.pt", "notes.tmp.txt"]
        for n in names:
            (tmp_path / n).write_bytes(b"x")
        removed = remove_stale_temps(str(tmp_path))
        assert sorted(os.path.basename(p) for p in removed) == sorted(names[:2])
        assert sorted(os.listdir(tmp_path)) == sorted(names[2:])
    finally:
        live.kill()
        live.wait()


def test_sigterm_saves_and_exits_cleanly_and_a_second_run_is_locked_out(tmp_path, corpus, capsys):
    from badinput import assert_clean_error, run_entry
    from wesv.lock import exclusive_lock

    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    exp = tmp_path / "exp"
    # Like Slurm preemption: SIGTERM to every process of the job, data loader workers included.
    args = ["--config", str(conf), "--exp-dir", str(exp)]
    proc = subprocess.Popen([sys.executable, "-m", "wesv.bin.train", *args, "--trainer.epochs", "1000",
                             "--data.num_workers", "1"], stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = exp / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.2)
    # A second training into the same exp dir (a rerun of the recipe stage) is refused at once, naming the pid.
    t0 = time.time()
    second = run_entry("train", args + ["--resume"], capsys)
    assert_clean_error(second, f"{exp}/.lock: locked by pid {proc.pid} on", f"(training into {exp})")
    assert time.time() - t0 < 10 and proc.poll() is None  # the first run goes on
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Resume with: python -m wesv.bin.train" in err and "--resume" in err
    ckpt = load_checkpoint(str(exp / "checkpoints" / "latest.pt"))
    assert ckpt["global_step"] >= 3 and not ckpt["finished"]
    assert ckpt["global_step"] == ckpt["epoch"] * 6 + ckpt["batch_in_epoch"]
    with exclusive_lock(str(exp / ".lock"), "check"):  # the lock ended with the first run
        pass


def test_nan_loss_stops_naming_step_and_checkpoint(tmp_path, corpus, monkeypatch):
    real = Classifier.forward
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        loss, logs = real(self, batch)
        return (loss * float("nan") if calls["n"] == 8 else loss), logs

    monkeypatch.setattr(Classifier, "forward", poisoned)
    exp = str(tmp_path / "exp")
    with pytest.raises(WesvError, match=r"non-finite loss \(nan\) at epoch 2, batch 2, step 8; last good "
                                        r"checkpoint: .*checkpoints/latest\.pt"):
        Trainer(config(tmp_path, corpus), exp).fit()
    assert load_checkpoint(os.path.join(exp, "checkpoints", "latest.pt"))["epoch"] == 1
    # With nan_policy skip the step is dropped and training goes on.
    calls["n"] = 0
    exp2 = str(tmp_path / "skip")
    assert Trainer(config(tmp_path, corpus, ["--trainer.nan_policy", "skip"]), exp2).fit() == 0
    assert np.isfinite(list(step_losses(exp2).values())[-1])


def test_data_sample_rate_must_match_the_encoder_front_end(tmp_path, corpus):
    cfg = config(tmp_path, corpus, ["--data.sample_rate", "8000"])
    with pytest.raises(WesvError, match="data.sample_rate is 8000 Hz but encoder ecapa_tdnn_small's front-end takes "
                                        "16000 Hz"):
        Trainer(cfg, str(tmp_path / "x")).fit()


def test_epoch_sums_of_a_mid_epoch_checkpoint_survive_a_change_of_world_size():
    from wesv.distributed import DistEnv
    from wesv.trainer.trainer import EpochStats

    a, b = EpochStats(), EpochStats()
    a.add(1.5, {"acc": torch.tensor(0.25)})
    b.add(2.5, {"acc": 0.5})
    b.add(0.5, {"acc": 0.75})
    states = [a.state(), b.state()]
    same = EpochStats.resumed(states, DistEnv(rank=1, world_size=2, local_rank=1))
    assert (same.loss_sum, same.steps, same.sums) == (3.0, 2, {"acc": 1.25})
    one = EpochStats.resumed(states, DistEnv(rank=0, world_size=1, local_rank=0))  # all of it on rank 0
    assert (one.loss_sum, one.steps, one.sums) == (4.5, 3, {"acc": 1.5})
    assert EpochStats.resumed(states, DistEnv(rank=1, world_size=3, local_rank=1)).steps == 0
    assert EpochStats.resumed(None, DistEnv(rank=0, world_size=1, local_rank=0)).steps == 0


# ---- gradient clipping ------------------------------------------------------------------------------------
def _params_with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    return params


def test_clip_global_scales_all_gradients_together():
    from wesv.trainer.optim import clip_gradients
    big, small = torch.tensor([30.0, 40.0]), torch.tensor([0.3, 0.4])  # norms 50 and 0.5
    params = _params_with_grads(big, small)
    norm = clip_gradients(params, 3.0, "global")
    assert float(norm) == pytest.approx(float(torch.cat([big, small]).norm()))
    joint = torch.cat([p.grad for p in params]).norm()
    assert float(joint) == pytest.approx(3.0, rel=1e-4)
    assert float(params[1].grad.norm()) < 0.05  # the small gradient shrank with the big one


def test_clip_per_tensor_clips_each_tensor_alone():
    from wesv.trainer.optim import clip_gradients
    big, small = torch.tensor([30.0, 40.0]), torch.tensor([0.3, 0.4])
    params = _params_with_grads(big, small)
    norm = clip_gradients(params, 3.0, "per_tensor")
    assert float(norm) == pytest.approx(float(torch.cat([big, small]).norm()))
    assert float(params[0].grad.norm()) == pytest.approx(3.0, rel=1e-4)
    assert torch.allclose(params[1].grad, small)  # under the limit: untouched
    assert torch.allclose(params[0].grad / params[0].grad.norm(), big / big.norm())  # direction kept
    with pytest.raises(WesvError, match="optim.clip_mode"):
        clip_gradients(params, 3.0, "layerwise")


@pytest.mark.parametrize("mode", ["global", "per_tensor"])
def test_trainer_clips_with_the_configured_mode(tmp_path, corpus, monkeypatch, mode):
    import wesv.trainer.trainer as trainer_mod
    seen = []
    real = trainer_mod.clip_gradients

    def spy(params, max_norm, clip_mode):
        seen.append((max_norm, clip_mode))
        return real(params, max_norm, clip_mode)

    monkeypatch.setattr(trainer_mod, "clip_gradients", spy)
    cfg = config(tmp_path, corpus, ["--optim.grad_clip=3.0", f"--optim.clip_mode={mode}", "--trainer.epochs=1"])
    assert cfg.optim.clip_mode == mode
    assert Trainer(cfg, str(tmp_path / "exp")).fit() == 0
    assert seen and all(s == (3.0, mode) for s in seen)
    assert all("grad_norm" in r for r in read_metrics(str(tmp_path / "exp")) if r["kind"] == "epoch")
