"""Extract speaker embeddings of a data dir (one shard of an array job), or merge the shards (--merge)."""
import argparse
import os

from wesv.cli import entry_point
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.bin.extract")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.extract``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.extract", description=__doc__)
    p.add_argument("--model-dir", help="experiment dir holding encoder.pt")
    p.add_argument("--model", help="encoder file (default: MODEL_DIR/encoder.pt)")
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp)")
    p.add_argument("--out", required=True, help="output dir: xvector.J.ark/scp, .done.J, then xvector.scp")
    p.add_argument("--job", type=int, default=1,
                   help="this shard, from 1 (JOB / SLURM_ARRAY_TASK_ID; default: %(default)s)")
    p.add_argument("--num-jobs", type=int, default=1, help="number of shards (default: %(default)s)")
    p.add_argument("--chunk-seconds", type=float,
                   help="embed fixed-length chunks and average them (long files; bounds a batch's memory)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="segments per batch: sorted by length, zero-padded to the longest, padding masked (the "
                        "embeddings equal --batch-size 1's; default: %(default)s)")
    p.add_argument("--max-batch-seconds", type=float,
                   help="cap on a batch's padded audio (default 20 on CPU, where bigger batches run slower; none on a "
                        "GPU; 0: no cap)")
    p.add_argument("--device", default="auto",
                   help="auto (GPU if present), cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--num-threads", type=int, default=1,
                   help="CPU threads per job (default: %(default)s; array jobs run side by side, and more threads "
                        "than free cores slows every job down several times)")
    p.add_argument("--skip-bad", action="store_true",
                   help="log unreadable/too-short audio to bad_utts.J and go on instead of failing")
    p.add_argument("--on-mismatch", choices=("redo", "fail"), default="redo",
                   help="a finished shard whose fingerprint (model sha1, wav.scp, shard, --chunk-seconds) differs: "
                        "extract it again (with a log line) or fail (default: %(default)s)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="embed what there is of a wav file cut short (its header claims more audio) instead of "
                        "refusing it")
    p.add_argument("--merge", action="store_true", help="merge the --num-jobs finished shards into xvector.scp")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.data.datadir import DataDir
    from wesv.extract.shards import extract_shard, merge_shards

    data = DataDir.load(args.data)
    wav_scp_path = os.path.join(args.data, "wav.scp")
    if args.merge:
        merge_shards(args.out, args.num_jobs, data.wav_scp, wav_scp_path)
        return
    if not 1 <= args.job <= args.num_jobs:
        raise WesvError(f"--job {args.job} is outside 1..{args.num_jobs} (jobs count from 1)")
    if args.num_threads < 1:
        raise WesvError(f"--num-threads must be at least 1, got {args.num_threads}")
    if args.batch_size < 1:
        raise WesvError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_batch_seconds is not None and args.max_batch_seconds < 0:
        raise WesvError(f"--max-batch-seconds must be >= 0 (0: no cap), got {args.max_batch_seconds}")
    if args.chunk_seconds is not None and args.chunk_seconds <= 0:
        raise WesvError(f"--chunk-seconds must be positive, got {args.chunk_seconds}")
    model = args.model or (os.path.join(args.model_dir, "encoder.pt") if args.model_dir else None)
    if model is None:
        raise WesvError("give --model-dir (holding encoder.pt) or --model PATH")
    import torch

    from wesv.models import load_encoder
    torch.set_num_threads(max(1, args.num_threads))
    # The encoder is loaded only if the shard is not already done with this model's fingerprint.
    extract_shard(lambda: load_encoder(model), data.wav_scp, args.out, args.job, args.num_jobs,
                  batch_size=args.batch_size, chunk_seconds=args.chunk_seconds,
                  max_batch_seconds=args.max_batch_seconds, device=args.device, skip_bad=args.skip_bad,
                  model_path=os.path.abspath(model), on_mismatch=args.on_mismatch,
                  allow_truncated=args.allow_truncated)


if __name__ == "__main__":
    main()
