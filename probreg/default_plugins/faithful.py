"""Dataset ``faithful``: Old Faithful geyser, eruption duration given the waiting time.

272 eruptions: waiting time to the eruption (minutes) and its duration (minutes). Durations
are bimodal (about 2 or 4.5 minutes); for waiting times around 65-75 minutes both kinds occur,
so ``p(duration | waiting)`` has two modes there. Datasheet: ``datasets/faithful.md``.
"""

from __future__ import annotations

from probreg.datasets import BundledTable
from probreg.hookspecs import hookimpl


class Faithful(BundledTable):
    """Old Faithful eruption duration given waiting time (272 rows): bimodal."""

    name = "faithful"
    file = "faithful.csv"
    x_column = "waiting"
    y_column = "eruptions"


@hookimpl
def register_datasets(register):
    register(Faithful)
