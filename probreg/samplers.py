"""Sampler plugins: turn a predictive distribution into draws (for pictures and ``predict``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.plugin import Plugin

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import Distribution


class Sampler(Plugin):
    """Base class of sampler plugins.

    ``sample`` sees only the :class:`~probreg.distributions.Distribution`, never the model, and
    must draw every random number from ``rng`` so that ``--seed`` fixes the result.
    """

    kind = "sampler"

    def sample(
        self, distribution: Distribution, rng: np.random.Generator, num_samples: int = 1
    ) -> np.ndarray:
        """Draws of shape ``(num_samples, n, d)``."""
        raise NotImplementedError
