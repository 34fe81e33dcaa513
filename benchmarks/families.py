"""Families benchmark: the richer likelihoods of issue #13 against the diagonal mixture and
against each dataset's exact (Bayes-limit) likelihood, on the same data, seed and budget.

- ``robot-arm``: ``gaussian_mixture`` (diagonal) against ``gaussian_mixture_full``: test NLL,
  energy and variogram scores, gap to the Bayes limit;
- ``counts``: the ``discrete`` family's test log-mass against the exact negative-binomial one;
- ``spiral`` and ``bishop``: the ``spline`` family's gap to the Bayes limit.

    python benchmarks/families.py --json benchmarks/results/families.json
    python benchmarks/docs_tables.py    # the docs table, from that JSON

``--groups robot-arm,counts`` runs some groups only, ``--dataset SPEC`` only the cases on one
dataset spec (either way merged into an existing JSON file).
Every case runs through the Python API with ``write=False``; budgets are small on purpose (a
two-core machine), and the same for both sides of each comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 0
TRUNK = "hidden=128+128,epochs=100,patience=100"
ARM_NOISY = "robot-arm:noise=0.3,correlation=0.9"
#: group -> [(dataset spec, head spec)]
CASES = {
    "robot-arm": [
        ("robot-arm", f"mdn:family=gaussian_mixture,components=5,{TRUNK}"),
        ("robot-arm", f"mdn:family=gaussian_mixture_full,components=5,{TRUNK}"),
        ("robot-arm:correlation=0.9", f"mdn:family=gaussian_mixture,components=5,{TRUNK}"),
        ("robot-arm:correlation=0.9", f"mdn:family=gaussian_mixture_full,components=5,{TRUNK}"),
        # Noisier readings: the within-branch covariance is a larger part of the joint spread,
        # so the energy score (which mostly sees the two branches) can see the correlation.
        (ARM_NOISY, f"mdn:family=gaussian_mixture,components=5,{TRUNK}"),
        (ARM_NOISY, f"mdn:family=gaussian_mixture_full,components=5,{TRUNK}"),
    ],
    "counts": [
        ("counts", f"mdn:family=discrete,components=5,{TRUNK}"),
        ("counts", f"mdn:family=gaussian_mixture,components=5,{TRUNK}"),
    ],
    "spiral": [
        ("spiral:n=5000", f"mdn:family=spline,{TRUNK}"),
        ("spiral:n=5000", f"mdn:family=gaussian_mixture,{TRUNK}"),
        ("spiral:n=5000", f"mdn:family=spline,{TRUNK},learning_rate=0.01"),
        ("spiral:n=5000", f"mdn:family=gaussian_mixture,{TRUNK},learning_rate=0.01"),
    ],
    "bishop": [
        ("bishop", f"mdn:family=spline,{TRUNK}"),
        ("bishop", f"mdn:family=gaussian_mixture,{TRUNK}"),
        ("bishop:n=10000", f"mdn:family=spline,{TRUNK}"),
        ("bishop:n=10000", f"mdn:family=gaussian_mixture,{TRUNK}"),
    ],
}
SCORES = ("nll", "crps", "energy", "variogram")


def run_case(dataset: str, head: str, seed: int) -> dict:
    from probreg import api

    started = time.perf_counter()
    m = api.run(dataset, head, seed=seed, write=False, quiet=True).metrics
    return {
        "dataset": dataset,
        "head": head,
        "seed": seed,
        **{key: m["test"].get(key) for key in SCORES},
        "likelihood": m.get("likelihood", "density"),
        "bayes_nll": m["bayes_nll"],
        "bayes_gap": m["bayes_gap"],
        "epochs": m["epochs"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(results: list[dict]) -> str:
    """The Markdown table the docs show."""

    def cell(value, digits=4):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| dataset | head | test NLL | of a | Bayes limit | gap | CRPS | energy | variogram |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kind = r.get("likelihood") or ("mass" if "family=discrete" in r["head"] else "density")
        lines.append(
            f"| `{r['dataset']}` | `{r['head']}` | {cell(r['nll'])} | {kind} | "
            f"{cell(r['bayes_nll'])} | "
            f"{cell(r['bayes_gap'])} | {cell(r['crps'])} | {cell(r.get('energy'))} | "
            f"{cell(r.get('variogram'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write (merge) the results here")
    parser.add_argument("--groups", default=",".join(CASES), help="comma-separated groups")
    parser.add_argument("--dataset", help="run only the cases on this dataset spec")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    previous = []
    if args.json and args.json.exists():
        previous = json.loads(args.json.read_text())["results"]
    results = []
    for group in args.groups.split(","):
        for dataset, head in CASES[group]:
            if args.dataset and dataset != args.dataset:
                continue
            print(f"{dataset}  {head} ...", file=sys.stderr, flush=True)
            result = {"group": group, **run_case(dataset, head, args.seed)}
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    done = {(r["dataset"], r["head"], r["seed"]) for r in results}
    merged = [r for r in previous if (r["dataset"], r["head"], r["seed"]) not in done] + results
    order = list(CASES)
    merged.sort(key=lambda r: order.index(r["group"]) if r.get("group") in order else 99)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": merged}, indent=2) + "\n")
    print(table(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
