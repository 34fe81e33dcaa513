"""Family ``discrete``: integer-valued targets, a mixture of logistics discretised to integers.

The probability of the integer ``k`` is the difference of a continuous mixture's CDF at
``k + 1/2`` and ``k - 1/2``, with ``K`` logistic components underneath; the masses sum to 1
over the integers, ``log_prob`` is a log-*mass* (not comparable with a log-density), samples
are integers and the CRPS takes the discrete form ``sum_k (F(k) - 1{y <= k})^2``. Several
outputs are independent given the component, as in the diagonal mixture.

probreg trains on standardised targets, where the integers sit on a lattice ``offset + spacing
* i`` (``offset = -mean / scale``, ``spacing = 1 / scale``). The layer keeps that lattice as
two non-trainable weights, set before training from the target's standardisation
(:meth:`DiscreteFamily.before_fit`), and emits them in every packed row, so the loss, the
numpy distribution and a saved model all know it. In data units the lattice is the integers.

Packed row (:func:`layout`): ``[log_weights (K) | means (K d) | scales (K d) | offset (d) |
spacing (d)]``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from probreg.distributions.base import Distribution
from probreg.distributions.mixture import LocationScaleMixture
from probreg.errors import UsageError
from probreg.families.base import Layout, MixtureFamily, mixture_layer
from probreg.families.gaussian_mixture import scale_params
from probreg.params import Param

#: Lattice points per row and coordinate that exact sums (moments, CRPS, mode) may use; beyond
#: it the distribution falls back to Sheppard-corrected continuous moments and sampled CRPS.
MAX_GRID = 2048
_TAIL = 25.0  # logistic tail mass beyond 25 scales: 1.4e-11


def layout(components: int, output_dim: int) -> Layout:
    """``[log_weights (K) | means (K, d) | scales (K, d) | offset (d) | spacing (d)]``."""
    k, d = components, output_dim
    return Layout(
        ("log_weights", (k,)),
        ("means", (k, d)),
        ("scales", (k, d)),
        ("offset", (d,)),
        ("spacing", (d,)),
    )


def log_prob(packed, y, components: int, output_dim: int):
    """``log P(Y = y)`` in ``keras.ops``, ``y`` rounded to the nearest lattice point: ``(n,)``.

    With ``a, b`` the standardised upper and lower cell edges, ``sigma(a) - sigma(b) =
    (e^a - e^b) / ((1 + e^a)(1 + e^b))``, so ``log`` of it is ``a + log(-expm1(b - a)) -
    softplus(a) - softplus(b)``: exact and finite in both tails, with no cancellation.
    """
    from keras import ops

    blocks = layout(components, output_dim).unpack(packed)
    means, scales = blocks["means"], blocks["scales"]
    y = ops.reshape(ops.cast(y, means.dtype), (-1, output_dim))
    offset, spacing = blocks["offset"], blocks["spacing"]
    point = offset + spacing * ops.round((y - offset) / spacing)  # (n, d)
    point, half = point[:, None, :], 0.5 * spacing[:, None, :]
    a = (point + half - means) / scales
    b = (point - half - means) / scales
    gap = ops.minimum(b - a, -1e-30)
    log_mass = a + ops.log(-ops.expm1(gap)) - ops.softplus(a) - ops.softplus(b)
    return ops.logsumexp(blocks["log_weights"] + ops.sum(log_mass, axis=-1), axis=-1)


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="probreg")
    class DiscreteMixtureDensity(mixture_layer()):
        """Project features ``(..., F)`` to packed discretised logistic mixture rows, plus the
        integer lattice in standardised units (two non-trainable weights, ``lattice_offset``
        and ``lattice_spacing``; 0 and 1 until :meth:`DiscreteFamily.before_fit` sets them)."""

        def make_layout(self) -> Layout:
            return layout(self.components, self.output_dim)

        def build(self, input_shape) -> None:
            super().build(input_shape)
            self.lattice_offset = self.add_weight(
                shape=(self.output_dim,), initializer="zeros", trainable=False, name="offset"
            )
            self.lattice_spacing = self.add_weight(
                shape=(self.output_dim,), initializer="ones", trainable=False, name="spacing"
            )

        def constrain(self, raw):
            blocks = super().constrain(raw)
            shape = ops.shape(raw["offset"])
            dtype = raw["offset"].dtype
            return {
                **blocks,
                "offset": ops.broadcast_to(ops.cast(self.lattice_offset, dtype), shape),
                "spacing": ops.broadcast_to(ops.cast(self.lattice_spacing, dtype), shape),
            }

    return DiscreteMixtureDensity


class LogisticMixture(LocationScaleMixture):
    """``n`` mixtures of ``K`` logistic components (diagonal) over ``R^d``: the continuous
    distribution under :class:`DiscretizedLogisticMixture`."""

    def _std_log_pdf(self, z, shapes):
        return -np.abs(z) - 2.0 * np.log1p(np.exp(-np.abs(z)))

    def _std_cdf(self, z, shapes):
        return special.expit(z)

    def _std_quantile(self, q, shapes):
        return special.logit(q)

    def _std_variance(self, shapes):
        return math.pi**2 / 3.0

    def _std_draws(self, rng, shapes, size):
        return rng.logistic(size=size)


def _snap(value: np.ndarray, target: float) -> np.ndarray:
    """``value`` with entries within float32 rounding of ``target`` set to it exactly (the
    layer stores the lattice in float32)."""
    return np.where(np.abs(value - target) < 1e-5 * (1.0 + abs(target)), target, value)


class DiscretizedLogisticMixture(Distribution):
    """A logistic mixture discretised to the lattice ``offset + spacing * i`` per coordinate.

    ``P(Y = t) = sum_k w_k prod_j [G_kj(t_j + h_j / 2) - G_kj(t_j - h_j / 2)]`` with ``G_kj``
    the logistic CDFs and ``h`` the spacing. In data units the lattice is the integers.

    Args:
        continuous: the :class:`LogisticMixture` underneath.
        offset, spacing: ``(d,)`` the lattice (spacing positive).
    """

    discrete = True

    def __init__(self, continuous: LogisticMixture, offset, spacing) -> None:
        d = continuous.event_dim
        self.continuous = continuous
        offset = np.broadcast_to(np.asarray(offset, np.float64), (d,))
        spacing = np.broadcast_to(np.asarray(spacing, np.float64), (d,))
        if np.any(spacing <= 0):
            raise ValueError("DiscretizedLogisticMixture: the lattice spacing must be positive")
        # In data units the lattice is the integers: snap away the rounding of the affine map.
        self.offset = _snap(offset - np.round(offset), 0.0) + np.round(offset)
        self.spacing = _snap(spacing, 1.0)

    @classmethod
    def from_packed(cls, packed: np.ndarray, components: int, output_dim: int):
        packed = np.asarray(packed, np.float64)
        rows = layout(components, output_dim)
        if packed.ndim != 2 or packed.shape[1] != rows.size:
            raise ValueError(f"packed discrete rows need {rows.size} columns, got {packed.shape}")
        b = rows.unpack(packed)
        return cls(
            LogisticMixture(b["log_weights"], b["means"], b["scales"]),
            b["offset"][0],
            b["spacing"][0],
        )

    layout = staticmethod(layout)

    @property
    def batch_size(self) -> int:
        return self.continuous.batch_size

    @property
    def event_dim(self) -> int:
        return self.continuous.event_dim

    def lattice(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, spacing)``, each ``(d,)``: the support is ``offset + spacing * i``."""
        return self.offset, self.spacing

    def _index(self, y: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(y, np.float64) - self.offset) / self.spacing)

    def _point(self, index: np.ndarray) -> np.ndarray:
        return self.offset + self.spacing * index

    def _component_log_mass(self, y: np.ndarray) -> np.ndarray:
        """``log P_k(Y_j = t_j)`` per row, component and coordinate: ``(n, K, d)``."""
        c = self.continuous
        t = self._point(self._index(y)).reshape(self.batch_size, 1, self.event_dim)
        half = 0.5 * self.spacing
        a = (t + half - c.means) / c.scales
        b = (t - half - c.means) / c.scales
        return a + np.log(-np.expm1(b - a)) - np.logaddexp(0, a) - np.logaddexp(0, b)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        """Log-*mass* of ``y`` rounded to the nearest lattice point, ``(n,)``."""
        joint = self.continuous.log_weights + self._component_log_mass(y).sum(axis=-1)
        return special.logsumexp(joint, axis=1)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        # Rounding a continuous draw to its cell gives each point exactly its cell's mass.
        return self._point(self._index(self.continuous.sample(rng, num_samples)))

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """``P(Y_j <= y_j)``: a step function, constant between lattice points."""
        y = np.asarray(y, np.float64).reshape(self.batch_size, self.event_dim)
        index = np.floor((y - self.offset) / self.spacing + 1e-9)
        return self.continuous.cdf(self._point(index) + 0.5 * self.spacing)

    def quantile(self, q: float) -> np.ndarray:
        """The smallest lattice point ``t`` with ``cdf(t) >= q``."""
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        x = self.continuous.quantile(q)
        index = np.ceil((x - self.offset) / self.spacing - 0.5 - 1e-9)
        # Guard the edge: step down while the point below already reaches q.
        below = self.cdf(self._point(index - 1)) >= q
        return self._point(np.where(below, index - 1, index))

    # --- exact sums over the lattice ----------------------------------------------------------
    def _grid(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Lattice indices ``(n, d, G)`` covering every component's ``+-25`` scales and the
        marginal masses on them, or ``None`` when that takes more than :data:`MAX_GRID` points."""
        c = self.continuous
        low = ((c.means - _TAIL * c.scales).min(axis=1) - self.offset) / self.spacing
        high = ((c.means + _TAIL * c.scales).max(axis=1) - self.offset) / self.spacing
        low, high = np.floor(low), np.ceil(high)  # (n, d)
        points = int((high - low).max()) + 1
        if points > MAX_GRID:
            return None
        index = low[..., None] + np.arange(points)  # (n, d, G)
        t = self._point_nd(index)
        half = (0.5 * self.spacing)[None, :, None, None]
        mu, s = c.means.transpose(0, 2, 1)[..., None, :], c.scales.transpose(0, 2, 1)[..., None, :]
        upper = special.expit((t[..., None] + half - mu) / s)  # (n, d, G, K)
        lower = special.expit((t[..., None] - half - mu) / s)
        mass = np.einsum("nk,ndgk->ndg", c.weights, np.maximum(upper - lower, 0.0))
        return index, mass

    def _point_nd(self, index: np.ndarray) -> np.ndarray:
        return self.offset[None, :, None] + self.spacing[None, :, None] * index

    def mean(self) -> np.ndarray:
        grid = self._grid()
        if grid is None:  # cells much finer than the components: the continuous mean
            return self.continuous.mean()
        index, mass = grid
        return (self._point_nd(index) * mass).sum(axis=-1) / mass.sum(axis=-1)

    def variance(self) -> np.ndarray:
        grid = self._grid()
        if grid is None:  # Sheppard's correction: rounding adds h^2 / 12
            return self.continuous.variance() + self.spacing**2 / 12.0
        index, mass = grid
        t = self._point_nd(index)
        total = mass.sum(axis=-1)
        mean = (t * mass).sum(axis=-1) / total
        return np.maximum((t**2 * mass).sum(axis=-1) / total - mean**2, 0.0)

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The discrete CRPS ``sum_i h (F(t_i) - 1{y <= t_i})^2`` over the lattice, averaged over
        coordinates; estimated from draws when the lattice is too fine to sum."""
        grid = self._grid()
        if grid is None:
            return Distribution.crps(self, y, rng)
        index, mass = grid
        y_index = self._index(np.asarray(y, np.float64).reshape(self.batch_size, self.event_dim))
        cdf = np.cumsum(mass, axis=-1)
        inside = ((y_index[..., None] <= index) - cdf) ** 2
        # Lattice points outside the grid where the indicator and F disagree (F is 0 or 1 there).
        first, last = index[..., 0], index[..., -1]
        outside = np.maximum(first - y_index, 0.0) + np.maximum(y_index - last, 0.0)
        return (self.spacing * (inside.sum(axis=-1) + outside)).mean(axis=-1)

    def mode(self) -> np.ndarray:
        """The most probable of: each component's lattice point, each coordinate's most
        probable point, and the lattice points around the continuous mixture's mode (where
        overlapping components peak between their locations)."""
        c = self.continuous
        candidates = [self._point(self._index(c.means[:, k, :])) for k in range(c.components)]
        peak = self._index(c.mode())
        d = self.event_dim
        steps = itertools.product((-1, 0, 1), repeat=d) if d <= 3 else [(0,) * d]
        candidates += [self._point(peak + np.asarray(step)) for step in steps]
        grid = self._grid()
        if grid is not None:  # each coordinate's most probable point
            index, mass = grid
            best = np.take_along_axis(index, mass.argmax(axis=-1)[..., None], axis=-1)[..., 0]
            candidates.append(self._point(best))
        stacked = np.stack(candidates)  # (C, n, d)
        scores = np.stack([self.log_prob(p) for p in stacked])
        return stacked[scores.argmax(axis=0), np.arange(self.batch_size)]

    def params(self) -> dict[str, np.ndarray]:
        return self.continuous.params()

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        return self.continuous.param_axes()

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> Distribution:
        shift = np.broadcast_to(np.asarray(shift, np.float64), (self.event_dim,))
        scale = np.broadcast_to(np.asarray(scale, np.float64), (self.event_dim,))
        if np.any(scale <= 0):
            raise ValueError("affine scale must be positive")
        return type(self)(
            self.continuous.affine(shift, scale), shift + scale * self.offset, scale * self.spacing
        )

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        return type(self)(
            self.continuous.with_temperature(temperature, sigma_temperature),
            self.offset,
            self.spacing,
        )

    @classmethod
    def combine(cls, members: Sequence[DiscretizedLogisticMixture]) -> Distribution:
        """The equal-weight mixture of ensemble members on the same lattice, exactly."""
        if len(members) == 1:
            return members[0]
        continuous = LogisticMixture.combine([m.continuous for m in members])
        return cls(continuous, members[0].offset, members[0].spacing)


class DiscreteFamily(MixtureFamily):
    """Integer targets: a mixture of K logistics discretised to the integers (log-mass)."""

    name = "discrete"
    params = (
        Param("components", "int", 5, "mixture components K", minimum=1, maximum=1000),
        *scale_params(),
    )
    distribution_class = DiscretizedLogisticMixture
    test_specs = ("discrete:components=3",)
    discrete = True

    layer_factory = staticmethod(layer_class)
    density = staticmethod(log_prob)

    def before_fit(self, model, target_mean: np.ndarray, target_scale: np.ndarray) -> None:
        """Store the integers' lattice in standardised units in every layer of this family."""
        target_mean = np.asarray(target_mean, np.float64)
        target_scale = np.asarray(target_scale, np.float64)
        for layer in model.layers:
            if isinstance(layer, layer_class()):
                layer.lattice_offset.assign((-target_mean / target_scale).astype("float32"))
                layer.lattice_spacing.assign((1.0 / target_scale).astype("float32"))
