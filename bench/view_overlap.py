"""Mean overlap of the global views of one utterance, as the views dataset cuts them and as independent crops would.

    python bench/view_overlap.py --data CORPUS/train [--global-seconds 2.0] [--num-global 2] [--epochs 3]

For every utterance of ``--data`` (lengths from the file headers) and ``--epochs`` epochs: the shared fraction of
each pair of global crops (``wesv.data.audio.overlap_fraction``) placed by ``crop_spans`` (side by side where they
fit, else spread to opposite ends with a little jitter), by ``crop_spans`` without jitter (the minimum the length
allows), and by independent random positions where they do not fit side by side (wesv before the spread).
"""
import argparse
import itertools
import os

import numpy as np

from wesv.data.audio import audio_num_samples, crop_spans, overlap_fraction
from wesv.data.datadir import read_scp


def independent(n: int, sizes: list[int], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Side by side when they fit, else each at its own random start (the placement before the spread)."""
    if sum(sizes) <= n:
        return crop_spans(n, sizes, rng)
    return [(s, s + size) for s, size in ((int(rng.integers(0, max(1, n - size + 1))), size) for size in sizes)]


def main() -> None:
    """Print the mean shared fraction and the fraction of overlapping pairs for the three placements."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--global-seconds", type=float, default=2.0)
    p.add_argument("--num-global", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    lengths = [audio_num_samples(s, 16000) for s in read_scp(os.path.join(args.data, "wav.scp")).values()]
    size = int(args.global_seconds * 16000)
    sizes = [size] * args.num_global
    placements = {"independent (before)": independent, "spread (now)": crop_spans,
                  "spread, no jitter (minimum)": lambda n, s, r: crop_spans(n, s, r, jitter=0.0)}
    for name, place in placements.items():
        shared = []
        for epoch, (i, n) in itertools.product(range(args.epochs), enumerate(lengths)):
            rng = np.random.default_rng([epoch, i])
            spans = [(0, n) if sp is None else sp for sp in place(n, sizes, rng)]
            shared += [overlap_fraction(a, b) for a, b in itertools.combinations(spans, 2)]
        shared = np.array(shared)
        print(f"{name:28s} mean shared fraction {shared.mean():.3f}; pairs overlapping "
              f"{100 * (shared > 0).mean():.1f} %"
              f", sharing {shared[shared > 0].mean():.3f} of a crop on average ({len(lengths)} utterances, "
              f"{args.num_global} × {args.global_seconds} s)")


if __name__ == "__main__":
    main()
