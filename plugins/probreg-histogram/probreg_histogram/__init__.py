"""probreg-histogram: the ``histogram`` family, and a ``histogram`` head that uses it.

This module is what the ``probreg`` entry point names. It stays light (no Keras import), so
``probreg list`` stays fast. The family is one file, :mod:`probreg_histogram.family`; the head
is a dense trunk with that family on top and a recipe of its own; any family head can use
the family too: ``--head mdn:family=histogram,bins=200``.
"""

from __future__ import annotations

from probreg.heads import FamilyHead, family_head_params, training_params, trunk_params
from probreg.hookspecs import hookimpl
from probreg_histogram.family import HistogramFamily

__version__ = "0.2.0"


class Histogram(FamilyHead):
    """Histogram density head: a dense trunk and the histogram family."""

    name = "histogram"
    layer_name = "log_weights"
    default_family = "histogram"
    family_choice = False
    keras_modules = ("probreg.losses", "probreg_histogram.keras_objects")
    own_params = (
        *trunk_params(hidden=(128, 128), activation="relu"),
        *training_params(epochs=200, batch_size=128, learning_rate=2e-3, patience=30),
    )
    params = family_head_params(own_params, HistogramFamily, None)
    test_specs = ("histogram:bins=20,hidden=16",)


@hookimpl
def register_families(register):
    register(HistogramFamily)


@hookimpl
def register_heads(register):
    register(Histogram)
