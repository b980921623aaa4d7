"""Cluster-aware DINO (C-DINO): DINO whose positive views come, with probability ``p_same_cluster``, from other
utterances of the anchor's cluster; it continues a DINO run's whole state, with a fixed cluster map
(``method.cluster_data``) or one refreshed from the teacher's embeddings every ``recluster_every`` epochs."""
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from wesv import distributed as dist
from wesv.cluster.filtering import drop_small
from wesv.cluster.pipeline import cluster_name, normalise, relabel_by_size
from wesv.cluster.stages import ClusterConfig, check_config, cluster_embeddings
from wesv.data.datadir import atomic_write_lines, write_scp
from wesv.data.views import ViewsDataset, build_views_dataset
from wesv.errors import WesvError
from wesv.extract.embed import embed_utterances, encoder_sample_rate
from wesv.log import get_logger
from wesv.methods.dino import Dino, DinoConfig
from wesv.trainer.checkpoint import load_checkpoint
from wesv.trainer.method import DataInfo, register_method
from wesv.trainer.sample_state import Column

log = get_logger("wesv.methods.cdino")

CLUSTER_DIR = "clusters"  # exp/clusters/epoch_N/utt2spk: the map refreshed as 0-based epoch N starts
PAIRS_DIR = "view_pairs"  # exp/view_pairs/epoch_N.tsv: the epoch's cluster-drawn (anchor, view, source) triples
#: Method state a continuation needs: without these the checkpoint is not a DINO one.
DINO_STATE = ("encoder.", "head.", "teacher_encoder.", "teacher_head.", "center")


@dataclass
class CDinoConfig(DinoConfig):
    """DINO settings plus the C-DINO keys; the view fields (``cluster_data``, ``p_same_cluster``,
    ``cluster_views``, ``oracle_labels``) come from ``ViewsConfig``."""

    continue_from: str | None = None  # a DINO / C-DINO exp dir or checkpoint: student, teacher, heads and centre
    recluster_every: int = 0  # progressive: re-cluster the teacher's embeddings every N epochs (0: fixed map)
    recluster_algorithm: str = "kmeans_ahc"
    recluster_num_clusters: int | None = None
    recluster_kmeans: int | None = None  # k-means stage of kmeans_ahc (default 4 x recluster_num_clusters)
    recluster_threshold: float | None = None
    recluster_min_cluster_size: int = 1  # smaller clusters leave the map (their utterances use their own crops)
    recluster_subtract_mean: bool = False  # subtract the embeddings' mean before L2 normalising
    recluster_device: str = "auto"  # k-means device
    recluster_batch_size: int = 32  # extraction batch size
    recluster_chunk_seconds: float | None = None  # extraction: mean over chunks of this length (None: whole)
    record_view_pairs: bool = True  # write view_pairs/epoch_N.tsv (measured offline by wesv.bin.view_report)


def recluster_config(cfg: CDinoConfig, seed: int) -> ClusterConfig:
    """The clustering settings of a refresh; a bad combination fails naming the ``method.recluster_*`` keys."""
    ccfg = ClusterConfig(algorithm=cfg.recluster_algorithm, num_clusters=cfg.recluster_num_clusters,
                         num_kmeans=cfg.recluster_kmeans, threshold=cfg.recluster_threshold,
                         min_cluster_size=cfg.recluster_min_cluster_size, seed=seed, device=cfg.recluster_device)
    try:
        check_config(ccfg)
    except WesvError as err:
        raise WesvError(f"method.recluster_* (algorithm, num_clusters, kmeans, threshold, min_cluster_size): {err}"
                        ) from None
    return ccfg


