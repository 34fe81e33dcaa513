"""The core runs on TensorFlow and JAX: same loss to 1e-5, and a whole run on JAX.

JAX tests run in subprocesses with KERAS_BACKEND=jax (a process has one Keras backend).
Skipped when JAX is not installed, unless PROBREG_REQUIRE_JAX=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from probreg import plugins
from probreg.losses import GaussianMixtureNLL, MixtureMeanSquaredError

HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(
    not HAS_JAX and os.environ.get("PROBREG_REQUIRE_JAX") != "1", reason="JAX is not installed"
)

# Computes the built-in losses and a forward pass with fixed weights on the current backend.
PROBE = r"""
import json, sys
import numpy as np, keras
from probreg import plugins
from probreg.losses import GaussianMixtureNLL, MixtureMeanSquaredError
rng = np.random.default_rng(0)
k, d = 5, 2
logits = rng.normal(size=(64, k))
packed = np.concatenate([logits - np.log(np.exp(logits).sum(1, keepdims=True)),
                         rng.normal(size=(64, k * d)), np.exp(rng.normal(size=(64, k * d)))], 1)
packed, y = packed.astype("float32"), rng.normal(size=(64, d)).astype("float32")
head = plugins.create("head", "mdn:components=3,hidden=8")
keras.utils.set_random_seed(1)
model = head.build(2, 2)
model.set_weights([w.astype("float32") for w in np.load(sys.argv[1], allow_pickle=True)])
out = keras.ops.convert_to_numpy(model(np.linspace(-1, 1, 20, dtype="float32").reshape(10, 2)))
print(json.dumps({
    "backend": keras.backend.backend(),
    "nll": float(GaussianMixtureNLL(k, d)(y, packed)),
    "mse": float(MixtureMeanSquaredError(k, d)(y, packed)),
    "outputs": out.tolist(),
}))
"""


def _probe(weights_file, backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(weights_file)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = plugins.create("head", "mdn:components=3,hidden=8").build(2, 2)
    path = tmp_path_factory.mktemp("weights") / "weights.npy"
    np.save(path, np.array(model.get_weights(), dtype=object), allow_pickle=True)
    return path


@needs_jax
def test_losses_and_forward_pass_agree_across_backends(weights_file):
    tensorflow, jax = _probe(weights_file, "tensorflow"), _probe(weights_file, "jax")
    assert (tensorflow["backend"], jax["backend"]) == ("tensorflow", "jax")
    assert jax["nll"] == pytest.approx(tensorflow["nll"], abs=1e-5, rel=1e-6)
    assert jax["mse"] == pytest.approx(tensorflow["mse"], abs=1e-5, rel=1e-6)
    np.testing.assert_allclose(jax["outputs"], tensorflow["outputs"], rtol=1e-5, atol=1e-5)


def test_the_in_process_backend_matches_the_probe(weights_file):
    """This process's backend gives the same numbers as its subprocess probe (sanity check)."""
    probe = _probe(weights_file, keras.backend.backend())
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 5))
    packed = np.concatenate(
        [
            logits - np.log(np.exp(logits).sum(1, keepdims=True)),
            rng.normal(size=(64, 10)),
            np.exp(rng.normal(size=(64, 10))),
        ],
        1,
    ).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    assert float(GaussianMixtureNLL(5, 2)(y, packed)) == pytest.approx(probe["nll"], abs=1e-6)
    assert float(MixtureMeanSquaredError(5, 2)(y, packed)) == pytest.approx(probe["mse"], abs=1e-6)


@needs_jax
def test_auto_compiles_even_a_one_step_run_on_jax():
    """Uncompiled JAX runs op by op (many times slower), so "auto" always compiles there."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    probe = (
        "from probreg import plugins, training; "
        "print(training.uses_xla(plugins.create('head', 'mdn').training(), 1))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "True"


@needs_jax
def test_a_whole_run_and_predict_on_jax(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "run"
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "probreg",
            "run",
            "--dataset",
            "spiral:n=800,val=200,test=400",
            "--head",
            "mdn:components=4,hidden=16+16",
            "--epochs",
            "3",
            "--output",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["versions"]["backend"] == "jax" and np.isfinite(metrics["test"]["nll"])
    (tmp_path / "new.csv").write_text("x\n1\n2\n")
    for backend in ("jax", "tensorflow"):  # a model saved on JAX loads on either backend
        predicted = subprocess.run(
            [
                sys.executable,
                "-m",
                "probreg",
                "predict",
                str(out),
                "--input",
                str(tmp_path / "new.csv"),
            ],
            capture_output=True,
            text=True,
            env={**env, "KERAS_BACKEND": backend},
        )
        assert predicted.returncode == 0, predicted.stderr
        assert predicted.stdout.startswith("x,y_mean")


# Two identical runs in one JAX process; the second should find its XLA programs cached.
CACHE_PROBE = r"""
import json, os
import jax.monitoring
from probreg import api, training
hits = []
jax.monitoring.register_event_listener(
    lambda event, **_: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
nll = []
for _ in range(2):
    before = len(hits)
    result = api.run("spiral:n=300,val=100,test=200", "mdn:components=3,hidden=16,epochs=3",
                     seed=4, write=False, quiet=True)
    nll.append(result.metrics["test"]["nll"])
    hits_this_run = len(hits) - before
folder = training.share_compilations()
print(json.dumps({"hits": hits_this_run, "nll": nll, "folder": folder,
                  "entries": len(os.listdir(folder)) if folder else 0,
                  "mode": os.stat(folder).st_mode & 0o777 if folder else None}))
"""


@needs_jax
@pytest.mark.parametrize("cache", ["private", "user", "disabled"])
def test_jax_runs_share_compilations(tmp_path, cache: str) -> None:
    """A second model of the same architecture is served compiled programs from the cache
    (same results); probreg's own folder is private and gone after exit, a user's is used
    and kept, and a cache the user switched off stays off."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache == "user":
        env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "mine")
        # JAX's own threshold (1 s) would leave out a fast machine's programs.
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    if cache == "disabled":
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    done = subprocess.run(
        [sys.executable, "-c", CACHE_PROBE], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["nll"][0] == out["nll"][1]
    if cache == "disabled":
        assert out["hits"] == 0 and out["folder"] is None
        return
    assert out["hits"] > 0
    assert out["entries"] > 0
    if cache == "user":
        assert out["folder"] == str(tmp_path / "mine")
        assert os.path.isdir(out["folder"])
    else:
        assert os.path.basename(out["folder"]).startswith("probreg-xla-")
        assert out["mode"] == 0o700
        assert not os.path.exists(out["folder"])
