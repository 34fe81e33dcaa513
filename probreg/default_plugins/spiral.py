"""Dataset ``spiral``: the noisy spiral of the Keras MDN example, with its exact density.

The original draws an angle ``a ~ U(0, 2 pi revolutions)``, puts a point at
``(a cos a, a sin a)``, adds ``N(0, jitter^2)`` noise to both coordinates and min-max rescales the
whole array to ``[0, 5]`` with one scalar. ``x`` is the first coordinate, ``y`` the second: for
most ``x`` several ``y`` are valid, which an MSE network cannot express.

Because the generating process is known, ``log p(y | x)`` is exact up to quadrature over the
angle, so every run can report the Bayes-limit NLL of its test points.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from probreg.datasets import Data, Dataset, size_params, split_draw
from probreg.hookspecs import hookimpl
from probreg.params import Param

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


class SpiralDensity:
    """Exact ``log p(y | x)`` of the rescaled noisy spiral, by quadrature over the angle.

    ``offset`` and ``span`` are the scalars of the min-max rescaling:
    ``u = offset + x * span / 5``.
    Simpson's rule on the angle uses a step of a quarter of the narrowest angular width of the
    noise (``jitter / sqrt(1 + a^2)``), so the Gaussian bumps are resolved everywhere; the
    tests check that halving the step changes ``log p`` by less than 1e-4.
    """

    def __init__(self, jitter: float, revolutions: float, offset: float, span: float) -> None:
        self.jitter = jitter
        self.offset = offset
        self.span = span
        top = 2.0 * np.pi * revolutions
        narrowest = jitter / np.sqrt(1.0 + top**2)
        self.set_nodes(int(np.clip(np.ceil(4.0 * top / narrowest), 2000, 200_000)), top)

    def set_nodes(self, nodes: int, top: float) -> None:
        """Use ``nodes`` (made odd) Simpson nodes on ``[0, top]``."""
        nodes += 1 - nodes % 2
        self.angles = np.linspace(0.0, top, nodes)
        weights = np.full(nodes, 2.0)
        weights[1::2] = 4.0
        weights[[0, -1]] = 1.0
        self.log_weights = np.log(weights * top / (3.0 * (nodes - 1)))

    def _log_normal(self, value: np.ndarray, centre: np.ndarray) -> np.ndarray:
        z = (value[:, None] - centre[None, :]) / self.jitter
        return -0.5 * z**2 - np.log(self.jitter) - _HALF_LOG_2PI

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``log p(y | x)`` for rows of ``x`` and ``y`` (``(n, 1)`` or ``(n,)``), in data units."""
        u = self.offset + np.ravel(x).astype(np.float64) * self.span / 5.0
        v = self.offset + np.ravel(y).astype(np.float64) * self.span / 5.0
        a = self.angles
        out = np.empty(u.shape[0])
        chunk = max(1, 2_000_000 // a.size)
        for start in range(0, u.shape[0], chunk):
            rows = slice(start, start + chunk)
            log_u = self.log_weights + self._log_normal(u[rows], a * np.cos(a))
            joint = special.logsumexp(log_u + self._log_normal(v[rows], a * np.sin(a)), axis=1)
            marginal = special.logsumexp(log_u, axis=1)
            out[rows] = joint - marginal
        # Change of variables from the spiral's own units to the rescaled y.
        return out + np.log(self.span / 5.0)


def draw_spiral(
    rng: np.random.Generator, n: int, jitter: float, revolutions: float
) -> tuple[np.ndarray, SpiralDensity]:
    """``n`` points ``(n, 2)`` of the original's spiral and the exact density of that draw."""
    angle = rng.uniform(0.0, 2.0 * np.pi * revolutions, n)
    points = np.stack([angle * np.cos(angle), angle * np.sin(angle)], axis=1)
    points = points + rng.normal(scale=jitter, size=(n, 2))
    low, high = points.min(), points.max()
    points = 5.0 * (points - low) / (high - low)
    return points, SpiralDensity(jitter, revolutions, float(low), float(high - low))


class Spiral(Dataset):
    """Noisy 2-D spiral (the original Keras MDN example); exact Bayes-limit NLL."""

    name = "spiral"
    params = (
        *size_params(n=10_000, val=2_000, test=10_000),
        Param(
            "jitter", "float", 0.2, "standard deviation of the noise before rescaling", minimum=0.01
        ),
        Param("revolutions", "float", 2.0, "turns of the spiral", minimum=0.1, maximum=20),
    )

    def load(self, seed: int) -> Data:
        o = self.options
        rng = np.random.default_rng(seed)
        points, density = draw_spiral(
            rng, o["n"] + o["val"] + o["test"], o["jitter"], o["revolutions"]
        )
        x, y = points[:, :1], points[:, 1:]
        return split_draw(
            x,
            y,
            o,
            x_names=("x",),
            y_names=("y",),
            log_density=density,
            notes="all parts come from one draw, rescaled together",
        )


@hookimpl
def register_datasets(register):
    register(Spiral)
