"""The ``probreg`` command: a thin layer over :mod:`probreg.api`.

Keep module-level imports light: ``probreg --help`` and ``probreg list`` must not start
TensorFlow, so commands import the heavy parts when they run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from probreg import __version__
from probreg.errors import ProbregError

SPEC_HELP = "NAME or NAME:key=value,...; see `probreg list`"


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected failure becomes one ``Error:`` line and a non-zero exit code."""
    try:
        result = cli.main(args=argv, prog_name="probreg", standalone_mode=False)
    except ProbregError as error:
        _fail(str(error), error.exit_code)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        sys.exit(130)
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
        f"{metrics['epochs']} epochs (best {metrics['best_epoch']}) in "
        f"{metrics['train_seconds']:.1f} s | {metrics['status']}",
        f"  {'test nll':<14}{test['nll']:>10.4f}",
    ]
    if metrics.get("bayes_nll") is not None:
        lines[-1] += f"   (Bayes limit {metrics['bayes_nll']:.4f}, gap {metrics['bayes_gap']:.4f})"
    lines += [
        f"  {'test crps':<14}{test['crps']:>10.4f}",
        f"  {'test rmse':<14}{test['rmse']:>10.4f}",
        f"  {'coverage_90':<14}{test['coverage_90']:>10.3f}",
    ]
    return "\n".join(lines)


@cli.command()
@click.option(
    "--dataset", "-d", default="spiral", show_default=True, help=f"Dataset spec: {SPEC_HELP}."
)
@click.option("--head", "-m", default="mdn", show_default=True, help=f"Head spec: {SPEC_HELP}.")
@click.option(
    "--sampler", "-s", default="ancestral", show_default=True, help=f"Sampler spec: {SPEC_HELP}."
)
@click.option(
    "--epochs", type=click.IntRange(min=1), help="Most epochs (overrides the head's default)."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Fixes data, initialisation and sampling.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    help="Run directory [default: a new folder under runs/].",
)
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the summary.")
def run(dataset, head, sampler, epochs, seed, output, force, quiet) -> int:
    """Train a head on a dataset, evaluate it on the test part and draw the pictures.

    \b
    Example:
      probreg run --dataset spiral --head mdn:components=10 --seed 1
    """
    from probreg import api

    result = api.run(
        dataset, head, sampler, seed=seed, epochs=epochs, output=output, force=force, quiet=quiet
    )
    click.echo(_summary(result.metrics))
    click.echo(f"  run directory: {result.run_dir}")
    if result.status == "interrupted":
        click.echo("Interrupted: the best weights so far were kept and evaluated.", err=True)
        return 130
    return 0


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_plugins(as_json: bool) -> None:
    """Show the available datasets, heads and samplers with their parameters."""
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
    for kind, entries in registry.items():
        click.secho(f"{kind.capitalize()}s", bold=True)
        for name, entry in sorted(entries.items()):
            origin = "" if entry.source.builtin else f"  [{entry.source.name}]"
            click.echo(f"  {name:<12} {entry.cls.summary()}{origin}")
            for p in entry.cls.params:
                default = (
                    p.format(p.default)
                    if p.default is not None
                    else ("required" if p.required else "-")
                )
                click.echo(f"      {p.name:<18} {p.describe_type():<22} {default:<14} {p.help}")
        click.echo()
    click.echo("Set parameters with NAME:key=value,key=value (lists join items with +).")


if __name__ == "__main__":  # pragma: no cover
    main()
