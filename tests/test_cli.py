"""The ``probreg`` command end to end, and its one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import probreg as probreg_api
from probreg.calibration import SCORES
from probreg.errors import UsageError
from probreg.params import parse_spec

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def probreg(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "probreg", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=timeout,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess, fragment: str, code: int = 2
) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr


def test_help_and_list_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from probreg.cli import main\n"
        "for args in (['--help'], ['list'], ['run', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "spiral" in result.stdout and "components" in result.stdout


def test_list_json_describes_parameters():
    result = probreg("list", "--json")
    data = json.loads(result.stdout)
    mdn = next(h for h in data["head"] if h["name"] == "mdn")
    components = next(p for p in mdn["params"] if p["name"] == "components")
    assert components["default"] == "20" and components["type"].startswith("int")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--head", "nope"], "unknown head 'nope'; available heads:"),
        (["--dataset", "nope"], "unknown dataset 'nope'; available datasets:"),
        (["--sampler", "nope"], "unknown sampler 'nope'"),
        (["--head", "mdn:"], "malformed head spec 'mdn:'"),
        (["--head", "mdn:components"], "malformed option 'components'"),
        (["--head", "mdn:components=0"], "'components': 0 is below the minimum 1"),
        (["--head", "mdn:components=2.5"], "'2.5' is not an integer"),
        (
            ["--head", "mdn:colour=red"],
            "unknown parameter 'colour' for head 'mdn'; allowed parameters:",
        ),
        (["--dataset", "spiral:n=abc"], "'abc' is not an integer"),
        (["--epochs", "0"], "0 is not in the range x>=1"),
        (["--epochs", "-3"], "is not in the range"),
        (["--epochs", "many"], "'many' is not a valid integer"),
        (["--dataset", "spiral:n=2,val=1,test=1"], "'n': 2 is below the minimum 3"),
        (["--monitor", "nll,accuracy"], "unknown monitor 'accuracy' in 'nll,accuracy'"),
        (["--monitor", "rmse,rmse"], "names 'rmse' twice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, fragment, tmp_path):
    result = probreg("run", *args, "--output", str(tmp_path / "out"), timeout=60)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_existing_output_needs_force(tmp_path):
    from probreg import rundir

    out = tmp_path / "out"
    with rundir.claim(out) as claim:  # a folder probreg made (it holds the marker)
        (claim.staging / "metrics.json").write_text("{}")
    result = probreg("run", "--output", str(out))
    assert_one_line_error(result, "already exists; use --force to replace it")  # no keyword


def test_force_refuses_to_wipe_an_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    (tmp_path / "metrics.json").write_text("{}")  # file names do not make a folder probreg's
    result = probreg("run", "--output", str(tmp_path), "--force")
    assert_one_line_error(result, "was not made by probreg")
    assert (tmp_path / "notes.txt").read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = probreg("run", "--output", str(locked / "run"))
    assert_one_line_error(result, "cannot write to output directory")


def test_unwritable_output_as_root_too(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = probreg("run", "--output", str(blocker / "run"))
    assert_one_line_error(result, "cannot write to output directory")


def test_run_end_to_end_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    start = time.time()
    result = probreg(
        "run",
        "--dataset",
        "spiral:n=1000,val=200,test=500",
        "--head",
        "mdn:components=4,hidden=16+16",
        "--epochs",
        "3",
        "--seed",
        "1",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert time.time() - start < 120
    for name in (
        "metrics.json",
        "config.json",
        "model.keras",
        "history.json",
        "samples.png",
        "density.png",
        "training.png",
        "calibration.png",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "dataset",
        "head",
        "sampler",
        "seed",
        "epochs",
        "train_seconds",
        "status",
        "test",
        "bayes_nll",
    ):
        assert key in metrics
    assert metrics["status"] == "completed" and metrics["epochs"] == 3 and metrics["seed"] == 1
    assert set(metrics["test"]) == {"nll", "crps", "rmse", "coverage_90", *SCORES}
    assert metrics["bayes_nll"] < metrics["test"]["nll"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 3 and len(history["val_loss"]) == 3
    # The summary table is printed on stdout; progress went to stderr.
    assert "test nll" in result.stdout and "Bayes limit" in result.stdout
    assert "epoch" in result.stderr
    # No temp files left; the only hidden file is the marker that makes the folder probreg's.
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".probreg.json"]


def test_a_csv_path_with_a_comma_is_quoted_and_the_run_loads_back(tmp_path):
    """Specs split at commas, so a value holding one is quoted; the run records the quoted
    spec, which parses back to the same file."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=200)
    data = tmp_path / "a,b.csv"
    data.write_text(
        "x,y\n"
        + "".join(f"{a},{a + 0.1 * e}\n" for a, e in zip(x, rng.normal(size=200), strict=True))
    )
    result = probreg(
        "run",
        "--dataset",
        f'csv:path="{data}",x=x,y=y',
        "--head",
        "mlp:hidden=8,epochs=1",
        "--quiet",
        "--output",
        str(tmp_path / "r"),
    )
    assert result.returncode == 0, result.stderr
    loaded = probreg_api.load_run(tmp_path / "r")
    assert parse_spec(loaded.config["dataset"]["spec"])[1]["path"] == str(data)
    unquoted = probreg("run", "--dataset", f"csv:path={data},x=x,y=y", "-o", str(tmp_path / "u"))
    assert_one_line_error(unquoted, 'quote a value that holds a comma: path="a,b.csv"')
    assert not (tmp_path / "u").exists()


