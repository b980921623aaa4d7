"""Epoch curves of runs side by side (loss and validation EER per epoch): a run against the reference curves."""
from __future__ import annotations

import json
import os

import numpy as np

from wesv.errors import WesvError, where


def read_epochs(path: str) -> list[dict]:
    """The epoch records of a ``metrics.jsonl`` (or of an exp dir holding one)."""
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(path):
        raise WesvError(f"{path}: not found — give an exp dir or its metrics.jsonl")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise WesvError(f"{where(path, lineno)}: not a JSON record — is this a wesv metrics.jsonl?") from None
            if rec.get("kind") == "epoch":
                out.append(rec)
    if not out:
        raise WesvError(f"{path}: no epoch record yet")
    return out


def plot_curves(runs: dict[str, list[dict]], png: str) -> str:
    """Two panels, epoch mean loss and validation EER (%), one line per run (dashed for names with 'reference')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a_loss, a_eer) = plt.subplots(1, 2, figsize=(11, 4))
    for name, epochs in runs.items():
        style = "--" if "reference" in name else "-"
        e = np.array([r["epoch"] for r in epochs], dtype=float)
        a_loss.plot(e, [r["loss"] for r in epochs], style, marker="o", ms=3, label=name)
        val = [(r["epoch"], r["val_eer"]) for r in epochs if "val_eer" in r]
        if val:
            v = np.array(val, dtype=float)
            a_eer.plot(v[:, 0], v[:, 1], style, marker="s", ms=3, label=name)
    a_loss.set(xlabel="epoch", ylabel="epoch mean loss", title="training loss")
    a_eer.set(xlabel="epoch", ylabel="EER (%)", title="validation EER (reported, never steers training)")
    for ax in (a_loss, a_eer):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)
    return png
