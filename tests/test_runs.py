"""Saving and loading runs: identical predictions, Keras safe mode, clear errors for bad runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import probreg
from probreg import plugins
from probreg.calibration import SCORES
from probreg.errors import PluginError, UsageError


def test_api_result_holds_metrics_model_and_distribution(small_run):
    assert small_run.status == "completed"
    assert set(small_run.metrics["test"]) == {"nll", "crps", "rmse", "coverage_90", *SCORES}
    assert small_run.distribution.batch_size == len(small_run.data.x_test)
    # The metrics are those of the returned distribution on the test data.
    nll = -np.mean(small_run.distribution.log_prob(small_run.data.y_test))
    assert small_run.metrics["test"]["nll"] == pytest.approx(nll)
    on_disk = json.loads((small_run.run_dir / "metrics.json").read_text())
    assert on_disk["test"] == small_run.metrics["test"]


def test_save_load_predict_gives_identical_outputs(small_run):
    loaded = probreg.load_run(small_run.run_dir)
    x = small_run.data.x_test
    np.testing.assert_array_equal(small_run.predictor.outputs(x), loaded.predictor.outputs(x))
    np.testing.assert_array_equal(
        loaded.distribution(x).log_prob(small_run.data.y_test),
        small_run.distribution.log_prob(small_run.data.y_test),
    )
    assert loaded.sampler.spec == "ancestral"
    assert loaded.config["head"]["package"] == "probreg.default_plugins.mdn"


def test_plain_keras_load_model_needs_no_custom_objects(small_run):
    """A fresh process reloads the .keras file with keras.saving.load_model and nothing else."""
    code = (
        "import sys, numpy as np, keras, probreg.layers, probreg.losses\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "assert model.loss.__class__.__name__ == 'FamilyNLL'\n"
        "assert model.loss.family.spec == 'gaussian_mixture:components=5'\n"
        "print(model.predict(np.zeros((2, 1), 'float32'), verbose=0).shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(small_run.run_dir / "model.keras")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "(2, 15)" in result.stdout  # 5 components: 5 + 2 * 5 * 1 columns


def test_missing_run_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        probreg.load_run(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="has no config.json"):
        probreg.load_run(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupt_or_truncated_model_is_a_one_line_error(small_run, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    model = copy / "model.keras"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "garbage":
        model.write_bytes(b"not a zip file at all")
    else:
        model.unlink()
    with pytest.raises(
        UsageError, match="model file .* (corrupt or truncated|is missing)"
    ) as error:
        probreg.load_run(copy)
    assert "not found" not in str(error.value).lower()  # Keras's own word for a non-zip file


def test_run_from_an_uninstalled_plugin_names_the_package(small_run, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["head"] = {"spec": "ghost:depth=3", "package": "probreg-ghost", "version": "1.2.0"}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(PluginError, match="head 'ghost' from plugin package 'probreg-ghost' 1.2.0"):
        probreg.load_run(copy)
    # installed but broken: the reason it failed to load, not "not installed"
    with monkeypatch.context() as patch:
        patch.setitem(plugins._broken, "probreg_ghost", "ImportError: no module named 'ghostdep'")
        with pytest.raises(PluginError) as caught:
            probreg.load_run(copy)
    assert str(caught.value).endswith(
        "'probreg-ghost' 1.2.0, which failed to load (ImportError: no module named 'ghostdep'; "
        "fix or reinstall it)"
    )
    # a family from a package that is gone is named too (the head itself is built in)
    config = json.loads((small_run.run_dir / "config.json").read_text())
    assert config["family"]["spec"].startswith("gaussian_mixture")
    config["head"]["spec"] = "mdn:family=laplace,components=5,hidden=32+32"
    config["family"] = {"spec": "laplace", "package": "probreg-laplace", "version": "0.1.0"}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(PluginError, match="family 'laplace' from plugin package 'probreg-laplace'"):
        probreg.load_run(copy)


def test_corrupt_config_is_a_one_line_error(small_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    (copy / "config.json").write_text("{ half written")
    with pytest.raises(UsageError, match="config.json' is corrupt"):
        probreg.load_run(copy)


def test_model_files_with_code_are_refused_by_safe_mode(small_run, tmp_path):
    """A .keras file whose Lambda layer would run arbitrary code is not loaded."""
    import keras

    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    inputs = keras.Input((1,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, outputs).save(copy / "model.keras")
    with pytest.raises(UsageError, match="contains code .* safe mode refuses"):
        probreg.load_run(copy)


def test_a_constant_input_column_draws_its_pictures_without_warnings(tmp_path, recwarn):
    """A constant input carries no information but is allowed; its density map still gets a
    grid of nonzero width, so matplotlib has nothing to warn about."""
    from probreg import api

    y = np.random.default_rng(0).normal(size=200)
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"1.0,{value}\n" for value in y))
    run = api.run(
        f"csv:path={data},x=x,y=y", "mdn:hidden=8,components=2,epochs=2", output=tmp_path / "r"
    )
    assert (run.run_dir / "density.png").is_file()
    assert not [w for w in recwarn if "identical low and high" in str(w.message)]
