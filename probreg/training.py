"""Fitting a head's Keras model: schedule, early stopping, progress, NaN and Ctrl-C handling,
and (on JAX) compiled programs shared between models of one architecture."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from probreg import interrupts
from probreg.errors import TrainingError
from probreg.fastpath import quiet_retracing_notice
from probreg.heads import TrainingConfig
from probreg.optimizers import AdamWithWarmEMA

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributed import PeerWatchdog


@dataclasses.dataclass
class FitResult:
    """What training did: per-epoch history, the epoch whose weights were kept, and why it ended.

    ``status`` is ``completed`` (early stopping or the last epoch) or ``interrupted`` (Ctrl-C;
    the best weights so far were restored).
    """

    history: dict[str, list[float]]
    epochs: int
    best_epoch: int
    seconds: float
    status: str
    streamed: bool = False
    #: Further monitored scores: log key -> (its best epoch, the model's weights then).
    checkpoints: dict[str, tuple[int, list[np.ndarray]]] = dataclasses.field(default_factory=dict)


class BatchStream(keras.utils.PyDataset):
    """Shuffled mini-batches sliced from arrays (or memory maps) without copying them whole.

    Only one batch at a time is gathered, so memory stays bounded by the batch size whatever the
    number of rows. The permutation is reshuffled every epoch from its own seeded generator.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))
        self._started = False

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.x[rows], self.y[rows]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))

    def batch_in_order(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` for pipelines without an epoch-end hook (``tf.data``): asking for
        batch 0 again means a new epoch has begun, so the rows are reshuffled first."""
        if index == 0 and self._started:
            self.on_epoch_end()
        self._started = True
        return self[index]


class _StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN or infinite training loss and remember where it happened."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.bad: str | None = None

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad = f"the training loss became {float(loss)} in epoch {self.epoch + 1}"
            self.model.stop_training = True


class _RaisePendingStops(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` before a training or validation batch when a stop signal's
    own exception was lost (dropped by Python or cleared by native code; see
    :mod:`probreg.interrupts`)."""

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if interrupts.take_pending():
            raise KeyboardInterrupt

    on_test_batch_begin = on_train_batch_begin


class _BestEpochs(keras.callbacks.Callback):
    """Early stopping over one or more logged scores (lower is better).

    Remembers, for each key, the weights of the epoch with its lowest value (the first scored
    epoch's until one is finite, as Keras does); stops when none of them has improved for
    ``patience`` epochs; at the end restores the first key's best weights. With one key and
    finite scores this is Keras's ``EarlyStopping(restore_best_weights=True)`` (which, after a
    NaN first epoch, never sees an improvement again).
    """

    def __init__(self, keys: Sequence[str], patience: int) -> None:
        super().__init__()
        self.keys, self.patience = tuple(keys), patience
        self.best = dict.fromkeys(self.keys, math.inf)
        self.epochs = dict.fromkeys(self.keys, 0)
        self.weights: dict[str, list[np.ndarray]] = {}
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        values = {key: (logs or {}).get(key) for key in self.keys}
        if all(value is None for value in values.values()):
            return
        self.wait += 1
        for key, value in values.items():
            if value is None:
                continue
            better = float(value) < self.best[key]
            if better or key not in self.weights:
                self.epochs[key], self.weights[key] = epoch + 1, self.model.get_weights()
            if better:
                self.best[key], self.wait = float(value), 0
        if self.wait >= self.patience and epoch > 0:
            self.model.stop_training = True

    def restore(self) -> None:
        """Put the first key's best weights back (if any epoch was scored)."""
        if self.keys[0] in self.weights:
            self.model.set_weights(self.weights[self.keys[0]])

    def on_train_end(self, logs=None) -> None:
        self.restore()


class _Progress(keras.callbacks.Callback):
    """Progress over epochs: a Keras progress bar on a terminal, else a line every ~10%."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.start = time.perf_counter()
        self.dynamic = sys.stdout.isatty()
        self.bar = keras.utils.Progbar(
            epochs, unit_name="epoch", stateful_metrics=["loss", "val_loss", "lr"]
        )

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        values = [(k, float(logs[k])) for k in ("loss", "val_loss") if k in logs]
        values.append(("lr", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))
        if self.dynamic:
            self.bar.update(epoch + 1, values=values)
        elif (epoch + 1) % max(1, self.epochs // 10) == 0 or epoch == 0:
            shown = " - ".join(f"{k}: {v:.4g}" for k, v in values)
            elapsed = time.perf_counter() - self.start
            print(
                f"epoch {epoch + 1}/{self.epochs} - {shown} - {elapsed:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    def on_train_end(self, logs=None) -> None:
        if self.dynamic and self.bar._seen_so_far < self.epochs:
            print(flush=True)  # early stopping left the bar unfinished


class _LearningRateLog(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


def _replace_deleted_buffers(model: keras.Model) -> None:
    """After an interrupt on JAX, give zeros to every variable whose buffer is gone.

    During an epoch Keras keeps JAX's training state outside the variables (it purges them to
    ``None``) and copies it back in ``fit``'s ``finally`` block. A compiled step consumes
    (donates) its input buffers, so after an interrupt inside one that copy hands the variables
    deleted buffers, and saving the model would fail. The optimizer's moments and step count
    and the loss trackers restart from zero; the weights are then put back from the best epoch
    (an interrupt before the first epoch ends keeps no model).
    """
    if keras.backend.backend() != "jax":
        return
    optimizer = getattr(model, "optimizer", None)
    variables = [
        *model.variables,
        *(optimizer.variables if optimizer is not None else ()),
        *model.metrics_variables,
    ]
    for variable in variables:
        if not hasattr(variable, "_value"):  # Keras's private buffer; leave alone if renamed
            continue
        value = variable._value  # reading .value would fail on a deleted buffer
        if value is None or (hasattr(value, "is_deleted") and value.is_deleted()):
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))


def training_batches(
    x, y, batch_size: int, seed: int, stream: bool, batches_per_element: int = 1
) -> dict:
    """``model.fit`` keyword arguments that feed shuffled mini-batches of ``(x, y)``.

    On TensorFlow this is a ``tf.data`` pipeline (about twice as fast as handing Keras numpy
    arrays on a CPU); on other backends, arrays or a :class:`BatchStream`. When streaming, only
    row indices are shuffled and each batch is gathered as it is needed.
    ``batches_per_element`` (TensorFlow, in memory) makes each element that many consecutive
    mini-batches' rows, for :func:`grouped_train_function`; the rows come in the same order.
    """
    if keras.backend.backend() != "tensorflow":
        if stream:
            return {"x": BatchStream(x, y, batch_size, seed), "shuffle": False}
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
    import tensorflow as tf

    if stream:
        source = BatchStream(x, y, batch_size, seed)
        x_dim, y_dim = x[np.arange(1)].shape[1], y[np.arange(1)].shape[1]

        def gather(step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            xb, yb = source.batch_in_order(int(step))
            return np.asarray(xb, np.float32), np.asarray(yb, np.float32)

        def load(step):
            xb, yb = tf.numpy_function(gather, [step], [tf.float32, tf.float32])
            return (
                tf.ensure_shape(xb, [None, x_dim]),
                tf.ensure_shape(yb, [None, y_dim]),
            )

        # Only batch numbers go through tf.data; the rows stay where they are.
        batches = tf.data.Dataset.range(len(source)).map(load)
    else:
        batches = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size * batches_per_element)
        )
    return {"x": batches.prefetch(tf.data.AUTOTUNE), "shuffle": False}  # shuffled above


def validation_batches(x: np.ndarray, y: np.ndarray):
    """Validation data for ``model.fit``; cached ``tf.data`` on TensorFlow.

    Numpy validation arrays cost about 0.1 s per epoch on TensorFlow (a new iterator each time),
    more than a whole epoch of training on the spiral.
    """
    if keras.backend.backend() != "tensorflow":
        return (x, y)
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8192).cache()


#: With ``jit_compile="auto"``, runs of fewer gradient steps than this skip XLA: compiling
#: costs a few seconds, more than a short run (tests, small searches) gains from it.
XLA_MIN_STEPS = 2000


#: Programs that compile faster than this are not worth a file (JAX's default threshold, 1 s,
#: would leave out most of a small network's programs).
CACHE_MIN_COMPILE_SECONDS = 0.1


@contextlib.contextmanager
def seeded(seed: int):
    """Seed Python, NumPy and the Keras backend for one training, then give Python's and NumPy's
    global generators their state back: training stays reproducible and leaves a caller's own
    random numbers alone, as scikit-learn estimators must."""
    import random

    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def share_compilations() -> str | None:
    """On JAX, let models of one architecture reuse the XLA programs compiled for the first.

    Keras traces new functions for every model, so each split of ``compare --splits all``,
    each seed and each search trial that repeats an architecture compiled the same programs
    again, up to a second each on a CPU (a fifth of a 400-epoch run on a small UCI set).
    JAX's persistent compilation cache finds programs by their content. Pointed at a private
    temporary folder (removed at normal exit, with a threshold of
    :data:`CACHE_MIN_COMPILE_SECONDS`), it serves them within the process. This is
    process-wide JAX configuration, so the user's own JAX programs in the same process are
    cached there too. A cache folder the user set (``JAX_COMPILATION_CACHE_DIR``) is used as
    it is, with the user's threshold. Off in multi-process jobs (only process 0 would write)
    and where the user disabled JAX's cache. Returns the folder in use, if any.
    """
    if keras.backend.backend() != "jax":
        return None
    import jax

    if not jax.config.jax_enable_compilation_cache:
        return None
    if not jax.config.jax_compilation_cache_dir:  # neither the user's nor ours yet
        if jax.process_count() > 1:
            return None
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="probreg-xla-")  # private to this user
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return jax.config.jax_compilation_cache_dir


def uses_xla(config: TrainingConfig, steps_per_epoch: int) -> bool:
    """Whether :func:`fit` XLA-compiles the training step for this recipe. ``"auto"``: always
    on JAX (without it JAX runs op by op, many times slower); on TensorFlow only for runs of
    at least ``XLA_MIN_STEPS`` steps, where compiling repays its few seconds."""
    if config.jit_compile == "auto":
        if keras.backend.backend() == "jax":
            return True
        return config.epochs * steps_per_epoch >= XLA_MIN_STEPS
    return bool(config.jit_compile)


#: Whether :func:`fit` runs a group of mini-batches per XLA program on TensorFlow
#: (:func:`groups_steps`); the tests switch it off to compare with Keras's own loop.
GROUP_STEPS = True


def groups_steps(config: TrainingConfig, steps_per_epoch: int, stream: bool) -> bool:
    """Whether :func:`fit` trains through :func:`grouped_train_function`: on TensorFlow, with
    XLA, in-memory data, several steps per execution and no distribution strategy.

    Keras's own loop on TensorFlow calls one XLA program per step from a graph loop over a
    ``tf.data`` iterator, and that costs about as much as the small step itself: the spiral's
    steps take half the time in one program per group (``docs/benchmarks.md``).
    """
    if not GROUP_STEPS or keras.backend.backend() != "tensorflow" or stream:
        return False
    import tensorflow as tf

    return (
        config.steps_per_execution > 1
        and uses_xla(config, steps_per_epoch)
        and not tf.distribute.has_strategy()
    )


def grouped_train_function(model: keras.Model, batch_size: int) -> Callable:
    """A ``model.train_function`` for TensorFlow that takes one element of consecutive
    mini-batches' rows (:func:`training_batches` with ``batches_per_element``) and runs
    ``model.train_step`` on each ``batch_size`` rows in turn, in one XLA program.

    The steps, their batches and their order are Keras's; only the calls are fewer. A shorter
    last element (the epoch's tail, with its partial last batch) compiles a second program.
    """
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def train_rows(x, y):
        full = x.shape[0] // batch_size  # static: one trace per element size
        if full == 0:
            return model.train_step((x, y))
        # (full, batch_size, ...) batches, so that each step's slice has a static shape
        x_batches = tf.reshape(x[: full * batch_size], (full, batch_size, *x.shape[1:]))
        y_batches = tf.reshape(y[: full * batch_size], (full, batch_size, *y.shape[1:]))
        logs = model.train_step((x_batches[0], y_batches[0]))
        if full > 1:
            _, logs = tf.while_loop(
                lambda i, _: i < full,
                lambda i, _: (i + 1, model.train_step((x_batches[i], y_batches[i]))),
                (tf.constant(1), logs),
            )
        if x.shape[0] > full * batch_size:  # the epoch's partial last batch
            logs = model.train_step((x[full * batch_size :], y[full * batch_size :]))
        return logs

    def train_function(iterator):
        x, y = next(iterator)
        return train_rows(x, y)

    return train_function


def _optimizer(config: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    options = {
        "weight_decay": config.weight_decay or None,
        "global_clipnorm": config.clipnorm or None,
    }
    if config.ema:
        return AdamWithWarmEMA(learning_rate, use_ema=True, ema_momentum=config.ema, **options)
    return keras.optimizers.Adam(learning_rate, **options)


def fit(
    model: keras.Model,
    loss: keras.losses.Loss,
    config: TrainingConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int = 0,
    verbose: bool = True,
    stream: bool = False,
    watchdog: PeerWatchdog | None = None,
    epoch_callback: Callable[[int, dict], None] | None = None,
    monitor: tuple[str | Sequence[str], keras.callbacks.Callback] | None = None,
) -> FitResult:
    """Train ``model`` in place; keep the weights of the epoch with the lowest validation loss.

    ``stream=True`` gathers each batch from ``x_train``/``y_train`` (arrays, memory maps, or
    anything indexable by row arrays) instead of copying them into the input pipeline.
    Raises :class:`TrainingError` if the loss stops being finite. A ``watchdog`` is fed after
    every batch and stops the process when batches stop coming (a dead peer).
    ``epoch_callback(epoch, logs)`` is called after every epoch with the epoch's logs
    (``loss``, ``val_loss``, ...); an exception it raises ends training and propagates (a
    hyperparameter search prunes a trial this way).
    ``monitor`` is ``(key, callback)``: a callback that writes ``logs[key]`` after every epoch
    (first of all callbacks but ``ema``'s swap); early stopping and the best epoch then follow
    ``key`` instead of ``val_loss`` (:func:`probreg.postfit.monitor_callback`). With several
    keys the first one picks the kept weights, training stops when none has improved for
    ``patience`` epochs, and each further key's best epoch and weights come back in
    :attr:`FitResult.checkpoints`.
    With ``config.ema`` every validation score, the best epoch and the kept weights are those
    of the weights' moving average (Polyak averaging); training and its loss use the raw ones.
    """
    keys, scorer = monitor if monitor is not None else ("val_loss", None)
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    share_compilations()
    quiet_retracing_notice()
    grouped = groups_steps(config, steps_per_epoch, stream)
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss=loss,
        jit_compile=uses_xla(config, steps_per_epoch),
        steps_per_execution=1 if grouped else config.steps_per_execution,
    )
    if grouped:  # Keras keeps a train_function it finds (until the next compile)
        model.train_function = grouped_train_function(model, config.batch_size)
    best_epochs = _BestEpochs(keys, config.patience)
    guard = _StopOnNonFinite()
    callbacks: list[keras.callbacks.Callback] = [
        _LearningRateLog(),
        guard,
        best_epochs,
        _RaisePendingStops(),
    ]
    if config.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.1, patience=max(1, config.patience // 4)
            )
        )
    if verbose:
        callbacks.append(_Progress(config.epochs))
    # With ``ema`` the average goes into the model for validation and stays there at each
    # epoch's end, before any other callback, so scores and kept weights are the average's.
    # _BestEpochs then restores the best epoch's average after every run (the optimizer does
    # not copy its average into the model at the end: AdamWithWarmEMA.finalize_variable_values).
    swap_in_average = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema else []
    inputs = training_batches(
        x_train,
        y_train,
        config.batch_size,
        seed,
        stream,
        batches_per_element=config.steps_per_execution if grouped else 1,
    )
    if config.validation_batch_size is not None:
        inputs["validation_batch_size"] = config.validation_batch_size
    if watchdog is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: watchdog.beat())
        )
    if epoch_callback is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: epoch_callback(epoch, dict(logs or {}))
            )
        )
    start = time.perf_counter()
    status = "completed"
    history = keras.callbacks.History()
    try:
        with watchdog or contextlib.nullcontext():
            model.fit(
                **inputs,
                epochs=config.epochs,
                validation_data=validation_batches(x_val, y_val),
                callbacks=[  # history after the LR log (and the monitor's score)
                    *swap_in_average,
                    *([scorer] if scorer is not None else []),
                    callbacks[0],
                    history,
                    *callbacks[1:],
                ],
                verbose=0,
            )
    except KeyboardInterrupt:
        interrupts.take_pending()  # this stop is acted on here
        status = "interrupted"
        _replace_deleted_buffers(model)
        best_epochs.restore()
    else:
        if interrupts.take_pending():  # a stop lost after the last batch
            status = "interrupted"
    finally:
        if grouped:  # Keras's own loop again for anyone who fits this model later
            model.train_function = None
    seconds = time.perf_counter() - start
    if guard.bad is not None:
        raise TrainingError(
            f"training diverged: {guard.bad}; try a smaller learning_rate or batch_size"
        )
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    epochs_run = len(logs.get("loss", []))
    checkpoints = {
        key: (best_epochs.epochs[key], best_epochs.weights[key])
        for key in keys[1:]
        if key in best_epochs.weights
    }
    best = best_epochs.epochs[keys[0]]
    return FitResult(logs, epochs_run, best, seconds, status, checkpoints=checkpoints)
