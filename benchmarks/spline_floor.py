"""How close can the ``spline`` family itself get to a density with hard edges?

Bishop's exact ``p(t | x)`` is uniform on one to three intervals, and the spline family stays
0.05-0.07 nats from it (``docs/families.md``). This separates what the family can draw from
what the network learns: for each support below, one spline with no input (the family's own
Keras layer on a constant input, so its parameters are free) is fitted by Adam to a million
draws from a uniform density on that support and scored on a million fresh ones. The gap is
the mean of ``log p - log q`` there: the KL divergence, with no estimation error to speak of.

    python benchmarks/spline_floor.py --json benchmarks/results/spline_floor.json
    python benchmarks/docs_tables.py    # the docs table, from that JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

#: name -> intervals, in standardised units (a bishop slice with one, two or three branches)
SUPPORTS = {
    "one interval": [(-0.6, 0.6)],
    "two intervals": [(-1.2, -0.6), (0.3, 0.7)],
    "three intervals": [(-1.5, -1.1), (-0.3, 0.1), (0.8, 1.3)],
}
BINS = (32, 64)
ROWS = 2**20
BATCH = 4096
EPOCHS = 80  # 20,480 steps
#: The bin floor of the committed results (the default then; 1e-5 since, with the affine map).
FLOOR = 1e-4


def draw(rng: np.random.Generator, intervals: list[tuple[float, float]], n: int) -> np.ndarray:
    """``n`` draws from the uniform density on the union of ``intervals``."""
    lengths = np.array([high - low for low, high in intervals])
    which = rng.choice(len(intervals), size=n, p=lengths / lengths.sum())
    lows = np.array([low for low, _ in intervals])[which]
    return (lows + rng.uniform(size=n) * lengths[which])[:, None].astype(np.float32)


def fit_one(support: str, bins: int, seed: int = 0) -> dict:
    """Fit one input-free spline to ``support``; its KL divergence from the exact density."""
    import keras

    from probreg.families import spline

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    intervals = SUPPORTS[support]
    bound, floor = 4.0, FLOOR
    layer = spline.layer_class()(1, bins=bins, bound=bound, min_bin=floor)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, layer(inputs))

    def nll(y, packed):
        return -spline.log_prob(packed, y, bins, 1, bound)

    model.compile(keras.optimizers.Adam(3e-3), nll, jit_compile=True)
    y = draw(rng, intervals, ROWS)
    ones = np.ones_like(y)
    started = time.perf_counter()
    model.fit(ones, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    seconds = time.perf_counter() - started
    fresh = draw(rng, intervals, ROWS)
    packed = np.asarray(model.predict(ones[:1], verbose=0))
    chunk = 2**16
    flow = spline.SplineFlow.from_packed(np.repeat(packed, chunk, axis=0), bins, 1, bound)
    log_q = np.concatenate([flow.log_prob(fresh[i : i + chunk]) for i in range(0, ROWS, chunk)])
    log_p = -np.log(sum(high - low for low, high in intervals))
    return {
        "support": support,
        "edges": 2 * len(intervals),
        "bins": bins,
        "gap": float(np.mean(log_p - log_q)),
        "steps": EPOCHS * (ROWS // BATCH),
        "seconds": round(seconds, 1),
    }


def table(results: list[dict]) -> str:
    """The Markdown table the docs show."""
    lines = ["| support | hard edges | bins | gap (nats) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['support']} | {r['edges']} | {r['bins']} | {r['gap']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    import keras

    results = []
    for support in SUPPORTS:
        for bins in BINS:
            results.append(fit_one(support, bins))
            print(json.dumps(results[-1]), flush=True)
    print(table(results))
    if args.json:
        machine = f"{os.cpu_count()} CPU cores ({platform.machine()})"
        about = {"machine": machine, "python": platform.python_version()}
        about["keras"] = f"{keras.__version__} ({keras.backend.backend()})"
        args.json.write_text(json.dumps({**about, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
