"""Frames per second of wesv's batched torch fbank against kaldi-native-fbank called per utterance, same audio.

    python bench/fbank.py [--device cpu|cuda] [--threads 1,2] [--repeats 3]

One line per (threads, batch, crop length): both rates and their ratio (wesv / kaldi-native-fbank). Both use 80 bins,
25/10 ms povey frames, dither 0; wesv runs in eval mode with CMN off, kaldi-native-fbank returns its frames as a
numpy matrix (what a caller needs). Timings are the best of ``--repeats`` runs.
"""
import argparse
import time

import kaldi_native_fbank as knf
import numpy as np
import torch

from wesv.features.fbank import Fbank, FbankConfig

CASES = [(128, 2.0), (1, 2.0), (128, 6.0), (1, 6.0)]


def knf_seconds(waves: np.ndarray, cfg: FbankConfig, repeats: int) -> float:
    """Best wall time to compute every row of ``waves`` with kaldi-native-fbank, one utterance at a time."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = cfg.num_mel_bins
    scaled = waves * 32768.0
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for row in scaled:
            fb = knf.OnlineFbank(opts)
            fb.accept_waveform(cfg.sample_rate, row)
            fb.input_finished()
            np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
        best = min(best, time.perf_counter() - start)
    return best


def wesv_seconds(waves: np.ndarray, cfg: FbankConfig, device: str, repeats: int) -> float:
    """Best wall time for one batched call of wesv's Fbank (input already on the device)."""
    fbank = Fbank(cfg).eval().to(device)
    x = torch.from_numpy(waves).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = float("inf")
    with torch.no_grad():
        fbank(x)  # warm-up: allocator, FFT plans, CUDA kernels
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            fbank(x)
            sync()
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Run every case and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device for wesv (cpu, cuda, cuda:1)")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = FbankConfig(dither=0.0, cmn=False)
    rng = np.random.default_rng(0)
    fbank = Fbank(cfg)
    print(f"# wesv Fbank on {args.device} vs kaldi-native-fbank {knf.__version__ if hasattr(knf, '__version__') else ''}"
          f" per utterance (CPU, single thread); torch {torch.__version__}")
    knf_cache: dict[tuple[int, float], float] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for batch, seconds in CASES:
            waves = (0.1 * rng.standard_normal((batch, int(seconds * cfg.sample_rate)))).astype(np.float32)
            frames = batch * fbank.num_frames(waves.shape[1])
            if (batch, seconds) not in knf_cache:  # kaldi-native-fbank is single-threaded: time it once per case
                knf_cache[batch, seconds] = knf_seconds(waves, cfg, args.repeats)
            ours = frames / wesv_seconds(waves, cfg, args.device, args.repeats)
            ref = frames / knf_cache[batch, seconds]
            print(f"device={args.device} threads={threads} batch={batch:3d} crop={seconds:.0f}s frames={frames:6d} "
                  f"wesv={ours:10.0f} frames/s knf={ref:8.0f} frames/s ratio={ours / ref:6.2f}", flush=True)


if __name__ == "__main__":
    main()
