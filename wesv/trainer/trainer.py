"""The one trainer: devices, DDP, AMP, optimiser and schedule, logging, checkpoints, resume, SIGTERM and NaN stops.

Resume is exact, also mid-epoch: the sampler order comes from ``(seed, epoch)``, datasets draw from
``default_rng([seed, epoch, index])``, and checkpoints hold every RNG state, so a resumed run skips the batches
already trained on and computes the same next-step loss as an uninterrupted run. Method hooks must therefore be
idempotent for an epoch (``on_epoch_start`` is called again when a run resumes inside an epoch).
"""
import logging
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from wesv.config.train import TrainConfig, config_to_dict, save_config
from wesv.distributed import DistEnv, all_gather_objects, all_reduce_sum, barrier, cleanup_distributed, init_distributed
from wesv.errors import WesvError
from wesv.log import FORMAT as LOG_FORMAT
from wesv.log import get_logger
from wesv.trainer.buffers import resolve_synced_buffers, sync_buffers_
from wesv.trainer.checkpoint import (atomic_torch_save, link_or_copy_atomic, load_checkpoint, prune_checkpoints,
                                     rng_state, set_rng_state)
from wesv.trainer.loaders import build_loader
from wesv.trainer.method import Method, find_method
from wesv.trainer.metrics import MetricsLog, plot_loss
from wesv.trainer.optim import build_optimizer, build_scheduler, clip_gradients, trainable_signature
from wesv.trainer.preflight import prepare_training_data
from wesv.trainer.resources import count_parameters, set_torch_threads
from wesv.trainer.resume_check import check_resume_config
from wesv.trainer.rundir import RunDir
from wesv.trainer.stop import StopRequest
from wesv.trainer.validation import Validator

