"""Family ``histogram``: a discretised-softmax density for one-dimensional targets.

Per row: weights ``w_0 .. w_{B-1}`` for ``B`` equal-width bins on ``[-R, R]`` (in standardised
target units; uniform density inside each) and ``w_B`` for a Gaussian ``N(0, R^2)`` that keeps
the density positive everywhere. This one file is the whole family, as probreg wants it:

1. the layout: ``B + 1`` log-weights (:func:`layout`);
2. the Keras layer (:func:`layer_class`): a projection and a log-softmax over the last axis;
3. the log-density in ``keras.ops`` (:func:`log_prob`), which probreg's generic loss trains;
4. the numpy distribution (:class:`HistogramDistribution`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from probreg.distributions import Distribution
from probreg.families import Family, Layout
from probreg.params import Param

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def layout(bins: int) -> Layout:
    """``[log_weights (bins + 1)]``: the bins, then the tail Gaussian."""
    return Layout(("log_weights", (bins + 1,)))


def log_prob(params, y, bins: int, half_range: float):
    """``log p(y)`` in ``keras.ops``: packed rows ``(..., bins + 1)`` and ``y`` -> ``(n,)``."""
    from keras import ops

    log_weights = layout(bins).unpack(params)["log_weights"]
    width = 2.0 * half_range / bins
    y = ops.reshape(ops.cast(y, log_weights.dtype), (-1,))
    index = ops.floor((y + half_range) / width)
    inside = ops.logical_and(index >= 0, index < bins)
    one_hot = ops.one_hot(ops.cast(ops.clip(index, 0, bins - 1), "int32"), bins)
    bin_log_weight = ops.sum(one_hot * log_weights[:, :bins], axis=-1)
    very_small = ops.cast(-1e30, log_weights.dtype)
    bin_term = ops.where(inside, bin_log_weight - math.log(width), very_small)
    z = y / half_range
    tail_term = log_weights[:, bins] - 0.5 * z * z - math.log(half_range) - _HALF_LOG_2PI
    return ops.logaddexp(bin_term, tail_term)


@functools.cache
def layer_class() -> type:
    """The Keras layer (made on first use: importing this module must not start TensorFlow)."""
    import keras
    from keras import ops

    from probreg.families.base import check_layer_arguments, projection_layer

    @keras.saving.register_keras_serializable(package="probreg_histogram")
    class HistogramLayer(projection_layer()):
        """Features ``(..., F)`` -> ``bins + 1`` normalised log-weights."""

        def __init__(self, output_dim: int, bins: int, **kwargs) -> None:
            super().__init__(**kwargs)
            check_layer_arguments("HistogramLayer", output_dim, bins=bins)
            if output_dim != 1:
                raise ValueError(f"HistogramLayer: output_dim must be 1, got {output_dim}")
            self.output_dim, self.bins = int(output_dim), int(bins)
            self.project_to(layout(self.bins))

        def constrain(self, raw):
            return {"log_weights": ops.log_softmax(raw["log_weights"], axis=-1)}

        def get_config(self) -> dict:
            return {**super().get_config(), "output_dim": self.output_dim, "bins": self.bins}

    return HistogramLayer


class HistogramFamily(Family):
    """Histogram density: softmax over equal-width bins plus a wide Gaussian for the tails."""

    name = "histogram"
    params = (
        Param("bins", "int", 100, "number of equal-width bins", minimum=2, maximum=10_000),
        Param(
            "range",
            "float",
            5.0,
            "bins cover [-range, range] in standardised target units (training standard "
            "deviations); a Gaussian of that scale covers the rest",
            minimum=0.1,
        ),
    )
    test_specs = ("histogram:bins=20",)
    max_output_dim = 1

    def layout(self, output_dim: int) -> Layout:
        return layout(self.options["bins"])

    def layer_class(self) -> type:
        return layer_class()

    def layer(self, output_dim: int, name: str | None = None):
        self.check_output_dim(output_dim)
        return layer_class()(output_dim, self.options["bins"], name=name)

    def log_prob(self, params, y, output_dim: int):
        return log_prob(params, y, self.options["bins"], self.options["range"])

    def distribution(self, params: np.ndarray, output_dim: int) -> HistogramDistribution:
        return HistogramDistribution(params, self.options["range"])


class HistogramDistribution(Distribution):
    """``n`` histogram densities over ``R`` (``event_dim`` is 1)."""

    def __init__(self, log_weights: np.ndarray, half_range: float) -> None:
        log_weights = np.asarray(log_weights, np.float64)
        self.log_weights = log_weights - special.logsumexp(log_weights, axis=1, keepdims=True)
        self.bins = log_weights.shape[1] - 1
        self.half_range = float(half_range)
        self.width = 2.0 * self.half_range / self.bins
        self.edges = np.linspace(-self.half_range, self.half_range, self.bins + 1)

    @property
    def batch_size(self) -> int:
        return self.log_weights.shape[0]

    @property
    def event_dim(self) -> int:
        return 1

    def _tail_log_prob(self, y: np.ndarray) -> np.ndarray:
        z = y / self.half_range
        return -0.5 * z**2 - np.log(self.half_range) - _HALF_LOG_2PI

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64).reshape(-1)
        index = np.floor((y + self.half_range) / self.width).astype(np.int64)
        inside = (index >= 0) & (index < self.bins)
        rows = np.arange(self.batch_size)
        bin_term = np.where(
            inside,
            self.log_weights[rows, np.clip(index, 0, self.bins - 1)] - np.log(self.width),
            -np.inf,
        )
        tail_term = self.log_weights[:, -1] + self._tail_log_prob(y)
        return np.logaddexp(bin_term, tail_term)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        weights = np.exp(self.log_weights)
        cumulative = np.cumsum(weights, axis=1)
        u = rng.random((num_samples, self.batch_size, 1)) * cumulative[:, -1:]
        index = np.minimum((u > cumulative).sum(axis=-1), self.bins)  # (s, n)
        uniform = self.edges[np.minimum(index, self.bins - 1)] + self.width * rng.random(
            index.shape
        )
        normal = self.half_range * rng.standard_normal(index.shape)
        return np.where(index == self.bins, normal, uniform)[..., None]

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        weights = np.exp(self.log_weights)
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        mean = weights[:, :-1] @ centres  # the tail Gaussian has mean 0
        second = weights[:, :-1] @ (centres**2 + self.width**2 / 12.0)
        second = second + weights[:, -1] * self.half_range**2
        return mean, second

    def mean(self) -> np.ndarray:
        return self._moments()[0][:, None]

    def variance(self) -> np.ndarray:
        mean, second = self._moments()
        return np.maximum(second - mean**2, 0.0)[:, None]

    def cdf(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64).reshape(-1, 1)
        weights = np.exp(self.log_weights)
        covered = np.clip((y - self.edges[:-1]) / self.width, 0.0, 1.0)  # (n, B)
        tail = special.ndtr(y[:, 0] / self.half_range)
        return ((weights[:, :-1] * covered).sum(axis=1) + weights[:, -1] * tail)[:, None]

    def mode(self) -> np.ndarray:
        """The densest point: in each bin the tail Gaussian is highest at the point nearest 0,
        so the best of those ``B`` candidates is the mode."""
        nearest_zero = np.clip(0.0, self.edges[:-1], self.edges[1:] - 1e-12 * self.width)
        density = np.exp(self.log_weights[:, :-1]) / self.width + np.exp(
            self.log_weights[:, -1:] + self._tail_log_prob(nearest_zero)[None, :]
        )
        return nearest_zero[density.argmax(axis=1)][:, None]

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": np.exp(self.log_weights)}

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        return {"weight": ("component",)}
