"""The training loop: input paths, XLA, early stopping and the best epoch, gradient clipping
and weight averaging (``ema``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from probreg import api
from probreg.training import BatchStream


def test_batch_stream_visits_every_row_once_per_epoch_and_reshuffles():
    x = np.arange(103, dtype=np.float32)[:, None]
    stream = BatchStream(x, x, batch_size=10, seed=0)
    assert len(stream) == 11
    epochs = []
    for _ in range(2):
        rows = np.concatenate([stream.batch_in_order(i)[0][:, 0] for i in range(len(stream))])
        assert sorted(rows.tolist()) == list(range(103))
        epochs.append(rows)
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch


def test_streamed_and_in_memory_training_both_work():
    spec = ("spiral:n=600,val=100,test=200", "mdn:components=3,hidden=16,epochs=3")
    streamed = api.run(*spec, write=False, quiet=True, stream=True)
    in_memory = api.run(*spec, write=False, quiet=True, stream=False)
    assert streamed.metrics["streamed"] and not in_memory.metrics["streamed"]
    for result in (streamed, in_memory):
        assert np.isfinite(result.metrics["test"]["nll"]) and result.metrics["epochs"] == 3
    # Different batch orders, same model class: similar (not identical) scores.
    assert abs(streamed.metrics["test"]["nll"] - in_memory.metrics["test"]["nll"]) < 0.5


def test_weight_decay_shrinks_the_weights():
    def kernel_norm(weight_decay: float) -> float:
        result = api.run(
            "spiral:n=600,val=100,test=200",
            f"mlp:hidden=16,epochs=5,schedule=constant,weight_decay={weight_decay}",
            seed=0,
            write=False,
            quiet=True,
        )
        kernels = [w for w in result.model.trainable_weights if "kernel" in w.path]
        return float(np.sqrt(sum(np.sum(np.square(w.numpy())) for w in kernels)))

    # 300 training rows, batch 128, 5 epochs: 15 steps, each shrinking every weight by
    # learning rate 1e-3 x decay 50 = 5%, so 0.95^15 = 0.46 before the gradients push back.
    assert kernel_norm(50.0) < 0.7 * kernel_norm(0.0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's rule")
def test_xla_compiles_long_runs_only_unless_told_on_tensorflow():
    import dataclasses

    from probreg import plugins
    from probreg.training import XLA_MIN_STEPS, uses_xla

    recipe = plugins.create("head", "mdn").training()
    assert recipe.jit_compile == "auto"
    steps = XLA_MIN_STEPS // recipe.epochs  # steps per epoch around the threshold
    assert not uses_xla(recipe, steps - 1) and uses_xla(recipe, steps + 1)
    assert uses_xla(dataclasses.replace(recipe, jit_compile=True), 1)
    assert not uses_xla(dataclasses.replace(recipe, jit_compile=False), 10**6)
    # A short run really trains without XLA (the compiled model says so).
    short = api.run(
        "spiral:n=300,val=60,test=60", "mdn:hidden=8,components=2,epochs=2", write=False, quiet=True
    )
    assert short.model.jit_compile is False


class _Weights:
    """A stand-in model: its 'weights' are the epoch they were taken in."""

    def __init__(self) -> None:
        self.epoch, self.restored, self.stop_training = 0, None, False

    def get_weights(self) -> list[int]:
        return [self.epoch]

    def set_weights(self, weights) -> None:
        self.restored = weights[0]


def _best_epochs(keys, patience, logs_per_epoch):
    from probreg.training import _BestEpochs

    tracker, model = _BestEpochs(keys, patience), _Weights()
    tracker.set_model(model)
    ran = 0
    for epoch, logs in enumerate(logs_per_epoch):
        model.epoch, ran = epoch + 1, epoch + 1
        tracker.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    tracker.on_train_end()
    return tracker, model, ran


def test_one_key_stops_like_keras_early_stopping():
    losses = [3.0, 2.0, 2.5, float("nan"), 2.2, 1.0, 1.5]
    logs = [{"val_loss": v} for v in losses]
    _, model, ran = _best_epochs(["val_loss"], 3, logs)
    reference = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    keras_model = _Weights()
    reference.set_model(keras_model)
    for epoch, entry in enumerate(logs):
        keras_model.epoch = epoch + 1
        reference.on_epoch_end(epoch, dict(entry))
        if keras_model.stop_training:
            break
    reference.on_train_end()
    assert ran == keras_model.epoch == 5  # three epochs after epoch 2 without a better loss
    assert model.restored == keras_model.restored == 2


def test_several_keys_train_while_any_improves_and_keep_the_first_keys_weights():
    # val_loss is best at epoch 2, val_rmse keeps improving until epoch 6
    logs = [{"val_loss": 1.0 + abs(e - 1), "val_rmse": 10.0 - min(e, 5)} for e in range(12)]
    tracker, model, ran = _best_epochs(["val_loss", "val_rmse"], 2, logs)
    assert ran == 8  # two epochs after val_rmse's last improvement, not after val_loss's
    assert model.restored == 2
    assert tracker.epochs == {"val_loss": 2, "val_rmse": 6}
    assert tracker.weights["val_rmse"] == [6]


def test_best_epoch_skips_scores_that_are_not_finite():
    inf, nan = float("inf"), float("nan")
    logs = [{"val_rmse": v} for v in (inf, inf, 2.0, nan, 1.5, 1.7)]
    tracker, model, _ = _best_epochs(["val_rmse"], 10, logs)
    assert tracker.epochs["val_rmse"] == 5 and model.restored == 5
    # never finite: the first scored epoch's weights, as Keras keeps them
    tracker, model, ran = _best_epochs(["val_rmse"], 2, [{"val_rmse": inf}] * 6)
    assert tracker.epochs["val_rmse"] == 1 and model.restored == 1 and ran == 2


def test_clipnorm_clips_the_gradients_adam_sees():
    from probreg import plugins
    from probreg.heads import TrainingConfig
    from probreg.training import _optimizer

    assert plugins.create("head", "mdn:clipnorm=1.5").training().clipnorm == 1.5
    assert plugins.create("head", "mdn").training().clipnorm == 0.0  # off by default
    gradients = [np.array([30.0, 40.0]), np.array([0.3, -0.4])]  # norms 50 and 0.5

    def adam(clipnorm: float) -> np.ndarray:
        """Two Adam steps in numpy (Keras's defaults), gradients clipped to ``clipnorm``."""
        x, m, v, lr, b1, b2 = np.zeros(2), np.zeros(2), np.zeros(2), 0.1, 0.9, 0.999
        for t, g in enumerate(gradients, 1):
            g = g * min(1.0, clipnorm / np.linalg.norm(g)) if clipnorm else g
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            x -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + 1e-7)
        return x

    def keras_steps(clipnorm: float) -> np.ndarray:
        config = TrainingConfig(1, 1, 0.1, schedule="constant", clipnorm=clipnorm)
        optimizer, variable = _optimizer(config, 1), keras.Variable(np.zeros(2, "float32"))
        for g in gradients:
            optimizer.apply([keras.ops.convert_to_tensor(g.astype("float32"))], [variable])
        return keras.ops.convert_to_numpy(variable)

    np.testing.assert_allclose(keras_steps(1.0), adam(1.0), rtol=1e-4)
    np.testing.assert_allclose(keras_steps(0.0), adam(0.0), rtol=1e-4)
    assert not np.allclose(adam(1.0), adam(0.0), rtol=1e-2)  # clipping changes the steps