log = get_logger("wesv.trainer")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def pick_device(name: str, env: DistEnv) -> torch.device:
    """``auto`` → CUDA when available; ``cuda`` without a GPU is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise WesvError("trainer.device is cuda but no GPU is visible; use --trainer.device cpu")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", env.local_rank)


def load_init_weights(encoder: nn.Module, path: str, encoder_name: str) -> None:
    """Copy the weights of an exported ``encoder.pt`` into ``encoder``; architecture mismatches fail clearly."""
    from wesv.models import load_encoder

    if not os.path.isfile(path):
        raise WesvError(f"{path}: --init-from file not found; give an exp dir's encoder.pt")
    try:
        src = load_encoder(path)
    except WesvError as err:
        raise WesvError(f"--init-from {err}") from None
    src_state, dst_state = src.state_dict(), encoder.state_dict()
    missing = [k for k in dst_state if k not in src_state]
    unexpected = [k for k in src_state if k not in dst_state]
    shapes = [f"{k} {tuple(src_state[k].shape)} vs {tuple(v.shape)}" for k, v in dst_state.items()
              if k in src_state and src_state[k].shape != v.shape]
    if missing or unexpected or shapes:
        detail = "; ".join(filter(None, [
            f"missing {len(missing)} (e.g. {missing[0]})" if missing else "",
            f"unexpected {len(unexpected)} (e.g. {unexpected[0]})" if unexpected else "",
            f"shape mismatch {len(shapes)} (e.g. {shapes[0]})" if shapes else ""]))
        raise WesvError(f"{path}: --init-from encoder does not match encoder {encoder_name!r} of the config "
                        f"({detail}); use the same encoder name and settings as the run that wrote it")
    encoder.load_state_dict(src_state)
    log.info("initialised the encoder from %s", path)


def export_encoder(method: Method, path: str) -> None:
    """Write ``method.export_encoder()`` to ``path`` through ``wesv.models.save_encoder`` (atomic itself; called with
    the final name, which names the parts an encoder writes beside the file)."""
    from wesv.models import save_encoder

    save_encoder(path, method.export_encoder())


class Trainer:
    """Trains ``cfg.type``'s method on ``cfg.data`` into ``exp_dir``; ``fit()`` returns the process exit code."""

    def __init__(self, cfg: TrainConfig, exp_dir: str, resume: bool = False):
        self.cfg = cfg
        self.exp_dir = exp_dir
        self.resume = resume
        self.ckpt_dir = os.path.join(exp_dir, "checkpoints")
        self.latest = os.path.join(self.ckpt_dir, "latest.pt")
        self.last_good: str | None = None
        self.metrics: MetricsLog | None = None
        self._nan_skips = 0
        self._started = False  # training began: a failure from then on keeps the exp dir
        self._stats: EpochStats | None = None
        self._resumed_stats: list | None = None

    # ---- building -------------------------------------------------------------------------------------------
    def setup(self, env: DistEnv, device: torch.device, ckpt: dict | None = None) -> None:
        """Build dataset, method, loader, optimiser, schedule and scaler on ``device``; restore ``ckpt`` if given."""
        self.env, self.device = env, device
        cfg = self.cfg
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        from wesv.models import build_encoder

        augmenter = None
        if cfg.augment is not None:
            from wesv.augment import Augmenter

            augmenter = Augmenter(cfg.augment)
        method_cls = find_method(cfg.type).factory
        self.dataset = method_cls.build_dataset(cfg.method, cfg.data, augmenter, cfg.seed)
        data_info = method_cls.data_info(cfg.method, self.dataset)
        encoder = build_encoder(cfg.encoder.name, cfg.encoder.config)
        if encoder.sample_rate != cfg.data.sample_rate:
            raise WesvError(f"data.sample_rate is {cfg.data.sample_rate} Hz but encoder {cfg.encoder.name}'s front-end "
                            f"takes {encoder.sample_rate} Hz — make them agree (data.resample: true converts audio "
                            "at another rate)")
        prepare_training_data(cfg, self.dataset, encoder, preflight=ckpt is None and not cfg.data.shards)
        if cfg.trainer.init_from and ckpt is None:
            load_init_weights(encoder, cfg.trainer.init_from, cfg.encoder.name)
        self.method: Method = method_cls(cfg.method, encoder, data_info).to(self.device)
        self.method.sample_state.to(self.device)
        self.method.artifact_dir = self.exp_dir if env.is_main else None
        self.method.attach_run(self.dataset, self.exp_dir)
        if ckpt is None:
            self.method.on_fresh_start()
        self._synced_buffers = resolve_synced_buffers(self.method, self.method.synced_buffers())
        self.model: nn.Module = self.method
        self._ddp_signature: tuple | None = None
        if env.rank:  # same initial weights everywhere, but each rank its own dither / dropout noise
            torch.manual_seed(cfg.seed + env.rank)

        self.sampler, self.loader, full = build_loader(cfg, self.dataset, env, self.device, ckpt, self.latest)
        self.steps_per_epoch = min(full, cfg.trainer.max_steps_per_epoch or full)
        if self.steps_per_epoch < 1:
            raise WesvError(f"{cfg.data.shards or cfg.data.train}: {len(self.dataset)} utterances give no full "
                            f"batch of data.batch_size {cfg.data.batch_size} on {self.env.world_size} process(es); lower data.batch_size")
        self.total_steps = self.steps_per_epoch * cfg.trainer.epochs

        self.optimizer = build_optimizer(self.method.param_groups(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.trainer.epochs)
        self.amp = cfg.trainer.amp and self.device.type == "cuda"
        if cfg.trainer.amp and not self.amp:
            log.warning("trainer.amp needs a GPU; training in float32 on %s", self.device)
        self.amp_dtype = torch.bfloat16 if cfg.trainer.amp_dtype == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)

        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.validator = Validator(cfg.validation if env.is_main else None, cfg.trainer.epochs, self.device)
        if ckpt is not None:
            self._restore(ckpt)

    def _restore(self, ckpt: dict) -> None:
        self.method.load_state_dict(ckpt["method"])
        self.method.load_extra_state(ckpt.get("extra", {}))
        self.method.sample_state.load_state_dict(ckpt.get("sample_state", {}), self.latest)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch_in_epoch = ckpt["epoch"], ckpt["batch_in_epoch"]
        self.global_step = ckpt["global_step"]
        self._resumed_stats = ckpt.get("epoch_stats")
        rngs = ckpt["rng"]
        if len(rngs) == self.env.world_size:
            set_rng_state(rngs[self.env.rank])
        else:
            log.warning("checkpoint was written by %d processes, now %d: RNG states are reseeded",
                        len(rngs), self.env.world_size)
            torch.manual_seed(self.cfg.seed + self.global_step + self.env.rank)
        log.info("resumed from %s at epoch %d, batch %d (step %d)", self.latest, self.epoch + 1,
                 self.batch_in_epoch, self.global_step)

    def _wrap(self) -> None:
        """(Re)wrap the method in DDP when the set of trainable parameters changed (e.g. unfreezing a backbone)."""
        if not self.env.distributed:
            return
        sig = trainable_signature(self.method)
        if sig == self._ddp_signature:
            return
        self._ddp_signature = sig
        self.model = DistributedDataParallel(
            self.method, device_ids=[self.env.local_rank] if self.device.type == "cuda" else None,
            find_unused_parameters=self.cfg.trainer.find_unused_parameters,
            broadcast_buffers=False)  # the method's synced_buffers() are synced explicitly (_sync_method_state)

    def _sync_method_state(self) -> None:
        """Gather the per-sample table from every rank and sync the named buffers (a collective)."""
        self.method.sample_state.sync()
        sync_buffers_(self._synced_buffers)

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def _save(self, finished: bool = False, epoch_file: bool = False) -> None:
        self._sync_method_state()
        rngs = all_gather_objects(rng_state())  # a collective: every rank takes part
        epoch_stats = all_gather_objects(self._stats.state() if self._stats and self.batch_in_epoch else None)
        if self.env.is_main:
            state = {"method": self.method.state_dict(), "extra": self.method.extra_state(),
                     "sample_state": self.method.sample_state.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict(), "rng": rngs, "epoch": self.epoch,
                     "batch_in_epoch": self.batch_in_epoch, "global_step": self.global_step,
                     "finished": finished, "config": config_to_dict(self.cfg), "epoch_stats": epoch_stats}
            if epoch_file:
                path = os.path.join(self.ckpt_dir, f"epoch_{self.epoch}.pt")
                atomic_torch_save(state, path)
                link_or_copy_atomic(path, self.latest)
                prune_checkpoints(self.ckpt_dir, self.cfg.trainer.keep_checkpoints)
            else:
                atomic_torch_save(state, self.latest)
            self.last_good = self.latest
        barrier()

    # ---- the loop -------------------------------------------------------------------------------------------
    def fit(self) -> int:
        """Train to ``trainer.epochs``; 0 when done, 128+signal when stopped by SIGTERM/SIGINT (resumable)."""
        use_cuda = self.cfg.trainer.device != "cpu" and torch.cuda.is_available()
        self.env = init_distributed(use_cuda)
        handler = None
        run_dir = RunDir(self.exp_dir, self.env)
        threads_before = torch.get_num_threads()
        try:
            run_dir.open()
            os.makedirs(self.ckpt_dir, exist_ok=True)
            if self.env.is_main:  # train.log beside the run, for this run only
                handler = logging.FileHandler(os.path.join(self.exp_dir, "train.log"))
                handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
                logging.getLogger("wesv").addHandler(handler)
            self.device = pick_device(self.cfg.trainer.device, self.env)
            self._threads = set_torch_threads(self.cfg.trainer.num_threads, self.cfg.data.num_workers)
            return self._fit()
        finally:
            if handler is not None:
                logging.getLogger("wesv").removeHandler(handler)
                handler.close()
            run_dir.close(self._started)
            cleanup_distributed()
            torch.set_num_threads(threads_before)  # a library call leaves the process as it found it

    def _fit(self) -> int:
        cfg, env = self.cfg, self.env
        ckpt = None
        if os.path.exists(self.latest):
            if not self.resume:
                raise WesvError(f"{self.latest}: the exp dir already holds a run; pass --resume to continue it or "
                                "choose another --exp-dir")
            ckpt = load_checkpoint(self.latest)
            check_resume_config(ckpt.get("config"), config_to_dict(cfg), self.latest, self.exp_dir,
                                cfg.trainer.resume_changes)
            self.last_good = self.latest
            if ckpt["epoch"] >= cfg.trainer.epochs:
                log.info("%s: finished (%d epochs); nothing to do", self.exp_dir, ckpt["epoch"])
                return 0
        elif self.resume:
            log.info("no checkpoint in %s: starting from scratch", self.ckpt_dir)
        # Logged only now: a refused resume must leave train.log as it was.
        log.info("torch threads: %d (trainer.num_threads %d%s)", self._threads, cfg.trainer.num_threads,
                 " = auto" if cfg.trainer.num_threads == 0 else "")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.trainer.cudnn_benchmark
        self.setup(self.env, self.device, ckpt)
        if env.is_main:
            save_config(cfg, os.path.join(self.exp_dir, "config.yaml"))
            self.metrics = MetricsLog(os.path.join(self.exp_dir, "metrics.jsonl"),
                                      self.global_step if ckpt is not None else None)
        log.info("parameters: encoder (exported): %d, trained total: %d",
                 count_parameters(self.method.export_encoder()), count_parameters(self.method, trainable_only=True))
        log.info("method %s, encoder %s, %d utterances, %d steps/epoch × %d epochs, %d process(es) "
                 "on %s%s", cfg.type, cfg.encoder.name, len(self.dataset), self.steps_per_epoch,
                 cfg.trainer.epochs, env.world_size, self.device, f", amp {cfg.trainer.amp_dtype}" if self.amp else "")
        self._started = True
        with StopRequest() as stop:
            while self.epoch < cfg.trainer.epochs:
                if not self._train_epoch(stop) or self._stop_agreed(stop):
                    log.warning("stopped at epoch %d, batch %d (step %d); checkpoint %s. Resume with: python -m "
                                "wesv.bin.train --config %s --exp-dir %s --resume", self.epoch + 1,
                                self.batch_in_epoch, self.global_step, self.latest,
                                os.path.join(self.exp_dir, "config.yaml"), self.exp_dir)
                    return stop.exit_code
        if env.is_main:
            export_encoder(self.method, os.path.join(self.exp_dir, "encoder.pt"))
        log.info("finished %d epochs; encoder in %s", cfg.trainer.epochs, os.path.join(self.exp_dir, "encoder.pt"))
        return 0

    @staticmethod
    def _stop_arrives(stop: StopRequest, wait_s: float = 5.0) -> bool:
        """Whether a stop signal arrived (waiting a little: it may reach the workers before this process)."""
        deadline = time.time() + wait_s
        while not stop.requested and time.time() < deadline:
            time.sleep(0.1)
        return stop.requested

    def _stop_agreed(self, stop: StopRequest) -> bool:
        """Whether any process was asked to stop (checked between epochs; the epoch checkpoint is saved)."""
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=self.device if self.env.distributed else "cpu")
        return bool(all_reduce_sum(flag).item() > 0)

    def _nonfinite(self, value: float) -> None:
        where_ = (f"epoch {self.epoch + 1}, batch {self.batch_in_epoch + 1}, step {self.global_step + 1}")
        if self.cfg.trainer.nan_policy == "skip" and self._nan_skips < self.cfg.trainer.max_nan_skips:
            self._nan_skips += 1
            log.warning("non-finite loss (%s) at %s: step skipped (%d in a row)", value, where_, self._nan_skips)
            return
        good = self.last_good or "none (the run had not saved one yet)"
        raise WesvError(f"non-finite loss ({value}) at {where_}; last good checkpoint: {good}. Lower optim.lr, "
                        "set optim.grad_clip or use trainer.amp_dtype bf16, then rerun with --resume "
                        "--trainer.resume_changes '[KEYS YOU CHANGED]'")

    def _train_epoch(self, stop: StopRequest) -> bool:
        """One epoch (or its rest, when resuming); False when a stop signal ended it early."""
        cfg = self.cfg
        epoch = self.epoch
        if self.batch_in_epoch == 0:  # a fresh epoch; a run resumed inside one keeps its partial table
            self.method.sample_state.start_epoch()
        self.method.on_epoch_start(epoch, cfg.trainer.epochs)
        self._wrap()
        self.model.train()
        self.sampler.set_epoch(epoch, skip=self.batch_in_epoch * cfg.data.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        # A run resumed inside the epoch carries on its sums, so that the epoch record covers every step.
        stats = EpochStats.resumed(self._resumed_stats, self.env) if self.batch_in_epoch else EpochStats()
        self._stats = stats
        self._resumed_stats = None
        bar = tqdm(total=self.steps_per_epoch, initial=self.batch_in_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.trainer.epochs}",
                   disable=not (self.env.is_main and cfg.trainer.progress), dynamic_ncols=True, leave=False)
        try:
            finished = self.run_steps(self.loader, stop, stats, bar)
        finally:
            bar.close()
        if finished:
            self._end_epoch(epoch, stats)
        return finished

    def run_steps(self, batches: Iterable, stop: StopRequest, stats: "EpochStats", bar: Any = None) -> bool:
        """Train on ``batches`` until the epoch's step count; False when a stop signal ended it (checkpoint saved)."""
        cfg, env = self.cfg, self.env
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else nullcontext()
        it = iter(batches)
        while self.batch_in_epoch < self.steps_per_epoch:
            try:
                batch = next(it)
            except StopIteration:
                break
            except RuntimeError:  # DataLoader workers killed, e.g. by the scheduler's SIGTERM sent to every process
                if not self._stop_arrives(stop):
                    raise
                if self.env.distributed:  # the ranks cannot agree on a step to save at
                    name = signal.Signals(stop.signum).name
                    raise WesvError(f"{name} killed the data loader workers before this process could save; "
                                    f"resume from the last checkpoint ({self.last_good or 'none yet'}) with "
                                    "--resume") from None
                self._save()
                return False
            batch = to_device(batch, self.device)
            with autocast:
                loss, logs = self.model(batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            look_first = cfg.trainer.nan_policy == "skip"  # skipping a bad step needs the loss before the step
            if look_first:
                value, flags = self._read_loss(loss, stop)
            if not look_first or flags[0] == 0:
                logs = self._optimizer_step(logs)
            if not look_first:
                # Read the loss once the step is queued, as a hand-written loop does: no GPU idle while the
                # optimiser's kernels are launched. A non-finite loss stops the run before anything is saved.
                value, flags = self._read_loss(loss, stop)
            if flags[0] > 0:
                self.optimizer.zero_grad(set_to_none=True)
                self._nonfinite(value)
            else:
                self._nan_skips = 0
                stats.add(value, logs)
            self.scheduler.step()
            self.method.after_optimizer_step(self.global_step, self.total_steps)
            self.global_step += 1
            self.batch_in_epoch += 1
            stats.samples += len(batch["index"])
            if bar is not None:
                bar.update(1)
            if self.global_step % cfg.trainer.log_every == 0:
                lr = self.current_lr()
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.2e}")
                if env.is_main and self.metrics is not None:
                    self.metrics.write({"kind": "step", "epoch": self.epoch + 1, "step": self.global_step,
                                        "loss": value, "lr": lr})
            if flags[1] > 0:
                self._save()
                return False
            if cfg.trainer.save_every_steps and self.global_step % cfg.trainer.save_every_steps == 0:
                self._save()
        return True

    def _read_loss(self, loss: torch.Tensor, stop: StopRequest) -> tuple[float, list[float]]:
        """The loss value and the flags [non-finite loss, stop requested], agreed over processes."""
        value = loss.item()
        flags = [0.0 if math.isfinite(value) else 1.0, 1.0 if stop.requested else 0.0]
        if self.env.distributed:  # every rank must take the same branch
            flags = all_reduce_sum(torch.tensor(flags, device=self.device)).tolist()
        return value, flags

    def _optimizer_step(self, logs: dict) -> dict:
        """Clip (after unscaling), step the optimiser through the GradScaler; adds ``grad_norm`` to the logs."""
        if self.cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            gnorm = clip_gradients(self.method.parameters(), self.cfg.optim.grad_clip, self.cfg.optim.clip_mode)
            logs = {**logs, "grad_norm": gnorm.detach()}
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return logs

    def current_lr(self) -> float:
        """The base lr now (group lr divided by its part's lr scale)."""
        g = self.optimizer.param_groups[0]
        return g["lr"] / g.get("lr_scale", 1.0)

    def _end_epoch(self, epoch: int, stats: "EpochStats") -> None:
        cfg, env = self.cfg, self.env
        seconds = time.time() - stats.start
        keys = sorted(stats.sums)
        totals = torch.tensor([stats.loss_sum, stats.steps, stats.samples] + [float(stats.sums[k]) for k in keys],
                              dtype=torch.float64, device=self.device if env.distributed else "cpu")
        all_reduce_sum(totals)
        steps = max(1.0, float(totals[1]))
        record = {"kind": "epoch", "epoch": epoch + 1, "step": self.global_step, "loss": float(totals[0]) / steps,
                  "lr": self.current_lr()}
        record.update({k: float(totals[3 + i]) / steps for i, k in enumerate(keys)})
        self._sync_method_state()
        record.update({k: float(v) for k, v in self.method.on_epoch_end(epoch).items()})
        record.update({"time_s": round(seconds, 2), "samples_per_s": round(float(totals[2]) / max(seconds, 1e-9), 2)})
        self.epoch, self.batch_in_epoch = epoch + 1, 0
        every = cfg.trainer.save_every_epochs
        self._save(epoch_file=every > 0 and (self.epoch % every == 0 or self.epoch == cfg.trainer.epochs),
                   finished=self.epoch >= cfg.trainer.epochs)
        if env.is_main:
            record.update(self.validator(self.method.export_encoder(), self.epoch))
            self.metrics.write(record)
            export_encoder(self.method, os.path.join(self.exp_dir, "encoder.pt"))
            plot_loss(self.metrics.read(), os.path.join(self.exp_dir, "loss.png"))
        extras = "".join(f"{k} {v:.4g} " for k, v in record.items()
                         if k not in ("kind", "epoch", "step", "loss", "lr", "time_s", "samples_per_s"))
        log.info("epoch %d/%d loss %.4f lr %.3g %stime %.1fs %.1f samples/s", epoch + 1, cfg.trainer.epochs,
                 record["loss"], record["lr"], extras, seconds, record["samples_per_s"])


