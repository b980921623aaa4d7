"""Helpers of the trainer/classifier/config/DDP tests: a tiny labelled corpus on disk and a tiny training config."""
import os

import numpy as np
import soundfile as sf

#: A real registered encoder, configured tiny enough for unit tests on one CPU core.
TINY_ENCODER = ("name: ecapa_tdnn_small\n  channels: 16\n  embed_dim: 16\n  se_bottleneck: 8\n"
                "  attention_bottleneck: 8\n  fbank:\n    num_mel_bins: 24")


def make_tiny_corpus(root: str, num_speakers: int = 4, utts_per_speaker: int = 6, seconds: float = 0.5,
                     sample_rate: int = 16000, seed: int = 0) -> str:
    """A data dir whose speakers differ in pitch and timbre (learnable in a few steps); returns its path."""
    rng = np.random.default_rng(seed)
    data = os.path.join(root, "train")
    wav_dir = os.path.join(root, "wav")
    os.makedirs(data, exist_ok=True)
    os.makedirs(wav_dir, exist_ok=True)
    wav_lines, spk_lines = [], []
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for s in range(num_speakers):
        f0 = 110.0 * 2 ** (s / 2)
        for u in range(utts_per_speaker):
            utt = f"spk{s}-utt{u}"
            n = len(t) - int(rng.integers(0, len(t) // 4))  # varied lengths
            wave = sum(np.sin(2 * np.pi * f0 * k * t[:n] + rng.uniform(0, 6)) / k for k in range(1, 4 + s))
            wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(n)
            path = os.path.join(wav_dir, f"{utt}.wav")
            sf.write(path, wave.astype(np.float32), sample_rate, subtype="PCM_16")
            wav_lines.append(f"{utt} {path}\n")
            spk_lines.append(f"{utt} spk{s}\n")
    with open(os.path.join(data, "wav.scp"), "w") as f:
        f.writelines(wav_lines)
    with open(os.path.join(data, "utt2spk"), "w") as f:
        f.writelines(spk_lines)
    return data


def tiny_config(train_dir: str = "data/train", **sections: str) -> str:
    """YAML text of a small classifier run on CPU; ``sections`` replace whole top-level sections' bodies."""
    body = {
        "data": f"train: {train_dir}\n  crop_seconds: 0.25\n  batch_size: 4\n  num_workers: 0",
        "encoder": TINY_ENCODER,
        "method": "scale: 10.0\n  margin: 0.1",
        "optim": "name: sgd\n  lr: 0.1\n  momentum: 0.9\n  weight_decay: 0.0001\n  warmup_epochs: 0.5\n"
                 "  schedule: cosine\n  final_lr: 0.001",
        "trainer": "epochs: 2\n  device: cpu\n  log_every: 1\n  progress: false\n  num_threads: 1",
    }
    body.update(sections)
    text = "type: classifier\nseed: 3\n"
    for name, content in body.items():
        text += f"{name}:\n  {content}\n"
    return text


# ---- a method that exercises the per-sample state (registered on import) ------------------------------------
import torch  # noqa: E402

from wesv import distributed as dist  # noqa: E402
from wesv.methods.classifier import Classifier, ClassifierConfig  # noqa: E402
from wesv.trainer.method import register_method  # noqa: E402
from wesv.trainer.sample_state import Column  # noqa: E402


@register_method("sample_probe", config=ClassifierConfig)
class SampleProbe(Classifier):
    """The classifier plus columns whose values depend only on the data: 1 and 2 processes must agree exactly.

    ``crop_sum`` (per epoch) is the sum of the sample's crop, drawn from ``(seed, epoch, index)``; ``seen`` counts
    the epochs a sample was trained on (read-modify-write: a lost partial table would show). ``on_epoch_end``
    checks that every rank holds the same table and buffers.
    """

    def sample_columns(self) -> list[Column]:
        return super().sample_columns() + [Column("crop_sum", torch.float64, float("nan"), per_epoch=True),
                                           Column("seen", torch.int64, 0), Column("hit", torch.bool, False)]

    def forward(self, batch: dict):
        index = batch["index"]
        self.sample_state.update("crop_sum", index, batch["wave"].double().sum(1))
        self.sample_state.update("seen", index, self.sample_state["seen"][index] + 1)
        self.sample_state.update("hit", index, True)
        return super().forward(batch)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        state = self.sample_state
        digest = [state[n].cpu().numpy().tobytes() for n in ("loss", "crop_sum", "seen", "hit")]
        digest += [b.cpu().numpy().tobytes() for _, b in self.encoder.named_buffers()]
        copies = dist.all_gather_objects(digest)
        return {"ranks_agree": float(all(c == copies[0] for c in copies)),
                "rows_seen": float(torch.isfinite(state["crop_sum"]).sum())}
