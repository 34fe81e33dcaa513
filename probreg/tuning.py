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
import csv
import dataclasses
import io
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
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import files, plugins
from probreg.api import Echo, silent, to_stderr
from probreg.errors import ProbregError, TrainingError, UsageError
from probreg.params import LIST_SEPARATOR, Param, parse_spec

if TYPE_CHECKING:  # pragma: no cover - optuna is imported when a search starts
    import optuna


#: Scores a study can minimise (see :mod:`probreg.metrics`).
OBJECTIVES = ("nll", "crps", "rmse")
#: Parameters that set a training budget rather than a model; searched only if ``space`` names
#: them.
BUDGET = ("epochs", "patience", "members")
#: Floats that default to 0 but are searched on a log scale: this range.
ZERO_DEFAULT_LOG_RANGE = {"weight_decay": (1e-5, 1.0)}
#: How far the default search range reaches from a numeric default, down and up.
INT_REACH = (8, 4)
FLOAT_REACH = (10, 10)
#: Seconds between a worker's signs of life in the storage; a trial whose worker stays silent
#: for twice as long is marked failed.
HEARTBEAT = 60
#: How often a worker with nothing left to claim checks on trials running elsewhere.
WAIT_SECONDS = 2.0
#: What :meth:`_Search.claim` returns when the worker should score the head's defaults.
BASELINE = object()
STUDY_FILE = "study.db"
SUMMARY_FILE = "tune.json"
SPACE_USAGE = "expected name=LOW..HIGH[:log], name=A|B|C or name=VALUE, joined with commas"


