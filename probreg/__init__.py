"""probreg: probabilistic regression with plugins.

The public API is imported lazily, so ``import probreg`` (and ``probreg --help``) stays fast and
does not start TensorFlow:

>>> import probreg
>>> result = probreg.run(dataset="spiral", head="mdn", seed=0)  # doctest: +SKIP
>>> result.metrics["test"]["nll"]  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "run": "probreg.api",
    "compare": "probreg.comparison",
    "load_run": "probreg.runs",
    "RunResult": "probreg.api",
    "ComparisonResult": "probreg.comparison",
    "LoadedRun": "probreg.runs",
    "ProbregError": "probreg.errors",
    "Regressor": "probreg.estimator",
    "tune": "probreg.tuning",
    "TuneResult": "probreg.tuning",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'probreg' has no attribute {name!r}")
