"""Benchmark: score + evaluate millions of trials through the CLIs; a per-trial loop for reference; extraction speed.

    python bench/scoring.py                          # 5 M trials over 150 k embeddings of dim 256, CPU
    python bench/scoring.py --extract-device cuda    # extraction part on a GPU
"""
import argparse
import resource
import subprocess
import sys
import tempfile
import time

import kaldiio
import numpy as np


def make_data(d: str, num_emb: int, dim: int, num_trials: int, seed: int = 0) -> None:
    """Embeddings of speakers with 50 utterances each; trials with ~10 % targets."""
    rng = np.random.default_rng(seed)
    num_spk = max(1, num_emb // 50)
    spk = rng.integers(0, num_spk, num_emb)
    centres = rng.normal(size=(num_spk, dim)).astype(np.float32)
    emb = centres[spk] + rng.normal(scale=1.2, size=(num_emb, dim)).astype(np.float32)
    keys = [f"spk{s:05d}-utt{i:07d}" for i, s in enumerate(spk)]
    with kaldiio.WriteHelper(f"ark,scp:{d}/emb.ark,{d}/emb.scp") as w:
        for k, v in zip(keys, emb):
            w(k, v)
    by_spk = np.argsort(spk, kind="stable")
    starts = np.searchsorted(spk[by_spk], np.arange(num_spk))
    counts = np.bincount(spk, minlength=num_spk)
    enroll = rng.integers(0, num_emb, num_trials)
    test = rng.integers(0, num_emb, num_trials)
    is_tar = rng.random(num_trials) < 0.1
    s = spk[enroll[is_tar]]
    test[is_tar] = by_spk[starts[s] + rng.integers(0, counts[s])]
    test[test == enroll] = (test[test == enroll] + 1) % num_emb
    # Drop repeated pairs (duplicate trials are an error).
    _, first = np.unique(enroll * num_emb + test, return_index=True)
    first.sort()
    karr = np.array(keys, dtype=object)
    lab = np.where(spk[enroll] == spk[test], "target", "nontarget")
    with open(f"{d}/trials", "w") as f:
        chunk = 1 << 18
        for a in range(0, first.size, chunk):
            i = first[a:a + chunk]
            f.write("".join(f"{e} {t} {l}\n" for e, t, l in zip(karr[enroll[i]], karr[test[i]], lab[i])))


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run a command; wall seconds and the peak RSS (GiB) of all children so far."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def naive_scores(d: str, sample: int) -> float:
    """The straightforward way: a Python loop over trials, normalising and dotting per trial. Seconds per trial."""
    emb = {k: v for k, v in kaldiio.load_scp_sequential(f"{d}/emb.scp")}
    trials = []
    with open(f"{d}/trials") as f:
        for _, line in zip(range(sample), f):
            trials.append(line.split()[:2])
    t0 = time.perf_counter()
    out = []
    for e, t in trials:
        a, b = emb[e], emb[t]
        out.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    return (time.perf_counter() - t0) / len(trials)


def bench_extraction(device: str, num_utts: int, seconds: float, encoder: str, channels: int) -> None:
    """Utterances per second of an ECAPA encoder on whole 4 s utterances (batches of equal length)."""
    import torch

    from wesv.models import build_encoder

    enc = build_encoder(encoder, {"channels": channels}).eval().to(device)
    wave = torch.randn(num_utts, int(16000 * seconds), device=device) * 0.1
    with torch.inference_mode():
        enc(wave[:2])  # warm-up
        for bs, label in [(1, "batch 1"), (num_utts, f"batch {num_utts}")]:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for s in range(0, num_utts, bs):
                enc(wave[s:s + bs])
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"extraction {encoder}-{channels} on {device}, {seconds:g} s utterances, {label}: "
                  f"{num_utts / dt:.1f} utt/s ({num_utts * seconds / dt:.0f}× real time)")


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-emb", type=int, default=150_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--num-trials", type=int, default=5_000_000)
    p.add_argument("--naive-sample", type=int, default=50_000)
    p.add_argument("--workdir", help="keep the generated files here (default: a temp dir)")
    p.add_argument("--skip-scoring", action="store_true")
    p.add_argument("--extract-device", default="cpu")
    p.add_argument("--extract-utts", type=int, default=8)
    p.add_argument("--encoder", default="ecapa_tdnn")
    p.add_argument("--channels", type=int, default=512)
    args = p.parse_args()

    if not args.skip_scoring:
        with tempfile.TemporaryDirectory(dir=args.workdir) as d:
            t0 = time.perf_counter()
            make_data(d, args.num_emb, args.dim, args.num_trials)
            n = sum(1 for _ in open(f"{d}/trials"))
            print(f"generated {args.num_emb} embeddings (dim {args.dim}) and {n} trials in "
                  f"{time.perf_counter() - t0:.1f} s")
            py = sys.executable
            t_score, rss1 = timed([py, "-m", "wesv.bin.score", "--trials", f"{d}/trials", "--enroll-emb",
                                   f"{d}/emb.scp", "--test-emb", f"{d}/emb.scp", "--out", f"{d}/scores"])
            t_eval, rss2 = timed([py, "-m", "wesv.bin.compute_metrics", "--trials", f"{d}/trials", "--scores",
                                  f"{d}/scores", "--det-png", f"{d}/det.png"])
            total = t_score + t_eval
            print(f"score (CLI, incl. reading and writing): {t_score:.1f} s; compute_metrics (CLI, incl. DET "
                  f"png): {t_eval:.1f} s; total {total:.1f} s = {total / n * 1e6:.2f} s per million trials; "
                  f"peak RSS {max(rss1, rss2):.2f} GiB")
            from wesv.scoring.cosine import normalize, pair_scores
            from wesv.scoring.io import read_embeddings
            keys, mat = read_embeddings(f"{d}/emb.scp")
            rng = np.random.default_rng(1)
            ei, ti = rng.integers(0, len(keys), n), rng.integers(0, len(keys), n)
            t0 = time.perf_counter()
            e = normalize(mat)
            pair_scores(e, e, ei, ti)
            vec = (time.perf_counter() - t0) / n
            naive = naive_scores(d, args.naive_sample)
            print(f"scoring arithmetic only: vectorised {vec * 1e6:.2f} s per million trials; per-trial Python "
                  f"loop {naive * 1e6:.1f} s per million (on {args.naive_sample} trials); ratio "
                  f"{naive / vec:.0f}× (whole CLI pipeline vs loop arithmetic alone: {naive * n / total:.1f}×)")
    bench_extraction(args.extract_device, args.extract_utts, 4.0, args.encoder, args.channels)


if __name__ == "__main__":
    main()
