"""Plan what the encoder sees: whole utterances or fixed-length chunks, batched only with equal lengths.

No padding, ever: an encoder's pooling and CMN would see the padded frames, so a padded utterance's embedding
would depend on its batch-mates. Instead a batch holds segments of exactly one length — whole utterances that
happen to be equally long, or (with ``chunk_samples``) fixed-length chunks from any utterances, which is what
makes large batches possible on real data where nearly every utterance has its own length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True)
class Segment:
    """Samples ``[start, start + length)`` of utterance ``utt``."""

    utt: str
    start: int
    length: int


def plan_segments(lengths: dict[str, int], chunk_samples: int | None = None) -> list[Segment]:
    """Whole utterances, or ``ceil(n / chunk)`` chunks each (the last one aligned to the end, overlapping)."""
    segments: list[Segment] = []
    for utt, n in lengths.items():
        if chunk_samples is None or n <= chunk_samples:
            segments.append(Segment(utt, 0, n))
            continue
        k = math.ceil(n / chunk_samples)
        starts = [i * chunk_samples for i in range(k - 1)] + [n - chunk_samples]
        segments.extend(Segment(utt, s, chunk_samples) for s in starts)
    return segments


def plan_batches(segments: list[Segment], batch_size: int) -> list[list[Segment]]:
    """Batches of at most ``batch_size`` equal-length segments, longest first (memory peaks show up at once)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Stable sort: within a length, utterance order is kept, so one utterance's chunks stay together.
    ordered = sorted(segments, key=lambda s: -s.length)
    batches: list[list[Segment]] = []
    for _, group in groupby(ordered, key=lambda s: s.length):
        group = list(group)
        batches.extend(group[i:i + batch_size] for i in range(0, len(group), batch_size))
    return batches
