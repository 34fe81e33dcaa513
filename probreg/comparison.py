"""``compare``: several heads on the same data and test points, side by side in one report.

Each (head, replicate) pair is trained like ``probreg run`` and written to its own run folder;
the report ranks heads by test NLL and aggregates replicates (seeds, or dataset splits) as
mean and standard error.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from probreg import files, plugins
from probreg.api import Echo, RunResult, _silent, _stderr, evaluate_and_save, train_head, versions
from probreg.datasets import Dataset
from probreg.errors import UsageError
from probreg.heads import Head
from probreg.metrics import METRICS
from probreg.samplers import Sampler

#: Columns of the ranking: (key, header, which value is best).
COLUMNS = (
    ("nll", "NLL", "min"),
    ("bayes_gap", "gap to Bayes", "min"),
    ("crps", "CRPS", "min"),
    ("rmse", "RMSE", "min"),
    ("coverage_90", "coverage 90%", "closest to 0.9"),
    ("train_seconds", "train s", "min"),
    ("parameters", "parameters", None),
)


@dataclasses.dataclass
class Replicate:
    """One repetition of the whole comparison: a seed and the dataset it loads."""

    seed: int
    dataset: Dataset

    @property
    def name(self) -> str:
        if "split" in self.dataset.options:
            return f"split {self.dataset.options['split']}"
        return f"seed {self.seed}"


@dataclasses.dataclass
class ComparisonResult:
    """What :func:`compare` returns: the ranked table (one row per head) and every run."""

    table: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    report_dir: Path | None
    bayes_nll: float | None

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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "head"


def replicates(
    dataset: Dataset, seeds: Sequence[int], splits: Sequence[int] | None
) -> list[Replicate]:
    """Seeds, or (for datasets with a ``split`` parameter) splits with seed = split index."""
    if splits is None:
        return [Replicate(seed, dataset) for seed in seeds]
    if "split" not in dataset.options:
        raise UsageError(
            f"dataset '{dataset.name}' has no 'split' parameter, so --splits does not apply"
        )
    made = []
    for split in splits:
        options = {**dataset.options, "split": split}
        made.append(Replicate(split, type(dataset)(**options)))
    return made


def compare(
    dataset: str | Dataset = "spiral",
    heads: Sequence[str | Head] = ("mlp", "mdn"),
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
) -> ComparisonResult:
    """Train every head on the same data for each replicate; rank them by mean test NLL.

    ``splits`` runs the listed splits of a dataset with a ``split`` parameter (``uci``) instead
    of ``seeds``. Returns the ranked table as data; with ``write`` also the report directory.
    """
    say = echo or (_silent if quiet else _stderr)
    if len(heads) < 1:
        raise UsageError("compare needs at least one --head")
    if len(set(seeds)) != len(seeds):
        raise UsageError("--seeds lists a seed twice")
    if splits is not None and len(set(splits)) != len(splits):
        raise UsageError("--splits lists a split twice")
    base_dataset = plugins.create("dataset", dataset)
    base_heads = [plugins.create("head", spec) for spec in heads]
    labels = head_labels(base_heads)
    overrides = {} if epochs is None else {"epochs": epochs}
    head_objects = [plugins.create("head", head, **overrides) for head in base_heads]
    sampler_ = plugins.create("sampler", sampler)
    reps = replicates(base_dataset, seeds, splits)
    report_dir = None
    if write:
        report_dir = files.prepare_output_dir(output or _default_dir(base_dataset), force)
    total = len(reps) * len(head_objects)
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    views = []
    interrupted = False
    for r_index, rep in enumerate(reps):
        if interrupted:
            break
        say(f"Loading dataset {rep.dataset.spec} ({rep.name})")
        data = rep.dataset.load(rep.seed)
        for h_index, (label, head) in enumerate(zip(labels, head_objects, strict=True)):
            step = r_index * len(head_objects) + h_index + 1
            say(f"[{step}/{total}] training {label} ({rep.name}) - elapsed {_clock(start)}")
            predictor, fitted = train_head(head, data, rep.seed, verbose=not quiet)
            run_dir = None
            if report_dir is not None:
                suffix = f"-{_slug(rep.name)}" if len(reps) > 1 else ""
                run_dir = report_dir / "runs" / f"{h_index + 1:02d}-{_slug(label)}{suffix}"
                run_dir.mkdir(parents=True)
            result = evaluate_and_save(
                data, predictor, fitted, rep.dataset, head, sampler_, rep.seed, run_dir
            )
            runs.append(_run_row(label, rep, result, report_dir))
            if r_index == 0:
                views.append((label, result))
            if fitted.status == "interrupted":  # Ctrl-C: keep this run, report what is done
                say(f"Interrupted: reporting the {len(runs)} run(s) finished so far")
                interrupted = True
                break
    table = rank(
        _aggregate([label for label in labels if any(r["head"] == label for r in runs)], runs)
    )
    bayes = [run["bayes_nll"] for run in runs if run["bayes_nll"] is not None]
    bayes_nll = float(np.mean(bayes)) if bayes else None
    say(f"Trained {len(runs)} of {total} models in {_clock(start)}")
    comparison = ComparisonResult(table, runs, report_dir, bayes_nll)
    if report_dir is not None:
        from probreg import report

        report.write(
            report_dir,
            comparison,
            dataset=base_dataset.spec,
            replicates=[rep.name for rep in reps],
            views=views,
            command=command or _command(base_dataset, base_heads, sampler_, seeds, splits, epochs),
            versions=_versions(head_objects, base_dataset, sampler_),
            extra_sections=_published_section(base_dataset, table),
        )
        say(f"Wrote {report_dir / 'report.html'}")
    return comparison


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
    reference = getattr(dataset, "reference", lambda: None)()
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
        "(higher log-likelihood is better). Published numbers use the same splits.</p>"
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
        "bayes_nll": metrics["bayes_nll"],
        "bayes_gap": metrics["bayes_gap"],
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "parameters": metrics["parameters"],
        "status": metrics["status"],
        "run_dir": None
        if result.run_dir is None or report_dir is None
        else str(result.run_dir.relative_to(report_dir)),
    }


def _aggregate(labels: Sequence[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label in labels:
        mine = [run for run in runs if run["head"] == label]
        row: dict[str, Any] = {"head": label, "spec": mine[0]["spec"], "replicates": len(mine)}
        for key in METRICS:
            row[key], row[f"{key}_se"] = mean_and_se([run["test"][key] for run in mine])
        gaps = [run["bayes_gap"] for run in mine]
        row["bayes_gap"], row["bayes_gap_se"] = (None, None) if None in gaps else mean_and_se(gaps)
        row["train_seconds"], row["train_seconds_se"] = mean_and_se(
            [run["train_seconds"] for run in mine]
        )
        row["parameters"] = mine[0]["parameters"]
        rows.append(row)
    return rows


def _versions(heads: Sequence[Head], dataset: Dataset, sampler: Sampler) -> dict[str, str]:
    found = versions()
    for instance in (*heads, dataset, sampler):
        source = plugins.source_of(instance)
        if not source.builtin:
            found[source.name] = source.version
    return found
