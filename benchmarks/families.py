"""Families benchmark: the richer likelihoods of issue #13 against the diagonal mixture and
against each dataset's exact (Bayes-limit) likelihood, on the same data, seed and budget.

- ``robot-arm``: ``gaussian_mixture`` (diagonal) against ``gaussian_mixture_full``: test NLL,
  energy and variogram scores, gap to the Bayes limit;
- ``counts``: the ``discrete`` family's test log-mass against the exact negative-binomial one;
- ``spiral`` and ``bishop``: the ``spline`` family's gap to the Bayes limit.

    python benchmarks/families.py --json benchmarks/results/families.json
    python benchmarks/docs_tables.py    # the docs table, from that JSON

``--groups robot-arm,counts`` runs some groups only, ``--dataset SPEC`` only the cases on one
dataset spec, ``--head SPEC`` only those of one head spec, ``--seeds 0,1,2`` several seeds,
``--missing`` only the cases and seeds the JSON lacks (each merged into an existing JSON file;
results of cases no longer listed are dropped).
Every case runs through the Python API with ``write=False``, on the backend ``KERAS_BACKEND``
picks (recorded per row); budgets are the same for both sides of each comparison: a small
trunk for robot-arm and counts, the ``mdn`` head's default recipe for spiral and bishop.
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
    # The spline against the Gaussian mixture on the head's default recipe (3 x 128, 200
    # epochs), where the mixture is near its estimation floor (docs/benchmarks.md). The
    # min_bin=0.0001 rows are the spline with the previous bin floor, the affine=false ones
    # without the per-row shift and scale in front of it: both together were the default
    # before.
    "spiral": [
        ("spiral", "mdn:family=spline"),
        ("spiral", "mdn:family=spline,min_bin=0.0001"),
        ("spiral", "mdn:family=spline,affine=false,min_bin=0.0001"),
        ("spiral", "mdn:family=gaussian_mixture"),
    ],
    "bishop": [
        ("bishop:n=10000,val=2000,test=10000", "mdn:family=spline"),
        ("bishop:n=10000,val=2000,test=10000", "mdn:family=spline,min_bin=0.0001"),
        ("bishop:n=10000,val=2000,test=10000", "mdn:family=spline,affine=false,min_bin=0.0001"),
        ("bishop:n=10000,val=2000,test=10000", "mdn:family=gaussian_mixture"),
    ],
}
SCORES = ("nll", "crps", "energy", "variogram")


def run_case(dataset: str, head: str, seed: int) -> dict:
    import keras

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
        "backend": keras.backend.backend(),
    }


def table(results: list[dict]) -> str:
    """The Markdown table the docs show."""

    def cell(value, digits=4):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| dataset | head | seed | backend | test NLL | of a | Bayes limit | gap | CRPS | "
        "energy | variogram |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kind = r.get("likelihood") or ("mass" if "family=discrete" in r["head"] else "density")
        lines.append(
            f"| `{r['dataset']}` | `{r['head']}` | {r['seed']} | "
            f"{r.get('backend', 'tensorflow')} | {cell(r['nll'])} | {kind} | "
            f"{cell(r['bayes_nll'])} | "
            f"{cell(r['bayes_gap'])} | {cell(r['crps'])} | {cell(r.get('energy'))} | "
            f"{cell(r.get('variogram'))} |"
        )
    return "\n".join(lines)


def seed_list(text: str) -> list[int]:
    """``--seeds``: distinct non-negative integers, comma-separated."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be distinct and >= 0: {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write (merge) the results here")
    parser.add_argument("--groups", default=",".join(CASES), help="comma-separated groups")
    parser.add_argument("--dataset", help="run only the cases on this dataset spec")
    parser.add_argument("--head", help="run only the cases with this head spec")
    parser.add_argument("--seeds", type=seed_list, default=[SEED], help="e.g. 0,1,2")
    parser.add_argument(
        "--missing", action="store_true", help="run only cases and seeds not in --json yet"
    )
    args = parser.parse_args(argv)
    previous = []
    if args.json and args.json.exists():
        previous = json.loads(args.json.read_text())["results"]
    have = {(r["dataset"], r["head"], r["seed"]) for r in previous}
    results = []
    for group in args.groups.split(","):
        for dataset, head in CASES[group]:
            if (args.dataset and dataset != args.dataset) or (args.head and head != args.head):
                continue
            for seed in args.seeds:
                if args.missing and (dataset, head, seed) in have:
                    continue
                print(f"{dataset}  {head}  seed {seed} ...", file=sys.stderr, flush=True)
                result = {"group": group, **run_case(dataset, head, seed)}
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    # Keep earlier results of cases still listed (not rerun now); drop those of removed cases.
    cases = [(dataset, head) for group in CASES.values() for dataset, head in group]
    done = {(r["dataset"], r["head"], r["seed"]) for r in results}
    kept = [
        r
        for r in previous
        if (r["dataset"], r["head"]) in cases and (r["dataset"], r["head"], r["seed"]) not in done
    ]
    merged = sorted(
        kept + results, key=lambda r: (cases.index((r["dataset"], r["head"])), r["seed"])
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": merged}, indent=2) + "\n")
    print(table(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
