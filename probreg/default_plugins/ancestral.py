"""Sampler ``ancestral``: pick a component, then draw from it, with two temperatures.

For each row and draw: choose component ``k`` with probability ``softmax(log w / temperature)_k``,
then draw ``y ~ N(mean_k, (sigma_temperature * scale_k)^2)``.

- ``temperature`` divides the log-weights. 1 keeps the fitted weights; towards 0 it always picks
  the heaviest component; large values make all components equally likely. It never moves or
  widens a component.
- ``sigma_temperature`` multiplies every component's standard deviation. 1 keeps the fitted
  spread; 0.5 halves it (draws hug the component means). The original Keras example multiplied
  the covariance instead, so its ``sigma_temp=s`` equals ``sigma_temperature=sqrt(s)`` here.

Fully vectorised over rows and draws (see :meth:`GaussianMixture.sample`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.hookspecs import hookimpl
from probreg.params import Param
from probreg.samplers import Sampler

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import Distribution


class Ancestral(Sampler):
    """Draw from the predictive distribution; temperatures sharpen or flatten a mixture."""

    name = "ancestral"
    params = (
        Param("temperature", "float", 1.0, "divides the mixture log-weights", minimum=1e-6),
        Param(
            "sigma_temperature",
            "float",
            1.0,
            "multiplies component standard deviations",
            minimum=1e-6,
        ),
    )

    def sample(
        self, distribution: Distribution, rng: np.random.Generator, num_samples: int = 1
    ) -> np.ndarray:
        tempered = distribution.with_temperature(
            self.options["temperature"], self.options["sigma_temperature"]
        )
        return tempered.sample(rng, num_samples)


@hookimpl
def register_samplers(register):
    register(Ancestral)
