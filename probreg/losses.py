"""Keras losses for the built-in heads, written in ``keras.ops`` (TensorFlow and JAX alike)."""

from __future__ import annotations

import math

import keras
from keras import ops

from probreg.layers import packed_size, unpack

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# |z| beyond this only happens for absurd targets; clipping keeps z**2 finite in float32 for any
# output dimension, so the loss stays finite (and its gradient zero) instead of becoming inf.
_Z_LIMIT = 1e15


def gaussian_mixture_log_prob(packed, y, components: int, output_dim: int):
    """``log p(y)`` under packed diagonal Gaussian mixtures: log-softmax weights + logsumexp."""
    log_weights, means, scales = unpack(packed, components, output_dim)
    y = ops.reshape(ops.cast(y, packed.dtype), (-1, 1, output_dim))
    z = ops.clip((y - means) / scales, -_Z_LIMIT, _Z_LIMIT)
    component = (
        -ops.sum(0.5 * ops.square(z) + ops.log(scales), axis=-1) - output_dim * _HALF_LOG_2PI
    )
    return ops.logsumexp(log_weights + component, axis=-1)


@keras.saving.register_keras_serializable(package="probreg")
class GaussianMixtureNLL(keras.losses.Loss):
    """Mean negative log-likelihood (nats per row) of targets under packed Gaussian mixtures.

    With ``members > 1`` the rows hold that many independent mixtures side by side (an
    ensemble); the loss is the average of their own NLLs, so each member trains on its own and
    stays a full model, as in deep ensembles.
    """

    def __init__(
        self,
        components: int,
        output_dim: int,
        members: int = 1,
        name: str = "gaussian_mixture_nll",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.components = int(components)
        self.output_dim = int(output_dim)
        self.members = int(members)

    def call(self, y_true, y_pred):
        size = packed_size(self.components, self.output_dim)
        total = 0.0
        for m in range(self.members):
            member = y_pred[:, m * size : (m + 1) * size]
            total = total - gaussian_mixture_log_prob(
                member, y_true, self.components, self.output_dim
            )
        return total / self.members

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "components": self.components,
            "output_dim": self.output_dim,
            "members": self.members,
        }


@keras.saving.register_keras_serializable(package="probreg")
class MixtureMeanSquaredError(keras.losses.Loss):
    """Squared error of the mixture mean, averaged over coordinates: the MLP's MSE objective."""

    def __init__(self, components: int, output_dim: int, name: str = "mixture_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.components = int(components)
        self.output_dim = int(output_dim)

    def call(self, y_true, y_pred):
        log_weights, means, _ = unpack(y_pred, self.components, self.output_dim)
        mean = ops.sum(ops.exp(log_weights)[:, :, None] * means, axis=1)
        y_true = ops.reshape(ops.cast(y_true, mean.dtype), (-1, self.output_dim))
        return ops.mean(ops.square(y_true - mean), axis=-1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "components": self.components,
            "output_dim": self.output_dim,
        }
