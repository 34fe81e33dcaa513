"""The ``probreg`` command: a thin layer over :mod:`probreg.api`.

Keep module-level imports light: ``probreg --help`` and ``probreg list`` must not start
TensorFlow, so commands import the heavy parts when they run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from typing import Any, NoReturn

import click

from probreg import __version__, interrupts
from probreg.errors import ProbregError, out_of_memory, shorten

SPEC_HELP = "NAME or NAME:key=value,...; see `probreg list`"
MONITORS = ("nll", "crps", "rmse", "calibration_error", "wis", "interval_score_90", "pinball")

# Options that several commands share.
DATASET = click.option(
    "--dataset", "-d", default="spiral", show_default=True, help=f"Dataset spec: {SPEC_HELP}."
)
SAMPLER = click.option(
    "--sampler", "-s", default="ancestral", show_default=True, help=f"Sampler spec: {SPEC_HELP}."
)
EPOCHS = click.option(
    "--epochs", type=click.IntRange(min=1), help="Most epochs (overrides the head's own)."
)
MAX_SEED = 2**32 - 1  # what numpy and Keras accept
SEED = click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Fixes data, initialisation and sampling.",
)
FORCE = click.option("--force", is_flag=True, help="Replace an existing output directory.")
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress output; only the results.")


class OutputPath(click.Path):
    """An output path; an empty one (``-o "$UNSET"``) is refused rather than read as "not
    given", which would write somewhere else."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path; give one, or leave the option out", param, ctx)
        return super().convert(value, param, ctx)


class PositiveSeconds(click.FloatRange):
    """Seconds above 0; click's float range lets ``nan`` through, so it is refused here."""

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        number = super().convert(value, param, ctx)
        if number != number:  # nan
            self.fail("nan is not a number of seconds; give one above 0", param, ctx)
        return number


RECALIBRATE = click.option(
    "--recalibrate",
    is_flag=True,
    help="Fit an isotonic map of the PIT on the validation rows; report scores before and "
    "after, and save the map for predict.",
)
CONFORMAL = click.option(
    "--conformal",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Hold out this share of the training rows to calibrate conformal intervals and "
    "regions (e.g. 0.2); report them and save the rows for predict --intervals.",
)


