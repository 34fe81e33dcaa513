"""What ``run`` and ``compare`` do after fitting when asked: recalibration, conformal
calibration, the reliability curve, and the run files that let ``predict`` use them.

- ``recalibrate``: fit :class:`probreg.calibration.PITMap` on the validation rows, score the
  recalibrated distribution on the test rows (``metrics.json``: ``recalibrated``), save the map
  as ``recalibration.json``; ``predict`` applies it.
- ``conformal``: hold out that share of the training rows before training (:func:`carve`),
  calibrate conformal intervals and regions on them at ``level``, report their test coverage
  and length (``metrics.json``: ``conformal``), and save the rows as ``conformal.npz`` so that
  ``predict --intervals conformal:level=...`` can calibrate at any level.
- every run: the reliability curve (observed against nominal coverage) in ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import io
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probreg import calibration, conformal
from probreg.errors import UsageError, shorten
from probreg.params import float_text

if TYPE_CHECKING:  # pragma: no cover
    from probreg.api import RunResult
    from probreg.datasets import Data
    from probreg.distributed import Layout
    from probreg.distributions import Distribution

RECALIBRATION = "recalibration.json"
CONFORMAL = "conformal.npz"
SUFFIX = " +recalibrated"
#: Conformal regions' lengths in ``metrics.json`` are averaged over this many test rows.
LENGTH_ROWS = 1000

#: Validation scores ``monitor`` may select on (``nll`` is the loss itself).
MONITORS = ("nll", "crps", "rmse", "calibration_error", "wis", "interval_score_90", "pinball")


@dataclasses.dataclass(frozen=True)
class Options:
    """After-fit calibration asked for by ``run`` or ``compare``."""

    recalibrate: bool = False
    conformal: float | None = None  # share of training rows held out for conformal calibration
    level: float = 0.9
    monitor: str = "nll"

    def __post_init__(self) -> None:
        if self.conformal is not None and not 0.0 < self.conformal < 1.0:
            raise UsageError(
                f"--conformal takes the share of training rows to hold out, strictly between "
                f"0 and 1, not {self.conformal}"
            )
        conformal.check_level(self.level)
        # normalised ("nll, rmse" -> "nll,rmse"): it is compared and written into commands
        object.__setattr__(self, "monitor", ",".join(monitor_names(self.monitor)))


def monitor_names(monitor: str) -> list[str]:
    """The scores ``monitor`` names (``nll,rmse`` -> ``["nll", "rmse"]``); the first picks the
    weights a run keeps, each further one reports the test scores at its own best epoch."""
    names = [name.strip() for name in str(monitor).split(",")]
    allowed = ", ".join(MONITORS)
    for name in names:
        if name not in MONITORS:
            raise UsageError(
                f"unknown monitor '{name}' in '{monitor}': choose from {allowed}, one or "
                "several joined by commas (e.g. nll,rmse)"
            )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(
            f"monitor '{monitor}' names '{twice[0]}' twice: give each score once (e.g. nll,rmse)"
        )
    return names


def monitor_key(name: str) -> str:
    """The training log key of a monitored score (``nll`` is Keras's own ``val_loss``)."""
    return "val_loss" if name == "nll" else f"val_{name}"


def monitor_name(key: str) -> str:
    """The score a training log key holds (the inverse of :func:`monitor_key`)."""
    return "nll" if key == "val_loss" else key.removeprefix("val_")


def validation_score(name: str, distribution: Distribution, y: np.ndarray) -> float:
    """One score of :data:`MONITORS` (lower is better); ``inf`` where it is not finite."""
    y = np.asarray(y, np.float64)
    if name == "nll":
        value = -np.mean(distribution.log_prob(y))
    elif name == "crps":
        value = np.mean(distribution.crps(y))
    elif name == "rmse":
        value = np.sqrt(np.mean((distribution.mean() - y) ** 2))
    elif name == "calibration_error":
        value = calibration.calibration_error(calibration.pit(distribution, y))
    else:
        value = calibration.scores(distribution, y)[name]
    value = float(value)
    return value if np.isfinite(value) else float("inf")


def monitor_callback(
    monitor: str, head: Any, x_val: np.ndarray, y_val: np.ndarray, y_scaling: Any
) -> tuple[tuple[str, ...], Any]:
    """``(keys, callback)`` for :func:`probreg.training.fit`: after every epoch the callback
    scores the head's predictive distribution on the validation rows (``x_val`` standardised,
    ``y_val`` in data units) and writes each score of ``monitor`` (one name, or several joined
    by commas) to ``logs["val_<name>"]``; ``nll`` is the validation loss Keras already logs."""
    import keras

    names = monitor_names(monitor)
    keys = tuple(monitor_key(name) for name in names)
    scored = [name for name in names if name != "nll"]
    output_dim = np.asarray(y_val).shape[1]

    class ValidationScore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None) -> None:
            if logs is None:
                return
            outputs = np.concatenate(
                [
                    keras.ops.convert_to_numpy(self.model(x_val[i : i + 8192], training=False))
                    for i in range(0, len(x_val), 8192)
                ]
            )
            if not np.isfinite(outputs).all():
                logs.update({monitor_key(name): float("inf") for name in scored})
                return
            distribution = head.distribution(outputs, output_dim).affine(
                y_scaling.mean, y_scaling.scale
            )
            for name in scored:
                logs[monitor_key(name)] = validation_score(name, distribution, y_val)

    return keys, ValidationScore()


