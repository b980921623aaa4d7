"""Plot NMI / AMI / ARI / purity / inverse purity / number of clusters over pseudo-labelling rounds."""
from __future__ import annotations

import argparse

from wesv.cli import entry_point
from wesv.cluster.plot import QUALITY, plot_rounds
from wesv.log import get_logger


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.plot_rounds``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.plot_rounds", description=__doc__)
    p.add_argument("--reports", nargs="+", required=True,
                   help="cluster_report.json of each round, in round order (written by cluster --truth-utt2spk)")
    p.add_argument("--out", required=True, help="PNG to write")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Parse options, plot the rounds and log one line per round."""
    args = build_parser().parse_args(argv)
    logger = get_logger("wesv.cluster")
    for row in plot_rounds(args.reports, args.out):
        scores = " ".join(f"{label} {row[key]:.4f}" for key, label in QUALITY if row[key] is not None)
        chance = " ".join(f"{label} {row['chance_' + key]:.4f}" for key, label in QUALITY
                          if row.get("chance_" + key) is not None)
        logger.info("%s: %s clusters %d%s", row["round"], scores, row["num_clusters"],
                    f" (chance partition: {chance})" if chance else "")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    main()
