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

    def _crop(self, index: int, rng: np.random.Generator, wave: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The random crop of sample ``index`` and its first sample in the utterance (0 when repeated / padded);
        ``wave``: the whole utterance already read (a shard), else it is read from its spec."""
        spec, utt, n = self.specs[index], self.utts[index], self.num_samples
        if wave is None and self._plain[index] and not self.resample:
            total = audio_num_samples(spec)
            if total > n:  # the same draw as below: a partial read cuts the crop a whole read would
                start = int(rng.integers(0, total - n + 1))
                return load_audio(spec, self.sample_rate, start=start, num_samples=n, utt=utt), start
        if wave is None:
            wave = load_audio(spec, self.sample_rate, resample=self.resample, utt=utt)
        if len(wave) >= n:  # the draw crop() would make, kept here to know where the crop starts
            start = int(rng.integers(0, len(wave) - n + 1))
            return wave[start:start + n].copy(), start
        return crop(wave, n, rng, short=self.short, utt=utt, min_samples=self.min_samples), 0

    def __getitem__(self, index: int) -> dict:
        return self.make_sample(int(index))

    def make_sample(self, index: int, wave: np.ndarray | None = None) -> dict:
        """Sample ``index`` (crop, augmentation); ``wave``: its whole audio already read (from a shard)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        clean, start = self._crop(index, rng, wave)
        clean = np.ascontiguousarray(clean, dtype=np.float32)
        wave = clean if self.augmenter is None else np.ascontiguousarray(self.augmenter(clean, rng), np.float32)
        sample = {"wave": wave, "label": int(self.labels[index]), "index": index, "utt": self.utts[index]}
        if self.return_clean:
            sample["clean"] = clean
        sample.update(self.extras(index, start))
        return sample

    def extras(self, index: int, start: int) -> dict:
        """More of sample ``index`` given where its crop starts (subclasses: feature streams); none here."""
        return {}

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


def build_labelled_dataset(data_cfg, augmenter: Callable | None, seed: int, return_clean: bool = False,
                           streams: list[str] | None = None, stream_dir: str | None = None) -> LabelledCropDataset:
    """The labelled crop dataset of ``data_cfg.train`` (wav.scp + utt2spk), crops of ``data_cfg.crop_seconds``;
    with ``streams``, also the frames of ``stream_dir/NAME.scp`` (default: in data.train) under each crop
    (``StreamCropDataset``; a pseudo-label dir has no streams of its own, so the source dir is named)."""
    train = data_cfg.train
    shards = getattr(data_cfg, "shards", None)
    if shards:  # audio from the shards; labels from data.train/utt2spk when it exists, else from the shards
        from wesv.data.shards import shard_labels

        index, utt2spk = shard_labels(shards, train)
        wav_scp = index.wav_scp(keep=utt2spk)
    else:
        paths = {name: os.path.join(train, name) for name in ("wav.scp", "utt2spk")}
        for name, path in paths.items():
            if not os.path.isfile(path):
                what = "speaker or cluster labels" if name == "utt2spk" else "audio"
                raise WesvError(f"{where(path)}: missing ({what}); data.train must be a Kaldi data dir with "
                                "wav.scp and utt2spk (or set data.shards)")
        wav_scp, utt2spk = read_scp(paths["wav.scp"]), read_utt2spk(paths["utt2spk"])
    args = (wav_scp, utt2spk, data_cfg.crop_samples, augmenter, seed,
            data_cfg.sample_rate, data_cfg.short, data_cfg.resample, return_clean)
    if not streams:
        return LabelledCropDataset(*args)
    from wesv.data.streams import Stream

    opened = {}
    for name in streams:
        scp = os.path.join(stream_dir or train, f"{name}.scp")
        if not os.path.isfile(scp):
            raise WesvError(f"{scp}: missing; method.streams names {name!r}: set method.stream_dir to the data dir "
                            f"holding {name}.scp (a kaldiio scp of per-utterance (frames, dim) matrices)")
        opened[name] = Stream(scp)
    return StreamCropDataset(*args, streams=opened)


class StreamCropDataset(LabelledCropDataset):
    """A labelled crop plus, per feature stream (seam 11), the frames covering the crop's time span.

    Sample ``i`` adds ``"stream_NAME"``: float32 ``(frames, dim)``, or None when the utterance lacks the stream.
    A batch has ``"stream_NAME"`` ``(B, frames, dim)`` (zeros where missing) and ``"stream_NAME_mask"`` (B,) bool.
    """

    def __init__(self, *args, streams: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.streams = dict(streams or {})
        self.stream_dims = {}
        for name, stream in self.streams.items():
            first = next((u for u in self.utts if u in stream), None)
            if first is None:
                raise WesvError(f"{stream.scp}: no utterance of the training data has the {name} stream")
            self.stream_dims[name] = stream[first].shape[1]

    def extras(self, index: int, start: int) -> dict:
        """The frames of each stream under the crop (None where the utterance has no such stream)."""
        utt, start_s, dur_s = self.utts[index], start / self.sample_rate, self.num_samples / self.sample_rate
        return {f"stream_{name}": (stream.frames_for(utt, start_s, dur_s) if utt in stream else None)
                for name, stream in self.streams.items()}

    def collate_fn(self, samples: list[dict]) -> dict:
        """The labelled batch plus ``stream_NAME`` (B, frames, dim) and its presence mask per stream."""
        batch = LabelledCropDataset.collate_fn(samples)
        for name, stream in self.streams.items():
            key = f"stream_{name}"
            frames = stream.num_frames(self.num_samples / self.sample_rate)
            out = np.zeros((len(samples), frames, self.stream_dims[name]), dtype=np.float32)
            present = np.zeros(len(samples), dtype=bool)
            for i, s in enumerate(samples):
                if s[key] is not None:
                    out[i], present[i] = s[key], True
            batch[key], batch[f"{key}_mask"] = torch.from_numpy(out), torch.from_numpy(present)
        return batch
