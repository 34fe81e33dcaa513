"""Held-out scores of a predictive distribution. Lower is better except for coverage.

- ``nll``: mean of ``-log p(y | x)``, nats per test point (in the data's own units);
- ``crps``: continuous ranked probability score, averaged over points and coordinates
  (scoringrules' closed form for Gaussian mixtures);
- ``rmse``: root-mean-square error of the predictive mean;
- ``coverage_90``: share of coordinates inside their central 90% predictive interval
  (0.90 for a calibrated model).
"""

from __future__ import annotations

import math

import numpy as np

from probreg.distributions import Distribution
from probreg.errors import TrainingError

METRICS = ("nll", "crps", "rmse", "coverage_90")


def evaluate(distribution: Distribution, y: np.ndarray) -> dict[str, float]:
    """``nll``, ``crps``, ``rmse`` and ``coverage_90`` of ``distribution`` at targets ``y``.

    Raises :class:`TrainingError` instead of returning a non-finite score.
    """
    y = np.asarray(y, np.float64)
    low, high = distribution.quantile(0.05), distribution.quantile(0.95)
    scores = {
        "nll": float(-np.mean(distribution.log_prob(y))),
        "crps": float(np.mean(distribution.crps(y))),
        "rmse": float(np.sqrt(np.mean((distribution.mean() - y) ** 2))),
        "coverage_90": float(np.mean((y >= low) & (y <= high))),
    }
    bad = [name for name, value in scores.items() if not math.isfinite(value)]
    if bad:
        raise TrainingError(
            f"the model's predictions give a non-finite {', '.join(bad)} on the test data; "
            "the head produced NaN or infinite parameters"
        )
    return scores


def bayes_nll(log_density, x: np.ndarray, y: np.ndarray) -> float | None:
    """The Bayes-limit NLL of the test points, if the dataset knows its exact density."""
    if log_density is None:
        return None
    return float(-np.mean(log_density(x, y)))
