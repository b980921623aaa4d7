"""Loader throughput: raw files (LabelledCropDataset, random access) vs tar shards (ShardDataset), utts/s.

python bench/loader_shards.py --data DIR [--workers 2] [--utts-per-shard 100] [--crop-seconds 2] [--epochs 2]
Writes the shards of DIR into a temp dir (FLAC, and WAV), then times whole epochs of each loader (batch 32), and
the trainer's own loader path (``wesv.trainer.loaders.build_loader``: classifier dataset, data.train vs
data.shards, persistent workers, set_epoch per epoch).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from torch.utils.data import DataLoader  # noqa: E402

from wesv.data.datadir import DataDir  # noqa: E402
from wesv.data.datasets import LabelledCropDataset  # noqa: E402
from wesv.data.shards import ShardDataset, write_shards  # noqa: E402


def epoch_rate(dataset, workers: int, epochs: int, **loader_kw) -> float:
    """Utterances per second over ``epochs`` full passes (first batch included: workers start every epoch)."""
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=dataset.collate_fn, **loader_kw)
        for batch in loader:
            n += len(batch["utt"])
    return n / (time.perf_counter() - start)


def trainer_rate(data_dir: str, shards: str | None, workers: int, epochs: int, crop_seconds: float) -> float:
    """Utterances per second through the trainer's loader (``build_loader``), batches as the trainer reads them."""
    import torch

    from wesv.config.train import config_from_dict
    from wesv.distributed import DistEnv
    from wesv.methods.classifier import Classifier
    from wesv.trainer.loaders import build_loader

    cfg = config_from_dict({"type": "classifier", "seed": 0, "encoder": {"name": "ecapa_tdnn_small"},
                            "data": {"train": data_dir, "shards": shards, "crop_seconds": crop_seconds,
                                     "batch_size": 32, "num_workers": workers, "drop_last": False}})
    dataset = Classifier.build_dataset(cfg.method, cfg.data, None, cfg.seed)
    handle, batches, steps = build_loader(cfg, dataset, DistEnv(), torch.device("cpu"))
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        handle.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        for _, batch in zip(range(steps), batches):
            n += len(batch["utt"])
    return n / (time.perf_counter() - start)


def main() -> None:
    """Print one line per loader."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--utts-per-shard", type=int, default=100)
    p.add_argument("--crop-seconds", type=float, default=2.0)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    data = DataDir.load(args.data)
    utt2spk = data.utt2spk or {u: "x" for u in data.wav_scp}
    crop = int(args.crop_seconds * 16000)
    raw = LabelledCropDataset(data.wav_scp, utt2spk, crop)
    rate_raw = epoch_rate(raw, args.workers, args.epochs, shuffle=True)
    print(f"raw files: {len(raw)} utts, {args.workers} workers: {rate_raw:8.1f} utts/s")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("flac", "wav"):
            out = os.path.join(tmp, fmt)
            t = time.perf_counter()
            write_shards(data.wav_scp, utt2spk, out, args.utts_per_shard, fmt=fmt)
            size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".tar"))
            ds = ShardDataset(os.path.join(out, "shards.list"), crop, buffer_size=256)
            rate = epoch_rate(ds, args.workers, args.epochs)
            print(f"shards {fmt}: {size / 2**20:.1f} MiB written in {time.perf_counter() - t:.1f} s, "
                  f"{args.workers} workers: {rate:8.1f} utts/s (x{rate / rate_raw:.2f} raw)")
            if data.utt2spk is not None:
                if fmt == "flac":
                    base = trainer_rate(args.data, None, args.workers, args.epochs, args.crop_seconds)
                    print(f"trainer loader, data.train: {args.workers} workers: {base:8.1f} utts/s")
                rate = trainer_rate(args.data, out, args.workers, args.epochs, args.crop_seconds)
                print(f"trainer loader, data.shards {fmt}: {args.workers} workers: {rate:8.1f} utts/s "
                      f"(x{rate / base:.2f} data.train)")


if __name__ == "__main__":
    main()
