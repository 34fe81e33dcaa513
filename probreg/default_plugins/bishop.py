"""Dataset ``bishop``: the toy inverse problem of Bishop's 1994 MDN report.

The forward map ``x = t + 0.3 sin(2 pi t) + u`` with ``t ~ U(0, 1)`` and ``u ~ U(-noise, noise)``
is a function; its inverse, ``t`` given ``x``, has up to three branches for ``x`` in the middle.
The task is the inverse: input ``x``, target ``t``.

Its exact conditional density is uniform over the set of ``t`` with ``|x - f(t)| <= noise``:
``p(t | x) = 1 / L(x)`` there, where ``L(x)`` is the length of that set. ``L`` is computed on the
three monotone pieces of ``f`` by inverse interpolation, so runs report the Bayes limit.
"""

from __future__ import annotations

import numpy as np

from probreg.datasets import Data, Dataset, size_params, split_draw
from probreg.hookspecs import hookimpl
from probreg.params import Param


def forward(t: np.ndarray) -> np.ndarray:
    """Bishop's forward map ``f(t) = t + 0.3 sin(2 pi t)``."""
    return t + 0.3 * np.sin(2.0 * np.pi * t)


class BishopDensity:
    """Exact ``log p(t | x)`` of the inverse problem (``-inf`` outside its support)."""

    def __init__(self, noise: float, nodes: int = 20_001) -> None:
        self.noise = noise
        turn = np.arccos(-1.0 / (0.6 * np.pi)) / (2.0 * np.pi)  # where f'(t) = 0
        self.pieces = []
        for low, high in ((0.0, turn), (turn, 1.0 - turn), (1.0 - turn, 1.0)):
            t = np.linspace(low, high, nodes)
            f = forward(t)
            if f[-1] < f[0]:  # interpolation needs increasing f
                t, f = t[::-1], f[::-1]
            self.pieces.append((f, t))

    def support_length(self, x: np.ndarray) -> np.ndarray:
        """``L(x)``: the measure of ``{t in [0, 1] : |x - f(t)| <= noise}``."""
        x = np.ravel(x).astype(np.float64)
        total = np.zeros_like(x)
        for f, t in self.pieces:
            low = np.clip(x - self.noise, f[0], f[-1])
            high = np.clip(x + self.noise, f[0], f[-1])
            total += np.abs(np.interp(high, f, t) - np.interp(low, f, t))
        return total

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, t = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
        inside = (np.abs(x - forward(t)) <= self.noise) & (t >= 0.0) & (t <= 1.0)
        with np.errstate(divide="ignore"):
            return np.where(inside, -np.log(self.support_length(x)), -np.inf)


class Bishop(Dataset):
    """Bishop's (1994) inverse problem: t given x = t + 0.3 sin(2 pi t) + noise; exact density."""

    name = "bishop"
    params = (
        *size_params(n=1000, val=300, test=2000),
        Param(
            "noise", "float", 0.1, "half-width of the uniform noise on x", minimum=0.001, maximum=1
        ),
    )

    def load(self, seed: int) -> Data:
        o = self.options
        rng = np.random.default_rng(seed)
        total = o["n"] + o["val"] + o["test"]
        t = rng.uniform(0.0, 1.0, total)
        x = forward(t) + rng.uniform(-o["noise"], o["noise"], total)
        return split_draw(
            x[:, None],
            t[:, None],
            o,
            x_names=("x",),
            y_names=("t",),
            log_density=BishopDensity(o["noise"]),
        )


@hookimpl
def register_datasets(register):
    register(Bishop)
