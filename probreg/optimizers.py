"""The optimizer :func:`probreg.training.fit` compiles with when a head's ``ema`` is on.

Registered with Keras (``probreg>AdamWithWarmEMA``) so that the compile settings a saved model
carries load again; :mod:`probreg.losses` imports this module, so the documented
``import probreg.layers, probreg.losses`` before ``keras.saving.load_model`` covers it.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="probreg")
class AdamWithWarmEMA(keras.optimizers.Adam):
    """Adam whose weight average (``use_ema``) warms up like TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``: step ``t`` (from 0) uses momentum
    ``min(ema_momentum, t / (t + 9))``, so the first step copies the weights and step ``t``
    averages over about its last ``t / 9`` steps until the momentum is reached.

    Keras's own average copies the weights after the first step and then runs at full
    momentum, so at 0.9995 a quarter of the first step's weights is still in it after 2,800
    steps: early stopping then sees a poor model for dozens of epochs and can stop for good (on
    the spiral it did, at epoch 52). Keras has no public hook for this, so the private method
    that updates the average is overridden (a test fails if Keras stops calling it).
    """

    def _update_model_variables_moving_average(self, trainable_variables) -> None:
        step = keras.ops.cast(self.iterations, "float32")
        momentum = keras.ops.minimum(self.ema_momentum, step / (step + 9.0))
        for variable, average in zip(
            trainable_variables, self._model_variables_moving_average, strict=True
        ):
            if average is not None:
                m = keras.ops.cast(momentum, variable.dtype)
                average.assign(m * average + (1.0 - m) * variable)

    def finalize_variable_values(self, var_list) -> None:
        """Leave the model's weights alone at the end of ``fit``: :func:`probreg.training.fit`
        puts the best epoch's average back itself, and after an interrupt on JAX the average's
        buffers may already be gone (a compiled step donated them), which Keras's copy of the
        average into the model would trip over, hiding the interrupt."""
