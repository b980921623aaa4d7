"""EER / minDCF against independent computations (scikit-learn ROC, brute-force threshold sweeps)."""
import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from wesv.scoring.metrics import compute_eer, compute_min_dcf, detection_summary, error_rates


def brute_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    """Direct sweep: accept score >= t for every distinct score and +inf."""
    best = np.inf
    for t in np.concatenate([np.unique(scores), [np.inf]]):
        p_miss = np.mean(scores[labels] < t)
        p_fa = np.mean(scores[~labels] >= t)
        best = min(best, c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def sklearn_eer(scores, labels):
    """The usual VoxCeleb recipe: where 1 - tpr crosses fpr on the linearly interpolated ROC."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0, xtol=1e-14)


def random_case(seed, n_tar, n_non, decimals=None):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(1.5, 1.0, n_tar), rng.normal(0.0, 1.0, n_non)])
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    labels = np.concatenate([np.ones(n_tar, bool), np.zeros(n_non, bool)])
    perm = rng.permutation(scores.size)
    return scores[perm], labels[perm]


CASES = [(0, 50, 500, None), (1, 7, 13, None), (2, 200, 2000, 1), (3, 30, 30, 0), (4, 3, 1000, 2)]


@pytest.mark.parametrize("seed,n_tar,n_non,decimals", CASES)
def test_error_rates_match_sklearn_roc(seed, n_tar, n_non, decimals):
    scores, labels = random_case(seed, n_tar, n_non, decimals)
    p_miss, p_fa, thr = error_rates(scores, labels)
    fpr, tpr, sk_thr = roc_curve(labels, scores, drop_intermediate=False)
    # sklearn goes from the strictest threshold (+inf, nothing accepted) down; ours goes up.
    np.testing.assert_allclose(p_fa[::-1], fpr, atol=1e-12)
    np.testing.assert_allclose(p_miss[::-1], 1 - tpr, atol=1e-12)
    np.testing.assert_array_equal(thr[:-1][::-1], sk_thr[1:])


@pytest.mark.parametrize("seed,n_tar,n_non,decimals", CASES)
def test_eer_matches_interpolated_roc(seed, n_tar, n_non, decimals):
    scores, labels = random_case(seed, n_tar, n_non, decimals)
    eer, thr = compute_eer(scores, labels)
    assert eer == pytest.approx(sklearn_eer(scores, labels), abs=1e-9)
    # At the returned threshold the miss and false-alarm rates straddle the EER.
    p_miss = np.mean(scores[labels] < thr)
    p_fa = np.mean(scores[~labels] >= thr)
    assert min(p_miss, p_fa) - 1e-12 <= eer <= max(p_miss, p_fa) + 1e-12


@pytest.mark.parametrize("seed,n_tar,n_non,decimals", CASES)
@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.5])
def test_min_dcf_matches_brute_force(seed, n_tar, n_non, decimals, p_target):
    scores, labels = random_case(seed, n_tar, n_non, decimals)
    assert compute_min_dcf(scores, labels, p_target) == pytest.approx(brute_min_dcf(scores, labels, p_target),
                                                                      abs=1e-12)
    assert compute_min_dcf(scores, labels, p_target, c_miss=10, c_fa=1) == pytest.approx(
        brute_min_dcf(scores, labels, p_target, 10, 1), abs=1e-12)


def test_one_target_one_nontarget():
    labels = np.array([True, False])
    assert compute_eer(np.array([0.9, 0.1]), labels)[0] == 0.0
    assert compute_eer(np.array([0.1, 0.9]), labels)[0] == 1.0
    assert compute_eer(np.array([0.5, 0.5]), labels)[0] == 0.5
    assert compute_min_dcf(np.array([0.9, 0.1]), labels, 0.01) == 0.0
    assert compute_min_dcf(np.array([0.1, 0.9]), labels, 0.01) == 1.0


def test_perfectly_separated():
    scores = np.array([-1.0, 0.0, 1.0, 2.0])
    labels = np.array([False, False, True, True])
    eer, thr = compute_eer(scores, labels)
    assert eer == 0.0
    assert 0.0 < thr <= 1.0  # accepting score >= thr separates the classes
    assert compute_min_dcf(scores, labels, 0.01) == 0.0


def test_all_equal_scores():
    scores = np.full(10, 0.3)
    labels = np.arange(10) < 4
    assert compute_eer(scores, labels)[0] == pytest.approx(0.5)
    assert compute_min_dcf(scores, labels, 0.01) == pytest.approx(1.0)  # reject everything costs the default
    assert compute_min_dcf(scores, labels, 0.05) == pytest.approx(1.0)


def test_known_value():
    # Targets 3,4,5 and nontargets 1,2,3.5: at t=3 miss 0, fa 1/3; at t=3.5 miss 1/3, fa 1/3 → EER 1/3.
    scores = np.array([3, 4, 5, 1, 2, 3.5])
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    assert compute_eer(scores, labels)[0] == pytest.approx(1 / 3)
    # p=0.5: best cost 0.5*0 + 0.5*(1/3) at t=3 → normalised by 0.5 → 1/3.
    assert compute_min_dcf(scores, labels, 0.5) == pytest.approx(1 / 3)


def test_summary_agrees_with_the_single_metrics():
    scores, labels = random_case(7, 40, 400)
    s = detection_summary(scores, labels)
    eer, thr = compute_eer(scores, labels)
    assert s["EER"] == pytest.approx(100 * eer) and s["eer_threshold"] == pytest.approx(thr)
    assert s["minDCF@0.01"] == pytest.approx(compute_min_dcf(scores, labels, 0.01))
    assert s["minDCF@0.05"] == pytest.approx(compute_min_dcf(scores, labels, 0.05))
    assert (s["num_trials"], s["num_target"], s["num_nontarget"]) == (440, 40, 400)


def test_bad_inputs():
    with pytest.raises(ValueError, match="target and one nontarget"):
        compute_eer(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(ValueError, match="NaN"):
        compute_eer(np.array([np.nan, 0.2]), np.array([True, False]))
    with pytest.raises(ValueError, match="equally long"):
        compute_eer(np.array([0.1, 0.2, 0.3]), np.array([True, False]))
