"""Results over several seeds: mean ± standard deviation per system of every numeric metric, and the gap share G.

Input: run dirs, each holding ``exp/*/eval/test.json`` (compute_metrics' JSON). Systems are matched by name. G is
the share of the gap between the training-free baseline and the supervised reference that a system closes,
``(EER_baseline − EER) / (EER_baseline − EER_supervised)``, per seed and then averaged.
"""
from __future__ import annotations

import glob
import math
import os

import numpy as np

from wesv.errors import WesvError
from wesv.scoring.table import load_result

METRICS = ("EER", "minDCF@0.01", "minDCF@0.05")


def collect(run_dirs: list[str], pattern: str = "exp/*/eval/test.json") -> dict[str, dict[str, dict]]:
    """``{run dir: {system: result}}`` of every compute_metrics JSON under each run dir."""
    runs = {}
    for run in run_dirs:
        paths = sorted(glob.glob(os.path.join(run, pattern)))
        if not paths:
            raise WesvError(f"{run}: no {pattern} — run the recipe there first")
        runs[run] = {r["system"]: r for r in map(load_result, paths)}
    return runs


def numeric_fields(result: dict) -> dict[str, float]:
    """The metrics and the numeric extra fields of one result (wall time included)."""
    out = {k: float(result[k]) for k in METRICS}
    for k, v in result.get("extra", {}).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def gap_share(eer: float, baseline: float, supervised: float) -> float:
    """G = (baseline − eer) / (baseline − supervised); NaN when the two references coincide."""
    gap = baseline - supervised
    return (baseline - eer) / gap if gap > 0 else float("nan")


def aggregate(runs: dict[str, dict[str, dict]], baseline: str = "baseline",
              supervised: str = "supervised") -> list[dict]:
    """One row per system (first-seen order): ``n``, and ``mean``/``std`` of each field over the runs it is in."""
    order: list[str] = []
    for results in runs.values():
        order += [s for s in results if s not in order]
    rows = []
    for system in order:
        per_run = [(results[system], results) for results in runs.values() if system in results]
        fields: dict[str, list[float]] = {}
        for result, results in per_run:
            values = numeric_fields(result)
            if baseline in results and supervised in results:
                values["G"] = gap_share(values["EER"], float(results[baseline]["EER"]),
                                        float(results[supervised]["EER"]))
            for k, v in values.items():
                fields.setdefault(k, []).append(v)
        stats = {}
        for k, vals in fields.items():
            a = np.array([v for v in vals if math.isfinite(v)])
            stats[k] = (float(a.mean()) if a.size else float("nan"),
                        float(a.std(ddof=1)) if a.size > 1 else float("nan"), int(a.size))
        rows.append({"system": system, "n": len(per_run), "stats": stats})
    return rows


def format_mean_std(mean: float, std: float, digits: int) -> str:
    """``m ± s`` (just ``m`` from one run, '–' when undefined)."""
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate_table(rows: list[dict], skip: tuple[str, ...] = ("wall time (s)",)) -> str:
    """Markdown: system | n | EER (%) | minDCF@0.01 | minDCF@0.05 | G | then the other numeric fields."""
    fields = ["EER", "minDCF@0.01", "minDCF@0.05", "G"]
    for r in rows:
        fields += [k for k in r["stats"] if k not in fields and k not in skip]
    digits = {"EER": 2, "G": 2}
    head = ["system", "n", "EER (%)", *fields[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["system"].replace("|", "\\|"), str(r["n"])]
        for k in fields:
            mean, std, _ = r["stats"].get(k, (float("nan"), float("nan"), 0))
            cells.append(format_mean_std(mean, std, digits.get(k, 4)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
