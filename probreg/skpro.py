"""An skpro adapter: probreg heads as ``skpro`` probabilistic regressors (``pip install
"probreg[skpro]"``).

:class:`ProbregRegressor` wraps :class:`probreg.Regressor`. Its ``predict_proba`` returns an
skpro distribution: a per-row :class:`skpro.distributions.NormalMixture` where the family is a
Gaussian mixture (the ``mdn`` and ``mlp`` heads), otherwise an
:class:`skpro.distributions.Empirical` of draws from the predictive distribution.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from skpro.regression.base import BaseProbaRegressor

#: Draws per row for families without an exact skpro counterpart.
EMPIRICAL_DRAWS = 500


class ProbregRegressor(BaseProbaRegressor):
    """A probreg head as an skpro probabilistic regressor; arguments as probreg.Regressor.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from probreg.skpro import ProbregRegressor
    >>> X = pd.DataFrame({"x": np.linspace(-1.0, 1.0, 60)})
    >>> y = pd.DataFrame({"y": 2.0 * X["x"]})
    >>> model = ProbregRegressor("mdn:components=2,hidden=8", epochs=2, jit_compile=False)
    >>> model.fit(X, y).predict_proba(X.head(3)).mean().shape
    (3, 1)
    """

    _tags: ClassVar[dict[str, Any]] = {
        "authors": ["probreg developers"],
        "capability:multioutput": True,
        "capability:missing": False,
        "X_inner_mtype": "pd_DataFrame_Table",
        "y_inner_mtype": "pd_DataFrame_Table",
        "python_dependencies": ["probreg", "keras"],
    }

    def __init__(
        self,
        head: Any = "mdn",
        sampler: Any = "ancestral",
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        patience: int | None = None,
        validation_fraction: float = 0.1,
        random_state: Any = None,
        jit_compile: bool | str = "auto",
    ) -> None:
        self.head = head
        self.sampler = sampler
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.jit_compile = jit_compile
        super().__init__()

    def _fit(self, X: pd.DataFrame, y: pd.DataFrame) -> ProbregRegressor:
        from probreg.estimator import Regressor

        params = self.get_params(deep=False)
        self.regressor_ = Regressor(**params).fit(_str_columns(X), y)
        return self

    def _predict(self, X: pd.DataFrame) -> pd.DataFrame:
        mean = self.regressor_.predict_proba(_str_columns(X)).mean()
        return pd.DataFrame(mean, index=X.index, columns=self._y_metadata["feature_names"])

    def _predict_proba(self, X: pd.DataFrame):
        from skpro.distributions import Empirical, NormalMixture

        distribution = self.regressor_.predict_proba(_str_columns(X))
        columns = pd.Index(self._y_metadata["feature_names"])
        params = distribution.params()
        if type(distribution).__name__ == "GaussianMixture":
            return NormalMixture(
                pi=params["weight"],
                mu=params["mean"],
                sigma=params["scale"],
                index=X.index,
                columns=columns,
            )
        rng = np.random.default_rng(0 if self.random_state is None else self.random_state)
        draws = distribution.sample(rng, EMPIRICAL_DRAWS)  # (s, n, d)
        s, n, d = draws.shape
        index = pd.MultiIndex.from_product([range(s), X.index])
        return Empirical(
            pd.DataFrame(draws.reshape(s * n, d), index=index, columns=columns),
            index=X.index,
            columns=columns,
        )

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        """Tiny, fast configurations for skpro's estimator checks."""
        tiny = {"epochs": 1, "batch_size": 32, "random_state": 0, "jit_compile": False}
        return [
            {"head": "mdn:components=2,hidden=8", **tiny},
            {"head": "mdn:components=2,hidden=8,family=student_t", **tiny},
        ]


def _str_columns(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` with string column names (scikit-learn checks names only when all are strings)."""
    return X.set_axis([str(c) for c in X.columns], axis=1)
