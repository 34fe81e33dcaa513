"""Mixtures of location-scale components with diagonal scales: the shared numpy machinery.

A component is ``mean + scale * Z`` per coordinate, ``Z`` a standard variable (normal,
Student-t, ...) with optional per-component shape parameters such as degrees of freedom.
Subclasses supply ``Z``'s log-density, CDF, quantile, variance and draws; weights, moments,
ancestral sampling, quantile brackets, modes, ensembles, temperatures and affine maps are here.
"""

from __future__ import annotations

import functools

import numpy as np

from probreg.distributions.base import Distribution
from probreg.errors import UsageError


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """``log(sum(exp(values)))`` over the last axis, kept (plain numpy: scipy's overhead
    matters when predicting one row)."""
    top = values.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return top + np.log(np.exp(values - top).sum(axis=-1, keepdims=True))


def _log_normalise(log_weights: np.ndarray) -> np.ndarray:
    """Log-weights that sum to one (in probability) over the last axis."""
    return log_weights - _logsumexp(log_weights)


class MixtureShape:
    """Sizes and weights of a mixture that stores ``log_weights`` ``(n, K)`` and ``means``
    ``(n, K, d)``; shared by every mixture distribution."""

    log_weights: np.ndarray
    means: np.ndarray

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


class LocationScaleMixture(MixtureShape, Distribution):
    """``n`` mixtures of ``K`` components ``mean + scale * Z`` over ``R^d``.

    Args:
        log_weights: ``(n, K)`` log mixture weights; normalised here, so logits work too.
        means: ``(n, K, d)`` component locations.
        scales: ``(n, K, d)`` component scales, all positive.
        **shapes: ``(n, K)`` per-component shape parameters of ``Z`` (e.g. ``df``).
    """

    #: Names of the per-component shape parameters the subclass needs.
    shape_names: tuple[str, ...] = ()

    def __init__(
        self, log_weights: np.ndarray, means: np.ndarray, scales: np.ndarray, **shapes: np.ndarray
    ) -> None:
        log_weights = np.asarray(log_weights, np.float64)
        means = np.asarray(means, np.float64)
        scales = np.asarray(scales, np.float64)
        name = type(self).__name__
        if means.ndim != 3 or scales.shape != means.shape or log_weights.shape != means.shape[:2]:
            raise ValueError(
                f"{name} wants log_weights (n, K), means (n, K, d) and scales (n, K, d); "
                f"got {log_weights.shape}, {means.shape}, {scales.shape}"
            )
        if not np.all(scales > 0):
            raise ValueError(f"{name} scales must be positive")
        if set(shapes) != set(self.shape_names):
            raise ValueError(
                f"{name} wants shape parameters {self.shape_names}, got {tuple(shapes)}"
            )
        self.shapes = {k: np.asarray(v, np.float64) for k, v in shapes.items()}
        for key, value in self.shapes.items():
            if value.shape != log_weights.shape:
                raise ValueError(f"{name} {key} must be (n, K) = {log_weights.shape}")
        self.log_weights = _log_normalise(log_weights)
        self.means = means
        self.scales = scales

    # --- the standard variable Z: subclasses implement these, elementwise ----------------------
    def _std_log_pdf(self, z: np.ndarray, shapes: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _std_cdf(self, z: np.ndarray, shapes: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _std_quantile(self, q: float, shapes: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _std_variance(self, shapes: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _std_draws(
        self, rng: np.random.Generator, shapes: dict[str, np.ndarray], size: tuple[int, ...]
    ) -> np.ndarray:
        raise NotImplementedError

    # --- shared machinery -----------------------------------------------------------------------
    @staticmethod
    def layout(components: int, output_dim: int):
        """The family's packed :class:`~probreg.families.base.Layout` (set by subclasses)."""
        raise NotImplementedError

    @classmethod
    def from_packed(cls, packed: np.ndarray, components: int, output_dim: int):
        """Build from packed rows ``(n, size)`` as the family's Keras layer emits them."""
        packed = np.asarray(packed, np.float64)
        rows = cls.layout(components, output_dim)
        if packed.ndim != 2 or packed.shape[1] != rows.size:
            raise ValueError(
                f"packed {cls.__name__} rows need {rows.size} columns, got {packed.shape}"
            )
        blocks = rows.unpack(packed)
        return cls(
            blocks["log_weights"],
            blocks["means"],
            blocks["scales"],
            **{k: blocks[k] for k in cls.shape_names},
        )

    def _rebuild(self, log_weights, means, scales, shapes=None, normalised=True):
        """The same kind of mixture with new parameters derived from valid ones: no checks, and
        no re-normalising of weights that already are (``affine`` and friends stay cheap)."""
        made = object.__new__(type(self))
        made.log_weights = log_weights if normalised else _log_normalise(log_weights)
        made.means, made.scales = means, scales
        made.shapes = self.shapes if shapes is None else shapes
        return made

    def _component_shapes(self) -> dict[str, np.ndarray]:
        """Shape parameters broadcast against ``(n, K, d)``."""
        return {k: v[:, :, None] for k, v in self.shapes.items()}

    def _component_log_prob(self, y: np.ndarray) -> np.ndarray:
        """``log p_k(y)`` for every row and component: ``(n, K)``."""
        y = np.asarray(y, np.float64).reshape(self.batch_size, 1, self.event_dim)
        z = (y - self.means) / self.scales
        return (self._std_log_pdf(z, self._component_shapes()) - np.log(self.scales)).sum(axis=-1)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        return _logsumexp(self.log_weights + self._component_log_prob(y))[:, 0]

    @functools.cached_property
    def _cumulative_weights(self) -> np.ndarray:
        """``(K, n)`` running sums of the weights, computed once per distribution: drawing
        again (pictures, ``predict --samples``, a sampler per seed) skips the ``exp``.
        Components run along the first axis, so each comparison with a row of uniforms runs
        over ``n`` contiguous values (about 3x faster than over the ``K`` of an ``(n, K)``)."""
        return np.ascontiguousarray(np.cumsum(self.weights, axis=1).T)

    def _choose(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        """Component index of each draw, ``(s, n)``: one uniform against the cumulative weights."""
        cumulative = self._cumulative_weights
        u = rng.random((num_samples, 1, self.batch_size)) * cumulative[-1]
        # Counting with a float32 product is about 3x faster than a bool ``sum`` (which widens
        # to int64) and exact for any realistic number of components (< 2**24).
        below = np.ones(self.components, np.float32) @ (u > cumulative).astype(np.float32)
        return np.minimum(below.astype(np.intp), self.components - 1)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        # Vectorised ancestral sampling: no Python loop over rows or draws. The chosen
        # components are gathered by flat index, (row, k) -> row * K + k: faster than 2-D.
        flat = np.arange(self.batch_size) * self.components + self._choose(rng, num_samples)

        def chosen(v: np.ndarray) -> np.ndarray:  # (n, K, ...) -> (s, n, ...)
            return np.take(v.reshape(-1, *v.shape[2:]), flat, axis=0)

        shapes = {k: chosen(v)[..., None] for k, v in self.shapes.items()}  # (s, n, 1)
        z = self._std_draws(rng, shapes, (num_samples, self.batch_size, self.event_dim))
        return chosen(self.means) + chosen(self.scales) * z

    def mean(self) -> np.ndarray:
        return np.einsum("nk,nkd->nd", self.weights, self.means)

    def variance(self) -> np.ndarray:
        spread = self.scales**2 * self._std_variance(self._component_shapes())
        second = np.einsum("nk,nkd->nd", self.weights, spread + self.means**2)
        return np.maximum(second - self.mean() ** 2, 0.0)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64).reshape(self.batch_size, 1, self.event_dim)
        z = (y - self.means) / self.scales
        return np.einsum("nk,nkd->nd", self.weights, self._std_cdf(z, self._component_shapes()))

    def quantile(self, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        # Every quantile of a mixture lies between the smallest and largest component quantile.
        component = self.means + self._std_quantile(q, self._component_shapes()) * self.scales
        return self._bisect_cdf(q, component.min(axis=1), component.max(axis=1))

    def _std_shift_weight(self, z: np.ndarray, shapes: dict[str, np.ndarray]) -> np.ndarray:
        """``h(z)`` with ``d/dz log p_Z(z) = -z h(z)``: 1 for a normal; subclasses override."""
        return np.ones_like(z)

    def mode(self, iterations: int = 30, starts: int = 20) -> np.ndarray:
        """The highest mode found by fixed-point ascent from the locations of the ``starts``
        heaviest components of each row.

        Each step moves ``x`` to ``sum_k c_k m_k / sum_k c_k`` with
        ``c_k = p_k(x) h(z_k) / s_k^2``, which is where the gradient of the mixture's log-density
        vanishes (mean shift, Carreira-Perpinan 2000, for Gaussians); the best end point wins.
        Capping the starts keeps large ensembles (``members x components``) affordable.
        """
        shapes = self._component_shapes()
        rows = np.arange(self.batch_size)
        order = np.argsort(-self.log_weights, axis=1)[:, :starts]
        best, best_score = None, None
        for j in range(order.shape[1]):
            x = self.means[rows, order[:, j]]
            for _ in range(iterations):
                joint = self.log_weights + self._component_log_prob(x)
                r = np.exp(joint - joint.max(axis=1, keepdims=True))[:, :, None]
                z = (x[:, None, :] - self.means) / self.scales
                c = r * self._std_shift_weight(z, shapes) / self.scales**2
                x = (c * self.means).sum(axis=1) / c.sum(axis=1)
            score = self.log_prob(x)
            if best is None:
                best, best_score = x, score
            else:
                better = score > best_score
                best = np.where(better[:, None], x, best)
                best_score = np.maximum(score, best_score)
        return best

    def params(self) -> dict[str, np.ndarray]:
        return {"weight": self.weights, "mean": self.means, "scale": self.scales, **self.shapes}

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        pair = ("component", "output")
        return {
            "weight": ("component",),
            "mean": pair,
            "scale": pair,
            **{k: ("component",) for k in self.shapes},
        }

    @classmethod
    def combine(cls, mixtures: list[LocationScaleMixture]) -> LocationScaleMixture:
        """The equal-weight mixture of several mixtures (an ensemble's predictive)."""
        if len(mixtures) == 1:
            return mixtures[0]
        shift = np.log(len(mixtures))
        return mixtures[0]._rebuild(
            np.concatenate([m.log_weights - shift for m in mixtures], axis=1),
            np.concatenate([m.means for m in mixtures], axis=1),
            np.concatenate([m.scales for m in mixtures], axis=1),
            {k: np.concatenate([m.shapes[k] for m in mixtures], axis=1) for k in cls.shape_names},
        )

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        """Divide the log-weights by ``temperature``; multiply every scale by ``sigma_temperature``.

        ``temperature -> 0`` always picks the heaviest component; ``temperature = 1`` keeps the
        weights; large values make the components equally likely. ``sigma_temperature = 0`` would
        collapse each component to its location, so it must be positive.
        """
        if temperature <= 0 or sigma_temperature <= 0:
            raise UsageError("temperature and sigma_temperature must be positive")
        if temperature == 1.0 and sigma_temperature == 1.0:
            return self
        return self._rebuild(
            self.log_weights / temperature,
            self.means,
            self.scales * sigma_temperature,
            normalised=False,
        )

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> Distribution:
        shift = np.asarray(shift, np.float64)
        scale = np.asarray(scale, np.float64)
        return self._rebuild(self.log_weights, shift + scale * self.means, scale * self.scales)

    def __getitem__(self, rows: slice | np.ndarray) -> LocationScaleMixture:
        return self._rebuild(
            self.log_weights[rows],
            self.means[rows],
            self.scales[rows],
            {k: v[rows] for k, v in self.shapes.items()},
        )
