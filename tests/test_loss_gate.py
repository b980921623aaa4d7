"""The dynamic loss-gate: GMM crossing against direct computations, and the degenerate cases."""
import math

import numpy as np
import pytest

from wesv.loss_gate.gmm import LossGmm, fit_loss_gmm, gmm_threshold, weighted_crossing


def grid_crossing(gmm: LossGmm, n: int = 200_001) -> float | None:
    """Where w0 N0 - w1 N1 changes sign between the means, found on a fine grid (the public code's way)."""
    x = np.linspace(gmm.means[0], gmm.means[1], n)
    d = gmm.log_density(x, 0) - gmm.log_density(x, 1)
    change = np.flatnonzero(np.diff(d > 0))
    return None if len(change) != 1 else float(x[change[0]])


@pytest.mark.parametrize("params", [
    ((0.5, 0.5), (0.0, 4.0), (1.0, 1.0)),      # symmetric: crossing at the midpoint
    ((0.8, 0.2), (-1.0, 2.0), (0.5, 1.5)),     # unequal weights and widths
    ((0.3, 0.7), (1.0, 1.6), (0.2, 0.1)),
])
def test_crossing_equals_direct_computation(params):
    gmm = LossGmm(*params)
    tau = weighted_crossing(gmm)
    assert tau == pytest.approx(grid_crossing(gmm), abs=2e-5 * (gmm.means[1] - gmm.means[0]) + 1e-9)
    assert gmm.log_density(np.array([tau]), 0)[0] == pytest.approx(gmm.log_density(np.array([tau]), 1)[0], abs=1e-9)
    if params[0] == (0.5, 0.5):
        assert tau == pytest.approx(2.0)


def test_threshold_of_a_known_mixture_is_near_the_true_crossing():
    rng = np.random.default_rng(0)
    truth = LossGmm((0.7, 0.3), (-2.0, 1.0), (0.6, 0.8))
    x = np.concatenate([rng.normal(-2.0, 0.6, 7000), rng.normal(1.0, 0.8, 3000)])
    fitted = fit_loss_gmm(x)
    assert fitted.means == pytest.approx(truth.means, abs=0.05)
    assert fitted.weights == pytest.approx(truth.weights, abs=0.02)
    assert gmm_threshold(x) == pytest.approx(weighted_crossing(truth), abs=0.05)
    assert gmm_threshold(x) == pytest.approx(grid_crossing(fitted), abs=1e-4)


def test_subsampling_is_seeded_and_close():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 30000), rng.normal(5, 1, 30000)])
    a, b = gmm_threshold(x, max_points=5000, seed=3), gmm_threshold(x, max_points=5000, seed=3)
    assert a == b and a == pytest.approx(gmm_threshold(x, max_points=None), abs=0.1)


def test_degenerate_inputs_give_none_not_an_assertion():
    assert gmm_threshold(np.full(1000, 0.7)) is None  # all equal
    assert gmm_threshold(np.array([0.1, 0.2, 0.3])) is None  # too few
    assert gmm_threshold(np.full(100, np.nan)) is None  # nothing finite
    # One wide heavy component swamping a narrow light one between the means: no crossing there.
    assert weighted_crossing(LossGmm((0.999, 0.001), (0.0, 0.5), (1.0, 1.0))) is None
    assert weighted_crossing(LossGmm((0.5, 0.5), (1.0, 1.0), (1.0, 1.0))) is None  # equal means


def test_non_finite_values_are_ignored():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 2000), rng.normal(6, 1, 2000)])
    with_bad = np.concatenate([x, [np.nan, np.inf, -np.inf]])
    assert gmm_threshold(with_bad) == pytest.approx(gmm_threshold(x))
    assert math.isfinite(gmm_threshold(x))
