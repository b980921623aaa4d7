"""Pack a data dir's audio (FLAC or WAV bytes) with its keys and labels into tar shards plus shards.list."""
import argparse
import os

from wesv.cli import entry_point
from wesv.log import get_logger

log = get_logger("wesv.bin.make_shards")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.make_shards``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.make_shards", description=__doc__)
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp; utt2spk gives the labels when present)")
    p.add_argument("--out", required=True, help="output dir: shard_NNNNNN.tar, shards.list, shards.json")
    p.add_argument("--utts-per-shard", type=int, default=1000, help="utterances per shard (default 1000)")
    p.add_argument("--format", default="flac", choices=["flac", "wav"],
                   help="audio encoding inside the tar (default: %(default)s)")
    p.add_argument("--sample-rate", type=int, default=16000, help="audio at another rate fails (default 16000)")
    p.add_argument("--job", type=int, default=1, help="this job, from 1 (writes its share of the shards; default: %(default)s)")
    p.add_argument("--num-jobs", type=int, default=1, help="number of jobs (default: %(default)s)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.data.datadir import DataDir
    from wesv.data.shards import write_shards

    data = DataDir.load(args.data)
    paths = write_shards(data.wav_scp, data.utt2spk, args.out, args.utts_per_shard, args.job, args.num_jobs,
                         args.format, args.sample_rate)
    log.info("job %d/%d: wrote %d shard(s) into %s (list: %s)", args.job, args.num_jobs, len(paths), args.out,
             os.path.join(args.out, "shards.list"))


if __name__ == "__main__":
    main()
