"""L2-SP (Li et al. 2018): a penalty pulling fine-tuned weights back towards their pretrained values w₀.

Two forms (``l2sp.form``):

- ``squared``: the paper's α · Σ ‖w − w₀‖² added to the task loss.
- ``seed``: the WavLM pseudo-label code's (seed 000): l2 = Σ over tensors of ‖w − w₀‖₂ (per-tensor distance, not
  squared), and the loss is CE / CE.detach() + α · l2 / (l2.detach() + 1e-5): both terms rescaled to about 1, so
  α weighs the penalty against the task loss whatever their sizes. Its gradient is the task's divided by CE.
"""
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass
class L2SPConfig:
    """``l2sp:`` of an encoder with pretrained parts (alpha 0 = off, nothing kept)."""

    alpha: float = 0.0
    form: Literal["squared", "seed"] = "seed"

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"l2sp.alpha must be >= 0, got {self.alpha}")


class L2SP(nn.Module):
    """Holds w₀ of ``params`` as non-persistent buffers (never in a state dict or checkpoint) and scores distance."""

    def __init__(self, named_params: list[tuple[str, nn.Parameter]], cfg: L2SPConfig):
        super().__init__()
        self.cfg = cfg
        self._params = [p for _, p in named_params]
        for i, (_, p) in enumerate(named_params):
            self.register_buffer(f"ref{i}", p.detach().clone(), persistent=False)

    def _refs(self) -> list[torch.Tensor]:
        return [getattr(self, f"ref{i}") for i in range(len(self._params))]

    def distance(self) -> torch.Tensor:
        """Σ ‖w − w₀‖² (``squared``) or Σ ‖w − w₀‖₂ (``seed``) over the tracked tensors, in float32."""
        terms = [(p.float() - r.float()).pow(2).sum() for p, r in zip(self._params, self._refs())]
        if self.cfg.form == "seed":
            # sqrt has an infinite gradient at 0 (every tensor at step 0): sqrt(d² + ε) − sqrt(ε) is 0 there too
            terms = [torch.sqrt(t + 1e-12) - 1e-6 for t in terms]
        if not terms:
            return torch.zeros(())
        return torch.stack(terms).sum()

    def combine(self, task_loss: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The regularised loss and logs (``l2sp`` distance, ``task_loss``)."""
        l2 = self.distance().to(task_loss.device)
        alpha = self.cfg.alpha
        if self.cfg.form == "seed":
            loss = task_loss / task_loss.detach() + alpha * l2 / (l2.detach() + 1e-5)
        else:
            loss = task_loss + alpha * l2
        return loss, {"l2sp": l2.detach(), "task_loss": task_loss.detach()}
