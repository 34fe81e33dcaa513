"""Dataset plugins and the :class:`Data` they produce: training, validation and test parts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probreg.errors import PluginError, UsageError
from probreg.params import Param
from probreg.plugin import Plugin

#: ``log_density(x, y) -> (n,)``: the exact ``log p(y | x)`` in the data's own units.
LogDensity = Callable[[np.ndarray, np.ndarray], np.ndarray]

MIN_TRAIN_ROWS = 3


class DataError(PluginError, ValueError):
    """A dataset plugin built inconsistent :class:`Data` (a one-line error, and a
    ``ValueError`` as before)."""


@dataclasses.dataclass
class Data:
    """Inputs ``x`` (rows, p) and targets ``y`` (rows, d) for fitting, early stopping and testing.

    ``log_density`` is set by datasets that know their exact conditional density, so runs can
    report the Bayes-limit NLL (the best any model can reach on the test part).

    Values are kept as float64 (float32 memory maps stay as they are): a timestamp or a target
    of 1e9 plus small changes keeps its digits until it is standardised.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_names: tuple[str, ...]
    y_names: tuple[str, ...]
    log_density: LogDensity | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        for part in ("train", "val", "test"):
            for side in ("x", "y"):
                attr = f"{side}_{part}"
                value = getattr(self, attr)
                if not (isinstance(value, np.memmap) and value.dtype == np.float32):
                    value = np.asarray(value, dtype=np.float64)
                if value.ndim == 1:
                    value = value[:, None]
                setattr(self, attr, value)
            if len(getattr(self, f"x_{part}")) != len(getattr(self, f"y_{part}")):
                raise DataError(
                    f"dataset gave x_{part} and y_{part} with different numbers of rows "
                    f"({len(getattr(self, f'x_{part}'))} and {len(getattr(self, f'y_{part}'))})"
                )
        if self.x_train.shape[1] != len(self.x_names) or self.y_train.shape[1] != len(self.y_names):
            raise DataError(
                f"dataset gave {len(self.x_names)} x_names for {self.x_train.shape[1]} input "
                f"columns and {len(self.y_names)} y_names for {self.y_train.shape[1]} target "
                "columns; they must match"
            )
        if len(self.x_train) < MIN_TRAIN_ROWS or len(self.x_val) < 1 or len(self.x_test) < 1:
            raise UsageError(
                f"too few rows to split: {len(self.x_train)} training, {len(self.x_val)} "
                f"validation and {len(self.x_test)} test rows; need at least "
                f"{MIN_TRAIN_ROWS}, 1 and 1"
            )

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def output_dim(self) -> int:
        return self.y_train.shape[1]


class Dataset(Plugin):
    """Base class of dataset plugins: ``load(seed)`` returns a :class:`Data`.

    The same seed must give the same data: draw every random number from a generator seeded
    with it (``np.random.default_rng(seed)``).
    """

    kind = "dataset"

    def load(self, seed: int) -> Data:
        raise NotImplementedError

    def n_splits(self) -> int | None:
        """How many fixed train/test splits the dataset has (``compare --splits``), or
        ``None`` (the default) if it draws its parts from the seed instead."""
        return None

    def with_split(self, split: int) -> Dataset:
        """The same dataset on split ``split``; by default sets the ``split`` option."""
        if self.n_splits() is None:
            raise UsageError(f"dataset '{self.name}' has no splits, so --splits does not apply")
        return type(self)(**{**self.options, "split": split})

    def reference(self) -> list[dict] | None:
        """Published results on the same data for the compare report (rows with ``method``,
        ``nll``, ``nll_se``, ``rmse``, ``rmse_se``), or ``None`` (the default)."""
        return None


def input_rows(x: Any, shape: Sequence[int], dtype: Any = np.float64) -> np.ndarray:
    """``x`` as rows ``(n, *shape)`` of a model's inputs, or a one-line error.

    Each row may come in any shape with the model's number of values (a saved sequence model
    takes its windows ``(n, T, F)`` flat); a 1-D array is ``n`` rows of a one-column input, or
    one row of a wider one; a number is one row of a one-column input. Rows of another size,
    or a NaN or infinite value, are refused rather than reshaped into other rows."""
    shape = tuple(shape)
    width = math.prod(shape)
    try:
        rows = np.asarray(x, np.float64)
    except (TypeError, ValueError):
        raise UsageError("model inputs must be a rectangular array of numbers") from None
    if rows.ndim == 0 or (rows.ndim == 1 and width > 1):
        rows = rows.reshape(1, -1)  # one row
    elif rows.ndim == 1:
        rows = rows[:, None]  # n rows of one value
    if math.prod(rows.shape[1:]) != width:
        raise UsageError(
            f"the model takes rows of {width} input value{'s' if width > 1 else ''} (shape "
            f"{shape}); got an array of shape {np.shape(x)}"
        )
    if not np.isfinite(rows).all():
        row = np.argwhere(~np.isfinite(rows))[0][0]
        raise UsageError(
            f"model input row {row + 1} holds a NaN or infinite value; inputs must be finite"
        )
    rows = rows.reshape(len(rows), *shape).astype(dtype, copy=False)
    if dtype != np.float64 and not np.isfinite(rows).all():
        raise UsageError(f"a model input is too large for {np.dtype(dtype).name}")
    return rows


