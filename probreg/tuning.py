"""``tune``: hyperparameter search for one head on one dataset, on Optuna.

The search space comes from the head's declared parameters (:class:`probreg.params.Param`):
numeric bounds around the default, choices, log scales for positive floats such as learning
rates and weight decay. ``--space`` narrows or fixes it. Each trial trains the head on the
training rows and scores it on the validation rows (test rows never enter the objective),
averaged over the requested seeds or splits. Trials report their per-epoch validation loss to
Optuna, whose pruner stops unpromising ones early.

The study lives in Optuna storage: by default a SQLite file in the tune folder, so running the
same command again resumes it; ``storage="postgresql://..."`` lets workers on several machines
share it. Workers take trials one at a time under a lock, so the trial count is exact and no
trial is run twice; a worker that dies leaves its trial marked failed (at once when it was one
of ``workers`` started here, else when its heartbeat goes stale).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import files, interrupts, plugins
from probreg.api import Echo, silent, to_stderr
from probreg.errors import ProbregError, TrainingError, UsageError, shorten, shown
from probreg.params import is_integer, parse_spec
from probreg.tune_report import STUDY_FILE, SUMMARY_FILE, chosen, clock, summarize, write_outputs
from probreg.tune_space import Dimension, Space, build_space, default_dimension, parse_space
from probreg.tune_storage import HEARTBEAT, Storage, hide_password, open_storage

# The public names, including those defined before the space, storage and report moved to
# tune_space, tune_storage and tune_report (importing them from here keeps working).
__all__ = [
    "HEARTBEAT",
    "STUDY_FILE",
    "SUMMARY_FILE",
    "Dimension",
    "Space",
    "Storage",
    "TuneConfig",
    "TuneResult",
    "build_space",
    "default_dimension",
    "hide_password",
    "open_storage",
    "open_tune_dir",
    "parse_space",
    "summarize",
    "tune",
    "write_outputs",
]

if TYPE_CHECKING:  # pragma: no cover - optuna is imported when a search starts
    import optuna


#: The longest command a refusal quotes whole (to be copied); a longer one is pointed to.
COMMAND_SHOWN = 400
#: Scores a study can minimise (see :mod:`probreg.metrics`).
OBJECTIVES = ("nll", "crps", "rmse")
#: How often a worker with nothing left to claim checks on trials running elsewhere.
WAIT_SECONDS = 2.0
#: What :meth:`_Search.claim` returns when the worker should score the head's defaults.
BASELINE = object()


# ---------------------------------------------------------------------------------------------
# The tune folder


#: A worker stops searching after this many failed trials in a row (or ``trials``, if more).
FAILURES_IN_A_ROW = 10


def default_study_name(dataset: str, head: str, metric: str) -> str:
    from probreg.comparison import slug

    name = f"{slug(dataset)}-{slug(head)}-{metric}"
    if len(name) > 80:
        name = f"{name[:70]}-{zlib.crc32(name.encode()):08x}"
    return name


def open_tune_dir(path: Path, force: bool, study: str | None = None) -> tuple[Path, bool]:
    """Claim the tune folder; return it and whether it already held a study to resume.

    The folder is made like every probreg output folder (:func:`probreg.rundir.claim`: checked,
    locked, built aside and swapped in), but it then stays open: the study grows inside it and
    the report files are replaced atomically at the end. A tune folder (its marker says
    ``tune``) is resumed, unless its report (``tune.json``) names another study than ``study``
    (``--study``, by default made from the dataset, head and metric), whose report would be
    replaced: that is refused. ``force`` replaces a tune folder with a new one; a run or report
    folder, and any folder probreg did not make, is refused.
    """
    from probreg import rundir

    def check_same_study() -> None:
        if study is None:
            return
        try:
            summary = json.loads((path / SUMMARY_FILE).read_text())
            earlier = summary.get("study")
        except (OSError, ValueError, AttributeError):
            return  # no finished report yet: nothing of another study to lose
        if earlier not in (None, study):
            command = str(summary.get("command") or "")
            again = (
                f" ({command})"
                if command and len(command) <= COMMAND_SHOWN and "\n" not in command
                else f" (in {SUMMARY_FILE}, 'command')"
            )
            raise UsageError(
                f"tune folder '{path}' holds the study '{shorten(earlier)}', not "
                f"'{shorten(study)}'; rerun its command{again} to resume it, or use another "
                f"--output (output=), or --force (force=True) to replace it"
            )

    def is_tune_folder() -> bool:
        if not path.is_dir():
            return False
        marker = rundir.read_marker(path)
        if marker is not None:
            return marker["kind"] == "tune"
        return (path / STUDY_FILE).is_file()  # made before folders had markers

    if is_tune_folder() and not force:
        check_same_study()
        return path, True
    try:
        with rundir.claim(path, force=force, kind="tune"):
            pass  # an empty tune folder; the study and the report are written into it
    except UsageError:
        if is_tune_folder() and not force:  # another process made it meanwhile: join it
            check_same_study()
            return path, True
        raise
    return path, False


# ---------------------------------------------------------------------------------------------
# The search


@dataclasses.dataclass
class TuneConfig:
    """Everything a worker needs; plain data, so it travels to worker processes as JSON."""

    dataset: str
    head: str
    metric: str
    trials: int
    storage: str
    study: str
    space: str | None = None
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    splits: list[int] | None = None
    epochs: int | None = None
    timeout: float | None = None
    pruner: str = "median"
    heartbeat: int = HEARTBEAT
    #: Whether ``storage`` is the tune folder's own SQLite file (``--force`` then replaces it).
    own_storage: bool = False


@dataclasses.dataclass
class TuneResult:
    """What :func:`tune` returns: the best spec and score, the study and the tune folder."""

    best_spec: str | None
    best_value: float | None
    default_value: float | None
    study: Any
    tune_dir: Path | None
    summary: dict[str, Any]
    interrupted: bool = False


class _Reporter:
    """Per-epoch validation loss to Optuna; raises ``TrialPruned`` when the pruner says so."""

    def __init__(self, trial: optuna.Trial, active: bool) -> None:
        self.trial, self.active, self.epochs = trial, active, 0

    def __call__(self, epoch: int, logs: dict) -> None:
        import optuna

        self.epochs = epoch + 1
        value = logs.get("val_loss")
        if not self.active or value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", epoch + 1)
            raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")


class _Search:
    """One worker's view of a study: the problem, the space and the trial loop."""

    def __init__(self, config: TuneConfig, storage: Storage, say: Echo, worker: str) -> None:
        import optuna

        from probreg.comparison import replicates

        self.config, self.storage, self.say, self.worker = config, storage, say, worker
        self.dataset = plugins.create("dataset", config.dataset)
        overrides = {} if config.epochs is None else {"epochs": config.epochs}
        self.head = plugins.create("head", config.head, **overrides)
        self.space = build_space(config.head, config.space, config.epochs)
        self.replicates = replicates(self.dataset, config.seeds, config.splits, spec=config.dataset)
        self._data: dict[int, Any] = {}
        #: Called before each trial is claimed (to notice dead worker processes).
        self.watch: Callable[[], None] | None = None
        #: Why this worker stopped before the budget, if it did (``tune.json``'s ``stopped``).
        self.stopped: str | None = None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        epochs = self.space.fixed.get("epochs", self.head.options.get("epochs"))
        self.study = optuna.create_study(
            storage=storage.optuna,
            study_name=config.study,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(
                n_startup_trials=min(10, max(3, config.trials // 3))
            ),
            pruner=_pruner(config.pruner, epochs if isinstance(epochs, int) else None),
            load_if_exists=True,
        )
        self._check_problem()

    # -- the study's identity --------------------------------------------------------------
    def problem(self) -> dict[str, Any]:
        import keras

        return {
            "backend": keras.backend.backend(),  # trials on another score differently
            "dataset": self.dataset.spec,
            "head": self.head.spec,
            "metric": self.config.metric,
            "replicates": [rep.name for rep in self.replicates],
            "space": self.space.describe(),
            "fixed": {k: _plain(v) for k, v in self.space.fixed.items()},
        }

    def _check_problem(self) -> None:
        mine = self.problem()
        stored = self.study.user_attrs.get("probreg")
        if stored is None:
            self.study.set_user_attr("probreg", mine)
            return
        for key, value in mine.items():
            theirs = stored.get(key)
            if _normal(key, theirs, exact=True) == _normal(key, value, exact=True):
                continue
            if _normal(key, theirs, exact=True) == _normal(key, theirs) == _normal(key, value):
                continue  # stored with six digits, as specs were written before every digit
            if key == "backend" and theirs is None:  # a study from before it was recorded
                continue
            if key == "space" and isinstance(theirs, str):
                old, new = set(theirs.split(",")), set(value.split(","))
                what = f"{','.join(sorted(old - new))}, not {','.join(sorted(new - old))}"
            else:
                what = f"{theirs!r}, not {value!r}"
            afresh = (  # --force replaces the tune folder, not a study in a database
                "or --force (force=True) to start afresh"
                if self.config.own_storage
                else "or delete that study from the storage (optuna delete-study)"
            )
            same = f"KERAS_BACKEND={theirs}" if key == "backend" else "the same options"
            raise UsageError(
                f"study '{self.config.study}' in {self.storage.shown} searches another "
                f"problem: its {key} is {what}; use {same}, another --study (study=), {afresh}"
            )

    # -- one trial -------------------------------------------------------------------------
    def head_for(self, params: Mapping[str, Any]):
        overrides = {} if self.config.epochs is None else {"epochs": self.config.epochs}
        return plugins.create("head", self.config.head, **overrides, **self.space.fixed, **params)

    def default_params(self) -> dict[str, Any] | None:
        """The head's own values of the searched parameters, if they lie inside the space.

        A default of 0 on a log scale (``weight_decay=0``: off) is tried as the smallest value
        searched, which is as good as off (1e-05)."""
        if any(self.head.options[k] != v for k, v in self.space.fixed.items()):
            return None
        values = {}
        for name, dim in self.space.dimensions.items():
            param = next(p for p in self.head.params if p.name == name)
            value = self.head.options[name]
            if dim.kind == "choice":
                value = param.format(value)
            elif dim.log and value == 0:
                value = dim.low
            if not dim.contains(value):
                return None
            values[name] = value
        return values

    def data(self, index: int):
        if index not in self._data:
            rep = self.replicates[index]
            self._data[index] = rep.dataset.load(rep.seed)
        return self._data[index]

    def objective(self, trial: optuna.Trial) -> float:
        params = {name: dim.suggest(trial) for name, dim in self.space.dimensions.items()}
        head = self.head_for(params)
        trial.set_user_attr("spec", head.spec)
        return self.score(head, trial)

    def score(self, head, trial: optuna.Trial | None) -> float:
        """Mean validation score of ``head`` over the replicates; per-epoch losses go to the
        ``trial`` (if any) for pruning."""
        from probreg.api import train_head
        from probreg.metrics import evaluate

        scores, epochs = [], 0
        for index, rep in enumerate(self.replicates):
            data = self.data(index)
            reporter = _Reporter(trial, active=trial is not None and index == 0)
            try:
                predictor, fitted = train_head(
                    head, data, rep.seed, verbose=False, epoch_callback=reporter
                )
            finally:
                epochs += reporter.epochs
                if trial is not None:
                    trial.set_user_attr("epochs", epochs)
            if fitted.status == "interrupted":
                raise KeyboardInterrupt
            # Validation rows only: the test rows never enter the objective.
            scores.append(evaluate(predictor.distribution(data.x_val), data.y_val)[self.metric])
        return float(np.mean(scores))

    @property
    def metric(self) -> str:
        return self.config.metric

    # -- the loop --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        from optuna.trial import TrialState

        counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
        names = {
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed",
            TrialState.RUNNING: "running",
            TrialState.WAITING: "waiting",
        }
        for trial in self.study.get_trials(deepcopy=False):
            counts[names[trial.state]] += 1
        counts["finished"] = counts["complete"] + counts["pruned"]
        return counts

    def claim(self) -> optuna.Trial | None:
        """Under the storage lock: fail stale trials, then start a trial if the budget allows."""
        import optuna
        from optuna.trial import TrialState

        with self.storage.lock(self.config.study):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            counts = self.counts()
            if counts["finished"] + counts["running"] >= self.config.trials:
                return None
            if self._needs_default():  # the head's own defaults are the first trial: a baseline
                self.study.enqueue_trial(self.default_params(), user_attrs={"default": True})
            elif self.default_params() is None and not self.study.user_attrs.get("baseline_by"):
                # The defaults lie outside the space (weight_decay=0 on a log scale, say):
                # score them once beside the trials, as the baseline.
                self.study.set_user_attr("baseline_by", self.worker)
                return BASELINE
            with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize"
                warnings.simplefilter("ignore", UserWarning)
                trial = self.study.ask()
            try:
                # A heartbeat at once: a trial without one is never found stale if we die now.
                if hasattr(self.storage.optuna, "record_heartbeat"):
                    self.storage.optuna.record_heartbeat(trial._trial_id)
                trial.set_user_attr("worker", self.worker)
            except BaseException:  # Ctrl-C or SIGTERM just after ask(): not left running
                self._finish(trial, TrialState.FAIL, None, 0.0)
                raise
            return trial

    def _needs_default(self) -> bool:
        """No default trial yet, other than one stopped by Ctrl-C or a dead worker."""
        from optuna.trial import TrialState

        if self.default_params() is None:
            return False
        return not any(
            t.user_attrs.get("default") and (t.state != TrialState.FAIL or "error" in t.user_attrs)
            for t in self.study.get_trials(deepcopy=False)
        )

    def run(self, deadline: float | None, progress: _Progress) -> bool:
        """Run trials until the budget or the deadline; ``True`` if interrupted (Ctrl-C)."""
        import optuna
        from optuna.trial import TrialState

        waiting, failures_in_a_row = False, 0
        while deadline is None or time.monotonic() < deadline:
            if self.watch is not None:
                self.watch()
            trial = self.claim()
            if trial is None:
                counts = self.counts()
                if counts["finished"] >= self.config.trials or not counts["running"]:
                    break
                # The last trials run elsewhere: wait for them, so the report covers them,
                # and take over if one fails.
                if not waiting:
                    self.say(f"Waiting for {counts['running']} trial(s) running in other workers")
                    waiting = True
                time.sleep(WAIT_SECONDS)
                continue
            waiting = False
            if trial is BASELINE:
                self.run_baseline()
                continue
            start = time.perf_counter()
            state, value, note = TrialState.COMPLETE, None, ""
            try:
                with _heartbeat(self.storage.optuna, trial._trial_id):
                    value = self.objective(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
                note = f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
            except (TrainingError, ProbregError) as error:
                state, note = TrialState.FAIL, f"failed: {error}"
                trial.set_user_attr("error", str(error))
            except Exception as error:  # one bad configuration does not end the search
                message = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
                state, note = TrialState.FAIL, f"failed: {message}"
                trial.set_user_attr("error", message)
            except BaseException as error:  # a stop: this trial did not finish
                if isinstance(error, KeyboardInterrupt):
                    with contextlib.suppress(Exception):  # it is finished whatever happens
                        trial.set_user_attr("error", "interrupted (Ctrl-C, SIGTERM or SIGHUP)")
                self._finish(trial, TrialState.FAIL, None, time.perf_counter() - start)
                raise
            self._finish(trial, state, value, time.perf_counter() - start)
            label = f"{trial.number} (the defaults)" if trial.user_attrs.get("default") else None
            progress.trial_done(self, label or trial.number, state, value, note)
            failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            if failures_in_a_row >= max(FAILURES_IN_A_ROW, self.config.trials):
                # Failed trials do not count towards --trials: without this, a problem every
                # configuration shares would start trials for ever.
                self.stopped = f"{failures_in_a_row} trials in a row failed"
                last = note.removeprefix("failed: ")
                self.say(f"Stopping: {self.stopped} (the last: {shorten(last, 200)})")
                break
        return False

    def run_baseline(self) -> None:
        """Score the head's own defaults on the validation rows; a study attribute."""
        start = time.perf_counter()
        self.say(f"Scoring the head's defaults ({self.head.spec}) as the baseline")
        try:
            value = self.score(self.head, None)
        except (TrainingError, ProbregError) as error:
            record = {"value": None, "error": str(error)}
        except BaseException:
            self.study.set_user_attr("baseline_by", None)
            raise
        else:
            record = {"value": value}
        record.update(spec=self.head.spec, seconds=round(time.perf_counter() - start, 3))
        self.study.set_user_attr("baseline", record)
        if record["value"] is not None:
            self.say(f"  the defaults' validation {self.metric}: {record['value']:.4f}")
        else:
            self.say(f"  the defaults failed: {record['error']}")

    def _finish(self, trial, state, value, seconds: float) -> None:
        trial.set_user_attr("seconds", round(seconds, 3))
        if state.name == "COMPLETE":
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)


def _normal(key: str, value: Any, exact: bool = False) -> Any:
    """A study's problem description, independent of the order parameters are declared in;
    numbers in specs to six digits unless ``exact``."""
    if key in ("dataset", "head") and isinstance(value, str):
        name, options = parse_spec(value, key)
        text = str.strip if exact else _option_text
        return name, sorted((k, text(v)) for k, v in options.items())
    if key == "space" and isinstance(value, str):
        return sorted(value.split(","))
    return value


def _option_text(text: str) -> str:
    """An option's value to compare: a number to six digits, as specs were written before
    they kept every digit, so a study from then still resumes."""
    text = text.strip()
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _pruner(name: str, epochs: int | None):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(1, (epochs or 10) // 10)
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"unknown pruner '{name}'; allowed: median, hyperband, none")


@contextlib.contextmanager
def _heartbeat(storage: Any, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat in the storage while it runs (if the storage keeps them)."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="probreg-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class _Progress:
    """The progress line: trials finished in the study, the best so far, elapsed and ETA."""

    def __init__(self, say: Echo, total: int, prefix: str = "") -> None:
        self.say, self.total, self.prefix = say, total, prefix
        self.start = time.monotonic()
        self.first: int | None = None

    def trial_done(self, search: _Search, number: int | str, state, value, note: str) -> None:
        counts = search.counts()
        done = counts["finished"]
        if self.first is None:
            self.first = done - 1
        elapsed = time.monotonic() - self.start
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        what = f"{search.metric} {value:.4f}" if value is not None else note
        try:
            best = search.study.best_trial
            best_text = f"best {best.value:.4f} (trial {best.number})"
        except ValueError:
            best_text = "no complete trial yet"
        self.say(
            f"{self.prefix}[{done}/{self.total}] trial {number} {what} | {best_text} | "
            f"{clock(elapsed)} elapsed, ETA {clock(eta)}"
        )


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(config: TuneConfig, say: Echo, prefix: str = "") -> tuple[_Search, bool]:
    """Join the study and run trials until its budget is used up; ``(search, interrupted)``."""
    storage = open_storage(config.storage, config.heartbeat)
    search = _Search(config, storage, say, worker_id())
    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    progress = _Progress(say, config.trials, prefix)
    try:
        search.run(deadline, progress)
    except KeyboardInterrupt:
        return search, True
    return search, False


def tune(
    dataset: str = "spiral",
    head: str = "mdn",
    *,
    trials: int = 30,
    metric: str = "nll",
    space: str | None = None,
    seeds: Sequence[int] = (0,),
    splits: Sequence[int] | None = None,
    epochs: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    pruner: str = "median",
    heartbeat: int = HEARTBEAT,
    output: str | os.PathLike | None = None,
    force: bool = False,
    quiet: bool = False,
    write: bool = True,
    command: str | None = None,
    echo: Echo | None = None,
) -> TuneResult:
    """Search the head's hyperparameters for the best validation ``metric``; see the module doc.

    ``trials`` is the study's total of finished (complete or pruned) trials: running again
    resumes and tops it up. ``storage`` is an SQLAlchemy URL (default: a SQLite file in the
    tune folder); ``workers`` starts that many processes on it. Returns the best spec, ready
    for :func:`probreg.run`, and writes the tune folder unless ``write=False``.
    """
    say = echo or (silent if quiet else to_stderr)
    if metric not in OBJECTIVES:
        raise UsageError(f"unknown metric '{metric}'; allowed: {', '.join(OBJECTIVES)}")
    for option, value in (("--trials", trials), ("--workers", workers)):
        if not is_integer(value) or value < 1:
            raise UsageError(f"{option} must be an integer of at least 1, not {shown(value)}")
    trials, workers = int(trials), int(workers)  # numpy integers do not serialise to JSON
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    most = 4 * (cores or 1)  # each worker is a whole training process
    if workers > min(trials, most):
        limit = "--trials" if trials <= most else f"4 per CPU core here ({most})"
        raise UsageError(
            f"--workers {workers} is more than {limit}; allowed: 1 to {min(trials, most)}"
        )
    if workers > 1 and not (isinstance(dataset, str) and isinstance(head, str)):
        raise UsageError("workers > 1 needs the dataset and head as spec strings")
    from probreg.comparison import check_replicates, replicates

    seeds, splits = check_replicates(seeds, splits)
    if study is not None and (not isinstance(study, str) or not study.strip()):
        raise UsageError(
            f"--study {shown(study)} is not a name; give one, or leave it out for the default name"
        )
    given = files.given_output(output)
    if write and not given and study and (study.strip(".") == "" or set("/\\\0") & set(study)):
        raise UsageError(  # before any storage or folder is opened
            f"--study {shown(study)} cannot name a folder under tunes/: leave out path "
            "separators and dot-only names, or give the folder with --output (output=)"
        )
    # Check every spec before touching storage or folders.
    dataset_ = plugins.create("dataset", dataset)
    overrides = {} if epochs is None else {"epochs": epochs}
    head_ = plugins.create("head", head, **overrides)
    space_ = build_space(head, space, epochs)
    _pruner(pruner, None)
    replicates(dataset_, seeds, splits, spec=dataset)  # its refusals before any folder or storage
    name = study or default_study_name(dataset_.spec, head_.spec, metric)
    # A database named by the user is checked before any folder is made.
    opened = None if storage is None else open_storage(storage, heartbeat)
    tune_dir = None
    if write:
        tune_dir, _ = open_tune_dir(Path(given or Path("tunes") / name), force, name)
    own_storage = storage is None
    if own_storage:
        if tune_dir is None:
            raise UsageError("write=False needs a storage URL")
        storage = f"sqlite:///{(tune_dir / STUDY_FILE).resolve()}"
        opened = open_storage(storage, heartbeat)
    config = TuneConfig(
        dataset=dataset if isinstance(dataset, str) else dataset_.spec,
        head=head if isinstance(head, str) else head_.spec,
        metric=metric,
        trials=trials,
        storage=storage,
        study=name,
        space=space,
        seeds=list(seeds),
        splits=None if splits is None else list(splits),
        epochs=epochs,
        timeout=timeout,
        pruner=pruner,
        heartbeat=heartbeat,
        own_storage=own_storage,
    )
    storage_shown = hide_password(storage)
    search = _Search(config, opened, say, worker_id())
    before = search.counts()
    say(
        f"Tuning {head_.spec} on {dataset_.spec}: validation {metric}, "
        f"{', '.join(rep.name for rep in search.replicates)}; {trials} trials"
        + (f" with {workers} workers" if workers > 1 else "")
    )
    say(f"  space: {space_.describe()}")
    say(
        f"  study '{name}' in {storage_shown}"
        + (f" (resuming: {before['finished']} trials finished)" if before["finished"] else "")
    )
    start = time.monotonic()
    children = _Workers(search, _start_workers(config, workers - 1, quiet), say)
    search.watch = children.check
    deadline = None if timeout is None else time.monotonic() + timeout
    interrupted = False
    try:
        search.run(deadline, _Progress(say, trials, "" if workers == 1 else "[worker 1] "))
    except KeyboardInterrupt:
        interrupted = True
    interrupted = children.wait(interrupted) or interrupted
    seconds = time.monotonic() - start
    with interrupts.held():  # a stop now comes after the tune folder is whole
        summary = summarize(search, seconds, command or _command(config, workers))
        summary["storage"] = storage_shown
        if tune_dir is not None:
            write_outputs(tune_dir, search, summary)
            say(f"Wrote {tune_dir / 'report.html'}")
    best = chosen(summary)  # the defaults, if their baseline beat every trial
    return TuneResult(
        best_spec=best["spec"] if best else None,
        best_value=best["value"] if best else None,
        default_value=summary["default"]["value"] if summary["default"] else None,
        study=search.study,
        tune_dir=tune_dir,
        summary=summary,
        interrupted=interrupted,
    )


def _start_workers(config: TuneConfig, count: int, quiet: bool) -> list[subprocess.Popen]:
    children = []
    for index in range(count):
        env = {**os.environ, "PROBREG_TUNE_WORKER": str(index + 2)}
        if quiet:
            env["PROBREG_TUNE_QUIET"] = "1"
        try:  # the CLI sends native stderr to /dev/null; give workers Python's stderr
            stderr = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            stderr = None
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "probreg.tuning"],
                stderr=stderr,
                env={**env, "PROBREG_TUNE_CONFIG": json.dumps(dataclasses.asdict(config))},
            )
        )
    return children