def test_quiet_prints_only_the_summary(tmp_path):
    result = probreg(
        "run",
        "--dataset",
        "spiral:n=300,val=50,test=50",
        "--head",
        "mlp:hidden=8",
        "--epochs",
        "1",
        "--quiet",
        "--output",
        str(tmp_path / "q"),
    )
    assert result.returncode == 0, result.stderr
    assert "epoch" not in result.stderr
    assert "test nll" in result.stdout


@pytest.mark.parametrize("level", [None, "0"])
def test_native_tensorflow_chatter_is_hidden_by_default(tmp_path, level):
    """Unset, the command hides TensorFlow's start-up notices; set (0 here), it shows them."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "probreg",
            "run",
            "--dataset",
            "spiral:n=300,val=50,test=50",
            "--head",
            "mlp:hidden=8",
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    native = "I0000" in result.stderr or "cuda" in result.stderr.lower()
    assert native is (level == "0")
    assert "Training mlp" in result.stderr  # probreg's own progress still shows


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seeds", "all"], "'all' only applies to --splits"),
        (["--dataset", "uci:path=nowhere", "--splits", "0,0"], "--splits lists a split twice"),
        (["--seeds", "1,1"], "--seeds lists a seed twice"),
        (["--seeds", "1,"], "'1,' is not comma-separated integers >= 0, e.g. 0,1,2"),
        (["--seeds", "1_0"], "'1_0' is not comma-separated integers >= 0, e.g. 0,1,2"),
        (["--seed", "3", "--seeds", "1,2"], "give --seed or --seeds, not both"),
    ],
)
def test_bad_replicate_lists_give_one_line(args, fragment, tmp_path):
    result = probreg(
        "compare", "--head", "mlp", *args, "--output", str(tmp_path / "out"), timeout=60
    )
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("command", ["run", "compare", "tune"])
def test_an_empty_output_path_is_refused_not_replaced(command, tmp_path, monkeypatch):
    """``-o "$UNSET"`` must not quietly write to the default folder instead; nor may
    ``output=""`` from Python."""
    result = probreg(command, "--dataset", "spiral:n=50,val=20,test=20", "-o", "", cwd=tmp_path)
    assert_one_line_error(result, "an empty path; give one, or leave the option out")
    monkeypatch.chdir(tmp_path)
    function = getattr(probreg_api, command)
    with pytest.raises(UsageError, match="the output path is empty"):
        function("spiral:n=50,val=20,test=20", *(["mdn"] if command == "tune" else []), output=" ")
    assert list(tmp_path.iterdir()) == []


def test_bare_probreg_prints_its_help_and_a_closed_pipe_is_quiet():
    bare = probreg(timeout=60)
    assert bare.returncode == 2 and "Error" not in bare.stderr
    assert bare.stderr.startswith("Usage: probreg") and "Commands:" in bare.stderr
    for command in ("list", "plugins"):  # `probreg list | head -1`: the reader is gone
        process = subprocess.Popen(
            [sys.executable, "-m", "probreg", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        process.stdout.close()
        stderr = process.communicate(timeout=60)[1]
        assert process.returncode == 141 and stderr == "", stderr


@pytest.mark.parametrize(
    "args",
    [["--head", "mdn:scale_floor=1e300"], ["--head", "mdn:weight_decay=1e39"]],
)
def test_numbers_that_do_not_fit_float32_are_one_clean_line(args, tmp_path):
    result = probreg("run", *args, "--output", str(tmp_path / "out"), timeout=60)
    assert_one_line_error(result, "does not fit in float32")
    assert "RuntimeWarning" not in result.stderr and not (tmp_path / "out").exists()
