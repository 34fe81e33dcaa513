"""The comparison report: ``report.html`` (self-contained, images inline), ``report.md``,
``metrics.json`` and the PNGs, all written atomically."""

from __future__ import annotations

import base64
import html
import io
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from probreg import calibration, files, plots, rundir
from probreg.metrics import COLUMNS, MULTIVARIATE, SCORE_NOTES


class Ranking(Protocol):
    """What a report shows (:class:`probreg.comparison.ComparisonResult` is one)."""

    table: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    bayes_nll: float | None


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { padding: 0.35em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td.head, th.head { text-align: left; font-family: monospace; }
td.best { font-weight: bold; background: #e8f5e9; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code, pre { background: #f6f8fa; padding: 0.15em 0.3em; border-radius: 3px; }
pre { padding: 0.7em; overflow-x: auto; }
.wide { overflow-x: auto; }
.note { color: #555; }
"""

CAPTIONS = {
    "samples.png": "Ground truth, then one draw per test input from each head. The red line is "
    "each head's predictive mean: all an MSE network can say.",
    "density.png": "Each head's conditional density p(y | x) on a grid, on one colour scale for "
    "all heads, test data in white.",
    "intervals.png": "Observed test values against each head's 90% predictive interval.",
    "joint.png": "Two outputs: draws for three test inputs (one colour each) in the output plane; "
    "the first panel shows observed outputs near those inputs.",
    "calibration.png": "PIT histograms: flat is calibrated; U-shaped means overconfident; a hump "
    "means underconfident.",
    "reliability.png": "Observed against nominal coverage of central intervals, one line per "
    "head: on the diagonal is calibrated, below it overconfident, above it underconfident.",
    "training.png": "Each head's training (thin) and validation (thick) loss per epoch, in a panel "
    "of its own (heads may train on different losses), and the learning rate.",
}


def _format(key: str, value: Any, se: Any = None) -> str:
    if value is None:
        return "–"
    if key == "parameters":
        return f"{value:,}"
    text = f"{value:.3f}" if key in ("coverage_90", "train_seconds") else f"{value:.4f}"
    if key == "train_seconds":
        text = f"{value:.1f}"
    if se is not None:
        text += f" ± {se:.1g}" if key == "train_seconds" else f" ± {se:.4f}"
    return text


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _pit_thumbnail(view: plots.HeadView, y) -> str:
    """A small PIT histogram as an inline PNG for the ranking table."""
    figure = plots.pit_thumbnail(calibration.pit(view.distribution, y).ravel())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plots.plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _summary_sentence(result: Ranking) -> str:
    best = result.table[0]
    text = f"Best by test NLL: {best['head']} ({best['nll']:.4f} nats per point)"
    if result.bayes_nll is not None and best.get("bayes_gap") is not None:
        text += f", {best['bayes_gap']:.4f} nats from the Bayes limit ({result.bayes_nll:.4f})"
    if len(result.table) > 1:
        runner = result.table[1]
        text += f"; next: {runner['head']} ({runner['nll']:.4f})"
    text += "."
    if getattr(result, "interrupted", False):
        text = (
            f"Interrupted (Ctrl-C or SIGTERM): this report holds the {len(result.runs)} run(s) "
            f"that finished or were cut short, and no others. {text}"
        )
    return text


def write(
    out_dir: Path,
    result: Ranking,
    *,
    dataset: str,
    replicates: Sequence[str],
    views: Sequence[tuple[str, Any]],
    command: str,
    versions: dict[str, str],
    extra_sections: Sequence[tuple[str, str, str]] = (),
) -> None:
    """Write every report file into ``out_dir``.

    ``views`` pairs each head's label with its first replicate's run result (for pictures);
    ``extra_sections`` are ``(title, html, markdown)`` blocks appended to both reports.
    """
    first = views[0][1]
    data = first.data
    head_views = [
        plots.HeadView(
            label, run.distribution, run.samples, run.history, run.predictor.distribution
        )
        for label, run in views
    ]
    pictures = plots.draw_all(
        out_dir, data.x_test, data.y_test, head_views, data.y_names, data.x_names
    )
    thumbnails = {view.label: _pit_thumbnail(view, data.y_test) for view in head_views}
    metrics = {
        "dataset": dataset,
        "status": "interrupted" if getattr(result, "interrupted", False) else "completed",
        "replicates": list(replicates),
        "bayes_nll": result.bayes_nll,
        "heads": result.table,
        "runs": result.runs,
        "command": command,
        "versions": versions,
        "pictures": pictures,
    }
    rundir.write_metrics(out_dir, metrics)
    files.write_text(
        out_dir / "report.md",
        _markdown(result, dataset, replicates, pictures, command, versions, extra_sections),
    )
    files.write_text(
        out_dir / "report.html",
        _html(
            result,
            dataset,
            replicates,
            pictures,
            thumbnails,
            out_dir,
            command,
            versions,
            extra_sections,
        ),
    )


def _columns(result: Ranking) -> tuple[tuple[str, str, Any], ...]:
    """The ranking's columns: the multivariate scores only where some head has them."""
    return tuple(
        column
        for column in COLUMNS
        if column[0] not in MULTIVARIATE or any(column[0] in row for row in result.table)
    )


def _score_notes(result: Ranking) -> list[str]:
    """One line on what each score in the table rewards."""
    keys = [key for key, _, _ in _columns(result) if key in SCORE_NOTES]
    return [SCORE_NOTES[key][0].upper() + SCORE_NOTES[key][1:] + "." for key in keys]


def _table_cells(row: dict[str, Any], columns=COLUMNS) -> list[tuple[str, str, bool]]:
    cells = []
    for key, _, _ in columns:
        text = _format(key, row.get(key), row.get(f"{key}_se"))
        if key == "nll" and row.get("likelihood") == "mass":
            text += " (log-mass)"  # integer targets under a discrete family
        cells.append((key, text, key in row["best"]))
    return cells


def _pictures_note(result: Ranking, replicates: Sequence[str]) -> str:
    """Which replicate the pictures show, when there are several (the scores average them)."""
    if len(replicates) == 1:
        return ""
    shown = next((run["replicate"] for run in result.runs if run["status"] != "diverged"), None)
    return f"The pictures show one replicate, {shown}; the scores above average all of them."


def _replicate_note(replicates: Sequence[str]) -> str:
    if len(replicates) == 1:
        return f"One replicate ({replicates[0]})."
    return f"Mean ± standard error over {len(replicates)} replicates ({', '.join(replicates)})."


def _html(
    result: Ranking,
    dataset: str,
    replicates: Sequence[str],
    pictures: Sequence[str],
    thumbnails: dict[str, str],
    out_dir: Path,
    command: str,
    versions: dict[str, str],
    extra_sections: Sequence[tuple[str, str, str]],
) -> str:
    esc = html.escape
    header = "".join(
        f"<th>{esc(title)}</th>" + ("<th>calibration (PIT)</th>" if key == "coverage_90" else "")
        for key, title, _ in _columns(result)
    )
    rows = []
    for row in result.table:
        cells = []
        for key, text, best in _table_cells(row, _columns(result)):
            cls = ' class="best"' if best else ""
            cells.append(f"<td{cls}>{esc(text)}</td>")
            if key == "coverage_90":
                cells.append(
                    f'<td><img src="{thumbnails[row["head"]]}" alt="PIT histogram of '
                    f'{esc(row["head"])}" width="120"></td>'
                )
        rows.append(
            f'<tr><td>{row["rank"]}</td><td class="head">{esc(row["head"])}</td>'
            f"{''.join(cells)}</tr>"
        )
    figures = "".join(
        f'<figure><img src="{_png_data_uri(out_dir / name)}" alt="{esc(name)}">'
        f"<figcaption>{esc(CAPTIONS.get(name, name))}</figcaption></figure>"
        for name in pictures
    )
    runs = "".join(
        f'<tr><td class="head">{esc(run["head"])}</td><td>{esc(run["replicate"])}</td>'
        + "".join(f"<td>{esc(cell)}</td>" for cell in _run_cells(run))
        + f'<td class="head">{_folder_link(run["run_dir"])}</td></tr>'
        for run in result.runs
    )
    extra = "".join(f"<h2>{esc(title)}</h2>{body}" for title, body, _ in extra_sections)
    version_items = ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>probreg compare: {esc(dataset)}</title><style>{CSS}</style></head>
<body>
<h1>probreg compare: <code>{esc(dataset)}</code></h1>
<p>{esc(_summary_sentence(result))}</p>
<h2>Ranking</h2>
<p class="note">Test scores, lower is better except coverage (best: closest to 0.90). Best value in
each column in bold. {esc(_replicate_note(replicates))}</p>
<div class="wide"><table id="ranking"><thead><tr><th>#</th><th class="head">head</th>{header}
</tr></thead><tbody>{"".join(rows)}</tbody></table></div>
<ul class="note">{"".join(f"<li>{esc(line)}</li>" for line in _score_notes(result))}</ul>
<h2>Pictures</h2>{_paragraph(_pictures_note(result, replicates))}{figures}
{extra}
<h2>Every run</h2>
<div class="wide"><table id="runs"><thead><tr><th class="head">head</th><th>replicate</th>
<th>NLL</th><th>CRPS</th><th>RMSE</th><th>coverage 90%</th><th>epochs</th><th>train s</th>
<th>status</th><th class="head">run folder</th></tr></thead><tbody>{runs}</tbody></table></div>
<h2>Reproduce</h2><pre>{esc(command)}</pre>
<p class="note">Versions: {version_items}.</p>
</body></html>
"""


def _folder_link(run_dir: str | None) -> str:
    """A run folder, relative to the report, as a link (the report's own folder holds it)."""
    if not run_dir:
        return ""
    quoted = html.escape(urllib.parse.quote(f"{Path(run_dir).as_posix()}/"), quote=True)
    return f'<a href="{quoted}">{html.escape(run_dir)}</a>'


def _paragraph(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def _run_cells(run: dict[str, Any]) -> list[str]:
    """NLL, CRPS, RMSE, coverage, epochs, seconds and status of one run (dashes if it
    diverged)."""
    test = run.get("test")
    if test is None:
        return ["–"] * 6 + [run["status"]]
    return [
        f"{test['nll']:.4f}",
        f"{test['crps']:.4f}",
        f"{test['rmse']:.4f}",
        f"{test['coverage_90']:.3f}",
        str(run["epochs"]),
        f"{run['train_seconds']:.1f}",
        run["status"],
    ]


def _markdown(
    result: Ranking,
    dataset: str,
    replicates: Sequence[str],
    pictures: Sequence[str],
    command: str,
    versions: dict[str, str],
    extra_sections: Sequence[tuple[str, str, str]],
) -> str:
    columns = _columns(result)
    header = "| # | head | " + " | ".join(title for _, title, _ in columns) + " |"
    lines = [
        f"# probreg compare: `{dataset}`",
        "",
        _summary_sentence(result),
        "",
        f"Test scores; lower is better except coverage (best: closest to 0.90); best in bold. "
        f"{_replicate_note(replicates)}",
        "",
        header,
        "|" + "---|" * (len(columns) + 2),
    ]
    for row in result.table:
        cells = [f"**{text}**" if best else text for _, text, best in _table_cells(row, columns)]
        lines.append(f"| {row['rank']} | `{row['head']}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {line}" for line in _score_notes(result)] + [""]
    note = _pictures_note(result, replicates)
    lines += [note, ""] if note else []
    for name in pictures:
        lines += [f"![{name}]({name})", "", f"*{CAPTIONS.get(name, name)}*", ""]
    for title, _, body in extra_sections:
        lines += [f"## {title}", "", body, ""]
    lines += ["## Reproduce", "", "```", command, "```", ""]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return "\n".join(lines) + "\n"
