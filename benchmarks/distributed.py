"""Data-parallel throughput on JAX: one process against two processes on this machine.

    python benchmarks/distributed.py --json benchmarks/results/distributed.json

Each configuration trains the default MDN on the same spiral for the same number of epochs and
the same global batch; throughput is training rows per second of training time (from the run's
``metrics.json``). Two processes on 127.0.0.1 use ``probreg run --distributed`` (JAX's
distributed runtime, gloo collectives). Reported as measured, whatever it shows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ENV = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(dataset: str, head: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "probreg",
        "run",
        "--dataset",
        dataset,
        "--head",
        head,
        "--output",
        str(out),
        "--quiet",
        *extra,
    ]


def measure(
    processes: int, dataset: str, head: str, rows: int, folder: Path, devices: int = 1
) -> dict:
    out = folder / f"p{processes}-d{devices}"
    if processes == 1:
        extra = ["--devices", str(devices)] if devices > 1 else []
        subprocess.run(
            _command(dataset, head, out, *extra), check=True, env=ENV, capture_output=True
        )
    else:
        port = _free_port()
        jobs = [
            subprocess.Popen(
                _command(
                    dataset,
                    head,
                    out,
                    "--distributed",
                    "--coordinator",
                    f"127.0.0.1:{port}",
                    "--num-processes",
                    str(processes),
                    "--process-id",
                    str(rank),
                ),
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for rank in range(processes)
        ]
        for job in jobs:
            _, err = job.communicate(timeout=3600)
            if job.returncode != 0:
                raise RuntimeError(err[-2000:])
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "processes": processes,
        "devices_per_process": devices,
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "samples_per_second": rows * metrics["epochs"] / metrics["train_seconds"],
        "test_nll": metrics["test"]["nll"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dataset = f"spiral:n={args.rows},val=2000,test=2000"
    head = f"mdn:epochs={args.epochs},batch_size={args.batch_size},patience={args.epochs}"
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for processes, devices in ((1, 1), (1, 2), (2, 1)):
            print(f"{processes} process(es) x {devices} device(s) ...", flush=True)
            results.append(measure(processes, dataset, head, args.rows, Path(folder), devices))
    record = {"config": vars(args) | {"json": str(args.json)}, "cpus": os.cpu_count()}
    record["results"] = results
    print(format_table(record))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


def format_table(record: dict) -> str:
    """The Markdown table the docs show (``benchmarks/docs_tables.py``)."""
    config, results = record["config"], record["results"]
    base = results[0]["samples_per_second"]
    lines = [
        f"JAX backend, spiral with {config['rows']:,} training rows, {config['epochs']} epochs, "
        f"global batch {config['batch_size']}"
        + (f", {record['cpus']} CPU cores" if "cpus" in record else ""),
        "",
        "| processes | devices each | samples/s | vs 1 process | test NLL |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['processes']} | {r['devices_per_process']} | {r['samples_per_second']:,.0f} | "
            f"{r['samples_per_second'] / base:.2f}x | {r['test_nll']:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
