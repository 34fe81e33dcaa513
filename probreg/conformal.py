"""Split-conformal prediction: intervals (CQR) and highest-density regions with a
finite-sample coverage guarantee.

Both calibrate on rows the model never trained on (:func:`carve` takes them from the training
rows). If those rows and a new row are exchangeable, the new target lands in the set with
probability at least ``level`` (and less than ``level + 1 / (n + 1)`` for ``n`` calibration
rows without ties), whatever the model.

- :class:`IntervalCalibrator`: conformalized quantile regression (Romano et al., 2019). The
  score of a row is ``max(lo - y, y - hi)`` for the model's central interval ``[lo, hi]``;
  the set is ``[lo - q, hi + q]``. Per coordinate for ``d > 1`` (each marginal is covered).
- :class:`RegionCalibrator`: conformal highest-density regions (1-D targets). The score is the
  predictive density ``p(y | x)``; the set ``{y : p(y | x) >= t}`` is a union of intervals,
  one per branch of a multimodal head, found on a grid per row.

For ``predict``, a region is written as columns ``<y>_region_<k>_lower`` and
``<y>_region_<k>_upper`` for ``k = 1 .. K`` (the most pieces any row has), pieces in
increasing order, unused pieces NaN.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from probreg.distributions import Distribution
from probreg.errors import UsageError

KINDS = ("interval", "region")


def check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise UsageError(f"conformal level must lie strictly between 0 and 1, not {level}")
    return float(level)


def conformal_rank(n: int, level: float) -> int:
    """``ceil((n + 1) level)``: which smallest calibration score is the threshold (1-based);
    above ``n`` the set must be everything."""
    return math.ceil((n + 1) * level - 1e-9)


def _kth_smallest(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th smallest score along axis 0 (``inf`` when ``k`` exceeds the count)."""
    if k > scores.shape[0]:
        return np.full(scores.shape[1:], np.inf)
    return np.sort(scores, axis=0)[k - 1]


@dataclasses.dataclass
class IntervalCalibrator:
    """CQR: the central ``level`` interval of the model, widened by a calibrated margin."""

    level: float
    margin: np.ndarray  # (d,): q, added on both sides (may be negative: the model was too wide)
    rows: int

    @classmethod
    def fit(cls, distribution: Distribution, y: np.ndarray, level: float) -> IntervalCalibrator:
        level = check_level(level)
        y = np.asarray(y, np.float64)
        low, high = model_interval(distribution, level)
        scores = np.maximum(low - y, y - high)  # (n, d)
        margin = _kth_smallest(scores, conformal_rank(len(y), level))
        return cls(level, np.asarray(margin, np.float64), len(y))

    def interval(self, distribution: Distribution) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)``, each ``(n, d)``."""
        low, high = model_interval(distribution, self.level)
        return low - self.margin, high + self.margin

    def covers(self, distribution: Distribution, y: np.ndarray) -> np.ndarray:
        low, high = self.interval(distribution)
        y = np.asarray(y, np.float64)
        return (y >= low) & (y <= high)


def model_interval(distribution: Distribution, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - level
    return distribution.quantile(alpha / 2), distribution.quantile(1 - alpha / 2)


@dataclasses.dataclass
class RegionCalibrator:
    """Conformal highest-density regions: ``{y : p(y | x) >= threshold}`` (1-D targets)."""

    level: float
    threshold: float  # a density (data units); 0 means the whole line
    rows: int

    GRID = 2000
    TAIL = 1e-6

    @classmethod
    def fit(cls, distribution: Distribution, y: np.ndarray, level: float) -> RegionCalibrator:
        level = check_level(level)
        _check_1d(distribution)
        density = np.exp(distribution.log_prob(np.asarray(y, np.float64)))
        # Nonconformity is -density: the ceil((n+1) level)-th smallest of -density is minus the
        # (n + 1 - that)-th smallest density.
        k = conformal_rank(len(density), level)
        threshold = 0.0 if k > len(density) else float(np.sort(density)[len(density) - k])
        return cls(level, threshold, len(density))

    def covers(self, distribution: Distribution, y: np.ndarray) -> np.ndarray:
        return (np.exp(distribution.log_prob(np.asarray(y, np.float64))) >= self.threshold)[:, None]

    def regions(
        self, distribution: Distribution, grid_points: int | None = None
    ) -> list[np.ndarray]:
        """Each row's region as an array of ``(lower, upper)`` pieces, ``(pieces, 2)``, from
        the density on ``grid_points`` (default :attr:`GRID`) points per row between the
        ``1e-6`` and ``1 - 1e-6`` quantiles (widened by 5%); the ends are interpolated."""
        points = grid_points or self.GRID
        _check_1d(distribution)
        if self.threshold <= 0.0:
            whole = np.array([[-np.inf, np.inf]])
            return [whole for _ in range(distribution.batch_size)]
        low = distribution.quantile(self.TAIL)[:, 0]
        high = distribution.quantile(1 - self.TAIL)[:, 0]
        pad = 0.05 * (high - low)
        low, high = low - pad, high + pad
        steps = np.linspace(0.0, 1.0, points)
        grid = low[:, None] + (high - low)[:, None] * steps[None, :]
        log_t = math.log(self.threshold)
        excess = np.stack(
            [distribution.log_prob(grid[:, [j]]) - log_t for j in range(points)], axis=1
        )
        return [_pieces(grid[row], excess[row]) for row in range(distribution.batch_size)]


def _check_1d(distribution: Distribution) -> None:
    if distribution.event_dim != 1:
        raise UsageError(
            f"conformal regions work on 1-D targets only; this one has {distribution.event_dim} "
            "(use conformal intervals)"
        )


def _pieces(grid: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """Where ``excess >= 0`` on a grid, as intervals; ends found by linear interpolation."""
    inside = excess >= 0
    if not inside.any():  # narrower than a grid cell: the best point, with no width
        best = grid[np.argmax(excess)]
        return np.array([[best, best]])
    change = np.flatnonzero(np.diff(inside.astype(np.int8)))
    starts = list(change[~inside[change]] + 1)  # first inside point after an outside one
    ends = list(change[inside[change]])  # last inside point before an outside one
    if inside[0]:
        starts.insert(0, 0)
    if inside[-1]:
        ends.append(len(grid) - 1)
    pieces = []
    for start, end in zip(starts, ends, strict=True):
        lower = grid[start]
        if start > 0:  # the crossing between start - 1 (outside) and start
            lower = _crossing(grid[start - 1], grid[start], excess[start - 1], excess[start])
        upper = grid[end]
        if end < len(grid) - 1:
            upper = _crossing(grid[end], grid[end + 1], excess[end], excess[end + 1])
        pieces.append((lower, upper))
    return np.asarray(pieces, np.float64)


def _crossing(a: float, b: float, fa: float, fb: float) -> float:
    if fa == fb:
        return 0.5 * (a + b)
    return a + (b - a) * fa / (fa - fb)


def region_length(pieces: list[np.ndarray]) -> np.ndarray:
    """Total length of each row's region, ``(n,)``."""
    return np.array([float(np.sum(p[:, 1] - p[:, 0])) for p in pieces])


