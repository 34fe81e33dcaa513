"""Family ``gaussian_mixture``: ``K`` diagonal Gaussians, the MDN's family (Bishop, 1994).

Packed row (the layout, defined once in :func:`layout`): ``[log_weights (K) | means (K d) |
scales (K d)]``, means and scales component-major. The layer normalises the log-weights with a
log-softmax and maps scales through :func:`~probreg.families.base.positive_scale`; the
``keras.ops`` log-density uses log-softmax weights and a logsumexp, so it stays finite for any
input; :class:`GaussianMixture` is the numpy distribution with closed forms.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from probreg.distributions.mixture import LocationScaleMixture
from probreg.families.base import SCALE_ACTIVATIONS, Layout, MixtureFamily, mixture_layer
from probreg.params import Param

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# |z| beyond this only happens for absurd targets; clipping keeps z**2 finite in float32 for any
# output dimension, so the loss stays finite (and its gradient zero) instead of becoming inf.
_Z_LIMIT = 1e15


def layout(components: int, output_dim: int) -> Layout:
    """``[log_weights (K) | means (K, d) | scales (K, d)]``."""
    k, d = components, output_dim
    return Layout(("log_weights", (k,)), ("means", (k, d)), ("scales", (k, d)))


def scale_params(floor: float = 0.03) -> tuple[Param, ...]:
    """The scale map and floor every location-scale family here shares."""
    return (
        Param(
            "scale",
            "str",
            "softplus",
            "map from raw outputs to standard deviations: softplus, exp, or elu (ELU+1, the "
            "original's)",
            choices=SCALE_ACTIVATIONS,
        ),
        Param(
            "scale_floor",
            "float",
            floor,
            "smallest component scale, in standardised target units (training standard "
            "deviations); lower it for nearly noise-free targets",
            minimum=0.0,
        ),
    )


def log_prob(packed, y, components: int, output_dim: int):
    """``log p(y)`` in ``keras.ops``: packed ``(..., size)`` and ``y`` ``(..., d)`` -> ``(n,)``."""
    from keras import ops

    blocks = layout(components, output_dim).unpack(packed)
    y = ops.reshape(ops.cast(y, blocks["means"].dtype), (-1, 1, output_dim))
    z = ops.clip((y - blocks["means"]) / blocks["scales"], -_Z_LIMIT, _Z_LIMIT)
    component = (
        -ops.sum(0.5 * ops.square(z) + ops.log(blocks["scales"]), axis=-1)
        - output_dim * _HALF_LOG_2PI
    )
    return ops.logsumexp(blocks["log_weights"] + component, axis=-1)


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras

    @keras.saving.register_keras_serializable(package="probreg")
    class MixtureDensity(mixture_layer()):
        """Project features ``(..., F)`` to packed mixture rows ``(..., K + 2 K d)``: log-softmax
        weights, means, and scales through the scale map plus its floor."""

        def make_layout(self) -> Layout:
            return layout(self.components, self.output_dim)

    return MixtureDensity


class GaussianMixture(LocationScaleMixture):
    """``n`` mixtures of ``K`` diagonal Gaussians over ``R^d``.

    Args:
        log_weights: ``(n, K)`` log mixture weights; normalised here, so logits work too.
        means: ``(n, K, d)`` component means.
        scales: ``(n, K, d)`` component standard deviations, all positive.
    """

    layout = staticmethod(layout)

    def _std_log_pdf(self, z, shapes):
        return -0.5 * z**2 - _HALF_LOG_2PI

    def _std_cdf(self, z, shapes):
        return special.ndtr(z)

    def _std_quantile(self, q, shapes):
        return special.ndtri(q)

    def _std_variance(self, shapes):
        return 1.0

    def _std_draws(self, rng, shapes, size):
        return rng.standard_normal(size)

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Closed-form CRPS of each marginal mixture (scoringrules), averaged over coordinates."""
        import scoringrules as sr

        y = np.asarray(y, np.float64).reshape(self.batch_size, self.event_dim)
        weights = self.weights
        scores = [
            sr.crps_mixnorm(
                y[:, j], self.means[:, :, j], self.scales[:, :, j], weights, backend="numpy"
            )
            for j in range(self.event_dim)
        ]
        return np.mean(np.stack(scores, axis=-1), axis=-1)

    def to_tfp(self):
        """The same mixture as ``tfd.MixtureSameFamily``: the reference the tests compare with."""
        from tensorflow_probability import distributions as tfd

        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.log_weights),
            components_distribution=tfd.Independent(
                tfd.Normal(loc=self.means, scale=self.scales), reinterpreted_batch_ndims=1
            ),
        )


class GaussianMixtureFamily(MixtureFamily):
    """Mixture of K diagonal Gaussians: multimodal, closed-form CDF, CRPS and moments."""

    name = "gaussian_mixture"
    params = (
        Param("components", "int", 20, "mixture components K", minimum=1, maximum=1000),
        *scale_params(),
    )
    distribution_class = GaussianMixture
    test_specs = ("gaussian_mixture:components=3",)

    layer_factory = staticmethod(layer_class)
    density = staticmethod(log_prob)
