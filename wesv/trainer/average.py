"""Average the exported encoder over several epoch checkpoints (``checkpoints/epoch_N.pt``) into one encoder file.

A checkpoint holds the whole method's state; the encoder that extraction uses is ``method.export_encoder()`` (the
teacher backbone for DINO). Its keys are found by building the method from the checkpoint's config and locating
that module inside it, so every method is handled the same way.
"""
import json
import os

import torch
from torch import nn

from wesv.errors import WesvError
from wesv.trainer.checkpoint import epoch_checkpoints, load_checkpoint
from wesv.trainer.method import DataInfo, find_method

SELECTIONS = ("last", "best-val")
#: The metrics.jsonl key ``--by best-val`` ranks epochs by (lower is better), written by validation during training.
VAL_KEY = "val_eer"


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of float tensors (summed in float64); other tensors (step counters) from the last state."""
    if not states:
        raise ValueError("average_state_dicts needs at least one state dict")
    keys = list(states[-1])
    for i, s in enumerate(states):
        if list(s) != keys:
            raise ValueError(f"state dict {i} has other keys than the last one")
    out = {}
    for k in keys:
        last = states[-1][k]
        if last.is_floating_point():
            total = torch.zeros_like(last, dtype=torch.float64)
            for s in states:
                total += s[k].to(torch.float64)
            out[k] = (total / len(states)).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


def export_prefix(method: nn.Module) -> str:
    """The state-dict prefix (``"teacher_encoder."``) of ``method.export_encoder()`` inside ``method``."""
    target = method.export_encoder()
    for name, module in method.named_modules():
        if module is target:
            return f"{name}." if name else ""
    raise ValueError(f"{type(method).__name__}.export_encoder() returns a module that is not part of the method")


def _build_method(config: dict) -> tuple[nn.Module, nn.Module]:
    """The method (untrained) and a fresh encoder built from a checkpoint's resolved config."""
    from wesv.config.train import config_from_dict
    from wesv.models import build_encoder

    cfg = config_from_dict(config)
    encoder = build_encoder(cfg.encoder.name, cfg.encoder.config)
    # Only the layout matters here: the class count sizes a classifier's head, which is not exported.
    method = find_method(cfg.type).factory(cfg.method, build_encoder(cfg.encoder.name, cfg.encoder.config),
                                           DataInfo(num_samples=1, num_classes=2))
    return method, encoder


def select_checkpoints(exp_dir: str, num_avg: int, by: str = "last") -> list[tuple[int, str]]:
    """The ``num_avg`` epoch checkpoints to average, oldest first: the last ones, or those of lowest ``val_eer``."""
    if num_avg < 1:
        raise WesvError(f"--num-avg must be at least 1, got {num_avg}")
    if by not in SELECTIONS:
        raise WesvError(f"--by {by!r}: use one of {', '.join(SELECTIONS)}")
    ckpt_dir = os.path.join(exp_dir, "checkpoints")
    found = epoch_checkpoints(ckpt_dir)
    if len(found) < num_avg:
        raise WesvError(f"{ckpt_dir}: {len(found)} epoch checkpoint(s) (epoch_N.pt), --num-avg {num_avg} needs "
                        f"{num_avg}; lower --num-avg or train with --trainer.keep_checkpoints {num_avg} (or 0 = all)")
    if by == "last":
        return found[-num_avg:]
    metrics = os.path.join(exp_dir, "metrics.jsonl")
    scores = {}
    if os.path.exists(metrics):
        with open(metrics) as f:
            for line in f:
                rec = json.loads(line) if line.strip() else {}
                if rec.get("kind") == "epoch" and VAL_KEY in rec:
                    scores[int(rec["epoch"])] = float(rec[VAL_KEY])
    if not scores:
        raise WesvError(f"{metrics}: no epoch record holds {VAL_KEY}; --by best-val needs a run trained with a "
                        "validation: section, or use --by last")
    best = sorted(scores, key=lambda e: (scores[e], -e))[:num_avg]
    paths = dict(found)
    missing = [e for e in best if e not in paths]
    if missing:
        raise WesvError(f"{ckpt_dir}: the best-validated epochs {sorted(best)} include pruned ones "
                        f"({', '.join(f'epoch_{e}.pt' for e in sorted(missing))}); train with "
                        "--trainer.keep_checkpoints 0 to keep them, or use --by last")
    return sorted((e, paths[e]) for e in best)


def average_checkpoints(paths: list[str]) -> nn.Module:
    """An encoder (eval mode, built by ``build_encoder``) whose weights average the exported encoders of ``paths``."""
    states, prefix, encoder, config = [], None, None, None
    for path in paths:
        ckpt = load_checkpoint(path)
        if not isinstance(ckpt, dict) or "method" not in ckpt or "config" not in ckpt:
            raise WesvError(f"{path}: not a wesv training checkpoint (no method state or config)")
        if config is None:
            config = ckpt["config"]
            method, encoder = _build_method(config)
            prefix = export_prefix(method)
        elif (ckpt["config"].get("type"), ckpt["config"].get("encoder")) != (config.get("type"), config.get("encoder")):
            raise WesvError(f"{path}: another method or encoder than {paths[0]}; average checkpoints of one run")
        state = {k[len(prefix):]: v for k, v in ckpt["method"].items() if k.startswith(prefix)}
        if set(state) != set(encoder.state_dict()):
            raise WesvError(f"{path}: its encoder weights do not match the encoder of its config")
        states.append({k: state[k] for k in encoder.state_dict()})
    encoder.load_state_dict(average_state_dicts(states))
    return encoder.eval()
