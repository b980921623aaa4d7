"""Projection heads on top of an encoder's embedding: the DINO head (prototypes) and the MoCo projector."""
import torch
import torch.nn.functional as F
from torch import nn


class _NormalizedLinearFn(torch.autograd.Function):
    """``y = x · V_jᵀ / max(||V_j||, eps)`` with a hand-written backward that never forms ``V / ||V||``.

    Autograd through ``F.normalize(V)`` makes about seven passes over the (K, 256) weight per step (the normalised
    copy, the division's and the norm's backward, the accumulation); here the forward divides the (B, K) output
    instead, and the weight's gradient is one matmul plus one in-place pass:
    ``dL/dV_j = Σ_b s_bj x_b − V_j · [||V_j|| > eps] Σ_b s_bj y_bj / ||V_j||`` with ``s = (dL/dy) / ||V||``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(weight, dim=1).clamp_min_(eps)
        y = F.linear(x, weight).div_(norm)
        ctx.save_for_backward(x, weight, norm, y)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, weight, norm, y = ctx.saved_tensors
        scaled = grad_y / norm
        grad_x = scaled @ weight if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            coef = (scaled * y).sum(0).div_(norm).masked_fill_(norm <= ctx.eps, 0.0)  # clamped norms are constant
            grad_w = (scaled.t() @ x).addcmul_(weight, coef.unsqueeze(1), value=-1.0)
        return grad_x, grad_w, None


def normalized_linear(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.linear(x, F.normalize(weight, dim=1, eps=eps))`` (same values and gradients), faster on large ``K``."""
    return _NormalizedLinearFn.apply(x, weight, eps)


class NormalizedLinear(nn.Module):
    """A weight-normalised linear layer with its gain fixed to 1 and no bias: each row of the weight is unit-norm.

    ``W = V / ||V||`` row-wise, which is ``torch.nn.utils.weight_norm`` with ``g`` frozen at 1; written out so the
    teacher copy and checkpoints hold one plain parameter. Scaling ``V`` (weight decay) leaves the output unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32 even under autocast: these cosines are divided by temperatures as small as 0.04.
        with torch.autocast(x.device.type, enabled=False):
            return normalized_linear(x.float(), self.weight.float())


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, act: type[nn.Module]) -> nn.Sequential:
    """Linear–BN–act repeated ``num_layers - 1`` times, then a final Linear (``num_layers == 1``: one Linear)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), act()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class DinoHead(nn.Module):
    """Linear(D→hidden)–BN–GELU ×2 → Linear(→bottleneck), L2-normalise, weight-normalised Linear(→K)."""

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 num_layers: int = 3):
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, bottleneck_dim, num_layers, nn.GELU)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = NormalizedLinear(bottleneck_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class ProjectionHead(nn.Module):
    """MoCo v2 projector: Linear–BN–ReLU → Linear (one Linear when ``hidden_dim == 0``), L2-normalised."""

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int = 2048):
        super().__init__()
        self.net = mlp(in_dim, hidden_dim, out_dim, 2 if hidden_dim > 0 else 1, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)
