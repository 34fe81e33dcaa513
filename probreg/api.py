"""The Python API behind the CLI: ``run`` trains, evaluates and draws one head on one dataset.

Flow: Dataset -> Head (Keras model + loss) -> predictive Distribution -> Sampler / metrics ->
plots and files. Every step is usable from a notebook; the CLI only parses options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import inspect
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import __version__, files, plugins, rundir
from probreg.datasets import Data, Dataset, test_log_density
from probreg.distributed import Layout
from probreg.distributions import Distribution
from probreg.errors import (
    ProbregError,
    TrainingError,
    UsageError,
    out_of_memory,
    shorten,
    shown,
)
from probreg.heads import Head
from probreg.params import is_integer
from probreg.runs import Predictor
from probreg.samplers import Sampler

if TYPE_CHECKING:  # pragma: no cover - training imports Keras
    from probreg.training import FitResult

Echo = Callable[[str], None]

#: From this many training rows on, batches are gathered from the data as they are needed
#: instead of copying the standardised data into the input pipeline.
STREAM_ROWS = 200_000


#: Seeds go to numpy and Keras, which take 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


def to_stderr(message: str) -> None:
    """The default :data:`Echo`: progress lines on standard error."""
    print(message, file=sys.stderr, flush=True)


def silent(message: str) -> None:
    """An :data:`Echo` that says nothing (``quiet``)."""


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
    recalibrated: RunResult | None = None  # the same model through its PIT map (--recalibrate)

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
    trunk: Any = None,
    epoch_callback: Callable[[int, dict], None] | None = None,
    monitor: str = "nll",
):
    """Standardise, build, fit and calibrate one head; return ``(predictor, fit_result)``.

    From :data:`STREAM_ROWS` training rows on, batches are streamed from the data
    (:class:`probreg.training.BatchStream`) unless ``stream`` says otherwise. With a parallel
    ``layout`` (:mod:`probreg.distributed`) the model trains data-parallel and is then copied
    into a plain local model, which is what gets evaluated and saved. ``epoch_callback`` goes
    to :func:`probreg.training.fit` (called with ``(epoch, logs)`` after every epoch).
    ``monitor`` is the validation score that picks the best epoch (:mod:`probreg.postfit`).
    """
    from probreg import distributed, training
    from probreg.runs import fit_scalings

    layout = layout or distributed.SINGLE
    # A custom trunk (Keras layer or model, or a function building one) goes to the head.
    build_extra = {} if trunk is None else {"trunk": trunk}
    check_trunk(head, trunk)
    with training.seeded(seed):
        x_scaling, y_scaling = fit_scalings(data)
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
        selection = {}
        if monitor != "nll":  # the default stays the validation loss, untouched
            from probreg import postfit

            selection["monitor"] = postfit.monitor_callback(
                monitor, head, x_val[val_rows], data.y_val[val_rows], y_scaling
            )
        with distributed.strategy_scope(layout):
            model = head.build(data.input_dim, data.output_dim, **build_extra)
            head.before_fit(model, y_scaling)
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
                epoch_callback=epoch_callback,
                **selection,
            )
            weights = distributed.local_weights(model) if layout.parallel else None
        if weights is not None:  # a plain local copy of the trained model
            model = head.build(data.input_dim, data.output_dim, **build_extra)
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
    recalibrate: bool = False,
    conformal: float | None = None,
    monitor: str = "nll",
    trunk: Any = None,
) -> RunResult:
    """Train ``head`` on ``dataset``, evaluate it on the held-out test part and draw the pictures.

    Specs are strings such as ``"mdn:components=5"``; plugin instances work too. ``epochs``
    overrides the head's maximum number of epochs. With ``write=False`` nothing is written to
    disk (handy in notebooks). A Ctrl-C during training keeps the best weights so far and
    finishes the run with ``status == "interrupted"``. ``layout`` trains on several devices or
    processes (:mod:`probreg.distributed`); only the main process writes. ``recalibrate``,
    ``conformal`` (share of training rows held out) and ``monitor`` (the validation score that
    picks the best epoch) are described in :mod:`probreg.postfit`. ``trunk`` (a Keras layer
    or model, or a function returning one) replaces a family head's dense trunk.
    """
    from probreg import postfit
    from probreg.conformal import held_out

    say = echo or (silent if quiet else to_stderr)
    seed = check_seed(seed)
    calibrating = postfit.Options(recalibrate, conformal, monitor=monitor)
    postfit.check_layout(calibrating, layout)
    dataset_, head_, sampler_ = resolve(dataset, head, sampler, epochs)
    check_trunk(head_, trunk)
    if layout is not None and not layout.is_main:
        write, say = False, silent
    given = files.given_output(output)
    target = given or default_run_dir(dataset_.spec, head_.spec)
    if write:
        rundir.check_target(Path(target), force, kind="run")  # refuse early
    say(f"Loading dataset {dataset_.spec} (seed {seed})")
    data = dataset_.load(seed)
    check_plan(data, head_, say, sampler_)  # every input error comes before the folder
    postfit.check(calibrating, data)
    # The run is built in a staging folder beside the output and swapped in when it is done.
    claim = (
        rundir.claim(target, force=force, kind="run", unique=not given)
        if write
        else contextlib.nullcontext()
    )
    with claim as claimed:
        held = 0 if conformal is None else held_out(conformal, len(data.x_train))
        aside = f", {held} held out for conformal calibration" if held else ""
        say(
            f"Training {head_.spec} on {len(data.x_train) - held} rows "
            f"({len(data.x_val)} validation, {len(data.x_test)} test{aside})"
        )
        staging = claimed.staging if claimed is not None else None
        try:
            result = fit_and_score(
                dataset_,
                head_,
                sampler_,
                data,
                seed,
                staging,
                verbose=not quiet,
                stream=stream,
                layout=layout,
                calibrating=calibrating,
                trunk=trunk,
            )
        except TrainingError as error:
            if claimed is None:
                raise
            if claimed.replaces:  # never trade a working run for a record of a failure
                raise TrainingError(f"{error}; '{target}' was left as it was") from None
            claimed.commit("diverged")  # a folder that says what happened
            raise
        warning = below_bayes_limit(result)
        if warning:
            say(warning)
        if claimed is not None:
            claimed.commit()
            target = claimed.shown  # a generated name may have moved on to -2, -3...
            result.run_dir = target
            say(f"Wrote {target}")
    return result


def below_bayes_limit(result: RunResult) -> str | None:
    """A warning when the test NLL is clearly below the dataset's exact Bayes limit.

    No model beats the exact density in expectation, so a gap below zero by more than 0.01
    nats and four standard errors of the per-row differences means the dataset's
    ``log_density`` is wrong. A log-mass and a log-density are not compared."""
    gap, data = result.metrics.get("bayes_gap"), result.data
    if gap is None or not gap < -0.01:  # NaN too
        return None
    if bool(getattr(data.log_density, "discrete", False)) != bool(
        getattr(result.distribution, "discrete", False)
    ):
        return None
    differences = test_log_density(data) - result.distribution.log_prob(data.y_test)
    error = float(np.std(differences) / np.sqrt(len(differences)))
    if gap >= -4 * error:
        return None
    return (
        f"Warning: the test NLL is {-gap:.4f} nats below the dataset's exact Bayes limit "
        f"({-gap / max(error, 1e-12):.0f} standard errors); no model can beat the exact "
        "density, so the dataset's log_density is probably wrong"
    )


def takes_trunk(head: Head) -> bool:
    """Whether ``head.build`` accepts ``trunk=`` (family heads do; whole-contract heads may not)."""
    parameters = inspect.signature(head.build).parameters.values()
    return any(p.name == "trunk" or p.kind is p.VAR_KEYWORD for p in parameters)


def check_trunk(head: Head, trunk: Any) -> None:
    """A one-line error when a trunk is given to a head that takes none."""
    if trunk is not None and not takes_trunk(head):
        raise UsageError(
            f"head '{head.name}' builds its whole model itself and takes no trunk; give the "
            "trunk to a family head such as mdn"
        )


def check_seed(seed: int, what: str = "seed") -> int:
    """``seed`` as a Python int, or a one-line error unless it is an integer from 0 to
    :data:`MAX_SEED` (numpy integers are accepted; they do not serialise to JSON)."""
    if not is_integer(seed):
        raise UsageError(f"{what} {shown(seed, 40)} is not an integer from 0 to {MAX_SEED}")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{what} {seed} is out of range: use 0 to {MAX_SEED}")
    return int(seed)


def check_plan(data: Data, head: Head, say: Echo = silent, sampler: Sampler | None = None) -> None:
    """Everything that can be checked before training: the data standardises (values not too
    large, target not constant), the training numbers fit in float32, the head can build
    its model and ``sampler`` (if given) can draw from its distributions. Says which input
    columns are constant."""
    from probreg.runs import fit_scalings

    x_scaling, y_scaling = fit_scalings(data)
    for part in ("val", "test"):
        x_scaling.transform(getattr(data, f"x_{part}"))
        y_scaling.transform(getattr(data, f"y_{part}"))
    for name in x_scaling.constant:
        note = f"input column '{shorten(name, 60)}' is constant in the training rows"
        say(f"Note: {note}; the model sees it as 0")
    check_integer_targets(data, head, say)
    test_log_density(data)  # a broken exact density fails now, not after training
    config = head.training()
    numbers = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    for name, value in {**head.options, **numbers}.items():  # the family's too (scale_floor)
        with np.errstate(over="ignore"):
            fits = not isinstance(value, float) or np.isfinite(np.float32(value))
        if not fits:
            raise UsageError(
                f"invalid head '{head.name}' parameter '{name}': {value:g} does not fit "
                f"in float32 (largest {float(np.finfo(np.float32).max):.3g})"
            )
    try:
        model = head.build(data.input_dim, data.output_dim)
    except ProbregError:
        raise
    except Exception as error:
        shape = f"{data.input_dim} inputs and {data.output_dim} outputs"
        if out_of_memory(error):
            raise UsageError(
                f"head '{shorten(head.spec, 80)}' ran out of memory building its model for "
                f"{shape}; use fewer or smaller hidden layers"
            ) from None
        raise UsageError(
            f"head '{shorten(head.spec, 80)}' cannot build its model for {shape}: {shorten(error)}"
        ) from None
    if sampler is not None:
        check_sampler_serves(sampler, Predictor(model, head, x_scaling, y_scaling), data)


def check_sampler_serves(sampler: Sampler, predictor: Predictor, data: Data) -> None:
    """A sampler that refuses the head's distributions (a temperature for a family without
    components) says so now, from the untrained ``predictor``'s (in data units, as a run
    samples them), rather than after training. Anything else it raises is left for the run."""
    from keras import ops

    try:
        rows = predictor.x_scaling.transform(np.asarray(data.x_train[:2]))
        outputs = ops.convert_to_numpy(predictor.model(rows))  # eager: no tracing to pay for
        sampler.sample(predictor.distribution_of(outputs), np.random.default_rng(0), 1)
    except UsageError as error:
        raise UsageError(
            f"sampler '{shorten(sampler.spec, 60)}' cannot draw from head "
            f"'{shorten(predictor.head.spec, 60)}': {error}"
        ) from None
    except Exception:  # an untrained model's outputs need not make a usable distribution
        return


def check_integer_targets(data: Data, head: Head, say: Echo = silent) -> None:
    """A discrete family needs integer targets (one-line error otherwise); a continuous family
    on targets that are all integers gets a one-line hint about the discrete one."""
    family = getattr(head, "family", None)
    if family is None:
        return
    y = np.asarray(data.y_train)
    integer = np.all(y == np.round(y), axis=0)
    if family.discrete and not integer.all():
        name = data.y_names[int(np.argmin(integer))]
        raise UsageError(
            f"family '{family.name}' models integer targets, but target column "
            f"'{shorten(name, 60)}' holds non-integer values"
        )
    if not family.discrete and integer.all():
        say(
            "Hint: every target value is an integer; mdn:family=discrete models them with a "
            "probability mass (its NLL is a log-mass, not a log-density)"
        )


def fit_and_score(
    dataset: Dataset,
    head: Head,
    sampler: Sampler,
    data: Data,
    seed: int,
    run_dir: Path | None,
    *,
    verbose: bool,
    stream: bool | None = None,
    layout: Layout | None = None,
    calibrating: Any = None,
    trunk: Any = None,
) -> RunResult:
    """Train, score and (into ``run_dir``, if given) save one head: the path ``run`` and
    ``compare`` share. A diverged head leaves a ``metrics.json`` record in ``run_dir`` and
    raises :class:`TrainingError`; a Ctrl-C before the first epoch ends raises
    ``KeyboardInterrupt`` (there is no model to keep)."""
    from probreg import postfit

    try:
        # ``calibrating`` (postfit.Options): conformal rows are held out of training here.
        data, cal_rows = postfit.prepare(calibrating, data, seed)
        monitor = calibrating.monitor if calibrating is not None else "nll"
        predictor, fitted = train_head(
            head,
            data,
            seed,
            verbose=verbose,
            stream=stream,
            layout=layout,
            monitor=monitor,
            trunk=trunk,
        )
        if fitted.status == "interrupted" and fitted.epochs == 0:
            raise KeyboardInterrupt
        return evaluate_and_save(
            data,
            predictor,
            fitted,
            dataset,
            head,
            sampler,
            seed,
            run_dir,
            calibrating=calibrating,
            cal_rows=cal_rows,
        )
    except TrainingError as error:
        if run_dir is not None:
            rundir.write_metrics(
                run_dir,
                {
                    "dataset": dataset.spec,
                    "head": head.spec,
                    "seed": seed,
                    "status": "diverged",
                    "error": str(error),
                    "test": None,
                },
            )
        raise


def evaluate_and_save(
    data: Data,
    predictor: Predictor,
    fitted: FitResult,
    dataset: Dataset,
    head: Head,
    sampler: Sampler,
    seed: int,
    run_dir: Path | None,
    *,
    calibrating: Any = None,
    cal_rows: Any = None,
) -> RunResult:
    """Score a trained head on the test part, draw from it, and write its run folder if asked."""
    from probreg import postfit
    from probreg.metrics import evaluate

    distribution = predictor.distribution(data.x_test)
    samples = sampler.sample(distribution, np.random.default_rng(seed), 1)[0]
    scores = evaluate(distribution, data.y_test)
    exact = test_log_density(data)
    bayes = None if exact is None else float(-np.mean(exact))
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
        # A discrete family's NLL is a log-mass: not comparable with a log-density.
        "likelihood": "mass" if getattr(distribution, "discrete", False) else "density",
        "bayes_nll": bayes,
        "bayes_gap": None if bayes is None else scores["nll"] - bayes,
        "versions": versions(),
    }
    selected = postfit.selected_scores(predictor, fitted, data)  # --monitor nll,rmse
    if selected:
        metrics["selected"] = selected
    result = RunResult(metrics, data, predictor, distribution, samples, fitted.history, run_dir)
    postfit.after_fit(calibrating, result, cal_rows, run_dir)  # reliability, recalibration...
    if run_dir is not None:
        save_run(run_dir, result, dataset, head, sampler, seed)
    return result


def save_run(
    run_dir: Path, result: RunResult, dataset: Dataset, head: Head, sampler: Sampler, seed: int
) -> None:
    """Write the model, config, history and pictures, then ``metrics.json`` last."""
    from probreg import plots
    from probreg.runs import family_record, plugin_record

    predictor = result.predictor
    data = result.data
    config = {
        "dataset": plugin_record(dataset),
        "head": plugin_record(head),
        "sampler": plugin_record(sampler),
        **family_record(head),
        "seed": seed,
        "x_names": list(data.x_names),
        "y_names": list(data.y_names),
        "scaling": {"x": predictor.x_scaling.to_dict(), "y": predictor.y_scaling.to_dict()},
        "versions": result.metrics["versions"],
    }
    rundir.write_run_files(run_dir, config, predictor.model, result.history)
    views = [
        plots.HeadView(
            label, run.distribution, run.samples, run.history, run.predictor.distribution
        )
        for label, run in ((head.spec, result), (f"{head.spec} +recalibrated", result.recalibrated))
        if run is not None
    ]
    result.metrics["pictures"] = plots.draw_all(
        run_dir, data.x_test, data.y_test, views, data.y_names, data.x_names
    )
    rundir.write_metrics(run_dir, result.metrics)
