"""Dataset ``mcycle``: head acceleration in a simulated motorcycle crash (Silverman, 1985).

133 measurements of acceleration (g) against time after impact (ms). The noise changes by
orders of magnitude over time: near zero before impact, large during it. A model with one noise
level for all inputs (the MLP) cannot be calibrated here. Datasheet: ``datasets/mcycle.md``.
"""

from __future__ import annotations

from probreg import csvfiles
from probreg.datasets import Data, Dataset, bundled_path, split_table
from probreg.hookspecs import hookimpl
from probreg.params import Param


class MCycle(Dataset):
    """Motorcycle crash accelerations (133 rows): strongly heteroscedastic."""

    name = "mcycle"
    params = (
        Param(
            "test_fraction",
            "float",
            0.2,
            "share of rows held out for testing",
            minimum=0.05,
            maximum=0.5,
        ),
        Param(
            "val_fraction",
            "float",
            0.15,
            "share of rows held out for early stopping",
            minimum=0.05,
            maximum=0.5,
        ),
    )

    def load(self, seed: int) -> Data:
        path = bundled_path("mcycle.csv")
        x, y = csvfiles.read_columns(path, ["times"]), csvfiles.read_columns(path, ["accel"])
        o = self.options
        return split_table(x, y, seed, ["times"], ["accel"], o["val_fraction"], o["test_fraction"])


@hookimpl
def register_datasets(register):
    register(MCycle)
