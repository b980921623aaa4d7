"""Split a Kaldi data dir into N contiguous parts DIR/splitN/{1..N}/ (the split_scp.pl rule)."""
import argparse

from wesv.cli import entry_point
from wesv.data.datadir_ops import split_data_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.split_data_dir`` (``tools/split_data_dir.sh``)."""
    parser = argparse.ArgumentParser(prog="split_data_dir", description=__doc__)
    parser.add_argument("data_dir", help="Kaldi data dir to split")
    parser.add_argument("num_jobs", type=int, help="number of parts")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Write DIR/splitN/1 .. DIR/splitN/N, each a data dir holding a contiguous chunk of wav.scp."""
    args = build_parser().parse_args(argv)
    split_data_dir(args.data_dir, args.num_jobs)  # logs where the parts went
    return 0


if __name__ == "__main__":
    main()
