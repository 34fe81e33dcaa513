"""probreg-histogram: the ``histogram`` head, a discretised-softmax density for 1-D targets.

This module is what the ``probreg`` entry point names. It stays light (no Keras import), so
``probreg list`` stays fast; the Keras objects live in :mod:`probreg_histogram.keras_objects`.
"""

from __future__ import annotations

import numpy as np

from probreg.errors import UsageError
from probreg.heads import Head, training_params, trunk_params
from probreg.hookspecs import hookimpl
from probreg.params import Param

__version__ = "0.1.0"


class Histogram(Head):
    """Histogram density: softmax over equal-width bins plus a wide Gaussian for the tails."""

    name = "histogram"
    keras_modules = ("probreg_histogram.keras_objects",)
    params = (
        Param("bins", "int", 100, "number of equal-width bins", minimum=2, maximum=10_000),
        Param(
            "range",
            "float",
            5.0,
            "bins cover [-range, range] in standardised target units (training standard "
            "deviations); a Gaussian of that scale covers the rest",
            minimum=0.1,
        ),
        *trunk_params(hidden=(128, 128), activation="relu"),
        *training_params(epochs=200, batch_size=128, learning_rate=2e-3, patience=30),
    )

    def build(self, input_dim: int, output_dim: int):
        import keras

        from probreg.layers import dense_trunk
        from probreg_histogram.keras_objects import LogSoftmax

        if output_dim != 1:
            raise UsageError(f"head 'histogram' needs one target column, the data has {output_dim}")
        inputs = keras.Input((input_dim,), name="x")
        features = dense_trunk(inputs, self.options["hidden"], self.options["activation"])
        logits = keras.layers.Dense(self.options["bins"] + 1, name="logits")(features)
        return keras.Model(inputs, LogSoftmax(name="log_weights")(logits), name="histogram")

    def loss(self, output_dim: int):
        from probreg_histogram.keras_objects import HistogramNLL

        return HistogramNLL(self.options["bins"], self.options["range"])

    def distribution(self, outputs: np.ndarray, output_dim: int):
        from probreg_histogram.distribution import HistogramDistribution

        return HistogramDistribution(outputs, self.options["range"])


@hookimpl
def register_heads(register):
    register(Histogram)
