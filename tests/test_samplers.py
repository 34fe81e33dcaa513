"""Built-in samplers: statistics against analytic moments, temperature limits, and the
vectorised draw against a per-row reference."""

from __future__ import annotations

import numpy as np
import pytest

from probreg import plugins
from probreg.distributions import GaussianMixture

# Three well-separated components (means -10, 0, 10) with weights 0.2, 0.5, 0.3, per row.
WEIGHTS = np.array([0.2, 0.5, 0.3])


def separated(n=4, scale=1.0) -> GaussianMixture:
    return GaussianMixture(
        np.log(np.tile(WEIGHTS, (n, 1))),
        np.tile(np.array([-10.0, 0.0, 10.0])[None, :, None], (n, 1, 1))
        + np.arange(n)[:, None, None],
        np.full((n, 3, 1), scale),
    )


def component_share(draws, offsets):
    centred = draws[..., 0] - offsets
    return np.array([np.mean(np.abs(centred - c) < 5) for c in (-10, 0, 10)])


def test_ancestral_draws_match_mean_and_variance():
    mixture = separated()
    draws = plugins.create("sampler", "ancestral").sample(
        mixture, np.random.default_rng(0), 100_000
    )
    assert draws.shape == (100_000, 4, 1)
    np.testing.assert_allclose(draws.mean(axis=0), mixture.mean(), atol=0.06)
    np.testing.assert_allclose(draws.var(axis=0), mixture.variance(), rtol=0.02)


def test_cold_temperature_picks_the_heaviest_component():
    mixture = separated()
    draws = plugins.create("sampler", "ancestral:temperature=0.001").sample(
        mixture, np.random.default_rng(1), 5000
    )
    np.testing.assert_allclose(component_share(draws, np.arange(4)), [0, 1, 0])


def test_hot_temperature_makes_components_equally_likely():
    mixture = separated()
    draws = plugins.create("sampler", "ancestral:temperature=1000").sample(
        mixture, np.random.default_rng(2), 30_000
    )
    np.testing.assert_allclose(component_share(draws, np.arange(4)), 1 / 3, atol=0.01)


def test_temperature_one_keeps_the_fitted_weights():
    draws = plugins.create("sampler", "ancestral").sample(
        separated(), np.random.default_rng(3), 30_000
    )
    np.testing.assert_allclose(component_share(draws, np.arange(4)), WEIGHTS, atol=0.01)


@pytest.mark.parametrize("sigma_temperature", [0.25, 2.0])
def test_sigma_temperature_scales_the_component_standard_deviation(sigma_temperature):
    mixture = separated(scale=0.5)
    sampler = plugins.create(
        "sampler", f"ancestral:temperature=0.001,sigma_temperature={sigma_temperature}"
    )
    draws = sampler.sample(mixture, np.random.default_rng(4), 50_000)
    np.testing.assert_allclose(draws.std(axis=0), 0.5 * sigma_temperature, rtol=0.02)


def test_mean_and_mode_samplers_are_deterministic_points():
    mixture = separated()
    mean = plugins.create("sampler", "mean").sample(mixture, np.random.default_rng(0), 3)
    mode = plugins.create("sampler", "mode").sample(mixture, np.random.default_rng(0), 3)
    np.testing.assert_allclose(mean, np.broadcast_to(mixture.mean(), (3, 4, 1)))
    np.testing.assert_allclose(mode[0, :, 0], np.arange(4), atol=1e-9)  # the 0.5-weight mean


def test_vectorised_draws_equal_a_per_row_inverse_cdf_with_the_same_random_numbers():
    """Each draw: one uniform picks the component from its own row's running weight sums
    (``np.searchsorted`` row by row here), then one standard normal moves it; the vectorised
    sampler uses the same random numbers in the same order, so the draws agree exactly."""
    rng = np.random.default_rng(5)
    rows, components, draws = 300, 7, 4
    logits = rng.normal(size=(rows, components))
    means = rng.normal(size=(rows, components, 1))
    scales = np.exp(rng.normal(size=(rows, components, 1)))
    got = plugins.create("sampler", "ancestral").sample(
        GaussianMixture(logits, means, scales), np.random.default_rng(9), draws
    )
    reference = np.random.default_rng(9)
    uniforms = reference.random((draws, rows))
    normals = reference.standard_normal((draws, rows, 1))
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.empty((draws, rows, 1))
    for s in range(draws):
        for i in range(rows):
            running = np.cumsum(weights[i])
            k = min(int(np.searchsorted(running, uniforms[s, i] * running[-1])), components - 1)
            expected[s, i] = means[i, k] + scales[i, k] * normals[s, i]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_same_seed_same_draws():
    sampler = plugins.create("sampler", "ancestral")
    first = sampler.sample(separated(), np.random.default_rng(7), 10)
    second = sampler.sample(separated(), np.random.default_rng(7), 10)
    np.testing.assert_array_equal(first, second)
