"""Family ``spline``: a monotone rational-quadratic spline flow (Durkan et al., 2019).

Each target coordinate ``y`` is shifted and scaled per row (``affine``: ``u = (y - loc) /
scale``, so the spline's bins sit where that row's density is, however narrow), then maps to
a standard normal ``z = f(u)`` through a monotone rational-quadratic spline on ``[-bound, bound]``
whose bin widths, bin heights and inner knot slopes are predicted per row; outside the
interval ``f`` is the identity (linear tails, slope 1 at both ends, so ``f`` is continuously
differentiable). Then ``log p(y) = log phi(f(u)) + log f'(u) - log scale``, ``cdf(y) =
Phi(f(u))`` and ``quantile(q) = loc + scale f^-1(Phi^-1(q))`` are exact: the spline inverts
in closed form (a quadratic per bin), and ``sample`` pushes normal draws through the inverse.
No number of components to choose: the spline's ``bins`` only set how much detail it can draw.
Several outputs are independent coordinates, each with its own spline; it is meant for one.

Packed row (:func:`layout`): ``[loc (d) | scale (d) | widths (d, B) | heights (d, B) | slopes
(d, B - 1)]``: the affine map (without ``affine``, the default of layers saved before it
existed, these two blocks are absent), bin widths and heights (each summing to ``2 bound``)
and the positive slopes at the inner knots.
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
#: existed load with) cost the spiral about 0.01 nats. Without the affine map, a floor of 1e-5
#: made training go astray on two spiral seeds in three; with it (the default), on no seed of
#: either benchmark (docs/families.md). A bin's width in ``y`` is ``min_bin * 2 bound * scale``:
#: where that falls below float32's spacing (much below 1e-5 near the interval's ends, or a
#: small ``scale``), the bin cannot be resolved; ``xi`` is clipped, so it is merely unused.
SAVED_MIN_BIN = 1e-3
MIN_BIN = SAVED_MIN_BIN  # the fixed floor's old name, kept for code that imports it
DEFAULT_MIN_BIN = 1e-5
MIN_SLOPE = 1e-3
#: Smallest per-row scale of the affine map in front of the spline (``affine``), standardised.
MIN_SCALE = 1e-3
# softplus(shift) = 1 - floor: the spline and its affine map start as the identity.
_SLOPE_SHIFT = math.log(math.expm1(1.0 - MIN_SLOPE))
_SCALE_SHIFT = math.log(math.expm1(1.0 - MIN_SCALE))


def layout(bins: int, output_dim: int, affine: bool = False) -> Layout:
    """``[widths (d, B) | heights (d, B) | slopes (d, B - 1)]``, after ``[loc (d) | scale (d)]``
    with ``affine``."""
    b, d = bins, output_dim
    shift = (("loc", (d,)), ("scale", (d,))) if affine else ()
    return Layout(*shift, ("widths", (d, b)), ("heights", (d, b)), ("slopes", (d, b - 1)))


def _knots(ops, widths, heights, slopes, bound):
    """Knot positions in ``y`` and ``z`` and the slopes at every knot (ends: 1)."""
    ones = ops.ones_like(slopes[..., :1])
    zero = ops.zeros_like(widths[..., :1])
    x = ops.concatenate([zero, ops.cumsum(widths, axis=-1)], axis=-1) - bound
    z = ops.concatenate([zero, ops.cumsum(heights, axis=-1)], axis=-1) - bound
    return x, z, ops.concatenate([ones, slopes, ones], axis=-1)


def log_prob(packed, y, bins: int, output_dim: int, bound: float, affine: bool = False):
    """``log p(y)`` in ``keras.ops``: ``(n,)``. Targets outside the interval use the identity."""
    from keras import ops

    blocks = layout(bins, output_dim, affine).unpack(packed)
    widths, heights = blocks["widths"], blocks["heights"]
    x_knots, z_knots, slopes = _knots(ops, widths, heights, blocks["slopes"], bound)
    y = ops.reshape(ops.cast(y, widths.dtype), (-1, output_dim))
    if affine:
        y = (y - blocks["loc"]) / blocks["scale"]
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
    if affine:
        log_slope = log_slope - ops.log(blocks["scale"])
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
            affine: bool = False,
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
            self.min_bin, self.affine = float(min_bin), bool(affine)
            self.project_to(layout(self.bins, self.output_dim, self.affine))

        def constrain(self, raw):
            d, b, floor = self.output_dim, self.bins, self.min_bin

            def bins_of(values):  # a softmax per coordinate, over its own b columns
                shares = [
                    floor + (1.0 - floor * b) * ops.softmax(values[..., j * b : (j + 1) * b])
                    for j in range(d)
                ]
                return 2.0 * self.bound * ops.concatenate(shares, axis=-1)

            slopes = MIN_SLOPE + ops.softplus(raw["slopes"] + _SLOPE_SHIFT)
            shift = {}
            if self.affine:
                scale = MIN_SCALE + ops.softplus(raw["scale"] + _SCALE_SHIFT)
                shift = {"loc": raw["loc"], "scale": scale}
            return {
                **shift,
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
                "affine": self.affine,
            }

    return RationalQuadraticSpline


class SplineFlow(Distribution):
    """``n`` distributions over ``R^d``: independent coordinates, each ``loc + scale f^-1(Z)``
    for a monotone rational-quadratic spline ``f`` on ``[-bound, bound]`` (identity outside) and
    ``Z`` standard normal.

    Args:
        widths, heights: ``(n, d, B)`` positive bin widths and heights, each summing to
            ``2 bound`` over the last axis.
        slopes: ``(n, d, B - 1)`` positive slopes at the inner knots.
        bound: the half-width of the spline's interval.
        loc, scale: ``(n, d)`` the affine map in front of the spline, ``u = (y - loc) /
            scale`` (default 0 and 1: none).
    """

    def __init__(self, widths, heights, slopes, bound: float, loc=None, scale=None) -> None:
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
        shape = widths.shape[:2]
        self.mapped = loc is not None or scale is not None  # an affine map was given
        self.loc = np.zeros(shape) if loc is None else np.asarray(loc, np.float64)
        self.scale = np.ones(shape) if scale is None else np.asarray(scale, np.float64)
        if self.loc.shape != shape or self.scale.shape != shape or not np.all(self.scale > 0):
            raise ValueError("SplineFlow wants loc and positive scale of shape (n, d)")

    @classmethod
    def from_packed(
        cls, packed: np.ndarray, bins: int, output_dim: int, bound: float, affine: bool = False
    ):
        packed = np.asarray(packed, np.float64)
        rows = layout(bins, output_dim, affine)
        if packed.ndim != 2 or packed.shape[1] != rows.size:
            raise ValueError(f"packed spline rows need {rows.size} columns, got {packed.shape}")
        b = rows.unpack(packed)
        return cls(b["widths"], b["heights"], b["slopes"], bound, b.get("loc"), b.get("scale"))

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
        """``z = f(y)`` and ``log f'(y)``, each ``(n, d)`` (``f`` includes the affine map)."""
        y = np.asarray(y, np.float64).reshape(self.batch_size, self.event_dim)
        z, log_slope = self._spline((y - self.loc) / self.scale)
        return z, log_slope - np.log(self.scale)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """``y = f^-1(z)`` in closed form (the root of one quadratic per bin), ``(n, d)``."""
        return self.loc + self.scale * self._spline_inverse(z)

    def _spline(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spline alone, on the affine map's output ``u``."""
        inside = np.abs(u) < self.bound
        us = np.clip(u, -self.bound, self.bound)
        w, h, x0, z0, d0, d1 = self._pick(self._bin(self.x_knots, us))
        xi = np.clip((us - x0) / w, 0.0, 1.0)
        s, t = h / w, xi * (1 - xi)
        denominator = s + (d1 + d0 - 2 * s) * t
        z = z0 + h * (s * xi**2 + d0 * t) / denominator
        log_slope = (
            2 * np.log(s)
            + np.log(d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2)
            - 2 * np.log(denominator)
        )
        return np.where(inside, z, u), np.where(inside, log_slope, 0.0)

    def _spline_inverse(self, z: np.ndarray) -> np.ndarray:
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
        """``E[U]`` and ``E[U^2]`` per coordinate of the spline's own variable ``U`` (``Y = loc
        + scale U``): Gauss-Legendre in ``z`` on every bin (the inverse is smooth inside a
        bin), exact normal integrals over the identity tails."""
        nodes, weights = np.polynomial.legendre.leggauss(32)
        low, high = self.z_knots[..., :-1], self.z_knots[..., 1:]  # (n, d, B)
        half = 0.5 * (high - low)
        first = np.zeros((self.batch_size, self.event_dim))
        second = np.zeros_like(first)
        for node, weight in zip(nodes, weights, strict=True):
            z = low + half * (node + 1.0)  # (n, d, B)
            y = np.stack([self._spline_inverse(z[..., k]) for k in range(self.bins)], axis=-1)
            mass = weight * half * np.exp(-0.5 * z**2 - _HALF_LOG_2PI)
            first += (y * mass).sum(axis=-1)
            second += (y**2 * mass).sum(axis=-1)
        b = self.bound
        tail_density, tail_mass = math.exp(-0.5 * b * b - _HALF_LOG_2PI), special.ndtr(-b)
        # Beyond +-b, y = z: int z phi = +-phi(b); int z^2 phi = b phi(b) + Phi(-b), each side.
        return first, second + 2 * (b * tail_density + tail_mass)

    def mean(self) -> np.ndarray:
        return self.loc + self.scale * self._moments()[0]

    def variance(self) -> np.ndarray:
        first, second = self._moments()
        return self.scale**2 * np.maximum(second - first**2, 0.0)

    def mode(self) -> np.ndarray:
        """Each coordinate's highest density point on a fine grid of every bin (coordinates are
        independent, so the joint mode is the coordinates' modes)."""
        grid = np.linspace(0.0, 1.0, 65)
        best, best_score = None, None
        for k in range(self.bins):
            for share in grid:
                u = self.x_knots[..., k] + share * self.widths[..., k]  # (n, d)
                z, log_slope = self._spline(u)
                score = -0.5 * z**2 + log_slope
                if best is None:
                    best, best_score = u, score
                else:
                    better = score > best_score
                    best = np.where(better, u, best)
                    best_score = np.maximum(score, best_score)
        return self.loc + self.scale * best

    def params(self) -> dict[str, np.ndarray]:
        shift = {"loc": self.loc, "scale": self.scale} if self.mapped else {}
        return {
            "mean": self.mean(),
            "variance": self.variance(),
            **shift,
            "width": self.widths,
            "height": self.heights,
        }

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        # width and height (output, bin) are left undeclared: numbered flat, output-major.
        names = ("mean", "variance", "loc", "scale") if self.mapped else ("mean", "variance")
        return {name: ("output",) for name in names}


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
            "half-width of the spline's interval, in units of the row's scale around its loc "
            "(standardised target units without affine); outside it the map is the identity "
            "(normal tails)",
            minimum=0.5,
            maximum=100.0,
        ),
        Param(
            "min_bin",
            "float",
            DEFAULT_MIN_BIN,
            "smallest bin width and height, as a share of the interval (a bin left empty "
            "between two modes still spans this share in z); below 1e-5 float32 loses "
            "precision near the interval's ends",
            minimum=1e-6,
            maximum=0.01,
        ),
        Param(
            "affine",
            "bool",
            True,
            "shift and scale each row's target before the spline, so the spline's bins sit "
            "where that row's density is, however narrow",
        ),
    )
    test_specs = ("spline:bins=8", "spline:bins=8,affine=false")

    def check_options(self) -> None:
        super().check_options()
        bins, min_bin = self.options["bins"], self.options["min_bin"]
        if bins * min_bin >= 1:
            raise UsageError(
                f"spline: bins x min_bin must be below 1 (every bin at least min_bin of the "
                f"interval), got {bins} x {min_bin:g}"
            )

    @property
    def affine(self) -> bool:
        return bool(self.options["affine"])

    def options_from_layer(self, config: dict) -> dict:
        # What a layer saved before an option existed used: no affine map, the old bin floor.
        return {
            "min_bin": float(config.get("min_bin", SAVED_MIN_BIN)),
            "affine": bool(config.get("affine", False)),
        }

    def layout(self, output_dim: int) -> Layout:
        return layout(self.options["bins"], output_dim, self.affine)

    def layer_class(self) -> type:
        return layer_class()

    def layer(self, output_dim: int, name: str | None = None):
        o = self.options
        return layer_class()(
            output_dim, o["bins"], o["bound"], o["min_bin"], self.affine, name=name
        )

    def log_prob(self, params, y, output_dim: int):
        o = self.options
        return log_prob(params, y, o["bins"], output_dim, o["bound"], self.affine)

    def distribution(self, params: np.ndarray, output_dim: int) -> Distribution:
        o = self.options
        return SplineFlow.from_packed(params, o["bins"], output_dim, o["bound"], self.affine)
