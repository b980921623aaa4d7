"""What limits a self-supervised system: train config variants over seeds, then EER and cluster AMI of each.

    python bench/ssl_sweep.py --corpus CORPUS --config egs/mini/conf/dino.yaml --out SWEEP \\
        --variant base= --variant long="--trainer.epochs 42" --variant no_channel="--augment.channel_prob 0" \\
        --seeds 0 1 2 [--parallel 4 --threads 2 --workers 2] [--num-clusters 150]

CORPUS is a ``wesv.bin.make_corpus`` output (train, test, noise, rirs). For every variant and seed this runs the
stages of the recipes through their entry points: train (``--seed S`` plus the variant's overrides; the config's
data, augmentation and validation paths pointed at CORPUS), extract train and test, score the test trials with the
train mean subtracted, EER / minDCF, cluster the train embeddings (k-means + AHC, as a pseudo-label round) and
measure AMI / NMI against the true speakers (read only there, as ``wesv.bin.cluster --truth-utt2spk`` does). Each
run lives in SWEEP/VARIANT/seedS and is skipped when its ``result.json`` is there (a killed sweep resumes: training
continues its checkpoint). ``--parallel N`` runs N of them side by side (a GPU box: each on the GPU, its loader on
``--workers`` processes). Prints and writes SWEEP/SWEEP.md: mean ± std over the seeds per variant, and the chance
AMI of each variant's partition.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from wesv.scoring.aggregate import format_mean_std

PY = sys.executable


def run(cmd: list[str], log_path: str) -> None:
    """Run ``cmd`` with its output appended to ``log_path``; raise with the log's path when it fails."""
    with open(log_path, "a") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise RuntimeError(f"{cmd[2]} failed (exit {rc}); see {log_path}")


