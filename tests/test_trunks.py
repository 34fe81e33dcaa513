"""Your own Keras trunk: sequences through LSTM/GRU trunks (many-to-one and many-to-many), every
family's layer on the last axis, safe-mode reloads, and the MDN-RNN on a bimodal walk."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from probreg import plugins
from probreg.errors import UsageError
from probreg.estimator import Regressor
from probreg.runs import load_run
from probreg.sequences import coin_walk, generate, windows


class Doubler(keras.layers.Layer):
    """A layer Keras does not know: not registered, so safe mode cannot rebuild it."""

    def call(self, x):
        return 2.0 * x


def test_a_sequence_trunk_fits_and_reloads_in_safe_mode(tmp_path):
    x, y = windows(coin_walk(12, 20, seed=0), 5)
    model = Regressor(
        "mdn:components=2",
        trunk=lambda: keras.layers.LSTM(4),
        epochs=2,
        random_state=0,
        jit_compile=False,
    ).fit(x, y)
    assert model.predict(x[:3]).shape == (3, 1)  # y was (n, 1)
    path = model.save(tmp_path / "run")
    run = load_run(path)  # Keras safe mode: Reshape + LSTM are built-ins
    assert {type(layer).__name__ for layer in run.model._flatten_layers()} >= {"LSTM", "Reshape"}
    np.testing.assert_array_equal(
        run.distribution(x[:7].reshape(7, -1)).mean(), model.predict(x[:7])
    )
    np.testing.assert_array_equal(Regressor.load(path).predict(x[:7]), model.predict(x[:7]))
    with pytest.raises(ValueError, match="expecting 5 features"):
        model.predict(x[:, :4])
    with pytest.raises(ValueError, match=r"rows of shape \(5, 2\); this model takes \(5, 1\)"):
        model.predict(np.concatenate([x, x], axis=2))


def test_a_trunk_layer_is_cloned_at_every_fit():
    x, y = windows(coin_walk(8, 12, seed=1), 4)
    trunk = keras.layers.GRU(3)
    a = Regressor("mdn:components=1", trunk=trunk, epochs=1, random_state=0, jit_compile=False)
    first = a.fit(x, y).predict(x[:4])
    second = a.fit(x, y).predict(x[:4])
    np.testing.assert_array_equal(first, second)  # a fresh copy: same seed, same result
    assert not trunk.built  # the given layer itself is never trained


def test_an_unknown_trunk_class_is_named_when_loading(tmp_path):
    x, y = windows(coin_walk(8, 12, seed=2), 4)
    model = Regressor(
        "mdn:components=1",
        trunk=lambda: keras.Sequential([Doubler(), keras.layers.Dense(4)]),
        epochs=1,
        random_state=0,
        jit_compile=False,
    ).fit(x[..., 0], y)
    path = model.save(tmp_path / "custom")
    with pytest.raises(UsageError, match=r"not Keras built-ins: .*test_trunks\.Doubler; import"):
        Regressor.load(path)


@pytest.mark.parametrize("family", sorted(plugins.registry()["family"]))
def test_each_family_works_on_the_last_axis_of_a_many_to_many_trunk(family):
    """A GRU returning sequences + TimeDistributed Dense: one distribution per time step, and
    the Keras loss equals the numpy distribution's NLL over all steps."""
    head = plugins.create("head", f"mdn:family={family}")
    n, steps = 6, 5
    keras.utils.set_random_seed(0)
    model = head.build(
        (steps, 2),
        1,
        trunk=lambda: keras.Sequential(
            [
                keras.layers.GRU(8, return_sequences=True),
                keras.layers.TimeDistributed(keras.layers.Dense(8, activation="tanh")),
            ]
        ),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, steps, 2)).astype(np.float32)
    y = rng.standard_normal((n, steps, 1)).astype(np.float32)
    if family in ("discrete",):
        y = np.round(y)
    params = keras.ops.convert_to_numpy(model(x))
    size = head.family.layout(1).size
    assert params.shape == (n, steps, size)
    loss = float(keras.ops.convert_to_numpy(head.loss(1)(y, params)))
    distribution = head.distribution(params.reshape(-1, size), 1)
    assert distribution.batch_size == n * steps
    expected = -np.mean(distribution.log_prob(y.reshape(-1, 1)))
    assert loss == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_the_mdn_rnn_generates_both_modes():
    series = coin_walk(60, 40, seed=0)
    x, y = windows(series, 8)
    model = Regressor(
        "mdn:components=3",
        trunk=lambda: keras.layers.GRU(16),
        epochs=30,
        batch_size=64,
        random_state=0,
        jit_compile=False,
    ).fit(x, y)
    prefix = coin_walk(1, 8, seed=99)[0]
    # the next step has two modes, one step up and one step down, about equally likely
    p = model.predict_proba(prefix[None, :, None]).params()
    heavy = p["weight"][0] > 0.2
    modes = np.sort(p["mean"][0, heavy, 0] - prefix[-1])
    assert len(modes) == 2 and modes == pytest.approx([-1.0, 1.0], abs=0.25)
    # sampling a few steps ahead covers both branches at every step
    paths = generate(model, prefix, 4, paths=300, random_state=0)
    moves = np.diff(paths[:, 7:], axis=1)
    assert np.all(np.mean(moves > 0.5, axis=0) > 0.3)
    assert np.all(np.mean(moves < -0.5, axis=0) > 0.3)
    assert np.mean(np.abs(moves) < 0.5) < 0.05  # hardly ever the mean's zero step


