"""Sequences for MDN-RNNs: a synthetic task whose next step is bimodal, windows, and generation.

:func:`coin_walk` draws series whose every step goes up or down by ``step`` on a fair coin
(plus a little noise), so ``p(x[t+1] | past)`` has two modes, ``x[t] + step`` and
``x[t] - step``: a network trained for the mean predicts ``x[t]``, a value the series never
takes. :func:`windows` cuts series into (inputs, next value) pairs for next-step training, and
:func:`generate` continues a prefix for many steps by sampling each next value from a fitted
:class:`probreg.Regressor` and feeding it back.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def coin_walk(
    n: int, length: int, step: float = 1.0, noise: float = 0.1, seed: int = 0
) -> np.ndarray:
    """``n`` series of ``length`` values, shape ``(n, length)``, starting near 0."""
    rng = np.random.default_rng(seed)
    moves = step * rng.choice([-1.0, 1.0], (n, length)) + noise * rng.standard_normal((n, length))
    moves[:, 0] = noise * rng.standard_normal(n)
    return np.cumsum(moves, axis=1)


def windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every run of ``window`` values and the value after it: ``(m, window, 1)``, ``(m, 1)``."""
    series = np.asarray(series, np.float64)
    length = series.shape[1]
    if not 1 <= window < length:
        raise ValueError(f"window must lie between 1 and {length - 1}, not {window}")
    starts = np.arange(length - window)
    index = starts[:, None] + np.arange(window)
    x = series[:, index]  # (n, starts, window)
    y = series[:, starts + window]
    return x.reshape(-1, window, 1), y.reshape(-1, 1)


def generate(
    model: Any, prefix: np.ndarray, steps: int, paths: int = 1, random_state: int | None = None
) -> np.ndarray:
    """Continue ``prefix`` (``window`` values) ``steps`` times by ancestral sampling.

    ``model`` is a fitted :class:`probreg.Regressor` on windows of shape ``(window, 1)``.
    Returns ``(paths, window + steps)``: each path starts with the prefix, then its draws.
    """
    rng = np.random.default_rng(random_state)
    prefix = np.asarray(prefix, np.float64).reshape(-1)
    window = len(prefix)
    out = np.empty((paths, window + steps))
    out[:, :window] = prefix
    for t in range(window, window + steps):
        current = out[:, t - window : t, None]
        draw = model.predict_proba(current).sample(rng, 1)[0]  # (paths, 1)
        out[:, t] = draw[:, 0]
    return out