class _Workers:
    """The worker processes started by ``workers``: watch them, and fail the trials of any
    that dies (at once, not when its heartbeat goes stale)."""

    def __init__(self, search: _Search, children: list[subprocess.Popen], say: Echo) -> None:
        self.search, self.children, self.say = search, children, say
        self.codes: dict[int, int] = {}

    def check(self) -> None:
        """Reap workers that have ended; fail the running trials of those that died."""
        for child in self.children:
            if child.pid not in self.codes and child.poll() is not None:
                self._ended(child, child.returncode)

    def _ended(self, child: subprocess.Popen, code: int) -> None:
        from optuna.trial import TrialState

        self.codes[child.pid] = code
        if code in (0, 130, -signal.SIGINT):
            return
        label = f"{socket.gethostname()}:{child.pid}"
        lost = [
            t
            for t in self.search.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("worker") == label
        ]
        storage = self.search.storage.optuna
        for trial in lost:
            with contextlib.suppress(Exception):
                storage.set_trial_user_attr(
                    trial._trial_id, "error", f"worker {label} exited with code {code}"
                )
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        self.say(
            f"A worker process ({label}) exited with code {code}; "
            f"{len(lost)} of its trials marked failed"
        )

    def wait(self, interrupted: bool) -> bool:
        """Wait for every worker (passing on a Ctrl-C); ``True`` if any was interrupted."""
        for child in self.children:
            while child.pid not in self.codes:
                try:
                    if interrupted and child.poll() is None:
                        child.send_signal(signal.SIGINT)
                    self._ended(child, child.wait())
                except KeyboardInterrupt:
                    interrupted = True
        return any(code in (130, -signal.SIGINT) for code in self.codes.values())


