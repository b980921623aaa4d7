"""One pseudo-labelling round: embeddings + data dir -> clusters -> cleaned data dir of cluster ids + report."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict
from typing import Sequence

import numpy as np

from wesv.cluster.filtering import drop_small, keep_closest
from wesv.cluster.metrics import chance_metrics, cluster_metrics
from wesv.cluster.stages import ALGORITHMS, ClusterConfig, check_config, cluster_embeddings  # noqa: F401 (re-exported)
from wesv.data.datadir import read_scp, read_utt2spk, utt2spk_to_spk2utt, write_scp
from wesv.data.validate import validate_data_dir
from wesv.errors import WesvError
from wesv.lock import exclusive_lock
from wesv.log import get_logger
from wesv.scoring.io import read_embeddings, read_mean

logger = get_logger("wesv.cluster")

LOCK_NAME = ".lock"
SIZE_BINS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def normalise(x: np.ndarray, scp: str, keys: list[str]) -> np.ndarray:
    """L2-normalise rows; a non-finite or zero embedding is an error naming the scp and key."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    bad = np.nonzero(~np.isfinite(norms) | (norms == 0))[0]
    if bad.size:
        raise WesvError(f"{scp}: embedding of {keys[bad[0]]!r} is zero or not finite ({bad.size} such) — "
                        "re-extract it")
    return np.ascontiguousarray(x / norms[:, None])


def subtract_mean(x: np.ndarray, mean: str | None, scp: str) -> np.ndarray:
    """``x`` less a mean embedding, the geometry cosine scoring uses: ``None`` keeps ``x``; ``"auto"`` subtracts
    the mean of ``x`` itself (the embeddings being clustered); else a ``mean.vec`` (or an scp, its mean)."""
    if mean is None:
        return x
    vec = x.mean(axis=0, dtype=np.float64) if mean == "auto" else read_mean(mean).astype(np.float64)
    if vec.shape != (x.shape[1],):
        raise WesvError(f"--subtract-mean {mean}: a mean of dimension {vec.size}, but the embeddings of {scp} have "
                        f"dimension {x.shape[1]} — give the mean.vec of the same model")
    return (x.astype(np.float64) - vec).astype(np.float32)


def load_aligned_embeddings(scp: str, utts: list[str], wav_scp: str, mean: str | None = None) -> np.ndarray:
    """Unit-norm embeddings in the order of ``utts`` (the data dir's ``wav.scp``); every key must match.

    ``mean`` (``subtract_mean``) is subtracted before the normalisation, as cosine scoring does.
    """
    keys, mat = read_embeddings(scp)
    row = {k: i for i, k in enumerate(keys)}
    missing = [u for u in utts if u not in row]
    if missing:
        raise WesvError(f"{scp}: no embedding for {len(missing)} of the {len(utts)} utterances of {wav_scp} "
                        f"(first: {missing[0]!r}) — extract embeddings for this data dir")
    if len(keys) != len(utts):
        wanted = set(utts)
        extra = [k for k in keys if k not in wanted]
        raise WesvError(f"{scp}: {len(extra)} embedding key(s) are not utterances of {wav_scp} (first: "
                        f"{extra[0]!r}) — the embeddings come from another data dir")
    order = np.fromiter((row[u] for u in utts), dtype=np.int64, count=len(utts))
    return normalise(subtract_mean(mat[order], mean, scp), scp, [keys[i] for i in order])


