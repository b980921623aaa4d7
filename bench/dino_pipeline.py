"""DINO training throughput with the data pipeline (loader workers, augmentation) vs the model on pre-made tensors.

Prints crops/s (one crop = one view of one utterance) of the loader alone, the model alone on a batch already in
memory, and loader + model, for each number of workers, with the ratio (loader + model) / model alone (1.0: the
loader keeps up with training; below: training waits for data).

    python bench/dino_pipeline.py --config egs/mini/conf/dino.yaml --data-root egs/mini \\
        [--device cuda] [--workers 0 1 2] [--batch-size 128]
"""
import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from wesv.config import load_config
from wesv.trainer.method import find_method
from wesv.trainer.optim import build_optimizer


def build(cfg, device: torch.device):
    """Dataset, method (on ``device``) and optimiser as the trainer builds them."""
    from wesv.models import build_encoder

    augmenter = None
    if cfg.augment is not None:
        from wesv.augment import Augmenter

        augmenter = Augmenter(cfg.augment)
    method_cls = find_method(cfg.type).factory
    dataset = method_cls.build_dataset(cfg.method, cfg.data, augmenter, cfg.seed)
    method = method_cls(cfg.method, build_encoder(cfg.encoder.name, cfg.encoder.config),
                        method_cls.data_info(cfg.method, dataset)).to(device)
    method.train()
    method.on_epoch_start(1, 2)  # past the frozen last layer: every part of the head trains
    return dataset, method, build_optimizer(method.param_groups(), cfg.optim)


def train_step(method, optimizer, batch: dict, step: int) -> None:
    """One optimiser step as the trainer takes it (forward, backward, step, EMA)."""
    loss, _ = method(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    method.after_optimizer_step(step, 10_000)


def to_device(batch: dict, device: torch.device) -> dict:
    out = dict(batch)
    out["views"] = [v.to(device, non_blocking=True) for v in batch["views"]]
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader(dataset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                      collate_fn=dataset.collate_fn, persistent_workers=False, pin_memory=False,
                      prefetch_factor=4 if workers else None, generator=torch.Generator().manual_seed(0))


def main() -> None:
    """Parse options, time the three set-ups, print crops/s and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="egs/mini/conf/dino.yaml")
    p.add_argument("--data-root", default="egs/mini", help="the config's relative paths are under this dir")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement (after 2 warm-up steps)")
    p.add_argument("--batch-size", type=int, help="override data.batch_size")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    overrides = [f"--data.batch_size={a.batch_size}"] if a.batch_size else []
    cfg = load_config(a.config, overrides)
    device = torch.device(a.device)
    os.chdir(a.data_root)
    dataset, method, optimizer = build(cfg, device)
    bsz = cfg.data.batch_size
    crops_per_batch = bsz * len(dataset.max_lengths)
    print(f"config {a.config}: encoder {cfg.encoder.name}, {len(dataset.max_lengths)} views, batch {bsz}, "
          f"K {cfg.method.out_dim}, augment {'on' if cfg.augment else 'off'}, device {device}, "
          f"torch threads {a.threads}")

    fixed = to_device(next(iter(loader(dataset, bsz, 0))), device)
    for step in range(2):
        train_step(method, optimizer, fixed, step)

    def model_alone() -> float:
        sync(device)
        t0 = time.perf_counter()
        for step in range(a.steps):
            train_step(method, optimizer, fixed, step)
        sync(device)
        return a.steps * crops_per_batch / (time.perf_counter() - t0)

    # The model-alone reference is re-measured next to each pipeline measurement: on a shared machine the load
    # drifts between measurements more than the effect being measured.
    for workers in a.workers:
        it = iter(loader(dataset, bsz, workers))
        next(it)  # workers started, first batch ready
        t0 = time.perf_counter()
        for _ in range(a.steps):
            next(it)
        load_rate = a.steps * crops_per_batch / (time.perf_counter() - t0)
        model_rate = model_alone()
        it = iter(loader(dataset, bsz, workers))
        for step in range(2):
            train_step(method, optimizer, to_device(next(it), device), step)
        sync(device)
        t0 = time.perf_counter()
        for step in range(a.steps):
            train_step(method, optimizer, to_device(next(it), device), step)
        sync(device)
        rate = a.steps * crops_per_batch / (time.perf_counter() - t0)
        print(f"workers {workers}: loader alone {load_rate:8.1f} crops/s | model alone {model_rate:8.1f} crops/s | "
              f"loader + model {rate:8.1f} crops/s | ratio {rate / model_rate:.2f}")

if __name__ == "__main__":
    main()
