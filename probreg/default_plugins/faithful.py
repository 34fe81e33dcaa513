"""Dataset ``faithful``: Old Faithful geyser, eruption duration given the waiting time.

272 eruptions: waiting time to the eruption (minutes) and its duration (minutes). Durations
are bimodal (about 2 or 4.5 minutes); for waiting times around 65-75 minutes both kinds occur,
so ``p(duration | waiting)`` has two modes there. Datasheet: ``datasets/faithful.md``.
"""

from __future__ import annotations

from probreg import csvfiles
from probreg.datasets import Data, Dataset, bundled_path, split_table
from probreg.hookspecs import hookimpl
from probreg.params import Param


class Faithful(Dataset):
    """Old Faithful eruption duration given waiting time (272 rows): bimodal."""

    name = "faithful"
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
        path = bundled_path("faithful.csv")
        x, y = csvfiles.read_columns(path, ["waiting"]), csvfiles.read_columns(path, ["eruptions"])
        o = self.options
        return split_table(
            x, y, seed, ["waiting"], ["eruptions"], o["val_fraction"], o["test_fraction"]
        )


@hookimpl
def register_datasets(register):
    register(Faithful)
