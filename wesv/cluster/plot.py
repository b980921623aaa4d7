"""Plot pseudo-label quality over rounds from ``cluster_report.json`` files."""
from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wesv.data.textfile import read_json  # noqa: E402
from wesv.errors import WesvError  # noqa: E402


def natural_key(path: str) -> list:
    """Sort key that orders ``round2`` before ``round10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def load_reports(paths: list[str]) -> list[tuple[str, dict]]:
    """Read reports in natural path order as ``(round name, report)``; each must hold truth metrics."""
    out = []
    for path in sorted(paths, key=natural_key):
        report = read_json(path, "check the path", "re-run wesv.bin.cluster")
        if "metrics" not in report:
            raise WesvError(f"{path}: no 'metrics' — that round was clustered without --truth-utt2spk, so there is "
                            "nothing to plot")
        out.append((os.path.basename(os.path.dirname(os.path.abspath(path))), report))
    return out


QUALITY = (("nmi", "NMI"), ("ami", "AMI"), ("ari", "ARI"), ("purity", "purity"), ("inverse_purity", "inverse purity"))


def plot_rounds(paths: list[str], out_png: str) -> list[dict]:
    """Plot NMI, AMI, ARI, purity, inverse purity and number of clusters per round into ``out_png``; returns the rows.

    The chance partition's AMI and purity (``metrics_chance``: same cluster sizes, shuffled) are drawn dashed, so a
    purity that many small clusters give by themselves is visible as such. Reports written before AMI/ARI were
    measured have ``None`` there (and no line).
    """
    reports = load_reports(paths)
    if not reports:
        raise WesvError("--reports: no report files given")
    names = [name for name, _ in reports]
    rows = []
    for name, r in reports:
        chance = r.get("metrics_chance", {})
        rows.append({"round": name, **{k: r["metrics"].get(k) for k, _ in QUALITY},
                     "num_clusters": r["metrics"]["num_clusters"],
                     **{f"chance_{k}": chance.get(k) for k in ("nmi", "ami", "ari", "purity")}})
    xs = range(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in QUALITY:
        if any(r[key] is not None for r in rows):
            ax1.plot(xs, [float("nan") if r[key] is None else r[key] for r in rows], marker="o", label=label)
    for key, label in (("chance_ami", "AMI, chance partition"), ("chance_purity", "purity, chance partition")):
        if any(r[key] is not None for r in rows):
            ax1.plot(xs, [float("nan") if r[key] is None else r[key] for r in rows], linestyle="--", marker=".",
                     color="grey" if key == "chance_ami" else "silver", label=label)
    ax1.set_ylabel("score")
    ax1.set_title("pseudo-label quality")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(xs, [r["num_clusters"] for r in rows], marker="o", color="tab:red", label="clusters")
    speakers = reports[-1][1]["metrics"].get("num_speakers")
    if speakers:
        ax2.axhline(speakers, color="grey", linestyle="--", label=f"true speakers ({speakers})")
    ax2.set_title("number of clusters")
    ax2.legend()
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=30, ha="right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return rows
