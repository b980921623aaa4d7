"""Precision of a DLG-LC run's loss-gate and label correction per epoch, against true labels read only here.

A pseudo-label is right when it equals its cluster's majority true speaker. Writes ``E/loss_gate/report.json`` and
``E/loss_gate/precision.png``, and prints one line per epoch.
"""
from __future__ import annotations

import argparse
import json
import os

from wesv.cli import entry_point
from wesv.data.datadir import atomic_write_lines, read_utt2spk
from wesv.log import get_logger
from wesv.loss_gate.plots import plot_gate_epochs, plot_precision
from wesv.loss_gate.record import RECORD_DIR, read_records
from wesv.loss_gate.report import epoch_precision

log = get_logger("wesv.bin.loss_gate_report")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.loss_gate_report``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.loss_gate_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="a type: dlg_lc experiment dir (holds loss_gate/epoch_N.npz)")
    p.add_argument("--truth-utt2spk", required=True,
                   help="true utt2spk of the training utterances (read only here, to measure)")
    p.add_argument("--out", default=None, help="report JSON (default EXP/loss_gate/report.json)")
    return p


def fmt(x: float | None) -> str:
    """A share as a percentage, or '-' when undefined."""
    return "-" if x is None else f"{100 * x:.1f} %"


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Measure every epoch's record and write the report and the plots."""
    args = build_parser().parse_args(argv)
    records = read_records(args.exp_dir)
    truth = read_utt2spk(args.truth_utt2spk)
    rows = []
    for epoch, rec in records:
        row = {"epoch": epoch, **epoch_precision(rec, truth, args.truth_utt2spk)}
        rows.append(row)
        log.info("epoch %d: labels right %s, gated in %d (precision %s), corrected %d (precision %s; "
                 "wrong->right %d, right->wrong %d)", epoch, fmt(row["accuracy_all"]), row["gated_in"],
                 fmt(row["gate_precision"]), row["corrected"], fmt(row["correction_precision"]),
                 row["wrong_to_right"], row["right_to_wrong"])
    out_dir = os.path.join(args.exp_dir, RECORD_DIR)
    out = args.out or os.path.join(out_dir, "report.json")
    atomic_write_lines(out, [json.dumps({"exp_dir": args.exp_dir, "epochs": rows}, indent=1) + "\n"])
    plot_precision(rows, os.path.join(out_dir, "precision.png"))
    plot_gate_epochs(records, os.path.join(out_dir, "loss_gate.png"))
    print(json.dumps(rows[-1]))
    return 0


if __name__ == "__main__":
    main()
