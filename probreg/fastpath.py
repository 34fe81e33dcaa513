"""A compiled model call for prediction: one trace for every batch size, no eager overhead.

Calling a Keras model eagerly costs milliseconds of Python and dispatch per call, whatever the
batch size; a single row pays all of it. :func:`compiled_call` traces the model once, with a
batch axis of any length (``tf.function`` with an input signature on TensorFlow, ``jax.jit``
on JAX), and returns a numpy-in, numpy-out function. The same model gives the same numbers
through it whether it was just trained or loaded from disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np


def compiled_call(model) -> Callable[[np.ndarray], np.ndarray]:
    """``f(x) -> outputs`` for float32 inputs ``(n, *model.input_shape[1:])``."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        quiet_retracing_notice()  # every model's call is traced anew, by design

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        traced = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return lambda x: traced(np.asarray(x, np.float32)).numpy()
    if backend == "jax":
        import jax

        @jax.jit
        def traced(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        def call(x: np.ndarray) -> np.ndarray:
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return np.asarray(traced(trainable, non_trainable, np.asarray(x, np.float32)))

        return call
    return lambda x: keras.ops.convert_to_numpy(model(np.asarray(x, np.float32), training=False))


class _NoRetracingNotice(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" notice. Every model gets its own
    traced functions, by design; a process that trains many (``compare``, ``tune``, a loop of
    :func:`probreg.run`) printed the notice for each model after the fifth."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_retracing_notice() -> None:
    """On TensorFlow, filter the retracing notice out of the ``tensorflow`` logger (once)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(item, _NoRetracingNotice) for item in logger.filters):
        logger.addFilter(_NoRetracingNotice())
