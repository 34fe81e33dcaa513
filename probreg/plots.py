"""Pictures of runs and comparisons (matplotlib, no display needed).

Every figure takes one panel per head so ``run`` (one head) and ``compare`` (several) draw the
same pictures. 1-D input and output get the original example's scatter and a density heat
map; other shapes get predictive intervals against the observed values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm

from probreg import calibration, files
from probreg.distributions import Distribution

TRUTH_COLOUR = "#1f77b4"
SAMPLE_COLOUR = "#2ca02c"
MEAN_COLOUR = "#d62728"
MAX_SCATTER = 5000  # points drawn per panel; more only hides the structure


@dataclasses.dataclass
class HeadView:
    """What the pictures need from one trained head."""

    label: str
    distribution: Distribution  # on the test inputs
    samples: np.ndarray  # (n_test, d): one draw per test input, from the run's sampler
    history: dict[str, list[float]]
    distribution_at: Callable[[np.ndarray], Distribution]  # for grids of new inputs


def save(figure: plt.Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` as PNG atomically and free it."""
    files.write_with(path, lambda tmp: figure.savefig(tmp, dpi=110, bbox_inches="tight"))
    plt.close(figure)


def _panels(count: int, width: float = 4.0, height: float = 3.4, sharey: bool = True):
    figure, axes = plt.subplots(
        1, count, figsize=(width * count, height), sharex=True, sharey=sharey, squeeze=False
    )
    return figure, list(axes[0])


def _margin(values: np.ndarray) -> float:
    """5% of the range on each side; a constant column (no range) gets 0.5 either side."""
    span = float(np.ptp(values))
    return 0.05 * span if span > 0 else 0.5


