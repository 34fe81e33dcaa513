"""Keras objects of the histogram head, in ``keras.ops`` (any backend), registered for loading."""

from __future__ import annotations

import math

import keras
from keras import ops

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@keras.saving.register_keras_serializable(package="probreg_histogram")
class LogSoftmax(keras.layers.Layer):
    """Normalise logits into log-weights."""

    def call(self, logits):
        return logits - ops.logsumexp(logits, axis=-1, keepdims=True)

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
        width = 2.0 * self.half_range / self.bins
        y = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
        index = ops.floor((y + self.half_range) / width)
        inside = ops.logical_and(index >= 0, index < self.bins)
        one_hot = ops.one_hot(ops.cast(ops.clip(index, 0, self.bins - 1), "int32"), self.bins)
        bin_log_weight = ops.sum(one_hot * y_pred[:, : self.bins], axis=-1)
        very_small = ops.cast(-1e30, y_pred.dtype)
        bin_term = ops.where(inside, bin_log_weight - math.log(width), very_small)
        z = y / self.half_range
        tail_term = y_pred[:, self.bins] - 0.5 * z * z - math.log(self.half_range) - _HALF_LOG_2PI
        return -ops.logaddexp(bin_term, tail_term)

    def get_config(self) -> dict:
        return {**super().get_config(), "bins": self.bins, "half_range": self.half_range}
