"""AAM-softmax and softmax heads: known values, reductions, margin label, gradients, margin schedule."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wesv.losses import AAMSoftmax, Softmax, margin_schedule


def direct_aam(emb: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, margin_target: torch.Tensor,
               s: float, m: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ArcFace loss written out with angles, in float64 (no fallback: angles here stay below π - m)."""
    e = F.normalize(emb.double(), dim=1).numpy()
    w = F.normalize(weight.double(), dim=1).numpy()
    cos = e @ w.T
    logits = s * cos.copy()
    for i, j in enumerate(margin_target.tolist()):
        logits[i, j] = s * math.cos(math.acos(cos[i, j]) + m)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(target)), target.numpy()], s * cos


def setup(seed: int = 0, batch: int = 6, dim: int = 8, classes: int = 5):
    torch.manual_seed(seed)
    head = AAMSoftmax(dim, classes, scale=30.0, margin=0.2)
    emb = torch.randn(batch, dim)
    target = torch.randint(0, classes, (batch,))
    return head, emb, target


def test_known_values_against_direct_formula() -> None:
    head, emb, target = setup()
    loss, logits = head(emb, target, reduction="none")
    ref_loss, ref_logits = direct_aam(emb, head.weight.detach(), target, target, 30.0, 0.2)
    assert np.allclose(loss.detach().numpy(), ref_loss, atol=1e-4)
    assert np.allclose(logits.numpy(), ref_logits, atol=1e-4)  # scaled cosines, no margin
    mean_loss, _ = head(emb, target)
    assert torch.isclose(mean_loss, loss.mean())


def test_hand_computed_two_class_case() -> None:
    head = AAMSoftmax(2, 2, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[1.0, 1.0]])  # θ = 45° to both classes
    loss, logits = head(emb, torch.tensor([0]))
    c = math.cos(math.pi / 4)
    z0, z1 = 10 * math.cos(math.pi / 4 + 0.5), 10 * c
    assert math.isclose(loss.item(), -z0 + math.log(math.exp(z0) + math.exp(z1)), rel_tol=1e-5)
    assert torch.allclose(logits, torch.tensor([[10 * c, 10 * c]]))


def test_margin_at_a_different_label_than_the_target() -> None:
    head, emb, target = setup(1)
    margin_target = (target + 1) % 5
    loss, _ = head(emb, target, margin_target=margin_target, reduction="none")
    ref_loss, _ = direct_aam(emb, head.weight.detach(), target, margin_target, 30.0, 0.2)
    assert np.allclose(loss.detach().numpy(), ref_loss, atol=1e-4)
    # Lowering another class's logit makes the target easier: the loss is never above plain scaled-cosine softmax
    # (equal where that class's probability is already negligible).
    head.margin = 0.0
    plain, _ = head(emb, target, reduction="none")
    assert torch.all(loss <= plain + 1e-6) and torch.any(loss < plain - 0.1)


def test_margin_zero_equals_scaled_cosine_softmax() -> None:
    head, emb, target = setup(2)
    head.margin = 0.0
    loss, logits = head(emb, target, reduction="none")
    assert torch.allclose(loss, F.cross_entropy(logits, target, reduction="none"), atol=1e-5)


def test_margin_is_settable_and_increases_the_loss() -> None:
    head, emb, target = setup(3)
    losses = []
    for m in (0.0, 0.1, 0.2, 0.3):
        head.margin = m
        losses.append(head(emb, target)[0].item())
    assert head.margin == 0.3
    assert losses == sorted(losses) and losses[0] < losses[-1]


def test_fallback_beyond_pi_minus_margin() -> None:
    head = AAMSoftmax(2, 2, scale=1.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # θ to class 0 is 170°, beyond π - m: the logit becomes cos θ - m·sin(m), keeping it monotone in θ.
    theta = math.radians(170)
    emb = torch.tensor([[math.cos(theta), math.sin(theta)]])
    loss, _ = head(emb, torch.tensor([0]))
    z0, z1 = math.cos(theta) - 0.5 * math.sin(0.5), math.sin(theta)
    assert math.isclose(loss.item(), -z0 + math.log(math.exp(z0) + math.exp(z1)), rel_tol=1e-5)
    easy = AAMSoftmax(2, 2, scale=1.0, margin=0.5, easy_margin=True)
    easy.weight.data.copy_(head.weight.data)
    z0 = math.cos(theta)  # easy margin: no margin where cos θ <= 0
    assert math.isclose(easy(emb, torch.tensor([0]))[0].item(), -z0 + math.log(math.exp(z0) + math.exp(z1)),
                        rel_tol=1e-5)


@pytest.mark.parametrize("cls", [AAMSoftmax, Softmax])
def test_gradients_flow_to_embeddings_and_weights(cls) -> None:
    torch.manual_seed(4)
    head = cls(8, 5)
    emb = torch.randn(6, 8, requires_grad=True)
    target = torch.randint(0, 5, (6,))
    loss, logits = head(emb, target)
    assert loss.dim() == 0 and logits.shape == (6, 5) and not logits.requires_grad
    loss.backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_softmax_interface_and_reductions() -> None:
    torch.manual_seed(5)
    head = Softmax(8, 5)
    emb, target = torch.randn(6, 8), torch.randint(0, 5, (6,))
    per, logits = head(emb, target, margin_target=(target + 1) % 5, reduction="none")
    assert per.shape == (6,)
    assert torch.allclose(per, F.cross_entropy(head.linear(emb), target, reduction="none"))
    assert torch.isclose(head(emb, target)[0], per.mean())
    assert torch.allclose(logits, head.linear(emb))


def test_margin_schedule() -> None:
    kw = dict(final_margin=0.2, increase_start_epoch=10, fix_start_epoch=20)
    assert margin_schedule(0, **kw) == 0.0
    assert margin_schedule(10, **kw) == 0.0
    assert math.isclose(margin_schedule(15, **kw), 0.1)
    assert math.isclose(margin_schedule(12.5, **kw), 0.05)
    assert margin_schedule(20, **kw) == 0.2 and margin_schedule(99, **kw) == 0.2
    exp = [margin_schedule(e, increase_type="exp", **kw) for e in (10, 11, 15, 19.99)]
    assert exp[0] == 0.0 and exp == sorted(exp) and exp[2] > 0.1 and math.isclose(exp[-1], 0.2, rel_tol=1e-2)
    assert math.isclose(margin_schedule(15, initial_margin=0.1, **kw), 0.15)
    with pytest.raises(ValueError, match="increase_type"):
        margin_schedule(1, increase_type="cosine", **kw)