def _check_monitor(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from probreg.errors import UsageError
    from probreg.postfit import monitor_names  # numpy only, no TensorFlow

    try:
        return ",".join(monitor_names(value))
    except UsageError as error:
        raise click.BadParameter(str(error)) from None


MONITOR = click.option(
    "--monitor",
    default="nll",
    show_default=True,
    callback=_check_monitor,
    help=f"Validation score for early stopping and the best epoch: {', '.join(MONITORS)}. "
    "Several, e.g. nll,rmse: the first picks the kept weights, training runs until none "
    "improves, and metrics.json adds the test scores at each other score's best epoch.",
)


#: The Python keyword the API's messages add after a flag ("use --force (force=True)"):
#: on the command line, the flag alone.
_KEYWORD_HINT = re.compile(r" \((?:force=True|output=|study=|storage=)\)")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {shorten(_KEYWORD_HINT.sub('', message), 2000)}", err=True)
    sys.exit(code)


def _drop_stdout() -> None:
    """Send what is left in stdout's buffer to /dev/null (the reader is gone or the disk is
    full), so Python's exit does not print an 'Exception ignored' traceback."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _os_error(error: OSError) -> NoReturn:
    """A failed read or write as one line; a closed pipe on stdout is a quiet exit."""
    _drop_stdout()
    if error.errno == errno.EPIPE:
        sys.exit(141)  # like a process killed by SIGPIPE, as `| head` expects
    where = f" '{shorten(error.filename, 200)}'" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        _fail(
            f"no space left on the device{where or ' (writing output)'}; nothing half-written "
            "was kept",
            1,
        )
    _fail(f"{error.strerror or error}{where}", 1)


#: Set by the CLI when it sends native stderr to /dev/null; its worker processes follow it.
MUTED_NATIVE = "PROBREG_MUTED_NATIVE_STDERR"


def mute_native_stderr() -> None:
    """Keep Python's stderr on the terminal, but send what native code writes to file
    descriptor 2 (TensorFlow's and XLA's C++ start-up notices) to /dev/null."""
    try:
        python_side = os.dup(2)
        sys.stderr.flush()
        sys.stderr = os.fdopen(python_side, "w", buffering=1, errors="backslashreplace")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:  # no usable stderr: leave things as they are
        return
    import faulthandler

    if faulthandler.is_enabled():  # PYTHONFAULTHANDLER: its tracebacks stay visible
        faulthandler.enable(file=sys.stderr)


#: click 8.2+ raises this for a bare group; older click prints the help itself.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected failure becomes one ``Error:`` line and a non-zero exit code."""
    # TensorFlow's C++ start-up chatter (CUDA probing, oneDNN and XLA notices) hides the useful
    # output. Set TF_CPP_MIN_LOG_LEVEL yourself to keep native logs (TensorFlow prints some
    # start-up lines even at 3). A caller's own process (``main([...])``) keeps its descriptors.
    if argv is None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ[MUTED_NATIVE] = "1"  # so tune's worker processes mute theirs too
        mute_native_stderr()
    interrupts.install()
    try:
        result = cli.main(args=argv, prog_name="probreg", standalone_mode=False)
        sys.stdout.flush()
    except ProbregError as error:
        _fail(str(error), error.exit_code)
    except _NO_ARGS_IS_HELP as error:  # bare `probreg`: the help, as is
        click.echo(error.ctx.get_help() if error.ctx else error.format_message(), err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        interrupts.take_pending()  # acted on: a later main([...]) in this process trains
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except SystemExit as error:  # commands return their code: this came from plugin code
        if type(sys.stdout).__name__.lstrip("_") == "PacifyFlushWrapper":  # click: closed stdout
            sys.stdout = getattr(sys.stdout, "wrapped", sys.stdout)  # for a later main([...])
            sys.stderr = getattr(sys.stderr, "wrapped", sys.stderr)
            _drop_stdout()
            sys.exit(141)
        _fail(
            f"plugin code called sys.exit({shorten(error.code, 40)}) while the command ran; "
            "the command did not finish",
            1,
        )
    except OSError as error:
        _os_error(error)
    except Exception as error:  # JAX's and TensorFlow's out-of-memory errors are no MemoryError
        if not out_of_memory(error):
            raise
        _fail("out of memory; try a smaller dataset, model or batch_size", 1)
    sys.exit(result if isinstance(result, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="probreg")
def cli() -> None:
    """Probabilistic regression with plugins: train a head, score its predictive
    distribution on held-out data and draw it.

    \b
    Quick start:
      probreg run --dataset spiral --head mdn
      probreg compare --dataset spiral --head mlp --head mdn
      probreg list
    """


def _summary(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    lines = [
        f"{metrics['dataset']} | {metrics['head']} | seed {metrics['seed']} | "
        f"{metrics['epochs']} epoch{'' if metrics['epochs'] == 1 else 's'} "
        f"(best {metrics['best_epoch']}) in {metrics['train_seconds']:.1f} s | {metrics['status']}",
        f"  {'test nll':<18}{test['nll']:>10.4f}",
    ]
    if metrics.get("likelihood") == "mass":
        lines[-1] += "   (a log-mass: integer targets, discrete family)"
    if metrics.get("bayes_nll") is not None:
        lines[-1] += f"   (Bayes limit {metrics['bayes_nll']:.4f}, gap {metrics['bayes_gap']:.4f})"
    lines += [
        f"  {'test crps':<18}{test['crps']:>10.4f}",
        f"  {'test rmse':<18}{test['rmse']:>10.4f}",
        f"  {'coverage_90':<18}{test['coverage_90']:>10.3f}",
    ]
    for key, label in (("energy", "energy score"), ("variogram", "variogram")):
        if key in test:
            lines.append(f"  {label:<18}{test[key]:>10.4f}")
    from probreg.postfit import summary_lines

    lines += summary_lines(metrics)
    return "\n".join(lines)


def _given(name: str) -> bool:
    """Whether the current command's option ``name`` was typed on the command line."""
    return (
        click.get_current_context().get_parameter_source(name)
        == click.core.ParameterSource.COMMANDLINE
    )


@cli.command()
@DATASET
@click.option("--head", default="mdn", show_default=True, help=f"Head spec: {SPEC_HELP}.")
@SAMPLER
@EPOCHS
@SEED
@click.option(
    "--output",
    "-o",
    type=OutputPath(file_okay=False),
    help="Run directory [default: a new folder under runs/].",
)
@FORCE
@QUIET
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train data-parallel on this many local devices (CPU: logical devices).",
)
@click.option(
    "--distributed", is_flag=True, help="Join a multi-process JAX job (KERAS_BACKEND=jax)."
)
@click.option(
    "--coordinator",
    envvar="JAX_COORDINATOR_ADDRESS",
    show_envvar=True,
    help="With --distributed: host:port of process 0.",
)
@click.option(
    "--num-processes",
    type=click.IntRange(min=1),
    envvar="JAX_NUM_PROCESSES",
    show_envvar=True,
    help="With --distributed: number of processes.",
)
@click.option(
    "--process-id",
    type=click.IntRange(min=0),
    envvar="JAX_PROCESS_ID",
    show_envvar=True,
    help="With --distributed: this process's index (0 writes the run directory).",
)
@click.option(
    "--peer-timeout",
    type=click.IntRange(min=5),
    default=120,
    show_default=True,
    help="With --distributed: seconds to wait for peers (joining, and between steps).",
)
@RECALIBRATE
@CONFORMAL
@MONITOR
def run(
    dataset,
    head,
    sampler,
    epochs,
    seed,
    output,
    force,
    quiet,
    devices,
    distributed,
    coordinator,
    num_processes,
    process_id,
    peer_timeout,
    recalibrate,
    conformal,
    monitor,
) -> int:
    """Train a head on a dataset, evaluate it on the test part and draw the pictures.

    \b
    Example:
      probreg run --dataset spiral --head mdn:components=10 --seed 1
    """
    from probreg import api
    from probreg import distributed as dist

    layout = None
    if distributed:
        layout = dist.initialize(coordinator, num_processes, process_id, devices, peer_timeout)
    else:
        given = [
            name
            for name in ("coordinator", "num_processes", "process_id", "peer_timeout")
            if _given(name)
        ]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise click.UsageError(f"{option} only applies with --distributed")
        if devices > 1:
            dist.prepare_local_devices(devices)
            layout = dist.Layout(devices=devices)
    result = api.run(
        dataset,
        head,
        sampler,
        seed=seed,
        epochs=epochs,
        output=output,
        force=force,
        quiet=quiet,
        layout=layout,
        recalibrate=recalibrate,
        conformal=conformal,
        monitor=monitor,
    )
    if layout is not None and layout.distributed:
        click.echo(
            f"process {layout.process_index}/{layout.process_count} loss per epoch: "
            f"{json.dumps(result.history.get('loss', []))}",
            err=True,
        )
        if not layout.is_main:
            return 0
    click.echo(_summary(result.metrics))
    click.echo(f"  run directory: {result.run_dir}")
    if result.status == "interrupted":
        click.echo("Interrupted: the best weights so far were kept and evaluated.", err=True)
        return 130
    return 0


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    if text == "all":
        if option != "--splits":
            raise click.BadParameter("'all' only applies to --splits", param_hint=option)
        return []
    from probreg.params import INTEGER_TEXT

    parts = [part.strip() for part in text.split(",")]
    if not all(INTEGER_TEXT.fullmatch(part) for part in parts):
        allowed = "comma-separated integers >= 0, e.g. 0,1,2" + (
            ", or all" if option == "--splits" else ""
        )
        raise click.BadParameter(f"'{text}' is not {allowed}", param_hint=option)
    values = [int(part) for part in parts]
    if not values or min(values) < 0:
        raise click.BadParameter(f"'{text}' must list integers >= 0", param_hint=option)
    return values


@cli.command()
@DATASET
@click.option(
    "--head",
    "heads",
    multiple=True,
    help=f"Head spec, repeat for each head: {SPEC_HELP}.  [default: mlp and mdn]",
)
@SAMPLER
@EPOCHS
@SEED
@click.option("--seeds", help="Several seeds, e.g. 0,1,2: report mean and standard error.")
@click.option("--splits", help="For datasets with a split parameter (uci): 'all' or e.g. 0,1,2.")
@click.option(
    "--output",
    "-o",
    type=OutputPath(file_okay=False),
    help="Report directory [default: a new folder under reports/].",
)
@FORCE
@QUIET
@RECALIBRATE
@CONFORMAL
@MONITOR
def compare(
    dataset,
    heads,
    sampler,
    epochs,
    seed,
    seeds,
    splits,
    output,
    force,
    quiet,
    recalibrate,
    conformal,
    monitor,
) -> int:
    """Train several heads on the same data and rank them in one report.

    \b
    Example:
      probreg compare --dataset spiral --head mlp --head mdn --head mdn:components=3
    """
    from probreg import comparison as comparing

    if seeds is not None and splits is not None:
        raise click.UsageError("give --seeds or --splits, not both")
    if seeds is not None and _given("seed"):
        raise click.UsageError("give --seed or --seeds, not both")
    seed_list = _int_list(seeds, "--seeds") or [seed]
    split_list = _int_list(splits, "--splits")
    if split_list == []:
        split_list = _all_splits(dataset)
    result = comparing.compare(
        dataset,
        list(heads) or ["mlp", "mdn"],
        sampler,
        seeds=seed_list,
        splits=split_list,
        epochs=epochs,
        output=output,
        force=force,
        quiet=quiet,
        recalibrate=recalibrate,
        conformal=conformal,
        monitor=monitor,
    )
    click.echo(_ranking(result))
    if result.report_dir is not None:
        click.echo(f"  report: {result.report_dir / 'report.html'}")
    return 130 if result.interrupted else 0


def _all_splits(dataset: str) -> list[int]:
    from probreg import plugins

    instance = plugins.create("dataset", dataset)
    count = instance.n_splits()
    if count is None:
        raise ProbregError(f"dataset '{instance.name}' has no splits; use --seeds")
    return list(range(count))


def _ranking(result) -> str:
    from probreg.postfit import head_width, ranking_lines

    width = head_width(result.table)
    lines = [f"{'#':>2}  {'head':<{width}}{'nll':>10}{'crps':>10}{'rmse':>10}{'cov90':>8}"]
    for row in result.table:
        lines.append(
            f"{row['rank']:>2}  {row['head']:<{width}}{row['nll']:>10.4f}{row['crps']:>10.4f}"
            f"{row['rmse']:>10.4f}{row['coverage_90']:>8.3f}"
        )
    if result.bayes_nll is not None:
        lines.append(f"    {'Bayes limit':<{width}}{result.bayes_nll:>10.4f}")
    for run in result.runs:
        if run["status"] == "diverged":
            lines.append(f"    diverged: {run['head']} ({run['replicate']})")
    lines += ranking_lines(result)
    return "\n".join(lines)


def best_line(metric: str, summary: dict) -> str:
    """``tune``'s line on the best trial, against the head's defaults."""
    from probreg.tune_report import chosen

    best, default = summary["best"], summary["default"]
    line = f"best validation {metric} {best['value']:.4f}"
    if default and default["number"] == best["number"]:
        # A default outside the space (a weight decay of 0) ran as the space's nearest value.
        return line + " (the head's defaults won; the spec below is how that trial ran)"
    if default and chosen(summary) is default:  # a baseline outside the space won
        return (
            f"the head's defaults beat every trial: validation {metric} {default['value']:.4f} "
            f"against {best['value']:.4f} for the best trial; keep the defaults"
        )
    if default:
        return line + f" (the head's defaults: {default['value']:.4f})"
    return line


@cli.command()
@DATASET
@click.option("--head", default="mdn", show_default=True, help=f"Head spec: {SPEC_HELP}.")
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Finished trials the study should reach (re-running tops it up).",
)
@click.option("--timeout", type=PositiveSeconds(), help="Start no trial after S seconds.")
@click.option(
    "--metric",
    type=click.Choice(["nll", "crps", "rmse"]),
    default="nll",
    show_default=True,
    help="Validation score to minimise.",
)
@click.option(
    "--space",
    help="Narrow or fix the search space, e.g. "
    "'components=2..30,learning_rate=1e-4..1e-2:log,hidden=64+64|256+256'.",
)
@EPOCHS
@click.option("--seeds", help="Average the score over these seeds, e.g. 0,1,2 [default: 0].")
@click.option("--splits", help="For datasets with a split parameter (uci): 'all' or e.g. 0,1,2.")
@click.option(
    "--storage",
    help="Optuna storage URL shared by workers, e.g. postgresql://user:pw@host/db "
    "[default: a SQLite file in the tune folder].",
)
@click.option("--study", help="Study name in the storage [default: from dataset, head, metric].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this machine, sharing the storage.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default="median",
    show_default=True,
    help="Stops unpromising trials early from their per-epoch validation loss.",
)
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Seconds between a worker's signs of life; a trial silent for twice that is failed.",
)
@click.option(
    "--output",
    "-o",
    type=OutputPath(file_okay=False),
    help="Tune folder [default: tunes/<study>]; an existing one is resumed.",
)
@FORCE
@QUIET
def tune(
    dataset,
    head,
    trials,
    timeout,
    metric,
    space,
    epochs,
    seeds,
    splits,
    storage,
    study,
    workers,
    pruner,
    heartbeat,
    output,
    force,
    quiet,
) -> int:
    """Search a head's hyperparameters (Optuna) for the best validation score.

    Prints the best head spec on standard output, ready for `probreg run --head`.
    Interrupt and run the same command again to resume.

    \b
    Example:
      probreg tune --dataset bishop --head mdn --trials 30
      probreg tune -d bishop --head mdn --space 'components=2..30,learning_rate=1e-4..1e-2:log'
    """
    import shlex

    from probreg import tuning

    if seeds is not None and splits is not None:
        raise click.UsageError("give --seeds or --splits, not both")
    seed_list = _int_list(seeds, "--seeds") or [0]
    split_list = _int_list(splits, "--splits")
    if split_list == []:
        split_list = _all_splits(dataset)
    result = tuning.tune(
        dataset,
        head,
        trials=trials,
        metric=metric,
        space=space,
        seeds=seed_list,
        splits=split_list,
        epochs=epochs,
        timeout=timeout,
        storage=storage,
        study=study,
        workers=workers,
        pruner=pruner,
        heartbeat=heartbeat,
        output=output,
        force=force,
        quiet=quiet,
    )
    summary = result.summary
    counts, pruning = summary["trials"], summary["pruning"]
    lines = [
        f"{counts['finished']} of {trials} trials finished ({counts['complete']} complete, "
        f"{counts['pruned']} pruned; {counts['failed']} failed); "
        f"{pruning['training_seconds']:.0f} s of training over all its trials, this run "
        f"{summary['seconds']:.0f} s from start to end; pruning saved about "
        f"{pruning['saved_seconds']:.0f} s ({100 * pruning['saved_fraction']:.0f}%)"
    ]
    if result.best_spec is not None:
        lines += [
            best_line(metric, summary),
            "run it: "
            + shlex.join(["probreg", "run", "--dataset", dataset, "--head", result.best_spec]),
        ]
    if result.tune_dir is not None:
        lines.append(f"tune folder: {result.tune_dir}")
    if not quiet:
        click.echo("\n".join(lines), err=True)
    if result.best_spec is None:
        from probreg.errors import TrainingError

        raise TrainingError("no trial completed, so there is no best spec; see the tune folder")
    click.echo(result.best_spec)
    return 130 if result.interrupted else 0


def _levels(text: str | None) -> list[float]:
    if text is None:
        return []
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"'{text}' is not a comma-separated list of numbers", param_hint="--quantiles"
        ) from None


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV with the run's input columns; - for standard input.",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    default="-",
    show_default=True,
    type=OutputPath(dir_okay=False, allow_dash=True),
    help="CSV to write; - for standard output.",
)
@click.option(
    "--samples",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="Draws per row, from the run's sampler.",
)
@click.option("--quantiles", help="Quantile levels, e.g. 0.05,0.5,0.95.")
@click.option(
    "--mean", is_flag=True, help="The predictive mean (the default when nothing else is asked)."
)
@click.option(
    "--params", is_flag=True, help="The distribution's parameters (mixture weights, means, scales)."
)
@click.option(
    "--sampler", "-s", help=f"Sampler spec for --samples [default: the run's]: {SPEC_HELP}."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed for the draws.",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option(
    "--intervals",
    help="Conformal sets from the run's calibration rows (run with --conformal): "
    "'conformal:level=0.9' for intervals, 'conformal:level=0.9,kind=region' for regions.",
)
def predict(
    run_dir,
    input_path,
    output_path,
    samples,
    quantiles,
    mean,
    params,
    sampler,
    seed,
    force,
    intervals,
) -> None:
    """Predict for new inputs with a trained run directory.

    \b
    Example:
      probreg predict runs/my-run -i new.csv -o out.csv --samples 10 --quantiles 0.05,0.95
    """
    from probreg.predict import predict as predicting

    for name in ("sampler", "seed"):  # they only steer the draws
        if not samples and _given(name):
            raise click.UsageError(f"--{name} only steers --samples draws; add --samples N")
    header, table = predicting(
        run_dir,
        input_path,
        output_path,
        samples=samples or 0,
        quantiles=_levels(quantiles),
        mean=mean,
        params=params,
        sampler=sampler,
        seed=seed,
        force=force,
        intervals=intervals,
    )
    if output_path != "-":
        click.echo(f"Wrote {len(table)} rows x {len(header)} columns to {output_path}", err=True)


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "-f",
    "export_format",
    type=click.Choice(["onnx", "saved_model", "litert"]),
    default="onnx",
    show_default=True,
    help="onnx (onnxruntime), saved_model (TensorFlow Serving) or litert (.tflite).",
)
@click.option(
    "--output",
    "-o",
    type=OutputPath(file_okay=False),
    help="Folder to write [default: RUN_DIR/export/FORMAT].",
)
@click.option("--force", is_flag=True, help="Replace an existing export folder.")
def export(run_dir, export_format, output, force) -> None:
    """Export a run's model for serving: data-unit inputs in, the family's parameters out.

    \b
    Example:
      probreg export runs/my-run --format onnx
    """
    from probreg.export import export_run

    folder = export_run(run_dir, output, export_format, force)
    click.echo(f"Wrote {folder}", err=True)


