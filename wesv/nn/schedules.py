"""Schedules the SSL methods follow: cosine (EMA momentum) by step, linear warm-up (teacher temperature) by epoch."""
import math


def cosine_schedule(base: float, final: float, step: int, total_steps: int) -> float:
    """Cosine ramp from ``base`` (step 0) to ``final`` (step ``total_steps``); constant ``final`` after it."""
    if total_steps <= 0:
        return final
    t = min(max(step, 0), total_steps) / total_steps
    return final - (final - base) * (math.cos(math.pi * t) + 1.0) / 2.0


def linear_warmup(start: float, end: float, epoch: int, warmup_epochs: int) -> float:
    """Linear ramp from ``start`` (epoch 0) to ``end`` (epoch ``warmup_epochs``); constant ``end`` after it."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return end
    return start + (end - start) * max(epoch, 0) / warmup_epochs
