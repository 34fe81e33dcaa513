"""``compare``: several heads on the same data and test points, side by side in one report.

Each (head, replicate) pair is trained by the same code as ``probreg run``
(:func:`probreg.api.fit_and_score`) and written to its own run folder inside the report
folder, which is claimed, built aside and swapped in like a run (:mod:`probreg.rundir`).
The report ranks heads by test NLL and aggregates replicates (seeds, or dataset splits) as
mean and standard error. A head that diverges is recorded as such and named in the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import shlex
import shutil
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from probreg import files, interrupts, plugins, rundir
from probreg.api import (
    Echo,
    RunResult,
    below_bayes_limit,
    check_plan,
    check_seed,
    fit_and_score,
    silent,
    to_stderr,
    versions,
)
from probreg.datasets import Dataset
from probreg.distributed import Layout
from probreg.errors import TrainingError, UsageError, shorten, shown
from probreg.heads import Head
from probreg.metrics import COLUMNS, METRICS, MULTIVARIATE
from probreg.params import is_flat_list, parse_spec
from probreg.samplers import Sampler


@dataclasses.dataclass
class Replicate:
    """One repetition of the whole comparison: a seed and the dataset it loads."""

    seed: int
    dataset: Dataset
    split: int | None = None

    @property
    def name(self) -> str:
        return f"seed {self.seed}" if self.split is None else f"split {self.split}"


@dataclasses.dataclass
class ComparisonResult:
    """What :func:`compare` returns: the ranked table (one row per head) and every run."""

    table: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    report_dir: Path | None
    bayes_nll: float | None
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped it; the table holds what finished

    def best(self) -> str:
        return self.table[0]["head"]


def head_labels(heads: Sequence[Head]) -> list[str]:
    """Readable, distinct labels: each head's spec; exact repeats get ``#2``, ``#3``..."""
    labels: list[str] = []
    for head in heads:
        label = head.spec
        count = sum(1 for other in labels if other == label or other.startswith(label + " #"))
        labels.append(label if count == 0 else f"{label} #{count + 1}")
    return labels


def mean_and_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (``None`` for a single value)."""
    array = np.asarray(values, np.float64)
    if array.size < 2:
        return float(array.mean()), None
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort rows by mean test NLL (lower first), number them, and mark each column's best."""
    rows = sorted(rows, key=lambda row: row["nll"])
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
        row["best"] = []
    for key, _, rule in COLUMNS:
        values = [row.get(key) for row in rows]
        if rule is None or any(v is None for v in values) or len(rows) < 2:
            continue
        score = [abs(v - 0.9) if rule == "closest to 0.9" else v for v in values]
        best = min(score)
        for row, value in zip(rows, score, strict=True):
            if math.isclose(value, best, rel_tol=1e-12, abs_tol=1e-12):
                row["best"].append(key)
    return rows


