"""DET curves (miss vs false-alarm rate on probit axes) of one or more systems in one PNG."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.special import ndtri as probit  # = scipy.stats.norm.ppf, without scipy.stats' 1 s import

TICKS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9]


@dataclass
class DetCurve:
    """One system's curve: miss and false-alarm rates at each threshold, and its EER (fraction)."""

    name: str
    p_miss: np.ndarray
    p_fa: np.ndarray
    eer: float


def thin(x: np.ndarray, y: np.ndarray, step: float = 0.002) -> np.ndarray:
    """Indices of points at least ``step`` apart along the (probit-space) curve, ends kept: millions → thousands."""
    arc = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
    keep = np.searchsorted(arc, np.arange(0.0, arc[-1], step))
    return np.unique(np.concatenate([keep, [0, len(x) - 1]]))


def plot_det(curves: list[DetCurve], path: str, title: str = "DET") -> None:
    """Draw the curves with probit axes (``scipy.stats.norm.ppf``) and each EER point marked; save PNG."""
    min_eer = min(max(c.eer, 1e-5) for c in curves)
    max_eer = max(c.eer for c in curves)
    lo_p = min(1e-3, min_eer / 10)
    hi_p = 0.5 if max_eer < 0.3 else 0.95
    lo, hi = probit(lo_p), probit(hi_p)
    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for c in curves:
        eps = 1e-7
        x = probit(np.clip(c.p_fa, eps, 1 - eps))
        y = probit(np.clip(c.p_miss, eps, 1 - eps))
        k = thin(x, y)
        line, = ax.plot(x[k], y[k], label=f"{c.name} (EER {100 * c.eer:.2f}%)")
        e = probit(np.clip(c.eer, eps, 1 - eps))
        ax.plot([e], [e], "o", color=line.get_color())
    ax.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = [t for t in TICKS if lo_p <= t <= hi_p]
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(probit(ticks), labels)
    ax.set_yticks(probit(ticks), labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("false-alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title)
    ax.grid(True, linewidth=0.4)
    ax.legend(loc="upper right", fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