def test_fit_still_takes_one_monitor_key_as_a_string():
    """The pre-``nll,rmse`` form ``monitor=(key, callback)`` with ``key`` a string."""
    from probreg.heads import TrainingConfig
    from probreg.training import fit

    class HalfLoss(keras.callbacks.Callback):  # writes the key fit() follows
        def on_epoch_end(self, epoch, logs=None):
            logs["val_half"] = abs(epoch - 2) / 2.0  # best at epoch 3

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 2)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    config = TrainingConfig(6, 16, 1e-3, jit_compile=False)
    result = fit(
        model,
        keras.losses.MeanSquaredError(),
        config,
        x,
        y,
        x,
        y,
        verbose=False,
        monitor=("val_half", HalfLoss()),
    )
    assert result.best_epoch == 3 and result.epochs == 6 and result.checkpoints == {}


def test_ema_average_copies_the_first_step_then_warms_up_to_its_momentum():
    """The optimizer's weight average against numpy: step t uses min(ema, t / (t + 9))."""
    from probreg import plugins
    from probreg.heads import TrainingConfig
    from probreg.training import _optimizer

    assert plugins.create("head", "mdn:ema=0.999").training().ema == 0.999
    assert plugins.create("head", "mdn").training().ema == 0.0  # off by default
    gradients = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])] * 2
    config = TrainingConfig(1, 1, 0.1, schedule="constant", ema=0.2)
    optimizer, variable = _optimizer(config, 1), keras.Variable(np.zeros(2, "float32"))
    warm = keras_rule = None
    for t, g in enumerate(gradients):
        optimizer.apply([keras.ops.convert_to_tensor(g.astype("float32"))], [variable])
        w = keras.ops.convert_to_numpy(variable)
        m = min(0.2, t / (t + 9))  # 0, 0.1, 0.18, then 0.2
        warm = w if t == 0 else m * warm + (1 - m) * w
        keras_rule = w if t == 0 else 0.2 * keras_rule + 0.8 * w  # Keras's: full momentum
        average = keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[0])
        np.testing.assert_allclose(average, warm, rtol=1e-5)
        if t in (1, 2):  # the warm-up steps differ from Keras's own rule
            assert not np.allclose(average, keras_rule, rtol=1e-3)


