"""``probreg.Regressor``: a scikit-learn estimator around a probreg head.

It fits with the same code as ``probreg run`` (:func:`probreg.api.train_head`) on the arrays or
pandas objects you give it, holding out ``validation_fraction`` of the rows for early stopping,
and predicts whole distributions: the mean, quantiles, intervals, draws and the
:class:`~probreg.distributions.Distribution` itself. ``score`` is the mean log-likelihood, so
``GridSearchCV`` and ``cross_val_score`` pick the model with the best predictive density.

Head options are ordinary estimator parameters too: ``set_params(components=5)`` rewrites the
head spec (``"mdn"`` becomes ``"mdn:components=5"``), so a grid can name ``components``
directly, or ``regressor__components`` inside a ``Pipeline``.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    check_random_state,
    validate_data,
)

from probreg import plugins
from probreg.distributions import Distribution
from probreg.errors import UsageError, shown
from probreg.params import is_flat_list, is_integer

#: Training options that may be given as estimator parameters; ``None`` keeps the head's own.
TRAINING_OPTIONS = ("epochs", "batch_size", "learning_rate", "patience")


class EstimatorError(UsageError, ValueError):
    """A one-line error that scikit-learn also recognises as a ``ValueError``."""


class Regressor(RegressorMixin, BaseEstimator):
    """Probabilistic regression with a probreg head, as a scikit-learn estimator.

    Args:
        head: head spec (``"mdn:components=5"``) or head instance.
        sampler: sampler spec used by :meth:`sample`.
        epochs, batch_size, learning_rate, patience: override the head's training options.
        validation_fraction: share of the fitted rows held out for early stopping.
        random_state: seed (or ``RandomState``) for the split, initialisation and batch order;
            ``None`` draws a fresh one at each fit.
        verbose: show the training progress bar.
        jit_compile: XLA-compile the training step: ``"auto"`` (as ``probreg run`` does: always
            on JAX; on TensorFlow only for runs of at least 2,000 gradient steps, where
            compiling pays off), ``True`` or ``False``.
        trunk: a Keras layer or model, or a function returning one, that maps the inputs to
            features; the head's distribution layer sits on top. A layer or model is cloned
            (fresh weights) at every fit.
    """

    def __init__(
        self,
        head: Any = "mdn",
        sampler: Any = "ancestral",
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        patience: int | None = None,
        validation_fraction: float = 0.1,
        random_state: Any = None,
        verbose: bool = False,
        jit_compile: bool | str = "auto",
        trunk: Any = None,
    ) -> None:
        self.head = head
        self.sampler = sampler
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose
        self.jit_compile = jit_compile
        self.trunk = trunk

    # -- parameters ---------------------------------------------------------------------------

    def set_params(self, **params: Any) -> Regressor:
        """Set estimator parameters; other names are head options and edit the head spec."""
        own = set(self._get_param_names())
        extra = {k: params.pop(k) for k in list(params) if k not in own and "__" not in k}
        super().set_params(**params)
        if extra:
            head = _create("head", self.head, **extra)
            self.head = head.spec if isinstance(self.head, str) else head
        return self

    def _make_head(self):
        """The head to fit: the ``head`` spec with the training options given here on top."""
        overrides = {k: getattr(self, k) for k in TRAINING_OPTIONS if getattr(self, k) is not None}
        return _create("head", self.head, **overrides)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        # score is the log-likelihood, not R^2, and tiny test models fit only a few epochs.
        tags.regressor_tags.poor_score = True
        tags.input_tags.allow_nan = False
        return tags

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> Regressor:
        """Fit on ``X`` (rows, features) or, with a trunk, (rows, ...) and ``y`` (rows[, d])."""
        from probreg import api
        from probreg.datasets import Data

        head = self._make_head()
        sampler = _create("sampler", self.sampler)
        y_names = _y_names(y)
        X, y = validate_data(
            self, X, y, multi_output=True, y_numeric=True, allow_nd=self.trunk is not None
        )
        self._y_1d = np.ndim(y) == 1
        y = np.asarray(y, np.float64).reshape(len(y), -1)
        if y_names is None:
            y_names = ["y"] if y.shape[1] == 1 else [f"y{j}" for j in range(y.shape[1])]
        x_names = _x_names(getattr(self, "feature_names_in_", None), X)
        if self.jit_compile not in (True, False, "auto"):
            raise EstimatorError(
                f"jit_compile must be True, False or 'auto', not {self.jit_compile!r}"
            )
        fraction = self.validation_fraction
        if not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
            raise EstimatorError(
                f"validation_fraction must lie strictly between 0 and 1, not {fraction!r}"
            )
        n = len(X)
        n_val = max(1, round(fraction * n))
        if n - n_val < 3:
            raise EstimatorError(
                f"Regressor needs at least 3 training rows and 1 validation row; got {n} "
                f"sample{'s' if n != 1 else ''}"
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        order = np.random.default_rng(seed).permutation(n)
        train, val = order[n_val:], order[:n_val]
        # Inputs of any shape (n, T, F, ...) travel flat; the trunk first restores their shape.
        self.input_shape_ = tuple(X.shape[1:])
        X = X.reshape(n, -1)
        data = Data(
            X[train], y[train], X[val], y[val], X[val], y[val], tuple(x_names), tuple(y_names)
        )
        trunk = _trunk_factory(self.trunk, self.input_shape_)
        kwargs = {} if trunk is None else {"trunk": trunk}
        if self.jit_compile != "auto":  # train_head reads the recipe from head.training()
            recipe = dataclasses.replace(head.training(), jit_compile=self.jit_compile)
            head.training = lambda: recipe
        try:
            predictor, fitted = api.train_head(head, data, seed, verbose=self.verbose, **kwargs)
        except EstimatorError:
            raise
        except UsageError as error:  # e.g. a constant target: a ValueError, as sklearn's are
            raise EstimatorError(str(error)) from None
        finally:
            vars(head).pop("training", None)
        self.predictor_ = predictor
        self.head_ = head
        self.sampler_ = sampler
        self.seed_ = seed
        self.y_names_ = list(y_names)
        self.x_names_ = list(x_names)
        self.history_ = fitted.history
        self.fit_result_ = fitted
        self.n_epochs_ = fitted.epochs
        self._validation = (data.x_val, data.y_val, len(data.x_train))  # for save()
        return self

    # -- predictions --------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> Distribution:
        """The predictive distribution at each row of ``X``, in the targets' own units."""
        check_is_fitted(self)
        shape = self.input_shape_
        X = validate_data(self, X, reset=False, allow_nd=len(shape) > 1)
        if X.shape[1:] != shape:
            raise EstimatorError(f"X has rows of shape {X.shape[1:]}; this model takes {shape}")
        return self.predictor_.distribution(X.reshape(len(X), -1))

    def predict(self, X: Any):
        """The predictive mean: ``(n,)`` for a 1-D target, else ``(n, d)``."""
        mean = self.predict_proba(X).mean()
        return self._frame(X, mean, self.y_names_, series=self._y_1d)

    def predict_quantiles(self, X: Any, q: float | Sequence[float] = (0.05, 0.5, 0.95)):
        """Quantiles at levels ``q``: ``(n, len(q))`` for a 1-D target, else ``(n, d, len(q))``.

        Pandas input gives a DataFrame with columns ``<y>_q<level>``.
        """
        check_is_fitted(self)
        levels = _levels(q)
        from probreg.predict import level_names, level_text

        if _is_pandas(X):  # a frame's columns must differ, as probreg predict's do
            try:
                named = level_names(levels)
            except UsageError as error:
                raise EstimatorError(str(error)) from None
        else:  # numpy output may repeat a level
            named = [level_text(level) for level in levels]
        names = [f"{y}_q{name}" for y in self.y_names_ for name in named]
        distribution = self.predict_proba(X)
        values = np.stack([distribution.quantile(level) for level in levels], axis=-1)
        return self._table(X, values, names)

    def predict_interval(self, X: Any, coverage: float = 0.9):
        """The central interval holding ``coverage`` of the predictive mass.

        ``(n, 2)`` (lower, upper) for a 1-D target, else ``(n, d, 2)``; pandas input gives a
        DataFrame with columns ``<y>_lower`` and ``<y>_upper``.
        """
        if not isinstance(coverage, numbers.Real) or not 0.0 < coverage < 1.0:
            raise EstimatorError(f"coverage must lie strictly between 0 and 1, not {coverage!r}")
        distribution = self.predict_proba(X)
        tail = (1.0 - coverage) / 2.0
        values = np.stack([distribution.quantile(tail), distribution.quantile(1.0 - tail)], -1)
        names = [f"{y}_{side}" for y in self.y_names_ for side in ("lower", "upper")]
        return self._table(X, values, names)

    def sample(self, X: Any, n_samples: int = 1, random_state: Any = None):
        """``n_samples`` draws per row from the sampler: ``(n, n_samples)`` for a 1-D target,
        else ``(n, n_samples, d)``; pandas input gives columns ``<y>_sample_<i>``."""
        if not is_integer(n_samples) or n_samples < 1:
            raise EstimatorError(f"n_samples must be a positive integer, not {n_samples!r}")
        distribution = self.predict_proba(X)
        seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
        draws = self.sampler_.sample(distribution, np.random.default_rng(seed), n_samples)
        values = np.moveaxis(draws, 0, 1)  # (n, s, d)
        if _is_pandas(X):
            names = [f"{y}_sample_{i + 1}" for i in range(n_samples) for y in self.y_names_]
            return _pandas_frame(X, values.reshape(len(values), -1), names)
        return values[..., 0] if self._y_1d else values

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean log-likelihood of ``y`` under the predictive distribution (higher is better),
        weighted by ``sample_weight`` (non-negative, not all 0) if given."""
        check_is_fitted(self)
        given = np.shape(y)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        y = y.reshape(len(y), -1)
        if y.shape[1] != len(self.y_names_):
            raise EstimatorError(
                f"y has shape {given}; this model predicts {len(self.y_names_)} target(s)"
            )
        weights = None
        if sample_weight is not None:
            weights = check_array(
                sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
            )
            if weights.shape != (len(y),) or weights.min() < 0 or weights.sum() <= 0:
                raise EstimatorError(
                    f"sample_weight must hold one non-negative weight per row of y ({len(y)}), "
                    f"not all 0; got shape {weights.shape}"
                )
        distribution = self.predict_proba(X)
        if distribution.batch_size != len(y):
            raise EstimatorError(f"y has {len(y)} rows but X has {distribution.batch_size}")
        return float(np.average(distribution.log_prob(y), weights=weights))

    # -- saving -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write a run folder that :func:`probreg.load_run` (and ``probreg predict``) reads."""
        from probreg import api, rundir
        from probreg.runs import family_record, plugin_record

        check_is_fitted(self)
        if not hasattr(self, "fit_result_"):
            raise EstimatorError(
                "this Regressor was loaded from a run folder; copy that folder instead of saving "
                "it again"
            )
        predictor, fitted = self.predictor_, self.fit_result_
        x_val, y_val, train_rows = self._validation
        versions = api.versions()
        config = {
            "dataset": {"spec": "python", "package": "probreg", "version": versions["probreg"]},
            "head": plugin_record(self.head_),
            "sampler": plugin_record(self.sampler_),
            **family_record(self.head_),
            "seed": self.seed_,
            "x_names": self.x_names_,
            "y_names": self.y_names_,
            "scaling": {"x": predictor.x_scaling.to_dict(), "y": predictor.y_scaling.to_dict()},
            "estimator": {
                "validation_fraction": self.validation_fraction,
                "random_state": _saved_seed(self.random_state),
                "jit_compile": "auto" if self.jit_compile == "auto" else bool(self.jit_compile),
                "y_1d": self._y_1d,
                "feature_names": hasattr(self, "feature_names_in_"),
                "input_shape": list(self.input_shape_),
                "custom_classes": _custom_classes(predictor.model),
            },
            "versions": versions,
        }
        nll = -float(np.mean(predictor.distribution(x_val).log_prob(y_val)))
        metrics = {
            "dataset": "python",
            "head": self.head_.spec,
            "sampler": self.sampler_.spec,
            "seed": self.seed_,
            "status": fitted.status,
            "epochs": fitted.epochs,
            "best_epoch": fitted.best_epoch,
            "train_seconds": round(fitted.seconds, 3),
            "parameters": int(predictor.model.count_params()),
            "rows": {"train": train_rows, "val": len(x_val), "test": 0},
            "validation": {"nll": nll},
            "test": None,
            "versions": versions,
        }
        with rundir.claim(path, force=force, kind="run") as claim:
            rundir.write_run_files(claim.staging, config, predictor.model, self.history_)
            rundir.write_metrics(claim.staging, metrics)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Regressor:
        """A fitted Regressor from a run folder (written by :meth:`save` or ``probreg run``)."""
        from probreg.runs import load_run

        try:
            run = load_run(path)
        except UsageError as error:
            _explain_custom_classes(path, error)
            raise
        saved = run.config.get("estimator", {})
        estimator = cls(
            head=run.predictor.head.spec,
            sampler=run.sampler.spec,
            **{
                k: saved[k]
                for k in ("validation_fraction", "random_state", "jit_compile")
                if k in saved
            },
        )
        estimator.predictor_ = run.predictor
        estimator.head_ = run.predictor.head
        estimator.sampler_ = run.sampler
        estimator.seed_ = run.config.get("seed")
        estimator.x_names_ = list(run.x_names)
        estimator.y_names_ = list(run.y_names)
        estimator.n_features_in_ = len(run.x_names)
        estimator.input_shape_ = (len(run.x_names),)
        estimator._y_1d = saved.get("y_1d", len(run.y_names) == 1)
        if "input_shape" in saved:
            estimator.input_shape_ = tuple(saved["input_shape"])
            estimator.n_features_in_ = estimator.input_shape_[0]
        if saved.get("feature_names", True):
            estimator.feature_names_in_ = np.asarray(run.x_names, dtype=object)
        return estimator

    # -- output shapes ------------------------------------------------------------------------

    def _table(self, X: Any, values: np.ndarray, names: list[str]):
        """``values`` (n, d, k) as (n, k) / (n, d, k) arrays, or a DataFrame for pandas input."""
        if _is_pandas(X):
            return _pandas_frame(X, values.reshape(len(values), -1), names)
        return values[:, 0, :] if self._y_1d else values

    def _frame(self, X: Any, values: np.ndarray, names: list[str], series: bool):
        if _is_pandas(X):
            if series:
                import pandas as pd

                return pd.Series(values[:, 0], index=X.index, name=names[0])
            return _pandas_frame(X, values, names)
        return values[:, 0] if series else values


