"""Clustering at VoxCeleb2 scale: 1.1 M structured embeddings -> k-means 50 k -> average-linkage AHC 7,500.

Prints wall time and peak RSS (and GPU memory) per phase (generate, k-means, AHC, metrics) and the NMI against the
generating components, then the same for scikit-learn's MiniBatchKMeans on a 100 k subsample, and the ratios.
Smaller runs scale the number of components and clusters with ``--num-points`` (``--num-points 20000``: a quick
check). Needs only numpy, scipy, sklearn and torch or faiss: faiss and kaldiio are optional.

    OMP_NUM_THREADS=2 python bench/cluster.py                       # full size, 2 CPU cores (faiss)
    PYTHONPATH=$PWD python bench/cluster.py --device cuda           # on a GPU: torch k-means unless faiss-gpu
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import normalized_mutual_info_score

from wesv.cluster.kmeans import ASSIGN_DTYPES, BACKENDS, KMEANS_INDEXES, resolve_backend, resolve_index
from wesv.cluster.stages import ClusterConfig, ahc_stage, kmeans_stage
from wesv.log import setup_logging

FULL_POINTS = 1_092_009  # VoxCeleb2 dev utterances
FULL = {"num_components": 6000, "num_kmeans": 50000, "num_clusters": 7500}


def memory(device: str) -> str:
    """Peak resident memory of this process so far (and peak GPU memory on cuda), GiB."""
    text = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    if device == "cuda":
        import torch
        text += f", peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    return text


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (in place when float32)."""
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_embeddings(n: int, dim: int, num_comp: int, spread: float, channel: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings from a mixture of ``num_comp`` speakers on the sphere, and each row's speaker.

    Speakers sit in 24 loose groups (think gender / language), so some are much closer than random directions;
    sizes are log-normal (VoxCeleb2: a few dozen to ~1,000 utterances per speaker, at least 2 here); each speaker
    has its own spread (0.7-1.3 x ``spread``) of isotropic noise, plus session noise of norm ``channel`` in a
    shared 8-dimensional subspace (channel / recording conditions move every speaker the same few ways, which is
    what makes real speaker clusters touch).
    """
    rng = np.random.default_rng(seed)
    groups = unit(rng.standard_normal((24, dim)))
    means = unit(0.6 * groups[rng.integers(0, 24, num_comp)] + unit(rng.standard_normal((num_comp, dim))))
    weights = rng.lognormal(0.0, 0.6, num_comp)
    sizes = 2 + rng.multinomial(n - 2 * num_comp, weights / weights.sum())
    label = rng.permutation(np.repeat(np.arange(num_comp), sizes))
    scale = (spread * rng.uniform(0.7, 1.3, num_comp) / np.sqrt(dim)).astype(np.float32)
    means = means.astype(np.float32)
    session = (channel * np.linalg.qr(rng.standard_normal((dim, 8)))[0].T / np.sqrt(8)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    chunk = 1 << 16
    for s in range(0, n, chunk):
        lab = label[s:s + chunk]
        z = rng.standard_normal((len(lab), dim), dtype=np.float32)
        c = rng.standard_normal((len(lab), 8), dtype=np.float32)
        x[s:s + chunk] = unit(means[lab] + scale[lab, None] * z + c @ session)
    return x, label


def main() -> None:
    """Run the benchmark and print one line per measurement."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-points", type=int, default=FULL_POINTS)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--num-components", type=int, default=None, help="default 6,000 scaled with --num-points")
    p.add_argument("--num-kmeans", type=int, default=None, help="default 50,000 scaled with --num-points")
    p.add_argument("--num-clusters", type=int, default=None, help="default 7,500 scaled with --num-points")
    p.add_argument("--spread", type=float, default=1.2, help="within-speaker noise norm relative to the mean")
    p.add_argument("--channel", type=float, default=1.0, help="session noise norm in a shared 8-dim subspace")
    p.add_argument("--kmeans-iters", type=int, default=10)
    p.add_argument("--kmeans-backend", choices=BACKENDS, default="auto")
    p.add_argument("--kmeans-index", choices=KMEANS_INDEXES, default="auto")
    p.add_argument("--kmeans-max-points-per-centroid", type=int, default=None,
                   help="train k-means on a subsample of this many points per centroid (default all)")
    p.add_argument("--kmeans-assign-dtype", choices=ASSIGN_DTYPES, default="float32",
                   help="torch backend: matmul type of the assignment")
    p.add_argument("--ref-points", type=int, default=100_000, help="MiniBatchKMeans subsample (0 skips it)")
    p.add_argument("--ref-iters", type=int, default=10, help="MiniBatchKMeans max_iter (epochs)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    setup_logging()
    n = args.num_points
    scaled = {k: max(2, int(round(v * n / FULL_POINTS))) for k, v in FULL.items()}
    num_comp = args.num_components or scaled["num_components"]
    num_kmeans = args.num_kmeans or scaled["num_kmeans"]
    num_clusters = args.num_clusters or scaled["num_clusters"]
    cfg = ClusterConfig(algorithm="kmeans_ahc", num_clusters=num_clusters, num_kmeans=num_kmeans,
                        kmeans_iters=args.kmeans_iters, seed=args.seed, device=args.device,
                        kmeans_backend=args.kmeans_backend, kmeans_index=args.kmeans_index,
                        kmeans_max_points_per_centroid=args.kmeans_max_points_per_centroid,
                        kmeans_assign_dtype=args.kmeans_assign_dtype)
    backend = resolve_backend(args.device, args.kmeans_backend)
    index = resolve_index(args.kmeans_index, backend, num_kmeans)
    dev = backend.device
    print(f"setup: {n} points, dim {args.dim}, {num_comp} components, k-means {num_kmeans} ({args.kmeans_iters} "
          f"iterations, {backend.name} on {dev}, {index} assignment"
          f"{' in ' + args.kmeans_assign_dtype if backend.name == 'torch' else ''}, training points per centroid "
          f"{args.kmeans_max_points_per_centroid or 'all'}) -> AHC {num_clusters}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)

    t0 = time.perf_counter()
    x, truth = make_embeddings(n, args.dim, num_comp, args.spread, args.channel, args.seed)
    print(f"generate: {time.perf_counter() - t0:.1f} s, {memory(dev)}", flush=True)
    t0 = time.perf_counter()
    assign = kmeans_stage(x, cfg, backend)
    kmeans_s = time.perf_counter() - t0
    print(f"kmeans: {kmeans_s:.1f} s, {memory(dev)}; {len(np.unique(assign))} clusters, NMI "
          f"{normalized_mutual_info_score(truth, assign):.4f}", flush=True)
    t0 = time.perf_counter()
    labels = ahc_stage(x, assign, cfg, backend)
    ahc_s = time.perf_counter() - t0
    ours_s = kmeans_s + ahc_s
    print(f"ahc: {ahc_s:.1f} s, {memory(dev)}; {len(np.unique(labels))} clusters", flush=True)
    t0 = time.perf_counter()
    nmi = normalized_mutual_info_score(truth, labels)
    print(f"metrics: {time.perf_counter() - t0:.1f} s; ours: NMI {nmi:.4f} on all {n} points, clustering "
          f"{ours_s:.1f} s (load average now {os.getloadavg()[0]:.1f})", flush=True)
    if args.ref_points <= 0:
        return

    m = min(args.ref_points, n)
    sub = np.random.default_rng(args.seed + 1).choice(n, m, replace=False)
    k_ref = min(num_clusters, m // 2)
    nmi_sub = normalized_mutual_info_score(truth[sub], labels[sub])
    settings = dict(n_clusters=k_ref, batch_size=4096, n_init=1, max_iter=args.ref_iters, init="k-means++",
                    random_state=args.seed)
    t0 = time.perf_counter()
    ref_labels = MiniBatchKMeans(**settings).fit_predict(x[sub])
    ref_s = time.perf_counter() - t0
    ref_nmi = normalized_mutual_info_score(truth[sub], ref_labels)
    print(f"sklearn MiniBatchKMeans({', '.join(f'{k}={v}' for k, v in settings.items())}): {m} points in "
          f"{ref_s:.1f} s, NMI {ref_nmi:.4f}; ours on the same {m} points: NMI {nmi_sub:.4f}", flush=True)
    print(f"ratio: ours {ours_s:.1f} s for {n} points / sklearn {ref_s:.1f} s for {m} points = "
          f"{ours_s / ref_s:.2f}x time for {n / m:.1f}x the points ({ours_s / ref_s * m / n:.3f}x per point); "
          f"NMI ours/sklearn {nmi_sub / ref_nmi:.3f}", flush=True)


if __name__ == "__main__":
    main()
