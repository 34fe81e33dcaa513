"""The Python API behind the CLI: ``run`` trains, evaluates and draws one head on one dataset.

Flow: Dataset -> Head (Keras model + loss) -> predictive Distribution -> Sampler / metrics ->
plots and files. Every step is usable from a notebook; the CLI only parses options.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import __version__, files, plugins
from probreg.datasets import Data, Dataset
from probreg.distributed import Layout
from probreg.distributions import Distribution
from probreg.errors import TrainingError
from probreg.heads import Head
from probreg.runs import Predictor
from probreg.samplers import Sampler

if TYPE_CHECKING:  # pragma: no cover - training imports Keras
    from probreg.training import FitResult

Echo = Callable[[str], None]

#: From this many training rows on, batches are gathered from the data as they are needed
#: instead of copying the standardised data into the input pipeline.
STREAM_ROWS = 200_000


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    pass


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns: the metrics (as written to ``metrics.json``) and live objects."""

    metrics: dict[str, Any]
    data: Data
    predictor: Predictor
    distribution: Distribution  # predictive distribution at the test inputs, data units
    samples: np.ndarray  # one draw per test input from the run's sampler
    history: dict[str, list[float]]
    run_dir: Path | None

    @property
    def model(self):
        return self.predictor.model

    @property
    def status(self) -> str:
        return self.metrics["status"]


