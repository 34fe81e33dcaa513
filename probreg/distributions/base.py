"""The predictive-distribution seam: what a head hands to samplers, metrics and plots.

Everything here is numpy, so metrics and sampling do not depend on the Keras backend.
A :class:`Distribution` is a batch of ``n`` distributions over ``R^d``: one per input row.
"""

from __future__ import annotations

import abc
import itertools

import numpy as np

from probreg.errors import UsageError


class Distribution(abc.ABC):
    """A batch of ``n`` predictive distributions over ``d``-dimensional targets.

    Subclasses implement :meth:`log_prob`, :meth:`sample`, :meth:`mean`, :meth:`variance` and
    :meth:`cdf`; the rest has generic defaults that a subclass may replace with exact forms.
    Arrays of targets have shape ``(n, d)``.

    A *discrete* distribution (``discrete = True``) puts its mass on a lattice ``offset +
    spacing * i`` (the integers in data units; :meth:`lattice` says which): its ``log_prob`` is
    a log-mass, ``cdf`` is a step function and ``quantile(q)`` the smallest lattice point whose
    CDF reaches ``q``.
    """

    #: Whether the mass sits on a lattice (see :meth:`lattice`) rather than having a density.
    discrete: bool = False

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

    def lattice(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, spacing)``, each ``(d,)``, of a discrete distribution's support."""
        raise NotImplementedError(f"{type(self).__name__} is not discrete")

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

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        """What each axis after the first of every :meth:`params` entry counts: ``"output"``
        (a target column) or ``"component"``; ``predict --params`` names its columns from this
        (``<y>_mean``, ``weight_3``, ``<y>_scale_2``). Entries not listed are numbered flat."""
        return {"mean": ("output",), "variance": ("output",)}

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

    def params(self) -> dict[str, np.ndarray]:
        """The mean and variance in data units, then the base's own parameters, which stay in
        the model's standardised units and say so: ``standardised_<name>``."""
        base = {f"standardised_{k}": v for k, v in self.base.params().items()}
        return {"mean": self.mean(), "variance": self.variance(), **self._own(base)}

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        base = {f"standardised_{k}": v for k, v in self.base.param_axes().items()}
        return {**Distribution.param_axes(self), **self._own(base)}

    def _own(self, base: dict) -> dict:
        """The base's parameters, unless they are only the generic mean and variance, which
        the data-unit ones already give."""
        return base if type(self.base).params is not Distribution.params else {}


#: :meth:`EqualMixture.mode` tries this many points between each two of the most probable
#: ``_PAIRED`` members' modes.
_BETWEEN = 31
_PAIRED = 4


class EqualMixture(Distribution):
    """The equal-weight mixture of several distributions over the same rows (an ensemble)."""

    def __init__(self, members: list[Distribution]) -> None:
        if not members:
            raise ValueError("EqualMixture needs at least one member")
        shapes = {(m.batch_size, m.event_dim) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"EqualMixture members disagree on (rows, dimension): {shapes}")
        self.members = list(members)
        self.discrete = all(m.discrete for m in self.members)

    def lattice(self) -> tuple[np.ndarray, np.ndarray]:
        return self.members[0].lattice()

    @property
    def batch_size(self) -> int:
        return self.members[0].batch_size

    @property
    def event_dim(self) -> int:
        return self.members[0].event_dim

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        from scipy import special

        stacked = np.stack([m.log_prob(y) for m in self.members])
        return special.logsumexp(stacked, axis=0) - np.log(len(self.members))

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        choice = rng.integers(len(self.members), size=(num_samples, self.batch_size))
        draws = np.stack([m.sample(rng, num_samples) for m in self.members])
        return np.take_along_axis(draws, choice[None, :, :, None], axis=0)[0]

    def mean(self) -> np.ndarray:
        return np.mean([m.mean() for m in self.members], axis=0)

    def variance(self) -> np.ndarray:
        second = np.mean([m.variance() + m.mean() ** 2 for m in self.members], axis=0)
        return np.maximum(second - self.mean() ** 2, 0.0)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return np.mean([m.cdf(y) for m in self.members], axis=0)

    def quantile(self, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        # The mixture's quantile lies between its members' quantiles.
        each = np.stack([m.quantile(q) for m in self.members])
        return self._bisect_cdf(q, each.min(axis=0), each.max(axis=0))

    def mode(self) -> np.ndarray:
        """The most probable of the members' modes and of points between each two of the
        :data:`_PAIRED` most probable of them: where members overlap, the mixture's peak lies
        between their own peaks. The cost grows with the members, not with their pairs."""
        modes = np.stack([m.mode() for m in self.members])  # (M, n, d)
        scores = np.stack([self.log_prob(c) for c in modes])  # (M, n)
        best = np.argsort(-scores, axis=0)[:_PAIRED]  # (k, n)
        best = np.take_along_axis(modes, best[..., None], axis=0)  # (k, n, d)
        shares = np.linspace(0.0, 1.0, _BETWEEN + 2)[1:-1, None, None]
        between = [(1.0 - shares) * a + shares * b for a, b in itertools.combinations(best, 2)]
        if not between:
            return modes[0]
        candidates = np.concatenate(between)  # the members' own modes are scored already
        if self.discrete:  # stay on the support's lattice
            offset, spacing = self.lattice()
            candidates = offset + np.round((candidates - offset) / spacing) * spacing
        candidates = np.concatenate([modes, candidates])
        scores = np.concatenate([scores, [self.log_prob(c) for c in candidates[len(modes) :]]])
        return candidates[scores.argmax(axis=0), np.arange(self.batch_size)]

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> Distribution:
        return EqualMixture([m.affine(shift, scale) for m in self.members])

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        return EqualMixture(
            [m.with_temperature(temperature, sigma_temperature) for m in self.members]
        )
