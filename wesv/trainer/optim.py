"""Optimiser from a method's parameter groups (no weight decay on 1-D params) and the per-step lr schedule."""
import math

import torch
from torch import nn

from wesv.errors import WesvError


def split_groups(groups: list[dict], weight_decay: float, lr: float) -> list[dict]:
    """Turn ``{"name", "params", "lr_scale"}`` groups into optimiser groups; 1-D params (biases, norms) get no decay."""
    seen: set[int] = set()
    out = []
    for g in groups:
        scale = float(g.get("lr_scale", 1.0))
        decay, no_decay = [], []
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"parameter group {g.get('name')!r} repeats a parameter of an earlier group")
            seen.add(id(p))
            (no_decay if p.ndim <= 1 else decay).append(p)
        name = g.get("name", f"group{len(out)}")
        for suffix, params, wd in (("", decay, weight_decay), (".no_decay", no_decay, 0.0)):
            if params:
                out.append({"name": name + suffix, "params": params, "lr": lr * scale, "lr_scale": scale,
                            "weight_decay": wd})
    return out


def build_optimizer(groups: list[dict], cfg) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW over the method's parameter groups (``cfg`` is an ``OptimConfig``)."""
    param_groups = split_groups(groups, cfg.weight_decay, cfg.lr)
    if not param_groups:
        raise WesvError("the method has no trainable parameters")
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and
                               cfg.momentum > 0)
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, betas=tuple(cfg.betas))
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=tuple(cfg.betas))


def lr_factor(step: int, total_steps: int, warmup_steps: int, cfg) -> float:
    """Multiplier of the base lr at ``step`` (0-based): linear warm-up, then cosine / exponential to ``final_lr``."""
    if step < warmup_steps:
        start = cfg.warmup_start_lr / cfg.lr
        return start + (1.0 - start) * step / warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - 1 - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    final = cfg.final_lr / cfg.lr
    if cfg.schedule == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
    return final ** t  # exponential: lr · (final/lr)^t


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR over ``epochs × steps_per_epoch`` steps (warm-up given in epochs)."""
    total = epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, cfg))


CLIP_MODES = ("global", "per_tensor")


@torch.no_grad()
def clip_gradients(parameters, max_norm: float, mode: str = "global") -> torch.Tensor:
    """Clip gradients in place to ``max_norm``; returns the global L2 norm of all gradients before clipping.

    ``global``: scale all gradients together so their joint norm is at most ``max_norm`` (``clip_grad_norm_``).
    ``per_tensor``: scale each gradient tensor on its own to a norm of at most ``max_norm``, as WeSpeaker's DINO and
    MoCo recipes do (their ``clip_gradients``), so one large gradient does not shrink all the others.
    """
    if mode not in CLIP_MODES:
        raise WesvError(f"optim.clip_mode = {mode!r}: choose one of {', '.join(CLIP_MODES)}")
    params = [p for p in parameters if p.grad is not None]
    if mode == "global":
        return nn.utils.clip_grad_norm_(params, max_norm)
    if not params:
        return torch.zeros(())
    norms = torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params])
    scales = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p, scale in zip(params, scales):
        p.grad.mul_(scale.to(p.grad.dtype))
    return torch.linalg.vector_norm(norms)


def trainable_signature(module: nn.Module) -> tuple[bool, ...]:
    """Which parameters currently require grad (DDP must be rebuilt when this changes)."""
    return tuple(p.requires_grad for p in module.parameters())
