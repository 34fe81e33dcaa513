"""Sampler ``mean``: every draw is the predictive mean (what an MSE network predicts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.hookspecs import hookimpl
from probreg.samplers import Sampler

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import Distribution


class Mean(Sampler):
    """The predictive mean, repeated: a deterministic point prediction."""

    name = "mean"

    def sample(
        self, distribution: Distribution, rng: np.random.Generator, num_samples: int = 1
    ) -> np.ndarray:
        mean = distribution.mean()
        return np.broadcast_to(mean, (num_samples, *mean.shape)).copy()


@hookimpl
def register_samplers(register):
    register(Mean)
