"""The dynamic loss-gate of DLG-LC: a 2-component GMM on per-sample log-losses and where its components cross.

Pure functions (numpy in, numbers out) so that the threshold is tested against direct computations and every rank
computes the same value from the same gathered table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fewer finite values than this and no GMM is fitted (two Gaussians need some support each).
MIN_POINTS = 20


@dataclass(frozen=True)
class LossGmm:
    """A fitted 2-component 1-D GMM, components ordered by mean (0: low loss, 1: high loss)."""

    weights: tuple[float, float]
    means: tuple[float, float]
    stds: tuple[float, float]

    def log_density(self, x: np.ndarray, component: int) -> np.ndarray:
        """``log(w_k N(x; mu_k, sigma_k))`` of one component."""
        w, m, s = self.weights[component], self.means[component], self.stds[component]
        return math.log(w) - math.log(s) - 0.5 * math.log(2 * math.pi) - 0.5 * ((x - m) / s) ** 2


def weighted_crossing(gmm: LossGmm) -> float | None:
    """The point between the two means where the weighted component densities are equal, or None.

    ``log w0 N0(x) - log w1 N1(x)`` is a quadratic in x; it has one root between the means exactly when each
    component dominates at its own mean. Otherwise (one component swamps the other there) there is no crossing
    to gate at, and None is returned.
    """
    (m0, m1), (s0, s1) = gmm.means, gmm.stds
    if not m1 > m0:
        return None
    lo, hi = np.array([m0]), np.array([m1])
    diff_lo = float(gmm.log_density(lo, 0)[0] - gmm.log_density(lo, 1)[0])
    diff_hi = float(gmm.log_density(hi, 0)[0] - gmm.log_density(hi, 1)[0])
    if not (diff_lo > 0 and diff_hi < 0):
        return None
    a = 0.5 / s1 ** 2 - 0.5 / s0 ** 2
    b = m0 / s0 ** 2 - m1 / s1 ** 2
    c = (m1 ** 2 / (2 * s1 ** 2) - m0 ** 2 / (2 * s0 ** 2)
         + math.log(gmm.weights[0] / s0) - math.log(gmm.weights[1] / s1))
    if abs(a) < 1e-12 * max(abs(b), 1e-300):
        roots = [-c / b]
    else:
        disc = max(b * b - 4 * a * c, 0.0)
        q = -0.5 * (b + math.copysign(math.sqrt(disc), b))  # the numerically stable pair of roots
        roots = [q / a, c / q] if q != 0 else [-b / (2 * a)]
    inside = [r for r in roots if m0 <= r <= m1]
    return float(inside[0]) if inside else None


def fit_loss_gmm(values: np.ndarray, *, max_points: int | None = 200_000, seed: int = 0) -> LossGmm | None:
    """Fit 2 Gaussians to the finite ``values`` (log-losses); None when the data cannot support two components.

    The settings follow the public DLG-LC code (full covariance, tol 1e-5, 1,000 iterations); a table larger than
    ``max_points`` is subsampled with ``seed`` first, so that 1.1 M VoxCeleb2 losses fit in seconds.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) < MIN_POINTS or float(np.std(x)) < 1e-9:
        return None
    if max_points is not None and len(x) > max_points:
        x = np.random.default_rng(seed).choice(x, size=max_points, replace=False)
    gm = GaussianMixture(n_components=2, covariance_type="full", tol=1e-5, max_iter=1000, random_state=seed)
    gm.fit(x.reshape(-1, 1))
    means = gm.means_.ravel()
    stds = np.sqrt(gm.covariances_.ravel())
    order = np.argsort(means)
    weights, means, stds = gm.weights_[order], means[order], stds[order]
    spread = float(np.std(x))
    if min(weights) < 1e-3 or min(stds) < 1e-9 or means[1] - means[0] < 1e-3 * spread:
        return None  # one component, or two that are the same
    return LossGmm(tuple(map(float, weights)), tuple(map(float, means)), tuple(map(float, stds)))


def gmm_threshold(values: np.ndarray, *, max_points: int | None = 200_000, seed: int = 0) -> float | None:
    """τ of the dynamic loss-gate: where the fitted components of ``values`` (log-losses) cross, or None."""
    gmm = fit_loss_gmm(values, max_points=max_points, seed=seed)
    return None if gmm is None else weighted_crossing(gmm)
