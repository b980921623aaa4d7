"""The labelled crop dataset of classifier methods: a random fixed-length crop per utterance, its label id."""
import os
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from wesv.data.audio import audio_num_samples, crop, load_audio, spec_kind
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.errors import WesvError, where

class LabelledCropDataset(Dataset):
    """Sample ``i``: ``{"wave": float32 (T,), "label": int, "index": i, "utt": id}`` (+ ``"clean"`` if asked).

    Labels are ids into the sorted list of the utt2spk values (true speakers or cluster ids: the dataset never
    knows which). All randomness comes from ``np.random.default_rng([seed, epoch, index])``.
    """

    def __init__(self, wav_scp: dict[str, str], utt2spk: dict[str, str], num_samples: int,
                 augmenter: Callable | None = None, seed: int = 0, sample_rate: int = 16000,
                 short: str = "repeat", resample: bool = False, return_clean: bool = False):
        missing = [u for u in wav_scp if u not in utt2spk]
        if missing:
            raise WesvError(f"{len(missing)} utterances of wav.scp have no utt2spk entry (first: {missing[0]}); "
                            "run wesv.bin.validate_data_dir on the training data dir")
        if not wav_scp:
            raise WesvError("the training wav.scp is empty; check data.train")
        self.utts = list(wav_scp)
        self.specs = [wav_scp[u] for u in self.utts]
        self.speakers = sorted(set(utt2spk[u] for u in self.utts))
        spk_id = {s: i for i, s in enumerate(self.speakers)}
        self.labels = np.array([spk_id[utt2spk[u]] for u in self.utts], dtype=np.int64)
        self.num_samples = int(num_samples)
        self.augmenter = augmenter
        self.seed = int(seed)
        self.epoch = 0
        self.sample_rate = sample_rate
        self.short = short
        self.resample = resample
        self.return_clean = return_clean
        self._plain = [spec_kind(s) == "file" for s in self.specs]  # partial reads work
        self.min_samples = 1  # shortest usable utterance; the trainer sets the encoder's front-end minimum

    @property
    def num_classes(self) -> int:
        """Number of distinct labels (speakers or clusters)."""
        return len(self.speakers)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and augmentations ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.utts)

    def _crop(self, index: int, rng: np.random.Generator) -> np.ndarray:
        spec, utt, n = self.specs[index], self.utts[index], self.num_samples
        if self._plain[index] and not self.resample:
            total = audio_num_samples(spec)
            if total > n:
                start = int(rng.integers(0, total - n + 1))
                return load_audio(spec, self.sample_rate, start=start, num_samples=n, utt=utt)
        wave = load_audio(spec, self.sample_rate, resample=self.resample, utt=utt)
        return crop(wave, n, rng, short=self.short, utt=utt, min_samples=self.min_samples)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clean = np.ascontiguousarray(self._crop(index, rng), dtype=np.float32)
        wave = clean if self.augmenter is None else np.ascontiguousarray(self.augmenter(clean, rng), np.float32)
        sample = {"wave": wave, "label": int(self.labels[index]), "index": index, "utt": self.utts[index]}
        if self.return_clean:
            sample["clean"] = clean
        return sample

    @staticmethod
    def collate_fn(samples: list[dict]) -> dict:
        """Stack samples into a batch: ``wave`` (B, T), ``label`` (B,), ``index`` (B,), ``utt`` list."""
        batch = {"wave": torch.from_numpy(np.stack([s["wave"] for s in samples])),
                 "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
                 "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
                 "utt": [s["utt"] for s in samples]}
        if "clean" in samples[0]:
            batch["clean"] = torch.from_numpy(np.stack([s["clean"] for s in samples]))
        return batch


def build_labelled_dataset(data_cfg, augmenter: Callable | None, seed: int,
                           return_clean: bool = False) -> LabelledCropDataset:
    """The labelled crop dataset of ``data_cfg.train`` (wav.scp + utt2spk), crops of ``data_cfg.crop_seconds``."""
    train = data_cfg.train
    paths = {name: os.path.join(train, name) for name in ("wav.scp", "utt2spk")}
    for name, path in paths.items():
        if not os.path.isfile(path):
            what = "speaker or cluster labels" if name == "utt2spk" else "audio"
            raise WesvError(f"{where(path)}: missing ({what}); data.train must be a Kaldi data dir with "
                            "wav.scp and utt2spk")
    return LabelledCropDataset(read_scp(paths["wav.scp"]), read_utt2spk(paths["utt2spk"]), data_cfg.crop_samples,
                               augmenter, seed, data_cfg.sample_rate, data_cfg.short, data_cfg.resample,
                               return_clean)
