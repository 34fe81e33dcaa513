"""Held-out scores of a predictive distribution. Lower is better except for coverage.

- ``nll``: mean of ``-log p(y | x)``, nats per test point (in the data's own units);
- ``crps``: continuous ranked probability score, averaged over points and coordinates
  (scoringrules' closed form for Gaussian mixtures);
- ``rmse``: root-mean-square error of the predictive mean;
- ``coverage_90``: share of coordinates inside their central 90% predictive interval
  (0.90 for a calibrated model);
- for two or more outputs, ``energy`` (energy score) and ``variogram`` (variogram score of
  order 0.5), both estimated from draws with scoringrules: multivariate scores that see how
  the outputs vary together, which the marginal CRPS and coverage cannot;
- the calibration scores of :mod:`probreg.calibration` (``calibration_error``,
  ``sharpness_50``, ``sharpness_90``, ``interval_score_90``, ``wis``, ``pinball``).
"""

from __future__ import annotations

import math

import numpy as np

from probreg import calibration
from probreg.distributions import Distribution
from probreg.errors import TrainingError

METRICS = ("nll", "crps", "rmse", "coverage_90", *calibration.SCORES)
#: Scores added for two or more outputs (estimated from :data:`MULTIVARIATE_DRAWS` draws).
MULTIVARIATE = ("energy", "variogram")
MULTIVARIATE_DRAWS = 500

#: One line on what each score rewards (the reports print these).
SCORE_NOTES = {
    "nll": "NLL rewards putting high density where the targets fall, joint over all outputs "
    "(for integer targets under a discrete family it is a log-mass, not a log-density)",
    "crps": "CRPS rewards sharp, calibrated marginal distributions, in the target's units",
    "energy": "the energy score generalises the CRPS to the joint distribution: it rewards "
    "draws close to the target vector and, less strongly, the right dependence between outputs",
    "variogram": "the variogram score compares the spread of differences between pairs of "
    "outputs with the observed ones: it rewards the right correlation structure",
    **calibration.SCORE_NOTES,
}

#: Columns of a ranking (``compare``): (key, header, which value is best).
COLUMNS = (
    ("nll", "NLL", "min"),
    ("bayes_gap", "gap to Bayes", "min"),
    ("crps", "CRPS", "min"),
    ("energy", "energy score", "min"),
    ("variogram", "variogram score", "min"),
    ("rmse", "RMSE", "min"),
    ("coverage_90", "coverage 90%", "closest to 0.9"),
    *calibration.COLUMNS,
    ("train_seconds", "train s", "min"),
    ("parameters", "parameters", None),
)


def evaluate(distribution: Distribution, y: np.ndarray) -> dict[str, float]:
    """``nll``, ``crps``, ``rmse`` and ``coverage_90`` of ``distribution`` at targets ``y``.

    Raises :class:`TrainingError` instead of returning a non-finite score.
    """
    y = np.asarray(y, np.float64)
    low, high = distribution.quantile(0.05), distribution.quantile(0.95)
    quantiles = calibration.Quantiles(distribution)  # each level once, shared by the scores
    quantiles.seed(0.05, low)
    quantiles.seed(0.95, high)
    scores = {
        "nll": float(-np.mean(distribution.log_prob(y))),
        "crps": float(np.mean(distribution.crps(y))),
        "rmse": float(np.sqrt(np.mean((distribution.mean() - y) ** 2))),
        "coverage_90": float(np.mean((y >= low) & (y <= high))),
    }
    if y.ndim == 2 and y.shape[1] > 1:
        scores.update(multivariate_scores(distribution, y))
    scores.update(calibration.scores(distribution, y, quantiles))
    bad = [name for name, value in scores.items() if not math.isfinite(value)]
    if bad:
        raise TrainingError(
            f"the model's predictions give a non-finite {', '.join(bad)} on the test data; "
            "the head produced NaN or infinite parameters"
        )
    return scores


def multivariate_scores(
    distribution: Distribution, y: np.ndarray, draws: int = MULTIVARIATE_DRAWS, seed: int = 0
) -> dict[str, float]:
    """Mean energy and variogram (``p = 0.5``) scores of ``y`` ``(n, d)``, from ``draws``
    draws per row (scoringrules' ensemble estimators; the same seed gives the same scores)."""
    import scoringrules as sr

    y = np.asarray(y, np.float64)
    ensemble = np.moveaxis(distribution.sample(np.random.default_rng(seed), draws), 0, 1)
    energy, variogram = [], []
    for start in range(0, len(y), 256):  # (rows, draws, d) in chunks: bounded memory
        part, obs = ensemble[start : start + 256], y[start : start + 256]
        energy.append(np.asarray(sr.es_ensemble(obs, part, backend="numpy")))
        variogram.append(np.asarray(sr.vs_ensemble(obs, part, backend="numpy")))
    return {
        "energy": float(np.mean(np.concatenate(energy))),
        "variogram": float(np.mean(np.concatenate(variogram))),
    }


def bayes_nll(log_density, x: np.ndarray, y: np.ndarray) -> float | None:
    """The Bayes-limit NLL of the test points, if the dataset knows its exact density."""
    from probreg.datasets import exact_log_density

    if log_density is None:
        return None
    return float(-np.mean(exact_log_density(log_density, x, y)))
