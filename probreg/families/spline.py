"""Family ``spline``: a monotone rational-quadratic spline flow (Durkan et al., 2019).

Each target coordinate ``y`` maps to a standard normal ``z = f(y)`` through a monotone
rational-quadratic spline on ``[-bound, bound]`` (standardised units) whose bin widths, bin
heights and inner knot slopes are predicted per row; outside the interval ``f`` is the identity
(linear tails, slope 1 at both ends, so ``f`` is continuously differentiable). Then
``log p(y) = log phi(f(y)) + log f'(y)``, ``cdf(y) = Phi(f(y))`` and ``quantile(q) =
f^-1(Phi^-1(q))`` are exact: the spline inverts in closed form (a quadratic per bin), and
``sample`` pushes normal draws through the inverse. No number of components to choose: the
spline's ``bins`` only set how much detail it can draw. Several outputs are independent
coordinates, each with its own spline; it is meant for one.

Packed row (:func:`layout`): ``[widths (d, B) | heights (d, B) | slopes (d, B - 1)]``: bin
widths and heights (each summing to ``2 bound``) and the positive slopes at the inner knots.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from probreg.distributions.base import Distribution
from probreg.errors import UsageError
from probreg.families.base import Family, Layout, check_layer_arguments, projection_layer
from probreg.params import Param

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: Smallest bin width and height, as a share of the interval. Every bin a multi-modal density
#: leaves empty between its modes still spans this share of the interval in ``z``, and so keeps
#: some probability: the old floor (``SAVED_MIN_BIN``, what layers saved before ``min_bin``
#: existed load with) cost the spiral about 0.01 nats. A floor of 1e-5 made training go astray
#: on two spiral seeds in three (docs/families.md); much below that a bin gets narrower than
#: float32 resolves near the interval's ends.
SAVED_MIN_BIN = 1e-3
MIN_BIN = SAVED_MIN_BIN  # the fixed floor's old name, kept for code that imports it
DEFAULT_MIN_BIN = 1e-4
MIN_SLOPE = 1e-3
# softplus(_SLOPE_SHIFT) = 1 - MIN_SLOPE: the spline starts as the identity.
_SLOPE_SHIFT = math.log(math.expm1(1.0 - MIN_SLOPE))


def layout(bins: int, output_dim: int) -> Layout:
    """``[widths (d, B) | heights (d, B) | slopes (d, B - 1)]``."""
    b, d = bins, output_dim
    return Layout(("widths", (d, b)), ("heights", (d, b)), ("slopes", (d, b - 1)))


def _knots(ops, widths, heights, slopes, bound):
    """Knot positions in ``y`` and ``z`` and the slopes at every knot (ends: 1)."""
    ones = ops.ones_like(slopes[..., :1])
    zero = ops.zeros_like(widths[..., :1])
    x = ops.concatenate([zero, ops.cumsum(widths, axis=-1)], axis=-1) - bound
    z = ops.concatenate([zero, ops.cumsum(heights, axis=-1)], axis=-1) - bound
    return x, z, ops.concatenate([ones, slopes, ones], axis=-1)


def log_prob(packed, y, bins: int, output_dim: int, bound: float):
    """``log p(y)`` in ``keras.ops``: ``(n,)``. Targets outside the interval use the identity."""
    from keras import ops

    blocks = layout(bins, output_dim).unpack(packed)
    widths, heights = blocks["widths"], blocks["heights"]
    x_knots, z_knots, slopes = _knots(ops, widths, heights, blocks["slopes"], bound)
    y = ops.reshape(ops.cast(y, widths.dtype), (-1, output_dim))
    inside = ops.logical_and(y > -bound, y < bound)
    ys = ops.clip(y, -bound, bound)
    index = ops.sum(ops.cast(ys[..., None] >= x_knots[..., 1:bins], "int32"), axis=-1)
    onehot = ops.one_hot(index, bins, dtype=widths.dtype)

    def pick(values):
        return ops.sum(onehot * values, axis=-1)

    w, h = pick(widths), pick(heights)
    x0, z0 = pick(x_knots[..., :bins]), pick(z_knots[..., :bins])
    d0, d1 = pick(slopes[..., :bins]), pick(slopes[..., 1:])
    xi = ops.clip((ys - x0) / w, 0.0, 1.0)
    s = h / w
    t = xi * (1.0 - xi)
    denominator = s + (d1 + d0 - 2.0 * s) * t
    z_in = z0 + h * (s * xi * xi + d0 * t) / denominator
    log_slope = (
        2.0 * ops.log(s)
        + ops.log(d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi))
        - 2.0 * ops.log(denominator)
    )
    z = ops.where(inside, z_in, y)
    log_slope = ops.where(inside, log_slope, ops.zeros_like(log_slope))
    return ops.sum(-0.5 * ops.square(z) - _HALF_LOG_2PI + log_slope, axis=-1)


@functools.cache
def layer_class() -> type:
    """The Keras layer class (made on first use, so importing this file needs no Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="probreg")
    class RationalQuadraticSpline(projection_layer()):
        """Project features ``(..., F)`` to packed spline rows: softmax bin widths and heights
        (each at least ``min_bin`` of the interval, summing to ``2 bound``) and inner slopes
        ``MIN_SLOPE + softplus(raw + shift)``, which start at 1 (the identity)."""

        def __init__(
            self,
            output_dim: int,
            bins: int = 32,
            bound: float = 4.0,
            min_bin: float = SAVED_MIN_BIN,
            **kwargs,
        ):
            super().__init__(**kwargs)
            check_layer_arguments("RationalQuadraticSpline", output_dim, bins=bins)
            if not (isinstance(min_bin, int | float) and 0 < min_bin < 0.5):
                raise ValueError(
                    f"RationalQuadraticSpline: min_bin must be in (0, 0.5), got {min_bin!r}"
                )
            if bins < 2 or bins * min_bin >= 1:
                raise ValueError(
                    f"RationalQuadraticSpline: bins must be 2 to {math.ceil(1 / min_bin) - 1} "
                    f"(bins x min_bin < 1), got {bins}"
                )
            if not (isinstance(bound, int | float) and bound > 0):
                raise ValueError(f"RationalQuadraticSpline: bound must be > 0, got {bound!r}")
            self.output_dim, self.bins, self.bound = int(output_dim), int(bins), float(bound)
            self.min_bin = float(min_bin)
            self.project_to(layout(self.bins, self.output_dim))

        def constrain(self, raw):
            d, b, floor = self.output_dim, self.bins, self.min_bin

            def bins_of(values):  # a softmax per coordinate, over its own b columns
                shares = [
                    floor + (1.0 - floor * b) * ops.softmax(values[..., j * b : (j + 1) * b])
                    for j in range(d)
                ]
                return 2.0 * self.bound * ops.concatenate(shares, axis=-1)

            slopes = MIN_SLOPE + ops.softplus(raw["slopes"] + _SLOPE_SHIFT)
            return {
                "widths": bins_of(raw["widths"]),
                "heights": bins_of(raw["heights"]),
                "slopes": slopes,
            }

        def get_config(self) -> dict:
            return {
                **super().get_config(),
                "output_dim": self.output_dim,
                "bins": self.bins,
                "bound": self.bound,
                "min_bin": self.min_bin,
            }

    return RationalQuadraticSpline


