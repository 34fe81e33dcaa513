"""Family ``fixed_gaussian``: one Gaussian per row whose scale is stored, not predicted.

What the ``mlp`` head uses: the network predicts only the mean; the standard deviation (one per
output coordinate) is a non-trainable weight of the layer, set after training from validation
residuals, so a saved model carries its whole predictive distribution. The packed row is a
one-component :mod:`~probreg.families.gaussian_mixture` row, ``[0 | mean (d) | scale (d)]``.
"""

from __future__ import annotations

import functools

import numpy as np

from probreg.families import gaussian_mixture
from probreg.families.base import Family, Layout, check_layer_arguments, split_members


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="probreg")
    class FixedScaleGaussian(keras.layers.Layer):
        """Turn features (``project=True``) or point predictions ``(..., d)`` into a
        one-component mixture row with a stored scale."""

        def __init__(self, output_dim: int, project: bool = False, **kwargs) -> None:
            super().__init__(**kwargs)
            check_layer_arguments("FixedScaleGaussian", output_dim)
            self.output_dim = int(output_dim)
            self.project = bool(project)
            self.projection = (
                keras.layers.Dense(self.output_dim, name="mean") if self.project else None
            )

        def build(self, input_shape) -> None:
            if self.projection is not None:
                self.projection.build(input_shape)
            self.log_scale = self.add_weight(
                shape=(self.output_dim,), initializer="zeros", trainable=False, name="log_scale"
            )

        def call(self, inputs):
            mean = self.projection(inputs) if self.projection is not None else inputs
            log_weight = ops.zeros_like(mean[..., :1])
            scale = ops.broadcast_to(ops.cast(ops.exp(self.log_scale), mean.dtype), ops.shape(mean))
            return ops.concatenate([log_weight, mean, scale], axis=-1)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], gaussian_mixture.layout(1, self.output_dim).size)

        def get_config(self) -> dict:
            return {**super().get_config(), "output_dim": self.output_dim, "project": self.project}

    return FixedScaleGaussian


class FixedGaussianFamily(Family):
    """One Gaussian around a predicted mean, its scale set after training (the MLP's)."""

    name = "fixed_gaussian"
    test_specs = ("fixed_gaussian",)

    def layout(self, output_dim: int) -> Layout:
        return gaussian_mixture.layout(1, output_dim)

    def layer_class(self) -> type:
        return layer_class()

    def layer(self, output_dim: int, name: str | None = None):
        return layer_class()(output_dim, project=True, name=name)

    def log_prob(self, params, y, output_dim: int):
        return gaussian_mixture.log_prob(params, y, 1, output_dim)

    def distribution(self, params: np.ndarray, output_dim: int):
        return gaussian_mixture.GaussianMixture.from_packed(params, 1, output_dim)

    def combine(self, members):
        return gaussian_mixture.GaussianMixture.combine(list(members))

    def after_fit(self, head, model, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """Set each member's stored scale to its own validation root-mean-square residual, the
        maximum-likelihood constant scale."""
        d = y_val.shape[-1]
        size = self.layout(d).size
        outputs = np.asarray(model.predict(x_val, verbose=0)).reshape(-1, head.members * size)
        targets = np.asarray(y_val).reshape(-1, d)
        for block, name in zip(
            split_members(outputs, head.members, size), head.member_layer_names(), strict=True
        ):
            rms = np.sqrt(np.mean((targets - self.distribution(block, d).mean()) ** 2, axis=0))
            log_scale = np.log(np.maximum(rms, 1e-6)).astype("float32")
            model.get_layer(name).log_scale.assign(log_scale)
