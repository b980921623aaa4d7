"""Make a Kaldi data dir consistent: keep utterances present in every file, sort, regenerate spk2utt."""
import argparse

from wesv.cli import entry_point
from wesv.data.datadir_ops import fix_data_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.fix_data_dir`` (``tools/fix_data_dir.sh``)."""
    parser = argparse.ArgumentParser(prog="fix_data_dir", description=__doc__)
    parser.add_argument("data_dir", help="Kaldi data dir to fix in place")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Fix DIR in place; the originals go to DIR/.backup/ and the removed ids to DIR/.backup/removed_utts."""
    args = build_parser().parse_args(argv)
    fix_data_dir(args.data_dir)  # logs what was kept and removed
    return 0


if __name__ == "__main__":
    main()
