"""Dataset ``counts``: negative-binomial counts whose mean depends on ``x``, with the exact mass.

``x ~ U(-2, 2)``, ``y ~ NegBin(mean = exp(1.5 + sin(2 x)), dispersion r)``: integers from 0
with variance ``mean + mean^2 / r`` (over-dispersed against a Poisson). ``log_density`` is the
exact log-*mass* (``scipy.stats.nbinom``), so a discrete family's test log-mass has a Bayes
limit; a continuous family's log-density is not the same quantity (see the ``discrete``
family).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from probreg.datasets import Data, Dataset, size_params, split_draw
from probreg.hookspecs import hookimpl
from probreg.params import Param


def mean_count(x: np.ndarray) -> np.ndarray:
    """The conditional mean ``exp(1.5 + sin(2 x))`` (from about 1.6 to 12)."""
    return np.exp(1.5 + np.sin(2.0 * np.asarray(x, np.float64)))


class CountsMass:
    """Exact ``log P(y | x)`` of the negative binomial (``-inf`` off the non-negative integers)."""

    #: A log-mass over the integers, not a density: checks sum it instead of integrating it.
    discrete = True

    def __init__(self, dispersion: float) -> None:
        self.dispersion = dispersion

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
        mean = mean_count(x)
        r = self.dispersion
        integer = (y == np.round(y)) & (y >= 0)
        with np.errstate(divide="ignore"):
            mass = stats.nbinom.logpmf(np.where(integer, y, 0), r, r / (r + mean))
        return np.where(integer, mass, -np.inf)


class Counts(Dataset):
    """Negative-binomial counts with an x-dependent mean: integer targets, exact log-mass."""

    name = "counts"
    params = (
        *size_params(n=5000, val=1000, test=5000),
        Param(
            "dispersion",
            "float",
            3.0,
            "negative-binomial dispersion r: variance = mean + mean^2 / r (large r: Poisson)",
            minimum=0.1,
            maximum=1000,
        ),
    )

    def load(self, seed: int) -> Data:
        o = self.options
        rng = np.random.default_rng(seed)
        total = o["n"] + o["val"] + o["test"]
        x = rng.uniform(-2.0, 2.0, total)
        r = o["dispersion"]
        y = rng.negative_binomial(r, r / (r + mean_count(x))).astype(np.float64)
        return split_draw(
            x[:, None],
            y[:, None],
            o,
            x_names=("x",),
            y_names=("count",),
            log_density=CountsMass(r),
        )


@hookimpl
def register_datasets(register):
    register(Counts)
