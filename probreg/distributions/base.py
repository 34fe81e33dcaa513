"""The predictive-distribution seam: what a head hands to samplers, metrics and plots.

Everything here is numpy, so metrics and sampling do not depend on the Keras backend.
A :class:`Distribution` is a batch of ``n`` distributions over ``R^d``: one per input row.
"""

from __future__ import annotations

import abc

import numpy as np

from probreg.errors import UsageError


class Distribution(abc.ABC):
    """A batch of ``n`` predictive distributions over ``d``-dimensional targets.

    Subclasses implement :meth:`log_prob`, :meth:`sample`, :meth:`mean`, :meth:`variance` and
    :meth:`cdf`; the rest has generic defaults that a subclass may replace with exact forms.
    Arrays of targets have shape ``(n, d)``.
    """

    @property
    @abc.abstractmethod
    def batch_size(self) -> int:
        """``n``, the number of rows (input points)."""

    @property
    @abc.abstractmethod
    def event_dim(self) -> int:
        """``d``, the dimension of one target."""

    @abc.abstractmethod
    def log_prob(self, y: np.ndarray) -> np.ndarray:
        """Log-density of ``y`` (shape ``(n, d)``) under each row's distribution: shape ``(n,)``."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        """Independent draws, shape ``(num_samples, n, d)``."""

    @abc.abstractmethod
    def mean(self) -> np.ndarray:
        """The mean of each row, shape ``(n, d)``."""

    @abc.abstractmethod
    def variance(self) -> np.ndarray:
        """The marginal variance of each coordinate, shape ``(n, d)``."""

    @abc.abstractmethod
    def cdf(self, y: np.ndarray) -> np.ndarray:
        """The marginal CDF of each coordinate at ``y``, shape ``(n, d)``."""

    def quantile(self, q: float) -> np.ndarray:
        """Marginal ``q``-quantile of each coordinate, ``(n, d)``, by bisection on :meth:`cdf`."""
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        mean, std = self.mean(), np.sqrt(self.variance())
        # Chebyshev: P(|Y - mean| >= k std) <= 1/k^2, so this bracket holds every quantile we use.
        k = 1.0 / np.sqrt(min(q, 1.0 - q)) + 1.0
        return self._bisect_cdf(q, mean - k * std, mean + k * std)

    def _bisect_cdf(self, q: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Solve ``cdf(y) = q`` per coordinate inside ``[low, high]`` (60 halvings)."""
        for _ in range(60):
            mid = 0.5 * (low + high)
            below = self.cdf(mid) < q
            low, high = np.where(below, mid, low), np.where(below, high, mid)
        return 0.5 * (low + high)

    def mode(self) -> np.ndarray:
        """The most probable point of each row, shape ``(n, d)``; the mean unless overridden."""
        return self.mean()

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """CRPS of each row at ``y``, averaged over coordinates: shape ``(n,)``.

        The generic form estimates it from 1,000 draws with scoringrules' ensemble CRPS;
        distributions with a closed form override it.
        """
        import scoringrules as sr

        rng = rng if rng is not None else np.random.default_rng(0)
        draws = self.sample(rng, 1000)  # (s, n, d)
        scores = sr.crps_ensemble(np.asarray(y, float), np.moveaxis(draws, 0, -1), backend="numpy")
        return np.asarray(scores).mean(axis=-1)

    def params(self) -> dict[str, np.ndarray]:
        """The parameters that describe each row, for saving predictions (name -> ``(n, ...)``)."""
        return {"mean": self.mean(), "variance": self.variance()}

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        """A sharpened or flattened copy; only distributions with components support it."""
        if temperature == 1.0 and sigma_temperature == 1.0:
            return self
        raise UsageError(
            f"{type(self).__name__} has no mixture components, so temperatures other than 1 "
            "are not allowed"
        )

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> Distribution:
        """The distribution of ``shift + scale * Y`` (per-coordinate, ``scale > 0``).

        probreg trains on standardised targets and calls this to report in original units.
        """
        return AffineTransformed(self, shift, scale)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, event_dim={self.event_dim})"


class AffineTransformed(Distribution):
    """``shift + scale * Y`` for any :class:`Distribution` ``Y``, coordinate by coordinate."""

    def __init__(self, base: Distribution, shift: np.ndarray, scale: np.ndarray) -> None:
        self.base = base
        self.shift = np.broadcast_to(np.asarray(shift, float), (base.event_dim,))
        self.scale = np.broadcast_to(np.asarray(scale, float), (base.event_dim,))
        if np.any(self.scale <= 0):
            raise ValueError("affine scale must be positive")

    @property
    def batch_size(self) -> int:
        return self.base.batch_size

    @property
    def event_dim(self) -> int:
        return self.base.event_dim

    def _inner(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, float) - self.shift) / self.scale

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        return self.base.log_prob(self._inner(y)) - np.log(self.scale).sum()

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        return self.shift + self.scale * self.base.sample(rng, num_samples)

    def mean(self) -> np.ndarray:
        return self.shift + self.scale * self.base.mean()

    def variance(self) -> np.ndarray:
        return self.scale**2 * self.base.variance()

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self.base.cdf(self._inner(y))

    def quantile(self, q: float) -> np.ndarray:
        return self.shift + self.scale * self.base.quantile(q)

    def mode(self) -> np.ndarray:
        return self.shift + self.scale * self.base.mode()

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        # CRPS scales with the target: CRPS(a + bY, a + by) = b CRPS(Y, y), per coordinate.
        if self.event_dim == 1:
            return self.scale[0] * self.base.crps(self._inner(y), rng)
        return Distribution.crps(self, y, rng)

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        return self.base.with_temperature(temperature, sigma_temperature).affine(
            self.shift, self.scale
        )
