"""Training-free baseline embeddings: per-utterance mean raw log-mel fbank, written as xvector.ark/.scp."""
import argparse

import torch

from wesv.cli import entry_point
from wesv.corpus.baseline import fbank_stats, write_embeddings


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.baseline_embeddings``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.baseline_embeddings", description=__doc__)
    p.add_argument("--data", required=True, help="Kaldi data dir (wav.scp)")
    p.add_argument("--out", required=True, help="output dir for xvector.ark / xvector.scp")
    p.add_argument("--with-std", action="store_true", help="append the per-bin std (mean+std statistics)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Parse options, compute and write the embeddings."""
    a = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    keys, emb = fbank_stats(a.data, with_std=a.with_std)
    write_embeddings(a.out, keys, emb)


if __name__ == "__main__":
    main()
