"""Calibrate the embedded corpus: EER of training-free baselines with and without the session channel.

    python bench/corpus_baseline.py --corpus DIR [--clean-corpus DIR_NOCHANNEL]

Prints, for the corpus and for its --no-channel twin (same seed and sizes; generated if missing):
raw mean log-mel cosine EER (the calibrated baseline, target 15-35 %), the same minus the train mean, and an LDA
probe (mean+std fbank stats, LDA fitted on the train speakers) that shows identity is learnable.
"""
import argparse
import json
import os
import time

import torch

from wesv.corpus import make_corpus
from wesv.corpus.baseline import baseline_eer, lda_probe_eer
from wesv.errors import WesvError


def clean_twin(corpus: str, out: str) -> None:
    """Generate the --no-channel corpus with the seed and sizes of ``corpus``."""
    meta_path = os.path.join(corpus, "meta.json")
    if not os.path.isfile(meta_path):
        raise WesvError(f"{meta_path}: missing — is {corpus} a make_corpus output?")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    c = meta["config"]
    keep = ("num_train_speakers", "utts_per_speaker", "num_test_speakers", "test_utts_per_speaker", "min_dur",
            "max_dur", "num_trials", "target_fraction", "trait_spread", "within_var", "twin_fraction")
    make_corpus(out, meta["seed"], channel=False, augment_sets=False, **{k: c[k] for k in keep})


def report(name: str, corpus: str) -> None:
    """Print the three EERs of one corpus."""
    t0 = time.time()
    raw = baseline_eer(corpus)
    sub = baseline_eer(corpus, subtract_mean=True)
    lda = lda_probe_eer(corpus)
    print(f"{name:<12} raw mean-log-mel cosine EER {100 * raw:5.2f} %   minus train mean {100 * sub:5.2f} %   "
          f"LDA probe (mean+std, train speakers) {100 * lda:5.2f} %   ({time.time() - t0:.0f} s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--clean-corpus", help="the --no-channel twin; generated (DIR_nochannel) when not given")
    a = p.parse_args()
    torch.set_num_threads(1)
    clean = a.clean_corpus or a.corpus.rstrip("/") + "_nochannel"
    if not os.path.isdir(os.path.join(clean, "test")):
        clean_twin(a.corpus, clean)
    report("channel", a.corpus)
    report("no-channel", clean)


if __name__ == "__main__":
    main()