def slug(text: str) -> str:
    """``text`` as a file-name part: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "head"


def check_replicates(
    seeds: Sequence[int], splits: Sequence[int] | None
) -> tuple[list[int], list[int] | None]:
    """``seeds`` and ``splits`` as lists of Python ints, or a one-line error unless each is a
    non-empty list of distinct seeds (``splits`` may be ``None``): a bare number or string is
    not a list, and an empty one would run nothing."""
    checked: list[list[int] | None] = []
    for option, item, values in (("--seeds", "seed", seeds), ("--splits", "split", splits)):
        if values is None and option == "--splits":
            checked.append(None)
            continue
        if not is_flat_list(values):
            raise UsageError(
                f"{option} must be a list of integers, e.g. [0, 1, 2], not {shown(values)}"
            )
        if len(values) == 0:
            raise UsageError(f"{option} is empty; give at least one")
        numbers = [check_seed(value, item) for value in values]
        if len(set(numbers)) != len(numbers):
            raise UsageError(f"{option} lists a {item} twice")
        checked.append(numbers)
    return checked[0], checked[1]


def replicates(
    dataset: Dataset,
    seeds: Sequence[int],
    splits: Sequence[int] | None,
    spec: str | Dataset | None = None,
) -> list[Replicate]:
    """Seeds, or (for datasets with splits, :meth:`Dataset.n_splits`) splits with seed = split
    index; ``seeds`` and ``splits`` as :func:`check_replicates` returns them. ``spec`` is the
    dataset as the user gave it (default: ``dataset``): one that names a ``split`` and
    ``splits`` together are refused."""
    if splits is None:
        return [Replicate(seed, dataset) for seed in seeds]
    if dataset.n_splits() is None:
        raise UsageError(f"dataset '{dataset.name}' has no splits, so --splits does not apply")
    # An object's spec shows only values other than the defaults; a string shows what was given.
    given = parse_spec(spec if isinstance(spec, str) else dataset.spec, "dataset")[1]
    if "split" in given:
        raise UsageError(
            f"the dataset spec sets split={given['split'].strip()} and --splits chooses splits "
            "too; give one"
        )
    return [Replicate(split, dataset.with_split(split), split) for split in splits]


def compare(
    dataset: str | Dataset = "spiral",
    heads: str | Head | Sequence[str | Head] = ("mlp", "mdn"),
    sampler: str | Sampler = "ancestral",
    *,
    seeds: Sequence[int] = (0,),
    splits: Sequence[int] | None = None,
    epochs: int | None = None,
    output: str | os.PathLike | None = None,
    force: bool = False,
    quiet: bool = False,
    write: bool = True,
    command: str | None = None,
    echo: Echo | None = None,
    stream: bool | None = None,
    layout: Layout | None = None,
    recalibrate: bool = False,
    conformal: float | None = None,
    monitor: str = "nll",
) -> ComparisonResult:
    """Train every head on the same data for each replicate; rank them by mean test NLL.

    ``splits`` runs the listed splits of a dataset with splits (``uci``) instead of ``seeds``.
    Returns the ranked table as data; with ``write`` also the report directory. ``stream`` and
    ``layout`` work as in :func:`probreg.api.run`; only the main process writes.
    ``recalibrate`` adds a ``<head> +recalibrated`` row for every head (the same model through
    its PIT map); ``conformal`` and ``monitor`` work as in :func:`probreg.api.run`.
    """
    from probreg import postfit

    say = echo or (silent if quiet else to_stderr)
    calibrating = postfit.Options(recalibrate, conformal, monitor=monitor)
    postfit.check_layout(calibrating, layout)
    if isinstance(heads, str | Head):
        heads = [heads]  # one spec, not a list of one-letter specs
    if len(heads) < 1:
        raise UsageError("compare needs at least one head (--head)")
    seeds, splits = check_replicates(seeds, splits)
    if layout is not None and not layout.is_main:
        write, say = False, silent
    base_dataset = plugins.create("dataset", dataset)
    base_heads = [plugins.create("head", spec) for spec in heads]
    labels = head_labels(base_heads)
    overrides = {} if epochs is None else {"epochs": epochs}
    head_objects = [plugins.create("head", head, **overrides) for head in base_heads]
    sampler_ = plugins.create("sampler", sampler)
    reps = replicates(base_dataset, seeds, splits, spec=dataset)
    given = files.given_output(output)
    target = given or _default_dir(base_dataset)
    if write:
        rundir.check_target(Path(target), force, kind="compare")  # refuse early
    say(f"Loading dataset {reps[0].dataset.spec} ({reps[0].name})")
    first = reps[0].dataset.load(reps[0].seed)
    for index, head in enumerate(head_objects):  # input errors come before the output folder
        check_plan(first, head, say if index == 0 else silent, sampler_)
    postfit.check(calibrating, first)
    claim = rundir.claim(target, force=force, kind="compare", unique=not given) if write else None
    with claim or contextlib.nullcontext() as claimed:
        staging = None if claimed is None else claimed.staging
        options = {
            "verbose": not quiet,
            "stream": stream,
            "layout": layout,
            "calibrating": calibrating,
        }
        runs, views, interrupted = _train_all(
            reps, first, labels, head_objects, sampler_, staging, say, **options
        )
        runs, views, labels = postfit.expand(runs, views, labels)  # + recalibrated heads
        done = [run for run in runs if run["status"] != "diverged"]
        if not done:
            raise TrainingError(
                f"every head diverged (first: {runs[0]['head']}: {shorten(runs[0]['error'])})"
            )
        table = rank(_aggregate([label for label in labels if _ran(label, done)], done))
        bayes = [run["bayes_nll"] for run in done if run["bayes_nll"] is not None]
        bayes_nll = float(np.mean(bayes)) if bayes else None
        comparison = ComparisonResult(table, runs, None, bayes_nll, interrupted)
        if staging is not None:
            from probreg import report

            report.write(
                staging,
                comparison,
                dataset=base_dataset.spec,
                replicates=[rep.name for rep in reps],
                views=views,
                command=command
                or _command(base_dataset, base_heads, sampler_, seeds, splits, epochs)
                + postfit.command_flags(calibrating),
                versions=_versions(head_objects, base_dataset, sampler_),
                extra_sections=_diverged_section(runs)
                + _published_section(base_dataset, table)
                + postfit.report_sections(runs),
            )
            claimed.commit()
            comparison.report_dir = claimed.shown  # a generated name may have moved on
            say(f"Wrote {comparison.report_dir / 'report.html'}")
    return comparison


def _ran(label: str, runs: list[dict[str, Any]]) -> bool:
    return any(run["head"] == label for run in runs)


def _train_all(
    reps: Sequence[Replicate],
    first: Any,
    labels: Sequence[str],
    heads: Sequence[Head],
    sampler: Sampler,
    staging: Path | None,
    say: Echo,
    **options: Any,
) -> tuple[list[dict[str, Any]], list[tuple[str, RunResult]], bool]:
    """Fit and score every head on every replicate; one row per run (diverged ones too).

    A Ctrl-C or SIGTERM ends it early with what has finished (and ``True``): the run it
    stopped is kept if it got past its first epoch, and dropped if not.
    """
    total = len(reps) * len(heads)
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    views = []
    view_rep = None
    for r_index, rep in enumerate(reps):
        if r_index == 0:
            data = first
        else:
            say(f"Loading dataset {rep.dataset.spec} ({rep.name})")
            data = rep.dataset.load(rep.seed)
            for head in heads:
                check_plan(data, head)
        for h_index, (label, head) in enumerate(zip(labels, heads, strict=True)):
            step = r_index * len(heads) + h_index + 1
            say(f"[{step}/{total}] training {label} ({rep.name}) - elapsed {_clock(start)}")
            run_dir = None
            if staging is not None:
                suffix = f"-{slug(rep.name)}" if len(reps) > 1 else ""
                name = f"{h_index + 1:02d}-{slug(label)}{suffix}"
                run_dir = rundir.start_folder(staging / "runs" / name, "run")
            try:
                result = fit_and_score(
                    rep.dataset, head, sampler, data, rep.seed, run_dir, **options
                )
                warning = below_bayes_limit(result)
                if warning:
                    say(f"{label} ({rep.name}): {warning}")
            except KeyboardInterrupt:  # stopped before its first epoch ended: no model
                interrupts.take_pending()  # acted on here
                if not runs:
                    raise
                if run_dir is not None:
                    shutil.rmtree(run_dir, ignore_errors=True)
                say(f"Interrupted: reporting the {len(runs)} run(s) finished so far")
                return runs, views, True
            except TrainingError as error:
                say(f"{label} ({rep.name}) diverged: {error}")
                if run_dir is not None:
                    rundir.finish_folder(run_dir, "diverged")
                runs.append(_diverged_row(label, head, rep, error, run_dir, staging))
                continue
            if run_dir is not None:
                rundir.finish_folder(run_dir)
            runs.append(_run_row(label, rep, result, staging))
            if view_rep is None or view_rep == r_index:  # pictures: the first replicate that
                view_rep = r_index  # has a model, so every picture shows the same test data
                views.append((label, result))
            if result.status == "interrupted":  # Ctrl-C: keep this run, report what is done
                say(f"Interrupted: reporting the {len(runs)} run(s) finished so far")
                say(f"Trained {len(runs)} of {total} models in {_clock(start)}")
                return runs, views, True
    say(f"Trained {len(runs)} of {total} models in {_clock(start)}")
    return runs, views, False


def _diverged_row(
    label: str,
    head: Head,
    rep: Replicate,
    error: Exception,
    run_dir: Path | None,
    staging: Path | None,
) -> dict[str, Any]:
    return {
        "head": label,
        "spec": head.spec,
        "dataset": rep.dataset.spec,
        "seed": rep.seed,
        "replicate": rep.name,
        "status": "diverged",
        "error": str(error),
        "test": None,
        "run_dir": None if run_dir is None else str(run_dir.relative_to(staging)),
    }


def _diverged_section(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """A report section naming every run that diverged (none: no section)."""
    failed = [run for run in runs if run["status"] == "diverged"]
    if not failed:
        return []
    lines = [f"{run['head']} ({run['replicate']}): {run['error']}" for run in failed]
    html = "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"
    markdown = "\n".join(f"- {line}" for line in lines)
    return [("Diverged (left out of the ranking)", html, markdown)]


def _command(
    dataset: Dataset,
    heads: Sequence[Head],
    sampler: Sampler,
    seeds: Sequence[int],
    splits: Sequence[int] | None,
    epochs: int | None,
) -> str:
    """The ``probreg compare`` command line that reproduces this comparison."""
    words = ["probreg", "compare", "--dataset", dataset.spec]
    for head in heads:
        words += ["--head", head.spec]
    if sampler.spec != "ancestral":
        words += ["--sampler", sampler.spec]
    if splits is not None:
        words += ["--splits", ",".join(map(str, splits))]
    elif len(seeds) > 1:
        words += ["--seeds", ",".join(map(str, seeds))]
    else:
        words += ["--seed", str(seeds[0])]
    if epochs is not None:
        words += ["--epochs", str(epochs)]
    return shlex.join(words)


def _published_section(dataset: Dataset, table: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Published results on the same data (``Dataset.reference()``), beside ours."""
    reference = dataset.reference()
    if not reference:
        return []

    def cell(value, se, sign=1.0):
        if value is None:
            return "–"
        return f"{sign * value:.2f}" + ("" if se is None else f" ± {se:.2f}")

    rows = [
        (
            f"probreg {row['head']}",
            cell(row["nll"], row["nll_se"], -1),
            cell(row["nll"], row["nll_se"]),
            cell(row["rmse"], row["rmse_se"]),
        )
        for row in table
    ]
    rows += [  # --monitor nll,rmse: the same runs at another score's best validation epoch
        (
            f"probreg {row['head']}, epoch of best validation {name}",
            cell(at["nll"], at["nll_se"], -1),
            cell(at["nll"], at["nll_se"]),
            cell(at["rmse"], at["rmse_se"]),
        )
        for row in table
        for name, at in (row.get("selected") or {}).items()
    ]
    rows += [
        (
            ref["method"],
            cell(ref["nll"], ref["nll_se"], -1),
            cell(ref["nll"], ref["nll_se"]),
            cell(ref["rmse"], ref["rmse_se"]),
        )
        for ref in reference
    ]
    header = ("method", "test log-likelihood", "test NLL", "RMSE")
    markdown = "\n".join(
        ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
        + ["| " + " | ".join(row) + " |" for row in rows]
    )
    html_rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell_)}</td>" for cell_ in row) + "</tr>" for row in rows
    )
    html = (
        '<p class="note">Mean ± standard error over the splits, in the target\'s original units '
        "(higher log-likelihood is better). Each published row names its source and splits.</p>"
        f'<table id="published"><thead><tr>{"".join(f"<th>{h}</th>" for h in header)}</tr></thead>'
        f"<tbody>{html_rows}</tbody></table>"
    )
    return [("Published results on the same splits", html, markdown)]


