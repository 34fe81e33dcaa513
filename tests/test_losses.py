"""The MDN loss and layers (keras.ops) against TensorFlow Probability, including extreme inputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from probreg.distributions import GaussianMixture
from probreg.layers import FixedScaleGaussian, MixtureDensity, packed_size
from probreg.losses import GaussianMixtureNLL, MixtureMeanSquaredError, gaussian_mixture_log_prob


def packed(rng, n, k, d, log_scale_sd=1.0, mean_sd=2.0):
    logits = rng.normal(size=(n, k))
    log_weights = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    means = rng.normal(scale=mean_sd, size=(n, k * d))
    scales = np.exp(rng.normal(scale=log_scale_sd, size=(n, k * d)))
    return np.concatenate([log_weights, means, scales], axis=1).astype("float32")


@pytest.mark.parametrize(("k", "d"), [(1, 1), (5, 1), (3, 4)])
def test_loss_matches_tfp_log_prob(k, d):
    rng = np.random.default_rng(k * 10 + d)
    params = packed(rng, 64, k, d)
    y = rng.normal(scale=3.0, size=(64, d)).astype("float32")
    ours = keras.ops.convert_to_numpy(gaussian_mixture_log_prob(params, y, k, d))
    reference = GaussianMixture.from_packed(params, k, d).to_tfp().log_prob(y).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)
    loss = GaussianMixtureNLL(k, d)(y, params)
    assert float(loss) == pytest.approx(-reference.mean(), rel=1e-5)


def test_loss_is_finite_for_extreme_scales_and_far_targets():
    rng = np.random.default_rng(0)
    params = packed(rng, 32, 4, 2, log_scale_sd=8.0)  # scales from ~1e-10 to ~1e10
    for far in (1e3, 1e8, 1e30):
        y = np.full((32, 2), far, dtype="float32")
        value = keras.ops.convert_to_numpy(gaussian_mixture_log_prob(params, y, 4, 2))
        assert np.all(np.isfinite(value))
    # Where float64 TFP is itself finite, we agree with it.
    y = rng.normal(scale=50, size=(32, 2)).astype("float32")
    ours = keras.ops.convert_to_numpy(gaussian_mixture_log_prob(params, y, 4, 2))
    reference = GaussianMixture.from_packed(params, 4, 2).to_tfp().log_prob(y.astype(float))
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-4)


def test_layer_and_loss_give_finite_gradients_for_extreme_raw_outputs():
    layer = MixtureDensity(2, 3, scale_floor=1e-3)
    features = tf.constant(np.random.default_rng(1).normal(scale=1e4, size=(16, 5)), tf.float32)
    y = tf.constant(np.full((16, 2), 1e6), tf.float32)
    with tf.GradientTape() as tape:
        outputs = layer(features)
        loss = GaussianMixtureNLL(3, 2)(y, outputs)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


@pytest.mark.parametrize("activation", ["softplus", "exp", "elu"])
def test_layer_output_is_a_valid_mixture(activation):
    layer = MixtureDensity(2, 4, scale_activation=activation, scale_floor=0.01)
    out = keras.ops.convert_to_numpy(layer(np.random.default_rng(2).normal(size=(8, 3)) * 50))
    assert out.shape == (8, packed_size(4, 2))
    np.testing.assert_allclose(np.exp(out[:, :4]).sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(out[:, 4 + 8 :] >= 0.01)


def test_mixture_mse_is_the_squared_error_of_the_mixture_mean():
    rng = np.random.default_rng(3)
    params = packed(rng, 10, 3, 2)
    y = rng.normal(size=(10, 2)).astype("float32")
    mean = GaussianMixture.from_packed(params, 3, 2).mean()
    expected = np.mean((y - mean) ** 2)
    assert float(MixtureMeanSquaredError(3, 2)(y, params)) == pytest.approx(expected, rel=1e-5)


def test_fixed_scale_gaussian_packs_a_one_component_mixture():
    layer = FixedScaleGaussian(2)
    layer.build((None, 2))
    layer.log_scale.assign(np.log([0.5, 2.0]).astype("float32"))
    out = keras.ops.convert_to_numpy(layer(np.array([[1.0, -1.0]], "float32")))
    np.testing.assert_allclose(out, [[0.0, 1.0, -1.0, 0.5, 2.0]], rtol=1e-6)


def test_ensemble_loss_is_the_mean_of_member_losses():
    rng = np.random.default_rng(7)
    members = [packed(rng, 32, 3, 2) for _ in range(4)]
    y = rng.normal(size=(32, 2)).astype("float32")
    together = float(GaussianMixtureNLL(3, 2, members=4)(y, np.concatenate(members, axis=1)))
    apart = [float(GaussianMixtureNLL(3, 2)(y, member)) for member in members]
    assert together == pytest.approx(np.mean(apart), rel=1e-5)
