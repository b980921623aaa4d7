"""Pretrain a small wav2vec 2.0 (transformers' Wav2Vec2ForPreTraining) on a data dir's audio; labels are not read.

The output directory loads like a downloaded WavLM Base+: give it as ``encoder.model_dir`` of an ``ssl_mhfa``
encoder. It also holds pretrain_log.jsonl (loss per logged step) and pretrain_summary.json.
"""
import argparse

from wesv.cli import entry_point
from wesv.log import get_logger

log = get_logger("wesv.bin.pretrain_ssl")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.pretrain_ssl``."""
    from wesv.features.ssl_pretrain import PRESETS

    p = argparse.ArgumentParser(prog="python -m wesv.bin.pretrain_ssl", description=__doc__)
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp; utt2spk is ignored)")
    p.add_argument("--out", required=True, help="output model dir (written whole at the end)")
    p.add_argument("--config-preset", choices=sorted(PRESETS), default="tiny",
                   help="model size (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default: %(default)s)")
    p.add_argument("--crop-seconds", type=float, default=2.0, help="crop length (default: %(default)s)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW lr (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--num-threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    p.add_argument("--log-every", type=int, default=10, help="steps between log records (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Pretrain and save; logs the first and last loss and the seconds per step."""
    args = build_parser().parse_args(argv)
    import torch

    from wesv.features.ssl_pretrain import pretrain

    torch.set_num_threads(args.num_threads)
    s = pretrain(args.data, args.out, args.config_preset, args.steps, args.batch_size, args.crop_seconds, args.lr,
                 seed=args.seed, device=args.device, log_every=args.log_every, force=args.force)
    log.info("pretrained %s for %d steps: loss %.4f → %.4f, %.3f s/step → %s", s["preset"], s["steps"],
             s["first_loss"], s["last_loss"], s["seconds_per_step"], args.out)


if __name__ == "__main__":
    main()
