"""Predictive distributions (numpy): what heads produce and samplers and metrics consume.

Each family's numpy distribution lives in its family file (:mod:`probreg.families`); the
built-in ones are re-exported here (imported on first use, as the family files import this
package themselves).
"""

from typing import Any

from probreg.distributions.base import AffineTransformed, Distribution, EqualMixture

_FAMILY_CLASSES = {
    "GaussianMixture": "probreg.families.gaussian_mixture",
    "StudentTMixture": "probreg.families.student_t_mixture",
    "FullCovarianceGaussianMixture": "probreg.families.gaussian_mixture_full",
    "DiscretizedLogisticMixture": "probreg.families.discrete",
    "LogisticMixture": "probreg.families.discrete",
    "SplineFlow": "probreg.families.spline",
}

__all__ = ["AffineTransformed", "Distribution", "EqualMixture", *_FAMILY_CLASSES]


def __getattr__(name: str) -> Any:
    if name in _FAMILY_CLASSES:
        import importlib

        return getattr(importlib.import_module(_FAMILY_CLASSES[name]), name)
    raise AttributeError(f"module 'probreg.distributions' has no attribute {name!r}")
