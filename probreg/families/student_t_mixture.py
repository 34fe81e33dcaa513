"""Family ``student_t``: a mixture of ``K`` diagonal Student-t components with learned tails.

Heavy-tailed noise (outliers, financial returns, sensor glitches) pulls a Gaussian mixture's
scales wide or spends components on the tails; a Student-t component keeps a narrow core and
heavy tails at once. Each component learns its own degrees of freedom ``df``, kept above
``df_min > 2`` so every component has a variance.

Packed row (:func:`layout`): ``[log_weights (K) | means (K d) | scales (K d) | df (K)]``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from probreg.distributions.mixture import LocationScaleMixture
from probreg.families.base import Layout, MixtureFamily, mixture_layer
from probreg.families.gaussian_mixture import scale_params
from probreg.params import Param

_HALF_LOG_PI = 0.5 * math.log(math.pi)
_Z_LIMIT = 1e15


def layout(components: int, output_dim: int) -> Layout:
    """``[log_weights (K) | means (K, d) | scales (K, d) | df (K)]``."""
    k, d = components, output_dim
    return Layout(("log_weights", (k,)), ("means", (k, d)), ("scales", (k, d)), ("df", (k,)))


def log_prob(packed, y, components: int, output_dim: int):
    """``log p(y)`` in ``keras.ops`` (with :func:`probreg.ops.lgamma`): ``(n,)``."""
    from keras import ops

    from probreg.ops import lgamma

    blocks = layout(components, output_dim).unpack(packed)
    y = ops.reshape(ops.cast(y, blocks["means"].dtype), (-1, 1, output_dim))
    df = blocks["df"][:, :, None]
    z = ops.clip((y - blocks["means"]) / blocks["scales"], -_Z_LIMIT, _Z_LIMIT)
    per_coordinate = (
        lgamma(0.5 * (df + 1.0))
        - lgamma(0.5 * df)
        - 0.5 * ops.log(df)
        - _HALF_LOG_PI
        - ops.log(blocks["scales"])
        - 0.5 * (df + 1.0) * ops.log1p(ops.square(z) / df)
    )
    return ops.logsumexp(blocks["log_weights"] + ops.sum(per_coordinate, axis=-1), axis=-1)


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="probreg")
    class StudentTMixtureDensity(mixture_layer()):
        """Project features ``(..., F)`` to packed Student-t mixture rows: the mixture's blocks
        plus ``df = df_min + softplus(raw + 3)``, which starts near ``df_min + 3``: heavy-tailed,
        free to grow towards a Gaussian."""

        def __init__(self, *args, df_min: float = 2.5, **kwargs) -> None:
            if not (isinstance(df_min, int | float) and df_min > 2):
                raise ValueError(f"StudentTMixtureDensity: df_min must be > 2, got {df_min!r}")
            self.df_min = float(df_min)
            super().__init__(*args, **kwargs)

        def make_layout(self) -> Layout:
            return layout(self.components, self.output_dim)

        def constrain(self, raw):
            return {**super().constrain(raw), "df": self.df_min + ops.softplus(raw["df"] + 3.0)}

        def get_config(self) -> dict:
            return {**super().get_config(), "df_min": self.df_min}

    return StudentTMixtureDensity


class StudentTMixture(LocationScaleMixture):
    """``n`` mixtures of ``K`` diagonal Student-t components over ``R^d``.

    Args:
        log_weights: ``(n, K)``; means, scales: ``(n, K, d)``; df: ``(n, K)``, all ``> 2``.
    """

    shape_names = ("df",)

    def __init__(self, log_weights, means, scales, df) -> None:
        super().__init__(log_weights, means, scales, df=df)
        if not np.all(self.shapes["df"] > 2):
            raise ValueError("StudentTMixture degrees of freedom must be > 2")

    layout = staticmethod(layout)

    def _std_log_pdf(self, z, shapes):
        df = shapes["df"]
        return (
            special.gammaln(0.5 * (df + 1))
            - special.gammaln(0.5 * df)
            - 0.5 * np.log(df)
            - _HALF_LOG_PI
            - 0.5 * (df + 1) * np.log1p(z**2 / df)
        )

    def _std_cdf(self, z, shapes):
        return special.stdtr(shapes["df"], z)

    def _std_quantile(self, q, shapes):
        return special.stdtrit(shapes["df"], q)

    def _std_variance(self, shapes):
        return shapes["df"] / (shapes["df"] - 2.0)

    def _std_shift_weight(self, z, shapes):
        return (shapes["df"] + 1.0) / (shapes["df"] + z**2)

    def _std_draws(self, rng, shapes, size):
        return rng.standard_t(np.broadcast_to(shapes["df"], size))

    def to_tfp(self):
        """The same mixture in TensorFlow Probability: the reference the tests compare with."""
        from tensorflow_probability import distributions as tfd

        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.log_weights),
            components_distribution=tfd.Independent(
                tfd.StudentT(df=self.shapes["df"][..., None], loc=self.means, scale=self.scales),
                reinterpreted_batch_ndims=1,
            ),
        )


class StudentTMixtureFamily(MixtureFamily):
    """Mixture of K diagonal Student-t components, each with learned degrees of freedom."""

    name = "student_t"
    params = (
        Param("components", "int", 5, "mixture components K", minimum=1, maximum=1000),
        *scale_params(),
        Param(
            "df_min",
            "float",
            2.5,
            "smallest degrees of freedom of a component (> 2, so every component has a "
            "variance); each component learns its own df above it",
            minimum=2.01,
            maximum=1000.0,
        ),
    )
    distribution_class = StudentTMixture
    test_specs = ("student_t:components=3",)

    layer_factory = staticmethod(layer_class)
    density = staticmethod(log_prob)

    def layer_options(self) -> dict:
        return {"df_min": self.options["df_min"]}