def check_emb_weights(scps: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    """One positive, finite weight per embedding scp (None: all 1)."""
    if weights is None:
        return [1.0] * len(scps)
    weights = [float(w) for w in weights]
    if len(weights) != len(scps):
        raise WesvError(f"--emb-weights gives {len(weights)} weight(s) for {len(scps)} --emb scp(s) — give one per "
                        "scp, in the same order")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise WesvError(f"--emb-weights must be positive numbers, got {','.join(f'{w:g}' for w in weights)} — drop a "
                        "branch by leaving its --emb out")
    return weights


def load_fused_embeddings(scps: Sequence[str], weights: Sequence[float], utts: list[str], wav_scp: str,
                          mean: str | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Unit-norm fused embeddings of ``utts``: the concatenation of each scp's L2-normalised embedding times its
    weight, L2-normalised again (so a cosine of two complete rows is the ``w²``-weighted mean of the branch cosines).
    An utterance missing from one scp gets zeros in that block; each must be in at least one scp. One scp: exactly
    :func:`load_aligned_embeddings` (every utterance required). ``mean``: ``subtract_mean`` per branch before its
    normalisation (``"auto"``: each branch less the mean of its own embeddings; a file only with one scp).
    Returns ``(matrix, missing count per scp)``."""
    if len(scps) == 1:
        return load_aligned_embeddings(scps[0], utts, wav_scp, mean), {scps[0]: 0}
    wanted = set(utts)
    covered = np.zeros(len(utts), dtype=bool)
    blocks, missing = [], {}
    for scp, w in zip(scps, weights):
        keys, mat = read_embeddings(scp)
        extra = [k for k in keys if k not in wanted]
        if extra:
            raise WesvError(f"{scp}: {len(extra)} embedding key(s) are not utterances of {wav_scp} (first: "
                            f"{extra[0]!r}) — the embeddings come from another data dir")
        row = {k: i for i, k in enumerate(keys)}
        present = np.fromiter((u in row for u in utts), dtype=bool, count=len(utts))
        order = np.fromiter((row[u] for u in utts if u in row), dtype=np.int64, count=int(present.sum()))
        block = np.zeros((len(utts), mat.shape[1]), dtype=np.float32)
        block[present] = w * normalise(subtract_mean(mat[order], mean, scp), scp, [keys[i] for i in order])
        blocks.append(block)
        covered |= present
        missing[scp] = int((~present).sum())
        logger.info("%s: dimension %d, weight %g, %d of %d utterances (%d missing: zeros in that block)", scp,
                    mat.shape[1], w, int(present.sum()), len(utts), missing[scp])
    if not covered.all():
        first = utts[int(np.nonzero(~covered)[0][0])]
        raise WesvError(f"{int((~covered).sum())} utterance(s) of {wav_scp} have no embedding in any of "
                        f"{', '.join(scps)} (first: {first!r}) — extract at least one branch for every utterance")
    return normalise(np.concatenate(blocks, axis=1), "the fused embeddings", utts), missing


def relabel_by_size(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Renumber the clusters present in ``mask`` 0..K-1, largest first (ties: lower old id); others become -1."""
    counts = np.bincount(labels[mask], minlength=int(labels.max()) + 1)
    present = np.nonzero(counts)[0]
    order = present[np.lexsort((present, -counts[present]))]
    new = np.full(len(counts), -1, dtype=np.int64)
    new[order] = np.arange(len(order))
    out = new[labels]
    out[~mask] = -1
    return out


def size_summary(labels: np.ndarray) -> dict:
    """Cluster-size statistics and a histogram over SIZE_BINS for the report."""
    sizes = np.bincount(labels[labels >= 0])
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return {"num_clusters": 0}
    edges = list(SIZE_BINS) + [np.inf]
    hist = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        name = f"{lo}+" if hi == np.inf else (str(lo) if hi == lo + 1 else f"{lo}-{int(hi) - 1}")
        hist[name] = int(((sizes >= lo) & (sizes < hi)).sum())
    return {"num_clusters": int(sizes.size), "min": int(sizes.min()), "max": int(sizes.max()),
            "mean": float(sizes.mean()), "median": float(np.median(sizes)),
            "p10": float(np.percentile(sizes, 10)), "p90": float(np.percentile(sizes, 90)), "histogram": hist}


def cluster_name(index: int, num_clusters: int) -> str:
    """Zero-padded cluster id (``c00042``), wide enough for ``num_clusters`` and at least five digits."""
    return f"c{index:0{max(5, len(str(num_clusters - 1)))}d}"


def write_cluster_datadir(out: str, wav: dict[str, str], utts: list[str], labels: np.ndarray) -> None:
    """Write ``wav.scp``, ``utt2spk`` and ``spk2utt`` (sorted) for the rows with ``labels >= 0``; validate."""
    os.makedirs(out, exist_ok=True)
    k = int(labels.max()) + 1
    kept = np.nonzero(labels >= 0)[0]
    utt2spk = {utts[i]: cluster_name(int(labels[i]), k) for i in kept}
    write_scp(os.path.join(out, "wav.scp"), {u: wav[u] for u in utt2spk})
    write_scp(os.path.join(out, "utt2spk"), utt2spk)
    # utt2spk_to_spk2utt keeps its input order: feed it sorted so each cluster's utterances are sorted too.
    write_scp(os.path.join(out, "spk2utt"), utt2spk_to_spk2utt(dict(sorted(utt2spk.items()))))
    validate_data_dir(out, check_trials=False)


def read_truth(path: str, utts: list[str]) -> np.ndarray:
    """True speaker indices of ``utts`` from an ``utt2spk`` named explicitly (only to measure purity)."""
    utt2spk = read_utt2spk(path)
    missing = [u for u in utts if u not in utt2spk]
    if missing:
        raise WesvError(f"{path}: no speaker for {len(missing)} utterance(s) (first: {missing[0]!r}) — pass the "
                        "utt2spk of the data dir that was clustered")
    _, truth = np.unique([utt2spk[u] for u in utts], return_inverse=True)
    return truth


def write_json(path: str, obj: dict) -> None:
    """Write JSON atomically (temp name, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def run_clustering(emb: str | Sequence[str], data: str, out: str, cfg: ClusterConfig, truth_utt2spk: str | None = None,
                   emb_weights: Sequence[float] | None = None) -> dict:
    """Cluster the embeddings of ``data``'s utterances and write the pseudo-label data dir ``out``; returns the
    report also written to ``out/cluster_report.json``. The source ``utt2spk`` is read only if named as truth.

    ``emb`` may name several scps (branches), fused by :func:`load_fused_embeddings` with ``emb_weights``.
    ``out/.lock`` is held meanwhile: a second run writing the same ``out`` fails at once naming the first's pid."""
    scps = [emb] if isinstance(emb, str) else list(emb)
    if not scps:
        raise WesvError("give at least one --emb embedding scp")
    weights = check_emb_weights(scps, emb_weights)
    if len(scps) > 1 and cfg.subtract_mean not in (None, "auto"):
        raise WesvError(f"--subtract-mean {cfg.subtract_mean}: a mean file fits one model; with several --emb use "
                        "--subtract-mean auto (each branch less its own mean)")
    check_config(cfg)
    if os.path.abspath(out) == os.path.abspath(data):
        raise WesvError(f"--out {out} is the source data dir — write pseudo-labels to a new dir (data/train_round1)")
    created = not os.path.isdir(out)
    lock = os.path.join(out, LOCK_NAME)
    try:
        os.makedirs(out, exist_ok=True)
        with exclusive_lock(lock, f"clustering output {out}"):
            return _run_clustering(scps, weights, data, out, cfg, truth_utt2spk)
    except BaseException:
        if created:  # a failed first run leaves no out dir behind
            with contextlib.suppress(OSError):
                os.remove(lock)
                os.rmdir(out)
        raise


def _run_clustering(scps: list[str], weights: list[float], data: str, out: str, cfg: ClusterConfig,
                    truth_utt2spk: str | None) -> dict:
    start = time.perf_counter()
    wav_path = os.path.join(data, "wav.scp")
    if not os.path.isfile(wav_path):
        raise WesvError(f"{wav_path}: not found — --data must be a Kaldi data dir")
    wav = read_scp(wav_path)
    utts = list(wav)
    truth = read_truth(truth_utt2spk, utts) if truth_utt2spk else None
    t0 = time.perf_counter()
    x, missing = load_fused_embeddings(scps, weights, utts, wav_path, cfg.subtract_mean)
    if cfg.subtract_mean:
        logger.info("subtracted the mean (%s) before L2 normalisation", cfg.subtract_mean)
    timings = {"load": time.perf_counter() - t0}
    logger.info("clustering %d embeddings of dimension %d with %s", len(x), x.shape[1], cfg.algorithm)

    labels = cluster_embeddings(x, cfg, timings)
    n = len(labels)
    mask = np.ones(n, dtype=bool)
    if cfg.keep_fraction < 1.0:
        mask = keep_closest(x, labels, cfg.keep_fraction)
        logger.info("keep-fraction %.3f: kept %d of %d utterances closest to their centroid, dropped %d",
                    cfg.keep_fraction, mask.sum(), n, n - mask.sum())
    after_fraction = mask
    mask = drop_small(labels, after_fraction, cfg.min_cluster_size)
    small = np.unique(labels[after_fraction & ~mask])
    logger.info("min-cluster-size %d: dropped %d clusters holding %d utterances", cfg.min_cluster_size,
                small.size, int((after_fraction & ~mask).sum()))
    if not mask.any():
        raise WesvError(f"no utterance left after --keep-fraction {cfg.keep_fraction} and --min-cluster-size "
                        f"{cfg.min_cluster_size} — relax them")
    final = relabel_by_size(labels, mask)
    t0 = time.perf_counter()
    write_cluster_datadir(out, wav, utts, final)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start

    report = {
        "algorithm": cfg.algorithm, "config": asdict(cfg), "embeddings": scps[0] if len(scps) == 1 else scps,
        "data": data, "out": out,
        "num_utts": n, "num_utts_kept": int(mask.sum()), "fraction_kept": float(mask.mean()),
        "num_clusters_found": int(labels.max()) + 1, "num_clusters": int(final.max()) + 1,
        "dropped": {"keep_fraction_utts": int(n - after_fraction.sum()),
                    "min_cluster_size_clusters": int(small.size),
                    "min_cluster_size_utts": int((after_fraction & ~mask).sum())},
        "sizes": size_summary(final), "time_s": {k: round(v, 3) for k, v in timings.items()},
    }
    if len(scps) > 1:
        report["emb_weights"] = weights
        report["emb_missing"] = missing
    if truth is not None:
        report["truth_utt2spk"] = truth_utt2spk
        report["metrics_all"] = cluster_metrics(labels, truth)
        report["metrics"] = {**cluster_metrics(final[mask], truth[mask]), "fraction_kept": float(mask.mean())}
        report["metrics_chance"] = chance_metrics(final[mask], truth[mask])
        m, c = report["metrics"], report["metrics_chance"]
        logger.info("vs truth (kept utterances): NMI %.4f AMI %.4f ARI %.4f purity %.4f inverse purity %.4f, %d "
                    "clusters for %d speakers, %.1f%% kept; chance partition of the same sizes: NMI %.4f AMI %.4f "
                    "ARI %.4f purity %.4f", m["nmi"], m["ami"], m["ari"], m["purity"], m["inverse_purity"],
                    m["num_clusters"], m["num_speakers"], 100 * m["fraction_kept"], c["nmi"], c["ami"], c["ari"],
                    c["purity"])
    write_json(os.path.join(out, "cluster_report.json"), report)
    logger.info("wrote %s: %d utterances in %d clusters (%.1f s)", out, report["num_utts_kept"],
                report["num_clusters"], timings["total"])
    return report
