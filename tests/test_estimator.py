"""probreg.Regressor as a scikit-learn estimator: the estimator checks, pandas in and out,
pipelines, grid search, reproducibility and run folders."""

from __future__ import annotations

import pickle
import random
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from scipy import optimize, stats  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import probreg  # noqa: E402
from probreg import plugins  # noqa: E402
from probreg.estimator import EstimatorError, Regressor  # noqa: E402
from probreg.runs import Predictor, load_run  # noqa: E402

TINY = "mdn:components=3,hidden=16+16"

#: check_estimator checks that cannot apply, and why. All come from one design choice:
#: predict_proba returns the predictive distribution (a probreg Distribution, as in skpro),
#: not an array of class probabilities. The same checks pass for predict (tests below).
EXPECTED_FAILED_CHECKS = {
    "check_regressors_no_decision_function": (
        "asserts a regressor has no predict_proba; ours returns the predictive distribution"
    ),
    "check_estimators_pickle": "compares predict_proba outputs as arrays; ours is a Distribution",
    "check_methods_sample_order_invariance": (
        "compares predict_proba outputs as arrays; ours is a Distribution"
    ),
    "check_methods_subset_invariance": (
        "compares predict_proba outputs as arrays; ours is a Distribution"
    ),
    "check_fit_idempotent": "compares predict_proba outputs as arrays; ours is a Distribution",
}


