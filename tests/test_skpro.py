"""The skpro adapter: skpro's own estimator checks, and its distributions match probreg's."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("skpro")

from probreg.skpro import ProbregRegressor  # noqa: E402


def data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = x + rng.choice([-1.0, 1.0], n) + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"x": x}), pd.DataFrame({"y": y}, index=range(n))


def test_a_gaussian_mixture_becomes_an_skpro_normal_mixture():
    from skpro.distributions import NormalMixture

    X, y = data()
    model = ProbregRegressor(
        "mdn:components=3,hidden=16", epochs=5, random_state=0, jit_compile=False
    ).fit(X, y)
    rows = X.iloc[[3, 7, 11]]
    theirs = model.predict_proba(rows)
    ours = model.regressor_.predict_proba(rows)
    assert isinstance(theirs, NormalMixture)
    assert list(theirs.index) == [3, 7, 11] and list(theirs.columns) == ["y"]
    points = pd.DataFrame({"y": [-1.0, 0.2, 1.5]}, index=rows.index)
    np.testing.assert_allclose(theirs.log_pdf(points)["y"], ours.log_prob(points), rtol=1e-6)
    np.testing.assert_allclose(theirs.mean()["y"], ours.mean()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(model.predict(rows)["y"], ours.mean()[:, 0], rtol=1e-6)


def test_other_families_become_empirical_draws():
    from skpro.distributions import Empirical

    X, y = data(200)
    model = ProbregRegressor(
        "mdn:components=2,hidden=8,family=student_t", epochs=2, random_state=0, jit_compile=False
    ).fit(X, y)
    theirs = model.predict_proba(X.head(4))
    assert isinstance(theirs, Empirical)
    ours = model.regressor_.predict_proba(X.head(4)).mean()[:, 0]
    spread = np.sqrt(model.regressor_.predict_proba(X.head(4)).variance()[:, 0])
    assert np.all(np.abs(theirs.mean()["y"].to_numpy() - ours) < 5 * spread / np.sqrt(500) + 0.05)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # dozens of fits: minutes on two busy cores
def test_skpro_check_estimator():
    from skpro.utils.estimator_checks import check_estimator

    check_estimator(ProbregRegressor, raise_exceptions=True, verbose=False)