def _clock(start: float) -> str:
    seconds = int(time.perf_counter() - start)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _default_dir(dataset: Dataset) -> Path:
    from probreg.api import default_run_dir

    return default_run_dir(dataset.spec, "compare", root="reports")


def _run_row(
    label: str, rep: Replicate, result: RunResult, report_dir: Path | None
) -> dict[str, Any]:
    metrics = result.metrics
    return {
        "head": label,
        "spec": metrics["head"],
        "dataset": metrics["dataset"],
        "seed": rep.seed,
        "replicate": rep.name,
        "test": metrics["test"],
        "likelihood": metrics.get("likelihood", "density"),
        "bayes_nll": metrics["bayes_nll"],
        "bayes_gap": metrics["bayes_gap"],
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "parameters": metrics["parameters"],
        "status": metrics["status"],
        "recalibrated": metrics.get("recalibrated"),
        "conformal": metrics.get("conformal"),
        "selected": metrics.get("selected"),
        "run_dir": None
        if result.run_dir is None or report_dir is None
        else str(Path(result.run_dir).relative_to(report_dir)),
    }


def _aggregate(labels: Sequence[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label in labels:
        mine = [run for run in runs if run["head"] == label]
        row: dict[str, Any] = {"head": label, "spec": mine[0]["spec"], "replicates": len(mine)}
        row["likelihood"] = mine[0].get("likelihood", "density")
        row.update(_mean_scores([run["test"] for run in mine]))
        gaps = [run["bayes_gap"] for run in mine]
        row["bayes_gap"], row["bayes_gap_se"] = (None, None) if None in gaps else mean_and_se(gaps)
        row["train_seconds"], row["train_seconds_se"] = mean_and_se(
            [run["train_seconds"] for run in mine]
        )
        row["parameters"] = mine[0]["parameters"]
        row["selected"] = _aggregate_selected(mine)
        rows.append(row)
    return rows


def _mean_scores(tests: list[dict[str, float]]) -> dict[str, float | None]:
    """``key`` and ``key_se`` (mean and standard error over replicates) of every test score;
    the multivariate ones only where every replicate has them (two or more outputs)."""
    keys = [*METRICS, *(key for key in MULTIVARIATE if all(key in test for test in tests))]
    means: dict[str, float | None] = {}
    for key in keys:
        means[key], means[f"{key}_se"] = mean_and_se([test[key] for test in tests])
    return means


def _aggregate_selected(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`_mean_scores` at each further monitored score's best epoch (``--monitor
    nll,rmse``), for the scores every replicate has."""
    names = set.intersection(*(set(run.get("selected") or {}) for run in runs))
    return {
        name: _mean_scores([run["selected"][name]["test"] for run in runs])
        for name in sorted(names)
    }


def _versions(heads: Sequence[Head], dataset: Dataset, sampler: Sampler) -> dict[str, str]:
    found = versions()
    for instance in (*heads, dataset, sampler):
        source = plugins.source_of(instance)
        if not source.builtin:
            found[source.name] = source.version
    return found
