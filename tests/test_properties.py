"""Property-based tests (hypothesis): the mixture loss, log_prob and samplers stay finite and
agree with TensorFlow Probability across dimensions, component counts and extreme values."""

from __future__ import annotations

import keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probreg import plugins
from probreg.distributions import GaussianMixture
from probreg.losses import gaussian_mixture_log_prob

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mixtures(draw, max_log_scale=6.0):
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, 8))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    log_scale_sd = draw(st.floats(0.0, max_log_scale))
    mean_sd = draw(st.sampled_from([0.0, 1.0, 100.0, 1e4]))
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=draw(st.sampled_from([0.0, 1.0, 30.0])), size=(n, k))
    means = rng.normal(scale=mean_sd, size=(n, k, d))
    scales = np.exp(rng.normal(scale=log_scale_sd, size=(n, k, d)))
    target_sd = draw(st.sampled_from([1.0, 1e3, 1e6]))
    y = rng.normal(scale=target_sd, size=(n, d))
    return GaussianMixture(logits, means, scales), y


@SETTINGS
@given(mixtures())
def test_numpy_log_prob_is_finite_and_matches_tfp(case):
    mixture, y = case
    ours = mixture.log_prob(y)
    reference = mixture.to_tfp().log_prob(y).numpy()
    assert np.all(np.isfinite(ours))
    finite = np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-9, atol=1e-9)


def _packed(mixture: GaussianMixture) -> np.ndarray:
    n = mixture.batch_size
    return np.concatenate(
        [mixture.log_weights, mixture.means.reshape(n, -1), mixture.scales.reshape(n, -1)], axis=1
    ).astype("float32")


@SETTINGS
@given(mixtures(max_log_scale=3.0))
def test_keras_loss_is_finite_and_matches_tfp_in_float32(case):
    mixture, y = case
    packed = _packed(mixture)
    # Compare with TFP on the same float32-rounded parameters.
    rounded = GaussianMixture.from_packed(packed, mixture.components, mixture.event_dim)
    ours = keras.ops.convert_to_numpy(
        gaussian_mixture_log_prob(
            packed, y.astype("float32"), mixture.components, mixture.event_dim
        )
    )
    reference = rounded.to_tfp().log_prob(y.astype("float32").astype(float)).numpy()
    assert np.all(np.isfinite(ours))
    finite = np.isfinite(reference) & (np.abs(reference) < 1e30)
    # float32 loses about 7 digits; scale the tolerance with the magnitude of the terms.
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=2e-5, atol=2e-3)


@SETTINGS
@given(mixtures(), st.floats(0.05, 20.0), st.floats(0.05, 5.0))
def test_samplers_give_finite_draws_of_the_right_shape(case, temperature, sigma_temperature):
    mixture, _ = case
    rng = np.random.default_rng(0)
    for spec in (
        f"ancestral:temperature={temperature},sigma_temperature={sigma_temperature}",
        "mean",
        "mode",
    ):
        draws = plugins.create("sampler", spec).sample(mixture, rng, 3)
        assert draws.shape == (3, mixture.batch_size, mixture.event_dim)
        assert np.all(np.isfinite(draws))


@SETTINGS
@given(mixtures(max_log_scale=2.0))
def test_quantiles_are_ordered_and_invert_the_cdf(case):
    mixture, _ = case
    low, mid, high = (mixture.quantile(q) for q in (0.05, 0.5, 0.95))
    assert np.all(low <= mid) and np.all(mid <= high)
    np.testing.assert_allclose(mixture.cdf(mid), 0.5, atol=1e-6)
