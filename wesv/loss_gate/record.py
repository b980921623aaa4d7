"""Per-epoch records of the loss-gate: ``exp/X/loss_gate/epoch_N.npz``, written atomically, read back in order.

Arrays: ``utt`` (str), ``loss`` (the epoch's per-sample loss on the augmented view with its pseudo-label; NaN for a
sample not seen), ``label`` (class index of the pseudo-label), ``reliable`` (bool: passed the gate), and
``corrected_label`` (−1 where not corrected). Scalars: ``threshold`` (τ used during the epoch, NaN where no gate
ran), ``next_threshold`` (τ fitted on this epoch's losses) and the fitted GMM's ``gmm_weights``/``gmm_means``/
``gmm_stds`` (NaN when no fit). Epochs are numbered from 1 in file names, as in the log.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np

from wesv.errors import WesvError
from wesv.loss_gate.gmm import LossGmm

RECORD_DIR = "loss_gate"
ARRAYS = ("utt", "loss", "label", "reliable", "corrected_label")


def record_path(exp_dir: str, epoch: int) -> str:
    """``exp_dir/loss_gate/epoch_{epoch}.npz`` (``epoch`` from 1)."""
    return os.path.join(exp_dir, RECORD_DIR, f"epoch_{epoch}.npz")


def gmm_arrays(gmm: LossGmm | None) -> dict[str, np.ndarray]:
    """The fitted GMM as three length-2 arrays (NaN when there is none)."""
    if gmm is None:
        nan = np.full(2, np.nan)
        return {"gmm_weights": nan, "gmm_means": nan, "gmm_stds": nan}
    return {"gmm_weights": np.array(gmm.weights), "gmm_means": np.array(gmm.means), "gmm_stds": np.array(gmm.stds)}


def gmm_from_record(rec: dict) -> LossGmm | None:
    """The GMM stored in a record, or None."""
    if not np.all(np.isfinite(rec["gmm_means"])):
        return None
    return LossGmm(tuple(rec["gmm_weights"]), tuple(rec["gmm_means"]), tuple(rec["gmm_stds"]))


def write_record(exp_dir: str, epoch: int, arrays: dict[str, np.ndarray], threshold: float | None,
                 next_threshold: float | None, gmm: LossGmm | None) -> str:
    """Write one epoch's record atomically; returns its path."""
    path = record_path(exp_dir, epoch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}.npz"
    nan = float("nan")
    np.savez(tmp, **{k: np.asarray(arrays[k]) for k in ARRAYS},
             threshold=np.float64(nan if threshold is None else threshold),
             next_threshold=np.float64(nan if next_threshold is None else next_threshold), **gmm_arrays(gmm))
    os.replace(tmp, path)
    return path


def read_records(exp_dir: str) -> list[tuple[int, dict]]:
    """Every ``epoch_N.npz`` of ``exp_dir/loss_gate`` as ``(N, arrays)``, by epoch."""
    paths = glob.glob(os.path.join(exp_dir, RECORD_DIR, "epoch_*.npz"))
    found = []
    for p in paths:
        m = re.fullmatch(r"epoch_(\d+)\.npz", os.path.basename(p))
        if m:
            with np.load(p, allow_pickle=False) as z:
                found.append((int(m.group(1)), {k: z[k] for k in z.files}))
    if not found:
        raise WesvError(f"{os.path.join(exp_dir, RECORD_DIR)}: no loss-gate records (epoch_N.npz); train with "
                        "type: dlg_lc into this exp dir first")
    return sorted(found, key=lambda r: r[0])
