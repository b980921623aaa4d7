"""Check a Kaldi data dir (wav.scp, utt2spk, spk2utt, trials); list every problem with its file:line and fix."""
import argparse

from wesv.cli import entry_point
from wesv.data.validate import validate_data_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.validate_data_dir`` (``tools/validate_data_dir.sh``)."""
    parser = argparse.ArgumentParser(prog="validate_data_dir", description=__doc__)
    parser.add_argument("data_dir", help="Kaldi data dir holding wav.scp (and utt2spk, spk2utt, trials)")
    parser.add_argument("--no-trials", action="store_true", help="do not check DIR/trials")
    parser.add_argument("--check-audio", action="store_true",
                        help="also decode every audio file with extraction's checks (runs pipes; slow on big dirs)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="with --check-audio, require this sample rate")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="with --check-audio, accept wav files cut short (as extract --allow-truncated does)")
    parser.add_argument("--streams", default=None,
                        help="comma-separated feature-stream scps to check (names in DIR or paths; default: face.scp "
                             "and the scps stream_info.json names, when present)")
    return parser


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Validate DIR; print a one-line summary, or exit 2 with every problem."""
    args = build_parser().parse_args(argv)
    summary = validate_data_dir(args.data_dir, check_trials=not args.no_trials, check_audio=args.check_audio,
                                sample_rate=args.sample_rate, allow_truncated=args.allow_truncated,
                                streams=None if args.streams is None else [s for s in args.streams.split(",") if s])
    print(summary)
    return 0


if __name__ == "__main__":
    main()
