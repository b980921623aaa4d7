"""Pictures of the loss-gate: log-loss histograms with the fitted weighted Gaussians and τ, and precision curves."""
from __future__ import annotations

import math

import numpy as np

from wesv.loss_gate.record import gmm_from_record


def plot_gate_epochs(records: list[tuple[int, dict]], path: str, max_panels: int = 12) -> str:
    """One panel per epoch (the last ``max_panels``): histogram of log-loss, the two weighted Gaussians, τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = records[-max_panels:]
    cols = min(4, len(records))
    rows = math.ceil(len(records) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(records):]:
        ax.axis("off")
    for ax, (epoch, rec) in zip(axes.ravel(), records):
        loss = rec["loss"][np.isfinite(rec["loss"]) & (rec["loss"] > 0)]
        x = np.log(loss)
        if len(x) == 0:
            ax.set_title(f"epoch {epoch}: no losses")
            continue
        ax.hist(x, bins=60, density=True, color="0.75")
        gmm = gmm_from_record(rec)
        if gmm is not None:
            grid = np.linspace(x.min(), x.max(), 400)
            for k, color in ((0, "tab:green"), (1, "tab:red")):
                ax.plot(grid, np.exp(gmm.log_density(grid, k)), color=color, lw=1.2)
        for key, style, label in (("threshold", "-", "τ used"), ("next_threshold", "--", "τ next")):
            tau = float(rec[key])
            if math.isfinite(tau):
                ax.axvline(tau, color="k", ls=style, lw=1, label=label)
        gated = 1.0 - float(np.mean(rec["reliable"][np.isfinite(rec["loss"])])) if len(x) else 0.0
        ax.set_title(f"epoch {epoch}: {100 * gated:.1f} % gated out", fontsize=9)
        ax.set_xlabel("log loss", fontsize=8)
        if ax is axes.ravel()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_precision(rows: list[dict], path: str) -> str:
    """Label accuracy of all samples, gate precision and correction precision over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("accuracy_all", "all samples"), ("gate_precision", "gated in (gate precision)"),
                       ("correction_precision", "corrected (correction precision)")):
        ax.plot(epochs, [r[key] if r[key] is not None else np.nan for r in rows], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of right pseudo-labels")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
