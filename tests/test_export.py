"""``probreg export``: the exported model computes the run model's parameters, and the helper
turns them into the run's distribution without TensorFlow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from probreg.errors import UsageError
from probreg.export import METADATA, OnnxModel, distribution, export_run, read_metadata

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def random_inputs(run, n: int = 64, seed: int = 0) -> np.ndarray:
    """Inputs spread over (and beyond) the training range, in data units."""
    x = run.predictor.x_scaling
    rng = np.random.default_rng(seed)
    return (x.mean + 2.0 * x.scale * rng.standard_normal((n, len(x.mean)))).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_export(small_run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from probreg.runs import load_run

    folder = export_run(small_run.run_dir, tmp_path_factory.mktemp("export") / "onnx", "onnx")
    return load_run(small_run.run_dir), folder


def test_onnx_parameters_equal_the_keras_models(onnx_export):
    run, folder = onnx_export
    x = random_inputs(run)
    exported = OnnxModel(folder).params(x)
    np.testing.assert_allclose(exported, run.predictor.outputs(x), rtol=1e-5, atol=1e-5)


def test_inputs_of_the_wrong_shape_or_not_finite_are_refused_not_reshaped(onnx_export):
    """A row with the wrong number of values was reshaped into other rows, giving predictions
    for inputs nobody asked about; both paths now refuse it in one line. Rows that hold the
    model's number of values in another shape (a sequence model's windows) still work."""
    run, folder = onnx_export
    exported = OnnxModel(folder)
    x = random_inputs(run, n=4)
    expected = exported.params(x)
    np.testing.assert_array_equal(exported.params(x[:, 0]), expected)  # 1-D: rows of one value
    np.testing.assert_array_equal(exported.params(x.reshape(4, 1, 1)), expected)
    np.testing.assert_allclose(run.predictor.outputs(x.reshape(4, 1, 1)), expected, atol=1e-5)
    for bad, fragment in [
        ([[0.5, 1.0]], "takes rows of 1 input value (shape (1,)); got an array of shape (1, 2)"),
        (np.zeros((2, 2, 1)), "got an array of shape (2, 2, 1)"),
        ([[0.5], [np.nan]], "model input row 2 holds a NaN or infinite value"),
        ([["a"]], "model inputs must be a rectangular array of numbers"),
    ]:
        for predict in (exported.params, exported.distribution, run.distribution):
            with pytest.raises(UsageError, match=re.escape(fragment)):
                predict(bad)
    with pytest.raises(UsageError, match="a model input is too large for float32"):
        exported.params([[1e39]])


def test_the_helper_gives_the_runs_distribution(onnx_export):
    run, folder = onnx_export
    x = random_inputs(run, seed=1)
    ours, theirs = OnnxModel(folder).distribution(x), run.distribution(x)
    y = theirs.sample(np.random.default_rng(0), 1)[0]
    np.testing.assert_allclose(ours.mean(), theirs.mean(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.log_prob(y), theirs.log_prob(y), rtol=1e-4, atol=1e-4)
    metadata = read_metadata(folder)
    assert metadata["x_names"] == run.x_names and metadata["format"] == "onnx"


def test_the_helper_needs_no_tensorflow(onnx_export, tmp_path):
    run, folder = onnx_export
    x = random_inputs(run, seed=2)
    np.save(tmp_path / "params.npy", run.predictor.outputs(x))
    np.save(tmp_path / "mean.npy", run.distribution(x).mean())
    code = (
        "import sys, numpy as np\n"
        "from probreg.export import distribution\n"
        f"d = distribution(np.load({str(tmp_path / 'params.npy')!r}), {str(folder)!r})\n"
        f"np.testing.assert_allclose(d.mean(), np.load({str(tmp_path / 'mean.npy')!r}), "
        "rtol=1e-6)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr


def test_saved_model_and_litert_compute_the_same_parameters(small_run, tmp_path):
    import tensorflow as tf

    from probreg.runs import load_run

    run = load_run(small_run.run_dir)
    x = random_inputs(run, seed=3)
    expected = run.predictor.outputs(x)
    saved = export_run(small_run.run_dir, tmp_path / "sm", "saved_model")
    served = tf.saved_model.load(str(saved / read_metadata(saved)["file"]))
    np.testing.assert_allclose(served.serve(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    lite = export_run(small_run.run_dir, tmp_path / "lite", "litert")
    interpreter = tf.lite.Interpreter(model_path=str(lite / "model.tflite"))
    given, wanted = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    lite_params = interpreter.get_tensor(wanted["index"])
    np.testing.assert_allclose(lite_params, expected, rtol=1e-5, atol=1e-5)
    d = distribution(lite_params, lite)
    np.testing.assert_allclose(d.mean(), run.distribution(x).mean(), rtol=1e-5, atol=1e-5)


def test_the_command_writes_and_refuses_to_overwrite(small_run, tmp_path):
    pytest.importorskip("tf2onnx")
    out = tmp_path / "exported"
    args = [sys.executable, "-m", "probreg", "export", str(small_run.run_dir), "-o", str(out)]
    first = subprocess.run(args, capture_output=True, text=True, env=ENV)
    assert first.returncode == 0, first.stderr
    assert json.loads((out / METADATA).read_text())["file"] == "model.onnx"
    again = subprocess.run(args, capture_output=True, text=True, env=ENV)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"Error: output '{out}' already exists; use --force to replace it"
    )
    forced = subprocess.run([*args, "--force"], capture_output=True, text=True, env=ENV)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((out / METADATA).read_text())["files"] == ["model.onnx"]
    (out / "README.md").write_text("mine")  # a file of yours in the export: never deleted
    kept = subprocess.run([*args, "--force"], capture_output=True, text=True, env=ENV)
    assert kept.returncode == 2 and "did not write there (README.md)" in kept.stderr
    assert (out / "README.md").read_text() == "mine"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    refused = subprocess.run(
        [*args[:-1], str(tmp_path / "mine"), "--force"], capture_output=True, text=True, env=ENV
    )
    assert refused.returncode == 2 and "not a probreg export" in refused.stderr
    assert (tmp_path / "mine" / "keep.txt").exists()


def test_litert_on_a_backend_keras_cannot_export_it_from_is_one_line_before_any_folder(
    small_run, tmp_path, monkeypatch
):
    """Keras exports LiteRT from TensorFlow (or PyTorch) only: on JAX that is said at once,
    with the way round it, instead of Keras's traceback from inside the export."""
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(UsageError) as caught:
        export_run(small_run.run_dir, tmp_path / "lite", "litert")
    assert str(caught.value) == (
        "exporting to litert needs the tensorflow backend, not jax; export with "
        "KERAS_BACKEND=tensorflow (the run folder is the same)"
    )
    assert not (tmp_path / "lite").exists()