def region_table(pieces: list[np.ndarray]) -> np.ndarray:
    """``(n, K, 2)`` lower and upper bounds, NaN-padded to the most pieces any row has."""
    most = max((len(p) for p in pieces), default=1)
    table = np.full((len(pieces), most, 2), np.nan)
    for row, p in enumerate(pieces):
        table[row, : len(p)] = p
    return table


def held_out(fraction: float, rows: int) -> int:
    """How many of ``rows`` training rows :func:`carve` sets aside for ``fraction``."""
    return round(fraction * rows)


def carve(data: Any, fraction: float, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Split ``fraction`` of the training rows off for calibration: ``(data without them,
    x_cal, y_cal)``. The rows are chosen at random with ``seed``."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(
            f"the calibration fraction must lie strictly between 0 and 1, not {fraction}"
        )
    n = len(data.x_train)
    count = held_out(fraction, n)
    if count < 1 or n - count < 2:
        raise UsageError(f"cannot carve {fraction:g} of {n} training rows into a calibration part")
    order = np.random.default_rng([seed, 0xC0F]).permutation(n)
    cal, keep = np.sort(order[:count]), np.sort(order[count:])
    trimmed = dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
    return trimmed, data.x_train[cal], data.y_train[cal]


def parse(spec: str) -> tuple[str, float]:
    """``conformal:level=0.9[,kind=interval|region]`` -> ``(kind, level)``."""
    name, _, rest = spec.partition(":")
    if name.strip() != "conformal":
        raise UsageError(
            f"--intervals takes 'conformal:level=0.9[,kind=interval|region]', not '{spec}'"
        )
    options = {"level": "0.9", "kind": "interval"}
    given: set[str] = set()
    items = [part.strip() for part in rest.split(",")] if rest.strip() else []
    for item in items:
        if not item:
            raise UsageError(f"--intervals has an empty option in '{spec}'")
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in options:
            raise UsageError(
                f"unknown --intervals option '{item}': use level=LEVEL and kind=interval|region"
            )
        if key in given:
            raise UsageError(f"--intervals gives '{key}' twice")
        given.add(key)
        options[key] = value.strip()
    try:
        level = float(options["level"])
    except ValueError:
        raise UsageError(f"--intervals level must be a number, not '{options['level']}'") from None
    if options["kind"] not in KINDS:
        raise UsageError(f"--intervals kind must be interval or region, not '{options['kind']}'")
    return options["kind"], check_level(level)
