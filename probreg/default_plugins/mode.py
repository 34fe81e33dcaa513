"""Sampler ``mode``: every draw is the most probable point of the predictive distribution.

For a Gaussian mixture this is the component mean with the highest mixture density (see
:meth:`GaussianMixture.mode`). Unlike the mean, it always lies on a branch of a many-valued
mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.hookspecs import hookimpl
from probreg.samplers import Sampler

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import Distribution


class Mode(Sampler):
    """The most probable point, repeated: a point prediction that stays on a branch."""

    name = "mode"

    def sample(
        self, distribution: Distribution, rng: np.random.Generator, num_samples: int = 1
    ) -> np.ndarray:
        mode = distribution.mode()
        return np.broadcast_to(mode, (num_samples, *mode.shape)).copy()


@hookimpl
def register_samplers(register):
    register(Mode)
