"""Predictive distributions (numpy): what heads produce and samplers and metrics consume."""

from probreg.distributions.base import AffineTransformed, Distribution
from probreg.distributions.gaussian_mixture import GaussianMixture

__all__ = ["AffineTransformed", "Distribution", "GaussianMixture"]