def selected_scores(predictor: Any, fitted: Any, data: Data) -> dict[str, Any]:
    """Test scores at the best epoch of each further monitored score (``--monitor nll,rmse``:
    ``{"rmse": {"best_epoch": ..., "test": {...}}}``). Each checkpoint goes through the head's
    ``after_fit`` as the kept weights did; the kept weights (and their ``after_fit``) come back
    after."""
    from probreg.metrics import evaluate

    if not fitted.checkpoints:
        return {}
    model = predictor.model
    kept = model.get_weights()
    x_val = predictor.x_scaling.transform(data.x_val)
    y_val = predictor.y_scaling.transform(data.y_val)
    selected = {}
    try:
        for key, (epoch, weights) in fitted.checkpoints.items():
            model.set_weights(weights)
            predictor.head.after_fit(model, x_val, y_val)  # as after training
            distribution = predictor.distribution(data.x_test)
            selected[monitor_name(key)] = {
                "best_epoch": epoch,
                "test": evaluate(distribution, data.y_test),
            }
    finally:
        model.set_weights(kept)
        predictor.head.after_fit(model, x_val, y_val)
    return selected


def check_layout(options: Options, layout: Layout | None) -> None:
    """Input errors of a distributed run, before any data or folder: a score other than the
    NLL needs every validation row, and each ``--distributed`` process has only its own."""
    if layout is not None and layout.distributed and options.monitor != "nll":
        raise UsageError(
            f"--monitor {options.monitor} needs a single process (--distributed "
            "processes each score only their own validation rows); use --monitor nll"
        )


def check(options: Options | None, data: Data) -> None:
    """Input errors before any training: recalibration needs 1-D targets."""
    if options is not None and options.recalibrate and data.output_dim != 1:
        raise UsageError(
            f"--recalibrate works on 1-D targets only; this dataset has {data.output_dim}"
        )


def prepare(options: Options | None, data: Data, seed: int) -> tuple[Data, Any]:
    """The data to train on, and the conformal calibration rows (or ``None``)."""
    if options is None or options.conformal is None:
        return data, None
    trimmed, x_cal, y_cal = conformal.carve(data, options.conformal, seed)
    return trimmed, (x_cal, y_cal)


class RecalibratedPredictor:
    """A :class:`probreg.runs.Predictor` whose distributions go through a PIT map."""

    def __init__(self, predictor: Any, pit_map: calibration.PITMap) -> None:
        self.predictor, self.map = predictor, pit_map

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def distribution(self, x: np.ndarray) -> Distribution:
        return calibration.Recalibrated(self.predictor.distribution(x), self.map)

    def distribution_of(self, outputs: np.ndarray) -> Distribution:
        return calibration.Recalibrated(self.predictor.distribution_of(outputs), self.map)


def after_fit(
    options: Options | None, result: RunResult, cal_rows: Any, run_dir: Path | None
) -> None:
    """Add the reliability curve, recalibration and conformal results to ``result.metrics``
    and write their files into ``run_dir`` (before ``metrics.json``, which comes last)."""
    from probreg import files
    from probreg.metrics import evaluate

    data, metrics = result.data, result.metrics
    metrics["reliability"] = calibration.reliability(result.distribution, data.y_test)
    if options is None:
        return
    if options.recalibrate:
        pit_map = calibration.fit_map(result.predictor.distribution(data.x_val), data.y_val)
        recal = calibration.Recalibrated(result.distribution, pit_map)
        metrics["recalibrated"] = {
            "test": evaluate(recal, data.y_test),
            "reliability": calibration.reliability(recal, data.y_test),
            "pieces": len(pit_map.knots) - 1,
            "validation_rows": len(data.x_val),
        }
        result.recalibrated = dataclasses.replace(
            result,
            distribution=recal,
            samples=recal.sample(np.random.default_rng(metrics["seed"]), 1)[0],
            predictor=RecalibratedPredictor(result.predictor, pit_map),
        )
        if run_dir is not None:
            files.write_json(Path(run_dir) / RECALIBRATION, pit_map.to_dict())
    if cal_rows is not None:
        x_cal, y_cal = cal_rows
        metrics["conformal"] = conformal_summary(
            result.predictor.distribution(x_cal),
            y_cal,
            result.distribution,
            data.y_test,
            options.level,
        )
        if run_dir is not None:
            files.write_with(
                Path(run_dir) / CONFORMAL,
                lambda path: _save_npz(path, x_cal=x_cal, y_cal=y_cal),
            )


