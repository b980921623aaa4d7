"""Collect compute_metrics JSON files into a Markdown results table and one DET plot of all systems."""
from __future__ import annotations

import os

from wesv.data.textfile import read_json
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger(__name__)

REQUIRED = ("system", "EER", "minDCF@0.01", "minDCF@0.05")


def load_result(path: str) -> dict:
    """Read one compute_metrics JSON and check it has the fields the table needs."""
    result = read_json(path, "pass the --json written by compute_metrics", "re-run compute_metrics --json")
    missing = [k for k in REQUIRED if k not in result] if isinstance(result, dict) else list(REQUIRED)
    if missing:
        raise WesvError(f"{path}: missing {', '.join(missing)} — is this a compute_metrics --json file?")
    return result


def _cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "\\|")
    if isinstance(value, int):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def results_table(results: list[dict]) -> str:
    """Markdown table: ``system | EER (%) | minDCF@0.01 | minDCF@0.05`` then every extra field, first-seen order."""
    extras: list[str] = []
    for r in results:
        extras += [k for k in r.get("extra", {}) if k not in extras]
    header = ["system", "EER (%)", "minDCF@0.01", "minDCF@0.05", *extras]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [_cell(r["system"]), f"{r['EER']:.3f}", f"{r['minDCF@0.01']:.4f}", f"{r['minDCF@0.05']:.4f}"]
        cells += [_cell(r["extra"][k]) if k in r.get("extra", {}) else "–" for k in extras]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def det_of_all(results: list[dict], json_paths: list[str], det_png: str) -> None:
    """Redraw every system's DET curve from the trials and scores paths its JSON records."""
    from wesv.scoring.det import DetCurve, plot_det
    from wesv.scoring.evaluate import matched_scores
    from wesv.scoring.metrics import error_rates

    curves = []
    for r, path in zip(results, json_paths):
        for key in ("trials", "scores"):
            if not os.path.isfile(r.get(key, "")):
                raise WesvError(f"{path}: {key} file {r.get(key)!r} not found — the DET curve is redrawn from it; "
                                "re-run compute_metrics or leave out --det-png")
        scores, labels, _ = matched_scores(r["trials"], r["scores"])
        p_miss, p_fa, _ = error_rates(scores, labels)
        curves.append(DetCurve(r["system"], p_miss, p_fa, r["EER"] / 100))
    plot_det(curves, det_png)


def write_results(out: str, json_paths: list[str], det_png: str | None = None) -> str:
    """Write the table (and the DET PNG, linked below it) to ``out``; return the table text."""
    if not json_paths:
        raise WesvError("no JSON files given — pass the --json outputs of compute_metrics")
    results = [load_result(p) for p in json_paths]
    names = [r["system"] for r in results]
    if len(set(names)) != len(names):
        log.warning("system names repeat (%s); pass --system to compute_metrics to tell them apart", names)
    text = "# Results\n\n" + results_table(results)
    if det_png:
        det_of_all(results, json_paths, det_png)
        rel = os.path.relpath(os.path.abspath(det_png), os.path.dirname(os.path.abspath(out)))
        text += f"\n![DET curves]({rel})\n"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)
    return text
