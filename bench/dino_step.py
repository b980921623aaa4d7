"""DINO's projection head and whole training step: wesv's vs a reference last layer from torch's weight norm.

The reference is what DINO and WeSpeaker build: ``weight_norm(nn.Linear(256, K, bias=False))`` with ``g`` fixed
to 1 (here ``torch.nn.utils.parametrizations.weight_norm``), on the same MLP weights. Both are timed in the same
process, interleaved round by round (a shared machine drifts), and the ratios reference / wesv are printed
(above 1: wesv is faster). Also times the per-step teacher statistics. Defaults: ECAPA-TDNN c512 (embedding 192),
head 2048/256/65,536 with BN, views 2 × 3 s + 4 × 2 s, batch 8, SGD, clip 3, EMA, 2 threads.

    python bench/dino_step.py [--threads 2] [--rounds 5] [--skip-step] [--device cpu]
"""
import argparse
import copy
import statistics
import time

import torch
from torch import nn

from wesv.methods.dino import Dino, DinoConfig, teacher_stats
from wesv.models import build_encoder
from wesv.models.ecapa_tdnn import EcapaTdnnConfig
from wesv.nn.heads import DinoHead
from wesv.trainer.method import DataInfo


class ReferenceLastLayer(nn.Module):
    """``weight_norm(nn.Linear(in, K, bias=False))`` with the gain frozen at 1, holding ``weight``'s directions."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.layer = nn.utils.parametrizations.weight_norm(linear)
        params = self.layer.parametrizations.weight
        params.original1.data.copy_(weight.detach())
        params.original0.data.fill_(1.0)
        params.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.float())


def reference_head(head: DinoHead) -> DinoHead:
    """A copy of ``head`` (same MLP weights) whose last layer is the reference weight-normalised linear layer."""
    ref = copy.deepcopy(head)
    ref.last_layer = ReferenceLastLayer(head.last_layer.weight)
    return ref


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def head_step(head: nn.Module, x: torch.Tensor, r: torch.Tensor) -> None:
    """Forward and backward of the head on ``x`` (the encoder's embeddings of every view)."""
    head.zero_grad(set_to_none=True)
    xg = x.clone().requires_grad_(True)
    (head(xg) * r).sum().backward()


def make_method(cfg: DinoConfig, device: torch.device, reference: bool) -> tuple[Dino, torch.optim.Optimizer]:
    """The DINO method (past epoch 0: the last layer trains) and its SGD optimiser; optionally the reference head."""
    torch.manual_seed(0)
    method = Dino(cfg, build_encoder("ecapa_tdnn", EcapaTdnnConfig()), DataInfo(num_samples=8))
    if reference:
        method.head = reference_head(method.head)
        method.teacher_head = reference_head(method.teacher_head)
        for p in method.teacher_head.parameters():
            p.requires_grad_(False)
    method.to(device).train()
    method.on_epoch_start(1, 2)
    params = [p for p in method.parameters() if p.requires_grad]
    return method, torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-5)


def dino_step(method: Dino, opt: torch.optim.Optimizer, batch: dict, step: int) -> None:
    """One training step as the trainer takes it: forward, backward, clip 3, SGD, EMA."""
    loss, _ = method(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 3.0)
    opt.step()
    method.after_optimizer_step(step, 10_000)


def report(name: str, wesv_s: list[float], ref_s: list[float]) -> None:
    a, b = statistics.median(wesv_s), statistics.median(ref_s)
    print(f"{name}: wesv {a:.3f} s (min {min(wesv_s):.3f}), reference {b:.3f} s (min {min(ref_s):.3f}), "
          f"ratio reference/wesv {b / a:.2f} (median), {min(ref_s) / min(wesv_s):.2f} (min)")


def main() -> None:
    """Parse options, time head and step for both last layers, print seconds and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds of the head (after a warm-up)")
    p.add_argument("--step-rounds", type=int, default=3, help="interleaved timed rounds of the whole DINO step")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out-dim", type=int, default=65536)
    p.add_argument("--skip-step", action="store_true", help="time the head only")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cfg = DinoConfig(num_global=2, global_seconds=3.0, num_local=4, local_seconds=2.0, out_dim=a.out_dim)
    views = cfg.num_global + cfg.num_local
    print(f"torch {torch.__version__}, device {device}, threads {a.threads}; ECAPA-TDNN c512 → 192, head "
          f"{cfg.hidden_dim}/{cfg.bottleneck_dim}/{cfg.out_dim}, views {cfg.num_global} × {cfg.global_seconds} s + "
          f"{cfg.num_local} × {cfg.local_seconds} s, batch {a.batch_size}")

    torch.manual_seed(0)
    head = DinoHead(192, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim).to(device).train()
    ref = reference_head(head).to(device).train()
    x = torch.randn(views * a.batch_size, 192, device=device)
    r = torch.randn(views * a.batch_size, cfg.out_dim, device=device)
    with torch.no_grad():
        diff = (head(x) - ref(x)).abs().max().item()
    times: dict[str, list[float]] = {"wesv": [], "ref": []}
    for i in range(a.rounds + 1):
        for name, h in (("wesv", head), ("ref", ref)):
            s = timed(lambda: head_step(h, x, r), device)
            if i:  # round 0 warms up
                times[name].append(s)
    report(f"head forward+backward on {len(x)} views (max |Δ output| {diff:.1e})", times["wesv"], times["ref"])
    probs = torch.softmax(torch.randn(cfg.num_global * a.batch_size, cfg.out_dim, device=device) / 0.04, -1)
    stats_s = [timed(lambda: teacher_stats(probs), device) for _ in range(a.rounds + 1)][1:]
    print(f"teacher statistics per step ({len(probs)} × {cfg.out_dim}): {statistics.median(stats_s) * 1e3:.1f} ms")
    if a.skip_step:
        return

    g = torch.Generator().manual_seed(0)
    lengths = [int(cfg.global_seconds * 16000)] * cfg.num_global + [int(cfg.local_seconds * 16000)] * cfg.num_local
    batch = {"views": [0.1 * torch.randn(a.batch_size, n, generator=g).to(device) for n in lengths],
             "index": torch.arange(a.batch_size, device=device)}
    runs = {name: make_method(cfg, device, reference=name == "ref") for name in ("wesv", "ref")}
    times = {"wesv": [], "ref": []}
    for i in range(a.step_rounds + 1):
        for name, (method, opt) in runs.items():
            s = timed(lambda: dino_step(method, opt, batch, i), device)
            if i:
                times[name].append(s)
    report("whole DINO step (forward, backward, clip, SGD, EMA)", times["wesv"], times["ref"])


if __name__ == "__main__":
    main()