def _rows(distribution: Distribution, rows: np.ndarray) -> Distribution:
    """Some rows of a distribution: by indexing where it supports it, else all rows."""
    from probreg.distributions import AffineTransformed, EqualMixture
    from probreg.distributions import Distribution as Distribution_

    if len(rows) == distribution.batch_size:
        return distribution
    if isinstance(distribution, AffineTransformed):
        inner = _rows(distribution.base, rows)
        if inner.batch_size == len(rows):
            return AffineTransformed(inner, distribution.shift, distribution.scale)
        return distribution
    if isinstance(distribution, EqualMixture):
        members = [_rows(m, rows) for m in distribution.members]
        if all(m.batch_size == len(rows) for m in members):
            return EqualMixture(members)
        return distribution
    if hasattr(distribution, "__getitem__"):
        try:
            picked = distribution[rows]
        except Exception:  # a plugin's indexing may not take arrays
            return distribution
        if isinstance(picked, Distribution_) and picked.batch_size == len(rows):
            return picked
    return distribution


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    Path(path).write_bytes(buffer.getvalue())


def conformal_summary(
    cal: Distribution, y_cal: np.ndarray, test: Distribution, y_test: np.ndarray, level: float
) -> dict[str, Any]:
    """Test coverage and mean length of the model's central interval, the conformal interval
    and (1-D) the conformal region, all at ``level``."""
    y_cal, y_test = np.asarray(y_cal, float), np.asarray(y_test, float)
    low, high = conformal.model_interval(test, level)
    out: dict[str, Any] = {
        "level": level,
        "rows": len(y_cal),
        "model": {
            "coverage": float(np.mean((y_test >= low) & (y_test <= high))),
            "length": float(np.mean(high - low)),
        },
    }
    intervals = conformal.IntervalCalibrator.fit(cal, y_cal, level)
    low, high = intervals.interval(test)
    out["interval"] = {
        "coverage": float(np.mean(intervals.covers(test, y_test))),
        "length": float(np.mean(high - low)),
        "margin": intervals.margin.tolist(),
    }
    if test.event_dim == 1:
        regions = conformal.RegionCalibrator.fit(cal, y_cal, level)
        # Lengths on up to LENGTH_ROWS evenly spaced test rows (the grid costs time);
        # coverage on every row (exact).
        rows = np.unique(np.linspace(0, len(y_test) - 1, min(len(y_test), LENGTH_ROWS)).astype(int))
        pieces = regions.regions(_rows(test, rows), grid_points=1000)
        out["region"] = {
            "coverage": float(np.mean(regions.covers(test, y_test))),
            "length": float(np.mean(conformal.region_length(pieces))),
            "pieces_mean": float(np.mean([len(p) for p in pieces])),
            "pieces_max": int(max(len(p) for p in pieces)),
            "threshold": regions.threshold,
        }
    return out


# --- predict ------------------------------------------------------------------------------


def load_map(run_dir: str | Path) -> calibration.PITMap | None:
    """The run's recalibration map, if it was trained with ``--recalibrate``."""
    import json

    path = Path(run_dir) / RECALIBRATION
    if not path.is_file():
        return None
    try:
        return calibration.PITMap.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, UsageError, KeyError, TypeError) as error:
        raise UsageError(f"'{path}' is unreadable: {shorten(error)}") from None


def load_calibration_rows(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(run_dir) / CONFORMAL
    if not path.is_file():
        raise UsageError(
            f"run '{run_dir}' has no conformal calibration rows ({CONFORMAL}); train it with "
            "--conformal 0.2 (the share of training rows to hold out)"
        )
    try:
        with np.load(path, allow_pickle=False) as saved:
            return np.asarray(saved["x_cal"], float), np.asarray(saved["y_cal"], float)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"'{path}' is unreadable: {error}") from None


