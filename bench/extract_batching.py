"""Extraction throughput of padded, length-sorted batches: utterances/s at batch 1 vs batch 32, same process.

Random-noise utterances of uniformly drawn lengths (1–20 s by default) are written as wav files and embedded by
``wesv.extract.embed.embed_utterances`` (the path of ``python -m wesv.bin.extract``: read, sort by length, pad,
mask, encode), once per batch size, after a warm-up. One line per (model, batch size), then the ratios and the
smallest cosine between the batch-1 and the batched embeddings (the padding masks make them equal). Rates are given
per wall second and per second of this process's CPU time: on a shared box the second is the steadier one.

    python bench/extract_batching.py                          # CPU, 1 thread, ecapa_tdnn_small and ecapa_tdnn
    python bench/extract_batching.py --max-batch-seconds 20,40 # also other caps on padded audio per batch
    python bench/extract_batching.py --device cuda --num-utts 200 --max-batch-seconds ""
"""
import argparse
import os
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from wesv.extract.embed import embed_utterances, resolve_device
from wesv.extract.segments import plan_batches, plan_segments
from wesv.models import build_encoder


def make_utterances(root: str, num: int, low: float, high: float, seed: int = 0) -> dict[str, str]:
    """``num`` noise wav files of lengths uniform in [low, high] s at 16 kHz; returns their wav.scp mapping."""
    rng = np.random.default_rng(seed)
    wav_scp = {}
    for i in range(num):
        n = int(rng.uniform(low, high) * 16000)
        path = os.path.join(root, f"u{i:04d}.wav")
        sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
        wav_scp[f"u{i:04d}"] = path
    return wav_scp


def run(encoder: torch.nn.Module, wav_scp: dict[str, str], batch_size: int, device: torch.device,
        max_samples: int | None = None) -> tuple[float, float, dict[str, np.ndarray]]:
    """Wall and process CPU time of embedding every utterance at ``batch_size``, and the embeddings."""
    def on_bad(utt: str, reason: str) -> None:
        raise RuntimeError(f"{utt}: {reason}")

    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = dict(embed_utterances(encoder, wav_scp, on_bad, device=device, batch_size=batch_size,
                                max_batch_samples=max_samples, progress=False))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0, out


def padding_overhead(wav_scp: dict[str, str], batch_size: int, max_samples: int | None = None) -> float:
    """Padded samples the encoder computes on, as a fraction of the real samples."""
    lengths = {u: sf.info(p).frames for u, p in wav_scp.items()}
    batches = plan_batches(plan_segments(lengths), batch_size, max_samples)
    computed = sum(len(b) * max(s.length for s in b) for b in batches)
    return computed / sum(lengths.values()) - 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="ecapa_tdnn_small,ecapa_tdnn", help="registered encoder names")
    p.add_argument("--num-utts", type=int, default=64)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--batch-sizes", default="1,32", help="the first is the reference of the ratios")
    p.add_argument("--max-batch-seconds", default="20",
                   help="also run the largest batch size with these caps on padded audio per batch (default 20: "
                        "extraction's CPU default; '' for none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    cases = [(b, None) for b in sizes] + [(sizes[-1], float(c)) for c in args.max_batch_seconds.split(",") if c]
    with tempfile.TemporaryDirectory() as root:
        wav_scp = make_utterances(root, args.num_utts, args.min_seconds, args.max_seconds)
        audio = sum(sf.info(p).frames for p in wav_scp.values()) / 16000
        print(f"# {args.num_utts} utterances, {args.min_seconds:g}-{args.max_seconds:g} s ({audio:.0f} s of audio); "
              f"device={device} threads={args.threads} torch {torch.__version__}")
        names = {case: f"batch={case[0]:3d}" + (f" cap={case[1]:g}s" if case[1] else "") for case in cases}
        for b, cap in cases[1:]:
            extra = padding_overhead(wav_scp, b, int(cap * 16000) if cap else None)
            print(f"# {names[b, cap]}: padding adds {100 * extra:.1f} % samples (sorted by length)")
        for name in args.models.split(","):
            torch.manual_seed(0)
            encoder = build_encoder(name).eval().to(device)
            params = sum(q.numel() for q in encoder.parameters()) / 1e6
            warm = dict(list(wav_scp.items())[:4])
            for b in sizes:
                run(encoder, warm, b, device)  # warm-up: allocator, kernels
            rates, cpu_rates, embs = {}, {}, {}
            for b, cap in cases:
                seconds, cpu, embs[b, cap] = run(encoder, wav_scp, b, device, int(cap * 16000) if cap else None)
                rates[b, cap], cpu_rates[b, cap] = len(embs[b, cap]) / seconds, len(embs[b, cap]) / cpu
                print(f"model={name:16s} ({params:.2f} M) {names[b, cap]:18s} {rates[b, cap]:7.2f} utt/s wall "
                      f"({seconds:5.1f} s), {cpu_rates[b, cap]:7.2f} utt/s of process CPU time ({cpu:5.1f} s)")
            ref = cases[0]
            for case in cases[1:]:
                cos = min(float(np.dot(embs[case][u], embs[ref][u]) /
                                (np.linalg.norm(embs[case][u]) * np.linalg.norm(embs[ref][u]))) for u in wav_scp)
                print(f"model={name:16s} ratio {names[case]} / {names[ref]} = {rates[case] / rates[ref]:.2f} wall, "
                      f"{cpu_rates[case] / cpu_rates[ref]:.2f} CPU time; min cosine: {cos:.7f}")


if __name__ == "__main__":
    main()