def test_an_onnx_graph_onnxruntime_cannot_run_is_refused_and_leaves_nothing(tmp_path):
    """tf2onnx writes exact gelu as Erfc, which onnxruntime lacks: the export is checked in
    onnxruntime and refused in one line, instead of a file that fails whoever deploys it."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    import keras

    from probreg import api

    if keras.backend.backend() != "tensorflow":
        pytest.skip("ONNX export runs on the TensorFlow backend")
    run = api.run(
        "spiral:n=300,val=50,test=50",
        "mdn:hidden=8,components=2,activation=gelu,epochs=1",
        output=tmp_path / "gelu",
        quiet=True,
    )
    with pytest.raises(
        UsageError, match=r"does not run in onnxruntime \(it has no Erfc operator\)"
    ):
        export_run(run.run_dir, format="onnx")
    assert not (run.run_dir / "export").exists()


def test_predicting_from_an_export_folder_says_what_it_is(onnx_export):
    from probreg.runs import load_run

    _, folder = onnx_export
    with pytest.raises(UsageError, match="is a probreg export, not a run: .*OnnxModel"):
        load_run(folder)


def test_an_empty_output_folder_is_used_as_given(small_run, tmp_path):
    """As for run: an empty folder holds nothing of yours, so no --force is needed."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_run(small_run.run_dir, empty, "saved_model") == empty
    assert json.loads((empty / METADATA).read_text())["format"] == "saved_model"