def interval_columns(
    run: Any, distribution: Distribution, spec: str, y_names: list[str]
) -> list[tuple[str, np.ndarray]]:
    """``predict --intervals conformal:level=L[,kind=interval|region]`` columns.

    Intervals: ``<y>_lower`` and ``<y>_upper``. Regions (1-D): ``<y>_region_<k>_lower`` and
    ``<y>_region_<k>_upper`` for ``k = 1 .. K`` (K: the most pieces of any row), pieces in
    increasing order, NaN where a row has fewer pieces.

    ``distribution`` is the model's own (not recalibrated): the guarantee holds for any model,
    and a recalibration map's piecewise slope would cut regions into spurious pieces.
    """
    kind, level = conformal.parse(spec)
    x_cal, y_cal = load_calibration_rows(run.path)
    cal = run.predictor.distribution(x_cal)
    if kind == "interval":
        low, high = conformal.IntervalCalibrator.fit(cal, y_cal, level).interval(distribution)
        columns = []
        for j, y in enumerate(y_names):
            columns += [(f"{y}_lower", low[:, j]), (f"{y}_upper", high[:, j])]
        return columns
    table = conformal.region_table(
        conformal.RegionCalibrator.fit(cal, y_cal, level).regions(distribution)
    )
    columns = []
    for k in range(table.shape[1]):
        columns += [
            (f"{y_names[0]}_region_{k + 1}_lower", table[:, k, 0]),
            (f"{y_names[0]}_region_{k + 1}_upper", table[:, k, 1]),
        ]
    return columns