def cluster_teacher(encoder: torch.nn.Module, wav_scp: dict[str, str], cfg: CDinoConfig, device: torch.device,
                    seed: int) -> tuple[dict[str, str], dict]:
    """Embed ``wav_scp`` with ``encoder`` (eval mode, forked RNG) and cluster the embeddings: ``(utt → cluster id,
    info)``. Unusable utterances are skipped (they keep their own crops)."""
    skipped: list[str] = []
    t0 = time.perf_counter()
    rate = encoder_sample_rate(encoder)
    chunk = None if cfg.recluster_chunk_seconds is None else int(round(cfg.recluster_chunk_seconds * rate))
    was_training = encoder.training
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            embs = dict(embed_utterances(encoder, wav_scp, lambda utt, why: skipped.append(utt), device=device,
                                         batch_size=cfg.recluster_batch_size, chunk_samples=chunk, progress=False))
    finally:
        encoder.train(was_training)
    t_extract = time.perf_counter() - t0
    keys = [u for u in wav_scp if u in embs]
    if not keys:
        raise WesvError("C-DINO re-clustering: no training utterance could be embedded (all too short?)")
    x = np.stack([embs[u] for u in keys]).astype(np.float32)
    if cfg.recluster_subtract_mean:
        x = x - x.mean(axis=0, keepdims=True)
    x = normalise(x, "the teacher's embeddings", keys)
    ccfg = recluster_config(cfg, seed)
    if ccfg.num_clusters is not None and ccfg.num_clusters > len(keys):
        raise WesvError(f"method.recluster_num_clusters {ccfg.num_clusters} exceeds the {len(keys)} embedded "
                        "training utterances")
    t1 = time.perf_counter()
    labels = cluster_embeddings(x, ccfg)
    final = relabel_by_size(labels, drop_small(labels, np.ones(len(labels), dtype=bool), ccfg.min_cluster_size))
    k = int(final.max()) + 1
    utt2cluster = {keys[i]: cluster_name(int(final[i]), k) for i in np.flatnonzero(final >= 0)}
    info = {"num_clusters": k, "num_utts": len(wav_scp), "num_utts_kept": len(utt2cluster), "skipped": len(skipped),
            "extract_s": round(t_extract, 3), "cluster_s": round(time.perf_counter() - t1, 3)}
    return utt2cluster, info


def cluster_share(batch: dict, num_global: int) -> dict[str, torch.Tensor]:
    """Share of the batch's views cut from another utterance (all views, and the global ones), 0-d tensors."""
    drawn = (batch["view_index"] != batch["index"].unsqueeze(0)).float()
    return {"cluster_view_share": drawn.mean(), "cluster_view_share_global": drawn[:num_global].mean()}