def exact_log_density(
    log_density: LogDensity, x: np.ndarray, y: np.ndarray, *, at_data: bool = True
) -> np.ndarray:
    """``log_density(x, y)`` for ``m`` rows, checked to be one value per row, shape ``(m,)``,
    and (``at_data``: the rows are drawn data) finite: a dataset plugin that breaks either
    gets a one-line error instead of a silently broadcast or infinite Bayes limit."""
    values = np.asarray(log_density(x, y), dtype=np.float64)
    if values.shape != (len(x),):
        raise PluginError(
            f"the dataset's log_density returned shape {values.shape} for {len(x)} rows; it "
            f"must return one log-density per row, shape ({len(x)},)"
        )
    bad = np.flatnonzero(~np.isfinite(values)) if at_data else ()
    if len(bad):
        raise PluginError(
            f"the dataset's log_density is {values[bad[0]]} at row {bad[0]}, a drawn point: "
            "the exact density must be positive wherever the data fall"
        )
    return values


def test_log_density(data: Data) -> np.ndarray | None:
    """The exact log-density of ``data``'s test rows, checked by :func:`exact_log_density`
    (``None`` without one). Worked out once and kept on ``data``: ``run`` checks it before
    training and scores with it after."""
    if data.log_density is None:
        return None
    if "_test_log_density" not in data.__dict__:
        data.__dict__["_test_log_density"] = exact_log_density(
            data.log_density, data.x_test, data.y_test
        )
    return data.__dict__["_test_log_density"]


def split_rows(
    n: int, rng: np.random.Generator, *fractions: float, minimum: int = 1
) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and cut off parts of the given fractions; the rest comes first.

    ``split_rows(100, rng, 0.1, 0.2)`` returns index arrays of 70, 10 and 20 rows. Every part
    gets at least ``minimum`` rows, or a :class:`UsageError` says the data is too small.
    """
    sizes = [max(minimum, round(f * n)) for f in fractions]
    rest = n - sum(sizes)
    if rest < MIN_TRAIN_ROWS:
        raise UsageError(
            f"too few rows to split: {n} rows cannot give {MIN_TRAIN_ROWS}+ training rows and "
            f"held-out parts of {', '.join(map(str, sizes))} rows"
        )
    order = rng.permutation(n)
    cuts = np.cumsum([rest, *sizes])[:-1]
    return np.split(order, cuts)


def split_table(
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    x_names: Sequence[str],
    y_names: Sequence[str],
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> Data:
    """Seeded random training / validation / test parts of one table."""
    train, val, test = split_rows(len(x), np.random.default_rng(seed), val_fraction, test_fraction)
    return Data(
        x[train], y[train], x[val], y[val], x[test], y[test], tuple(x_names), tuple(y_names)
    )


def bundled_path(file_name: str) -> Path:
    """A data file shipped with probreg: ``probreg/_bundled`` in a wheel, ``datasets/`` in a
    source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "_bundled", here.parent / "datasets"):
        if (folder / file_name).is_file():
            return folder / file_name
    raise FileNotFoundError(f"bundled data file '{file_name}' is missing from this installation")


def size_params(n: int, val: int, test: int) -> tuple[Param, ...]:
    """``n``, ``val`` and ``test``: how many points a synthetic dataset draws for each part."""
    return (
        Param("n", "int", n, "training points", minimum=3),
        Param("val", "int", val, "validation points (early stopping)", minimum=1),
        Param("test", "int", test, "test points", minimum=1),
    )


def split_draw(x: np.ndarray, y: np.ndarray, options: dict, **fields) -> Data:
    """Cut one draw into ``options["n"]`` training, ``options["val"]`` validation and the rest
    test rows, in order (the draw is already random); ``fields`` go to :class:`Data`. Draw
    ``n + val + test`` rows (:func:`size_params`): a shorter draw is refused, since it would
    give fewer test rows than asked for."""
    a, b = options["n"], options["n"] + options["val"]
    if "test" in options and len(x) < b + options["test"]:
        raise ValueError(
            f"split_draw got {len(x)} rows for n={a}, val={options['val']} and "
            f"test={options['test']}: draw n + val + test = {b + options['test']} rows"
        )
    return Data(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], **fields)


class BundledTable(Dataset):
    """A table shipped in ``datasets/``: one input and one target column, seeded splits.

    Subclasses set ``name``, a docstring, ``file``, ``x_column`` and ``y_column``.
    """

    file: str = ""
    x_column: str = ""
    y_column: str = ""
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
        from probreg import csvfiles

        path = bundled_path(self.file)
        x = csvfiles.read_columns(path, [self.x_column])
        y = csvfiles.read_columns(path, [self.y_column])
        o = self.options
        return split_table(
            x, y, seed, [self.x_column], [self.y_column], o["val_fraction"], o["test_fraction"]
        )
