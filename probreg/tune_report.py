"""What :func:`probreg.tuning.tune` writes: the summary as data, ``trials.csv``, Optuna's
pictures and the HTML/Markdown report."""

from __future__ import annotations

import csv
import io
import math
import shlex
import warnings
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import files

if TYPE_CHECKING:  # pragma: no cover
    from probreg.tuning import _Search

STUDY_FILE = "study.db"
SUMMARY_FILE = "tune.json"
#: What a tune folder holds besides its marker: the study (SQLite, its side files and the lock
#: its workers take turns with, :mod:`probreg.tune_storage`) and the report. A tune folder grows
#: after its marker is written, so ``--force`` knows it by these names (:mod:`probreg.rundir`).
TUNE_FILES = frozenset(
    {
        *(STUDY_FILE + side for side in ("", "-journal", "-wal", "-shm")),
        Path(STUDY_FILE).with_suffix(".lock").name,
        SUMMARY_FILE,
        "trials.csv",
        "best_spec.txt",
        "report.md",
        "report.html",
        "history.png",
        "importance.png",
    }
)


def clock(seconds: float) -> str:
    """``seconds`` as ``12m05s`` (``?`` when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


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
        "stopped": search.stopped,
        "command": command,
        "versions": versions(),
        "table": [_trial_row(t) for t in trials],
    }


def chosen(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The spec to use: the best trial's, or the head's defaults where their baseline (run
    beside the trials, its values lying outside the space) beat every trial."""
    best, default = summary["best"], summary["default"]
    if best and default and default["value"] < best["value"]:
        return default
    return best


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
        files.write_text(tune_dir / "best_spec.txt", chosen(summary)["spec"] + "\n")
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
    from optuna.trial import TrialState

    from probreg import plots

    drawn: list[str] = []
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return drawn  # nothing to draw (and Optuna would log a warning)
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
        f"{clock(pruning['training_seconds'])} of training in all."
    )
    if best:
        sentence += f" Best validation {metric}: {best['value']:.4f} (trial {best['number']})"
        if summary["default"]:
            default = summary["default"]
            where = "baseline" if default["number"] is None else f"trial {default['number']}"
            behind = default["value"] - best["value"]
            sentence += f"; the head's defaults ({where}): {default['value']:.4f}, " + (
                f"{-behind:.4f} better: keep the defaults"
                if chosen(summary) is default
                else f"{behind:.4f} worse"
            )
        sentence += "."
    if pruning["pruned"]:
        sentence += (
            f" Pruning stopped {pruning['pruned']} trials early and saved about "
            f"{clock(pruning['saved_seconds'])} of training "
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