# ---------------------------------------------------------------------------------------------
# The search space


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched parameter: a numeric range (``int``/``float``, maybe log) or choices.

    Choices are spec strings (``64+64``, ``relu``), passed to the head as a spec would be.
    """

    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return value is not None and self.low <= value <= self.high

    def describe(self) -> str:
        """The dimension in ``--space`` syntax, e.g. ``2..30``, ``1e-04..0.01:log``, ``a|b``."""
        if self.kind == "choice":
            return "|".join(self.choices)
        low, high = (f"{v:g}" for v in (self.low, self.high))
        return f"{low}..{high}" + (":log" if self.log else "")


@dataclasses.dataclass
class Space:
    """What a search varies (``dimensions``) and what it holds fixed (``fixed``: option values)."""

    dimensions: dict[str, Dimension]
    fixed: dict[str, Any]

    def describe(self) -> str:
        return ",".join(f"{n}={d.describe()}" for n, d in self.dimensions.items())


def default_dimension(param: Param) -> Dimension | None:
    """The default search range of one declared parameter, or ``None`` to leave it alone.

    Numbers: from the default divided by :data:`INT_REACH`/:data:`FLOAT_REACH` to the default
    times it, within the declared bounds; floats (and ints spanning 10x or more) on a log
    scale. Choices and booleans: every value. Integer lists (layer sizes): depths 1 to the
    default's, widths a quarter, half and all of the default's widest layer.
    """
    default = param.default
    if param.required or param.name in BUDGET:
        return None
    if param.choices:
        return Dimension(param.name, "choice", choices=tuple(param.choices))
    if param.type == "bool":
        return Dimension(param.name, "choice", choices=("true", "false"))
    if param.type == "int" and isinstance(default, int) and default > 0:
        low = max(1, math.ceil(default / INT_REACH[0]), _bound(param.minimum, 1))
        high = default * INT_REACH[1]
        if param.maximum is not None:
            high = min(high, int(param.maximum))
        if low >= high:
            return None
        return Dimension(param.name, "int", low, high, log=high >= 10 * low)
    if param.type == "float":
        if not default:
            if param.name not in ZERO_DEFAULT_LOG_RANGE:
                return None
            low, high = ZERO_DEFAULT_LOG_RANGE[param.name]
        else:
            if default < 0:
                return None
            low, high = default / FLOAT_REACH[0], default * FLOAT_REACH[1]
        if param.minimum is not None:
            low = max(low, param.minimum)
        if param.maximum is not None:
            high = min(high, param.maximum)
        if not 0 < low < high:
            return None
        return Dimension(param.name, "float", low, high, log=True)
    if param.type == "ints" and default:
        widest, depth = max(default), len(default)
        widths = sorted({max(1, widest // 4), max(1, widest // 2), widest})
        widths = [w for w in widths if w >= _bound(param.minimum, 1)]
        choices = [
            LIST_SEPARATOR.join([str(width)] * layers)
            for layers in range(1, depth + 1)
            for width in widths
        ]
        return Dimension(param.name, "choice", choices=tuple(choices)) if choices else None
    return None


def _bound(value: float | None, fallback: int) -> int:
    return fallback if value is None else math.ceil(value)


def parse_space(text: str | None, params: Sequence[Param], owner: str) -> dict[str, Any]:
    """Parse ``--space``: each item is a :class:`Dimension` (range or choices) or a fixed value.

    ``components=2..30,learning_rate=1e-4..1e-2:log,hidden=64+64|256+256+256,scale=exp``.
    Every value is checked against the parameter's declaration; bad syntax, unknown names and
    empty ranges are one-line :class:`UsageError` s.
    """
    if text is None:
        return {}
    declared = {p.name: p for p in params}
    if not text.strip():
        raise UsageError(f"--space is empty; {SPACE_USAGE}")
    entries: dict[str, Any] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        name, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not name or not value:
            raise UsageError(f"malformed --space item '{item}': {SPACE_USAGE}")
        if name not in declared:
            raise UsageError(
                f"unknown parameter '{name}' in --space for {owner}; allowed parameters: "
                + ", ".join(declared)
            )
        if name in entries:
            raise UsageError(f"--space gives '{name}' twice")
        entries[name] = _parse_entry(declared[name], value, owner)
    return entries


def _parse_entry(param: Param, value: str, owner: str) -> Any:
    where = f"--space {param.name}={value}"
    log = value.endswith(":log")
    if log:
        value = value[: -len(":log")].strip()
    if ".." in value:
        if param.type not in ("int", "float") or param.choices:
            raise UsageError(
                f"{where}: a LOW..HIGH range needs a number parameter; '{param.name}' is "
                f"{param.describe_type()}, so list choices with |"
            )
        low_text, _, high_text = value.partition("..")
        if not low_text.strip() or not high_text.strip():
            raise UsageError(f"{where}: a range needs both ends, LOW..HIGH")
        low, high = param.parse(low_text, owner), param.parse(high_text, owner)
        if low > high:
            raise UsageError(
                f"{where}: empty range, the low end {low:g} is above the high end {high:g}"
            )
        if log and low <= 0:
            raise UsageError(f"{where}: a :log range must be above 0")
        if low == high:
            return low
        return Dimension(param.name, param.type, low, high, log=log)
    if log:
        raise UsageError(f"{where}: ':log' only applies to a LOW..HIGH range")
    if "|" in value:
        parts = [part.strip() for part in value.split("|")]
        if any(not part for part in parts):
            raise UsageError(f"{where}: empty choice; list choices as A|B|C")
        choices = [param.format(param.parse(part, owner)) for part in parts]
        if len(set(choices)) != len(choices):
            raise UsageError(f"{where}: a choice is listed twice")
        return Dimension(param.name, "choice", choices=tuple(choices))
    return param.parse(value, owner)


def build_space(head: str, space: str | None, epochs: int | None = None) -> Space:
    """The search space for a head spec: defaults from its declared parameters, minus the
    options the spec sets (those stay fixed), overridden by ``space`` (which may also search or
    change an option the spec sets: the spec's value is then the baseline)."""
    base = plugins.create("head", head)
    params = type(base).params
    given = set(parse_spec(head, "head")[1]) if isinstance(head, str) else set()
    if epochs is not None:
        given.add("epochs")
    entries = parse_space(space, params, f"head '{base.name}'")
    dimensions: dict[str, Dimension] = {}
    fixed: dict[str, Any] = {}
    for param in params:
        entry = entries.get(param.name)
        if isinstance(entry, Dimension):
            dimensions[param.name] = entry
        elif param.name in entries:
            fixed[param.name] = entry
        elif param.name not in given:
            found = default_dimension(param)
            if found is not None:
                dimensions[param.name] = found
    if not dimensions:
        raise UsageError(
            f"nothing to search: every parameter of head '{base.name}' is fixed; "
            "name a range in --space"
        )
    return Space(dimensions, fixed)


# ---------------------------------------------------------------------------------------------
# Storage


@dataclasses.dataclass
class Storage:
    """An opened Optuna storage, the URL to show (no password) and the lock workers share."""

    optuna: Any
    url: str
    shown: str
    lock: Callable[[str], contextlib.AbstractContextManager]


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and files)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str, heartbeat: int = HEARTBEAT) -> Storage:
    """Open (and create the tables of) an Optuna RDB storage; bad URLs and unreachable
    databases are one-line :class:`UsageError` s naming the URL without its password."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise UsageError(
            f"bad storage URL '{hide_password(url)}': expected e.g. sqlite:///tune.db or "
            "postgresql://user:password@host:5432/database"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        if parsed.database:
            folder = Path(parsed.database).resolve().parent
            if not folder.is_dir():
                raise UsageError(f"cannot open storage '{shown}': folder '{folder}' does not exist")
        engine_kwargs["connect_args"] = {"timeout": 120}
    elif backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    lock_file = Path(parsed.database or "memory").with_suffix(".lock")
    try:
        # One process at a time creates the tables: concurrent creation collides.
        with _schema_lock(backend, url, engine_kwargs, lock_file), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
            )
    except ImportError as error:
        cause = error.__cause__ or error
        driver = getattr(cause, "name", None) or parsed.get_driver_name()
        hint = "; install it with pip install 'psycopg[binary]'" if driver == "psycopg" else ""
        raise UsageError(
            f"cannot open storage '{shown}': its database driver ({driver}) is not installed{hint}"
        ) from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise UsageError(
            f"bad storage URL '{shown}': unknown database type '{parsed.drivername}'; use "
            "sqlite:///FILE or postgresql://user:password@host:port/database"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        reason = _one_line(getattr(error, "orig", None) or error.__cause__ or error, parsed)
        raise UsageError(f"cannot connect to storage '{shown}': {reason}") from None
    except ValueError as error:
        raise UsageError(f"bad storage URL '{shown}': {_one_line(error, parsed)}") from None
    if backend == "sqlite":
        lock = _file_lock(lock_file)
    elif backend == "postgresql":
        lock = _advisory_lock(storage.engine)
    else:  # best effort: no cross-process lock
        lock = lambda study: contextlib.nullcontext()  # noqa: E731
    return Storage(storage, url, shown, lock)


@contextlib.contextmanager
def _schema_lock(backend: str, url: str, engine_kwargs: dict, lock_file: Path) -> Iterator[None]:
    if backend == "sqlite":
        with _file_lock(lock_file)("schema"):
            yield
    elif backend == "postgresql":
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, **engine_kwargs)
        try:
            with _advisory_lock(engine)("schema"):
                yield
        finally:
            engine.dispose()
    else:
        yield


def _one_line(error: Any, parsed: Any) -> str:
    text = " ".join(str(error).split())
    if parsed.password:
        text = text.replace(str(parsed.password), "***")
    return text[:300] or type(error).__name__


def _file_lock(path: Path) -> Callable[[str], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def lock(study: str) -> Iterator[None]:
        import fcntl

        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    return lock


def _advisory_lock(engine: Any) -> Callable[[str], contextlib.AbstractContextManager]:
    from sqlalchemy import text

    @contextlib.contextmanager
    def lock(study: str) -> Iterator[None]:
        key = zlib.crc32(f"probreg-tune:{study}".encode())
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()

    return lock


# ---------------------------------------------------------------------------------------------
# The tune folder


def default_study_name(dataset: str, head: str, metric: str) -> str:
    from probreg.comparison import slug

    name = f"{slug(dataset)}-{slug(head)}-{metric}"
    if len(name) > 80:
        name = f"{name[:70]}-{zlib.crc32(name.encode()):08x}"
    return name


def open_tune_dir(path: Path, force: bool) -> tuple[Path, bool]:
    """Claim the tune folder; return it and whether it already held a study to resume.

    The folder is made like every probreg output folder (:func:`probreg.rundir.claim`: checked,
    locked, built aside and swapped in), but it then stays open: the study grows inside it and
    the report files are replaced atomically at the end. A tune folder (its marker says
    ``tune``) is resumed; ``force`` replaces it, and any other probreg folder, with a new one.
    Other folders are refused.
    """
    from probreg import rundir

    def is_tune_folder() -> bool:
        if not path.is_dir():
            return False
        marker = rundir.read_marker(path)
        if marker is not None:
            return marker["kind"] == "tune"
        return (path / STUDY_FILE).is_file()  # made before folders had markers

    if is_tune_folder() and not force:
        return path, True
    try:
        with rundir.claim(path, force=force, kind="tune"):
            pass  # an empty tune folder; the study and the report are written into it
    except UsageError:
        if is_tune_folder() and not force:  # another process made it meanwhile: join it
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
        self.replicates = replicates(self.dataset, config.seeds, config.splits)
        self._data: dict[int, Any] = {}
        #: Called before each trial is claimed (to notice dead worker processes).
        self.watch: Callable[[], None] | None = None
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
        return {
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
            if _normal(key, theirs) == _normal(key, value):
                continue
            if key == "space" and isinstance(theirs, str):
                old, new = set(theirs.split(",")), set(value.split(","))
                what = f"{','.join(sorted(old - new))}, not {','.join(sorted(new - old))}"
            else:
                what = f"{theirs!r}, not {value!r}"
            raise UsageError(
                f"study '{self.config.study}' in {self.storage.shown} searches another "
                f"problem: its {key} is {what}; use the same options, another --study, or "
                "--force to start afresh"
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
            param = next(p for p in type(self.head).params if p.name == name)
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
            # A heartbeat at once: a trial without one is never found stale if we die now.
            if hasattr(self.storage.optuna, "record_heartbeat"):
                self.storage.optuna.record_heartbeat(trial._trial_id)
            trial.set_user_attr("worker", self.worker)
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

        waiting = False
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
            except BaseException:
                self._finish(trial, TrialState.FAIL, None, time.perf_counter() - start)
                raise
            self._finish(trial, state, value, time.perf_counter() - start)
            label = f"{trial.number} (the defaults)" if trial.user_attrs.get("default") else None
            progress.trial_done(self, label or trial.number, state, value, note)
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


def _normal(key: str, value: Any) -> Any:
    """A study's problem description, independent of the order parameters are declared in."""
    if key in ("dataset", "head") and isinstance(value, str):
        name, options = parse_spec(value, key)
        return name, sorted((k, v.strip()) for k, v in options.items())
    if key == "space" and isinstance(value, str):
        return sorted(value.split(","))
    return value


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
            f"{_clock(elapsed)} elapsed, ETA {_clock(eta)}"
        )


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


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
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if workers > 1 and not (isinstance(dataset, str) and isinstance(head, str)):
        raise UsageError("workers > 1 needs the dataset and head as spec strings")
    if len(set(seeds)) != len(seeds):
        raise UsageError("--seeds lists a seed twice")
    if splits is not None and len(set(splits)) != len(splits):
        raise UsageError("--splits lists a split twice")
    # Check every spec before touching storage or folders.
    dataset_ = plugins.create("dataset", dataset)
    overrides = {} if epochs is None else {"epochs": epochs}
    head_ = plugins.create("head", head, **overrides)
    space_ = build_space(head, space, epochs)
    _pruner(pruner, None)
    name = study or default_study_name(dataset_.spec, head_.spec, metric)
    # A database named by the user is checked before any folder is made.
    opened = None if storage is None else open_storage(storage, heartbeat)
    tune_dir = None
    if write:
        tune_dir, _ = open_tune_dir(Path(output or Path("tunes") / name), force)
    if storage is None:
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
    )
    shown = hide_password(storage)
    search = _Search(config, opened, say, worker_id())
    before = search.counts()
    say(
        f"Tuning {head_.spec} on {dataset_.spec}: validation {metric}, "
        f"{', '.join(rep.name for rep in search.replicates)}; {trials} trials"
        + (f" with {workers} workers" if workers > 1 else "")
    )
    say(f"  space: {space_.describe()}")
    say(
        f"  study '{name}' in {shown}"
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
    summary = summarize(search, seconds, command or _command(config, workers))
    summary["storage"] = shown
    if tune_dir is not None:
        write_outputs(tune_dir, search, summary)
        say(f"Wrote {tune_dir / 'report.html'}")
    best = summary["best"]
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


# ---------------------------------------------------------------------------------------------
# Results


def summarize(search: _Search, seconds: float, command: str) -> dict[str, Any]:
    """The study as data: counts, best and default trials, the time pruning saved, the trials."""
    from optuna.trial import TrialState

    from probreg.api import versions

    trials = search.study.get_trials(deepcopy=False)
    counts = search.counts()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    best = min(complete, key=lambda t: t.value) if complete else None
    default = next((t for t in trials if t.user_attrs.get("default")), None)
    full = [t.user_attrs.get("seconds") for t in complete if t.user_attrs.get("seconds")]
    typical = float(np.median(full)) if full else None
    spent = sum(t.user_attrs.get("seconds", 0.0) for t in trials)
    saved = (
        sum(max(0.0, typical - t.user_attrs.get("seconds", 0.0)) for t in pruned) if typical else 0
    )
    return {
        "study": search.config.study,
        "problem": search.problem(),
        "trials": counts,
        "target_trials": search.config.trials,
        "best": None
        if best is None
        else {
            "number": best.number,
            "value": best.value,
            "spec": best.user_attrs.get("spec"),
            "params": best.params,
        },
        "default": _default_record(default, search),
        "pruning": {
            "pruner": search.config.pruner,
            "pruned": len(pruned),
            "training_seconds": round(spent, 1),
            "saved_seconds": round(saved, 1),
            "saved_fraction": round(saved / (spent + saved), 3) if spent + saved > 0 else 0.0,
        },
        "seconds": round(seconds, 1),
        "command": command,
        "versions": versions(),
        "table": [_trial_row(t) for t in trials],
    }


def _default_record(trial, search: _Search) -> dict[str, Any] | None:
    """The head's defaults' validation score: trial ``number``, or a separate baseline."""
    if trial is not None and trial.state.name == "COMPLETE":
        return {"number": trial.number, "value": trial.value, "spec": search.head.spec}
    baseline = search.study.user_attrs.get("baseline")
    if baseline and baseline.get("value") is not None:
        return {"number": None, **baseline}
    return None


def _trial_row(trial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value if trial.state.name == "COMPLETE" else None,
        "seconds": trial.user_attrs.get("seconds"),
        "epochs": trial.user_attrs.get("epochs"),
        "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch"),
        "worker": trial.user_attrs.get("worker"),
        "default": bool(trial.user_attrs.get("default")),
        "error": trial.user_attrs.get("error"),
        "params": dict(trial.params),
        "spec": trial.user_attrs.get("spec"),
    }


