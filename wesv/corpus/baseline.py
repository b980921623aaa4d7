"""Training-free corpus baselines: mean log-mel embeddings, and an LDA probe that shows identity is learnable."""
from __future__ import annotations

import os

import kaldiio
import numpy as np
import torch

from wesv.data.audio import load_audio
from wesv.data.datadir import DataDir
from wesv.data.trials import read_trials
from wesv.errors import WesvError
from wesv.features.fbank import Fbank, FbankConfig
from wesv.scoring.metrics import compute_eer


def fbank_stats(data_dir: str, with_std: bool = False) -> tuple[list[str], np.ndarray]:
    """Per utterance of ``data_dir``: mean (and std) over frames of raw log-mel fbank (no CMN, no dither)."""
    fbank = Fbank(FbankConfig(dither=0.0, cmn=False)).eval()
    wav_scp = DataDir.load(data_dir).wav_scp
    keys, rows = [], []
    with torch.no_grad():
        for utt, spec in wav_scp.items():
            feats = fbank(torch.from_numpy(load_audio(spec, utt=utt))[None])[0].numpy().astype(np.float64)
            if feats.shape[0] == 0:
                raise WesvError(f"{data_dir}/wav.scp: utterance {utt!r} is shorter than one frame — remove it")
            row = [feats.mean(axis=0)] + ([feats.std(axis=0)] if with_std else [])
            keys.append(utt)
            rows.append(np.concatenate(row))
    return keys, np.stack(rows)


def write_embeddings(out_dir: str, keys: list[str], matrix: np.ndarray) -> str:
    """Write ``out_dir/xvector.ark`` + ``xvector.scp`` (kaldiio, float32); returns the scp path."""
    os.makedirs(out_dir, exist_ok=True)
    ark = os.path.abspath(os.path.join(out_dir, "xvector.ark"))  # absolute in the scp: it works from anywhere
    scp = os.path.join(out_dir, "xvector.scp")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for key, vec in zip(keys, matrix):
            writer(key, np.asarray(vec, dtype=np.float32))
    return scp


def cosine_trial_scores(trials_path: str, keys: list[str], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine score of every trial: ``(scores, labels)``."""
    trials = read_trials(trials_path)
    index = {k: i for i, k in enumerate(keys)}
    missing = sorted(trials.utts() - set(index))
    if missing:
        raise WesvError(f"{trials_path}: {len(missing)} trial utterance(s) have no embedding, e.g. {missing[0]!r}")
    x = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    e = np.array([index[k] for k in trials.enroll.tolist()])
    t = np.array([index[k] for k in trials.test.tolist()])
    return np.sum(x[e] * x[t], axis=1), trials.label


def baseline_eer(corpus: str, subtract_mean: bool = False) -> float:
    """EER of cosine scoring on raw mean log-mel (optionally minus the train-set mean) on ``corpus/test/trials``."""
    keys, emb = fbank_stats(os.path.join(corpus, "test"))
    if subtract_mean:
        emb = emb - fbank_stats(os.path.join(corpus, "train"))[1].mean(axis=0)
    return compute_eer(*cosine_trial_scores(os.path.join(corpus, "test", "trials"), keys, emb))[0]


def lda_probe_eer(corpus: str, dim: int | None = None) -> float:
    """Fit LDA on mean+std fbank stats of the train speakers; cosine EER of the projected test trials.

    A linear model trained on other speakers doing clearly better than the raw baseline shows that the corpus
    carries learnable, speaker-specific information beyond the long-term spectrum.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.preprocessing import StandardScaler

    tr_keys, tr = fbank_stats(os.path.join(corpus, "train"), with_std=True)
    utt2spk = DataDir.load(os.path.join(corpus, "train")).utt2spk
    labels = [utt2spk[k] for k in tr_keys]
    n_spk = len(set(labels))
    scaler = StandardScaler().fit(tr)
    lda = LinearDiscriminantAnalysis(n_components=min(dim or n_spk - 1, n_spk - 1, tr.shape[1]), solver="eigen",
                                     shrinkage="auto").fit(scaler.transform(tr), labels)
    te_keys, te = fbank_stats(os.path.join(corpus, "test"), with_std=True)
    proj = lda.transform(scaler.transform(te))
    return compute_eer(*cosine_trial_scores(os.path.join(corpus, "test", "trials"), te_keys, proj))[0]
