"""Plot the epoch loss and validation EER of runs side by side, e.g. yours against the shipped reference curves:

    python -m wesv.bin.plot_curves --out cmp.png exp/dino reference=../../docs/reference_curves/mini/dino.jsonl

Each RUN is an exp dir or a metrics.jsonl, optionally named NAME=PATH (a name with 'reference' is drawn dashed).
"""
from __future__ import annotations

import argparse
import os

from wesv.cli import entry_point
from wesv.trainer.curves import plot_curves, read_epochs


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.plot_curves``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.plot_curves", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="exp dirs or metrics.jsonl files, each optionally NAME=PATH")
    p.add_argument("--out", required=True, help="PNG to write")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Read every run's epoch records and plot them."""
    args = build_parser().parse_args(argv)
    runs = {}
    for spec in args.runs:
        name, _, path = spec.rpartition("=") if "=" in spec else (None, "", spec)
        runs[name or os.path.basename(os.path.normpath(path))] = read_epochs(path)
    plot_curves(runs, args.out)
    return 0


if __name__ == "__main__":
    main()
