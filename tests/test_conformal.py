"""Split-conformal intervals and regions: the finite-sample guarantee over many seeds, and
regions shorter than intervals on the (exact) spiral."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from probreg import conformal, plugins
from probreg.distributions import GaussianMixture
from probreg.errors import UsageError

LEVEL = 0.9
CAL_ROWS = 99


def misspecified_model(x):
    """A deliberately wrong model: unimodal, too narrow, biased. Truth is bimodal in y."""
    n = len(x)
    return GaussianMixture(np.zeros((n, 1)), (0.3 * x).reshape(n, 1, 1), np.full((n, 1, 1), 0.5))


def draw_truth(rng, x):
    branch = np.where(rng.random(len(x)) < 0.5, -1.5, 1.5)
    return (x + branch + (0.3 + 0.2 * np.abs(x)) * rng.normal(size=len(x)))[:, None]


def binomial_band(seeds, low_p, high_p, sigmas=4.0):
    low = seeds * low_p - sigmas * math.sqrt(seeds * low_p * (1 - low_p))
    high = seeds * high_p + sigmas * math.sqrt(seeds * high_p * (1 - high_p))
    return low, high


@pytest.mark.parametrize("kind", ["interval", "region"])
def test_marginal_coverage_lands_in_the_binomial_band(kind):
    """One calibration set and one new row per seed: the new row is covered with probability
    in [level, level + 1/(n+1)], so over many seeds the count is binomial around that."""
    seeds = 1500
    covered = 0
    calibrator_cls = {
        "interval": conformal.IntervalCalibrator,
        "region": conformal.RegionCalibrator,
    }[kind]
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, CAL_ROWS + 1)
        y = draw_truth(rng, x)
        model = misspecified_model(x)
        cal_rows = np.arange(CAL_ROWS)
        calibrator = calibrator_cls.fit(_rows(model, cal_rows), y[cal_rows], LEVEL)
        new = np.array([CAL_ROWS])
        covered += int(calibrator.covers(_rows(model, new), y[new])[0, 0])
    upper_p = LEVEL + 1 / (CAL_ROWS + 1)
    low, high = binomial_band(seeds, LEVEL, upper_p)
    assert low <= covered <= high, (covered, low, high)


def test_the_misspecified_model_alone_undercovers():
    """The band above is not vacuous: the raw central 90% interval misses it."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 20_000)
    y = draw_truth(rng, x)
    low, high = conformal.model_interval(misspecified_model(x), LEVEL)
    assert np.mean((y >= low) & (y <= high)) < 0.6


def _rows(distribution, rows):
    return distribution[rows]


def spiral_mixture(data, x, keep=400):
    """The spiral's exact p(y | x) as a Gaussian mixture over its quadrature angles (the
    ``keep`` heaviest per row, renormalised)."""
    density = data.log_density
    u = density.offset + np.ravel(x) * density.span / 5.0
    a = density.angles
    log_u = density.log_weights + density._log_normal(u, a * np.cos(a))
    order = np.argsort(log_u, axis=1)[:, -keep:]
    log_w = np.take_along_axis(log_u, order, axis=1)
    log_w -= special.logsumexp(log_w, axis=1, keepdims=True)
    centres = (a[order] * np.sin(a[order]) - density.offset) * 5.0 / density.span
    scale = density.jitter * 5.0 / density.span
    return GaussianMixture(log_w, centres[..., None], np.full((*centres.shape, 1), scale))


