r"""Choose one UCI configuration of the ``mdn`` head on validation data only.

    python benchmarks/uci_tune.py --root ../shared/uci --splits 0,1,2 \
        --candidates 2,6,7,8,9,10 --json benchmarks/results/uci_tune_round2.json

Each candidate trains on the training rows of the first splits of every data set; its score is
the predictive NLL of the validation rows (carved from the training rows; data units), averaged
over splits and then ranked per data set. Test rows are never loaded into a score. The
candidate with the best mean rank becomes ``UCI_HEADS`` in ``benchmarks/uci.py``.

Scores accumulate in the ``--json`` file, so rounds of candidates can run one at a time; the
ranking covers every candidate in the file that was scored on every data set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from probreg import plugins
from probreg.api import train_head
from probreg.default_plugins.uci import PUBLISHED

CANDIDATES = (
    "mdn:components=1,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01",
    "mdn:components=3,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01",
    "mdn:components=5,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01",
    "mdn:components=3,hidden=50,epochs=400,batch_size=32,learning_rate=0.003,patience=200,scale_floor=0.01",
    "mdn:components=3,hidden=128+128,epochs=200,batch_size=32,learning_rate=0.001,patience=100,scale_floor=0.01",
    "mdn:components=3,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200",
    "mdn:components=5,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01,members=5",
    "mdn:components=5,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01,members=5,weight_decay=0.1",
    "mdn:components=5,hidden=64+64,epochs=400,batch_size=32,learning_rate=0.002,patience=200,scale_floor=0.01,members=5,weight_decay=1.0",
    "mdn:components=5,hidden=64+64,epochs=1000,batch_size=32,learning_rate=0.002,patience=500,scale_floor=0.01,members=5",
    "mdn:components=5,hidden=128+128,epochs=400,batch_size=32,learning_rate=0.001,patience=200,scale_floor=0.01,members=5",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/uci"))
    parser.add_argument("--splits", default="0,1,2")
    parser.add_argument(
        "--candidates", help="comma-separated indices into CANDIDATES (default: all)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    splits = [int(s) for s in args.splits.split(",")]
    chosen = (
        [CANDIDATES[int(i)] for i in args.candidates.split(",")] if args.candidates else CANDIDATES
    )
    scores: dict[str, dict[str, float]] = {}
    if args.json and args.json.exists():
        scores = json.loads(args.json.read_text())["scores"]
    for name in sorted(PUBLISHED):
        for spec in chosen:
            values = []
            for split in splits:
                dataset = plugins.create("dataset", f"uci:path={args.root / name},split={split}")
                data = dataset.load(split)
                predictor, _ = train_head(plugins.create("head", spec), data, split, verbose=False)
                values.append(-np.mean(predictor.distribution(data.x_val).log_prob(data.y_val)))
            scores.setdefault(name, {})[spec] = float(np.mean(values))
            print(f"{name:18s} {np.mean(values):8.4f}  {spec}", flush=True)
    complete = set.intersection(*(set(by_spec) for by_spec in scores.values()))
    ranks: dict[str, list[int]] = {spec: [] for spec in complete}
    for by_spec in scores.values():
        ranked = sorted(complete, key=by_spec.get)
        for position, spec in enumerate(ranked, start=1):
            ranks[spec].append(position)
    print("\nmean rank over data sets (1 is best):")
    for spec in sorted(ranks, key=lambda s: np.mean(ranks[s])):
        print(f"  {np.mean(ranks[spec]):.1f}  {spec}")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"scores": scores, "ranks": ranks}, indent=2) + "\n")
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
