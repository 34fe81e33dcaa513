"""``probreg predict`` and ``probreg.predict.predict``: outputs and the bad-input battery."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from probreg import plugins
from probreg.errors import UsageError
from probreg.predict import predict

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], float)


@pytest.fixture
def inputs(tmp_path):
    return write_csv(tmp_path / "new.csv", ["id", "x"], [[1, 0.5], [2, 2.5], [3, 4.0]])


def test_mean_quantiles_samples_and_params(small_run, inputs, tmp_path):
    out = tmp_path / "out.csv"
    header, table = predict(
        small_run.run_dir,
        inputs,
        out,
        samples=4,
        quantiles=[0.05, 0.5, 0.95],
        mean=True,
        params=True,
        seed=3,
    )
    file_header, values = read_csv(out)
    assert file_header == header
    np.testing.assert_allclose(values, table, rtol=1e-8)
    assert header[:5] == ["x", "y_mean", "y_q0.05", "y_q0.5", "y_q0.95"]
    assert header[5:9] == [f"y_sample_{i}" for i in range(1, 5)]
    assert header[9:] == [f"weight_{k}" for k in range(1, 6)] + [
        f"y_mean_{k}" for k in range(1, 6)
    ] + [f"y_scale_{k}" for k in range(1, 6)]
    # The numbers are the run's own predictive distribution at these inputs.
    distribution = small_run.predictor.distribution(np.array([[0.5], [2.5], [4.0]]))
    np.testing.assert_allclose(values[:, 1], distribution.mean()[:, 0], rtol=1e-7)
    np.testing.assert_allclose(values[:, 3], distribution.quantile(0.5)[:, 0], rtol=1e-7)
    assert np.all(values[:, 2] < values[:, 3]) and np.all(values[:, 3] < values[:, 4])
    np.testing.assert_allclose(values[:, 9:14].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(values[:, 14:19], distribution.means[:, :, 0], rtol=1e-7)


def test_same_seed_same_samples(small_run, inputs, tmp_path):
    first = predict(small_run.run_dir, inputs, tmp_path / "a.csv", samples=5, seed=9)[1]
    second = predict(small_run.run_dir, inputs, tmp_path / "b.csv", samples=5, seed=9)[1]
    np.testing.assert_array_equal(first, second)


def test_mean_is_the_default_and_sampler_can_be_overridden(small_run, inputs, tmp_path):
    header, _ = predict(small_run.run_dir, inputs, tmp_path / "a.csv")
    assert header == ["x", "y_mean"]
    _, table = predict(small_run.run_dir, inputs, tmp_path / "b.csv", samples=2, sampler="mode")
    np.testing.assert_array_equal(table[:, 1], table[:, 2])  # the mode sampler repeats one point


@pytest.mark.parametrize(
    ("rows", "header", "fragment"),
    [
        ([[1, 0.5]], ["id", "z"], "has no column 'x'; its columns are: id, z"),
        ([[1, "abc"]], ["id", "x"], "line 2, column 'x': 'abc' is not a number"),
        ([[1, 0.5], [2, "nan"]], ["id", "x"], "line 3, column 'x': 'nan' is not a finite number"),
        ([[1, "inf"]], ["id", "x"], "'inf' is not a finite number"),
        ([[1, 0.5, 7]], ["id", "x"], "line 2 has 3 fields but the header has 2"),
        ([], ["id", "x"], "has a header but no data rows"),
    ],
)
def test_bad_prediction_inputs(small_run, tmp_path, rows, header, fragment):
    bad = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(UsageError, match=fragment):
        predict(small_run.run_dir, bad, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_wrong_argument_types_are_one_line_errors(small_run, inputs, tmp_path):
    for options, fragment in [
        ({"quantiles": 0.5}, "quantiles must be a list of levels, e.g. [0.05, 0.95], not 0.5"),
        ({"quantiles": ["0.5"]}, "quantile levels must lie strictly between 0 and 1, not '0.5'"),
        ({"quantiles": np.array(0.5)}, "quantiles must be a list of levels"),
        ({"samples": "3"}, "--samples must be an integer of 0 or more, not '3'"),
        ({"seed": -1}, "seed -1 is out of range"),
    ]:
        with pytest.raises(UsageError, match=re.escape(fragment)):
            predict(small_run.run_dir, inputs, tmp_path / "out.csv", **options)
    assert not (tmp_path / "out.csv").exists()
    header, _ = predict(small_run.run_dir, inputs, "-", quantiles=np.array([0.1, 0.9]))
    assert header == ["x", "y_q0.1", "y_q0.9"]


def test_empty_and_missing_input_files(small_run, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match="is empty"):
        predict(small_run.run_dir, tmp_path / "empty.csv", tmp_path / "out.csv")
    with pytest.raises(UsageError, match="does not exist"):
        predict(small_run.run_dir, tmp_path / "missing.csv", tmp_path / "out.csv")


def test_existing_output_needs_force(small_run, inputs, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    with pytest.raises(UsageError, match="already exists; use --force"):
        predict(small_run.run_dir, inputs, out)
    assert out.read_text() == "keep me"
    predict(small_run.run_dir, inputs, out, force=True)
    assert out.read_text().startswith("x,y_mean")


def test_cli_predict_to_stdout_and_errors(small_run, inputs, tmp_path):
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "probreg", "predict", *a], capture_output=True, text=True, env=ENV
    )
    ok = run(str(small_run.run_dir), "--input", str(inputs), "--quantiles", "0.1,0.9")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "x,y_q0.1,y_q0.9"
    for args, fragment in [
        ((str(tmp_path / "nope"), "--input", str(inputs)), "run directory"),
        (
            (str(small_run.run_dir), "--input", str(inputs), "--quantiles", "0.5,1.5"),
            "strictly between 0 and 1",
        ),
        (
            (str(small_run.run_dir), "--input", str(inputs), "--quantiles", "a,b"),
            "not a comma-separated list",
        ),
        (
            (str(small_run.run_dir), "--input", str(inputs), "--quantiles", "0.5,"),
            "not a comma-separated list",
        ),
        (  # a level given twice would write one column name twice
            (str(small_run.run_dir), "--input", str(inputs), "--quantiles", "0.1,0.10"),
            "quantile level 0.1 is given twice",
        ),
        (
            (str(small_run.run_dir), "--input", str(inputs), "--samples", "-1"),
            "-1 is not in the range",
        ),
        (  # no draws asked for: said, not silently the mean instead
            (str(small_run.run_dir), "--input", str(inputs), "--samples", "0"),
            "0 is not in the range x>=1",
        ),
        (  # it would do nothing
            (str(small_run.run_dir), "--input", str(inputs), "--sampler", "mode"),
            "--sampler only steers --samples draws; add --samples N",
        ),
        (
            (str(small_run.run_dir), "--input", str(inputs), "--seed", "5"),
            "--seed only steers --samples draws",
        ),
    ]:
        result = run(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("Error: ") == 1 and fragment in result.stderr
        assert "Traceback" not in result.stderr


def test_inputs_from_standard_input_and_a_fifo_match_a_file(small_run, inputs, tmp_path):
    """``-i -`` and a named pipe are read once, like a file; a dataset still needs a file."""
    command = [sys.executable, "-m", "probreg", "predict", str(small_run.run_dir), "-i"]
    expected = subprocess.run([*command, str(inputs)], capture_output=True, text=True, env=ENV)
    assert expected.returncode == 0 and expected.stdout.startswith("x,y_mean")
    piped = subprocess.run(
        [*command, "-"], input=inputs.read_text(), capture_output=True, text=True, env=ENV
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected.stdout
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [*command, str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    writer = threading.Thread(target=fifo.write_text, args=(inputs.read_text(),), daemon=True)
    writer.start()  # blocks until predict opens the pipe
    out, err = process.communicate(timeout=120)
    writer.join(timeout=10)
    assert process.returncode == 0, err
    assert out == expected.stdout
    with pytest.raises(UsageError, match="is a FIFO, not a regular file"):
        plugins.create("dataset", f"csv:path={fifo},x=x,y=y").load(0)


def test_reading_standard_input_in_process_leaves_it_open(small_run, inputs, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(inputs.read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    header, table = predict(small_run.run_dir, "-", os.devnull)
    assert header == ["x", "y_mean"] and table.shape == (3, 2)
    assert not stdin.closed and stdin.read() == ""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"id,z\n1,2\n")))
    with pytest.raises(UsageError, match="CSV file '<stdin>' has no column 'x'"):
        predict(small_run.run_dir, "-", os.devnull)


def test_predict_into_a_pipe_that_closes_early_exits_quietly(small_run, tmp_path):
    many = write_csv(tmp_path / "many.csv", ["x"], [[v] for v in np.linspace(0, 5, 50_000)])
    command = ["predict", str(small_run.run_dir), "--input", str(many), "--samples", "20"]
    process = subprocess.Popen(
        [sys.executable, "-m", "probreg", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert process.stdout.readline().startswith(b"x,y_sample_1")
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) in (0, 141), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_an_output_column_that_would_repeat_an_input_column_is_refused(tmp_path):
    """An input column named like a predicted one (``weight_1`` is the first mixture weight
    under ``--params``) is never dropped or written twice: one-line error, no output."""
    from probreg import api

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 200)
    rows = np.stack([x, x + 0.1 * rng.normal(size=200)], axis=1)
    data = write_csv(tmp_path / "d.csv", ["weight_1", "y"], rows)
    run = api.run(
        f"csv:path={data},x=weight_1,y=y",
        "mdn:hidden=8,components=2,epochs=2",
        output=tmp_path / "run",
        quiet=True,
    )
    new = write_csv(tmp_path / "new.csv", ["weight_1"], [[0.2], [0.7]])
    with pytest.raises(UsageError, match="two columns named 'weight_1'"):
        predict(run.run_dir, new, tmp_path / "out.csv", params=True)
    assert not (tmp_path / "out.csv").exists()
    header, _ = predict(run.run_dir, new, tmp_path / "out.csv", quantiles=[0.5])
    assert header == ["weight_1", "y_q0.5"]


def test_numbers_are_written_with_every_digit(small_run, tmp_path, monkeypatch):
    import probreg.predict

    x = 0.1234567890123456789
    source = write_csv(tmp_path / "in.csv", ["x"], [[repr(x)]])
    header, _ = predict(small_run.run_dir, source, tmp_path / "out.csv", quantiles=[0.9999999])
    file_header, values = read_csv(tmp_path / "out.csv")
    assert header == file_header == ["x", "y_q0.9999999"]  # not y_q1
    assert values[0, 0] == x  # the input read back exactly, not to 9 digits
    expected = small_run.predictor.distribution(np.array([[x]])).quantile(0.9999999)[0, 0]
    assert values[0, 1] == expected
    with pytest.raises(UsageError, match="quantile level 0.5 is given twice"):
        predict(small_run.run_dir, source, "-", quantiles=[0.5, 0.5])
    monkeypatch.setattr(probreg.predict, "MAX_DRAWN_VALUES", 10)
    with pytest.raises(UsageError, match="--samples 11 for 1 input rows makes 11 values, more"):
        predict(small_run.run_dir, source, tmp_path / "big.csv", samples=11)
    assert not (tmp_path / "big.csv").exists()