def _thin(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.sort(rng.choice(n, MAX_SCATTER, replace=False)) if n > MAX_SCATTER else np.arange(n)


def _dots(n: int) -> dict[str, float]:
    """Marker size and opacity for ``n`` points: faint dots show the structure of thousands,
    and would hide a few dozen."""
    if n <= 300:
        return {"s": 10.0, "alpha": 0.8}
    if n <= 2000:
        return {"s": 5.0, "alpha": 0.5}
    return {"s": 3.0, "alpha": 0.25}


def samples_figure(
    x: np.ndarray,
    y: np.ndarray,
    views: Sequence[HeadView],
    x_name: str = "x",
    y_name: str = "y",
) -> plt.Figure:
    """The original's picture: ground truth, then each head's draws at the same inputs.

    A red line marks each head's predictive mean, which is all an MSE network can give.
    """
    rng = np.random.default_rng(0)
    keep = _thin(rng, len(x))
    xs, ys = x[keep, 0], y[keep, 0]
    order = np.argsort(xs)
    dots = _dots(len(keep))
    figure, axes = _panels(1 + len(views))
    axes[0].scatter(xs, ys, color=TRUTH_COLOUR, linewidths=0, **dots)
    axes[0].set_title("Ground truth (test data)")
    for ax, view in zip(axes[1:], views, strict=True):
        ax.scatter(xs, view.samples[keep, 0], color=SAMPLE_COLOUR, linewidths=0, **dots)
        mean = view.distribution.mean()[keep, 0]
        ax.plot(xs[order], mean[order], color=MEAN_COLOUR, lw=1.2, label="predictive mean")
        ax.set_title(f"{view.label}: samples")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    for ax in axes:
        ax.set_xlabel(x_name)
    axes[0].set_ylabel(y_name)
    figure.tight_layout()
    return figure


def density_figure(
    x: np.ndarray,
    y: np.ndarray,
    views: Sequence[HeadView],
    size: int = 200,
    x_name: str = "x",
    y_name: str = "y",
) -> plt.Figure:
    """Heat map of each head's ``p(y | x)`` on a grid, with the test data over it.

    All panels share one colour scale, shown by a colour bar: a broad density looks dimmer
    than a sharp one, as it is. The scale is a square root (so the broad one still shows) capped
    at the highest panel's 99.5% quantile (so one spike does not wash out the rest)."""
    pad_x, pad_y = _margin(x), _margin(y)
    grid_x = np.linspace(x.min() - pad_x, x.max() + pad_x, size)
    grid_y = np.linspace(y.min() - pad_y, y.max() + pad_y, size)
    keep = _thin(np.random.default_rng(1), len(x))
    dots = _dots(len(keep))
    densities = []
    for view in views:
        distribution = view.distribution_at(grid_x[:, None])
        densities.append(
            np.stack([np.exp(distribution.log_prob(np.full((size, 1), value))) for value in grid_y])
        )  # rows: y, columns: x
    finite = [density[np.isfinite(density)] for density in densities]
    top = max((float(np.quantile(f, 0.995)) for f in finite if f.size), default=0.0) or 1.0
    figure, axes = _panels(len(views), width=4.4)
    for ax, view, density in zip(axes, views, densities, strict=True):
        image = ax.imshow(
            density,
            origin="lower",
            aspect="auto",
            extent=(grid_x[0], grid_x[-1], grid_y[0], grid_y[-1]),
            cmap="magma",
            norm=PowerNorm(0.5, vmin=0.0, vmax=top),  # a broad density stays visible
        )
        ax.scatter(
            x[keep, 0],
            y[keep, 0],
            color="white",
            linewidths=0,
            s=dots["s"] / 2,
            alpha=dots["alpha"],
        )
        ax.set_title(f"{view.label}: p(y | x)")
        ax.set_xlabel(x_name)
    axes[0].set_ylabel(y_name)
    figure.tight_layout()
    bar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label(f"p({y_name} | {x_name}), square-root scale, capped at {top:.3g}")
    return figure


def intervals_figure(
    y: np.ndarray, views: Sequence[HeadView], y_names: Sequence[str]
) -> plt.Figure:
    """For multi-dimensional data: observed values against 90% predictive intervals.

    Test points are sorted by predictive mean; a calibrated head has about 90% of the dots
    inside its band. One row of panels per output coordinate.
    """
    dims = y.shape[1]
    figure, grid = plt.subplots(
        dims, len(views), figsize=(4.2 * len(views), 3.2 * dims), squeeze=False, sharey="row"
    )
    rng = np.random.default_rng(2)
    keep = rng.choice(len(y), min(len(y), 400), replace=False)
    for col, view in enumerate(views):
        low = view.distribution.quantile(0.05)[keep]
        high = view.distribution.quantile(0.95)[keep]
        mean = view.distribution.mean()[keep]
        for dim in range(dims):
            ax = grid[dim][col]
            order = np.argsort(mean[:, dim])
            rank = np.arange(len(order))
            ax.fill_between(
                rank,
                low[order, dim],
                high[order, dim],
                color=SAMPLE_COLOUR,
                alpha=0.3,
                label="90% interval",
            )
            ax.plot(rank, mean[order, dim], color=MEAN_COLOUR, lw=1, label="mean")
            ax.scatter(rank, y[keep][order, dim], s=4, color=TRUTH_COLOUR, label="observed")
            ax.set_title(f"{view.label}: {y_names[dim]}")
            ax.set_xlabel("test points, by predicted mean")
            if col == 0:
                ax.set_ylabel(y_names[dim])
    grid[0][0].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def joint_figure(
    x: np.ndarray, y: np.ndarray, views: Sequence[HeadView], y_names: Sequence[str]
) -> plt.Figure:
    """For two outputs: draws in the output plane for three test inputs, one colour each.

    The first panel shows observed outputs of the test points nearest to each chosen input, so
    branches (such as elbow-up and elbow-down arm poses) show up as separate clouds.
    """
    rng = np.random.default_rng(3)
    chosen = rng.choice(len(x), 3, replace=False)
    figure, axes = _panels(1 + len(views), width=3.8, height=3.6)
    for colour, row in enumerate(chosen):
        nearest = np.argsort(np.sum((x - x[row]) ** 2, axis=1))[: max(20, len(x) // 100)]
        axes[0].scatter(
            y[nearest, 0],
            y[nearest, 1],
            s=6,
            color=f"C{colour}",
            alpha=0.6,
            label=f"test input {row + 1}",
        )
    axes[0].set_title("Observed, near 3 test inputs")
    axes[0].legend(fontsize=7, frameon=False, markerscale=2)
    for ax, view in zip(axes[1:], views, strict=True):
        distribution = view.distribution_at(x[chosen])
        draws = distribution.sample(rng, 400)  # (400, 3, 2)
        for colour in range(len(chosen)):
            ax.scatter(draws[:, colour, 0], draws[:, colour, 1], s=3, color=f"C{colour}", alpha=0.3)
        ax.set_title(f"{view.label}: draws")
    for ax in axes:
        ax.set_xlabel(y_names[0])
    axes[0].set_ylabel(y_names[1])
    figure.tight_layout()
    return figure


def training_figure(views: Sequence[HeadView]) -> plt.Figure:
    """Training and validation loss per epoch, one panel per head (heads train on different
    losses, an MLP's squared error beside an MDN's NLL, which one axis would compare), then
    every head's learning rate; up to three panels a row. A view that shares another's history
    (a recalibrated head) is not drawn again."""
    from matplotlib.ticker import MaxNLocator

    drawn, seen = [], set()
    for view in views:
        if id(view.history) not in seen:
            seen.add(id(view.history))
            drawn.append(view)
    count = len(drawn) + 1
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.4 * rows), squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[count:]:
        ax.set_axis_off()
    loss_axes, lr_ax = axes[: count - 1], axes[count - 1]
    longest = 1
    for index, (ax, view) in enumerate(zip(loss_axes, drawn, strict=True)):
        colour = f"C{index}"
        history = view.history
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        longest = max(longest, len(epochs))
        ax.plot(epochs, history.get("loss", []), color=colour, lw=1, alpha=0.6, label="train")
        if "val_loss" in history:
            ax.plot(epochs, history["val_loss"], color=colour, lw=1.5, label="validation")
        rates = np.asarray(history.get("learning_rate", []), float)
        positive = rates > 0  # cosine decay ends at exactly 0, which a log axis cannot show
        if positive.any():
            lr_ax.plot(
                epochs[: rates.size][positive], rates[positive], color=colour, label=view.label
            )
        ax.set_title(f"{view.label}: loss")
        ax.set_ylabel("the head's own training loss")
        ax.legend(fontsize=7, frameon=False)
    lr_ax.set_title("Learning rate")
    lr_ax.set_ylabel("learning rate")
    if lr_ax.lines:
        lr_ax.set_yscale("log")
        lr_ax.set_xlim(0.5, longest + 0.5)  # the same epochs as the loss panels
        if len(drawn) > 1:
            lr_ax.legend(fontsize=7, frameon=False)
    for ax in axes[:count]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure


def calibration_figure(y: np.ndarray, views: Sequence[HeadView]) -> plt.Figure:
    """PIT histograms: flat means calibrated, U-shaped overconfident, humped underconfident."""
    figure, axes = _panels(len(views), width=3.4, height=3.0)
    for ax, view in zip(axes, views, strict=True):
        values = calibration.pit(view.distribution, y).ravel()  # randomised if discrete
        ax.hist(values, bins=20, range=(0, 1), density=True, color=SAMPLE_COLOUR, alpha=0.8)
        ax.axhline(1.0, color="black", lw=1, ls="--")
        ax.set_title(f"{view.label}: PIT" + (", outputs pooled" if y.shape[1] > 1 else ""))
        ax.set_xlabel("F(y)")
    axes[0].set_ylabel("density")
    figure.tight_layout()
    return figure


def reliability_figure(y: np.ndarray, views: Sequence[HeadView]) -> plt.Figure:
    """Observed against nominal coverage of central intervals, one line per head: on the
    diagonal is calibrated, below it overconfident, above it underconfident."""
    from probreg import calibration

    figure, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="calibrated")
    for index, view in enumerate(views):
        curve = calibration.reliability(view.distribution, y)
        ax.plot(
            curve["nominal"],
            curve["observed"],
            marker="o",
            ms=3,
            color=f"C{index}",
            label=view.label,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage (test)")
    ax.set_title("Reliability" + (" (outputs pooled)" if y.shape[1] > 1 else ""))
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    figure.tight_layout()
    return figure


def pit_thumbnail(values: np.ndarray) -> plt.Figure:
    """A tiny PIT histogram for a table cell."""
    figure, ax = plt.subplots(figsize=(1.5, 0.6))
    ax.hist(values, bins=10, range=(0, 1), density=True, color=SAMPLE_COLOUR)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_axis_off()
    figure.subplots_adjust(0, 0, 1, 1)
    return figure


def draw_all(
    out_dir: str | os.PathLike,
    x: np.ndarray,
    y: np.ndarray,
    views: Sequence[HeadView],
    y_names: Sequence[str],
    x_names: Sequence[str] = ("x",),
) -> list[str]:
    """Write every picture that fits the data's shape into ``out_dir``; return the file names."""
    figures: dict[str, Callable[[], plt.Figure]] = {}
    if x.shape[1] == 1 and y.shape[1] == 1:
        names = {"x_name": x_names[0], "y_name": y_names[0]}
        figures["samples.png"] = lambda: samples_figure(x, y, views, **names)
        figures["density.png"] = lambda: density_figure(x, y, views, **names)
    else:
        figures["intervals.png"] = lambda: intervals_figure(y, views, y_names)
    if y.shape[1] == 2:
        figures["joint.png"] = lambda: joint_figure(x, y, views, y_names)
    figures["calibration.png"] = lambda: calibration_figure(y, views)
    figures["reliability.png"] = lambda: reliability_figure(y, views)
    figures["training.png"] = lambda: training_figure(views)
    for name, make in figures.items():
        save(make(), os.path.join(out_dir, name))
    return list(figures)