def _saved_seed(random_state: Any) -> int | None:
    """``random_state`` as config.json can keep it: an int, else None (a ``RandomState``'s
    progress cannot be written down)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return None


def _custom_classes(model: Any) -> list[str]:
    """``module.Class`` of every layer in ``model`` that is not a Keras or probreg built-in."""
    found = {
        f"{type(layer).__module__}.{type(layer).__qualname__}"
        for layer in model._flatten_layers(include_self=False, recursive=True)
    }
    return sorted(name for name in found if not name.startswith(("keras.", "probreg.")))


def _explain_custom_classes(path: str | os.PathLike, error: UsageError) -> None:
    """Re-raise a failed load as a one-line error naming the trunk classes it needs, if any."""
    import json

    from probreg.runs import CONFIG

    try:
        config = json.loads((Path(path) / CONFIG).read_text(encoding="utf-8"))
        names = config["estimator"]["custom_classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if names:
        raise UsageError(
            f"the model in '{path}' uses layer classes that are not Keras built-ins: "
            f"{', '.join(names)}; import the module that defines them (each class registered "
            "with @keras.saving.register_keras_serializable) before loading"
        ) from error


def _create(kind: str, spec: Any, **overrides: Any):
    try:
        return plugins.create(kind, spec, **overrides)
    except UsageError as error:
        raise EstimatorError(str(error)) from None


def _is_pandas(X: Any) -> bool:
    return hasattr(X, "iloc") and hasattr(X, "index")


def _pandas_frame(X: Any, values: np.ndarray, names: list[str]):
    import pandas as pd

    return pd.DataFrame(values, index=X.index, columns=names)


def _y_names(y: Any) -> list[str] | None:
    if hasattr(y, "columns"):
        return [str(c) for c in y.columns]
    if hasattr(y, "iloc") and getattr(y, "name", None) is not None:
        return [str(y.name)]
    return None


def _x_names(feature_names: np.ndarray | None, X: np.ndarray) -> list[str]:
    if feature_names is not None:
        return [str(name) for name in feature_names]
    width = X.shape[1] if X.ndim == 2 else int(np.prod(X.shape[1:]))
    return [f"x{j}" for j in range(width)]


def _levels(q: float | Sequence[float]) -> list[float]:
    """``q`` (a level or a list of levels) as a list, each strictly in (0, 1)."""
    from probreg.predict import is_level

    levels = [q] if isinstance(q, numbers.Real) else q
    if not is_flat_list(levels) or len(levels) == 0:
        raise EstimatorError(f"q must be a level or a list of levels in (0, 1), not {shown(q)}")
    if not all(is_level(v) for v in levels):
        raise EstimatorError(f"quantile levels must lie strictly between 0 and 1, not {shown(q)}")
    return list(levels)  # as given: a float32 0.1 keeps its name, 0.1


def _trunk_factory(trunk: Any, input_shape: tuple[int, ...]) -> Callable[[], Any] | None:
    """A zero-argument function that returns a fresh trunk (new weights) at every call, so the
    layer a user passes in is never trained itself (:func:`probreg.heads.resolve_trunk`).

    Inputs reach the model flattened; for inputs with more than one axis per row the trunk
    starts with a ``Reshape`` back to ``input_shape`` (a Keras built-in, safe to reload).
    """
    if trunk is None:
        return None
    import keras

    from probreg.heads import resolve_trunk

    if not callable(trunk):  # Keras layers and models are callable too
        raise EstimatorError(
            f"trunk must be a Keras layer or model, or a function that returns one; got {trunk!r}"
        )

    def fresh():
        made = resolve_trunk(trunk, copy=True)
        if len(input_shape) == 1:
            return made
        return keras.Sequential([keras.layers.Reshape(input_shape), made], name="trunk")

    return fresh


__all__ = ["EstimatorError", "Regressor"]
