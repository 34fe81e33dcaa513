"""Where :class:`GaussianMixture` lived before families: kept so old imports keep working.

The class now lives in its family file, :mod:`probreg.families.gaussian_mixture`.
"""

from probreg.families.gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixture"]