class EpochStats:
    """Sums over an epoch's steps; method logs that are tensors stay on the device (no sync per step)."""

    def __init__(self) -> None:
        self.start = time.time()
        self.loss_sum, self.steps, self.samples = 0.0, 0, 0
        self.sums: dict[str, Any] = {}

    def add(self, loss: float, logs: dict) -> None:
        """Count one finished step."""
        self.loss_sum += loss
        self.steps += 1
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + (v.detach().float() if isinstance(v, torch.Tensor) else float(v))

    def state(self) -> dict:
        """The sums so far (plain floats) and the seconds spent, for a checkpoint written inside the epoch."""
        return {"loss_sum": self.loss_sum, "steps": self.steps, "samples": self.samples,
                "sums": {k: float(v) for k, v in self.sums.items()}, "elapsed": time.time() - self.start}

    @classmethod
    def resumed(cls, states: list | None, env: DistEnv) -> "EpochStats":
        """This rank's sums from a mid-epoch checkpoint (all of them on rank 0 when the world size changed).

        The epoch record all-reduces the sums, so a run resumed inside an epoch reports the whole epoch.
        """
        stats = cls()
        if not states:
            mine = []
        elif len(states) == env.world_size:
            mine = [states[env.rank]]
        else:
            mine = list(states) if env.rank == 0 else []
        for s in filter(None, mine):
            stats.loss_sum += s["loss_sum"]
            stats.steps += s["steps"]
            stats.samples += s["samples"]
            for k, v in s["sums"].items():
                stats.sums[k] = stats.sums.get(k, 0.0) + v
            stats.start = min(stats.start, time.time() - s["elapsed"])
        return stats


def train(cfg: TrainConfig, exp_dir: str, resume: bool = False) -> int:
    """Train a config into ``exp_dir``; returns the exit code (0, or 128+signal when preempted)."""
    return Trainer(cfg, exp_dir, resume).fit()