def test_dropout_follows_each_hidden_layer_in_training_only(tmp_path):
    head = plugins.create("head", "mdn:hidden=64+32,components=2,dropout=0.25")
    model = head.build(1, 1)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [(d.name, d.rate) for d in dropouts] == [
        ("trunk_dropout_0", 0.25),
        ("trunk_dropout_1", 0.25),
    ]
    # each one sits right after its Dense layer
    names = [layer.name for layer in model.layers]
    assert names.index("trunk_dropout_0") == names.index("trunk_0") + 1
    assert names.index("trunk_dropout_1") == names.index("trunk_1") + 1
    x = np.linspace(-2, 2, 256, dtype="float32")[:, None]
    first = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(model(x, training=False)))
    assert not np.allclose(first, keras.ops.convert_to_numpy(model(x, training=True)))
    # the first hidden layer's training-mode output: about a quarter zeroed, the rest x 4/3
    hidden = keras.Model(model.input, model.get_layer("trunk_0").output)
    plain = keras.ops.convert_to_numpy(hidden(x))
    dropped = keras.ops.convert_to_numpy(dropouts[0](plain, training=True))
    alive = plain > 0
    zeroed = np.mean(dropped[alive] == 0)
    assert abs(zeroed - 0.25) < 4 * np.sqrt(0.25 * 0.75 / alive.sum())
    np.testing.assert_allclose(dropped[dropped != 0], plain[dropped != 0] / 0.75, rtol=1e-5)
    assert not any(
        isinstance(layer, keras.layers.Dropout)
        for layer in plugins.create("head", "mdn:hidden=8").build(1, 1).layers
    )
    # a trained, saved and reloaded model predicts deterministically
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(200, 1))
    ys = xs + 0.1 * rng.normal(size=(200, 1))
    fitted = Regressor("mdn:hidden=16,components=1,dropout=0.2", epochs=2, random_state=0).fit(
        xs, ys
    )
    np.testing.assert_array_equal(fitted.predict(xs[:9]), fitted.predict(xs[:9]))
    again = Regressor("mdn:hidden=16,components=1,dropout=0.2", epochs=2, random_state=0)
    np.testing.assert_array_equal(again.fit(xs, ys).predict(xs[:9]), fitted.predict(xs[:9]))
    path = fitted.save(tmp_path / "run")
    np.testing.assert_array_equal(Regressor.load(path).predict(xs[:9]), fitted.predict(xs[:9]))
    with pytest.raises(UsageError, match="dropout"):
        plugins.create("head", "mdn:dropout=1")
