"""MoCo for speakers: InfoNCE between a query crop and a momentum-encoded key crop of one utterance, with a queue."""
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from wesv import distributed as dist
from wesv.data.views import GlobalViewsConfig, ViewsDataset, build_views_dataset, view_logs
from wesv.errors import WesvError
from wesv.nn.ema import ema_update_, frozen_copy
from wesv.nn.heads import ProjectionHead
from wesv.trainer.method import DataInfo, Method, register_method


@dataclass
class MocoConfig(GlobalViewsConfig):
    """MoCo settings (METHODS.md); two 2–3 s crops per utterance by default, no local views."""

    num_global: int = 2
    global_seconds: float = 2.0
    global_seconds_max: float | None = 3.0
    proj_dim: int = 128
    proj_hidden_dim: int = 2048  # 0: a single linear projection
    queue_size: int = 65536
    temperature: float = 0.07
    momentum: float = 0.999
    symmetric: bool = False  # also swap the roles of the two crops (and enqueue both keys)
    shuffle_bn_chunks: int = 4  # one process: BN statistics per chunk (see ``Moco._encode_keys``)
    shuffle_bn_min_chunk: int = 16  # ... of at least this many samples (fewer chunks when the batch is small)


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
                    exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``[q·k⁺, q·queue_j …] / T``, shape ``(B, 1 + Q)``, positive in column 0; float32 even under autocast.

    ``exclude`` (bool, ``(B, Q)``) marks queue entries that are no negatives of a query: their logit is −inf.
    """
    with torch.autocast(q.device.type, enabled=False):
        q, k, queue = q.float(), k.float(), queue.float()
        l_pos = torch.sum(q * k, dim=-1, keepdim=True)
        l_neg = q @ queue.t()
        if exclude is not None:
            l_neg = l_neg.masked_fill(exclude, float("-inf"))
        return torch.cat([l_pos, l_neg], dim=1) / temperature


def same_utterance(index: torch.Tensor, queue_index: torch.Tensor) -> torch.Tensor:
    """``(B, Q)`` mask of the queue entries whose key was cut from the query's own utterance (dataset index)."""
    return queue_index.unsqueeze(0) == index.to(queue_index.device).unsqueeze(1)


