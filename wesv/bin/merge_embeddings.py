"""Merge the shards of an extraction (xvector.J.scp, bad_utts.J) into xvector.scp, bad_utts and mean.vec."""
import argparse
import os

from wesv.cli import entry_point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.merge_embeddings``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.merge_embeddings", description=__doc__)
    p.add_argument("--out", required=True, help="the extraction's output dir")
    p.add_argument("--num-jobs", type=int, required=True, help="number of shards extracted")
    p.add_argument("--data", required=True, help="the data dir extracted (its wav.scp sets the expected count)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.data.datadir import DataDir
    from wesv.extract.shards import merge_shards

    merge_shards(args.out, args.num_jobs, DataDir.load(args.data).wav_scp, os.path.join(args.data, "wav.scp"))


if __name__ == "__main__":
    main()
