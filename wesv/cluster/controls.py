"""Control partitions that attribute a pseudo-label round's gain: the same cluster sizes with the ids shuffled."""
from __future__ import annotations

import os

import numpy as np

from wesv.cluster.pipeline import write_cluster_datadir
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger(__name__)


def shuffled_labels(labels: list[str], seed: int) -> list[str]:
    """The same multiset of labels (so every cluster keeps its size), assigned to the utterances at random."""
    return [labels[i] for i in np.random.default_rng(seed).permutation(len(labels))]


def write_shuffled_datadir(src: str, out: str, seed: int = 0) -> int:
    """A data dir with ``src``'s utterances and cluster sizes but shuffled ids; returns the number of utterances."""
    path = os.path.join(src, "utt2spk")
    if not os.path.isfile(path):
        raise WesvError(f"{path}: missing; give a pseudo-label data dir written by wesv.bin.cluster")
    if os.path.realpath(src) == os.path.realpath(out):
        raise WesvError(f"--out {out} is the source data dir; choose a new one")
    utt2spk = read_utt2spk(path)
    wav = read_scp(os.path.join(src, "wav.scp"))
    utts = list(utt2spk)
    labels = shuffled_labels([utt2spk[u] for u in utts], seed)
    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    write_cluster_datadir(out, wav, utts, np.array([index[x] for x in labels]))
    log.info("%s: %d utterances, %d clusters of %s's sizes, ids shuffled (seed %d)", out, len(utts), len(names), src,
             seed)
    return len(utts)
