"""Keras objects that models saved by probreg-histogram 0.1 refer to, kept so they still load."""

from __future__ import annotations

import keras

from probreg_histogram.family import layer_class, log_prob

HistogramLayer = layer_class()


@keras.saving.register_keras_serializable(package="probreg_histogram")
class LogSoftmax(keras.layers.Layer):
    """Normalise logits into log-weights (the 0.1 model's last layer)."""

    def call(self, logits):
        return keras.ops.log_softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="probreg_histogram")
class HistogramNLL(keras.losses.Loss):
    """NLL of 1-D targets under bins on ``[-R, R]`` plus an ``N(0, R^2)`` tail component."""

    def __init__(self, bins: int, half_range: float, name: str = "histogram_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bins = int(bins)
        self.half_range = float(half_range)

    def call(self, y_true, y_pred):
        return -log_prob(y_pred, y_true, self.bins, self.half_range)

    def get_config(self) -> dict:
        return {**super().get_config(), "bins": self.bins, "half_range": self.half_range}
