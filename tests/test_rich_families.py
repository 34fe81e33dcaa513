"""The richer likelihoods (issue #13): full-covariance mixtures, multivariate scores, the discrete
family for integer targets and the spline flow, each against an independent computation, and
end to end (tiny trainings: pictures, scores, saved and reloaded runs)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from scipy import special, stats

from probreg import api, plugins
from probreg.distributions import EqualMixture, GaussianMixture
from probreg.families.discrete import DiscretizedLogisticMixture, LogisticMixture
from probreg.families.gaussian_mixture_full import FullCovarianceGaussianMixture
from probreg.families.spline import SplineFlow
from probreg.metrics import evaluate
from probreg.runs import load_run


def _tril(rng, n, k, d):
    tril = np.tril(rng.normal(scale=0.6, size=(n, k, d, d)), -1)
    diag = np.exp(rng.normal(scale=0.3, size=(n, k, d)))
    return tril + np.einsum("nki,ij->nkij", diag, np.eye(d))


# ---- gaussian_mixture_full -------------------------------------------------------------------


def test_full_covariance_with_one_output_is_the_diagonal_mixture():
    rng = np.random.default_rng(0)
    family = plugins.create("family", "gaussian_mixture_full:components=4")
    diagonal = plugins.create("family", "gaussian_mixture:components=4")
    assert family.layout(1).size == diagonal.layout(1).size
    packed = rng.normal(size=(50, diagonal.layout(1).size))
    packed[:, 8:] = np.exp(packed[:, 8:])  # positive scales
    full, diag = family.distribution(packed, 1), diagonal.distribution(packed, 1)
    y = rng.normal(size=(50, 1))
    np.testing.assert_allclose(full.log_prob(y), diag.log_prob(y), rtol=1e-12)
    np.testing.assert_allclose(full.cdf(y), diag.cdf(y), rtol=1e-12)
    np.testing.assert_allclose(full.quantile(0.2), diag.quantile(0.2), rtol=1e-10)
    np.testing.assert_allclose(full.mean(), diag.mean(), rtol=1e-12)
    np.testing.assert_allclose(full.variance(), diag.variance(), rtol=1e-10)
    np.testing.assert_allclose(full.crps(y), diag.crps(y), rtol=1e-10)
    ours = keras.ops.convert_to_numpy(family.log_prob(packed.astype("float32"), y, 1))
    theirs = keras.ops.convert_to_numpy(diagonal.log_prob(packed.astype("float32"), y, 1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_full_covariance_log_prob_matches_scipy_and_keras_for_three_outputs():
    rng = np.random.default_rng(1)
    n, k, d = 20, 3, 3
    logits, means, tril = rng.normal(size=(n, k)), rng.normal(size=(n, k, d)), _tril(rng, n, k, d)
    logits -= special.logsumexp(logits, axis=1, keepdims=True)  # the layer's log-softmax
    mixture = FullCovarianceGaussianMixture(logits, means, tril)
    y = mixture.sample(rng, 1)[0]
    weights = special.softmax(logits, axis=1)
    expected = np.log(
        [
            sum(
                weights[i, j]
                * stats.multivariate_normal(means[i, j], tril[i, j] @ tril[i, j].T).pdf(y[i])
                for j in range(k)
            )
            for i in range(n)
        ]
    )
    np.testing.assert_allclose(mixture.log_prob(y), expected, rtol=1e-9)
    # The packed row the layer emits: scales = the Cholesky diagonal, lower = rows of L below it.
    rows, cols = np.tril_indices(d, -1)
    packed = np.concatenate(
        [
            logits,
            means.reshape(n, -1),
            np.diagonal(tril, axis1=-2, axis2=-1).reshape(n, -1),
            tril[..., rows, cols].reshape(n, -1),
        ],
        axis=1,
    )
    family = plugins.create("family", f"gaussian_mixture_full:components={k}")
    ours = keras.ops.convert_to_numpy(family.log_prob(packed, y, d))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    np.testing.assert_allclose(family.distribution(packed, d).log_prob(y), expected, rtol=1e-9)


def test_full_covariance_moments_match_draws_and_tfp():
    rng = np.random.default_rng(2)
    mixture = FullCovarianceGaussianMixture(
        rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 2)), _tril(rng, 4, 3, 2)
    )
    draws = mixture.sample(rng, 200_000)
    empirical = np.einsum("sni,snj->nij", draws - draws.mean(0), draws - draws.mean(0)) / len(draws)
    np.testing.assert_allclose(mixture.covariance(), empirical, atol=0.03)
    np.testing.assert_allclose(
        mixture.variance(), np.diagonal(mixture.covariance(), axis1=1, axis2=2)
    )
    reference = mixture.to_tfp()
    np.testing.assert_allclose(
        mixture.log_prob(draws[0]), reference.log_prob(draws[0]).numpy(), rtol=1e-8
    )


# ---- multivariate scores ---------------------------------------------------------------------


def test_energy_and_variogram_scores_appear_for_two_outputs_and_see_correlation():
    rng = np.random.default_rng(3)
    n = 400
    correlated = np.array([[1.0, 0.0], [0.95, np.sqrt(1 - 0.95**2)]])
    truth = FullCovarianceGaussianMixture(
        np.zeros((n, 1)), np.zeros((n, 1, 2)), np.broadcast_to(correlated, (n, 1, 2, 2))
    )
    independent = GaussianMixture(np.zeros((n, 1)), np.zeros((n, 1, 2)), np.ones((n, 1, 2)))
    y = truth.sample(rng, 1)[0]
    right, wrong = evaluate(truth, y), evaluate(independent, y)
    assert {"energy", "variogram"} <= set(right)
    assert right["variogram"] < wrong["variogram"]
    assert right["energy"] < wrong["energy"]
    assert right["nll"] < wrong["nll"]
    # The same marginals: CRPS and coverage cannot tell them apart.
    assert right["crps"] == pytest.approx(wrong["crps"], rel=1e-9)
    assert "energy" not in evaluate(_one(independent), y[:, :1])  # one output: no such score


def _one(mixture: GaussianMixture) -> GaussianMixture:
    return GaussianMixture(mixture.log_weights, mixture.means[..., :1], mixture.scales[..., :1])


# ---- discrete --------------------------------------------------------------------------------


def _discrete(rng, n=8, k=3, d=1, offset=0.0, spacing=1.0):
    continuous = LogisticMixture(
        rng.normal(size=(n, k)),
        rng.normal(scale=4.0, size=(n, k, d)),
        np.exp(rng.normal(size=(n, k, d))),
    )
    return DiscretizedLogisticMixture(continuous, offset, spacing)


def test_discrete_mass_sums_to_one_over_the_integers_and_draws_are_integers():
    rng = np.random.default_rng(4)
    mixture = _discrete(rng)
    ks = np.arange(-400, 401, dtype=float)
    total = sum(np.exp(mixture.log_prob(np.full((8, 1), k))) for k in ks)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    draws = mixture.sample(rng, 5000)
    assert np.array_equal(draws, np.round(draws))
    # Empirical frequencies match the masses.
    for k in (-2.0, 0.0, 3.0):
        np.testing.assert_allclose(
            (draws == k).mean(axis=0)[:, 0],
            np.exp(mixture.log_prob(np.full((8, 1), k))),
            atol=0.03,
        )


def test_discrete_in_standardised_units_maps_back_to_the_integers():
    """What a run does: the lattice in standardised units, then ``affine`` to data units."""
    rng = np.random.default_rng(5)
    mean, scale = 7.3, 2.9
    standardised = _discrete(rng, offset=-mean / scale, spacing=1.0 / scale)
    data_units = standardised.affine(np.array([mean]), np.array([scale]))
    offset, spacing = data_units.lattice()
    assert offset[0] == 0.0 and spacing[0] == 1.0
    draws = data_units.sample(rng, 100)
    assert np.array_equal(draws, np.round(draws))
    y = np.round(draws[0])
    # A mass does not pick up a Jacobian under the affine map.
    np.testing.assert_allclose(
        data_units.log_prob(y), standardised.log_prob((y - mean) / scale), rtol=1e-10
    )
    # The keras log-mass reads the same lattice from the packed row.
    family = plugins.create("family", "discrete:components=3")
    c = standardised.continuous
    packed = np.concatenate(
        [
            c.log_weights,
            c.means.reshape(8, -1),
            c.scales.reshape(8, -1),
            np.full((8, 1), -mean / scale),
            np.full((8, 1), 1.0 / scale),
        ],
        axis=1,
    )
    ours = keras.ops.convert_to_numpy(family.log_prob(packed, (y - mean) / scale, 1))
    np.testing.assert_allclose(ours, data_units.log_prob(y), rtol=1e-7, atol=1e-9)


def test_discrete_crps_is_the_discrete_sum():
    rng = np.random.default_rng(6)
    mixture = _discrete(rng, n=5)
    y = mixture.sample(rng, 1)[0]
    ks = np.arange(-300, 301, dtype=float)
    cdf = np.stack([mixture.cdf(np.full((5, 1), k))[:, 0] for k in ks], axis=1)
    expected = ((cdf - (y <= ks[None, :])) ** 2).sum(axis=1)
    np.testing.assert_allclose(mixture.crps(y), expected, rtol=1e-8)


# ---- spline ----------------------------------------------------------------------------------


def _spline(rng, n=6, d=1, bins=10, bound=3.0, affine=False):
    widths = special.softmax(rng.normal(scale=1.5, size=(n, d, bins)), axis=-1) * 2 * bound
    heights = special.softmax(rng.normal(scale=1.5, size=(n, d, bins)), axis=-1) * 2 * bound
    slopes = np.exp(rng.normal(scale=1.0, size=(n, d, bins - 1)))
    loc = rng.normal(scale=2.0, size=(n, d)) if affine else np.zeros((n, d))
    scale = np.exp(rng.normal(scale=1.0, size=(n, d))) if affine else np.ones((n, d))
    blocks = [loc, scale] if affine else []
    packed = np.concatenate([b.reshape(n, -1) for b in (*blocks, widths, heights, slopes)], axis=1)
    return SplineFlow(widths, heights, slopes, bound, loc, scale), packed


@pytest.mark.parametrize("affine", [False, True])
def test_spline_density_integrates_to_its_cdf_and_inverts_exactly(affine):
    rng = np.random.default_rng(7)
    flow, _ = _spline(rng, affine=affine)
    ys = np.linspace(-20.0, 20.0, 400_001)
    density = np.stack([np.exp(flow.log_prob(np.full((6, 1), y))) for y in ys[::10]], axis=1)
    cumulative = np.concatenate(
        [np.zeros((6, 1)), np.cumsum(0.5 * (density[:, 1:] + density[:, :-1]), axis=1) * 1e-3],
        axis=1,
    )
    cdf = np.stack([flow.cdf(np.full((6, 1), y))[:, 0] for y in ys[::10]], axis=1)
    np.testing.assert_allclose(cumulative + cdf[:, :1], cdf, atol=2e-4)
    # Moments and mode against the same grid: independent of the closed forms.
    grid = ys[::10]
    mean = (density * grid).sum(axis=1) * 1e-3
    variance = (density * (grid - mean[:, None]) ** 2).sum(axis=1) * 1e-3
    np.testing.assert_allclose(flow.mean()[:, 0], mean, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(flow.variance()[:, 0], variance, rtol=1e-3, atol=1e-3)
    # The mode is at least as high as every grid point (and may beat them on a sharp peak).
    at_mode = np.exp(flow.log_prob(flow.mode()))
    assert np.all(at_mode >= density.max(axis=1) * (1 - 1e-3))
    assert np.all(at_mode <= density.max(axis=1) * 1.02)
    y = rng.normal(scale=3.0, size=(6, 1))
    np.testing.assert_allclose(flow.inverse(flow.forward(y)[0]), y, atol=1e-9)
    for q in (0.01, 0.3, 0.9):
        np.testing.assert_allclose(flow.cdf(flow.quantile(q)), q, atol=1e-10)


@pytest.mark.parametrize("affine", [False, True])
def test_spline_draws_follow_its_cdf_and_keras_matches_numpy(affine):
    rng = np.random.default_rng(8)
    flow, packed = _spline(rng, n=3, d=2, affine=affine)
    draws = flow.sample(rng, 20_000)
    for row in range(3):
        for j in range(2):

            def cdf(v, row=row, j=j):
                y = np.zeros((3, 2))
                out = []
                for value in np.atleast_1d(v):
                    y[row, j] = value
                    out.append(flow.cdf(y)[row, j])
                return np.array(out)

            assert stats.kstest(draws[:, row, j], cdf).pvalue > 1e-3
    family = plugins.create("family", f"spline:bins=10,bound=3,affine={str(affine).lower()}")
    assert family.layout(2).size == packed.shape[1]
    np.testing.assert_allclose(
        family.distribution(packed, 2).log_prob(draws[0]), flow.log_prob(draws[0])
    )
    y = draws[0]
    ours = keras.ops.convert_to_numpy(family.log_prob(packed.astype("float32"), y, 2))
    np.testing.assert_allclose(ours, flow.log_prob(y), rtol=1e-4, atol=1e-4)
    # Far outside the interval the map is the affine map alone: a normal of that loc and scale.
    far = keras.ops.convert_to_numpy(family.log_prob(packed.astype("float32"), y + 50.0, 2))
    expected = stats.norm.logpdf(y + 50.0, flow.loc, flow.scale).sum(axis=1)
    np.testing.assert_allclose(far, expected, rtol=1e-5)


def test_spline_bin_floor_is_a_parameter_and_old_layers_keep_theirs():
    from probreg.errors import UsageError
    from probreg.families.spline import SAVED_MIN_BIN, layer_class

    def smallest_share(layer):
        layer.build((None, 4))
        for weight in layer.weights:  # push one bin's width and height logits far down
            weight.assign(np.zeros(weight.shape, "float32"))
        bias = keras.ops.convert_to_numpy(layer.weights[-1])
        bias[[0, 8]] = -1e4  # bin 0 of the widths block and of the heights block (bins=8)
        layer.weights[-1].assign(bias)
        out = keras.ops.convert_to_numpy(layer(np.zeros((1, 4), "float32")))
        return out[0, 0] / (2 * layer.bound), out[0, 8] / (2 * layer.bound)

    family = plugins.create("family", "spline:bins=8,min_bin=1e-6,affine=false")
    new = family.layer(1)
    assert new.get_config()["min_bin"] == 1e-6
    np.testing.assert_allclose(smallest_share(new), 1e-6, rtol=1e-3)
    # A layer saved before min_bin existed (no such key in its config) keeps the old 1e-3 floor.
    config = {k: v for k, v in new.get_config().items() if k != "min_bin"}
    old = layer_class().from_config(config)
    from probreg.families.spline import MIN_BIN  # the old name of that floor still imports

    old_share = smallest_share(old)
    np.testing.assert_allclose(old_share, SAVED_MIN_BIN, rtol=1e-3)
    np.testing.assert_allclose(old_share, MIN_BIN, rtol=1e-3)
    with pytest.raises(UsageError, match="bins x min_bin must be below 1"):
        plugins.create("family", "spline:bins=200,min_bin=0.01")


def test_a_spline_run_saved_before_affine_existed_loads_and_predicts_as_before(tmp_path):
    """A run folder from before ``affine`` (no key in the layer's config, none in the spec,
    whose default is now on) loads without the affine map and predicts what it did."""
    import zipfile

    from probreg.errors import UsageError

    out = tmp_path / "run"
    head = "mdn:family=spline,bins=6,hidden=8,epochs=1,affine=false"
    api.run("bishop:n=200,val=50,test=50", head, output=out, quiet=True)
    x, y = np.linspace(0.0, 1.0, 7)[:, None], np.linspace(0.1, 0.9, 7)[:, None]
    before = load_run(out).predictor.distribution(x).log_prob(y)

    config = json.loads((out / "config.json").read_text())
    config["head"]["spec"] = config["head"]["spec"].replace(",affine=false", "")
    (out / "config.json").write_text(json.dumps(config))
    model = out / "model.keras"
    with zipfile.ZipFile(model) as old:
        members = {name: old.read(name) for name in old.namelist()}

    def drop_affine(node):
        if isinstance(node, dict):
            return {k: drop_affine(v) for k, v in node.items() if k != "affine"}
        return [drop_affine(v) for v in node] if isinstance(node, list) else node

    saved = json.loads(members["config.json"])
    assert "affine" in json.dumps(saved)
    members["config.json"] = json.dumps(drop_affine(saved)).encode()
    with zipfile.ZipFile(model, "w") as new:
        for name, data in members.items():
            new.writestr(name, data)

    loaded = load_run(out)
    assert "affine" not in config["head"]["spec"] and not loaded.predictor.head.family.affine
    assert "affine=false" in loaded.predictor.head.spec  # what saving it again records
    np.testing.assert_allclose(loaded.predictor.distribution(x).log_prob(y), before, rtol=1e-6)

    # An export folder from then keeps no layer config: its parameter count tells.
    from probreg import export

    outputs = loaded.predictor.outputs(x)
    metadata = {
        "head": config["head"]["spec"],
        "outputs": outputs.shape[1],
        "output_dim": 1,
        "y_scaling": config["scaling"]["y"],
    }
    from_export = export.distribution(outputs, metadata).log_prob(y)
    np.testing.assert_allclose(from_export, before, rtol=1e-6)
    with pytest.raises(UsageError, match="export metadata does not fit.*makes 17 parameters"):
        export.distribution(outputs, {**metadata, "outputs": outputs.shape[1] + 3})


def test_spline_affine_map_starts_as_the_identity_and_keeps_its_floor():
    from probreg.families.spline import MIN_SCALE, SplineFlow, layer_class

    layer = layer_class()(1, bins=4, affine=True)
    layer.build((None, 3))
    for weight in layer.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    blocks = layer.layout.unpack(keras.ops.convert_to_numpy(layer(np.zeros((1, 3), "float32"))))
    np.testing.assert_allclose(blocks["loc"], 0.0)
    np.testing.assert_allclose(blocks["scale"], 1.0, rtol=1e-6)
    bias = keras.ops.convert_to_numpy(layer.weights[-1])
    bias[1] = -1e4  # the scale's raw output, far down
    layer.weights[-1].assign(bias)
    blocks = layer.layout.unpack(keras.ops.convert_to_numpy(layer(np.zeros((1, 3), "float32"))))
    np.testing.assert_allclose(blocks["scale"], MIN_SCALE, rtol=1e-5)
    # A head pickled before the option existed has no 'affine' anywhere: no map, old layout,
    # and a spec that says so.
    import pickle

    head = plugins.create("head", "mdn:family=spline,bins=4,hidden=4")
    for options in (head.options, head.family.options):
        del options["affine"]
    head.params = tuple(p for p in head.params if p.name != "affine")
    head = pickle.loads(pickle.dumps(head))
    family = head.family
    assert not family.affine and family.layout(1).size == 4 + 4 + 3
    assert "affine=false" in head.spec
    packed = np.concatenate([np.full((1, 8), 2.0), np.ones((1, 3))], axis=1)
    assert isinstance(family.distribution(packed, 1), SplineFlow)
    assert "scale" not in family.distribution(packed, 1).params()


# ---- ensembles and end to end ----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["gaussian_mixture_full:components=2", "discrete:components=2", "spline:bins=6"]
)
def test_members_work_for_every_new_family(spec):
    name, _, options = spec.partition(":")
    head = plugins.create("head", f"mdn:family={name},{options},members=2,hidden=8")
    model = head.build(2, 2)
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    outputs = keras.ops.convert_to_numpy(model(x))
    distribution = head.distribution(outputs, 2)
    y = distribution.sample(np.random.default_rng(1), 1)[0]
    assert np.all(np.isfinite(distribution.log_prob(y)))
    loss = float(keras.ops.convert_to_numpy(head.loss(2)(y.astype("float32"), outputs)))
    assert np.isclose(
        loss,
        -np.mean(
            [head.family.distribution(b, 2).log_prob(y) for b in np.split(outputs, 2, axis=1)]
        ),
        rtol=1e-4,
        atol=1e-4,
    )
    if name != "gaussian_mixture_full" and name != "discrete":
        assert isinstance(distribution, EqualMixture)


@pytest.mark.parametrize(
    ("dataset", "head"),
    [
        ("robot-arm:n=300,val=100,test=200", "mdn:family=gaussian_mixture_full,components=2"),
        ("counts:n=300,val=100,test=200", "mdn:family=discrete,components=2"),
        ("bishop:n=300,val=100,test=200", "mdn:family=spline,bins=8"),
    ],
)
def test_each_new_family_runs_end_to_end_with_its_pictures(dataset, head, tmp_path):
    out = tmp_path / "run"
    result = api.run(dataset, f"{head},hidden=16,epochs=2", output=out, quiet=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pictures"], "no pictures were drawn"
    for picture in metrics["pictures"]:
        assert (out / picture).stat().st_size > 0
    if result.data.output_dim > 1:
        assert {"energy", "variogram"} <= set(metrics["test"])
    if "discrete" in head:
        assert metrics["likelihood"] == "mass"  # the report labels the NLL a log-mass
        draws = result.samples
        assert np.array_equal(draws, np.round(draws))
    # A saved run predicts the same distribution (the discrete lattice travels in the weights).
    x, y = result.data.x_test[:5], result.data.y_test[:5]
    loaded = load_run(out)
    np.testing.assert_allclose(
        loaded.distribution(x).log_prob(y),
        result.predictor.distribution(x).log_prob(y),
        rtol=1e-6,
    )


# ---- hints, errors and the report's labels ---------------------------------------------------


def test_integer_targets_get_a_hint_and_the_discrete_family_refuses_fractions():
    from probreg.api import check_integer_targets
    from probreg.errors import UsageError

    counts = plugins.create("dataset", "counts:n=50,val=10,test=10").load(0)
    said = []
    check_integer_targets(counts, plugins.create("head", "mdn"), said.append)
    assert len(said) == 1 and "family=discrete" in said[0] and "\n" not in said[0]
    said.clear()
    check_integer_targets(counts, plugins.create("head", "mdn:family=discrete"), said.append)
    assert said == []
    bishop = plugins.create("dataset", "bishop:n=50,val=10,test=10").load(0)
    check_integer_targets(bishop, plugins.create("head", "mdn"), said.append)
    assert said == []
    with pytest.raises(UsageError, match="integer targets"):
        check_integer_targets(bishop, plugins.create("head", "mdn:family=discrete"))


def test_the_report_shows_multivariate_scores_their_meaning_and_log_mass_labels():
    from types import SimpleNamespace

    from probreg import report

    def row(head, **extra):
        base = {"head": head, "rank": 1, "best": [], "nll": 1.0, "crps": 0.5, "rmse": 1.0}
        return {**base, "coverage_90": 0.9, "train_seconds": 1.0, "parameters": 10, **extra}

    joint = SimpleNamespace(
        table=[row("a", energy=0.3, variogram=0.1), row("b", energy=0.4, variogram=0.2)],
        runs=[],
        bayes_nll=None,
    )
    text = report._markdown(joint, "robot-arm", ["seed 0"], [], "probreg compare", {}, ())
    assert "energy score" in text and "variogram score" in text
    assert "rewards the right correlation structure" in text
    single = SimpleNamespace(table=[row("c", likelihood="mass")], runs=[], bayes_nll=None)
    text = report._markdown(single, "counts", ["seed 0"], [], "probreg compare", {}, ())
    assert "energy score" not in text and "variogram" not in text
    assert "(log-mass)" in text


def test_predict_params_give_distinct_column_names_for_every_new_family():
    from probreg.predict import param_columns

    rng = np.random.default_rng(9)
    distributions = [
        FullCovarianceGaussianMixture(
            rng.normal(size=(4, 2)), rng.normal(size=(4, 2, 2)), _tril(rng, 4, 2, 2)
        ),
        _discrete(rng, n=4, d=2),
        _spline(rng, n=4, d=2)[0],
    ]
    for distribution in distributions:
        axes = distribution.param_axes()
        names = [
            name
            for key, values in distribution.params().items()
            for name, column in param_columns(key, np.asarray(values), axes.get(key), ["a", "b"])
        ]
        assert len(names) == len(set(names)), type(distribution).__name__


def test_the_pit_of_a_calibrated_discrete_model_is_uniform_once_randomised():
    from probreg.calibration import pit

    rng = np.random.default_rng(10)
    mixture = _discrete(rng, n=3000, k=2)
    values = pit(mixture, mixture.sample(rng, 1)[0]).ravel()
    assert stats.kstest(values, "uniform").pvalue > 1e-3


def test_robot_arm_with_correlated_readings_has_the_right_exact_density():
    from probreg.default_plugins.robot_arm import RobotArmDensity

    spec = "robot-arm:n=3,val=1,test=40000,correlation=0.9"
    data = plugins.create("dataset", spec).load(0)
    plain = plugins.create("dataset", "robot-arm:n=3,val=1,test=40000").load(0)
    # Same angles and draws: the first reading is unchanged, the second's error now correlates.
    np.testing.assert_array_equal(data.y_test[:, 0], plain.y_test[:, 0])
    # The correlated noise has less entropy: 0.5 log(1 - rho^2) nats, branch weights unchanged.
    correlated = -RobotArmDensity(0.05, 0.9)(data.x_test, data.y_test).mean()
    independent = -RobotArmDensity(0.05)(plain.x_test, plain.y_test).mean()
    assert correlated - independent == pytest.approx(0.5 * np.log(1 - 0.81), abs=0.03)
    # A density with the wrong correlation scores the correlated data worse.
    assert -RobotArmDensity(0.05)(data.x_test, data.y_test).mean() > correlated + 0.5


def test_an_ensembles_mode_is_its_peak_even_between_its_members():
    """Two overlapping single-peaked members peak between their own modes: the ensemble's
    mode is found there (scipy's bounded search is the reference), not at a member's mode."""
    from scipy import optimize

    def logistic(loc, scale):
        return LogisticMixture(
            np.zeros((2, 1)), np.array(loc)[:, None, None], np.array(scale)[:, None, None]
        )

    # Row 0 is symmetric (peak at 1); row 1 is not.
    ensemble = EqualMixture([logistic([0.0, 0.0], [1.0, 1.0]), logistic([2.0, 1.5], [1.0, 0.6])])
    mode = ensemble.mode()[:, 0]
    for row in range(2):

        def minus_log_density(y, row=row):
            return -ensemble.log_prob(np.full((2, 1), y))[row]

        best = optimize.minimize_scalar(minus_log_density, bounds=(0.0, 2.0), method="bounded")
        assert mode[row] == pytest.approx(best.x, abs=0.05)
        assert -minus_log_density(mode[row]) >= -best.fun - 1e-3
    assert mode[0] == pytest.approx(1.0)
    # A discrete ensemble's mode stays on its lattice.
    lattice = (np.zeros(1), np.ones(1))
    discrete = EqualMixture(
        [
            DiscretizedLogisticMixture(logistic([0.0, 0.0], [2.0, 2.0]), *lattice),
            DiscretizedLogisticMixture(logistic([4.0, 3.0], [2.0, 2.0]), *lattice),
        ]
    ).mode()
    np.testing.assert_array_equal(discrete, np.round(discrete))
    np.testing.assert_array_equal(discrete[0], [2.0])


def test_a_two_output_discrete_mode_is_the_most_probable_lattice_point():
    """Where two components overlap, the joint peak need be neither a component's location nor
    each coordinate's own most probable point: over 60 random two-component rows the mode is
    the best of every lattice point on a wide grid."""
    rng = np.random.default_rng(0)
    continuous = LogisticMixture(
        np.log(rng.dirichlet([1.0, 1.0], size=60)),
        rng.uniform(-4.0, 4.0, size=(60, 2, 2)),
        rng.uniform(0.5, 3.0, size=(60, 2, 2)),
    )
    mass = DiscretizedLogisticMixture(continuous, np.zeros(2), np.ones(2))
    grid = [(a, b) for a in range(-12, 13) for b in range(-12, 13)]
    best = np.max([mass.log_prob(np.tile(point, (60, 1))) for point in grid], axis=0)
    np.testing.assert_allclose(mass.log_prob(mass.mode()), best, rtol=0, atol=1e-12)