def last_epoch(exp: str) -> dict:
    """The last epoch record of a run's metrics.jsonl."""
    rec = {}
    with open(os.path.join(exp, "metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            if d.get("kind") == "epoch":
                rec = d
    return rec


def finished_result(out: str, variant: str, seed: int) -> dict | None:
    """The stored result row of a finished (variant, seed) run, or None."""
    path = os.path.join(out, variant, f"seed{seed}", "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def one_run(args: argparse.Namespace, variant: str, overrides: str, seed: int) -> dict:
    """Train, extract, score and cluster one (variant, seed); returns (and stores) its result row."""
    d = os.path.join(args.out, variant, f"seed{seed}")
    result_path = os.path.join(d, "result.json")
    done = finished_result(args.out, variant, seed)
    if done is not None:
        return done
    os.makedirs(d, exist_ok=True)
    log_path = os.path.join(d, "sweep.log")
    c = args.corpus
    exp = os.path.join(d, "exp")
    t0 = time.time()
    run([PY, "-m", "wesv.bin.train", "--config", args.config, "--exp-dir", exp, "--resume", "--seed", str(seed),
         "--data.train", f"{c}/train", "--augment.noise_dir", f"{c}/noise", "--augment.rir_dir", f"{c}/rirs",
         "--validation.data", f"{c}/test", "--data.num_workers", str(args.workers),
         "--trainer.num_threads", str(args.threads), "--trainer.device", args.device,
         *shlex.split(args.common), *shlex.split(overrides)], log_path)
    train_s = time.time() - t0
    for name in ("train", "test"):
        out = os.path.join(d, "emb", name)
        if not os.path.exists(os.path.join(out, "xvector.scp")):
            run([PY, "-m", "wesv.bin.extract", "--model-dir", exp, "--data", f"{c}/{name}", "--out", out,
                 "--num-threads", str(max(1, args.threads)), "--device", args.device], log_path)
            run([PY, "-m", "wesv.bin.extract", "--model-dir", exp, "--data", f"{c}/{name}", "--out", out, "--merge"],
                log_path)
    train_emb = os.path.join(d, "emb", "train", "xvector.scp")
    run([PY, "-m", "wesv.bin.score", "--trials", f"{c}/test/trials", "--enroll-emb", f"{d}/emb/test/xvector.scp",
         "--test-emb", f"{d}/emb/test/xvector.scp", "--mean-emb", train_emb, "--out", f"{d}/test.score"], log_path)
    run([PY, "-m", "wesv.bin.compute_metrics", "--trials", f"{c}/test/trials", "--scores", f"{d}/test.score",
         "--json", f"{d}/eval.json"], log_path)
    run([PY, "-m", "wesv.bin.cluster", "--emb", train_emb, "--data", f"{c}/train", "--out", f"{d}/clusters",
         "--algorithm", "kmeans_ahc", "--num-clusters", str(args.num_clusters), "--truth-utt2spk",
         f"{c}/train/utt2spk", "--seed", str(seed)], log_path)
    with open(f"{d}/eval.json") as f:
        ev = json.load(f)
    with open(f"{d}/clusters/cluster_report.json") as f:
        rep = json.load(f)
    ep = last_epoch(exp)
    row = {"variant": variant, "overrides": overrides, "seed": seed, "eer": ev["EER"], "mindcf": ev["minDCF@0.01"],
           "ami": rep["metrics"]["ami"], "nmi": rep["metrics"]["nmi"],
           "chance_ami": rep.get("metrics_chance", {}).get("ami"), "train_s": round(train_s, 1),
           "steps": ep.get("step"), "loss": ep.get("loss"), "teacher_entropy": ep.get("teacher_entropy")}
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(row, f, indent=1)
    os.replace(tmp, result_path)
    print(f"{variant} seed {seed}: EER {row['eer']:.2f} %, AMI {row['ami']:.3f}, {row['train_s']:.0f} s",
          flush=True)
    return row


def mean_std(xs: list[float]) -> str:
    """'m ± s' over seeds (sample std), or 'm' for one seed."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return format_mean_std(float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan"), 3)


def table(rows: list[dict], variants: list[tuple[str, str]]) -> str:
    """Markdown table of mean ± std per variant."""
    lines = ["| variant | overrides | seeds | EER (%) | minDCF@0.01 | AMI | NMI | chance AMI | steps | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, ov in variants:
        r = [x for x in rows if x["variant"] == name]
        if not r:
            continue
        lines.append(f"| {name} | `{ov or '(config)'}` | {len(r)} | {mean_std([x['eer'] for x in r])} | "
                     f"{mean_std([x['mindcf'] for x in r])} | {mean_std([x['ami'] for x in r])} | "
                     f"{mean_std([x['nmi'] for x in r])} | {mean_std([x['chance_ami'] for x in r])} | "
                     f"{r[0]['steps']} | {np.mean([x['train_s'] for x in r]):.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every (variant, seed), then print and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", action="append", required=True, help="NAME=OVERRIDES (repeatable)")
    p.add_argument("--common", default="", help="overrides for every variant")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--num-clusters", type=int, default=150)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="trainer.num_threads (0: auto)")
    p.add_argument("--workers", type=int, default=2, help="data.num_workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--report-only", action="store_true", help="tabulate the finished runs, start none")
    args = p.parse_args()
    args.corpus = os.path.abspath(args.corpus)
    os.makedirs(args.out, exist_ok=True)
    variants = [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in args.variant]
    jobs = [(name, ov, s) for s in args.seeds for name, ov in variants]
    rows, failed = [], []
    if args.report_only:
        rows = [r for name, _, s in jobs if (r := finished_result(args.out, name, s)) is not None]
        jobs = []
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = {pool.submit(one_run, args, *job): job for job in jobs}
        for fut, job in futures.items():
            try:
                rows.append(fut.result())
            except RuntimeError as e:
                failed.append(f"{job[0]} seed {job[2]}: {e}")
    md = table(rows, variants)
    if failed:
        md += "\nFailed: " + "; ".join(failed) + "\n"
    with open(os.path.join(args.out, "SWEEP.md"), "w") as f:
        f.write(f"`{shlex.join(sys.argv)}`\n\n" + md)
    with open(os.path.join(args.out, "sweep.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
