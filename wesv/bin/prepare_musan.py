"""List an unpacked MUSAN tree (noise/, music/, speech/) as the augmentation list wesv.augment reads."""
import argparse

from wesv.augment.prepare import prepare_musan
from wesv.cli import entry_point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.prepare_musan``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.prepare_musan", description=__doc__)
    p.add_argument("--musan-dir", required=True, help="MUSAN root holding noise/, music/, speech/")
    p.add_argument("--out", required=True, help="output directory, e.g. data/musan")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Parse options and write OUT/wav.scp."""
    a = build_parser().parse_args(argv)
    prepare_musan(a.musan_dir, a.out)


if __name__ == "__main__":
    main()
