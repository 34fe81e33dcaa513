"""Calibration scores against independent computations, and the recalibrated distribution's
consistency (cdf, quantile, sample and log_prob against each other)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from probreg import calibration as cal
from probreg.distributions import GaussianMixture
from probreg.errors import UsageError
from probreg.testing import check_distribution


def gaussian(mean, scale):
    mean = np.asarray(mean, float).reshape(-1, 1, 1)
    scale = np.broadcast_to(np.asarray(scale, float).reshape(-1, 1, 1), mean.shape)
    return GaussianMixture(np.zeros((len(mean), 1)), mean, scale.copy())


def bimodal(rng, n):
    log_w = np.log(np.tile([[0.3, 0.7]], (n, 1)))
    means = np.stack([rng.normal(-2, 0.3, n), rng.normal(2, 0.3, n)], axis=1)[..., None]
    scales = rng.uniform(0.4, 0.9, (n, 2, 1))
    return GaussianMixture(log_w, means, scales)


def overconfident_map(rng, base, widen=1.6, rows=800):
    """A map fitted on validation targets drawn from a distribution wider than ``base``."""
    truth = GaussianMixture(base.log_weights, base.means, base.scales * widen)
    y = truth.sample(rng, rows // base.batch_size + 1).reshape(-1, base.batch_size, 1)
    pits = np.concatenate([base.cdf(row) for row in y])
    return cal.PITMap.fit(pits), truth


# --- the recalibrated distribution ----------------------------------------------------------


def test_recalibrated_passes_the_distribution_contract():
    rng = np.random.default_rng(0)
    base = bimodal(rng, 3)
    pit_map, _ = overconfident_map(rng, base)
    check_distribution(cal.Recalibrated(base, pit_map), draws=8000)


def test_recalibrated_cdf_quantile_sample_and_log_prob_agree():
    rng = np.random.default_rng(1)
    base = bimodal(rng, 4)
    pit_map, _ = overconfident_map(rng, base)
    recal = cal.Recalibrated(base, pit_map)
    # cdf is R(F) and quantile its inverse
    for q in (0.03, 0.2, 0.5, 0.77, 0.97):
        value = recal.quantile(q)
        np.testing.assert_allclose(recal.cdf(value), q, atol=1e-6)
        np.testing.assert_allclose(pit_map(base.cdf(value)), q, atol=1e-6)
    # log_prob is the derivative of cdf (central differences, away from the map's knots)
    y = recal.quantile(0.4) + 0.013
    h = 1e-5
    slope = (recal.cdf(y + h) - recal.cdf(y - h))[:, 0] / (2 * h)
    np.testing.assert_allclose(np.exp(recal.log_prob(y)), slope, rtol=1e-3)
    # the density integrates to the cdf's increments
    grid = np.linspace(-8, 8, 8001)
    density = np.stack([np.exp(recal.log_prob(np.full((4, 1), g))) for g in grid], axis=1)
    np.testing.assert_allclose(np.trapezoid(density, grid, axis=1), 1.0, atol=2e-3)
    # draws follow the cdf: Kolmogorov-Smirnov on PIT values of draws
    draws = recal.sample(rng, 4000)
    pits = np.stack([recal.cdf(draw)[:, 0] for draw in draws])  # (4000, 4)
    for row in range(4):
        assert stats.kstest(pits[:, row], "uniform").pvalue > 1e-3


def test_recalibration_repairs_an_overconfident_head():
    rng = np.random.default_rng(2)
    base = bimodal(rng, 400)
    pit_map, truth = overconfident_map(rng, base, widen=2.0, rows=2000)
    y = truth.sample(rng, 1)[0]
    before = cal.calibration_error(base.cdf(y))
    after = cal.calibration_error(cal.Recalibrated(base, pit_map).cdf(y))
    assert before > 0.05 and after < before / 2, (before, after)
    assert -np.mean(cal.Recalibrated(base, pit_map).log_prob(y)) < -np.mean(base.log_prob(y))


def test_pit_map_is_strictly_increasing_and_round_trips():
    rng = np.random.default_rng(3)
    pit_map = cal.PITMap.fit(np.concatenate([rng.beta(0.5, 0.5, 300), [0.5] * 50]))
    u = np.linspace(0, 1, 1001)
    assert np.all(np.diff(pit_map(u)) > 0)
    np.testing.assert_allclose(pit_map.inverse(pit_map(u)), u, atol=1e-12)
    again = cal.PITMap.from_dict(pit_map.to_dict())
    np.testing.assert_array_equal(again.knots, pit_map.knots)
    with pytest.raises(UsageError):
        cal.PITMap.from_dict({"knots": [0, 0.5, 0.4, 1], "values": [0, 0.2, 0.3, 1]})
    with pytest.raises(UsageError, match="1-D"):
        cal.fit_map(
            GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 2)), np.ones((2, 1, 2))),
            np.zeros((2, 2)),
        )


def test_identity_map_changes_nothing():
    base = gaussian([0.0, 1.0], [1.0, 2.0])
    identity = cal.PITMap(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    recal = cal.Recalibrated(base, identity)
    y = np.array([[0.3], [-1.0]])
    np.testing.assert_allclose(recal.log_prob(y), base.log_prob(y))
    np.testing.assert_allclose(recal.quantile(0.9), base.quantile(0.9), atol=1e-9)
    np.testing.assert_allclose(recal.mean(), base.mean(), atol=1e-4)
    np.testing.assert_allclose(recal.variance(), base.variance(), rtol=1e-3)
    np.testing.assert_allclose(recal.crps(y), base.crps(y), rtol=1e-4)


# --- scores against independent computations --------------------------------------------


def direct_scores(mean, scale, y):
    """The same scores from scipy's normal quantiles and textbook formulas, by loops."""
    n = len(y)
    pits = stats.norm.cdf(y, mean, scale)
    levels = np.round(np.linspace(0.01, 0.99, 99), 2)
    ce = np.mean([abs(np.mean(pits <= level) - level) for level in levels])

    def q(level):
        return stats.norm.ppf(level, mean, scale)

    def interval_score(low, high, alpha):
        out = np.empty(n)
        for i in range(n):
            out[i] = high[i] - low[i]
            if y[i] < low[i]:
                out[i] += 2 / alpha * (low[i] - y[i])
            if y[i] > high[i]:
                out[i] += 2 / alpha * (y[i] - high[i])
        return out

    def pinball(level):
        forecast = q(level)
        return np.mean(
            [
                (1 - level) * (f - t) if t <= f else level * (t - f)
                for f, t in zip(forecast, y, strict=True)
            ]
        )

    alphas = cal.WIS_ALPHAS
    wis = 0.5 * np.abs(y - q(0.5))
    for alpha in alphas:
        wis = wis + alpha / 2 * interval_score(q(alpha / 2), q(1 - alpha / 2), alpha)
    wis = wis / (len(alphas) + 0.5)
    return {
        "calibration_error": ce,
        "sharpness_50": np.mean(q(0.75) - q(0.25)),
        "sharpness_90": np.mean(q(0.95) - q(0.05)),
        "interval_score_90": np.mean(interval_score(q(0.05), q(0.95), 0.1)),
        "wis": np.mean(wis),
        "pinball": np.mean([pinball(level) for level in cal.PINBALL_LEVELS]),
    }


