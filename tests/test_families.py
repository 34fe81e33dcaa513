"""Families: lgamma, the Student-t mixture against TFP and scipy, the layout, family selection in
head specs, ensembles of any family, and trunks of any shape (sequences)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from scipy import special, stats

from probreg import plugins
from probreg.distributions import EqualMixture, GaussianMixture, StudentTMixture
from probreg.errors import UsageError
from probreg.families.base import Layout
from probreg.losses import FamilyNLL
from probreg.ops import lgamma

HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(
    not HAS_JAX and os.environ.get("PROBREG_REQUIRE_JAX") != "1", reason="JAX is not installed"
)

POINTS = np.concatenate(
    [np.geomspace(1e-3, 1e3, 200), -np.linspace(0.01, 9.9, 50) - 0.05, [0.5, 1.0, 2.0, 2.5]]
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lgamma_matches_scipy_on_this_backend(dtype):
    ours = keras.ops.convert_to_numpy(lgamma(keras.ops.convert_to_tensor(POINTS.astype(dtype))))
    tolerance = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(ours, special.gammaln(POINTS), rtol=tolerance, atol=tolerance * 10)


def test_lgamma_gradient_is_digamma():
    import tensorflow as tf

    x = tf.constant(np.geomspace(0.05, 200.0, 50))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = lgamma(x)
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), special.digamma(x.numpy()), 1e-8)


@needs_jax
def test_lgamma_matches_scipy_on_jax():
    code = (
        "import json, sys, numpy as np, keras\n"
        "from probreg.ops import lgamma\n"
        "x = np.array(json.loads(sys.argv[1]), 'float32')\n"
        "print(keras.backend.backend(), json.dumps(keras.ops.convert_to_numpy(lgamma(x)).tolist()))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(POINTS.tolist())],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    backend, values = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert backend == "jax"
    np.testing.assert_allclose(json.loads(values), special.gammaln(POINTS), rtol=1e-5, atol=1e-4)


def _student(rng, n=40, k=3, d=2) -> StudentTMixture:
    return StudentTMixture(
        rng.normal(size=(n, k)),
        rng.normal(scale=2.0, size=(n, k, d)),
        np.exp(rng.normal(scale=0.3, size=(n, k, d))),
        2.2 + np.exp(rng.normal(size=(n, k))),
    )


def test_student_t_mixture_matches_tfp_and_scipy():
    rng = np.random.default_rng(0)
    mixture = _student(rng)
    y = rng.normal(scale=3.0, size=(40, 2))
    np.testing.assert_allclose(mixture.log_prob(y), mixture.to_tfp().log_prob(y).numpy(), 1e-9)
    # Marginal CDF, mean and variance from scipy's Student-t, component by component.
    w, df = mixture.weights, mixture.shapes["df"][:, :, None]
    cdf = (w[:, :, None] * stats.t.cdf(y[:, None, :], df, mixture.means, mixture.scales)).sum(1)
    np.testing.assert_allclose(mixture.cdf(y), cdf, rtol=1e-10)
    np.testing.assert_allclose(mixture.mean(), mixture.to_tfp().mean().numpy(), rtol=1e-9)
    second = (w[:, :, None] * (stats.t.var(df, 0, mixture.scales) + mixture.means**2)).sum(1)
    np.testing.assert_allclose(mixture.variance(), second - mixture.mean() ** 2, rtol=1e-9)
    single = StudentTMixture(np.zeros((1, 1)), np.ones((1, 1, 1)), np.full((1, 1, 1), 2.0), [[3.0]])
    assert single.quantile(0.9)[0, 0] == pytest.approx(stats.t.ppf(0.9, 3.0, 1.0, 2.0), 1e-8)


def test_student_t_keras_log_prob_matches_tfp():
    rng = np.random.default_rng(1)
    family = plugins.create("family", "student_t:components=3")
    mixture = _student(rng, k=3, d=2)
    packed = np.concatenate(
        [
            mixture.log_weights,
            mixture.means.reshape(40, -1),
            mixture.scales.reshape(40, -1),
            mixture.shapes["df"],
        ],
        axis=1,
    )
    y = rng.normal(scale=3.0, size=(40, 2))
    ours = keras.ops.convert_to_numpy(family.log_prob(packed, y, 2))
    np.testing.assert_allclose(ours, mixture.to_tfp().log_prob(y).numpy(), rtol=1e-5)


def test_layout_unpacks_numpy_and_keras_alike_for_any_leading_shape():
    layout = Layout(("w", (3,)), ("mu", (3, 2)), ("df", (3,)))
    assert layout.size == 12 and layout.offsets()["df"] == (9, 12)
    rows = np.arange(2 * 5 * 12, dtype="float32").reshape(2, 5, 12)
    blocks = layout.unpack(rows)
    assert blocks["mu"].shape == (10, 3, 2)
    np.testing.assert_array_equal(blocks["mu"][7], rows[1, 2, 3:9].reshape(3, 2))
    tensors = layout.unpack(keras.ops.convert_to_tensor(rows))
    for name in layout.names:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(tensors[name]), blocks[name])
    flat = layout.unpack(rows, flat=True)
    np.testing.assert_array_equal(layout.pack(flat), rows)


def test_family_is_picked_in_the_head_spec_and_its_parameters_join():
    head = plugins.create("head", "mdn:family=student_t,components=2,df_min=3")
    assert head.family.name == "student_t" and head.family.options["df_min"] == 3.0
    assert head.spec == "mdn:family=student_t,components=2,df_min=3"
    assert plugins.create("head", head.spec).options == head.options
    assert plugins.create("head", "mdn").family.name == "gaussian_mixture"
    with pytest.raises(UsageError, match="unknown parameter 'df_min'.*allowed parameters"):
        plugins.create("head", "mdn:df_min=3")
    with pytest.raises(UsageError, match="unknown family 'nope'; available families:.*student_t"):
        plugins.create("head", "mdn:family=nope")
    with pytest.raises(UsageError, match="fixed family"):
        plugins.create("head", "mlp:family=student_t")
    with pytest.raises(UsageError, match="df_min.*below the minimum"):
        plugins.create("head", "mdn:family=student_t,df_min=2")


def test_a_family_layer_validates_its_arguments():
    from probreg.families import gaussian_mixture, student_t_mixture

    with pytest.raises(ValueError, match="components must be a positive integer"):
        gaussian_mixture.layer_class()(1, 0)
    with pytest.raises(ValueError, match="scale_activation must be one of"):
        gaussian_mixture.layer_class()(1, 2, scale_activation="relu")
    with pytest.raises(ValueError, match="df_min must be > 2"):
        student_t_mixture.layer_class()(1, 2, df_min=1.5)


def test_an_ensemble_of_any_family_is_the_equal_mixture_of_its_members():
    head = plugins.create("head", "mdn:family=student_t,components=2,members=3,hidden=8")
    keras.utils.set_random_seed(0)
    model = head.build(2, 1)
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 1)).astype("float32")
    outputs = keras.ops.convert_to_numpy(model(x))
    size = head.family.layout(1).size
    members = [head.family.distribution(outputs[:, m * size : (m + 1) * size], 1) for m in range(3)]
    joint = head.distribution(outputs, 1)
    assert isinstance(joint, StudentTMixture) and joint.components == 6
    expected = special.logsumexp([m.log_prob(y) for m in members], axis=0) - np.log(3)
    np.testing.assert_allclose(joint.log_prob(y), expected, rtol=1e-10)
    # Each member trains on its own NLL: the loss is their average.
    loss = float(head.loss(1)(y, outputs))
    assert loss == pytest.approx(np.mean([-m.log_prob(y).mean() for m in members]), rel=1e-5)


def test_equal_mixture_of_distributions_matches_the_merged_mixture():
    rng = np.random.default_rng(2)
    parts = [
        GaussianMixture(rng.normal(size=(5, 2)), rng.normal(size=(5, 2, 1)), np.ones((5, 2, 1)))
        for _ in range(2)
    ]
    generic, merged = EqualMixture(parts), GaussianMixture.combine(parts)
    y = rng.normal(size=(5, 1))
    np.testing.assert_allclose(generic.log_prob(y), merged.log_prob(y), rtol=1e-12)
    np.testing.assert_allclose(generic.cdf(y), merged.cdf(y), rtol=1e-12)
    np.testing.assert_allclose(generic.variance(), merged.variance(), rtol=1e-12)
    np.testing.assert_allclose(generic.quantile(0.3), merged.quantile(0.3), atol=1e-9)


def test_sequence_trunks_many_to_one_and_many_to_many():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 3)).astype("float32")
    head = plugins.create("head", "mdn:components=2,hidden=8")
    keras.utils.set_random_seed(0)
    many_to_one = head.build((6, 3), 1, trunk=lambda: keras.layers.LSTM(8))
    assert many_to_one(x).shape == (32, head.family.layout(1).size)
    many_to_many = head.build((6, 3), 2, trunk=keras.layers.GRU(8, return_sequences=True))
    out = many_to_many(x)
    assert out.shape == (32, 6, head.family.layout(2).size)
    y = rng.normal(size=(32, 6, 2)).astype("float32")
    flat = head.distribution(keras.ops.convert_to_numpy(out), 2)
    assert flat.batch_size == 32 * 6
    expected = -flat.log_prob(y.reshape(-1, 2)).mean()
    assert float(FamilyNLL(head.family, 2)(y, out)) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(UsageError, match="trunk must be a Keras layer"):
        head.build(3, 1, trunk=42)


@pytest.mark.slow
def test_student_t_beats_the_gaussian_mixture_on_heavy_tailed_noise():
    """Same trunk, budget and seed; the data's noise is Student-t with 3 degrees of freedom."""
    from probreg import api

    scores = {}
    for family in ("gaussian_mixture", "student_t"):
        result = api.run(
            "heavy-sine:n=2000,val=500,test=4000",
            f"mdn:family={family},components=3,hidden=32+32,epochs=40",
            seed=0,
            write=False,
            quiet=True,
        )
        scores[family] = result.metrics["test"]["nll"]
        bayes = result.metrics["bayes_nll"]
    assert scores["student_t"] < scores["gaussian_mixture"] - 0.01, scores
    assert scores["student_t"] - bayes < 0.05, (scores, bayes)


def test_the_python_run_takes_a_trunk_and_the_run_reloads_in_safe_mode(tmp_path):
    from probreg import api, load_run

    result = api.run(
        "spiral:n=300,val=60,test=60",
        "mdn:components=2",
        epochs=2,
        trunk=lambda: keras.Sequential([keras.layers.Dense(12, activation="tanh")]),
        output=tmp_path / "run",
        quiet=True,
    )
    assert any(layer.name.startswith("sequential") for layer in result.model.layers)
    x = result.data.x_test
    loaded = load_run(tmp_path / "run")
    np.testing.assert_array_equal(loaded.predictor.outputs(x), result.predictor.outputs(x))