def _command(config: TuneConfig, workers: int) -> str:
    words = ["probreg", "tune", "--dataset", config.dataset, "--head", config.head]
    words += ["--trials", str(config.trials), "--metric", config.metric]
    if config.space:
        words += ["--space", config.space]
    if config.splits is not None:
        words += ["--splits", ",".join(map(str, config.splits))]
    elif config.seeds != [0]:
        words += ["--seeds", ",".join(map(str, config.seeds))]
    if config.epochs is not None:
        words += ["--epochs", str(config.epochs)]
    if config.timeout is not None:
        words += ["--timeout", f"{config.timeout:g}"]
    if workers > 1:
        words += ["--workers", str(workers)]
    if config.pruner != "median":
        words += ["--pruner", config.pruner]
    words += ["--study", config.study]
    return shlex.join(words)


def _worker_main() -> int:
    """``python -m probreg.tuning``: one worker process started by ``workers``; the search comes
    as JSON in ``$PROBREG_TUNE_CONFIG`` (not the command line, which others can read)."""
    interrupts.install()  # Ctrl-C and SIGTERM stop a worker as they stop `probreg tune`
    from probreg import cli

    if os.environ.get(cli.MUTED_NATIVE) == "1":  # as the command that started it
        cli.mute_native_stderr()
    config = TuneConfig(**json.loads(os.environ["PROBREG_TUNE_CONFIG"]))
    index = os.environ.get("PROBREG_TUNE_WORKER", "?")
    say = silent if os.environ.get("PROBREG_TUNE_QUIET") == "1" else to_stderr
    try:
        _, interrupted = run_worker(config, say, prefix=f"[worker {index}] ")
    except ProbregError as error:
        print(f"Error: [worker {index}] {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 130 if interrupted else 0


if __name__ == "__main__":  # pragma: no cover - a worker process
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(_worker_main())
