"""Prediction speed: single-row latency and 10,000-row throughput of a trained MDN.

One run of probreg's ``mdn`` with a 3x256 ReLU trunk and 20 Gaussian components on the spiral,
trained for a few epochs (speed does not depend on the weights), is timed through:

- ``keras``: ``load_run(...).distribution(x)``, the path ``probreg predict`` takes;
- ``keras`` parameters only, and the model call compiled by :mod:`probreg.fastpath`;
- ``onnx``: the run exported with ``probreg export --format onnx`` and run by onnxruntime
  (``probreg.export.OnnxModel(...).distribution(x)``), one thread;
- ``keras-mdn-layer``: the same network built with keras-mdn-layer 1.0.0's ``MDN`` layer, through
  ``model.predict`` (that package's documented path) and a direct ``model(x)`` call.

Every path returns the mixture parameters for the rows; the probreg paths also build the
numpy distribution. Latency is the median of single-row calls after a warm-up, in the best of
several rounds that interleave the paths (robust on a shared, busy machine).

    python benchmarks/predict.py --json benchmarks/results/predict.json

keras-mdn-layer is optional (``pip install -e ".[bench]"``); without it those rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROWS = 10_000


def _latency(call: Callable[[np.ndarray], object], x: np.ndarray, repeats: int) -> float:
    """Median seconds of ``call`` on one row."""
    row = x[:1]
    for _ in range(min(20, repeats)):
        call(row)
    times = []
    for i in range(repeats):
        one = x[i % len(x) : i % len(x) + 1]
        start = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _throughput(call: Callable[[np.ndarray], object], x: np.ndarray, repeats: int = 3) -> float:
    """Rows per second of ``call`` on all of ``x`` (best of ``repeats``)."""
    call(x)
    best = min(_timed(call, x) for _ in range(repeats))
    return len(x) / best


def _timed(call: Callable[[np.ndarray], object], x: np.ndarray) -> float:
    start = time.perf_counter()
    call(x)
    return time.perf_counter() - start


def table(results: list[dict]) -> str:
    """The Markdown table, with each path's single-row speed-up over probreg 0.1's path."""
    base = results[0]["latency_ms"]
    lines = [
        f"| path | single row (ms) | x faster than 0.1, one row | {ROWS:,} rows (rows/s) |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['path']} | {r['latency_ms']:.3f} | {base / r['latency_ms']:.1f} | "
            f"{r['rows_per_second']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument("--repeats", type=int, default=500, help="Single-row calls per path.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved timing rounds.")
    args = parser.parse_args()
    import keras

    from probreg import api
    from probreg.export import OnnxModel, export_run
    from probreg.runs import load_run

    work = Path(tempfile.mkdtemp(prefix="probreg-bench-predict-"))
    print("Training a small run (a few epochs) ...", file=sys.stderr)
    api.run(
        "spiral:n=2000,val=500,test=500",
        "mdn:epochs=3,hidden=256+256+256",
        output=work / "run",
        quiet=True,
    )
    run = load_run(work / "run")
    onnx = OnnxModel(export_run(work / "run", work / "onnx", "onnx"))
    x = np.random.default_rng(0).uniform(-1, 1, (ROWS, 1)).astype(np.float32)

    # probreg 0.1's path: an eager call of the model for every request.
    eager = lambda rows: keras.ops.convert_to_numpy(  # noqa: E731
        run.model(run.predictor.x_scaling.transform(rows), training=False)
    )
    paths: dict[str, Callable[[np.ndarray], object]] = {
        "probreg 0.1, eager Keras call + distribution": lambda rows: run.predictor.distribution_of(
            eager(rows)
        ),
        "probreg, Keras: load_run(...).distribution (compiled call)": run.distribution,
        "probreg, Keras parameters only: Predictor.outputs": run.predictor.outputs,
        "probreg, ONNX: OnnxModel(...).distribution": onnx.distribution,
        "probreg, ONNX parameters only: OnnxModel(...).params": onnx.params,
    }
    try:
        import keras_mdn_layer as mdn

        network = keras.Sequential(
            [
                keras.Input((1,)),
                *[keras.layers.Dense(256, activation="relu") for _ in range(3)],
                mdn.MDN(1, 20),
            ]
        )
        paths["keras-mdn-layer, model.predict"] = lambda rows: network.predict(rows, verbose=0)
        paths["keras-mdn-layer, model(x)"] = lambda rows: keras.ops.convert_to_numpy(
            network(rows, training=False)
        )
    except ImportError:
        print("keras-mdn-layer is not installed: skipping it (pip install -e '.[bench]')")

    # Rounds interleave the paths, so a busy spell on a shared machine hits all of them; each
    # path keeps its best round (the median of its single-row calls in that round).
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(args.rounds):
        print(f"Round {round_ + 1} of {args.rounds} ...", file=sys.stderr)
        for name, call in paths.items():
            latencies[name].append(_latency(call, x, max(1, args.repeats // args.rounds)))
    results = [
        {
            "path": name,
            "latency_ms": min(latencies[name]) * 1e3,
            "rows_per_second": _throughput(call, x),
        }
        for name, call in paths.items()
    ]

    print("\n" + table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "network": "mdn: 3x256 ReLU, 20 components, 1 input, 1 output",
            "rows": ROWS,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "keras": keras.__version__,
                "backend": keras.backend.backend(),
            },
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nWrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
