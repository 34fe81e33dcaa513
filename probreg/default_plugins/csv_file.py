"""Dataset ``csv``: the user's own comma-separated file(s).

``csv:path=train.csv,x=COL,y=COL`` takes input column(s) ``x`` and target column(s) ``y`` (join
several names with ``+``: ``x=age+weight``). Without ``test=FILE`` a seeded ``test_fraction`` of
the rows is held out; validation rows always come from the training file. The file needs a
header row; values must be numbers (no NaN or infinity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probreg import csvfiles
from probreg.datasets import Data, Dataset, split_rows, split_table
from probreg.errors import UsageError
from probreg.hookspecs import hookimpl
from probreg.params import Param, quote_value


class CSVFile(Dataset):
    """Your own CSV file: pick input and target columns by name."""

    name = "csv"
    params = (
        Param("path", "str", None, "CSV file with a header row", required=True),
        Param("x", "strs", None, "input column name(s), joined with +", required=True),
        Param("y", "strs", None, "target column name(s), joined with +", required=True),
        Param("test", "str", None, "separate test CSV with the same columns (optional)"),
        Param(
            "test_fraction",
            "float",
            0.2,
            "share of rows held out for testing without test=",
            minimum=0.01,
            maximum=0.9,
        ),
        Param(
            "val_fraction",
            "float",
            0.15,
            "share of rows held out for early stopping",
            minimum=0.01,
            maximum=0.9,
        ),
    )

    def check_options(self) -> None:
        super().check_options()
        x, y = self.options["x"], self.options["y"]
        for option, names in (("x", x), ("y", y)):
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise UsageError(f"csv: column '{twice[0]}' is named twice in {option}=")
        both = [name for name in y if name in x]
        if both:
            raise UsageError(
                f"csv: column '{both[0]}' is both an input (x=) and a target (y=); a target "
                "given as an input would leak into the prediction"
            )

    @classmethod
    def contract_specs(cls, folder: Path) -> tuple[str, ...]:
        from probreg.datasets import bundled_path

        return (f"csv:path={quote_value(str(bundled_path('mcycle.csv')))},x=times,y=accel",)

    def load(self, seed: int) -> Data:
        o = self.options
        x = csvfiles.read_columns(o["path"], o["x"])
        y = csvfiles.read_columns(o["path"], o["y"])
        if o["test"] is None:
            return split_table(x, y, seed, o["x"], o["y"], o["val_fraction"], o["test_fraction"])
        x_test = csvfiles.read_columns(o["test"], o["x"])
        y_test = csvfiles.read_columns(o["test"], o["y"])
        train, val = split_rows(len(x), np.random.default_rng(seed), o["val_fraction"])
        return Data(x[train], y[train], x[val], y[val], x_test, y_test, o["x"], o["y"])


@hookimpl
def register_datasets(register):
    register(CSVFile)
