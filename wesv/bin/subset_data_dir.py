"""Copy part of a Kaldi data dir (by utterance list, speaker list, first N or random N) to a new dir."""
import argparse

from wesv.cli import entry_point
from wesv.data.datadir_ops import subset_data_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.subset_data_dir`` (``tools/subset_data_dir.sh``)."""
    parser = argparse.ArgumentParser(prog="subset_data_dir", description=__doc__)
    parser.add_argument("src", help="source data dir")
    parser.add_argument("dst", help="output data dir")
    sel = parser.add_mutually_exclusive_group(required=True)
    sel.add_argument("--utt-list", help="file whose first column lists the utterances to keep")
    sel.add_argument("--spk-list", help="file whose first column lists the speakers to keep")
    sel.add_argument("--first", type=int, help="keep the first N utterances of wav.scp")
    sel.add_argument("--random", type=int, help="keep N utterances drawn at random (see --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default: %(default)s)")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Write the subset of SRC chosen by one selector to DST (spk2utt regenerated, trials filtered)."""
    args = build_parser().parse_args(argv)
    subset_data_dir(args.src, args.dst, utt_list=args.utt_list, spk_list=args.spk_list,
                           first=args.first, random=args.random, seed=args.seed)  # logs the counts
    return 0


if __name__ == "__main__":
    main()
