"""Trainer overhead: training samples/s of wesv's step path vs a bare ``for`` loop on the same model and optimiser.

Both paths run the classifier method (encoder + AAM-softmax) forward + backward + SGD step on the same in-memory
2 s crops in the same process, interleaved; the ratio trainer/bare should be >= 0.95 (the trainer costs nothing).

    python bench/train_step.py                              # CPU, small batch, ~2 minutes
    python bench/train_step.py --device cuda --amp --batch 128 --steps 30   # on a GPU
"""
import argparse
import os
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from wesv.config import load_config
from wesv.distributed import DistEnv
from wesv.trainer.stop import StopRequest
from wesv.trainer.trainer import EpochStats, Trainer, to_device

ENCODERS = {
    "ecapa512": "name: ecapa_tdnn\n  channels: 512",
    "resnet34": "name: resnet34",
}


def make_trainer(root: str, encoder: str, args: argparse.Namespace) -> Trainer:
    """A Trainer set up like a real run (data dir of 2 s files, classifier with AAM over --classes speakers)."""
    data = os.path.join(root, "train")
    os.makedirs(data, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(os.path.join(data, "wav.scp"), "w") as scp, open(os.path.join(data, "utt2spk"), "w") as u2s:
        for i in range(max(args.classes, args.batch)):
            path = os.path.join(root, f"u{i}.wav")
            sf.write(path, (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
            scp.write(f"u{i} {path}\n")
            u2s.write(f"u{i} s{i % args.classes}\n")
    conf = os.path.join(root, "conf.yaml")
    with open(conf, "w") as f:
        f.write(f"type: classifier\ndata:\n  train: {data}\n  crop_seconds: 2.0\n  batch_size: {args.batch}\n"
                f"  num_workers: 0\nencoder:\n  {ENCODERS[encoder]}\noptim:\n  grad_clip: null\n"
                f"trainer:\n  device: {args.device}\n  amp: {str(args.amp).lower()}\n  log_every: 50\n")
    trainer = Trainer(load_config(conf), os.path.join(root, "exp"))
    trainer.setup(DistEnv(), torch.device(args.device))
    trainer.steps_per_epoch = trainer.total_steps = 10**9
    return trainer


def batches(trainer: Trainer, n: int, batch: int, classes: int) -> list[dict]:
    """``n`` batches of random 2 s crops with labels, built before timing (neither path pays for data)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        out.append({"wave": 0.1 * torch.randn(batch, 32000, generator=g),
                    "label": torch.randint(0, classes, (batch,), generator=g), "index": torch.arange(batch),
                    "utt": [f"u{i}" for i in range(batch)]})
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_loop(trainer: Trainer, data: list[dict], amp: bool, device: str) -> float:
    """The loop one would write by hand: forward, backward, step, read the loss."""
    method, opt = trainer.method, trainer.optimizer
    method.train()
    sync(device)
    t0 = time.perf_counter()
    for batch in data:
        batch = to_device(batch, trainer.device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss, _ = method(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    sync(device)
    return time.perf_counter() - t0


def trainer_path(trainer: Trainer, data: list[dict], device: str) -> float:
    """The trainer's own step loop (NaN/stop checks, scaler, schedule, hooks, logs, tqdm to /dev/null)."""
    from tqdm import tqdm

    trainer.method.train()
    trainer.batch_in_epoch = 0
    with open(os.devnull, "w") as devnull:
        bar = tqdm(total=len(data), file=devnull)
        sync(device)
        t0 = time.perf_counter()
        trainer.run_steps(data, StopRequest(), EpochStats(), bar)
        sync(device)
        bar.close()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per path (best reported)")
    p.add_argument("--classes", type=int, default=64, help="speakers of the AAM head")
    p.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"device {args.device}, amp {args.amp}, batch {args.batch} × 2 s, {args.steps} steps × {args.rounds} "
          f"rounds, torch threads {torch.get_num_threads()}")
    for name in args.encoders:
        with tempfile.TemporaryDirectory() as root:
            trainer = make_trainer(root, name, args)
            data = batches(trainer, args.steps, args.batch, args.classes)
            bare_loop(trainer, data[:2], args.amp, args.device)  # warm-up (allocator, kernels, lazy imports)
            trainer_path(trainer, data[:2], args.device)
            bare, ours = [], []
            for _ in range(args.rounds):
                bare.append(bare_loop(trainer, data, args.amp, args.device))
                ours.append(trainer_path(trainer, data, args.device))
            n = args.steps * args.batch
            sb, so = n / min(bare), n / min(ours)  # best round: load from other processes only adds time
            params = sum(p.numel() for p in trainer.method.encoder.parameters()) / 1e6
            print(f"{name:9s} ({params:.1f} M params): bare loop {sb:8.2f} samples/s, trainer {so:8.2f} samples/s, "
                  f"ratio {so / sb:.3f}")


if __name__ == "__main__":
    main()
