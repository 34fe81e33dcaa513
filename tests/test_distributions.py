"""GaussianMixture against TensorFlow Probability and against analytic and numeric references."""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr
from scipy import integrate, stats

from probreg.distributions import AffineTransformed, GaussianMixture


def random_mixture(rng, n=50, k=4, d=2, spread=3.0) -> GaussianMixture:
    return GaussianMixture(
        rng.normal(size=(n, k)),
        rng.normal(scale=spread, size=(n, k, d)),
        np.exp(rng.normal(scale=0.7, size=(n, k, d))),
    )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("d", [1, 3])
def test_log_prob_matches_tfp(rng, d):
    mixture = random_mixture(rng, d=d)
    y = rng.normal(scale=4.0, size=(50, d))
    reference = mixture.to_tfp().log_prob(y).numpy()
    np.testing.assert_allclose(mixture.log_prob(y), reference, rtol=1e-10, atol=1e-10)


def test_moments_and_cdf_match_tfp(rng):
    mixture = random_mixture(rng, d=1)
    tfp_mixture = mixture.to_tfp()
    np.testing.assert_allclose(mixture.mean(), tfp_mixture.mean().numpy(), rtol=1e-10)
    np.testing.assert_allclose(mixture.variance(), tfp_mixture.variance().numpy(), rtol=1e-9)
    y = rng.normal(scale=3.0, size=(50, 1))
    np.testing.assert_allclose(mixture.cdf(y)[:, 0], tfp_mixture.cdf(y).numpy(), atol=1e-10)


def test_density_integrates_to_one_and_cdf_is_its_integral(rng):
    mixture = random_mixture(rng, n=3, d=1)
    grid = np.linspace(-40, 40, 40001)
    for row in range(3):
        single = mixture[np.array([row])]
        density = np.exp([single.log_prob(np.array([[v]]))[0] for v in grid[::10]])
        assert integrate.trapezoid(density, grid[::10]) == pytest.approx(1.0, abs=1e-6)
        cumulative = integrate.cumulative_trapezoid(density, grid[::10], initial=0)
        at = np.array([[grid[::10][2000]]])
        assert single.cdf(at)[0, 0] == pytest.approx(cumulative[2000], abs=1e-4)


def test_quantile_inverts_cdf(rng):
    mixture = random_mixture(rng, d=2)
    for q in (0.05, 0.5, 0.95):
        np.testing.assert_allclose(mixture.cdf(mixture.quantile(q)), q, atol=1e-9)


def test_crps_matches_numeric_integral_of_cdf(rng):
    """CRPS(F, y) = integral of (F(t) - 1[t >= y])^2 dt, on a fine grid."""
    mixture = random_mixture(rng, n=4, d=1)
    y = rng.normal(size=(4, 1))
    for row in range(4):
        w, m, s = mixture.weights[row], mixture.means[row, :, 0], mixture.scales[row, :, 0]

        def cdf(t, w=w, m=m, s=s):
            return (w * stats.norm.cdf((np.asarray(t)[:, None] - m) / s)).sum(axis=1)

        # Split at y so the step in the integrand falls on a grid point.
        below, above = np.linspace(-60, y[row, 0], 60001), np.linspace(y[row, 0], 60, 60001)
        expected = integrate.simpson(cdf(below) ** 2, x=below) + integrate.simpson(
            (1 - cdf(above)) ** 2, x=above
        )
        assert mixture[np.array([row])].crps(y[row : row + 1])[0] == pytest.approx(
            expected, rel=1e-7
        )


def test_crps_of_single_gaussian_is_scoringrules_normal(rng):
    mixture = GaussianMixture(np.zeros((5, 1)), rng.normal(size=(5, 1, 1)), np.full((5, 1, 1), 0.7))
    y = rng.normal(size=(5, 1))
    expected = sr.crps_normal(y[:, 0], mixture.means[:, 0, 0], 0.7, backend="numpy")
    np.testing.assert_allclose(mixture.crps(y), expected, rtol=1e-10)


def test_samples_match_moments(rng):
    mixture = random_mixture(rng, n=3, k=3, d=2)
    draws = mixture.sample(np.random.default_rng(0), 200_000)
    assert draws.shape == (200_000, 3, 2)
    np.testing.assert_allclose(draws.mean(axis=0), mixture.mean(), atol=0.05)
    np.testing.assert_allclose(draws.var(axis=0), mixture.variance(), rtol=0.03)


def test_samples_follow_the_mixture_cdf(rng):
    mixture = random_mixture(rng, n=1, k=5, d=1)
    w, m, s = mixture.weights[0], mixture.means[0, :, 0], mixture.scales[0, :, 0]
    draws = mixture.sample(np.random.default_rng(1), 20_000)[:, 0, 0]
    result = stats.kstest(draws, lambda v: (w * stats.norm.cdf((v[:, None] - m) / s)).sum(axis=1))
    assert result.pvalue > 0.001


