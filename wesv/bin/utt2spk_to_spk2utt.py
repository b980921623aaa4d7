"""Invert utt2spk into spk2utt (like Kaldi's utt2spk_to_spk2utt.pl): reads a file or stdin, writes stdout."""
import argparse
import sys

from wesv.cli import entry_point
from wesv.data.datadir import read_utt2spk, utt2spk_to_spk2utt, write_scp


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.utt2spk_to_spk2utt`` (``tools/utt2spk_to_spk2utt.sh``)."""
    parser = argparse.ArgumentParser(prog="utt2spk_to_spk2utt", description=__doc__)
    parser.add_argument("utt2spk", nargs="?", default="-", help="utt2spk file ('-' = stdin; default: %(default)s)")
    parser.add_argument("--out", help="write spk2utt here (atomically) instead of stdout")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Print spk2utt for UTT2SPK ('-' or nothing: stdin), or write it atomically with --out."""
    args = build_parser().parse_args(argv)
    spk2utt = utt2spk_to_spk2utt(read_utt2spk("/dev/stdin" if args.utt2spk == "-" else args.utt2spk))
    if args.out:
        write_scp(args.out, spk2utt)
    else:
        sys.stdout.writelines(f"{spk} {' '.join(utts)}\n" for spk, utts in spk2utt.items())
    return 0


if __name__ == "__main__":
    main()
