"""Plan what the encoder sees: whole utterances or fixed-length chunks, in length-sorted batches.

A batch mixes lengths: its segments are padded to the longest and the encoder gets their ``lengths``, which mask
the padding all the way down (front-end CMN, convs, pooling), so an embedding does not depend on its batch-mates.
Sorting by length keeps the padding small. With ``chunk_samples`` long utterances become fixed-length chunks
(averaged afterwards), which bounds the memory of a batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


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


def plan_batches(segments: list[Segment], batch_size: int, max_samples: int | None = None) -> list[list[Segment]]:
    """Batches of at most ``batch_size`` segments of similar length, longest first (memory peaks show up at once).

    With ``max_samples``, a batch also stops before its padded size (segments × its longest) would pass it; a
    segment longer than that still gets a batch of its own.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Stable sort: within a length, utterance order is kept, so one utterance's chunks stay together.
    ordered = sorted(segments, key=lambda s: -s.length)
    batches: list[list[Segment]] = []
    for seg in ordered:
        if not batches or len(batches[-1]) >= batch_size or (
                max_samples is not None and (len(batches[-1]) + 1) * batches[-1][0].length > max_samples):
            batches.append([])
        batches[-1].append(seg)
    return batches
