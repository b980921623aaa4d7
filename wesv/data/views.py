"""Multi-view dataset for DINO / MoCo: K global + L local augmented crops per utterance (seams 2 and 4)."""
import os
import re
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from wesv.data.audio import crop, crops, load_audio, overlap_fraction
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.data.views")

CLUSTER_VIEWS = ("global", "local", "all")


@dataclass
class GlobalViewsConfig:
    """Global crops only (MoCo inherits these fields, flat in its ``method:`` section)."""

    num_global: int = 2
    global_seconds: float = 3.0
    global_seconds_max: float | None = None  # a length range: one length per batch (and group) in [min, max]


@dataclass
class ViewsConfig(GlobalViewsConfig):
    """Global and local crops, optionally cut from other utterances of a cluster (DINO inherits these fields)."""

    num_local: int = 4
    local_seconds: float = 2.0
    local_seconds_max: float | None = None
    # Seam 4 (C-DINO): a *pseudo-label* data dir whose utt2spk maps utterances to clusters. Never the training dir.
    cluster_data: str | None = None
    p_same_cluster: float = 0.0  # chance that a view is cut from another utterance of the same cluster
    cluster_views: str = "global"  # which views may come from the cluster: "global", "local" or "all"
    # Oracle control only (C-DINO views drawn by true speaker): lets cluster_data hold true labels. Logged loudly.
    oracle_labels: bool = False


def check_views_config(cfg: ViewsConfig, cluster_refresh: bool = False) -> None:
    """Raise ``WesvError`` naming the ``method.*`` key of an inconsistent view setting; ``cluster_refresh``: the
    cluster map comes from the run itself (C-DINO's progressive re-clustering), so ``cluster_data`` may be unset."""
    if cfg.num_global < 1 or cfg.num_local < 0:
        raise WesvError(f"method.num_global must be >= 1 and method.num_local >= 0 (got {cfg.num_global}, "
                        f"{cfg.num_local})")
    for name in ("global", "local"):
        lo, hi = getattr(cfg, f"{name}_seconds"), getattr(cfg, f"{name}_seconds_max")
        if lo <= 0 or (hi is not None and hi < lo):
            raise WesvError(f"method.{name}_seconds must be > 0 and method.{name}_seconds_max >= it "
                            f"(got {lo}, {hi})")
    if cfg.cluster_views not in CLUSTER_VIEWS:
        raise WesvError(f"method.cluster_views must be one of {CLUSTER_VIEWS} (got {cfg.cluster_views!r})")
    if not 0.0 <= cfg.p_same_cluster <= 1.0:
        raise WesvError(f"method.p_same_cluster must be in [0, 1] (got {cfg.p_same_cluster})")
    if cfg.p_same_cluster > 0 and not cfg.cluster_data and not cluster_refresh:
        raise WesvError("method.p_same_cluster > 0 needs method.cluster_data (a pseudo-label data dir written by "
                        "wesv.bin.cluster)")


#: A file in a copy of the true ``utt2spk`` (the oracle control): such a dir is refused unless
#: ``method.oracle_labels: true``, and that flag is refused for a dir without it.
ORACLE_MARKER = "ORACLE_LABELS"


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (a link or the same path); compares inodes, never opens either."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_cluster_map(cluster_dir: str, train_dir: str, oracle_labels: bool = False) -> dict[str, str]:
    """utt → cluster id from a pseudo-label data dir's utt2spk; refuses the training dir's own labels (the dir, or a
    link to its utt2spk) unless ``oracle_labels`` (the oracle control, which uses labels on purpose, logged)."""
    path = os.path.join(cluster_dir, "utt2spk")
    own = (os.path.realpath(cluster_dir) == os.path.realpath(train_dir)
           or _same_file(path, os.path.join(train_dir, "utt2spk")))
    marked = os.path.isfile(os.path.join(cluster_dir, ORACLE_MARKER))
    if (own or marked) and not oracle_labels:
        what = f"the training data dir {train_dir} (its true labels)" if own else \
            f"{cluster_dir}, marked as true labels ({ORACLE_MARKER})"
        raise WesvError(f"method.cluster_data is {what}: self-supervised training must not read them; give a "
                        "pseudo-label dir written by wesv.bin.cluster (or set method.oracle_labels: true for the "
                        "oracle control)")
    if oracle_labels and not (own or marked):
        raise WesvError(f"method.oracle_labels is true but {cluster_dir} holds no {ORACLE_MARKER} file (nor is it "
                        "the training dir): mark the copy of the true utt2spk with it, or drop oracle_labels for "
                        "a pseudo-label dir")
    if not os.path.isfile(path):
        raise WesvError(f"{path}: no utt2spk in method.cluster_data; run wesv.bin.cluster to write one")
    if oracle_labels:
        log.warning("ORACLE: method.oracle_labels is true: cluster views are drawn from %s as given (true speaker "
                    "labels for the oracle control): this run USES LABELS and is not self-supervised", path)
    return read_utt2spk(path)


