"""Family ``gaussian_mixture_full``: ``K`` Gaussians with full covariance matrices.

A diagonal mixture can only express correlation between outputs by spending components on it;
a full-covariance component holds it directly. Each component's covariance is ``L L^T`` with
``L`` lower triangular: its diagonal goes through the same scale map and floor as the diagonal
mixture's scales, the entries below it are unconstrained. ``log_prob``, ``sample``, the mean
and the covariance are exact; the marginal CDF, quantiles and CRPS come from the marginal
mixtures (each a one-dimensional :class:`~probreg.families.gaussian_mixture.GaussianMixture`).

Packed row (:func:`layout`): ``[log_weights (K) | means (K d) | scales (K d) | lower (K,
d(d-1)/2)]``; ``lower`` holds the strict lower triangle row by row, ``L[1,0], L[2,0], L[2,1],
...``. For one output there is no ``lower`` block and the row is the diagonal mixture's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from probreg.distributions.base import Distribution
from probreg.distributions.mixture import MixtureShape
from probreg.errors import UsageError
from probreg.families.base import Layout, MixtureFamily, mixture_layer
from probreg.families.gaussian_mixture import GaussianMixture, scale_params
from probreg.params import Param

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_Z_LIMIT = 1e15


def layout(components: int, output_dim: int) -> Layout:
    """``[log_weights (K) | means (K, d) | scales (K, d) | lower (K, d (d - 1) / 2)]``."""
    k, d = components, output_dim
    blocks = [("log_weights", (k,)), ("means", (k, d)), ("scales", (k, d))]
    if d > 1:
        blocks.append(("lower", (k, d * (d - 1) // 2)))
    return Layout(*blocks)


def _lower_index(i: int, j: int) -> int:
    """Column of ``L[i, j]`` (``j < i``) in the ``lower`` block."""
    return i * (i - 1) // 2 + j


def log_prob(packed, y, components: int, output_dim: int):
    """``log p(y)`` in ``keras.ops``: ``L z = y - mean`` by forward substitution, ``(n,)``."""
    from keras import ops

    d = output_dim
    blocks = layout(components, d).unpack(packed)
    means, scales = blocks["means"], blocks["scales"]
    y = ops.reshape(ops.cast(y, means.dtype), (-1, 1, d))
    residual = y - means  # (n, K, d)
    z = []
    for i in range(d):
        value = residual[..., i]
        for j in range(i):
            value = value - blocks["lower"][..., _lower_index(i, j)] * z[j]
        z.append(ops.clip(value / scales[..., i], -_Z_LIMIT, _Z_LIMIT))
    z = ops.stack(z, axis=-1)
    component = -ops.sum(0.5 * ops.square(z) + ops.log(scales), axis=-1) - d * _HALF_LOG_2PI
    return ops.logsumexp(blocks["log_weights"] + component, axis=-1)


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras

    @keras.saving.register_keras_serializable(package="probreg")
    class FullCovarianceMixtureDensity(mixture_layer()):
        """Project features ``(..., F)`` to packed full-covariance mixture rows: log-softmax
        weights, means, the Cholesky diagonal through the scale map plus its floor, and the
        unconstrained strict lower triangle."""

        def make_layout(self) -> Layout:
            return layout(self.components, self.output_dim)

    return FullCovarianceMixtureDensity


def _tril(scales: np.ndarray, lower: np.ndarray | None) -> np.ndarray:
    """Cholesky factors ``(n, K, d, d)`` from diagonals ``(n, K, d)`` and strict lower parts."""
    n, k, d = scales.shape
    tril = np.zeros((n, k, d, d))
    tril[..., np.arange(d), np.arange(d)] = scales
    if d > 1:
        rows, cols = np.tril_indices(d, -1)  # row by row: (1,0), (2,0), (2,1), ...
        tril[..., rows, cols] = lower
    return tril


class FullCovarianceGaussianMixture(MixtureShape, Distribution):
    """``n`` mixtures of ``K`` Gaussians over ``R^d``, each with a full covariance ``L L^T``.

    Args:
        log_weights: ``(n, K)`` log mixture weights; normalised here, so logits work too.
        means: ``(n, K, d)`` component means.
        scale_tril: ``(n, K, d, d)`` lower-triangular Cholesky factors, positive diagonal.
    """

    def __init__(self, log_weights, means, scale_tril) -> None:
        log_weights = np.asarray(log_weights, np.float64)
        means = np.asarray(means, np.float64)
        scale_tril = np.tril(np.asarray(scale_tril, np.float64))
        n, k, d = means.shape if means.ndim == 3 else (None, None, None)
        if n is None or log_weights.shape != (n, k) or scale_tril.shape != (n, k, d, d):
            raise ValueError(
                "FullCovarianceGaussianMixture wants log_weights (n, K), means (n, K, d) and "
                f"scale_tril (n, K, d, d); got {log_weights.shape}, {means.shape}, "
                f"{scale_tril.shape}"
            )
        if not np.all(np.diagonal(scale_tril, axis1=-2, axis2=-1) > 0):
            raise ValueError("FullCovarianceGaussianMixture: the Cholesky diagonal must be > 0")
        self.log_weights = log_weights - special.logsumexp(log_weights, axis=1, keepdims=True)
        self.means = means
        self.scale_tril = scale_tril

    layout = staticmethod(layout)

    @classmethod
    def from_packed(cls, packed: np.ndarray, components: int, output_dim: int):
        """Build from packed rows ``(n, size)`` as the family's Keras layer emits them."""
        packed = np.asarray(packed, np.float64)
        rows = layout(components, output_dim)
        if packed.ndim != 2 or packed.shape[1] != rows.size:
            raise ValueError(f"packed full-covariance rows need {rows.size} columns")
        blocks = rows.unpack(packed)
        tril = _tril(blocks["scales"], blocks.get("lower"))
        return cls(blocks["log_weights"], blocks["means"], tril)

    def component_covariance(self) -> np.ndarray:
        """``L L^T`` of every component, ``(n, K, d, d)``."""
        return self.scale_tril @ np.swapaxes(self.scale_tril, -1, -2)

    def covariance(self) -> np.ndarray:
        """The mixture's covariance matrix of each row, ``(n, d, d)`` (exact)."""
        w = self.weights
        second = np.einsum("nk,nkij->nij", w, self.component_covariance())
        second = second + np.einsum("nk,nki,nkj->nij", w, self.means, self.means)
        mean = self.mean()
        return second - mean[:, :, None] * mean[:, None, :]

    def marginals(self) -> GaussianMixture:
        """The marginal mixture of each coordinate, as one diagonal mixture (same weights)."""
        std = np.sqrt(np.diagonal(self.component_covariance(), axis1=-2, axis2=-1))
        return GaussianMixture(self.log_weights, self.means, std)

    def _component_log_prob(self, y: np.ndarray) -> np.ndarray:
        """``log p_k(y)`` for every row and component, ``(n, K)``: ``L z = y - m`` solved by
        forward substitution (vectorised over rows and components)."""
        d = self.event_dim
        y = np.asarray(y, np.float64).reshape(self.batch_size, 1, d)
        residual = y - self.means  # (n, K, d)
        z = np.empty_like(residual)
        for i in range(d):
            inner = np.einsum("nkj,nkj->nk", self.scale_tril[..., i, :i], z[..., :i])
            z[..., i] = (residual[..., i] - inner) / self.scale_tril[..., i, i]
        log_det = np.log(np.diagonal(self.scale_tril, axis1=-2, axis2=-1)).sum(axis=-1)
        return -0.5 * (z**2).sum(axis=-1) - log_det - d * _HALF_LOG_2PI

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        return special.logsumexp(self.log_weights + self._component_log_prob(y), axis=1)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        cumulative = np.cumsum(self.weights, axis=1)
        u = rng.random((num_samples, self.batch_size, 1)) * cumulative[:, -1:]
        index = np.minimum((u > cumulative).sum(axis=-1), self.components - 1)  # (s, n)
        rows = np.arange(self.batch_size)
        eps = rng.standard_normal((num_samples, self.batch_size, self.event_dim))
        tril = self.scale_tril[rows, index]  # (s, n, d, d)
        return self.means[rows, index] + np.einsum("snij,snj->sni", tril, eps)

    def mean(self) -> np.ndarray:
        return np.einsum("nk,nkd->nd", self.weights, self.means)

    def variance(self) -> np.ndarray:
        return np.maximum(np.diagonal(self.covariance(), axis1=-2, axis2=-1), 0.0)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self.marginals().cdf(y)

    def quantile(self, q: float) -> np.ndarray:
        return self.marginals().quantile(q)

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.marginals().crps(y, rng)

    def mode(self, iterations: int = 30) -> np.ndarray:
        """The highest mode found by full-covariance mean shift from every component's mean:
        ``x <- (sum_k r_k P_k)^-1 sum_k r_k P_k m_k`` with ``P_k`` the precisions and ``r_k``
        the responsibilities, the point where the log-density's gradient vanishes."""
        precision = np.linalg.inv(self.component_covariance())  # (n, K, d, d)
        weighted_means = np.einsum("nkij,nkj->nki", precision, self.means)
        best, best_score = None, None
        for j in range(self.components):
            x = self.means[:, j, :]
            for _ in range(iterations):
                joint = self.log_weights + self._component_log_prob(x)
                r = np.exp(joint - joint.max(axis=1, keepdims=True))  # (n, K)
                a = np.einsum("nk,nkij->nij", r, precision)
                b = np.einsum("nk,nki->ni", r, weighted_means)
                x = np.linalg.solve(a, b[..., None])[..., 0]
            score = self.log_prob(x)
            if best is None:
                best, best_score = x, score
            else:
                better = score > best_score
                best = np.where(better[:, None], x, best)
                best_score = np.maximum(score, best_score)
        return best

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": self.weights, "mean": self.means, "scale_tril": self.scale_tril}

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        # scale_tril (component, output, output) is left undeclared: numbered flat, row-major.
        return {"weight": ("component",), "mean": ("component", "output")}

    @classmethod
    def combine(cls, mixtures: Sequence[FullCovarianceGaussianMixture]):
        """The equal-weight mixture of several mixtures (an ensemble's predictive), exactly."""
        if len(mixtures) == 1:
            return mixtures[0]
        shift = np.log(len(mixtures))
        return cls(
            np.concatenate([m.log_weights - shift for m in mixtures], axis=1),
            np.concatenate([m.means for m in mixtures], axis=1),
            np.concatenate([m.scale_tril for m in mixtures], axis=1),
        )

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        """Log-weights divided by ``temperature``, every Cholesky factor times
        ``sigma_temperature`` (as for the diagonal mixture)."""
        if temperature <= 0 or sigma_temperature <= 0:
            raise UsageError("temperature and sigma_temperature must be positive")
        if temperature == 1.0 and sigma_temperature == 1.0:
            return self
        return type(self)(
            self.log_weights / temperature, self.means, self.scale_tril * sigma_temperature
        )

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> Distribution:
        shift = np.broadcast_to(np.asarray(shift, np.float64), (self.event_dim,))
        scale = np.broadcast_to(np.asarray(scale, np.float64), (self.event_dim,))
        if np.any(scale <= 0):
            raise ValueError("affine scale must be positive")
        return type(self)(
            self.log_weights, shift + scale * self.means, scale[:, None] * self.scale_tril
        )

    def __getitem__(self, rows):
        return type(self)(self.log_weights[rows], self.means[rows], self.scale_tril[rows])

    def to_tfp(self):
        """The same mixture as ``tfd.MixtureSameFamily`` of ``MultivariateNormalTriL``."""
        from tensorflow_probability import distributions as tfd

        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.log_weights),
            components_distribution=tfd.MultivariateNormalTriL(
                loc=self.means, scale_tril=self.scale_tril
            ),
        )


class FullCovarianceGaussianMixtureFamily(MixtureFamily):
    """Mixture of K Gaussians with full covariance (Cholesky factors): correlated outputs."""

    name = "gaussian_mixture_full"
    params = (
        Param("components", "int", 5, "mixture components K", minimum=1, maximum=1000),
        *scale_params(),
    )
    distribution_class = FullCovarianceGaussianMixture
    test_specs = ("gaussian_mixture_full:components=3",)

    layer_factory = staticmethod(layer_class)
    density = staticmethod(log_prob)
