"""Keras layers: the built-in families' layers and the dense trunk.

Each family's layer lives in its family file (:mod:`probreg.families`), and is registered with
Keras when a head prepares to load a model (:meth:`probreg.heads.Head.prepare_load`). This
module keeps the names earlier versions exported (``MixtureDensity``, ``FixedScaleGaussian``,
``packed_size``...) and registers those layers on import, for code that loads a ``.keras``
file with Keras alone after ``import probreg.layers``.
"""

from __future__ import annotations

import keras

from probreg.families import fixed_gaussian, gaussian_mixture, student_t_mixture
from probreg.families.base import SCALE_ACTIVATIONS, positive_scale

MixtureDensity = gaussian_mixture.layer_class()
FixedScaleGaussian = fixed_gaussian.layer_class()
StudentTMixtureDensity = student_t_mixture.layer_class()

__all__ = [
    "SCALE_ACTIVATIONS",
    "FixedScaleGaussian",
    "MixtureDensity",
    "StudentTMixtureDensity",
    "dense_trunk",
    "packed_size",
    "positive_scale",
    "unpack",
]


def packed_size(components: int, output_dim: int) -> int:
    """Columns of a packed Gaussian-mixture row: ``K + 2 K d``."""
    return gaussian_mixture.layout(components, output_dim).size


def unpack(packed, components: int, output_dim: int):
    """Split packed Gaussian-mixture rows into log-weights ``(n, K)``, means and scales."""
    blocks = gaussian_mixture.layout(components, output_dim).unpack(packed)
    return blocks["log_weights"], blocks["means"], blocks["scales"]


def dense_trunk(
    inputs, hidden: tuple[int, ...], activation: str, name: str = "trunk", dropout: float = 0.0
):
    """Stack plain ``Dense`` layers (the built-in trunk), applied to ``inputs``.

    With ``dropout > 0`` each hidden layer's output is dropped at that rate during training
    (Keras ``Dropout``: inactive when predicting, so saved models predict deterministically).
    """
    features = inputs
    for i, units in enumerate(hidden):
        features = keras.layers.Dense(units, activation=activation, name=f"{name}_{i}")(features)
        if dropout > 0:
            features = keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")(features)
    return features
