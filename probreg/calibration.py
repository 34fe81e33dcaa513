"""Calibration: the scores that judge it, and recalibration that repairs it.

- :func:`scores`: calibration error (from the PIT), sharpness (mean width of the central 50%
  and 90% intervals), the interval score at 90%, the weighted interval score and the mean
  pinball loss at :data:`PINBALL_LEVELS` (interval and quantile scores from scoringrules);
- :func:`reliability`: observed against nominal coverage of central intervals;
- :class:`PITMap` and :class:`Recalibrated`: an isotonic map of the PIT fitted on validation
  rows (Kuleshov et al., 2018) and the recalibrated predictive distribution it gives.

All numpy; arrays of targets are ``(n, d)`` as everywhere in probreg.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from probreg.distributions import Distribution
from probreg.errors import UsageError

#: Names of the calibration scores :func:`scores` adds to ``metrics.json``.
SCORES = (
    "calibration_error",
    "sharpness_50",
    "sharpness_90",
    "interval_score_90",
    "wis",
    "pinball",
)

#: One line on what each score rewards (the reports print these).
SCORE_NOTES = {
    "calibration_error": "calibration error is the mean gap between the share of PIT values "
    "below each level and the level: 0 for a calibrated head",
    "sharpness_90": "sharpness is the mean width of the central 50% and 90% intervals: "
    "narrower is better only if coverage holds",
    "interval_score_90": "the interval score charges the 90% interval's width plus 20 times "
    "each miss's distance",
    "wis": "the weighted interval score sums interval scores at 11 levels and the median's "
    "error: close to the CRPS",
    "pinball": "pinball is the mean quantile loss at the 5, 25, 50, 75 and 95% quantiles",
}

#: Columns of a ranking (``compare``): (key, header, which value is best).
COLUMNS = (
    ("calibration_error", "calibration error", "min"),
    ("sharpness_50", "width 50%", None),
    ("sharpness_90", "width 90%", None),
    ("interval_score_90", "interval score 90%", "min"),
    ("wis", "WIS", "min"),
    ("pinball", "pinball", "min"),
)

#: Quantile levels of the pinball loss (its mean over them is ``pinball``).
PINBALL_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)

#: ``alpha`` of the central ``1 - alpha`` intervals in the weighted interval score (Bracher et
#: al., 2021: the 23 quantiles of the COVID-19 forecast hubs).
WIS_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

#: Levels at which the PIT's empirical CDF is compared with the uniform one.
CALIBRATION_LEVELS = tuple(np.round(np.linspace(0.01, 0.99, 99), 2))

#: Nominal coverages of the reliability picture.
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


class Quantiles:
    """Marginal quantiles, each level computed once and reused by every score.

    Levels are solved with :func:`solve_quantile` (a bracket grown from a normal guess, then
    false position and bisection: about 12 CDF evaluations a level instead of the 60 halvings
    of :meth:`Distribution.quantile`), to within about ``1e-9`` in probability; ``seed`` stores
    levels already known.
    """

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self._cache: dict[float, np.ndarray] = {}
        self._moments: tuple[np.ndarray, np.ndarray] | None = None

    def seed(self, q: float, values: np.ndarray) -> None:
        self._cache[round(float(q), 12)] = values

    def __call__(self, q: float) -> np.ndarray:
        key = round(float(q), 12)
        if key not in self._cache:
            if not 0.0 < key < 1.0:
                raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
            if getattr(self.distribution, "discrete", False):  # a step CDF: the exact one
                self._cache[key] = self.distribution.quantile(key)
                return self._cache[key]
            if self._moments is None:
                mean = self.distribution.mean()
                std = np.sqrt(np.maximum(self.distribution.variance(), 0.0))
                self._moments = (mean, np.where(np.isfinite(std) & (std > 0), std, 1.0))
            self._cache[key] = solve_quantile(self.distribution, key, *self._moments)
        return self._cache[key]


def solve_quantile(
    distribution: Distribution,
    q: float,
    mean: np.ndarray,
    std: np.ndarray,
    tolerance: float = 1e-10,
    max_steps: int = 200,
) -> np.ndarray:
    """``F^{-1}(q)`` per coordinate: start at the normal guess ``mean + std z_q``, widen a
    bracket until ``F(a) < q <= F(b)``, then shrink it by the Illinois method (false position
    that halves a stale end's weight), with a bisection every fourth step, until ``F(b) - F(a)``
    is below ``tolerance`` everywhere."""
    from scipy import special

    guess = mean + std * special.ndtri(q)
    a, b = guess - 0.5 * std, guess + 0.5 * std
    ga, gb = distribution.cdf(a) - q, distribution.cdf(b) - q
    for _ in range(max_steps):
        low, high = ga >= 0, gb < 0
        if not (low.any() or high.any()):
            break
        width = b - a
        if low.any():
            a = np.where(low, a - width, a)
            ga = distribution.cdf(a) - q
        if high.any():
            b = np.where(high, b + width, b)
            gb = distribution.cdf(b) - q
    last = np.zeros(a.shape, np.int8)  # +1: a moved last, -1: b moved last
    for step in range(max_steps):
        if np.all((gb - ga <= tolerance) | (b - a <= 1e-13 * (1.0 + np.abs(a) + np.abs(b)))):
            break
        if step % 4 == 3:
            c = 0.5 * (a + b)
        else:
            c = (a * gb - b * ga) / np.where(gb - ga > 0, gb - ga, 1.0)
            c = np.clip(c, a + 1e-3 * (b - a), b - 1e-3 * (b - a))
        gc = distribution.cdf(c) - q
        left = gc < 0
        stale_b = left & (last == 1)  # a moved twice in a row: b's value is stale
        stale_a = ~left & (last == -1)
        a, ga = np.where(left, c, a), np.where(left, gc, np.where(stale_a, 0.5 * ga, ga))
        b, gb = np.where(left, b, c), np.where(left, np.where(stale_b, 0.5 * gb, gb), gc)
        last = np.where(left, 1, -1).astype(np.int8)
    span = gb - ga
    t = np.clip(np.divide(-ga, span, out=np.full_like(a, 1.0), where=span > 0), 0.0, 1.0)
    return a + t * (b - a)


def pit(distribution: Distribution, y: np.ndarray) -> np.ndarray:
    """The probability integral transform ``F(y)`` of every coordinate, ``(n, d)``.

    For a discrete distribution (integer targets) ``F(y)`` is not uniform even when the model is
    calibrated, so this is the randomised PIT ``F(y - 1) + V (F(y) - F(y - 1))`` with ``V``
    uniform (Czado, Gneiting and Held, 2009), drawn with a fixed seed: uniform when calibrated.
    """
    y = np.asarray(y, np.float64)
    upper = distribution.cdf(y)
    if not getattr(distribution, "discrete", False):
        return upper
    lower = distribution.cdf(y - distribution.lattice()[1])
    return lower + np.random.default_rng(0).random(upper.shape) * (upper - lower)


def calibration_error(pit_values: np.ndarray) -> float:
    """Mean over :data:`CALIBRATION_LEVELS` of ``|share of PIT values <= level - level|``.

    0 for a perfectly calibrated head; the largest possible is about 0.5 (every PIT at 0 or 1).
    """
    values = np.asarray(pit_values, np.float64).ravel()
    levels = np.asarray(CALIBRATION_LEVELS)
    observed = (values[None, :] <= levels[:, None]).mean(axis=1)
    return float(np.mean(np.abs(observed - levels)))


def central_interval(quantiles: Quantiles, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` predictive interval, ``(lower, upper)``, each ``(n, d)``."""
    alpha = 1.0 - level
    return quantiles(alpha / 2), quantiles(1 - alpha / 2)


def scores(
    distribution: Distribution, y: np.ndarray, quantiles: Quantiles | None = None
) -> dict[str, float]:
    """The calibration scores of ``distribution`` at targets ``y`` (averaged over rows and
    coordinates): see :data:`SCORES` and ``docs/calibration.md``."""
    import scoringrules as sr

    y = np.asarray(y, np.float64)
    quantiles = quantiles or Quantiles(distribution)
    out = {"calibration_error": calibration_error(pit(distribution, y))}
    for level in (50, 90):
        low, high = central_interval(quantiles, level / 100)
        out[f"sharpness_{level}"] = float(np.mean(high - low))
    low, high = central_interval(quantiles, 0.9)
    out["interval_score_90"] = float(np.mean(interval_score(y, low, high, 0.1)))
    out["wis"] = weighted_interval_score(y, quantiles)
    out["pinball"] = float(
        np.mean(
            [
                np.mean(sr.quantile_score(y, quantiles(q), q, backend="numpy"))
                for q in PINBALL_LEVELS
            ]
        )
    )
    return out


def interval_score(y: np.ndarray, low: np.ndarray, high: np.ndarray, alpha: float) -> np.ndarray:
    """scoringrules' interval score of ``[low, high]`` at ``alpha``, shaped like ``y``
    (scoringrules drops a trailing axis of length 1)."""
    import scoringrules as sr

    return np.asarray(sr.interval_score(y, low, high, alpha, backend="numpy")).reshape(y.shape)


def weighted_interval_score(y: np.ndarray, quantiles: Quantiles) -> float:
    """Mean WIS (Bracher et al., 2021) over :data:`WIS_ALPHAS` and the median, with the
    canonical weights ``alpha / 2`` and ``1 / 2``: about the CRPS.

    The interval scores come from scoringrules; the sum is taken here because
    ``scoringrules.weighted_interval_score`` (0.10) adds ``w_median * median`` instead of
    ``w_median * |y - median|``.
    """
    total = 0.5 * np.abs(y - quantiles(0.5))
    for alpha in WIS_ALPHAS:
        low, high = quantiles(alpha / 2), quantiles(1 - alpha / 2)
        total = total + alpha / 2 * interval_score(y, low, high, alpha)
    return float(np.mean(total / (len(WIS_ALPHAS) + 0.5)))


def pinball_losses(
    distribution: Distribution, y: np.ndarray, levels: Sequence[float] = PINBALL_LEVELS
) -> dict[float, float]:
    """Mean pinball (quantile) loss at each level, averaged over rows and coordinates."""
    import scoringrules as sr

    y = np.asarray(y, np.float64)
    return {
        float(q): float(np.mean(sr.quantile_score(y, distribution.quantile(q), q, backend="numpy")))
        for q in levels
    }


def reliability(
    distribution: Distribution,
    y: np.ndarray,
    levels: Sequence[float] = RELIABILITY_LEVELS,
    quantiles: Quantiles | None = None,
) -> dict[str, list[float]]:
    """Observed coverage of each central interval against its nominal level:
    ``{"nominal": [...], "observed": [...]}`` (a calibrated head lies on the diagonal)."""
    y = np.asarray(y, np.float64)
    quantiles = quantiles or Quantiles(distribution)
    observed = []
    for level in levels:
        low, high = central_interval(quantiles, level)
        observed.append(float(np.mean((y >= low) & (y <= high))))
    return {"nominal": [float(level) for level in levels], "observed": observed}


# ---------------------------------------------------------------------------------------------
# Recalibration


@dataclasses.dataclass(frozen=True)
class PITMap:
    """A continuous, strictly increasing map ``R`` of ``[0, 1]`` onto itself, piecewise linear
    through ``(knots[i], values[i])``; ``R(F(y))`` is the recalibrated CDF."""

    knots: np.ndarray
    values: np.ndarray

    #: Weight of the identity mixed into the fitted map, so that its slope is never 0.
    SLOPE_FLOOR = 1e-3

    @classmethod
    def fit(cls, pit_values: np.ndarray, pieces: int | None = None) -> PITMap:
        """The isotonic regression of observed frequency on predicted level (Kuleshov et al.,
        2018), from validation PIT values.

        The regression of the empirical frequency ``#{PIT <= p_i} / n`` on ``p_i`` is already
        monotone, so it is the PIT's empirical CDF; it is taken at ``pieces + 1`` of its
        quantiles (default ``clip(sqrt(n), 4, 50)`` pieces, so each slope rests on many rows),
        joined by straight lines, and mixed with ``SLOPE_FLOOR`` of the identity.
        """
        values = np.sort(np.asarray(pit_values, np.float64).ravel())
        values = values[np.isfinite(values)]
        if values.size < 4:
            raise UsageError(f"recalibration needs at least 4 validation rows, not {values.size}")
        if pieces is None:
            pieces = int(np.clip(round(np.sqrt(values.size)), 4, 50))
        levels = np.linspace(0.0, 1.0, pieces + 1)
        knots = np.quantile(values, levels[1:-1])
        knots = np.concatenate([[0.0], np.clip(knots, 0.0, 1.0), [1.0]])
        # Ties (several equal PITs) would make the map jump: keep the first of equal knots.
        keep = np.concatenate([[True], np.diff(knots) > 1e-12])
        keep[-1] = True
        knots, levels = knots[keep], levels[keep]
        if knots[-2] >= 1.0:  # the last kept interior knot sits on 1
            knots, levels = np.delete(knots, -2), np.delete(levels, -2)
        mapped = (1 - cls.SLOPE_FLOOR) * levels + cls.SLOPE_FLOOR * knots
        return cls(knots, mapped)

    def __post_init__(self) -> None:
        knots = np.asarray(self.knots, np.float64)
        values = np.asarray(self.values, np.float64)
        if (
            knots.ndim != 1
            or knots.shape != values.shape
            or knots.size < 2
            or knots[0] != 0.0
            or knots[-1] != 1.0
            or values[0] != 0.0
            or values[-1] != 1.0
            or np.any(np.diff(knots) <= 0)
            or np.any(np.diff(values) <= 0)
        ):
            raise UsageError(
                "a PIT map needs strictly increasing knots and values from 0 to 1 (same length)"
            )
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "values", values)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.knots, self.values)

    def inverse(self, v: np.ndarray) -> np.ndarray:
        return np.interp(v, self.values, self.knots)

    def slope(self, u: np.ndarray) -> np.ndarray:
        """``R'(u)``, the slope of the piece that holds ``u`` (right-continuous)."""
        slopes = np.diff(self.values) / np.diff(self.knots)
        piece = np.clip(np.searchsorted(self.knots, u, side="right") - 1, 0, slopes.size - 1)
        return slopes[piece]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "isotonic-pit",
            "knots": self.knots.tolist(),
            "values": self.values.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PITMap:
        try:
            return cls(np.asarray(data["knots"], float), np.asarray(data["values"], float))
        except (KeyError, TypeError, ValueError) as error:
            raise UsageError(f"the saved recalibration map is unreadable: {error}") from None


