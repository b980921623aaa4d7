"""Fuse score files of one trial list (e.g. audio and face branches): z-normalise each, then a weighted sum."""
import argparse

from wesv.cli import entry_point
from wesv.log import get_logger

log = get_logger("wesv.bin.fuse_scores")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.fuse_scores``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.fuse_scores", description=__doc__)
    p.add_argument("--scores", nargs="+", required=True,
                   help="two or more 'enroll test score' files over the same trials (any order)")
    p.add_argument("--weights", nargs="+", type=float, default=None,
                   help="one weight per --scores file, in order (default: all 1)")
    p.add_argument("--out", required=True, help="fused score file to write, in the first file's trial order")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Fuse and write the scores."""
    args = build_parser().parse_args(argv)
    from wesv.scoring.fusion import fuse_scores
    from wesv.scoring.io import write_scores

    weights = args.weights if args.weights is not None else [1.0] * len(args.scores)
    enroll, test, fused = fuse_scores(args.scores, weights)
    write_scores(args.out, enroll, test, fused)
    log.info("fused %d score files (weights %s) over %d trials into %s", len(args.scores),
             ",".join(f"{w:g}" for w in weights), len(fused), args.out)
    return 0


if __name__ == "__main__":
    main()
