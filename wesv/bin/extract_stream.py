"""Embed a feature stream (face.scp) of a data dir with a branch encoder (branch_NAME.pt of a dlg_lc_mm run).

Writes OUT/xvector.ark/scp (absolute ark paths) and OUT/mean.vec; utterances without the stream are left out.
"""
from __future__ import annotations

import argparse
import os

from wesv.cli import entry_point


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.extract_stream``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.extract_stream", description=__doc__)
    p.add_argument("--model", default=None,
                   help="branch encoder file (e.g. exp/mm_round1/branch_face.pt); without it, each sequence's mean "
                        "frame (training-free)")
    p.add_argument("--data", required=True, help="data dir whose utterances to embed (its wav.scp)")
    p.add_argument("--stream", required=True, help="stream scp (e.g. data/train/face.scp)")
    p.add_argument("--out", required=True, help="output dir")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Load, embed, write."""
    args = build_parser().parse_args(argv)
    from wesv.data.datadir import read_scp
    from wesv.extract.streams import write_stream_embeddings

    write_stream_embeddings(args.model, args.stream, read_scp(os.path.join(args.data, "wav.scp")), args.out)
    return 0


if __name__ == "__main__":
    main()