def test_affine_is_exact_for_mixtures_and_generic_wrapper_agrees(rng):
    mixture = random_mixture(rng, d=2)
    shift, scale = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    exact = mixture.affine(shift, scale)
    generic = AffineTransformed(mixture, shift, scale)
    y = rng.normal(size=(50, 2)) * 3
    np.testing.assert_allclose(exact.log_prob(y), generic.log_prob(y), rtol=1e-10)
    np.testing.assert_allclose(exact.mean(), generic.mean(), rtol=1e-10)
    np.testing.assert_allclose(exact.variance(), generic.variance(), rtol=1e-10)
    np.testing.assert_allclose(exact.cdf(y), generic.cdf(y), atol=1e-12)
    np.testing.assert_allclose(exact.quantile(0.9), generic.quantile(0.9), atol=1e-8)
    # Two coordinates: the wrapper falls back to a sampled CRPS, so compare loosely...
    np.testing.assert_allclose(exact.crps(y), generic.crps(y), rtol=0.1, atol=0.05)
    # ...and exactly in one dimension, where CRPS(a + bY, a + by) = b CRPS(Y, y).
    one = mixture.__class__(mixture.log_weights, mixture.means[..., :1], mixture.scales[..., :1])
    np.testing.assert_allclose(
        one.affine(shift[:1], scale[:1]).crps(y[:, :1]),
        AffineTransformed(one, shift[:1], scale[:1]).crps(y[:, :1]),
        rtol=1e-10,
    )


def test_generic_quantile_and_crps_defaults(rng):
    """The base-class fallbacks (bisection, sampled CRPS) agree with the closed forms."""
    from probreg.distributions import Distribution

    mixture = random_mixture(rng, n=20, d=1)
    q = Distribution.quantile(mixture, 0.8)
    np.testing.assert_allclose(q, mixture.quantile(0.8), atol=1e-7)
    y = rng.normal(size=(20, 1))
    sampled = Distribution.crps(mixture, y, np.random.default_rng(0))
    np.testing.assert_allclose(sampled, mixture.crps(y), rtol=0.1, atol=0.02)


def test_mode_is_the_highest_peak_found_on_a_grid():
    mixture = GaussianMixture(
        np.log([[0.3, 0.7], [0.5, 0.5]]),
        np.array([[[0.0], [5.0]], [[-0.5], [0.5]]]),
        np.array([[[0.1], [2.0]], [[1.0], [1.0]]]),
    )
    # Row 0: the light but narrow component has the higher peak (0.3/0.1 > 0.7/2), a hair off
    # its mean. Row 1: two overlapping components make one peak between their means.
    grid = np.linspace(-2.0, 7.0, 90_001)
    density = np.stack([mixture.log_prob(np.full((2, 1), g)) for g in grid])
    np.testing.assert_allclose(mixture.mode()[:, 0], grid[density.argmax(axis=0)], atol=2e-4)
    assert abs(mixture.mode()[0, 0]) < 1e-3 and abs(mixture.mode()[1, 0]) < 1e-6
    assert mixture.mean()[0, 0] == pytest.approx(3.5)
    assert mixture.mean()[1, 0] == pytest.approx(0.0)


def test_temperature_reweights_and_rescales():
    mixture = GaussianMixture(np.log([[0.2, 0.8]]), np.zeros((1, 2, 1)), np.ones((1, 2, 1)))
    cold = mixture.with_temperature(0.5, 2.0)
    np.testing.assert_allclose(cold.weights, [[0.2**2, 0.8**2]] / np.sum([0.04, 0.64]))
    np.testing.assert_allclose(cold.scales, 2.0)
    hot = mixture.with_temperature(1e6, 1.0)
    np.testing.assert_allclose(hot.weights, 0.5, atol=1e-5)


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="scales must be positive"):
        GaussianMixture(np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="wants log_weights"):
        GaussianMixture(np.zeros((1, 2)), np.zeros((1, 1, 1)), np.ones((1, 1, 1)))


def test_combined_mixture_is_the_average_of_its_members(rng):
    members = [random_mixture(rng, n=10, k=2, d=2) for _ in range(3)]
    combined = GaussianMixture.combine(members)
    assert combined.components == 6
    y = rng.normal(size=(10, 2))
    expected = np.log(np.mean([np.exp(m.log_prob(y)) for m in members], axis=0))
    np.testing.assert_allclose(combined.log_prob(y), expected, rtol=1e-10)
    np.testing.assert_allclose(combined.mean(), np.mean([m.mean() for m in members], axis=0))


def test_affine_params_add_only_what_the_base_has_of_its_own():
    mixture = GaussianMixture(np.zeros((2, 2)), np.ones((2, 2, 1)), np.ones((2, 2, 1)))

    from probreg.distributions import Distribution

    class Plain(GaussianMixture):  # a plugin distribution without params() of its own
        params = Distribution.params  # the generic mean and variance
        param_axes = Distribution.param_axes

    moved = AffineTransformed(mixture, np.array([1.0]), np.array([2.0]))
    assert set(moved.params()) == {
        "mean",
        "variance",
        "standardised_weight",
        "standardised_mean",
        "standardised_scale",
    }
    plain = AffineTransformed(
        Plain(mixture.log_weights, mixture.means, mixture.scales), np.array([1.0]), np.array([2.0])
    )
    assert set(plain.params()) == set(plain.param_axes()) == {"mean", "variance"}
    np.testing.assert_allclose(plain.params()["mean"], 1.0 + 2.0 * mixture.mean())
