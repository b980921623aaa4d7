"""View precision of a C-DINO run per epoch, against true labels read only here.

A cluster-drawn view is right when its source utterance has the anchor's true speaker. Reads the run's
``view_pairs/epoch_N.tsv`` records, writes ``E/view_pairs/report.json`` and prints one line per epoch.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re

from wesv.cli import entry_point
from wesv.data.datadir import atomic_write_lines, read_utt2spk
from wesv.errors import WesvError
from wesv.log import get_logger
from wesv.methods.cdino import PAIRS_DIR

log = get_logger("wesv.bin.view_report")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.view_report``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.view_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="a type: cdino experiment dir (holds view_pairs/epoch_N.tsv)")
    p.add_argument("--truth-utt2spk", required=True,
                   help="true utt2spk of the training utterances (read only here, to measure)")
    p.add_argument("--out", default=None, help="report JSON (default EXP/view_pairs/report.json)")
    return p


def read_pairs(path: str) -> tuple[dict[str, str], list[tuple[str, int, str]]]:
    """The ``#`` header's counts and the ``(anchor, view, source)`` triples of one epoch's record."""
    head: dict[str, str] = {}
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("#"):
                words = line[1:].split()
                head.update(zip(words[::2], words[1::2]))
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise WesvError(f"{path}:{n}: expected 'anchor<TAB>view<TAB>source'; the record is damaged — "
                                "rerun the epoch or delete the file")
            pairs.append((parts[0], int(parts[1]), parts[2].strip()))
    return head, pairs


def epoch_view_precision(head: dict[str, str], pairs: list[tuple[str, int, str]], truth: dict[str, str],
                         truth_path: str, num_global: int | None = None) -> dict:
    """Counts, the share of drawn views and their precision (overall and for global views when known)."""
    missing = sorted({u for a, _, s in pairs for u in (a, s) if u not in truth})
    if missing:
        raise WesvError(f"{truth_path}: no speaker for {len(missing)} utterance(s) of the record (first: "
                        f"{missing[0]!r}) — pass the utt2spk of the C-DINO run's training data dir")
    right = [truth[a] == truth[s] for a, _, s in pairs]
    views = int(head.get("views", 0))
    row = {"views": views, "drawn": len(pairs), "drawn_share": len(pairs) / views if views else None,
           "precision": sum(right) / len(right) if right else None, "map": head.get("map")}
    if num_global is not None:
        glob_right = [r for (_, v, _), r in zip(pairs, right) if v < num_global]
        row["precision_global"] = sum(glob_right) / len(glob_right) if glob_right else None
    return row


def num_global_of(exp_dir: str) -> int | None:
    """``method.num_global`` from the run's config.yaml (None when it cannot be read)."""
    import yaml

    try:
        with open(os.path.join(exp_dir, "config.yaml"), encoding="utf-8") as f:
            return int(yaml.safe_load(f)["method"]["num_global"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Measure every epoch's view-pair record and write the report."""
    args = build_parser().parse_args(argv)
    files = glob.glob(os.path.join(args.exp_dir, PAIRS_DIR, "epoch_*.tsv"))
    epochs = sorted((int(m.group(1)), f) for f in files
                    if (m := re.fullmatch(r"epoch_(\d+)\.tsv", os.path.basename(f))))
    if not epochs:
        raise WesvError(f"{os.path.join(args.exp_dir, PAIRS_DIR)}: no epoch_N.tsv view-pair records; train a "
                        "type: cdino run (method.record_view_pairs: true) into --exp-dir first")
    truth = read_utt2spk(args.truth_utt2spk)
    k = num_global_of(args.exp_dir)
    rows = []
    for epoch, path in epochs:
        head, pairs = read_pairs(path)
        row = {"epoch": epoch, **epoch_view_precision(head, pairs, truth, args.truth_utt2spk, k)}
        rows.append(row)
        log.info("epoch %d: %d of %d views drawn from the cluster (%s), precision %s (same true speaker)", epoch,
                 row["drawn"], row["views"], pct(row["drawn_share"]), pct(row["precision"]))
    out = args.out or os.path.join(args.exp_dir, PAIRS_DIR, "report.json")
    atomic_write_lines(out, [json.dumps({"exp_dir": args.exp_dir, "truth_utt2spk": args.truth_utt2spk,
                                         "epochs": rows}, indent=1) + "\n"])
    print(json.dumps(rows[-1]))
    return 0


def pct(x: float | None) -> str:
    """A share as a percentage, or '-' when undefined."""
    return "-" if x is None else f"{100 * x:.1f} %"


if __name__ == "__main__":
    main()