def test_ema_scores_and_keeps_the_average_which_steadies_noisy_steps():
    """Large constant steps on a linear regression rattle around the optimum; with ``ema`` the
    validation scores, the best epoch and the kept weights are the average's, which rattles
    less; even a momentum of 0.9999 warms up within a few epochs."""
    from probreg.heads import TrainingConfig
    from probreg.training import fit

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 1))
    x, x_val = rng.normal(size=(512, 4)), rng.normal(size=(2048, 4))
    y, y_val = x @ w + 0.5 * rng.normal(size=(512, 1)), x_val @ w + 0.5 * rng.normal(size=(2048, 1))
    x, x_val, y, y_val = (a.astype("float32") for a in (x, x_val, y, y_val))

    def train(ema: float, epochs: int = 12, patience: int = 100) -> tuple[float, ...]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        untrained = float(np.mean((keras.ops.convert_to_numpy(model(x_val)) - y_val) ** 2))
        config = TrainingConfig(epochs, 16, 0.1, schedule="constant", patience=patience, ema=ema)
        result = fit(model, keras.losses.MeanSquaredError(), config, x, y, x_val, y_val)
        kept = float(model.evaluate(x_val, y_val, verbose=0))
        scored = result.history["val_loss"][result.best_epoch - 1]
        return kept, scored, untrained, result.epochs

    floor = float(np.mean((x_val @ w - y_val) ** 2))  # the true weights' validation loss
    raw, raw_scored, _, _ = train(0.0)
    averaged, averaged_scored, _, _ = train(0.99)
    assert averaged == pytest.approx(averaged_scored, rel=1e-4)  # the kept weights were scored
    assert raw == pytest.approx(raw_scored, rel=1e-4)
    assert averaged - floor < 0.5 * (raw - floor)  # the excess over the floor at least halves
    # An early stop also keeps the best epoch's average.
    stopped, stopped_scored, _, ran = train(0.99, epochs=40, patience=1)
    assert ran < 40 and stopped == pytest.approx(stopped_scored, rel=1e-4)
    slow, _, untrained, _ = train(0.9999, epochs=3)  # 96 steps; Keras's own average: 99% initial
    assert slow - floor < 0.1 * (untrained - floor)


