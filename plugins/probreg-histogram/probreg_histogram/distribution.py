"""The histogram head's predictive distribution (numpy).

Per row: weights ``w_0 .. w_{B-1}`` for ``B`` equal-width bins on ``[-R, R]`` (uniform density
inside each) and ``w_B`` for a Gaussian ``N(0, R^2)`` that keeps the density positive
everywhere. Only ``log_prob``, ``sample``, ``mean``, ``variance`` and ``cdf`` are written here;
quantiles, CRPS and the rest come from probreg's ``Distribution`` defaults.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from probreg.distributions import Distribution

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


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

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": np.exp(self.log_weights)}