def score_run(run_dir: str | Path, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every score of ``metrics.json`` (NLL, CRPS, RMSE, coverage and the calibration scores)
    for a saved run at new rows ``x``, ``y`` in data units (recalibrated if the run was)."""
    from probreg.metrics import evaluate
    from probreg.runs import load_run

    run = load_run(run_dir)
    distribution = calibration.recalibrate(
        run.distribution(np.asarray(x, float)), load_map(run_dir)
    )
    return evaluate(distribution, np.asarray(y, float).reshape(distribution.batch_size, -1))


# --- compare ------------------------------------------------------------------------------


def expand(
    runs: list[dict[str, Any]], views: list[tuple[str, Any]], labels: list[str]
) -> tuple[list[dict[str, Any]], list[tuple[str, Any]], list[str]]:
    """Add a ``<label> +recalibrated`` head beside every recalibrated one (same model)."""
    extra_runs = []
    for run in runs:
        after = run.get("recalibrated")
        if not after or run["status"] == "diverged":
            continue
        row = dict(
            run, head=run["head"] + SUFFIX, test=after["test"], recalibrated=None, conformal=None
        )
        if run.get("bayes_nll") is not None:
            row["bayes_gap"] = after["test"]["nll"] - run["bayes_nll"]
        extra_runs.append(row)
    if not extra_runs:
        return runs, views, labels
    new_views = []
    for label, result in views:
        new_views.append((label, result))
        recal = getattr(result, "recalibrated", None)
        if recal is not None:
            new_views.append((label + SUFFIX, recal))
    new_labels = []
    for label in labels:
        new_labels.append(label)
        if any(row["head"] == label + SUFFIX for row in extra_runs):
            new_labels.append(label + SUFFIX)
    return runs + extra_runs, new_views, new_labels


def command_flags(options: Options | None) -> str:
    """The command-line options that reproduce ``options`` (with a leading space), or ``""``."""
    if options is None:
        return ""
    words = []
    if options.recalibrate:
        words.append("--recalibrate")
    if options.conformal is not None:
        words += ["--conformal", float_text(options.conformal)]
    if options.monitor != "nll":
        words += ["--monitor", options.monitor]
    return "".join(f" {word}" for word in words)


def report_sections(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """A ``(title, html, markdown)`` section with conformal coverage and lengths per head."""
    rows = [run for run in runs if run.get("conformal")]
    if not rows:
        return []
    header = (
        "head",
        "replicate",
        "rows",
        "model 90% cover",
        "model length",
        "interval cover",
        "interval length",
        "region cover",
        "region length",
        "pieces (max)",
    )
    table = []
    for run in rows:
        c = run["conformal"]
        region = c.get("region")
        table.append(
            (
                run["head"],
                run["replicate"],
                str(c["rows"]),
                f"{c['model']['coverage']:.3f}",
                f"{c['model']['length']:.4f}",
                f"{c['interval']['coverage']:.3f}",
                f"{c['interval']['length']:.4f}",
                "–" if region is None else f"{region['coverage']:.3f}",
                "–" if region is None else f"{region['length']:.4f}",
                "–" if region is None else f"{region['pieces_mean']:.2f} ({region['pieces_max']})",
            )
        )
    level = rows[0]["conformal"]["level"]
    note = (
        f"Level {level:g}. The model's own central interval, the split-conformal interval "
        "(CQR) and the conformal highest-density region (a union of intervals), calibrated "
        "on training rows held out before training; coverage and mean total length on the "
        "test rows."
    )
    markdown = "\n".join(
        [note, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(row) + " |" for row in table]
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table
    )
    html = (
        f'<p class="note">{escape(note)}</p><table id="conformal"><thead><tr>'
        + "".join(f"<th>{escape(h)}</th>" for h in header)
        + f"</tr></thead><tbody>{body}</tbody></table>"
    )
    return [("Conformal intervals and regions", html, markdown)]


def head_width(table: list[dict]) -> int:
    """The head column's width in ``compare``'s terminal tables: 28, or the longest label + 2."""
    return max([28, *(len(row["head"]) + 2 for row in table)])


def ranking_lines(result: Any) -> list[str]:
    """Lines for the ``compare`` summary: the scores at further monitored scores' best epochs
    (``--monitor nll,rmse``), each head's calibration scores and, where asked, its conformal
    sets (coverage and mean length on the test rows)."""
    selected = [
        f"    {row['head']} at its best validation {name} epoch: {_point_scores(at)}"
        for row in result.table
        for name, at in (row.get("selected") or {}).items()
    ]
    selected = ["", *selected] if selected else []
    keys = ("calibration_error", "sharpness_90", "interval_score_90", "wis", "pinball")
    if not all(key in row for row in result.table for key in keys):
        return selected
    width = head_width(result.table)
    lines = [
        *selected,
        "",
        f"    {'head':<{width}}{'cal.err':>9}{'width90':>9}{'IS90':>9}{'WIS':>9}{'pinball':>9}",
    ]
    for row in result.table:
        lines.append(f"    {row['head']:<{width}}" + "".join(f"{row[key]:>9.4f}" for key in keys))
    sets = [run for run in result.runs if run.get("conformal")]
    if sets:
        level = sets[0]["conformal"]["level"]
        lines += ["", f"    conformal {level:g} on the test rows: coverage / mean length"]
        for run in sets:
            c = run["conformal"]
            text = (
                f"model {c['model']['coverage']:.3f} / {c['model']['length']:.4f}, "
                f"interval {c['interval']['coverage']:.3f} / {c['interval']['length']:.4f}"
            )
            if "region" in c:
                text += f", region {c['region']['coverage']:.3f} / {c['region']['length']:.4f}"
            lines.append(f"    {run['head']} ({run['replicate']}): {text}")
    return lines


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """Lines for the ``run`` summary: calibration scores, before and after recalibration,
    and the conformal sets."""
    test = metrics.get("test") or {}
    after = (metrics.get("recalibrated") or {}).get("test")
    lines = []
    for key in calibration.SCORES:
        if key not in test:
            continue
        line = f"  {key:<18}{test[key]:>10.4f}"
        if after is not None:
            line += f"   recalibrated {after[key]:.4f}"
        lines.append(line)
    if after is not None:
        lines.append(
            f"  {'recalibrated':<18}nll {after['nll']:.4f}, crps {after['crps']:.4f}, "
            f"coverage_90 {after['coverage_90']:.3f}"
        )
    c = metrics.get("conformal")
    if c:
        parts = [
            f"model {c['model']['coverage']:.3f}/{c['model']['length']:.4f}",
            f"interval {c['interval']['coverage']:.3f}/{c['interval']['length']:.4f}",
        ]
        if "region" in c:
            parts.append(
                f"region {c['region']['coverage']:.3f}/{c['region']['length']:.4f} "
                f"(at most {c['region']['pieces_max']} piece"
                f"{'' if c['region']['pieces_max'] == 1 else 's'})"
            )
        lines.append(f"  conformal {c['level']:g} (coverage/length): " + ", ".join(parts))
    for name, at in (metrics.get("selected") or {}).items():
        scores = _point_scores(at["test"])
        lines.append(f"  at best val {name:<7}epoch {at['best_epoch']}: {scores}")
    return lines


def _point_scores(test: dict[str, float]) -> str:
    """``nll …, crps …, rmse …``: the summary of the scores at another score's best epoch."""
    return f"nll {test['nll']:.4f}, crps {test['crps']:.4f}, rmse {test['rmse']:.4f}"
