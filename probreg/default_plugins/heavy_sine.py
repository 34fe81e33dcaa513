"""Dataset ``heavy-sine``: a sine curve with Student-t noise, so outliers are common.

``x ~ U(-3, 3)``, ``y = sin(x) + noise * (0.5 + 0.25 x^2 / 9) * T`` with ``T`` a Student-t of
``df`` degrees of freedom (3 by default: finite variance, heavy tails). The noise scale grows
with ``|x|``. The exact conditional density is a scaled Student-t, so runs report the Bayes
limit. A Gaussian family must widen to cover the outliers or pay for them; a Student-t family
can keep a narrow core and heavy tails at once.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from probreg.datasets import Data, Dataset, size_params, split_draw
from probreg.hookspecs import hookimpl
from probreg.params import Param


def noise_scale(x: np.ndarray, noise: float) -> np.ndarray:
    """The Student-t scale at ``x``."""
    return noise * (0.5 + 0.25 * np.asarray(x, np.float64) ** 2 / 9.0)


class HeavySine(Dataset):
    """Sine with heavy-tailed Student-t noise (df=3 by default); exact density."""

    name = "heavy-sine"
    params = (
        *size_params(n=2000, val=500, test=5000),
        Param("df", "float", 3.0, "degrees of freedom of the noise", minimum=1.0, maximum=1e6),
        Param(
            "noise",
            "float",
            0.2,
            "noise level: the Student-t scale is 0.5 x noise at x = 0 and 0.75 x noise at |x| = 3",
            minimum=1e-3,
        ),
    )
    test_specs = ("heavy-sine:n=200,val=50,test=50",)

    def load(self, seed: int) -> Data:
        o = self.options
        rng = np.random.default_rng(seed)
        total = o["n"] + o["val"] + o["test"]
        x = rng.uniform(-3.0, 3.0, total)
        y = np.sin(x) + noise_scale(x, o["noise"]) * rng.standard_t(o["df"], total)

        def log_density(x_: np.ndarray, y_: np.ndarray) -> np.ndarray:
            x_, y_ = np.ravel(x_).astype(np.float64), np.ravel(y_).astype(np.float64)
            scale = noise_scale(x_, o["noise"])
            return stats.t.logpdf(y_, o["df"], loc=np.sin(x_), scale=scale)

        return split_draw(
            x[:, None], y[:, None], o, x_names=("x",), y_names=("y",), log_density=log_density
        )


@hookimpl
def register_datasets(register):
    register(HeavySine)
