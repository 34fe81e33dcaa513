"""Keras layers for probabilistic heads. All maths is in ``keras.ops``, so they run on any backend.

The mixture layout is shared by every layer here and by
:meth:`probreg.distributions.GaussianMixture.from_packed`: each output row is
``[log_weights (K) | means (K*d) | scales (K*d)]``, means and scales ordered component-major.
"""

from __future__ import annotations

import keras
from keras import ops

SCALE_ACTIVATIONS = ("softplus", "exp", "elu")


def packed_size(components: int, output_dim: int) -> int:
    """Columns of a packed mixture row: ``K + 2 K d``."""
    return components + 2 * components * output_dim


def unpack(packed, components: int, output_dim: int):
    """Split packed rows into log-weights ``(n, K)``, means and scales ``(n, K, d)``."""
    k, d = components, output_dim
    log_weights = packed[:, :k]
    means = ops.reshape(packed[:, k : k + k * d], (-1, k, d))
    scales = ops.reshape(packed[:, k + k * d :], (-1, k, d))
    return log_weights, means, scales


def positive_scale(raw, activation: str, floor: float):
    """Map unconstrained values to standard deviations ``>= floor``.

    ``softplus`` grows linearly for large inputs (gentle gradients), ``exp`` is the classic choice,
    and ``elu`` is the original example's ``ELU + 1``. The floor keeps the density bounded, so a
    component cannot collapse onto one training point and send the loss to minus infinity.
    """
    if activation == "softplus":
        value = ops.softplus(raw)
    elif activation == "exp":
        value = ops.exp(ops.minimum(raw, 40.0))
    elif activation == "elu":
        value = ops.elu(raw) + 1.0
    else:
        raise ValueError(f"unknown scale activation {activation!r}; allowed: {SCALE_ACTIVATIONS}")
    return value + floor


@keras.saving.register_keras_serializable(package="probreg")
class MixtureDensity(keras.layers.Layer):
    """Project features to the parameters of a ``K``-component diagonal Gaussian mixture.

    Outputs packed rows ``[log_weights | means | scales]``: log-weights are normalised with a
    log-softmax, scales go through :func:`positive_scale`.
    """

    def __init__(
        self,
        output_dim: int,
        components: int,
        scale_activation: str = "softplus",
        scale_floor: float = 1e-3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if scale_activation not in SCALE_ACTIVATIONS:
            raise ValueError(f"scale_activation must be one of {SCALE_ACTIVATIONS}")
        self.output_dim = int(output_dim)
        self.components = int(components)
        self.scale_activation = scale_activation
        self.scale_floor = float(scale_floor)
        self.projection = keras.layers.Dense(
            packed_size(self.components, self.output_dim), name="projection"
        )

    def build(self, input_shape) -> None:
        self.projection.build(input_shape)

    def call(self, features):
        raw = self.projection(features)
        k, d = self.components, self.output_dim
        logits = raw[:, :k]
        log_weights = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        means = raw[:, k : k + k * d]
        scales = positive_scale(raw[:, k + k * d :], self.scale_activation, self.scale_floor)
        return ops.concatenate([log_weights, means, scales], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], packed_size(self.components, self.output_dim))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "components": self.components,
            "scale_activation": self.scale_activation,
            "scale_floor": self.scale_floor,
        }


@keras.saving.register_keras_serializable(package="probreg")
class FixedScaleGaussian(keras.layers.Layer):
    """Turn point predictions ``(n, d)`` into a one-component mixture with a stored scale.

    The scale is a non-trainable weight (one per output coordinate), set after training from
    validation residuals; keeping it in the model means a saved model carries its full
    predictive distribution.
    """

    def __init__(self, output_dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)

    def build(self, input_shape) -> None:
        self.log_scale = self.add_weight(
            shape=(self.output_dim,), initializer="zeros", trainable=False, name="log_scale"
        )

    def call(self, mean):
        batch = ops.shape(mean)[0]
        log_weight = ops.zeros((batch, 1), dtype=mean.dtype)
        scale = ops.broadcast_to(ops.exp(self.log_scale), ops.shape(mean))
        return ops.concatenate([log_weight, mean, ops.cast(scale, mean.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], packed_size(1, self.output_dim))

    def get_config(self) -> dict:
        return {**super().get_config(), "output_dim": self.output_dim}


def dense_trunk(inputs, hidden: tuple[int, ...], activation: str, name: str = "trunk"):
    """Stack plain ``Dense`` layers (the shared feature extractor of the built-in heads)."""
    features = inputs
    for i, units in enumerate(hidden):
        features = keras.layers.Dense(units, activation=activation, name=f"{name}_{i}")(features)
    return features
