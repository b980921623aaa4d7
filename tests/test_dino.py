"""DINO: loss against explicit loops, centring, schedules, last-layer freeze, no teacher gradients, collapse checks."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wesv.errors import WesvError
from wesv.methods.dino import Dino, DinoCollapseError, DinoConfig, check_collapse, dino_loss, teacher_stats
from wesv.nn.schedules import cosine_schedule, linear_warmup
from wesv.trainer.method import METHODS, DataInfo

torch.set_num_threads(1)


class TinyEncoder(nn.Module):
    """(B, T) waveform → (B, embed_dim): strided conv, BN, mean pool, linear; small enough for unit tests."""

    def __init__(self, embed_dim: int = 8):
        super().__init__()
        self.embed_dim = embed_dim
        self.conv = nn.Conv1d(1, 6, kernel_size=40, stride=20)
        self.bn = nn.BatchNorm1d(6)
        self.out = nn.Linear(6, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.conv(x.unsqueeze(1)))).mean(-1))


def make_dino(**kw) -> Dino:
    torch.manual_seed(0)
    cfg = DinoConfig(num_global=2, num_local=2, out_dim=16, hidden_dim=12, bottleneck_dim=6, **kw)
    return Dino(cfg, TinyEncoder(), DataInfo(num_samples=10))


def batch(b: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(b, 400, generator=g) for _ in range(2)] + [torch.randn(b, 200, generator=g) for _ in range(2)]
    return {"views": views, "index": torch.arange(b), "utt": [f"u{i}" for i in range(b)]}


def test_registered():
    assert METHODS.get("dino").factory is Dino and METHODS.get("dino").config is DinoConfig


def test_loss_equals_explicit_loops_over_view_pairs():
    torch.manual_seed(1)
    b, k, n_views, n_glob = 3, 5, 4, 2
    student = [torch.randn(b, k) for _ in range(n_views)]
    teacher = [torch.randn(b, k) for _ in range(n_glob)]
    center = torch.randn(1, k)
    ts, tt = 0.1, 0.05
    loss, probs = dino_loss(student, teacher, center, ts, tt)
    total, pairs = 0.0, 0
    for i in range(n_glob):
        for v in range(n_views):
            if v == i:
                continue
            for n in range(b):
                pt = [math.exp((teacher[i][n, j] - center[0, j]) / tt) for j in range(k)]
                ps = [math.exp(student[v][n, j] / ts) for j in range(k)]
                total += -sum(pt[j] / sum(pt) * math.log(ps[j] / sum(ps)) for j in range(k)) / b
            pairs += 1
    assert pairs == 6
    assert loss.item() == pytest.approx(total / pairs, rel=1e-5)
    assert probs.shape == (n_glob * b, k) and torch.allclose(probs.sum(-1), torch.ones(n_glob * b))


def test_schedules_follow_their_formulas():
    assert cosine_schedule(0.996, 1.0, 0, 100) == pytest.approx(0.996)
    assert cosine_schedule(0.996, 1.0, 50, 100) == pytest.approx(0.998)
    assert cosine_schedule(0.996, 1.0, 25, 100) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_schedule(0.996, 1.0, 100, 100) == 1.0 and cosine_schedule(0.996, 1.0, 200, 100) == 1.0
    assert linear_warmup(0.04, 0.07, 0, 10) == pytest.approx(0.04)
    assert linear_warmup(0.04, 0.07, 5, 10) == pytest.approx(0.055)
    assert linear_warmup(0.04, 0.07, 10, 10) == 0.07 and linear_warmup(0.04, 0.07, 3, 0) == 0.07
    m = make_dino(teacher_temp_start=0.04, teacher_temp=0.07, teacher_temp_warmup_epochs=3)
    temps = []
    for epoch in range(5):
        m.on_epoch_start(epoch, 5)
        temps.append(m.teacher_temp_now)
    assert temps == pytest.approx([0.04, 0.05, 0.06, 0.07, 0.07])


def test_center_update_and_teacher_temperature_in_the_loss():
    m = make_dino(center_momentum=0.9)
    m.on_epoch_start(0, 1)
    m.center.fill_(0.5)
    x = batch()
    with torch.no_grad():
        t = m.teacher_head(m.teacher_encoder(torch.cat(x["views"][:2])))
    loss, logs = m(x)
    expected = 0.9 * 0.5 + 0.1 * t.mean(0, keepdim=True)
    assert torch.allclose(m.center, expected, atol=1e-6)
    assert logs["teacher_temp"] == pytest.approx(0.04)
    assert "center" in m.state_dict()


def test_ema_teacher_follows_the_cosine_momentum():
    m = make_dino(ema_base=0.9, ema_final=1.0)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.teacher_encoder.parameters()]
    student = [p.clone() for p in m.encoder.parameters()]
    m.after_optimizer_step(step=25, total_steps=100)
    mom = 1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2
    for t, t0, s in zip(m.teacher_encoder.parameters(), before, student):
        assert torch.allclose(t, mom * t0 + (1 - mom) * s, atol=1e-6)
    assert m.export_encoder() is m.teacher_encoder


def test_teacher_receives_no_gradient():
    m = make_dino()
    m.on_epoch_start(0, 1)
    loss, _ = m(batch())
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in m.teacher_encoder.parameters())
    assert all(p.grad is None for p in m.teacher_head.parameters())
    assert m.encoder.out.weight.grad is not None and m.encoder.out.weight.grad.abs().sum() > 0
    assert not any(p is q for p in m.param_groups()[0]["params"] for q in m.teacher_encoder.parameters())


def test_normalized_linear_matches_f_normalize_and_torch_weight_norm():
    from wesv.nn.heads import NormalizedLinear, normalized_linear

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(7, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(normalized_linear, (x, w))
    with torch.no_grad():
        w[3] = 0.0  # a zero row: what F.normalize's eps clamp gives (0 output), also in the gradients
    r = torch.randn(5, 7, dtype=torch.float64, generator=g)
    grads = [torch.autograd.grad((f(x, w) * r).sum(), (x, w)) for f in
             (normalized_linear, lambda a, b: F.linear(a, F.normalize(b, dim=1)))]
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(*grads))
    # The reference DINO last layer: torch's weight norm with g fixed to 1, same values and gradients.
    layer = NormalizedLinear(6, 7)
    ref = torch.nn.utils.parametrizations.weight_norm(nn.Linear(6, 7, bias=False))
    ref.parametrizations.weight.original0.data.fill_(1.0)
    ref.parametrizations.weight.original1.data.copy_(layer.weight.data)
    xf = x.detach().float()
    ya, yb = layer(xf), ref(xf)
    (ya * r.float()).sum().backward()
    (yb * r.float()).sum().backward()
    assert torch.allclose(ya, yb, atol=1e-6)
    assert torch.allclose(layer.weight.grad, ref.parametrizations.weight.original1.grad, atol=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_last_layer_frozen_in_epoch_0_moves_in_epoch_1(weight_decay):
    m = make_dino(freeze_last_layer_epochs=1)
    opt = torch.optim.SGD(m.param_groups()[0]["params"], lr=0.5, momentum=0.9, weight_decay=weight_decay)
    last = m.head.last_layer.weight
    for epoch in range(2):
        m.on_epoch_start(epoch, 2)
        start, start_dir = last.detach().clone(), F.normalize(last.detach(), dim=1)
        mlp_start = m.head.mlp[0].weight.detach().clone()
        for step in range(3):
            loss, _ = m(batch(seed=step))
            opt.zero_grad()
            loss.backward()
            opt.step()
        direction = F.normalize(last.detach(), dim=1)
        assert not torch.equal(m.head.mlp[0].weight, mlp_start)  # the rest of the head trains in both epochs
        if epoch == 0:
            assert torch.allclose(direction, start_dir, atol=1e-6)  # the prototypes, as a function, are frozen
            if weight_decay == 0:
                assert torch.equal(last.detach(), start)
        else:
            assert (direction - start_dir).abs().max() > 1e-4


def test_collapse_checks():
    k = 32
    healthy = F.softmax(torch.randn(64, k) * 5, dim=-1)  # sharp per sample, spread over prototypes
    check_collapse(teacher_stats(healthy), k, 0.02)
    one = torch.zeros(64, k)
    one[:, 3] = 1.0
    with pytest.raises(DinoCollapseError, match="one prototype"):
        check_collapse(teacher_stats(one), k, 0.02)
    uniform = torch.full((64, k), 1.0 / k)
    stats = teacher_stats(uniform)
    assert float(stats["teacher_entropy"]) == pytest.approx(math.log(k), rel=1e-5)
    assert float(stats["teacher_kl_uniform"]) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(DinoCollapseError, match="uniform"):
        check_collapse(stats, k, 0.02)
    assert float(teacher_stats(one)["teacher_kl_uniform"]) == pytest.approx(math.log(k), rel=1e-5)


def test_collapse_stops_training_only_after_the_grace_period():
    m = make_dino(collapse_grace_epochs=1)
    with torch.no_grad():  # a teacher that maps everything to prototype 0
        m.teacher_head.last_layer.weight.zero_()
        m.teacher_head.last_layer.weight[0] = 1.0
        m.teacher_head.mlp[-1].weight.zero_()
        m.teacher_head.mlp[-1].bias.fill_(1.0)
    for epoch in range(2):
        m.on_epoch_start(epoch, 2)
        m(batch())
        if epoch == 0:
            stats = m.on_epoch_end(epoch)
            assert stats["teacher_top1"] == 1.0 and isinstance(stats["teacher_top1"], float)
        else:
            with pytest.raises(DinoCollapseError):
                m.on_epoch_end(epoch)
    healthy = make_dino(collapse_grace_epochs=0)
    healthy.on_epoch_start(0, 1)
    healthy(batch())
    assert set(healthy.on_epoch_end(0)) == {"teacher_entropy", "teacher_kl_uniform", "teacher_top1"}


# ---- end to end through the trainer: one process, and two processes (torchrun, gloo) ---------------------------

def ssl_config(train_dir: str, method_type: str, method_body: str) -> str:
    """YAML of a tiny SSL run on CPU (2 epochs × 2 steps)."""
    from trainer_helpers import TINY_ENCODER

    return (f"type: {method_type}\nseed: 1\ndata:\n  train: {train_dir}\n  batch_size: 4\n  num_workers: 0\n"
            f"augment: null\nencoder:\n  {TINY_ENCODER}\nmethod:\n  {method_body}\n"
            "optim:\n  name: sgd\n  lr: 0.05\n  momentum: 0.9\n  weight_decay: 0.00005\n  grad_clip: 3.0\n"
            "  warmup_epochs: 0.5\n  schedule: cosine\n  final_lr: 0.001\n"
            "trainer:\n  epochs: 2\n  max_steps_per_epoch: 2\n  device: cpu\n  log_every: 1\n  progress: false\n")


def run_training(tmp_path, text: str, nproc: int) -> tuple[str, list[dict]]:
    """Train the config in ``nproc`` processes; return the exp dir and its epoch records."""
    import json
    import os
    import subprocess
    import sys

    from trainer_helpers import make_tiny_corpus

    train = make_tiny_corpus(str(tmp_path))
    os.remove(os.path.join(train, "utt2spk"))  # SSL needs no labels: a data dir without them must train
    conf, exp = tmp_path / "conf.yaml", tmp_path / f"exp{nproc}"
    conf.write_text(text.replace("TRAIN_DIR", train))
    cmd = ["-m", "wesv.bin.train", "--config", str(conf), "--exp-dir", str(exp)]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] + cmd
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable] + cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{nproc} process(es)" in proc.stderr
    assert os.path.isfile(exp / "encoder.pt")
    with open(exp / "metrics.jsonl") as f:
        records = [r for r in map(json.loads, f) if r["kind"] == "epoch"]
    return str(exp), records


DINO_TINY = ("num_global: 2\n  global_seconds: 0.3\n  num_local: 2\n  local_seconds: 0.15\n  out_dim: 32\n"
             "  hidden_dim: 16\n  bottleneck_dim: 8\n  teacher_temp_warmup_epochs: 1\n  collapse_grace_epochs: 5")


@pytest.mark.parametrize("nproc", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_dino_trains_through_the_trainer(tmp_path, nproc):
    exp, records = run_training(tmp_path, ssl_config("TRAIN_DIR", "dino", DINO_TINY), nproc)
    assert len(records) == 2
    for r in records:
        assert math.isfinite(r["loss"]) and 0 < r["teacher_entropy"] <= math.log(32) + 1e-4
        assert "teacher_kl_uniform" in r and "teacher_top1" in r
    assert records[1]["teacher_temp"] == pytest.approx(0.07)
    ckpt = torch.load(f"{exp}/checkpoints/latest.pt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4 and torch.isfinite(ckpt["method"]["center"]).all()
    assert ckpt["method"]["center"].abs().sum() > 0


def test_auto_prototypes_scale_with_the_training_set():
    from wesv.methods.dino import auto_prototypes, resolve_prototypes
    assert auto_prototypes(1_092_009) == 65536  # VoxCeleb2 dev: the published K back
    assert auto_prototypes(1200) == 256 < 1200  # the mini corpus: fewer prototypes than utterances
    assert auto_prototypes(10) == 256 and auto_prototypes(10 ** 9) == 65536
    assert auto_prototypes(16 * 1024) == 1024 and auto_prototypes(16 * 1400) == 1024  # a power of two
    assert resolve_prototypes(4096, 1200) == 4096  # an explicit int wins
    with pytest.raises(WesvError, match="method.out_dim"):
        resolve_prototypes("many", 1200)


def test_auto_out_dim_builds_the_head_and_centre_to_k():
    torch.manual_seed(0)
    cfg = DinoConfig(num_global=2, num_local=2, out_dim="auto", hidden_dim=12, bottleneck_dim=6)
    m = Dino(cfg, TinyEncoder(), DataInfo(num_samples=1200))
    assert m.num_prototypes == 256 and m.center.shape == (1, 256)
    assert m.head.last_layer.weight.shape[0] == 256


def test_out_dim_auto_or_int_from_a_config_dict():
    from wesv.config.typed import from_dict
    assert from_dict(DinoConfig, {"out_dim": "auto"}).out_dim == "auto"
    assert from_dict(DinoConfig, {"out_dim": 512}).out_dim == 512
