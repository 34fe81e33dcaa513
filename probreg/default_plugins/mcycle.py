"""Dataset ``mcycle``: head acceleration in a simulated motorcycle crash (Silverman, 1985).

133 measurements of acceleration (g) against time after impact (ms). The noise changes by
orders of magnitude over time: near zero before impact, large during it. A model with one noise
level for all inputs (the MLP) cannot be calibrated here. Datasheet: ``datasets/mcycle.md``.
"""

from __future__ import annotations

from probreg.datasets import BundledTable
from probreg.hookspecs import hookimpl


class MCycle(BundledTable):
    """Motorcycle crash accelerations (133 rows): strongly heteroscedastic."""

    name = "mcycle"
    file = "mcycle.csv"
    x_column = "times"
    y_column = "accel"


@hookimpl
def register_datasets(register):
    register(MCycle)
