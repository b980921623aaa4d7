"""Write the shuffled-id control of a pseudo-label data dir: the same utterances and cluster sizes, ids at random.

Training a round on it measures what a round gains from extra training alone; a round's gain counts only as far
as it beats this control.
"""
from __future__ import annotations

import argparse

from wesv.cli import entry_point
from wesv.cluster.controls import write_shuffled_datadir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.shuffle_labels``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.shuffle_labels", description=__doc__)
    p.add_argument("--data", required=True, help="pseudo-label data dir (utt2spk of cluster ids, wav.scp)")
    p.add_argument("--out", required=True, help="new data dir for the control")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation (default: %(default)s)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Shuffle and write."""
    args = build_parser().parse_args(argv)
    write_shuffled_datadir(args.data, args.out, args.seed)
    return 0


if __name__ == "__main__":
    main()
