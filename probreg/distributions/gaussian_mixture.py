"""Gaussian mixtures with diagonal covariance: the MDN's output (and the MLP's, with K = 1)."""

from __future__ import annotations

import numpy as np
from scipy import special

from probreg.distributions.base import Distribution
from probreg.errors import UsageError

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


class GaussianMixture(Distribution):
    """``n`` mixtures of ``K`` diagonal Gaussians over ``R^d``.

    Args:
        log_weights: ``(n, K)`` log mixture weights; normalised here, so logits work too.
        means: ``(n, K, d)`` component means.
        scales: ``(n, K, d)`` component standard deviations, all positive.
    """

    def __init__(self, log_weights: np.ndarray, means: np.ndarray, scales: np.ndarray) -> None:
        log_weights = np.asarray(log_weights, np.float64)
        means = np.asarray(means, np.float64)
        scales = np.asarray(scales, np.float64)
        if means.ndim != 3 or scales.shape != means.shape or log_weights.shape != means.shape[:2]:
            raise ValueError(
                "GaussianMixture wants log_weights (n, K), means (n, K, d) and scales (n, K, d); "
                f"got {log_weights.shape}, {means.shape}, {scales.shape}"
            )
        if not np.all(scales > 0):
            raise ValueError("GaussianMixture scales must be positive")
        self.log_weights = log_weights - special.logsumexp(log_weights, axis=1, keepdims=True)
        self.means = means
        self.scales = scales

    @classmethod
    def from_packed(cls, packed: np.ndarray, components: int, output_dim: int) -> GaussianMixture:
        """Unpack the ``[log_weights | means | scales]`` rows that the MDN layers emit."""
        k, d = components, output_dim
        packed = np.asarray(packed, np.float64)
        expected = k + 2 * k * d
        if packed.ndim != 2 or packed.shape[1] != expected:
            raise ValueError(f"packed mixture rows need {expected} columns, got {packed.shape}")
        n = packed.shape[0]
        return cls(
            packed[:, :k],
            packed[:, k : k + k * d].reshape(n, k, d),
            packed[:, k + k * d :].reshape(n, k, d),
        )

    @classmethod
    def combine(cls, mixtures: list[GaussianMixture]) -> GaussianMixture:
        """The equal-weight mixture of several mixtures (an ensemble's predictive)."""
        if len(mixtures) == 1:
            return mixtures[0]
        shift = np.log(len(mixtures))
        return cls(
            np.concatenate([m.log_weights - shift for m in mixtures], axis=1),
            np.concatenate([m.means for m in mixtures], axis=1),
            np.concatenate([m.scales for m in mixtures], axis=1),
        )

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def event_dim(self) -> int:
        return self.means.shape[2]

    @property
    def components(self) -> int:
        return self.means.shape[1]

    @property
    def weights(self) -> np.ndarray:
        return np.exp(self.log_weights)

    def _component_log_prob(self, y: np.ndarray) -> np.ndarray:
        """``log N(y | mean_k, scale_k)`` for every row and component: ``(n, K)``."""
        y = np.asarray(y, np.float64).reshape(self.batch_size, 1, self.event_dim)
        z = (y - self.means) / self.scales
        return -(0.5 * z**2 + np.log(self.scales) + _HALF_LOG_2PI).sum(axis=-1)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        return special.logsumexp(self.log_weights + self._component_log_prob(y), axis=1)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        # Vectorised ancestral sampling: one uniform per draw picks a component through the
        # cumulative weights, then one normal draw per coordinate. No Python loop over rows.
        n, k, d = self.means.shape
        cumulative = np.cumsum(self.weights, axis=1)
        u = rng.random((num_samples, n, 1)) * cumulative[:, -1:]
        index = np.minimum((u > cumulative).sum(axis=-1), k - 1)  # (s, n)
        rows = np.arange(n)
        loc = self.means[rows, index]  # (s, n, d)
        scale = self.scales[rows, index]
        return loc + scale * rng.standard_normal((num_samples, n, d))

    def mean(self) -> np.ndarray:
        return np.einsum("nk,nkd->nd", self.weights, self.means)

    def variance(self) -> np.ndarray:
        second = np.einsum("nk,nkd->nd", self.weights, self.scales**2 + self.means**2)
        return np.maximum(second - self.mean() ** 2, 0.0)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64).reshape(self.batch_size, 1, self.event_dim)
        return np.einsum("nk,nkd->nd", self.weights, special.ndtr((y - self.means) / self.scales))

    def quantile(self, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        # Every quantile of a mixture lies between the smallest and largest component quantile.
        z = special.ndtri(q)
        component_quantiles = self.means + z * self.scales
        return self._bisect_cdf(q, component_quantiles.min(axis=1), component_quantiles.max(axis=1))

    def mode(self) -> np.ndarray:
        """The component mean with the highest mixture density.

        The exact mode of a mixture has no closed form; with well-separated components it sits at
        (or very near) one of the component means, so we pick the best of those ``K`` candidates.
        """
        n, k, _ = self.means.shape
        candidates = np.stack(
            [self.log_prob(self.means[:, j, :]) for j in range(k)], axis=1
        )  # (n, K), K is small
        best = candidates.argmax(axis=1)
        return self.means[np.arange(n), best]

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

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": self.weights, "mean": self.means, "scale": self.scales}

    def with_temperature(self, temperature: float, sigma_temperature: float) -> GaussianMixture:
        """Divide the log-weights by ``temperature``; multiply every scale by ``sigma_temperature``.

        ``temperature -> 0`` always picks the heaviest component; ``temperature = 1`` keeps the
        weights; large values make the components equally likely. ``sigma_temperature = 0`` would
        collapse each component to its mean, so it must be positive.
        """
        if temperature <= 0 or sigma_temperature <= 0:
            raise UsageError("temperature and sigma_temperature must be positive")
        if temperature == 1.0 and sigma_temperature == 1.0:
            return self
        return GaussianMixture(
            self.log_weights / temperature, self.means, self.scales * sigma_temperature
        )

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> GaussianMixture:
        shift = np.asarray(shift, np.float64)
        scale = np.asarray(scale, np.float64)
        return GaussianMixture(self.log_weights, shift + scale * self.means, scale * self.scales)

    def __getitem__(self, rows: slice | np.ndarray) -> GaussianMixture:
        return GaussianMixture(self.log_weights[rows], self.means[rows], self.scales[rows])

    def to_tfp(self):
        """The same mixture as ``tfd.MixtureSameFamily``: the reference the tests compare with."""
        from tensorflow_probability import distributions as tfd

        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.log_weights),
            components_distribution=tfd.Independent(
                tfd.Normal(loc=self.means, scale=self.scales), reinterpreted_batch_ndims=1
            ),
        )