def test_spiral_regions_are_shorter_than_intervals_at_the_same_coverage():
    data = plugins.create("dataset", "spiral:n=200,val=600,test=400").load(0)
    cal_model = spiral_mixture(data, data.x_val)
    test_model = spiral_mixture(data, data.x_test)
    # the mixture is the spiral's density: its log density matches the exact one
    exact = data.log_density(data.x_test, data.y_test)
    assert np.mean(np.abs(test_model.log_prob(data.y_test) - exact)) < 0.02
    intervals = conformal.IntervalCalibrator.fit(cal_model, data.y_val, LEVEL)
    regions = conformal.RegionCalibrator.fit(cal_model, data.y_val, LEVEL)
    interval_cover = intervals.covers(test_model, data.y_test).mean()
    region_cover = regions.covers(test_model, data.y_test).mean()
    # both near the level on fresh rows (binomial band over 400 test rows)
    for cover in (interval_cover, region_cover):
        assert abs(cover - LEVEL) < 4 * math.sqrt(LEVEL * (1 - LEVEL) / 400) + 1 / 601
    first = np.arange(120)  # lengths on some rows (the region grid costs time)
    low, high = intervals.interval(test_model[first])
    pieces = regions.regions(test_model[first], grid_points=800)
    region_length = conformal.region_length(pieces)
    interval_length = (high - low)[:, 0]
    assert region_length.mean() < 0.8 * interval_length.mean()
    assert max(len(p) for p in pieces) >= 2  # a union of intervals somewhere
    # the pieces are exactly where the density clears the threshold
    table = conformal.region_table(pieces)
    inside = np.isfinite(table[:, :, 0])
    assert np.all(table[inside][:, 0] <= table[inside][:, 1])
    y = data.y_test[first, 0]
    in_pieces = ((y[:, None] >= table[:, :, 0]) & (y[:, None] <= table[:, :, 1])).any(axis=1)
    by_density = regions.covers(test_model[first], data.y_test[first])[:, 0]
    assert np.mean(in_pieces == by_density) > 0.98  # grid resolution only


def test_interval_margin_matches_a_direct_order_statistic():
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 49)
    y = draw_truth(rng, x)
    model = misspecified_model(x)
    calibrator = conformal.IntervalCalibrator.fit(model, y, 0.8)
    lo = stats.norm.ppf(0.1, 0.3 * x, 0.5)
    hi = stats.norm.ppf(0.9, 0.3 * x, 0.5)
    scores = sorted(max(a - t, t - b) for a, b, t in zip(lo, hi, y[:, 0], strict=True))
    assert calibrator.margin[0] == pytest.approx(scores[math.ceil(50 * 0.8) - 1], abs=1e-8)
    # too few rows for the level: the set is everything
    tiny = conformal.IntervalCalibrator.fit(model[np.arange(5)], y[:5], 0.9)
    assert np.isinf(tiny.margin[0])
    assert conformal.RegionCalibrator.fit(model[np.arange(5)], y[:5], 0.9).threshold == 0.0


def test_region_table_layout_and_parsing():
    pieces = [np.array([[0.0, 1.0]]), np.array([[0.0, 1.0], [2.0, 3.0]])]
    table = conformal.region_table(pieces)
    assert table.shape == (2, 2, 2)
    assert np.isnan(table[0, 1]).all() and table[1, 1].tolist() == [2.0, 3.0]
    np.testing.assert_allclose(conformal.region_length(pieces), [1.0, 2.0])
    assert conformal.parse("conformal:level=0.8") == ("interval", 0.8)
    assert conformal.parse("conformal:kind=region") == ("region", 0.9)
    for bad in ("split:level=0.9", "conformal:level=1.5", "conformal:foo=1", "conformal:kind=x"):
        with pytest.raises(UsageError):
            conformal.parse(bad)
    with pytest.raises(UsageError, match="--intervals gives 'level' twice"):
        conformal.parse("conformal:level=0.9,level=0.8")
    with pytest.raises(UsageError, match="--intervals has an empty option"):
        conformal.parse("conformal:level=0.9,")


def test_carve_takes_calibration_rows_from_training_rows():
    data = plugins.create("dataset", "spiral:n=100,val=20,test=20").load(0)
    trimmed, x_cal, _ = conformal.carve(data, 0.25, seed=0)
    assert len(trimmed.x_train) == 75 and len(x_cal) == 25
    together = np.sort(np.concatenate([trimmed.x_train, x_cal])[:, 0])
    np.testing.assert_array_equal(together, np.sort(data.x_train[:, 0]))
    np.testing.assert_array_equal(trimmed.x_val, data.x_val)
    with pytest.raises(UsageError):
        conformal.carve(data, 1.0, seed=0)
