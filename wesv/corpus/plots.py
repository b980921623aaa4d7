"""``spectrograms.png``: log-spectrograms of a few utterances of two speakers, so a person can see the corpus."""
from __future__ import annotations

import numpy as np
import soundfile as sf
from scipy.signal import spectrogram


def plot_spectrograms(path: str, rows: list[tuple[str, list[tuple[str, str]]]], sample_rate: int = 16000) -> None:
    """One row per speaker ``(speaker, [(utt, wav_path), ...])``; columns are utterances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(utts) for _, utts in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(4 * ncol, 2.8 * len(rows)), squeeze=False)
    for r, (spk, utts) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            if c >= len(utts):
                ax.axis("off")
                continue
            utt, wav = utts[c]
            x, sr = sf.read(wav, dtype="float64")
            f, _, s = spectrogram(x, fs=sr, nperseg=400, noverlap=240, nfft=512)
            ax.imshow(10 * np.log10(s + 1e-10), origin="lower", aspect="auto", cmap="magma",
                      extent=(0.0, x.size / sr, 0.0, f[-1] / 1000))
            ax.set_title(utt, fontsize=9)
            ax.set_ylabel("kHz" if c == 0 else "")
            ax.set_xlabel("s")
    fig.suptitle("wesv embedded corpus: rows are speakers, columns are utterances (each its own session)")
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
