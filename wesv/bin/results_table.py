"""Gather compute_metrics JSON files into one Markdown results table (and one DET plot of all systems)."""
import argparse

from wesv.cli import entry_point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.results_table``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.results_table", description=__doc__)
    p.add_argument("--out", required=True, help="Markdown file to write, e.g. exp/RESULTS.md")
    p.add_argument("--det-png", help="draw every system's DET curve in this PNG")
    p.add_argument("json", nargs="+", help="compute_metrics --json files, one per system (table order)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.scoring.table import write_results
    print(write_results(args.out, args.json, args.det_png), end="")


if __name__ == "__main__":
    main()
