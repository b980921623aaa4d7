"""How much the channel alone tells two views of one utterance apart from other utterances of the same speaker.

    python bench/channel_shortcut.py --data CORPUS/train [--seconds 2.0] [--channel-prob 1.0] [--seed 0]

The descriptor carries no speaker information by design: the per-bin standard deviation over frames of the
mean-normalised log-mel (80 bins) — the spread of each band around its own mean, set by the session's noise floor,
band limits, codec and room. Trials pair two crops (2 s, spread as the views dataset spreads them) of one utterance
(target) against a crop of another utterance of the *same speaker* (non-target), scored by the cosine of the
mean-subtracted descriptors. An EER well below 50 % means that a pretext task "same utterance?" can be solved from
the channel without learning the speaker. The script prints that EER with the views as cut (no augmentation) and
with the per-view channel augmentation of ``wesv.augment.channel`` (``--channel-prob``, the other channel settings
at their ``AugmentConfig`` defaults), and the channel augmentation's time per 3 s crop.
"""
import argparse
import json
import os
import time
from collections import defaultdict

import numpy as np
import torch

from wesv.augment import AugmentConfig, channel_augment
from wesv.data.audio import crops, load_audio
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.features.fbank import Fbank, FbankConfig
from wesv.scoring.metrics import compute_eer

SR = 16000


def descriptor(fbank: Fbank, waves: list[np.ndarray]) -> np.ndarray:
    """Per-bin std over frames of the mean-normalised log-mel, one row per wave (equal lengths)."""
    with torch.no_grad():
        feats = fbank(torch.from_numpy(np.stack(waves)))  # (B, frames, bins), CMN on
    return feats.std(dim=1).numpy().astype(np.float64)


def views(data: str, seconds: float, seed: int, cfg: AugmentConfig | None) -> tuple[list[str], np.ndarray]:
    """Two crops of every utterance (augmented per view when ``cfg``): utterance ids and (N, 2, samples)."""
    wav = read_scp(os.path.join(data, "wav.scp"))
    size = int(seconds * SR)
    utts, pairs = [], []
    for i, (utt, spec) in enumerate(wav.items()):
        rng = np.random.default_rng([seed, i])
        pair = crops(load_audio(spec, SR), [size, size], rng)
        if cfg is not None:
            pair = [channel_augment(v, cfg, rng) for v in pair]
        utts.append(utt)
        pairs.append(np.stack(pair))
    return utts, np.stack(pairs).astype(np.float32)


def shortcut_eer(data: str, seconds: float, seed: int, cfg: AugmentConfig | None) -> tuple[float, int, int]:
    """EER (%) of same-utterance vs other-utterance-same-speaker crop pairs; numbers of target / non-target trials."""
    utt2spk = read_utt2spk(os.path.join(data, "utt2spk"))
    utts, pairs = views(data, seconds, seed, cfg)
    fbank = Fbank(FbankConfig(dither=0.0, cmn=True)).eval()
    a = np.concatenate([descriptor(fbank, list(pairs[i:i + 64, 0])) for i in range(0, len(pairs), 64)])
    b = np.concatenate([descriptor(fbank, list(pairs[i:i + 64, 1])) for i in range(0, len(pairs), 64)])
    mean = np.concatenate([a, b]).mean(0)
    a, b = a - mean, b - mean
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    by_spk = defaultdict(list)
    for i, u in enumerate(utts):
        by_spk[utt2spk[u]].append(i)
    scores, labels = [], []
    for members in by_spk.values():
        for i in members:
            for j in members:
                scores.append(float(a[i] @ b[j]))
                labels.append(i == j)
    eer, _ = compute_eer(np.array(scores), np.array(labels, dtype=bool))
    return 100 * eer, int(sum(labels)), int(len(labels) - sum(labels))


def ms_per_crop(cfg: AugmentConfig, seconds: float = 3.0, repeats: int = 200) -> float:
    """Mean time of ``channel_augment`` on one crop (every part on: band limits and codec always drawn)."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    full = AugmentConfig(**{**cfg.__dict__, "band_prob": 1.0, "codec_prob": 1.0})
    channel_augment(x, full, rng)
    start = time.perf_counter()
    for _ in range(repeats):
        channel_augment(x, full, rng)
    return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    """Print the shortcut EER without and with per-view channel augmentation, and its speed."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a data dir with wav.scp and utt2spk (e.g. make_corpus's train)")
    p.add_argument("--seconds", type=float, default=2.0, help="crop length (the mini DINO global view)")
    p.add_argument("--channel-prob", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = AugmentConfig(channel_prob=args.channel_prob)
    out = {}
    for name, aug in (("no augmentation", None), (f"channel augmentation (channel_prob {args.channel_prob})", cfg)):
        eer, nt, nn = shortcut_eer(args.data, args.seconds, args.seed, aug)
        out[name] = round(eer, 2)
        print(f"{name:45s} shortcut EER {eer:6.2f} %  ({nt} same-utterance, {nn} same-speaker other-utterance pairs)")
    out["channel_augment_ms_per_3s_crop"] = round(ms_per_crop(cfg), 3)
    print(f"channel_augment: {out['channel_augment_ms_per_3s_crop']:.3f} ms per 3 s crop (one thread)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