def default_run_dir(dataset: str, head: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/<timestamp>-<dataset>-<head>``, made unique with a counter if needed."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = "-".join(part.split(":")[0] for part in (dataset, head))
    path = Path(root) / f"{stamp}-{slug}"
    counter = 1
    while path.exists():
        counter += 1
        path = Path(root) / f"{stamp}-{slug}-{counter}"
    return path


def resolve(dataset: str | Dataset, head: str | Head, sampler: str | Sampler, epochs: int | None):
    """Build the three plugins from specs, checking everything before any heavy work starts."""
    overrides = {} if epochs is None else {"epochs": epochs}
    return (
        plugins.create("dataset", dataset),
        plugins.create("head", head, **overrides),
        plugins.create("sampler", sampler),
    )


def versions() -> dict[str, str]:
    """Versions that matter for reproducing a result."""
    import keras

    return {
        "probreg": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_head(
    head: Head,
    data: Data,
    seed: int,
    *,
    verbose: bool,
    stream: bool | None = None,
    layout: Layout | None = None,
):
    """Standardise, build, fit and calibrate one head; return ``(predictor, fit_result)``.

    From :data:`STREAM_ROWS` training rows on, batches are streamed from the data
    (:class:`probreg.training.BatchStream`) unless ``stream`` says otherwise. With a parallel
    ``layout`` (:mod:`probreg.distributed`) the model trains data-parallel and is then copied
    into a plain local model, which is what gets evaluated and saved.
    """
    import keras

    from probreg import distributed, training
    from probreg.runs import Standardizer

    layout = layout or distributed.SINGLE
    keras.utils.set_random_seed(seed)
    x_scaling, y_scaling = Standardizer.fit(data.x_train), Standardizer.fit(data.y_train)
    x_val, y_val = x_scaling.transform(data.x_val), y_scaling.transform(data.y_val)
    config = head.training()
    rows, val_rows = np.arange(len(data.x_train)), np.arange(len(x_val))
    if layout.parallel:
        config, rows, val_rows = distributed.plan(config, rows, val_rows, layout)
    if stream is None:
        stream = len(rows) >= STREAM_ROWS
    if stream:
        # Standardise batch by batch: no standardised copy of the training data is made.
        x_train, y_train = x_scaling.lazy(data.x_train), y_scaling.lazy(data.y_train)
        if len(rows) < len(data.x_train):
            x_train, y_train = _RowSubset(x_train, rows), _RowSubset(y_train, rows)
    else:
        x_train = x_scaling.transform(data.x_train[rows])
        y_train = y_scaling.transform(data.y_train[rows])
    with distributed.strategy_scope(layout):
        model = head.build(data.input_dim, data.output_dim)
        result = training.fit(
            model,
            head.loss(data.output_dim),
            config,
            x_train,
            y_train,
            x_val[val_rows],
            y_val[val_rows],
            seed=seed,
            verbose=verbose and layout.is_main,
            stream=stream,
            watchdog=(
                distributed.PeerWatchdog(layout.peer_timeout, layout.process_index)
                if layout.distributed
                else None
            ),
        )
        weights = distributed.local_weights(model) if layout.parallel else None
    if weights is not None:  # a plain local copy of the trained model
        model = head.build(data.input_dim, data.output_dim)
        model.set_weights(weights)
    head.after_fit(model, x_val, y_val)
    result.streamed = stream
    return Predictor(model, head, x_scaling, y_scaling), result


class _RowSubset:
    """Some rows of an indexable array, indexed like an array of their own."""

    def __init__(self, source, rows: np.ndarray) -> None:
        self.source, self.rows = source, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.source[self.rows[index]]


def run(
    dataset: str | Dataset = "spiral",
    head: str | Head = "mdn",
    sampler: str | Sampler = "ancestral",
    *,
    seed: int = 0,
    epochs: int | None = None,
    output: str | os.PathLike | None = None,
    force: bool = False,
    quiet: bool = False,
    write: bool = True,
    stream: bool | None = None,
    layout: Layout | None = None,
    echo: Echo | None = None,
) -> RunResult:
    """Train ``head`` on ``dataset``, evaluate it on the held-out test part and draw the pictures.

    Specs are strings such as ``"mdn:components=5"``; plugin instances work too. ``epochs``
    overrides the head's maximum number of epochs. With ``write=False`` nothing is written to
    disk (handy in notebooks). A Ctrl-C during training keeps the best weights so far and
    finishes the run with ``status == "interrupted"``. ``layout`` trains on several devices or
    processes (:mod:`probreg.distributed`); only the main process writes.
    """
    say = echo or (_silent if quiet else _stderr)
    dataset_, head_, sampler_ = resolve(dataset, head, sampler, epochs)
    if layout is not None and not layout.is_main:
        write, say = False, _silent
    say(f"Loading dataset {dataset_.spec} (seed {seed})")
    data = dataset_.load(seed)  # before touching the output: bad data leaves no empty folder
    run_dir = None
    if write:
        run_dir = files.prepare_output_dir(
            output or default_run_dir(dataset_.spec, head_.spec), force
        )
    say(
        f"Training {head_.spec} on {len(data.x_train)} rows "
        f"({len(data.x_val)} validation, {len(data.x_test)} test)"
    )
    try:
        predictor, fitted = train_head(
            head_, data, seed, verbose=not quiet, stream=stream, layout=layout
        )
        result = evaluate_and_save(
            data, predictor, fitted, dataset_, head_, sampler_, seed, run_dir
        )
    except TrainingError as error:
        if run_dir is not None:  # leave a folder that says what happened, not an empty one
            files.write_json(
                run_dir / "metrics.json",
                {
                    "dataset": dataset_.spec,
                    "head": head_.spec,
                    "seed": seed,
                    "status": "diverged",
                    "error": str(error),
                    "test": None,
                },
            )
        raise
    if run_dir is not None:
        say(f"Wrote {run_dir}")
    return result


def evaluate_and_save(
    data: Data,
    predictor: Predictor,
    fitted: FitResult,
    dataset: Dataset,
    head: Head,
    sampler: Sampler,
    seed: int,
    run_dir: Path | None,
) -> RunResult:
    """Score a trained head on the test part, draw from it, and write its run folder if asked."""
    from probreg.metrics import bayes_nll, evaluate

    distribution = predictor.distribution(data.x_test)
    samples = sampler.sample(distribution, np.random.default_rng(seed), 1)[0]
    scores = evaluate(distribution, data.y_test)
    bayes = bayes_nll(data.log_density, data.x_test, data.y_test)
    metrics = {
        "dataset": dataset.spec,
        "head": head.spec,
        "sampler": sampler.spec,
        "seed": seed,
        "status": fitted.status,
        "epochs": fitted.epochs,
        "best_epoch": fitted.best_epoch,
        "train_seconds": round(fitted.seconds, 3),
        "parameters": int(predictor.model.count_params()),
        "streamed": fitted.streamed,
        "rows": {"train": len(data.x_train), "val": len(data.x_val), "test": len(data.x_test)},
        "test": scores,
        "bayes_nll": bayes,
        "bayes_gap": None if bayes is None else scores["nll"] - bayes,
        "versions": versions(),
    }
    result = RunResult(metrics, data, predictor, distribution, samples, fitted.history, run_dir)
    if run_dir is not None:
        save_run(run_dir, result, dataset, head, sampler, seed)
    return result


def save_run(
    run_dir: Path, result: RunResult, dataset: Dataset, head: Head, sampler: Sampler, seed: int
) -> None:
    """Write the model, config, history and pictures, then ``metrics.json`` last."""
    from probreg import plots
    from probreg.runs import CONFIG, HISTORY, METRICS, MODEL, plugin_record

    predictor = result.predictor
    data = result.data
    config = {
        "dataset": plugin_record(dataset),
        "head": plugin_record(head),
        "sampler": plugin_record(sampler),
        "seed": seed,
        "x_names": list(data.x_names),
        "y_names": list(data.y_names),
        "scaling": {"x": predictor.x_scaling.to_dict(), "y": predictor.y_scaling.to_dict()},
        "versions": result.metrics["versions"],
    }
    files.write_json(run_dir / CONFIG, config)
    files.write_with(run_dir / MODEL, predictor.model.save)
    files.write_json(run_dir / HISTORY, result.history)
    view = plots.HeadView(
        head.spec, result.distribution, result.samples, result.history, predictor.distribution
    )
    result.metrics["pictures"] = plots.draw_all(
        run_dir, data.x_test, data.y_test, [view], data.y_names
    )
    files.write_json(run_dir / METRICS, result.metrics)
