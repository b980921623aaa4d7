"""List an unpacked RIRS_NOISES tree (simulated_rirs/{small,medium,large}room/RoomN/*.wav) for wesv.augment."""
import argparse

from wesv.augment.prepare import prepare_rirs
from wesv.cli import entry_point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.prepare_rirs``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.prepare_rirs", description=__doc__)
    p.add_argument("--rirs-dir", required=True, help="RIRS_NOISES root holding simulated_rirs/")
    p.add_argument("--out", required=True, help="output directory, e.g. data/rirs")
    p.add_argument("--include-real", action="store_true",
                   help="also list the real RIRs of real_rirs_isotropic_noises/ (not the noises)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Parse options and write OUT/wav.scp."""
    a = build_parser().parse_args(argv)
    prepare_rirs(a.rirs_dir, a.out, a.include_real)


if __name__ == "__main__":
    main()