def test_scores_match_direct_computation():
    rng = np.random.default_rng(4)
    mean, scale = rng.normal(size=300), rng.uniform(0.5, 2.0, 300)
    y = mean + 1.3 * scale * rng.normal(size=300)
    got = cal.scores(gaussian(mean, scale), y[:, None])
    want = direct_scores(mean, scale, y)
    assert set(got) == set(cal.SCORES)
    low, high = stats.norm.ppf(0.05, mean, scale), stats.norm.ppf(0.95, mean, scale)
    per_row = cal.interval_score(y[:, None], low[:, None], high[:, None], 0.1)
    assert per_row.shape == (300, 1)  # no broadcasting of (n, 1) against (n,)
    for key in cal.SCORES:
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key


def test_wis_approximates_crps_and_pinball_levels():
    rng = np.random.default_rng(5)
    mean, scale = rng.normal(size=200), rng.uniform(0.5, 2.0, 200)
    y = (mean + scale * rng.normal(size=200))[:, None]
    dist = gaussian(mean, scale)
    got = cal.scores(dist, y)
    crps = np.mean(dist.crps(y))
    assert got["wis"] == pytest.approx(crps, rel=0.15)  # Bracher et al.: WIS ~ CRPS
    losses = cal.pinball_losses(dist, y)
    assert np.mean(list(losses.values())) == pytest.approx(got["pinball"], rel=1e-12)


def test_calibration_error_and_reliability():
    rng = np.random.default_rng(6)
    assert cal.calibration_error(rng.uniform(size=100_000)) < 0.005
    assert cal.calibration_error(np.zeros(100)) == pytest.approx(
        np.mean(1 - np.array(cal.CALIBRATION_LEVELS))
    )
    mean = rng.normal(size=5000)
    y = (mean + rng.normal(size=5000))[:, None]
    curve = cal.reliability(gaussian(mean, 1.0), y)
    np.testing.assert_allclose(curve["observed"], curve["nominal"], atol=0.03)
    narrow = cal.reliability(gaussian(mean, 0.5), y)
    assert all(o < n for o, n in zip(narrow["observed"], narrow["nominal"], strict=True))
