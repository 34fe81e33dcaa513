"""Predictive families: each file holds one family's layout, Keras layer, ``keras.ops``
log-density and numpy distribution (see :mod:`probreg.families.base`)."""

from probreg.families.base import (
    Family,
    Layout,
    MixtureFamily,
    check_layer_arguments,
    positive_scale,
    projection_layer,
    split_members,
)

__all__ = [
    "Family",
    "Layout",
    "MixtureFamily",
    "check_layer_arguments",
    "positive_scale",
    "projection_layer",
    "split_members",
]
