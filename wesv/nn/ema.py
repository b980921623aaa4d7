"""Momentum (EMA) copies of networks: the DINO teacher and the MoCo key encoder."""
import copy

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters take no gradient (updated only by ``ema_update_``)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update_(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``target ← m · target + (1 − m) · source`` over parameters; buffers (BN statistics) stay the target's."""
    t_params = list(target.parameters())
    s_params = [p.detach() for p in source.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("EMA target and source have different parameter lists")
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)
