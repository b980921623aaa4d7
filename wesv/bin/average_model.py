"""Average the exported encoder (DINO: the teacher) over the last N (or the N best-validated) epoch checkpoints."""
import argparse
import os

from wesv.cli import entry_point
from wesv.log import get_logger

log = get_logger("wesv.bin.average_model")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.average_model``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.average_model", description=__doc__)
    p.add_argument("--exp-dir", required=True, help="experiment dir holding checkpoints/epoch_N.pt")
    p.add_argument("--num-avg", type=int, required=True, help="number of epoch checkpoints to average")
    p.add_argument("--by", default="last", choices=["last", "best-val"],
                   help="last: the newest N; best-val: the N of lowest val_eer in metrics.jsonl (default: %(default)s)")
    p.add_argument("--out", help="encoder file to write (default EXP_DIR/encoder_avg.pt); extract reads it with "
                                 "--model")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.models import save_encoder
    from wesv.trainer.average import average_checkpoints, select_checkpoints

    chosen = select_checkpoints(args.exp_dir, args.num_avg, args.by)
    encoder = average_checkpoints([p for _, p in chosen])
    out = args.out or os.path.join(args.exp_dir, "encoder_avg.pt")
    save_encoder(out, encoder)
    log.info("averaged epochs %s into %s", ", ".join(str(e) for e, _ in chosen), out)


if __name__ == "__main__":
    main()
