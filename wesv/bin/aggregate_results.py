"""Mean ± standard deviation over seeds of every system's metrics: one Markdown table from several recipe runs.

Each RUN is a recipe dir of one seed (holding exp/*/eval/test.json); systems are matched by name. The table adds
G, the share of the baseline-to-supervised EER gap a system closes, when both reference rows are there.
"""
from __future__ import annotations

import argparse
import os

from wesv.cli import entry_point
from wesv.data.datadir import atomic_write_lines
from wesv.scoring.aggregate import aggregate, aggregate_table, collect


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.aggregate_results``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.aggregate_results", description=__doc__)
    p.add_argument("runs", nargs="+", help="recipe dirs of one seed each (e.g. runs/claims/seed0 ...)")
    p.add_argument("--out", required=True, help="Markdown file to write (atomically)")
    p.add_argument("--pattern", default="exp/*/eval/test.json",
                   help="compute_metrics JSON files under each run dir (default: %(default)s)")
    p.add_argument("--title", default="Results over seeds", help="heading of the file (default: %(default)s)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Collect, aggregate, write and print the table."""
    args = build_parser().parse_args(argv)
    rows = aggregate(collect(args.runs, args.pattern))
    runs = ", ".join(os.path.basename(os.path.normpath(r)) for r in args.runs)
    text = (f"# {args.title}\n\nMean ± standard deviation (ddof 1) over {len(args.runs)} runs ({runs}); n is the "
            "number of runs that have the system. G = (EER_baseline − EER) / (EER_baseline − EER_supervised), "
            "per run, then averaged.\n\n" + aggregate_table(rows))
    atomic_write_lines(args.out, [text])
    print(text, end="")
    return 0


if __name__ == "__main__":
    main()
