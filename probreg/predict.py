"""``predict``: use a trained run on new inputs from a CSV file."""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import numpy as np

from probreg import csvfiles, files
from probreg.errors import UsageError, shown
from probreg.params import is_flat_list, is_integer
from probreg.samplers import Sampler


def param_columns(
    name: str, values: np.ndarray, axes: Sequence[str] | None, y_names: Sequence[str]
) -> list[tuple[str, np.ndarray]]:
    """Flatten one distribution parameter into named columns, as its family declares
    (:meth:`~probreg.distributions.Distribution.param_axes`).

    ``(n,)`` -> ``name``; axes ``("output",)`` -> ``<y>_name``; ``("component",)`` ->
    ``name_k``; ``("component", "output")`` -> ``<y>_name_k`` (components counted from 1);
    undeclared parameters are numbered flat, ``name_1``, ``name_2``...
    """
    if values.ndim == 1:
        return [(name, values)]
    if axes is None or len(axes) != values.ndim - 1:
        flat = values.reshape(len(values), -1)
        return [(f"{name}_{i + 1}", flat[:, i]) for i in range(flat.shape[1])]
    columns = []
    for index in np.ndindex(*values.shape[1:]):
        label = dict(zip(axes, index, strict=True))
        text = name if "output" not in label else f"{y_names[label['output']]}_{name}"
        if "component" in label:
            text += f"_{label['component'] + 1}"
        columns.append((text, values[(slice(None), *index)]))
    return columns


def level_names(quantiles: Sequence[float]) -> list[str]:
    """The column-name parts of quantile levels (:func:`level_text`, e.g. ``0.05``), or a
    one-line error for a level outside (0, 1) or one given twice."""
    if not is_flat_list(quantiles):
        raise UsageError(
            f"quantiles must be a list of levels, e.g. [0.05, 0.95], not {shown(quantiles)}"
        )
    levels = list(quantiles)
    for q in levels:
        if not is_level(q):
            raise UsageError(f"quantile levels must lie strictly between 0 and 1, not {shown(q)}")
    named = [level_text(q) for q in levels]
    for i, name in enumerate(named):
        if name in named[:i]:
            raise UsageError(
                f"quantile level {name} is given twice; each level names one column <y>_q{name}"
            )
    return named


def level_text(q: float) -> str:
    """A level as a column name, to 15 significant digits in its own precision: ``0.05``,
    ``1e-05``, ``0.9999999`` (not ``1``), ``0.3`` for ``0.1 + 0.2`` and ``0.1`` for a float32
    0.1."""
    narrow = isinstance(q, np.floating) and not isinstance(q, float)  # float32, not float64
    return str(q) if narrow else f"{float(q):.15g}"


#: The most drawn values one ``predict`` table holds (about 2 GB of CSV text).
MAX_DRAWN_VALUES = 100_000_000


def is_level(q: object) -> bool:
    """Whether ``q`` is a real number strictly between 0 and 1 (not a bool)."""
    return isinstance(q, numbers.Real) and not isinstance(q, bool) and 0.0 < q < 1.0


def predict(
    run_dir: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    samples: int = 0,
    quantiles: Sequence[float] = (),
    mean: bool = False,
    params: bool = False,
    sampler: str | Sampler | None = None,
    seed: int = 0,
    force: bool = False,
    intervals: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """Predict for every row of ``input_path`` and write a CSV to ``output_path`` (``-``: stdout).
    ``input_path`` may be ``-`` (standard input), a FIFO or a device: it is read once.

    The output repeats the input columns the model uses, then, in this order: the mean
    (``<y>_mean``), quantiles (``<y>_q<level>``), draws (``<y>_sample_<i>``) and the
    distribution's parameters. With no option chosen, the mean is written. A FIFO, device or
    ``-`` is written in place; a regular file is replaced atomically, and only with ``force``.

    A run trained with ``--recalibrate`` predicts through its saved PIT map (``--params``
    still gives the model's own parameters). ``intervals`` (``conformal:level=0.9`` or
    ``conformal:level=0.9,kind=region``) adds conformal sets after the quantiles, calibrated
    on the run's held-out rows (:func:`probreg.postfit.interval_columns` gives the layout).
    """
    from probreg import calibration, conformal, postfit
    from probreg.api import check_seed
    from probreg.runs import load_run

    if not is_integer(samples) or samples < 0:
        raise UsageError(f"--samples must be an integer of 0 or more, not {shown(samples)}")
    check_seed(seed)
    names = level_names(quantiles)
    quantiles = [float(q) for q in quantiles]
    if intervals is not None:
        conformal.parse(intervals)  # a bad spec is an error before any work
    if not (samples or quantiles or mean or params or intervals):
        mean = True
    output = files.check_output(output_path, force)
    run = load_run(run_dir, sampler=sampler)
    x = csvfiles.read_columns(input_path, run.x_names, streams=True)
    drawn = len(x) * samples * len(run.y_names)
    if drawn > MAX_DRAWN_VALUES:
        raise UsageError(
            f"--samples {samples} for {len(x)} input rows makes {drawn:.3g} values, more than "
            f"the {MAX_DRAWN_VALUES:.0g} one table may hold; ask for fewer samples or split the "
            "input"
        )
    outputs = run.predictor.outputs(x)
    bad = np.flatnonzero(~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1))
    if bad.size:
        raise UsageError(
            f"the model gives NaN or infinite outputs for input row {bad[0] + 1} of "
            f"'{csvfiles.source_name(input_path)}'; its values lie too far outside the training "
            "data"
        )
    model_distribution = run.predictor.distribution_of(outputs)
    distribution = calibration.recalibrate(model_distribution, postfit.load_map(run.path))
    y_names = run.y_names
    columns: list[tuple[str, np.ndarray]] = [(name, x[:, j]) for j, name in enumerate(run.x_names)]
    if mean:
        columns += [(f"{y}_mean", distribution.mean()[:, j]) for j, y in enumerate(y_names)]
    for q, name in zip(quantiles, names, strict=True):
        values = distribution.quantile(q)
        columns += [(f"{y}_q{name}", values[:, j]) for j, y in enumerate(y_names)]
    if intervals:
        columns += postfit.interval_columns(run, model_distribution, intervals, y_names)
    if samples:
        draws = run.sampler.sample(distribution, np.random.default_rng(seed), samples)
        columns += [
            (f"{y}_sample_{i + 1}", draws[i, :, j])
            for i in range(samples)
            for j, y in enumerate(y_names)
        ]
    if params:  # the model's own, also where a PIT map recalibrates the rest
        axes = model_distribution.param_axes()
        from_mean = {f"{y}_mean" for y in y_names} if mean else set()
        recalibrated = distribution is not model_distribution
        for name, values in model_distribution.params().items():
            for column, data in param_columns(name, np.asarray(values), axes.get(name), y_names):
                if column in from_mean:  # the mean column holds these numbers: written once,
                    if not recalibrated:  # unless it holds the recalibrated mean instead
                        continue
                    column = f"{column}_model"
                columns.append((column, data))
    header = [name for name, _ in columns]
    repeated = next((name for name in header if header.count(name) > 1), None)
    if repeated is not None:
        which = "the run's input column of that name and a predicted one"
        if repeated not in run.x_names:
            which = "two predicted columns"
        raise UsageError(
            f"the output would have two columns named '{repeated}' ({which}); leave out the "
            "option that adds one of them"
        )
    table = np.stack([values for _, values in columns], axis=1)
    files.write_output(output, csvfiles.format_table(header, table))
    return header, table