class SplineFlow(Distribution):
    """``n`` distributions over ``R^d``: independent coordinates, each ``f^-1(Z)`` for a
    monotone rational-quadratic spline ``f`` on ``[-bound, bound]`` (identity outside) and
    ``Z`` standard normal.

    Args:
        widths, heights: ``(n, d, B)`` positive bin widths and heights, each summing to
            ``2 bound`` over the last axis.
        slopes: ``(n, d, B - 1)`` positive slopes at the inner knots.
        bound: the half-width of the spline's interval.
    """

    def __init__(self, widths, heights, slopes, bound: float) -> None:
        widths = np.asarray(widths, np.float64)
        heights = np.asarray(heights, np.float64)
        slopes = np.asarray(slopes, np.float64)
        if widths.ndim != 3 or heights.shape != widths.shape:
            raise ValueError("SplineFlow wants widths and heights of shape (n, d, B)")
        if slopes.shape != (*widths.shape[:2], widths.shape[2] - 1):
            raise ValueError("SplineFlow wants slopes of shape (n, d, B - 1)")
        if not (np.all(widths > 0) and np.all(heights > 0) and np.all(slopes > 0)):
            raise ValueError("SplineFlow widths, heights and slopes must be positive")
        self.bound = float(bound)
        # Renormalise (float32 rows): the knots then end exactly at +-bound.
        self.widths = 2 * self.bound * widths / widths.sum(-1, keepdims=True)
        self.heights = 2 * self.bound * heights / heights.sum(-1, keepdims=True)
        self.x_knots, self.z_knots, self.slopes = _knots(np, self.widths, self.heights, slopes, 0)
        self.x_knots -= self.bound
        self.z_knots -= self.bound
        self.x_knots[..., -1] = self.z_knots[..., -1] = self.bound

    @classmethod
    def from_packed(cls, packed: np.ndarray, bins: int, output_dim: int, bound: float):
        packed = np.asarray(packed, np.float64)
        rows = layout(bins, output_dim)
        if packed.ndim != 2 or packed.shape[1] != rows.size:
            raise ValueError(f"packed spline rows need {rows.size} columns, got {packed.shape}")
        b = rows.unpack(packed)
        return cls(b["widths"], b["heights"], b["slopes"], bound)

    @property
    def batch_size(self) -> int:
        return self.widths.shape[0]

    @property
    def event_dim(self) -> int:
        return self.widths.shape[1]

    @property
    def bins(self) -> int:
        return self.widths.shape[2]

    def _bin(self, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Index of the bin holding each value ``(n, d)`` (values clipped to the interval)."""
        inner = knots[..., 1 : self.bins]
        return (values[..., None] >= inner).sum(axis=-1)

    def _pick(self, index: np.ndarray):
        def take(values):
            return np.take_along_axis(values, index[..., None], axis=-1)[..., 0]

        return (
            take(self.widths),
            take(self.heights),
            take(self.x_knots),
            take(self.z_knots),
            take(self.slopes[..., :-1]),
            take(self.slopes[..., 1:]),
        )

    def forward(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``z = f(y)`` and ``log f'(y)``, each ``(n, d)``."""
        y = np.asarray(y, np.float64).reshape(self.batch_size, self.event_dim)
        inside = np.abs(y) < self.bound
        ys = np.clip(y, -self.bound, self.bound)
        w, h, x0, z0, d0, d1 = self._pick(self._bin(self.x_knots, ys))
        xi = np.clip((ys - x0) / w, 0.0, 1.0)
        s, t = h / w, xi * (1 - xi)
        denominator = s + (d1 + d0 - 2 * s) * t
        z = z0 + h * (s * xi**2 + d0 * t) / denominator
        log_slope = (
            2 * np.log(s)
            + np.log(d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2)
            - 2 * np.log(denominator)
        )
        return np.where(inside, z, y), np.where(inside, log_slope, 0.0)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """``y = f^-1(z)`` in closed form (the root of one quadratic per bin), ``(n, d)``."""
        z = np.asarray(z, np.float64)
        inside = np.abs(z) < self.bound
        zs = np.clip(z, -self.bound, self.bound)
        w, h, x0, z0, d0, d1 = self._pick(self._bin(self.z_knots, zs))
        s, r = h / w, zs - z0
        a = h * (s - d0) + r * (d1 + d0 - 2 * s)
        b = h * d0 - r * (d1 + d0 - 2 * s)
        c = -s * r
        root = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            xi = np.where(c == 0, 0.0, 2 * c / (-b - root))
        y = x0 + w * np.clip(xi, 0.0, 1.0)
        return np.where(inside, y, z)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        z, log_slope = self.forward(y)
        return (-0.5 * z**2 - _HALF_LOG_2PI + log_slope).sum(axis=-1)

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        z = rng.standard_normal((num_samples, self.batch_size, self.event_dim))
        return np.stack([self.inverse(draw) for draw in z])

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return special.ndtr(self.forward(y)[0])

    def quantile(self, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        return self.inverse(np.full((self.batch_size, self.event_dim), special.ndtri(q)))

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """``E[Y]`` and ``E[Y^2]`` per coordinate: Gauss-Legendre in ``z`` on every bin (the
        inverse is smooth inside a bin), exact normal integrals over the identity tails."""
        nodes, weights = np.polynomial.legendre.leggauss(32)
        low, high = self.z_knots[..., :-1], self.z_knots[..., 1:]  # (n, d, B)
        half = 0.5 * (high - low)
        first = np.zeros((self.batch_size, self.event_dim))
        second = np.zeros_like(first)
        for node, weight in zip(nodes, weights, strict=True):
            z = low + half * (node + 1.0)  # (n, d, B)
            y = np.stack([self.inverse(z[..., k]) for k in range(self.bins)], axis=-1)
            mass = weight * half * np.exp(-0.5 * z**2 - _HALF_LOG_2PI)
            first += (y * mass).sum(axis=-1)
            second += (y**2 * mass).sum(axis=-1)
        b = self.bound
        tail_density, tail_mass = math.exp(-0.5 * b * b - _HALF_LOG_2PI), special.ndtr(-b)
        # Beyond +-b, y = z: int z phi = +-phi(b); int z^2 phi = b phi(b) + Phi(-b), each side.
        return first, second + 2 * (b * tail_density + tail_mass)

    def mean(self) -> np.ndarray:
        return self._moments()[0]

    def variance(self) -> np.ndarray:
        first, second = self._moments()
        return np.maximum(second - first**2, 0.0)

    def mode(self) -> np.ndarray:
        """Each coordinate's highest density point on a fine grid of every bin (coordinates are
        independent, so the joint mode is the coordinates' modes)."""
        grid = np.linspace(0.0, 1.0, 65)
        best, best_score = None, None
        for k in range(self.bins):
            for u in grid:
                y = self.x_knots[..., k] + u * self.widths[..., k]  # (n, d)
                z, log_slope = self.forward(y)
                score = -0.5 * z**2 + log_slope
                if best is None:
                    best, best_score = y, score
                else:
                    better = score > best_score
                    best = np.where(better, y, best)
                    best_score = np.maximum(score, best_score)
        return best

    def params(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean(),
            "variance": self.variance(),
            "width": self.widths,
            "height": self.heights,
        }

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        # width and height (output, bin) are left undeclared: numbered flat, output-major.
        return {"mean": ("output",), "variance": ("output",)}


class SplineFamily(Family):
    """Rational-quadratic spline flow to a normal: any 1-D shape, exact cdf and quantile."""

    name = "spline"
    params = (
        Param(
            "bins",
            "int",
            32,
            "spline bins: more draws finer detail (not a number of modes to choose)",
            minimum=2,
            maximum=999,
        ),
        Param(
            "bound",
            "float",
            4.0,
            "half-width of the spline's interval, in standardised target units; outside it "
            "the map is the identity (normal tails)",
            minimum=0.5,
            maximum=100.0,
        ),
        Param(
            "min_bin",
            "float",
            DEFAULT_MIN_BIN,
            "smallest bin width and height, as a share of the interval (a bin left empty "
            "between two modes still spans this share in z); lower floors train less "
            "steadily, and below 1e-5 float32 loses precision near the interval's ends",
            minimum=1e-6,
            maximum=0.01,
        ),
    )
    test_specs = ("spline:bins=8",)

    def check_options(self) -> None:
        super().check_options()
        bins, min_bin = self.options["bins"], self.options["min_bin"]
        if bins * min_bin >= 1:
            raise UsageError(
                f"spline: bins x min_bin must be below 1 (every bin at least min_bin of the "
                f"interval), got {bins} x {min_bin:g}"
            )

    def layout(self, output_dim: int) -> Layout:
        return layout(self.options["bins"], output_dim)

    def layer_class(self) -> type:
        return layer_class()

    def layer(self, output_dim: int, name: str | None = None):
        o = self.options
        return layer_class()(output_dim, o["bins"], o["bound"], o["min_bin"], name=name)

    def log_prob(self, params, y, output_dim: int):
        o = self.options
        return log_prob(params, y, o["bins"], output_dim, o["bound"])

    def distribution(self, params: np.ndarray, output_dim: int) -> Distribution:
        o = self.options
        return SplineFlow.from_packed(params, o["bins"], output_dim, o["bound"])
