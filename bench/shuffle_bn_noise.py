"""How noisy BatchNorm statistics are over chunks of m samples (one-process Shuffle-BN of MoCo).

    python bench/shuffle_bn_noise.py --data CORPUS/train

A freshly initialised mini ECAPA-TDNN (64 channels) in training mode sees 128 random 2 s crops; for the first, a
middle and the last BatchNorm layer it prints the RMS over channels of (mean over a random chunk of m samples −
mean over all 128) / std over all 128, averaged over 200 chunks, for m = 8, 16, 32.
"""
import argparse

import numpy as np
import torch
from torch import nn
from wesv.models.ecapa_tdnn import EcapaTdnn, EcapaTdnnSmallConfig
from wesv.data.datadir import read_scp
from wesv.data.audio import crop, load_audio
p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--data", required=True)
args = p.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)
enc = EcapaTdnn(EcapaTdnnSmallConfig(channels=64, embed_dim=128, se_bottleneck=32, attention_bottleneck=32)).train()
wav = list(read_scp(f"{args.data}/wav.scp").values())
rng = np.random.default_rng(0)
x = torch.from_numpy(np.stack([crop(load_audio(w), 32000, rng) for w in wav[:128]]))
inputs = {}
bns = [m for m in enc.modules() if isinstance(m, nn.BatchNorm1d)]
for i, m in enumerate(bns):
    m.register_forward_hook(lambda mod, inp, out, i=i: inputs.__setitem__(i, inp[0].detach()))
with torch.no_grad():
    enc(x)
for i in (0, len(bns) // 2, len(bns) - 1):
    h = inputs[i]  # (B, C, T) or (B, C)
    dims = (0, 2) if h.dim() == 3 else (0,)
    mu, sd = h.mean(dims), h.std(dims)
    row = []
    for m in (8, 16, 32):
        errs = []
        for _ in range(200):
            idx = torch.from_numpy(rng.choice(len(h), m, replace=False))
            errs.append(((h[idx].mean(dims) - mu) / sd).pow(2).mean().sqrt().item())
        row.append(f"chunk {m:2d}: {np.mean(errs):.3f}")
    print(f"BN {i:2d} of {len(bns)} ({tuple(h.shape[1:])}):", ", ".join(row))