def write_outputs(tune_dir: Path, search: _Search, summary: dict[str, Any]) -> None:
    """``best_spec.txt``, ``trials.csv``, the pictures, ``report.md``/``report.html`` and
    ``tune.json`` (last), each written atomically."""
    if summary["best"]:
        files.write_text(tune_dir / "best_spec.txt", summary["best"]["spec"] + "\n")
    files.write_text(tune_dir / "trials.csv", _trials_csv(summary, list(search.space.dimensions)))
    pictures = _pictures(tune_dir, search.study)
    summary["pictures"] = pictures
    markdown, html = _report(summary, search, pictures, tune_dir)
    files.write_text(tune_dir / "report.md", markdown)
    files.write_text(tune_dir / "report.html", html)
    files.write_json(tune_dir / SUMMARY_FILE, summary)


def _trials_csv(summary: dict[str, Any], names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    head = ["number", "state", summary["problem"]["metric"], "seconds", "epochs", "pruned_at"]
    writer.writerow([*head, *names, "default", "worker", "spec", "error"])
    for row in summary["table"]:
        writer.writerow(
            [
                row["number"],
                row["state"],
                "" if row["value"] is None else f"{row['value']:.6g}",
                row["seconds"] if row["seconds"] is not None else "",
                row["epochs"] if row["epochs"] is not None else "",
                row["pruned_at_epoch"] or "",
                *[row["params"].get(name, "") for name in names],
                "yes" if row["default"] else "",
                row["worker"] or "",
                row["spec"] or "",
                row["error"] or "",
            ]
        )
    return buffer.getvalue()


def _pictures(tune_dir: Path, study: Any) -> list[str]:
    """Optuna's optimisation history and parameter importances, as PNGs."""
    import optuna

    from probreg import plots

    drawn = []
    makers = {
        "history.png": optuna.visualization.matplotlib.plot_optimization_history,
        "importance.png": optuna.visualization.matplotlib.plot_param_importances,
    }
    for name, maker in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = maker(study)
            figure = axes.figure
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()
            files.write_with(tune_dir / name, lambda path, f=figure: f.savefig(path, dpi=100))
            plots.plt.close(figure)
            drawn.append(name)
        except Exception:  # too few trials for importances, for example
            plots.plt.close("all")
    return drawn


def _report(
    summary: dict[str, Any], search: _Search, pictures: list[str], tune_dir: Path
) -> tuple[str, str]:
    import base64

    from probreg.report import CSS

    problem = summary["problem"]
    metric = problem["metric"]
    counts, pruning, best = summary["trials"], summary["pruning"], summary["best"]
    sentence = (
        f"{counts['finished']} trials finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned), {counts['failed']} failed; "
        f"{_clock(pruning['training_seconds'])} of training in all."
    )
    if best:
        sentence += f" Best validation {metric}: {best['value']:.4f} (trial {best['number']})"
        if summary["default"]:
            default = summary["default"]
            where = "baseline" if default["number"] is None else f"trial {default['number']}"
            sentence += (
                f"; the head's defaults ({where}): {default['value']:.4f}, "
                f"{default['value'] - best['value']:.4f} worse"
            )
        sentence += "."
    if pruning["pruned"]:
        sentence += (
            f" Pruning stopped {pruning['pruned']} trials early and saved about "
            f"{_clock(pruning['saved_seconds'])} of training "
            f"({100 * pruning['saved_fraction']:.0f}%)."
        )
    run_command = (
        shlex.join(["probreg", "run", "--dataset", problem["dataset"], "--head", best["spec"]])
        if best
        else ""
    )
    names = list(search.space.dimensions)
    ranked = sorted(
        (row for row in summary["table"] if row["value"] is not None), key=lambda r: r["value"]
    )[:15]
    header = ["#", "trial", metric, *names, "seconds"]
    rows = [
        [
            str(i),
            str(row["number"]) + (" (default)" if row["default"] else ""),
            f"{row['value']:.4f}",
            *[_cell(row["params"].get(name)) for name in names],
            f"{row['seconds']:.1f}" if row["seconds"] is not None else "–",
        ]
        for i, row in enumerate(ranked, start=1)
    ]
    space_rows = [
        [name, dim.describe(), _cell(best["params"].get(name)) if best else "–"]
        for name, dim in search.space.dimensions.items()
    ]
    title = f"Tuning {problem['head']} on {problem['dataset']}"
    md = [f"# {title}", "", sentence, ""]
    if best:
        md += ["Best spec:", "", "```", best["spec"], "```", "", "```bash", run_command, "```", ""]
    md += ["## Search space", "", "| parameter | searched | best |", "|---|---|---|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in space_rows]
    md += ["", f"## Best trials (validation {metric}, lower is better)", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    md += [""] + [f"![{name}]({name})" for name in pictures]
    md += ["", "## Reproduce", "", "```bash", summary["command"], "```", ""]
    md += [
        f"Validation rows only ({', '.join(problem['replicates'])}); test rows never enter the "
        f"objective. Study '{summary['study']}' in {summary['storage']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()),
        "",
    ]

    def table(head: list[str], body: list[list[str]]) -> str:
        return (
            "<table><thead><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body
            )
            + "</tbody></table>"
        )

    figures = "".join(
        f'<figure><img alt="{escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode((tune_dir / name).read_bytes()).decode("ascii")}"></figure>'
        for name in pictures
    )
    best_html = (
        f"<p>Best spec:</p><pre>{escape(best['spec'])}</pre><pre>{escape(run_command)}</pre>"
        if best
        else ""
    )
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>{escape(sentence)}</p>{best_html}<h2>Search space</h2>"
        + table(["parameter", "searched", "best"], space_rows)
        + f"<h2>Best trials (validation {escape(metric)}, lower is better)</h2>"
        + table(header, rows)
        + figures
        + f"<h2>Reproduce</h2><pre>{escape(summary['command'])}</pre>"
        f'<p class="note">Validation rows only ({escape(", ".join(problem["replicates"]))}); '
        f"test rows never enter the objective. Study '{escape(summary['study'])}' in "
        f"{escape(summary['storage'])}.</p></body></html>\n"
    )
    return "\n".join(md), html


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _worker_main() -> int:
    """``python -m probreg.tuning``: one worker process started by ``workers``; the search comes
    as JSON in ``$PROBREG_TUNE_CONFIG`` (not the command line, which others can read)."""
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