def test_a_run_with_ema_saves_its_averaged_model_which_plain_keras_loads(tmp_path):
    import subprocess
    import sys

    from probreg import plugins
    from probreg.runs import load_run

    data, head = "spiral:n=600,val=100,test=200", "mdn:components=3,hidden=16,epochs=3"
    result = api.run(data, f"{head},ema=0.99", seed=0, output=tmp_path / "run", quiet=True)
    raw = api.run(data, head, seed=0, write=False, quiet=True)  # the same run without averaging
    test = plugins.create("dataset", data).load(0)
    loaded = load_run(tmp_path / "run")
    nll = -np.mean(loaded.distribution(test.x_test).log_prob(test.y_test))
    assert nll == pytest.approx(result.metrics["test"]["nll"], rel=1e-4)
    assert result.metrics["test"]["nll"] != pytest.approx(raw.metrics["test"]["nll"], rel=1e-4)
    # With its compile settings (the registered optimizer) and nothing but the documented imports.
    code = (
        "import sys, keras, probreg.layers, probreg.losses\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "print(type(model.optimizer).__name__, model.optimizer.use_ema)\n"
    )
    loads = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run" / "model.keras")],
        capture_output=True,
        text=True,
    )
    assert loads.returncode == 0, loads.stderr[-2000:]
    assert loads.stdout.split()[-2:] == ["AdamWithWarmEMA", "True"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's own loop")
@pytest.mark.parametrize("rows", [150, 70, 168, 128])
def test_grouped_steps_train_like_keras_own_loop(monkeypatch, rows):
    """On TensorFlow, fit runs each group of mini-batches in one XLA program: the same steps on
    the same batches as Keras's loop, so the same weights and losses to float rounding,
    including an epoch's partial last batch (batch 16, groups of 64 rows: 150 rows make 64, 64
    and 22; 70 make 64 and 6; 168 make 64, 64 and 40; 128 divide evenly) and the moving
    average. Afterwards the model has Keras's own loop again."""
    from probreg import training
    from probreg.heads import TrainingConfig

    rng = np.random.default_rng(0)
    x, x_val = rng.normal(size=(rows, 3)), rng.normal(size=(40, 3))
    y, y_val = x[:, :2] ** 2 + rng.normal(size=(rows, 2)), x_val[:, :2] ** 2
    x, x_val, y, y_val = (a.astype("float32") for a in (x, x_val, y, y_val))
    config = TrainingConfig(3, 16, 0.01, jit_compile=True, steps_per_execution=4, ema=0.9)
    steps_per_epoch = -(-rows // 16)

    made = []
    grouped_function = training.grouped_train_function
    monkeypatch.setattr(
        training,
        "grouped_train_function",
        lambda *args: made.append(args) or grouped_function(*args),
    )

    def train(group: bool):
        monkeypatch.setattr(training, "GROUP_STEPS", group)
        made.clear()
        assert training.groups_steps(config, steps_per_epoch, stream=False) is group
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
        )
        result = training.fit(model, keras.losses.MeanSquaredError(), config, x, y, x_val, y_val)
        assert int(model.optimizer.iterations) == 3 * steps_per_epoch
        assert bool(made) is group and (model.train_function is None) is group
        return model.get_weights(), result.history

    grouped_weights, grouped = train(True)
    keras_weights, keras_own = train(False)
    for a, b in zip(grouped_weights, keras_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(grouped[key], keras_own[key], rtol=1e-5)
    assert not training.groups_steps(config, steps_per_epoch, stream=True)


def test_a_stop_training_acted_on_does_not_stop_the_next_training():
    """A stop signal counts as pending until training acts on it (probreg.interrupts); once a
    training has stopped for it, the next training in the process runs to its end."""
    import signal

    from probreg import interrupts
    from probreg.heads import TrainingConfig
    from probreg.training import fit

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 2)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    config = TrainingConfig(3, 16, 0.01, patience=10)

    def train(stop_after_first_epoch: bool):
        def stop(epoch, logs):
            if stop_after_first_epoch and epoch == 0:
                interrupts._stop(signal.SIGINT, None)  # as the handler runs on Ctrl-C

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        return fit(model, keras.losses.MeanSquaredError(), config, x, y, x, y, epoch_callback=stop)

    stopped = train(True)
    assert (stopped.status, stopped.epochs) == ("interrupted", 1)
    following = train(False)
    assert (following.status, following.epochs) == ("completed", 3)
    assert interrupts.pending == 0


def test_the_earlier_names_of_the_pending_stop_count_still_work(monkeypatch):
    """``interrupts.dropped`` and ``take_dropped`` (one stop old) read the pending count."""
    from probreg import interrupts

    monkeypatch.setattr(interrupts, "pending", 2)
    assert interrupts.dropped == 2
    assert interrupts.take_dropped() is True and interrupts.pending == 0
    assert interrupts.dropped == 0 and interrupts.take_dropped() is False


def test_many_trainings_in_one_process_print_no_retracing_notices():
    """TensorFlow warned "triggered tf.function retracing" for every model after the fifth in
    a process (compare, tune, a loop of runs): each model's own traces, by design."""
    import os
    import subprocess
    import sys

    script = (
        "import probreg\n"
        "for seed in range(7):\n"
        "    probreg.run('spiral:n=100,val=30,test=30', 'mdn:hidden=4,components=2',"
        " epochs=1, seed=seed, write=False, quiet=True)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "retracing" not in done.stderr