#: Sub-dir of an experiment holding progressively refreshed cluster maps: ``clusters/epoch_N/utt2spk``, the map
#: used from 0-based epoch N on.
REFRESH_PATTERN = re.compile(r"epoch_(\d+)")


def refreshed_map_path(cluster_dir: str, epoch: int) -> str | None:
    """The ``utt2spk`` of ``cluster_dir/epoch_M`` with the largest M <= ``epoch`` (None: no refresh yet)."""
    if not os.path.isdir(cluster_dir):
        return None
    best = -1
    for name in os.listdir(cluster_dir):
        m = REFRESH_PATTERN.fullmatch(name)
        if m and best < int(m.group(1)) <= epoch and os.path.isfile(os.path.join(cluster_dir, name, "utt2spk")):
            best = int(m.group(1))
    return None if best < 0 else os.path.join(cluster_dir, f"epoch_{best}", "utt2spk")


class ViewsDataset(Dataset):
    """Sample ``i``: ``{"views": [K global, then L local float32 arrays], "index": i, "utt": id, "view_utts",
    "global_overlap"}``.

    Crops of one utterance do not overlap where its length allows, and are spread as far apart as it allows where
    not (``wesv.data.audio.crop_spans``); ``global_overlap`` is the mean shared fraction of the pairs of global
    views cut from the utterance itself (None with fewer than two), logged by the methods as ``view_overlap``.
    Each view is augmented independently, except the speed perturbation of an ``Augmenter``, which is drawn
    once per sample and applied to the whole utterance before cropping (views of one utterance keep one pitch).
    With a cluster map, a selected view is cut from another utterance of the same cluster with probability
    ``p_same_cluster``. All randomness comes from ``np.random.default_rng([seed, epoch, index])``.
    """

    def __init__(self, wav_scp: dict[str, str], cfg: ViewsConfig, augmenter: Callable | None = None,
                 seed: int = 0, sample_rate: int = 16000, cluster_map: dict[str, str] | None = None,
                 short: str = "repeat", resample: bool = False, cluster_refresh: bool = False):
        check_views_config(cfg, cluster_refresh)
        if not wav_scp:
            raise WesvError("the training wav.scp is empty; check the data dir given in data:")
        self.cfg = cfg
        self.utts = list(wav_scp)
        self.specs = list(wav_scp.values())
        self.augmenter = augmenter
        self.seed = int(seed)
        self.epoch = 0
        self.sample_rate = sample_rate
        self.short = short
        self.resample = resample
        self.max_lengths = ([self._samples(cfg.global_seconds_max or cfg.global_seconds)] * cfg.num_global
                            + [self._samples(cfg.local_seconds_max or cfg.local_seconds)] * cfg.num_local)
        self.min_lengths = ([self._samples(cfg.global_seconds)] * cfg.num_global
                            + [self._samples(cfg.local_seconds)] * cfg.num_local)
        self.min_samples = 1  # shortest usable utterance; the trainer sets the encoder's front-end minimum
        self.with_clusters = (bool(cluster_map) or cluster_refresh) and cfg.p_same_cluster > 0
        #: Where refreshed maps appear (``clusters/epoch_N/utt2spk``); set by C-DINO. ``set_epoch`` picks the one
        #: for its epoch, in the main process and in each (persistent) DataLoader worker alike.
        self.cluster_dir: str | None = None
        self.cluster_path: str | None = None  # the refreshed map in use (None: the initial ``cluster_data`` map)
        self._initial_map = cluster_map or {}
        if self.with_clusters:
            self._index_clusters(self._initial_map)

    def _samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def _index_clusters(self, cluster_map: dict[str, str]) -> None:
        """Cluster of each dataset index (-1: not in the map) and the member indices of each cluster.

        Stored per cluster, not per utterance, so that 1.1 M VoxCeleb utterances cost one int each.
        """
        ids: dict[str, int] = {}
        self.cluster_of = np.full(len(self.utts), -1, dtype=np.int64)
        for i, utt in enumerate(self.utts):
            if utt in cluster_map:
                self.cluster_of[i] = ids.setdefault(cluster_map[utt], len(ids))
        order = np.argsort(self.cluster_of, kind="stable")
        order = order[self.cluster_of[order] >= 0]
        bounds = np.searchsorted(self.cluster_of[order], np.arange(len(ids) + 1))
        self.members = [order[bounds[c]:bounds[c + 1]] for c in range(len(ids))]

    def _other_in_cluster(self, index: int, rng: np.random.Generator) -> int:
        """A uniformly drawn other utterance of ``index``'s cluster (``index`` itself when it has none)."""
        c = self.cluster_of[index]
        if c < 0 or len(self.members[c]) < 2:
            return index
        group = self.members[c]
        pick = int(group[rng.integers(len(group) - 1)])
        return pick if pick != index else int(group[-1])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops and augmentations ``__getitem__`` returns (and, with
        ``cluster_dir``, the cluster map refreshed for it)."""
        self.epoch = int(epoch)
        if self.cluster_dir is not None and self.with_clusters:
            path = refreshed_map_path(self.cluster_dir, self.epoch)
            if path != self.cluster_path:
                self._index_clusters(read_utt2spk(path) if path else self._initial_map)
                self.cluster_path = path

    def num_clusters(self) -> int:
        """Clusters in the map in use (0 without one)."""
        return len(self.members) if self.with_clusters else 0

    def view_sources(self, index: int, rng: np.random.Generator) -> list[int]:
        """Dataset index each view of sample ``index`` is cut from (``index`` itself, or a cluster mate)."""
        sources = [int(index)] * len(self.max_lengths)
        if self.with_clusters:
            draws = rng.random(len(sources)) < self.cfg.p_same_cluster
            for v in np.flatnonzero(draws & self._cluster_view_mask()):
                sources[v] = self._other_in_cluster(int(index), rng)
        return sources

    def __len__(self) -> int:
        return len(self.utts)

    def _load(self, index: int, speed: float | None = None, wave: np.ndarray | None = None) -> np.ndarray:
        if wave is None:
            wave = load_audio(self.specs[index], self.sample_rate, resample=self.resample, utt=self.utts[index])
        return wave if speed is None else self.augmenter.apply_speed(wave, speed)

    def _cluster_view_mask(self) -> np.ndarray:
        k, n = self.cfg.num_global, self.cfg.num_global + self.cfg.num_local
        mask = np.zeros(n, dtype=bool)
        if self.cfg.cluster_views in ("global", "all"):
            mask[:k] = True
        if self.cfg.cluster_views in ("local", "all"):
            mask[k:] = True
        return mask

    def _overlap_groups(self, own: list[int], lengths: list[int], num_samples: int) -> list[list[int]]:
        """Views cut together without overlap: all of them if the wave holds them, else the global ones apart."""
        if sum(lengths) <= num_samples:
            return [own]
        k = self.cfg.num_global
        return [[v for v in own if v < k], [v for v in own if v >= k]]

    def __getitem__(self, index: int) -> dict:
        return self.make_sample(int(index))

    def make_sample(self, index: int, wave: np.ndarray | None = None) -> dict:
        """Sample ``index`` (its views); ``wave``: its whole audio already read (from a shard)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        lengths = self.max_lengths
        sources = self.view_sources(index, rng)
        # One speed per sample, before cropping (an Augmenter's speed_perturb; None: off or a plain callable).
        speed = self.augmenter.draw_speed(rng) if hasattr(self.augmenter, "draw_speed") else None
        own = [v for v, s in enumerate(sources) if s == index]
        views: list[np.ndarray | None] = [None] * len(lengths)
        spans: dict[int, tuple[int, int]] = {}
        if own:
            wave = self._load(index, speed, wave)
            for group in self._overlap_groups(own, [lengths[v] for v in own], len(wave)):
                where: list[tuple[int, int]] = []
                pieces = crops(wave, [lengths[v] for v in group], rng, short=self.short, utt=self.utts[index],
                               spans_out=where, min_samples=self.min_samples)
                for v, piece, span in zip(group, pieces, where):
                    views[v], spans[v] = piece, span
        for v, s in enumerate(sources):
            if s != index:
                views[v] = crop(self._load(s, speed), lengths[v], rng, short=self.short, utt=self.utts[s],
                                min_samples=self.min_samples)
        if self.augmenter is not None:
            if speed is not None:
                views = [self.augmenter(v, rng, speed=False) for v in views]
            else:
                views = [self.augmenter(v, rng) for v in views]
        own_globals = [v for v in own if v < self.cfg.num_global]
        pairs = [overlap_fraction(spans[a], spans[b]) for i, a in enumerate(own_globals) for b in own_globals[i + 1:]]
        return {"views": [np.ascontiguousarray(v, dtype=np.float32) for v in views], "index": int(index),
                "utt": self.utts[index], "view_utts": [self.utts[s] for s in sources], "view_sources": sources,
                "global_overlap": float(np.mean(pairs)) if pairs else None}

    def collate(self, samples: list[dict]) -> dict:
        """Stack views into ``(B, T_v)`` tensors; a length range draws one length per batch and group."""
        lengths = list(self.max_lengths)
        # Seeded by the batch's first index so that the cut repeats whatever the number of workers.
        rng = np.random.default_rng([self.seed, self.epoch, 1 << 40, int(samples[0]["index"])])
        if self.min_lengths != self.max_lengths:
            # One length per group (global, local), so that views of a group stack into one encoder batch.
            k = self.cfg.num_global
            g = int(rng.integers(self.min_lengths[0], self.max_lengths[0] + 1))
            loc = int(rng.integers(self.min_lengths[-1], self.max_lengths[-1] + 1))
            lengths = [g] * k + [loc] * (len(lengths) - k)
        views = []
        for v, n in enumerate(lengths):
            rows = []
            for s in samples:
                x = s["views"][v]
                start = int(rng.integers(0, len(x) - n + 1)) if len(x) > n else 0
                rows.append(torch.from_numpy(x[start:start + n]))
            views.append(torch.stack(rows))
        overlaps = [s["global_overlap"] for s in samples if s.get("global_overlap") is not None]
        out = {"views": views, "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
               "utt": [s["utt"] for s in samples], "view_utts": [[s["view_utts"][v] for s in samples]
                                                                 for v in range(len(lengths))],
               "view_index": torch.tensor([s["view_sources"] for s in samples], dtype=torch.long).T}
        if overlaps:
            out["global_overlap"] = torch.tensor(float(np.mean(overlaps)))
        return out

    collate_fn = collate