def bimodal(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """``y = x +- 2 + noise`` with a coin flip, plus a categorical column that shifts y by 1."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    group = rng.choice(["a", "b"], n)
    sign = rng.choice([-1.0, 1.0], n)
    y = x + 2.0 * sign + (group == "b") + 0.2 * rng.standard_normal(n)
    return pd.DataFrame({"x": x, "group": group}), pd.Series(y, name="height")


@pytest.fixture(scope="module")
def fitted() -> tuple[Regressor, pd.DataFrame, pd.Series]:
    X, y = bimodal(800)
    X = X.assign(group=(X.group == "b").astype(float))
    model = Regressor(TINY, epochs=60, batch_size=64, random_state=0).fit(X, y)
    return model, X, y


def mixture_logpdf(distribution, y: np.ndarray) -> np.ndarray:
    """Independent reference: a 1-D Gaussian mixture's log-density with scipy."""
    p = distribution.params()
    dens = (p["weight"] * stats.norm.pdf(y[:, None], p["mean"][..., 0], p["scale"][..., 0])).sum(1)
    return np.log(dens)


def test_pandas_in_gives_named_pandas_out(fitted):
    model, X, _ = fitted
    rows = X.iloc[[5, 1, 9]]
    assert list(model.feature_names_in_) == ["x", "group"]
    mean = model.predict(rows)
    assert isinstance(mean, pd.Series) and mean.name == "height"
    assert list(mean.index) == [5, 1, 9]
    interval = model.predict_interval(rows, coverage=0.8)
    assert list(interval.columns) == ["height_lower", "height_upper"]
    quantiles = model.predict_quantiles(rows, [0.1, 0.5])
    assert list(quantiles.columns) == ["height_q0.1", "height_q0.5"]
    draws = model.sample(rows, 4, random_state=1)
    assert list(draws.columns) == [f"height_sample_{i}" for i in range(1, 5)]
    assert list(draws.index) == [5, 1, 9]
    # numpy in gives numpy out, with the sklearn shapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
        assert model.predict(rows.to_numpy()).shape == (3,)
        assert model.predict_interval(rows.to_numpy()).shape == (3, 2)
        assert model.predict_quantiles(rows.to_numpy(), [0.1, 0.5, 0.9]).shape == (3, 3)
        assert model.sample(rows.to_numpy(), 4).shape == (3, 4)


def test_score_checks_y_and_weights_as_fit_does(fitted):
    """A NaN target gave a NaN score (which GridSearchCV ranks silently); other shapes gave
    numpy's reshape errors."""
    model, X, y = fitted
    rows, target = X.iloc[:20], y.iloc[:20].to_numpy()
    weights = np.arange(1.0, 21.0)
    expected = np.average(model.predict_proba(rows).log_prob(target[:, None]), weights=weights)
    assert model.score(rows, target, sample_weight=weights) == pytest.approx(expected)
    for bad_y, bad_weights, fragment in [
        (np.where(np.arange(20) == 3, np.nan, target), None, "Input y contains NaN"),
        (target[:15], None, "y has 15 rows but X has 20"),
        (np.c_[target, target], None, r"y has shape \(20, 2\); this model predicts 1 target"),
        (np.array(["a"] * 20), None, "could not convert"),
        (target, np.ones(3), r"one non-negative weight per row of y \(20\).*shape \(3,\)"),
        (target, -weights, "one non-negative weight per row"),
        (target, 0 * weights, "not all 0"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            model.score(rows, bad_y, sample_weight=bad_weights)


def test_quantile_levels_are_checked_and_named_columns_stay_distinct(fitted):
    model, X, _ = fitted
    for levels, fragment in [
        ("0.5", "q must be a level or a list of levels in (0, 1), not '0.5'"),
        (None, "q must be a level or a list of levels in (0, 1), not None"),
        ([], "q must be a level or a list of levels in (0, 1), not []"),
        ([0.5, True], "quantile levels must lie strictly between 0 and 1"),
        # a DataFrame's columns would repeat: <y>_q0.5 twice, as probreg predict refuses
        ([0.5, 0.5], "quantile level 0.5 is given twice"),
        (np.array([0.25, 0.25]), "quantile level 0.25 is given twice"),
        (np.array([[0.1, 0.9], [0.2, 0.8]]), "not array([[0.1, 0.9], [0.2, 0.8]])"),
        ([[0.1], [0.9]], "quantile levels must lie strictly between 0 and 1"),
    ]:
        with pytest.raises(EstimatorError, match=re.escape(fragment)):
            model.predict_quantiles(X.iloc[:3], levels)
    with warnings.catch_warnings():  # numpy out has no names to clash: repeated levels are fine
        warnings.simplefilter("ignore", UserWarning)
        twice = model.predict_quantiles(X.iloc[:3].to_numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(twice[:, 0], twice[:, 1])
    assert model.predict_quantiles(X.iloc[:3], np.float32(0.5)).shape == (3, 1)
    named = model.predict_quantiles(X.iloc[:3], [np.float32(0.1), 0.1 + 0.2, 1e-05])
    assert [c.rpartition("_q")[2] for c in named.columns] == ["0.1", "0.3", "1e-05"]
    grid = model.predict_quantiles(X.iloc[:3], np.linspace(0.1, 0.9, 9))  # float64 levels
    assert [c.rpartition("_q")[2] for c in grid.columns][2:4] == ["0.3", "0.4"]
    with pytest.raises(EstimatorError, match="n_samples must be a positive integer, not True"):
        model.sample(X.iloc[:3], True)


def test_outputs_agree_with_an_independent_mixture(fitted):
    model, X, y = fitted
    rows = X.iloc[:40]
    distribution = model.predict_proba(rows)
    p = distribution.params()
    # the mean of the mixture
    expected_mean = (p["weight"] * p["mean"][..., 0]).sum(1)
    np.testing.assert_allclose(model.predict(rows), expected_mean, rtol=1e-6)
    # the interval ends solve F(y) = 0.05 and 0.95 for scipy's mixture CDF
    interval = model.predict_interval(rows, 0.9).to_numpy()
    for i in range(5):

        def cdf(v, level, i=i):
            return (
                p["weight"][i] * stats.norm.cdf(v, p["mean"][i, :, 0], p["scale"][i, :, 0])
            ).sum()

        for side, level in enumerate((0.05, 0.95)):
            root = optimize.brentq(lambda v, level=level: cdf(v, level) - level, -50, 50)
            assert interval[i, side] == pytest.approx(root, abs=1e-4)
    # score is the mean log-likelihood in the target's units
    expected = mixture_logpdf(distribution, y.iloc[:40].to_numpy()).mean()
    assert model.score(rows, y.iloc[:40]) == pytest.approx(expected, rel=1e-6)


def test_the_fit_finds_both_modes(fitted):
    model = fitted[0]
    rows = pd.DataFrame({"x": [0.0, 0.5], "group": [0.0, 1.0]})
    draws = model.sample(rows, 2000, random_state=0).to_numpy()
    centres = np.array([[-2.0, 2.0], [-0.5, 3.5]])  # x +- 2 (+ 1 in group b)
    for row, (low, high) in zip(draws, centres, strict=True):
        assert 0.3 < np.mean(np.abs(row - low) < 0.6) < 0.7
        assert 0.3 < np.mean(np.abs(row - high) < 0.6) < 0.7
    assert model.history_["val_loss"], "early stopping watches a validation loss"
    assert model.n_epochs_ <= 60


def test_pickle_keeps_predictions(fitted):
    model, X, _ = fitted
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X.iloc[:20]), model.predict(X.iloc[:20]))


def test_pickle_loads_in_a_fresh_process(fitted, tmp_path):
    """joblib's workers unpickle fitted estimators in new processes, where no family layer or
    loss has been registered with Keras yet."""
    model, X, _ = fitted
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    X.iloc[:20].to_pickle(tmp_path / "rows.pkl")
    script = (
        "import pickle, sys, numpy as np, pandas as pd; d = sys.argv[1]; "
        "m = pickle.load(open(d + '/model.pkl', 'rb')); "
        "np.save(d + '/mean.npy', m.predict(pd.read_pickle(d + '/rows.pkl')).to_numpy())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "mean.npy"), model.predict(X.iloc[:20]))


def test_pickles_holding_the_model_itself_still_load(fitted, monkeypatch):
    """Pickles written before the model travelled as its archive keep loading."""
    model, X, _ = fitted
    monkeypatch.setattr(
        Predictor, "__getstate__", lambda self: {**self.__dict__, "_compiled": None}
    )
    old = pickle.dumps(model)
    monkeypatch.undo()
    again = pickle.loads(old)
    np.testing.assert_array_equal(again.predict(X.iloc[:20]), model.predict(X.iloc[:20]))


def test_fit_leaves_the_global_random_generators_alone():
    X, y = bimodal(200, seed=2)
    np.random.seed(123)
    random.seed(123)
    Regressor(TINY, epochs=1, random_state=0, jit_compile=False).fit(X[["x"]], y)
    np.testing.assert_array_equal(np.random.rand(3), np.random.RandomState(123).rand(3))
    assert random.random() == random.Random(123).random()


def test_load_gives_back_the_estimator_parameters(tmp_path):
    X, y = bimodal(300, seed=3)
    X = X[["x"]]
    model = Regressor(
        TINY, epochs=3, validation_fraction=0.25, random_state=5, jit_compile=False
    ).fit(X, y)
    back = Regressor.load(model.save(tmp_path / "run"))
    params = back.get_params()
    assert (params["validation_fraction"], params["random_state"], params["jit_compile"]) == (
        0.25,
        5,
        False,
    )
    np.testing.assert_array_equal(clone(back).fit(X, y).predict(X), model.predict(X))


def test_save_writes_a_run_folder_that_load_run_reads(fitted, tmp_path):
    model, X, _ = fitted
    path = model.save(tmp_path / "run")
    run = load_run(path)
    assert run.x_names == ["x", "group"] and run.y_names == ["height"]
    np.testing.assert_allclose(
        run.distribution(X.iloc[:20].to_numpy()).mean()[:, 0], model.predict(X.iloc[:20])
    )
    back = Regressor.load(path)
    pd.testing.assert_series_equal(back.predict(X.iloc[:20]), model.predict(X.iloc[:20]))
    with pytest.raises(EstimatorError, match="loaded from a run folder"):
        back.save(tmp_path / "again")
    assert run.metrics["rows"] == {"train": 720, "val": 80, "test": 0}
    with pytest.raises(probreg.ProbregError, match="already exists"):
        model.save(path)


def test_clone_then_fit_is_reproducible():
    X, y = bimodal(200, seed=1)
    X = X[["x"]]
    base = Regressor(TINY, epochs=4, random_state=7, jit_compile=False)
    a = clone(base).fit(X, y).predict(X)
    b = clone(base).fit(X, y).predict(X)
    c = clone(base).set_params(random_state=8).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_head_options_are_estimator_parameters():
    model = Regressor("mdn:hidden=8").set_params(components=5, epochs=3)
    head = plugins.create("head", model.head)
    assert (head.options["components"], head.options["hidden"]) == (5, (8,))
    assert head.options["epochs"] != 3, "epochs stays an estimator parameter"
    assert model.epochs == 3
    assert clone(model).get_params()["head"] == model.head
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        model.set_params(colour=1)
    assert issubclass(EstimatorError, probreg.ProbregError)


def test_bad_inputs_are_one_line_errors():
    X, y = bimodal(3)
    with pytest.raises(EstimatorError, match="at least 3 training rows"):
        Regressor(TINY).fit(X[["x"]], y)
    with pytest.raises(EstimatorError, match="validation_fraction"):
        Regressor(TINY, validation_fraction=1.5).fit(X[["x"]], y)
    with pytest.raises(EstimatorError, match="unknown head"):
        Regressor("nope").fit(X[["x"]], y)
    with pytest.raises(EstimatorError, match="jit_compile must be True, False or 'auto'"):
        Regressor(TINY, jit_compile="xla").fit(X[["x"]], y)
    with pytest.raises(NotFittedError):
        Regressor(TINY).predict_quantiles(X[["x"]])
    X, _ = bimodal(50)
    with pytest.raises(EstimatorError, match="constant"):  # a ValueError, as sklearn's are
        Regressor(TINY, epochs=1).fit(X[["x"]], np.ones(50))


@pytest.mark.slow
def test_notebook_pipeline_grid_search_and_intervals():
    """The issue's notebook: a DataFrame through a ColumnTransformer into the MDN, a grid over
    components that prefers a mixture on bimodal data, and intervals as a DataFrame."""
    X, y = bimodal(600)
    pipe = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["x"]),
                        ("cat", OneHotEncoder(sparse_output=False), ["group"]),
                    ]
                ),
            ),
            (
                "regressor",
                Regressor(
                    "mdn:components=5,hidden=16+16",
                    epochs=40,
                    batch_size=64,
                    random_state=0,
                    jit_compile=False,  # small models on small data start faster without XLA
                ),
            ),
        ]
    ).set_output(transform="pandas")
    folds = KFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=folds)
    assert np.all(np.isfinite(scores))
    search = GridSearchCV(pipe, {"regressor__components": [1, 3]}, cv=folds).fit(X, y)
    assert search.best_params_ == {"regressor__components": 3}
    ranked = search.cv_results_["mean_test_score"]
    assert ranked[1] > ranked[0] + 0.5  # log-likelihood: one Gaussian cannot cover two modes
    best = search.best_estimator_
    assert plugins.create("head", best[-1].head).options["components"] == 3
    intervals = best[-1].predict_interval(best[:-1].transform(X.head()), coverage=0.9)
    assert isinstance(intervals, pd.DataFrame)
    assert list(intervals.columns) == ["height_lower", "height_upper"]
    assert (intervals.height_lower < intervals.height_upper).all()


@pytest.mark.slow
@pytest.mark.timeout(1200)  # dozens of fits: minutes on two busy cores
def test_scikit_learn_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(
        Regressor("mdn:components=2,hidden=8", epochs=3, jit_compile=False),
        expected_failed_checks=EXPECTED_FAILED_CHECKS,
        on_skip=None,
    )