def fit_map(distribution: Distribution, y: np.ndarray, pieces: int | None = None) -> PITMap:
    """Fit :class:`PITMap` to ``distribution``'s PIT at validation targets ``y`` (1-D only)."""
    if distribution.event_dim != 1:
        raise UsageError(
            f"recalibration works on 1-D targets only; this one has {distribution.event_dim}"
        )
    return PITMap.fit(pit(distribution, y), pieces)


class Recalibrated(Distribution):
    """``base`` with its CDF ``F`` replaced by ``R(F)`` for a :class:`PITMap` ``R`` (1-D).

    Exact: ``cdf`` is ``R(F(y))``, ``quantile(q)`` is ``F^{-1}(R^{-1}(q))`` and ``log_prob``
    is ``log R'(F(y)) + log p(y)``. ``sample``, ``mean``, ``variance``, ``crps`` and ``mode``
    use the recalibrated CDF tabulated on :attr:`GRID` (512) points per row between the base's
    ``1e-7`` and ``1 - 1e-7`` quantiles, with the CDF linear between them: draws come from
    exactly that distribution, and ``mean``, ``variance`` and ``crps`` are its exact values.
    """

    GRID = 512
    TAIL = 1e-7

    def __init__(self, base: Distribution, pit_map: PITMap) -> None:
        if base.event_dim != 1:
            raise UsageError(
                f"recalibration works on 1-D targets only; this one has {base.event_dim}"
            )
        self.base = base
        self.map = pit_map
        self._table: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        return self.base.batch_size

    @property
    def event_dim(self) -> int:
        return 1

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self.map(self.base.cdf(y))

    def quantile(self, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile level must lie strictly between 0 and 1, not {q}")
        inner = float(np.clip(self.map.inverse(q), 1e-12, 1 - 1e-12))
        return self.base.quantile(inner)

    def log_prob(self, y: np.ndarray) -> np.ndarray:
        u = self.base.cdf(y)[:, 0]
        return np.log(self.map.slope(u)) + self.base.log_prob(y)

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(grid, cdf)``: each row's points ``(n, GRID)`` and recalibrated CDF there."""
        if self._table is None:
            low = self.base.quantile(self.TAIL)[:, 0]
            high = self.base.quantile(1 - self.TAIL)[:, 0]
            steps = np.linspace(0.0, 1.0, self.GRID)
            grid = low[:, None] + (high - low)[:, None] * steps[None, :]
            cdf = np.stack([self.base.cdf(grid[:, [j]])[:, 0] for j in range(self.GRID)], axis=1)
            cdf = np.maximum.accumulate(self.map(cdf), axis=1)
            self._table = (grid, cdf)
        return self._table

    def _masses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell masses ``(n, GRID - 1)`` and the tail masses at both ends ``(n,)``."""
        _, cdf = self.table()
        return np.diff(cdf, axis=1), cdf[:, 0], 1.0 - cdf[:, -1]

    def sample(self, rng: np.random.Generator, num_samples: int = 1) -> np.ndarray:
        grid, cdf = self.table()
        v = rng.random((num_samples, self.batch_size))
        out = np.empty((num_samples, self.batch_size))
        for row in range(self.batch_size):
            # Linear CDF inside each cell: linear interpolation of its inverse.
            out[:, row] = _inverse_interp(v[:, row], cdf[row], grid[row])
        return out[..., None]

    def mean(self) -> np.ndarray:
        grid, _ = self.table()
        cells, below, above = self._masses()
        middle = 0.5 * (grid[:, 1:] + grid[:, :-1])
        return ((cells * middle).sum(axis=1) + below * grid[:, 0] + above * grid[:, -1])[:, None]

    def variance(self) -> np.ndarray:
        grid, _ = self.table()
        cells, below, above = self._masses()
        a, b = grid[:, :-1], grid[:, 1:]
        second = (
            (cells * (a * a + a * b + b * b) / 3).sum(axis=1)
            + below * grid[:, 0] ** 2
            + above * grid[:, -1] ** 2
        )
        return np.maximum(second - self.mean()[:, 0] ** 2, 0.0)[:, None]

    def crps(self, y: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``integral (F(z) - 1{z >= y})^2 dz`` for the tabulated CDF (exact per cell)."""
        grid, cdf = self.table()
        y = np.asarray(y, np.float64)[:, 0]
        a, b = grid[:, :-1], grid[:, 1:]
        fa, fb = cdf[:, :-1], cdf[:, 1:]
        width = b - a
        # Split the cell that holds y at y; the square of a linear function integrates exactly.
        inside = (y[:, None] > a) & (y[:, None] < b)
        t = np.clip((y[:, None] - a) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        f_at_y = fa + t * (fb - fa)
        above = a >= y[:, None]  # whole cell at or above y: indicator 1

        def square_integral(f0, f1, shift, length):
            g0, g1 = f0 - shift, f1 - shift
            return length * (g0 * g0 + g0 * g1 + g1 * g1) / 3

        plain = np.where(
            above, square_integral(fa, fb, 1.0, width), square_integral(fa, fb, 0.0, width)
        )
        split = square_integral(fa, f_at_y, 0.0, t * width) + square_integral(
            f_at_y, fb, 1.0, (1 - t) * width
        )
        total = np.where(inside, split, plain).sum(axis=1)
        # Below the grid the CDF is 0 (its lowest mass sits on the first point), above it 1.
        total += np.maximum(grid[:, 0] - y, 0.0) + np.maximum(y - grid[:, -1], 0.0)
        return total

    def mode(self) -> np.ndarray:
        grid, _ = self.table()
        log_density = np.stack(
            [self.log_prob(grid[:, [j]]) for j in range(0, self.GRID, 4)], axis=1
        )
        best = np.argmax(log_density, axis=1) * 4
        return grid[np.arange(self.batch_size), best][:, None]

    def with_temperature(self, temperature: float, sigma_temperature: float) -> Distribution:
        if temperature == 1.0 and sigma_temperature == 1.0:
            return self
        return Recalibrated(self.base.with_temperature(temperature, sigma_temperature), self.map)

    def params(self) -> dict[str, np.ndarray]:
        return self.base.params()

    def param_axes(self) -> dict[str, tuple[str, ...]]:
        return self.base.param_axes()


def _inverse_interp(v: np.ndarray, cdf: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Invert a non-decreasing piecewise-linear CDF given at ``grid``; mass below the first
    point sits on it, above the last on it."""
    unique, first = np.unique(cdf, return_index=True)
    return np.interp(v, unique, grid[first])


def recalibrate(distribution: Distribution, pit_map: PITMap | None) -> Distribution:
    """``distribution`` recalibrated by ``pit_map`` (unchanged when it is ``None``)."""
    return distribution if pit_map is None else Recalibrated(distribution, pit_map)