def chunk_sizes(n: int, chunks: int, min_size: int = 2) -> list[int]:
    """Split ``n`` into at most ``chunks`` near-equal parts of at least ``min_size`` (one part if ``n`` is smaller).

    Measured (bench/shuffle_bn_noise.py, mini ECAPA): a chunk's per-channel BN mean is off the population mean by
    0.33 std in the embedding BN (no frames to average) at 8 samples, 0.23 at 16 (0.07 vs 0.045 in the frame-level
    BNs), so batch 32 in 4 chunks of 8 normalises keys with noisy statistics; ``shuffle_bn_min_chunk`` (16)
    trades some chunks for steadier statistics.
    """
    g = max(1, min(chunks, n // max(2, min_size)))
    return [n // g + (1 if i < n % g else 0) for i in range(g)]


@register_method("moco", config=MocoConfig)
class Moco(Method):
    """Query encoder + projector trained by InfoNCE against an EMA key encoder and a FIFO queue of past keys."""

    uses_labels = False

    def __init__(self, cfg: MocoConfig, encoder: nn.Module, data_info: DataInfo):
        super().__init__(cfg, encoder, data_info)
        if cfg.num_global < 2:
            raise WesvError(f"MoCo needs two views: set method.num_global: 2 (got {cfg.num_global})")
        if cfg.queue_size < 1:
            raise WesvError(f"method.queue_size must be >= 1 (got {cfg.queue_size})")
        if cfg.shuffle_bn_chunks < 1 or cfg.shuffle_bn_min_chunk < 2:
            raise WesvError(f"method.shuffle_bn_chunks must be >= 1 and method.shuffle_bn_min_chunk >= 2 (BatchNorm "
                            f"needs two samples; got {cfg.shuffle_bn_chunks}, {cfg.shuffle_bn_min_chunk})")
        self.head = ProjectionHead(encoder.embed_dim, cfg.proj_dim, cfg.proj_hidden_dim)
        self.key_encoder = frozen_copy(encoder)
        self.key_head = frozen_copy(self.head)
        # Buffers, so the queue and its pointer are checkpointed and resumed with the model.
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # Dataset index of each queued key (-1: a random initial key). A query's own utterance from an earlier
        # epoch is the same speaker *and* session: masked out of its negatives, whatever the queue size.
        self.register_buffer("queue_index", torch.full((cfg.queue_size,), -1, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before queue_index: resume with unknown owners (nothing masked until overwritten).
        state_dict.setdefault(prefix + "queue_index", torch.full_like(self.queue_index, -1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def build_dataset(cls, cfg: MocoConfig, data_cfg: Any, augmenter: Callable | None, seed: int) -> ViewsDataset:
        """Two augmented crops of each training utterance (never reads its utt2spk)."""
        return build_views_dataset(cfg, data_cfg.train, augmenter, seed, data_cfg.sample_rate, data_cfg.short,
                                   data_cfg.resample, data_cfg.shards)

    @classmethod
    def data_info(cls, cfg: MocoConfig, dataset: ViewsDataset) -> DataInfo:
        """Number of samples only: MoCo uses no labels."""
        return DataInfo(num_samples=len(dataset))

    def _encode_queries(self, x: torch.Tensor) -> torch.Tensor:
        if dist.world_size() > 1:
            return self.head(self.encoder(x))
        return torch.cat([self.head(self.encoder(c)) for c in x.split(self._chunks(len(x)))])

    def _chunks(self, n: int) -> list[int]:
        return chunk_sizes(n, self.cfg.shuffle_bn_chunks, self.cfg.shuffle_bn_min_chunk)

    @torch.no_grad()
    def _encode_keys(self, x: torch.Tensor) -> torch.Tensor:
        """Keys with Shuffle-BN: no key shares its BatchNorm statistics with its own query's.

        Under DDP the key batch is shuffled across ranks (MoCo). In one process the batch plays G virtual GPUs:
        queries are encoded in G chunks in batch order, keys in G chunks of a shuffled batch, so each key's BN
        statistics come from a random subset, as a key on another GPU would — the same cost, no process group.
        """
        if dist.world_size() > 1:
            return self._encode_keys_ddp(x)
        perm = torch.randperm(len(x), device=x.device)
        parts = x[perm].split(self._chunks(len(x)))
        shuffled = torch.cat([self.key_head(self.key_encoder(c)) for c in parts])
        return shuffled[torch.argsort(perm)]

    @torch.no_grad()
    def _encode_keys_ddp(self, x: torch.Tensor) -> torch.Tensor:
        # Each rank's loader drew its own crop length (length ranges): cut all to the shortest (crops start at
        # random already, so a prefix is still a random crop) so the batches can be gathered.
        x = x[:, :min(dist.all_gather_sizes(x.shape[1], x.device))]
        x_all, sizes = dist.all_gather_cat(x)
        perm = torch.randperm(len(x_all), device=x.device)
        dist.broadcast_(perm, src=0)
        start = sum(sizes[: dist.rank()])
        mine = perm[start:start + len(x)]
        k_all, _ = dist.all_gather_cat(self.key_head(self.key_encoder(x_all[mine])))
        unshuffled = torch.empty_like(k_all)
        unshuffled[perm] = k_all
        return unshuffled[start:start + len(x)]

    def _loss(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
              exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = info_nce_logits(q, k, queue, self.cfg.temperature, exclude)
        target = torch.zeros(len(q), dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target), (logits.argmax(1) == 0).float().mean()

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """InfoNCE of view 0 (query) against view 1 (key) and the queue (less the query's own utterance's keys);
        then enqueue the keys with their utterances' dataset indices."""
        x1, x2 = batch["views"][0], batch["views"][1]
        index = torch.as_tensor(batch["index"], dtype=torch.long, device=self.queue_index.device)
        queue = self.queue.clone().detach()  # enqueue below writes the buffer in place
        exclude = same_utterance(index, self.queue_index)
        q = self._encode_queries(x1)
        k = self._encode_keys(x2)
        loss, acc = self._loss(q, k, queue, exclude)
        keys, indices = k, index
        if self.cfg.symmetric:
            q2, k2 = self._encode_queries(x2), self._encode_keys(x1)
            loss2, acc2 = self._loss(q2, k2, queue, exclude)
            loss, acc = (loss + loss2) / 2, (acc + acc2) / 2
            keys, indices = torch.cat([k, k2]), torch.cat([index, index])
        self._enqueue(keys, indices)
        return loss, {"moco_acc": acc.detach(), "moco_masked": exclude.sum(1).float().mean(),
                      **view_logs(batch)}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor, indices: torch.Tensor) -> None:
        """Write every rank's keys (and their dataset indices) into the ring buffer at the pointer, oldest first out
        (wrap-around)."""
        keys, _ = dist.all_gather_cat(keys.detach())
        indices, _ = dist.all_gather_cat(indices.to(keys.device, torch.long))
        size, n = self.queue.shape[0], keys.shape[0]
        first = max(0, n - size)  # more keys than slots: the older ones would be overwritten at once
        idx = (self.queue_ptr + torch.arange(first, n, device=keys.device)) % size
        self.queue[idx] = keys[first:].to(self.queue.dtype)
        self.queue_index[idx] = indices[first:].to(self.queue_index.device)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def synced_buffers(self) -> dict[str, str]:
        """BN statistics of query and key networks averaged; queue, pointer and indices (all-gathered) guarded."""
        return {**super().synced_buffers(), "head": "mean", "key_encoder": "mean", "key_head": "mean",
                "queue": "broadcast", "queue_ptr": "broadcast", "queue_index": "broadcast"}

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Momentum update of the key encoder and projector."""
        ema_update_(self.key_encoder, self.encoder, self.cfg.momentum)
        ema_update_(self.key_head, self.head, self.cfg.momentum)
