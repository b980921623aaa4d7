"""Train any method (supervised, DINO, MoCo, ...) from a YAML config into an experiment dir.

``python -m wesv.bin.train --config C --exp-dir E [--resume] [--init-from P] [--section.key value ...]``.

Extra ``--section.key value`` arguments override the config (typed; lists as YAML, e.g. ``--optim.betas [0.9,0.98]``).
Works under ``torchrun --nproc_per_node N -m wesv.bin.train ...`` (DDP). Exit codes: 0 done, 2 user error,
143/130 stopped by SIGTERM/SIGINT after saving ``checkpoints/latest.pt`` (rerun with ``--resume``).
"""
import argparse
import os

from wesv.cli import entry_point
from wesv.config import load_config
from wesv.errors import WesvError


def build_parser() -> argparse.ArgumentParser:
    """The command line (overrides are the unparsed ``--section.key value`` rest)."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.train", description=__doc__.splitlines()[0],
                                allow_abbrev=False, epilog="Any other --section.key value pair overrides the config.")
    p.add_argument("--config", help="YAML config (default with --resume: EXP_DIR/config.yaml)")
    p.add_argument("--exp-dir", required=True, help="experiment dir: checkpoints/, encoder.pt, metrics.jsonl, ...")
    p.add_argument("--resume", action="store_true", help="continue from EXP_DIR/checkpoints/latest.pt if present")
    p.add_argument("--init-from", help="encoder.pt whose weights initialise the encoder (MoCo/DINO/earlier round)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Parse, load the config with overrides, and run the trainer."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    config = args.config
    if config is None:
        saved = os.path.join(args.exp_dir, "config.yaml")
        if not (args.resume and os.path.isfile(saved)):
            raise WesvError("--config is required (it defaults to EXP_DIR/config.yaml only with --resume)")
        config = saved
    overrides = list(rest)
    if args.init_from:
        overrides += ["--trainer.init_from", args.init_from]
    cfg = load_config(config, overrides)
    from wesv.trainer import train

    return train(cfg, args.exp_dir, resume=args.resume)


if __name__ == "__main__":
    main()