@cli.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(show_all: bool, as_json: bool) -> None:
    """List installed plugin packages and what each registers."""
    from probreg import plugins

    packages = plugins.installed(include_builtins=show_all)
    if as_json:
        click.echo(json.dumps(packages, indent=2))
        return
    if not packages:
        click.echo("No plugin packages loaded (use --all to see the built-ins).")
    for package in packages:
        click.secho(f"{package['name']} {package['version']}".rstrip(), bold=True)
        if "error" in package:
            click.echo(f"  broken: {package['error']}")
        if "left_out" in package:
            click.echo(f"  left out: {package['left_out']}")
        for kind in ("datasets", "heads", "samplers", "families"):
            if package[kind]:
                click.echo(f"  {kind}: {', '.join(sorted(package[kind]))}")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_plugins(as_json: bool) -> None:
    """Show the available datasets, heads, samplers and families with their parameters."""
    from probreg import plugins

    registry = plugins.registry()
    if as_json:
        data = {
            kind: [
                {
                    "name": name,
                    "summary": entry.cls.summary(),
                    "package": entry.source.name,
                    "params": [
                        {
                            "name": p.name,
                            "type": p.describe_type(),
                            "default": p.format(p.default),
                            "help": p.help,
                        }
                        for p in entry.cls.params
                    ],
                }
                for name, entry in sorted(entries.items())
            ]
            for kind, entries in registry.items()
        }
        click.echo(json.dumps(data, indent=2))
        return
    name_width = max([16, *(len(name) for entries in registry.values() for name in entries)])
    for kind, entries in registry.items():
        click.secho(plugins.plural(kind).capitalize(), bold=True)
        for name, entry in sorted(entries.items()):
            origin = "" if entry.source.builtin else f"  [from {entry.source.name}]"
            click.echo(f"  {name:<{name_width}} {entry.cls.summary()}{origin}")
            settings = [
                (
                    f"{p.name}="
                    + (
                        p.format(p.default)
                        if p.default is not None
                        else "REQUIRED"
                        if p.required
                        else ""
                    ),
                    f"{p.describe_type()}: {p.help}",
                )
                for p in entry.cls.params
            ]
            width = max((len(left) for left, _ in settings), default=0)
            for left, right in settings:
                click.echo(f"      {left:<{width}}  {right}")
        click.echo()
    click.echo("Set parameters with NAME:key=value,key=value (lists join items with +).")


if __name__ == "__main__":  # pragma: no cover
    main()