@register_method("cdino", config=CDinoConfig)
class CDino(Dino):
    """DINO on cluster-aware views; initialised from a finished DINO run's state (``method.continue_from``)."""

    uses_labels = False

    def __init__(self, cfg: CDinoConfig, encoder: torch.nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        if cfg.recluster_every < 0:
            raise WesvError(f"method.recluster_every must be >= 0 (got {cfg.recluster_every})")
        if cfg.recluster_every:
            recluster_config(cfg, 0)
            if cfg.oracle_labels:
                raise WesvError("method.oracle_labels with method.recluster_every: a refresh would replace the true "
                                "labels by clusters; the oracle control takes a fixed map (recluster_every: 0)")
        if cfg.p_same_cluster == 0:
            log.warning("C-DINO with method.p_same_cluster 0: every view is the anchor's own (plain DINO)")
        self.dataset: ViewsDataset | None = None
        self.cluster_dir: str | None = None
        self.exp_dir: str | None = None
        self.cluster_path: str | None = None  # the refreshed map in use, relative to the exp dir
        self._refresh_info: dict = {}

    @classmethod
    def build_dataset(cls, cfg: CDinoConfig, data_cfg: Any, augmenter: Callable | None, seed: int) -> ViewsDataset:
        """DINO's views; with ``recluster_every`` the cluster map may come from the run itself."""
        return build_views_dataset(cfg, data_cfg.train, augmenter, seed, data_cfg.sample_rate, data_cfg.short,
                                   data_cfg.resample, data_cfg.shards, cluster_refresh=cfg.recluster_every > 0)

    def sample_columns(self) -> list[Column]:
        """Source index of each view of each sample this epoch (-1: not drawn), for the view-pair record."""
        if not self.cfg.record_view_pairs:
            return []
        return [Column(f"view_src{v}", torch.int64, -1, per_epoch=True)
                for v in range(self.cfg.num_global + self.cfg.num_local)]

    def attach_run(self, dataset: ViewsDataset, exp_dir: str) -> None:
        """Keep the dataset and point it at ``exp/clusters`` (progressive mode), where refreshed maps appear."""
        self.dataset, self.exp_dir = dataset, exp_dir
        if self.cfg.recluster_every:
            self.cluster_dir = os.path.join(exp_dir, CLUSTER_DIR)
            dataset.cluster_dir = self.cluster_dir

    def on_fresh_start(self) -> None:
        """Drop maps a failed earlier start left; load the DINO run's state named by ``continue_from``."""
        if self.cluster_dir and dist.rank() == 0 and os.path.isdir(self.cluster_dir):
            shutil.rmtree(self.cluster_dir)
        dist.barrier()
        if self.cfg.continue_from:
            self.load_dino_state(self.cfg.continue_from)

    def load_dino_state(self, source: str) -> None:
        """Student, teacher, heads and centre from a DINO / C-DINO checkpoint (or exp dir); the optimiser and
        schedule stay fresh. A foreign checkpoint or other shapes fail with one line."""
        path = source if os.path.isfile(source) else os.path.join(source, "checkpoints", "latest.pt")
        if not os.path.isfile(path):
            raise WesvError(f"{source}: method.continue_from names neither a checkpoint nor an exp dir with "
                            "checkpoints/latest.pt; give the DINO run's exp dir (e.g. exp/dino)")
        ckpt = load_checkpoint(path)
        state = ckpt.get("method") if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise WesvError(f"{path}: not a training checkpoint (an exported encoder.pt?); method.continue_from "
                            "needs the DINO run's checkpoints/latest.pt or its exp dir")
        kind = (ckpt.get("config") or {}).get("type", "unknown")
        lacking = [p.rstrip(".") for p in DINO_STATE if not any(k == p or k.startswith(p) for k in state)]
        if lacking:
            raise WesvError(f"{path}: not a DINO checkpoint (method {kind!r}, no {', '.join(lacking)}); "
                            "method.continue_from needs a type: dino or cdino experiment")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or unexpected or shapes:
            detail = "; ".join(filter(None, [
                f"shape mismatch {len(shapes)} (e.g. {shapes[0]})" if shapes else "",
                f"missing {len(missing)} (e.g. {missing[0]})" if missing else "",
                f"unexpected {len(unexpected)} (e.g. {unexpected[0]})" if unexpected else ""]))
            raise WesvError(f"{path}: its DINO state does not fit this config ({detail}); use the encoder and "
                            "method.out_dim / hidden_dim / bottleneck_dim / head_layers of that run")
        self.load_state_dict(state)
        log.info("C-DINO: continued from %s (a %s run at epoch %s, step %s): student, teacher, heads and centre "
                 "loaded; optimiser and schedule start fresh", path, kind, ckpt.get("epoch"), ckpt.get("global_step"))

    # ---- progressive re-clustering ---------------------------------------------------------------------------
    def refresh_due(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) starts with a re-clustering (epoch 0 too when no map was given)."""
        n = self.cfg.recluster_every
        return bool(n) and epoch % n == 0 and (epoch > 0 or not self.cfg.cluster_data)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """DINO's schedules; in progressive mode, the teacher's re-clustering when due (rank 0; all ranks wait)."""
        super().on_epoch_start(epoch, num_epochs)
        if self.cluster_dir is None or not self.refresh_due(epoch):
            return
        target = os.path.join(self.cluster_dir, f"epoch_{epoch}")
        if dist.rank() == 0 and not os.path.isfile(os.path.join(target, "utt2spk")):
            self._refresh(epoch, target)
        dist.barrier()  # every rank then reads the same map (the dataset's set_epoch, in each worker)
        self.cluster_path = os.path.relpath(os.path.join(target, "utt2spk"), self.exp_dir)

    def _refresh(self, epoch: int, target: str) -> None:
        start = time.perf_counter()
        wav_scp = dict(zip(self.dataset.utts, self.dataset.specs))
        utt2cluster, info = cluster_teacher(self.teacher_encoder, wav_scp, self.cfg, self.center.device,
                                            seed=self.dataset.seed + epoch)
        tmp = f"{target}.tmp.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        write_scp(os.path.join(tmp, "utt2spk"), utt2cluster)
        info = {"epoch": epoch, **info, "time_s": round(time.perf_counter() - start, 3)}
        atomic_write_lines(os.path.join(tmp, "refresh.json"), [json.dumps(info) + "\n"])
        os.replace(tmp, target)
        self._refresh_info = info
        log.info("C-DINO: re-clustered the teacher's embeddings as epoch %d starts: %d clusters of %d utterances "
                 "(%d skipped) in %.1f s (extract %.1f s, cluster %.1f s) -> %s", epoch + 1, info["num_clusters"],
                 info["num_utts_kept"], info["skipped"], info["time_s"], info["extract_s"], info["cluster_s"],
                 os.path.join(target, "utt2spk"))

    # ---- training step and epoch records ---------------------------------------------------------------------
    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        """DINO's step; logs the share of cluster-drawn views and records each view's source utterance."""
        loss, logs = super().forward(batch)
        if self.cfg.record_view_pairs:
            for v, src in enumerate(batch["view_index"]):
                self.sample_state.update(f"view_src{v}", batch["index"], src)
        return loss, {**logs, **cluster_share(batch, self.cfg.num_global)}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """DINO's statistics, the clusters in use and this refresh's seconds; writes the epoch's view pairs."""
        stats = super().on_epoch_end(epoch)
        if self.dataset is not None and self.dataset.with_clusters:
            stats["num_clusters"] = float(self.dataset.num_clusters())
        if self._refresh_info.get("epoch") == epoch:
            stats["recluster_s"] = float(self._refresh_info["time_s"])
        if self.cfg.record_view_pairs and self.artifact_dir is not None and self.dataset is not None:
            self._write_pairs(epoch)
        return stats

    def _write_pairs(self, epoch: int) -> None:
        """``view_pairs/epoch_N.tsv``: a ``#`` line of counts, then ``anchor view source`` per cluster-drawn view."""
        utts = self.dataset.utts
        src = torch.stack([self.sample_state[f"view_src{v}"] for v in range(len(self.dataset.max_lengths))])
        src = src.cpu().numpy()
        seen = src >= 0
        drawn = seen & (src != np.arange(src.shape[1])[None, :])
        lines = [f"# anchors {int(seen.any(0).sum())} views {int(seen.sum())} drawn {int(drawn.sum())}"
                 f" map {self.cluster_path or self.cfg.cluster_data}\n"]
        for v, i in zip(*np.nonzero(drawn)):
            lines.append(f"{utts[i]}\t{v}\t{utts[src[v, i]]}\n")
        atomic_write_lines(os.path.join(self.artifact_dir, PAIRS_DIR, f"epoch_{epoch + 1}.tsv"), lines)

    def extra_state(self) -> dict:
        """The refreshed map in use (relative to the exp dir), so that a resume checks it is still there."""
        return {"cluster_path": self.cluster_path}

    def load_extra_state(self, state: dict) -> None:
        """Restore the refreshed map's path; a missing file is an error (the dataset would fall back silently)."""
        path = state.get("cluster_path")
        if path and self.exp_dir and not os.path.isfile(os.path.join(self.exp_dir, path)):
            raise WesvError(f"{os.path.join(self.exp_dir, path)}: the refreshed cluster map this run trained with is "
                            "missing; restore it or start the C-DINO run again in a new --exp-dir")
        self.cluster_path = path