def view_logs(batch: dict) -> dict[str, torch.Tensor]:
    """``{"view_overlap": mean shared fraction of the batch's global-view pairs}`` for a method's logs (the
    trainer averages it over the epoch into metrics.jsonl); empty when the batch has no such pairs."""
    overlap = batch.get("global_overlap")
    return {} if overlap is None else {"view_overlap": overlap}


def as_views_config(cfg: GlobalViewsConfig) -> ViewsConfig:
    """The full view settings of a method config; one with global views only gets no local or cluster views."""
    if isinstance(cfg, ViewsConfig):
        return cfg
    fields = {k: v for k, v in asdict(cfg).items() if k in GlobalViewsConfig.__dataclass_fields__}
    return ViewsConfig(**fields, num_local=0)


def build_views_dataset(cfg: GlobalViewsConfig, train_dir: str, augmenter: Callable | None, seed: int,
                        sample_rate: int = 16000, short: str = "repeat", resample: bool = False,
                        shards: str | None = None, cluster_refresh: bool = False) -> ViewsDataset:
    """The multi-view dataset of a training data dir: reads its wav.scp only (never its utt2spk); with ``shards``
    (``data.shards``), the utterances of the shards (their labels are never read)."""
    cfg = as_views_config(cfg)
    check_views_config(cfg, cluster_refresh)
    if shards:
        from wesv.data.shards import ShardIndex

        if cfg.p_same_cluster > 0:
            raise WesvError("method.p_same_cluster > 0 cuts views from other utterances of a cluster (random "
                            "access), which data.shards cannot serve; set it to 0 or train from data.train")
        return ViewsDataset(ShardIndex(shards).wav_scp(), cfg, augmenter, seed, sample_rate, None, short, resample)
    wav_scp_path = os.path.join(train_dir, "wav.scp")
    if not os.path.isfile(wav_scp_path):
        raise WesvError(f"{wav_scp_path}: missing; data.train must be a Kaldi data dir with a wav.scp "
                        "(or set data.shards)")
    cluster_map = read_cluster_map(cfg.cluster_data, train_dir, cfg.oracle_labels) if cfg.cluster_data else None
    return ViewsDataset(read_scp(wav_scp_path), cfg, augmenter, seed, sample_rate, cluster_map, short, resample,
                        cluster_refresh)
