"""``predict``: use a trained run on new inputs from a CSV file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probreg import csvfiles, files
from probreg.errors import UsageError
from probreg.samplers import Sampler


def _param_columns(
    name: str, values: np.ndarray, y_names: Sequence[str]
) -> list[tuple[str, np.ndarray]]:
    """Flatten one distribution parameter into named columns.

    ``(n,)`` -> ``name``; ``(n, K)`` -> ``name_k``; ``(n, d)`` with ``d`` outputs ->
    ``<y>_name``; ``(n, K, d)`` -> ``<y>_name_k`` (components counted from 1).
    """
    d = len(y_names)
    if values.ndim == 1:
        return [(name, values)]
    if values.ndim == 2 and values.shape[1] == d and name in ("mean", "variance", "scale"):
        return [(f"{y}_{name}", values[:, j]) for j, y in enumerate(y_names)]
    if values.ndim == 2:
        return [(f"{name}_{k + 1}", values[:, k]) for k in range(values.shape[1])]
    if values.ndim == 3 and values.shape[2] == d:
        return [
            (f"{y}_{name}_{k + 1}", values[:, k, j])
            for k in range(values.shape[1])
            for j, y in enumerate(y_names)
        ]
    flat = values.reshape(len(values), -1)
    return [(f"{name}_{i + 1}", flat[:, i]) for i in range(flat.shape[1])]


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
) -> tuple[list[str], np.ndarray]:
    """Predict for every row of ``input_path`` and write a CSV to ``output_path`` (``-``: stdout).

    The output repeats the input columns the model uses, then, in this order: the mean
    (``<y>_mean``), quantiles (``<y>_q<level>``), draws (``<y>_sample_<i>``) and the
    distribution's parameters. With no option chosen, the mean is written.
    """
    from probreg.runs import load_run

    if samples < 0:
        raise UsageError(f"--samples must be 0 or more, not {samples}")
    for q in quantiles:
        if not 0.0 < q < 1.0:
            raise UsageError(f"quantile levels must lie strictly between 0 and 1, not {q}")
    if not (samples or quantiles or mean or params):
        mean = True
    if str(output_path) != "-":
        if Path(output_path).exists() and not force:
            raise UsageError(
                f"output file '{output_path}' already exists; use --force to replace it"
            )
        files.check_writable_parent(output_path)
    run = load_run(run_dir, sampler=sampler)
    x = csvfiles.read_columns(input_path, run.x_names)
    distribution = run.distribution(x)
    y_names = run.y_names
    columns: list[tuple[str, np.ndarray]] = [(name, x[:, j]) for j, name in enumerate(run.x_names)]
    if mean:
        columns += [(f"{y}_mean", distribution.mean()[:, j]) for j, y in enumerate(y_names)]
    for q in quantiles:
        values = distribution.quantile(q)
        columns += [(f"{y}_q{q:g}", values[:, j]) for j, y in enumerate(y_names)]
    if samples:
        draws = run.sampler.sample(distribution, np.random.default_rng(seed), samples)
        columns += [
            (f"{y}_sample_{i + 1}", draws[i, :, j])
            for i in range(samples)
            for j, y in enumerate(y_names)
        ]
    if params:
        for name, values in distribution.params().items():
            columns += _param_columns(name, np.asarray(values), y_names)
    header = [name for name, _ in columns]
    table = np.stack([values for _, values in columns], axis=1)
    csvfiles.write_table(output_path, header, table)
    return header, table
