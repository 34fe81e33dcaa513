"""The built-in predictive families (one file each under :mod:`probreg.families`)."""

from __future__ import annotations

from probreg.families.discrete import DiscreteFamily
from probreg.families.fixed_gaussian import FixedGaussianFamily
from probreg.families.gaussian_mixture import GaussianMixtureFamily
from probreg.families.gaussian_mixture_full import FullCovarianceGaussianMixtureFamily
from probreg.families.spline import SplineFamily
from probreg.families.student_t_mixture import StudentTMixtureFamily
from probreg.hookspecs import hookimpl


@hookimpl
def register_families(register):
    register(GaussianMixtureFamily)
    register(FixedGaussianFamily)
    register(StudentTMixtureFamily)
    register(FullCovarianceGaussianMixtureFamily)
    register(DiscreteFamily)
    register(SplineFamily)
