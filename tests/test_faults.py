"""Faults: NaN loss, Ctrl-C during training, atomic writes, and same seed -> same metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest

from probreg import api, files, rundir
from probreg.default_plugins.mdn import MDN
from probreg.errors import TrainingError, UsageError
from probreg.hookspecs import hookimpl

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


class NaNLoss(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return keras.ops.log(-keras.ops.abs(keras.ops.mean(y_pred, axis=-1)) - 1.0)


class Exploding(MDN):
    """An MDN whose loss is NaN from the first step."""

    name = "exploding"

    def loss(self, output_dim):
        return NaNLoss()


def test_nan_loss_stops_with_a_clear_message(temporary_plugin, tmp_path):
    temporary_plugin(
        types.SimpleNamespace(register_heads=hookimpl(lambda register: register(Exploding)))
    )
    with pytest.raises(
        TrainingError, match="training diverged: the training loss became nan in epoch 1"
    ):
        api.run(
            "spiral:n=300,val=50,test=50",
            "exploding:hidden=8,epochs=3",
            output=tmp_path / "r",
            quiet=True,
        )
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["test"] is None
    assert not (tmp_path / "r" / "model.keras").exists()


@pytest.mark.parametrize(
    ("failure", "fragment"),
    [
        (MemoryError("Unable to allocate 3.64 TiB"), "ran out of memory building its model"),
        (
            RuntimeError("{{function_node StatelessRandomUniformV2}} OOM when allocating tensor"),
            "ran out of memory building its model",
        ),
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"), "ran out"),
        (ValueError("kernel shape mismatch"), "cannot build its model for 1 inputs and 1 "),
    ],
)
def test_a_model_that_cannot_be_built_is_one_line_before_any_folder(
    temporary_plugin, tmp_path, failure, fragment
):
    """A head too big for memory (each library words the failure its own way) or otherwise
    unbuildable is refused in one line naming the cause, before the run folder exists."""

    class Unbuildable(MDN):
        name = "unbuildable"

        def build(self, input_dim, output_dim, trunk=None):
            raise failure

    temporary_plugin(
        types.SimpleNamespace(register_heads=hookimpl(lambda register: register(Unbuildable)))
    )
    with pytest.raises(UsageError, match=fragment) as caught:
        api.run("spiral:n=300,val=50,test=50", "unbuildable:hidden=8", output=tmp_path / "r")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "r").exists()


def test_out_of_memory_is_recognised_in_each_librarys_words_and_through_a_chain():
    from probreg.errors import out_of_memory

    assert out_of_memory(MemoryError())
    assert out_of_memory(RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory"))
    assert out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating"))
    try:
        try:
            raise MemoryError("Unable to allocate 4 TiB")
        except MemoryError as inner:
            raise ValueError("building the layer failed") from inner
    except ValueError as wrapped:
        assert out_of_memory(wrapped)
    assert not out_of_memory(ValueError("kernel shape mismatch"))


def test_running_out_of_memory_in_training_is_one_line_and_leaves_no_folder(
    tmp_path, capsys, monkeypatch
):
    """JAX and TensorFlow raise their own errors, not MemoryError, when an allocation fails
    mid-training; the command says so in one line, exits 1 and leaves no run folder."""
    from probreg import training
    from probreg.cli import main

    def exhausted(*args, **kwargs):
        raise RuntimeError("INTERNAL: Out of memory allocating 4000000000000 bytes.")

    monkeypatch.setattr(training, "fit", exhausted)
    args = ["run", "--dataset", "spiral:n=300,val=50,test=50", "--head", "mdn:hidden=8"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--quiet", "-o", str(tmp_path / "r")])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "Error: out of memory; try a smaller dataset, model or batch_size"
    ]
    assert not (tmp_path / "r").exists()
    monkeypatch.setattr(training, "fit", lambda *a, **k: 1 / 0)  # other errors still show
    with pytest.raises(ZeroDivisionError):
        main([*args, "--quiet", "-o", str(tmp_path / "r")])


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_sampler_that_cannot_serve_the_head_is_refused_before_training(
    tmp_path, monkeypatch, command
):
    """A temperature needs mixture components; the spline family has none. That is said before
    any training or folder, not after the model has trained."""
    from probreg import comparison, training

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the sampler was checked")

    monkeypatch.setattr(training, "fit", no_training)
    data, head, sampler = (
        "spiral:n=300,val=50,test=50",
        "mdn:family=spline,hidden=8",
        "ancestral:temperature=0.5",
    )
    with pytest.raises(UsageError) as caught:
        if command == "run":
            api.run(data, head, sampler, output=tmp_path / "r", quiet=True)
        else:
            comparison.compare(data, [head], sampler, output=tmp_path / "r", quiet=True)
    assert str(caught.value) == (
        f"sampler '{sampler}' cannot draw from head '{head}': SplineFlow has no mixture "
        "components, so temperatures other than 1 are not allowed"
    )
    assert not (tmp_path / "r").exists()


def test_same_seed_gives_the_same_metrics():
    runs = [
        api.run(
            "spiral:n=600,val=100,test=300",
            "mdn:components=3,hidden=16+16,epochs=3",
            seed=4,
            write=False,
            quiet=True,
        )
        for _ in range(2)
    ]
    for key, value in runs[0].metrics["test"].items():
        assert runs[1].metrics["test"][key] == pytest.approx(value, abs=1e-6), key
    np.testing.assert_array_equal(runs[0].samples, runs[1].samples)
    other = api.run(
        "spiral:n=600,val=100,test=300",
        "mdn:components=3,hidden=16+16,epochs=3",
        seed=5,
        write=False,
        quiet=True,
    )
    assert other.metrics["test"]["nll"] != runs[0].metrics["test"]["nll"]


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(target, {"ok": 1})

    def broken_writer(path):
        path.write_text('{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.write_with(target, broken_writer)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left
    with pytest.raises(ValueError):
        files.write_json(target, {"nll": float("nan")})  # never a silent NaN
    assert json.loads(target.read_text()) == {"ok": 1}


INTERRUPT_INSIDE_A_JAX_STEP = """
import json, sys
import numpy as np
from keras.src.backend.jax import trainer
from probreg import api, load_run

make = trainer.JAXTrainer.make_train_function
calls = []

def make_interrupted(self, force=False):
    make(self, force)
    step = self.train_function

    def interrupted(state, data):
        result = step(state, data)  # consumes (donates) the buffers of `state`
        calls.append(1)
        if len(calls) == 3:  # the third compiled call, after two whole epochs
            raise KeyboardInterrupt
        return result

    self.train_function = interrupted

trainer.JAXTrainer.make_train_function = make_interrupted
result = api.run(
    "spiral:n=1000,val=200,test=200",
    "mdn:hidden=16,components=2,epochs=50,patience=50" + sys.argv[2],
    output=sys.argv[1],
    quiet=True,
)
means = load_run(sys.argv[1]).distribution(np.array([[1.0], [2.0]])).mean()
print(json.dumps({"status": result.status, "epochs": result.metrics["epochs"],
                  "finite": bool(np.isfinite(means).all())}))
"""


@pytest.mark.parametrize("extra", ["", ",ema=0.99"])
def test_an_interrupt_inside_a_compiled_jax_step_still_saves_the_run(tmp_path, extra):
    """A compiled JAX step consumes its input buffers, the optimizer's state among them; an
    interrupt raised right after one (so Keras is left holding only deleted buffers) must
    still give a complete, loadable run from the best epoch's weights (with ``ema``: the best
    epoch's average; the average's buffers are consumed too, and nothing may copy them back)."""
    pytest.importorskip("jax")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPT_INSIDE_A_JAX_STEP, str(out), extra],
        capture_output=True,
        text=True,
        env={**ENV, "KERAS_BACKEND": "jax"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"status": "interrupted", "epochs": 2, "finite": True}
    assert rundir.read_marker(out)["state"] == "complete"


A_STOP_DROPPED_BY_PYTHON = """
import gc, json, signal, sys
import keras
import numpy as np
from probreg import api, interrupts, load_run

out, where = sys.argv[1], sys.argv[2]
interrupts.install()  # what the CLI does first
dropped = []
counting = sys.unraisablehook
sys.unraisablehook = lambda unraisable: (dropped.append(unraisable.exc_type.__name__),
                                         counting(unraisable))

def stop_inside_a_gc_callback(phase, info):
    gc.callbacks.remove(stop_inside_a_gc_callback)
    signal.raise_signal(signal.SIGINT)  # the handler runs here, and Python drops its exception

def drop_a_stop(*_):
    gc.callbacks.append(stop_inside_a_gc_callback)
    gc.collect()

def clear_a_stop(*_):
    try:  # as native code that checks for signals while it waits, then clears the error
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass

history = keras.callbacks.History
if where.endswith("in the second epoch"):
    lose = clear_a_stop if where.startswith("cleared") else drop_a_stop
    end_of_epoch = history.on_epoch_end
    def on_epoch_end(self, epoch, logs=None):
        end_of_epoch(self, epoch, logs)
        if epoch == 1:
            lose()
    history.on_epoch_end = on_epoch_end
elif where == "after the last batch":
    history.on_train_end = drop_a_stop
else:
    drop_a_stop()
try:
    result = api.run("spiral:n=1000,val=200,test=200",
                     "mdn:hidden=16,components=2,epochs=6,patience=6", output=out, quiet=True)
    means = load_run(out).distribution(np.array([[1.0], [2.0]])).mean()
    outcome = {"status": result.status, "epochs": result.metrics["epochs"],
               "finite": bool(np.isfinite(means).all())}
except KeyboardInterrupt:
    outcome = {"raised": "KeyboardInterrupt"}
print(json.dumps({**outcome, "dropped": dropped.count("KeyboardInterrupt")}))
"""


@pytest.mark.parametrize(
    ("where", "backend", "expected"),
    [
        ("in the second epoch", "tensorflow", {"status": "interrupted", "epochs": 2}),
        ("in the second epoch", "jax", {"status": "interrupted", "epochs": 2}),
        ("after the last batch", "tensorflow", {"status": "interrupted", "epochs": 6}),
        ("before training", "tensorflow", {"raised": "KeyboardInterrupt"}),
        ("cleared in the second epoch", "tensorflow", {"status": "interrupted", "epochs": 2}),
        ("cleared in the second epoch", "jax", {"status": "interrupted", "epochs": 2}),
    ],
)
def test_a_stop_signal_whose_exception_is_lost_still_stops_training(
    tmp_path, where, backend, expected
):
    """A signal handled inside a garbage-collection callback (JAX registers one) raises a
    KeyboardInterrupt that Python only reports and drops; native code that checks for signals
    while it waits may clear it. Training must still stop before its next batch and keep the
    run (or, after the last batch, finish as interrupted; before training, keep nothing), and
    a dropped exception must print nothing. (CI runs trained on for minutes after Ctrl-C on
    JAX: first a dropped exception, then, under load, one JAX cleared while it waited.)"""
    pytest.importorskip(backend)
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", A_STOP_DROPPED_BY_PYTHON, str(out), where],
        capture_output=True,
        text=True,
        env={**ENV, "KERAS_BACKEND": backend},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if "raised" not in expected:
        expected = {**expected, "finite": True}
    assert outcome == {**expected, "dropped": 0 if where.startswith("cleared") else 1}
    assert "KeyboardInterrupt" not in result.stderr
    if "raised" in expected:
        assert not out.exists()
    else:
        assert rundir.read_marker(out)["state"] == "complete"


INSTALLED = """
import signal, sys
from probreg import interrupts
if sys.argv[1] == "cli":
    from probreg import cli
    try:
        cli.main(["list"])
    except SystemExit:
        pass
else:
    from probreg import tuning
    tuning.run_worker = lambda *args, **kwargs: (None, False)
    tuning._worker_main()
handlers = {signal.getsignal(s) is interrupts._stop for s in (signal.SIGINT, signal.SIGTERM)}
print(handlers == {True} and getattr(sys.unraisablehook, "probreg_silences_dropped_stops", False))
"""


@pytest.mark.parametrize("entry", ["cli", "tune worker"])
def test_the_cli_and_tune_workers_install_the_stop_handlers(entry):
    config = {"dataset": "spiral", "head": "mdn", "metric": "nll", "trials": 1}
    config |= {"storage": "sqlite://", "study": "s"}
    result = subprocess.run(
        [sys.executable, "-c", INSTALLED, entry],
        capture_output=True,
        text=True,
        env={**ENV, "PROBREG_TUNE_CONFIG": json.dumps(config)},
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_ctrl_c_during_training_leaves_a_usable_run(tmp_path, backend, wait_for_training):
    """The whole CLI path on each backend: exit code 130, a complete run, predict works. (On
    JAX the signal usually lands inside a compiled step; the next test makes sure of it.)"""
    pytest.importorskip(backend)
    out = tmp_path / "run"
    env = {**ENV, "KERAS_BACKEND": backend, "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probreg",
            "run",
            "--dataset",
            # Many steps per epoch, so the signal usually lands inside a compiled step.
            "spiral:n=20000,val=300,test=500",
            "--head",
            "mdn:components=4,hidden=32+32,epochs=100000,patience=100000",
            "--output",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for_training(process, timeout=120)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # show where it trained on: the tracebacks
            process.send_signal(signal.SIGABRT)
            pytest.fail(f"still running 120 s after SIGINT:\n{process.communicate()[1][-4000:]}")
    finally:  # a run that ignored the signal must not train on after the test
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert metrics["epochs"] >= 1 and np.isfinite(metrics["test"]["nll"])
    for name in ("model.keras", "config.json", "samples.png", "density.png", "training.png"):
        assert (out / name).is_file(), name
    (tmp_path / "new.csv").write_text("x\n1.0\n2.0\n")
    predicted = subprocess.run(
        [
            sys.executable,
            "-m",
            "probreg",
            "predict",
            str(out),
            "--input",
            str(tmp_path / "new.csv"),
            "--samples",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith("x,y_sample_1,y_sample_2")


HELD_SCRIPT = """
import os, signal, threading, time
from probreg import interrupts

def stop():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs here

before = signal.getsignal(signal.SIGINT)
written = []
try:
    with interrupts.held():
        stop()  # held: only noted
        written.append("report")
except KeyboardInterrupt:
    written.append("stopped after")
assert written == ["report", "stopped after"], written
assert signal.getsignal(signal.SIGINT) is before
with interrupts.held():  # no stop: nothing raised
    written.append("again")
try:
    with interrupts.held():
        stop()
        stop()  # asked twice: at once
        written.append("not reached")
except KeyboardInterrupt:
    pass
assert "not reached" not in written and signal.getsignal(signal.SIGINT) is before
outside = []  # outside the main thread nothing is held, and nothing breaks

def in_a_thread():
    with interrupts.held():
        outside.append("written")

thread = threading.Thread(target=in_a_thread)
thread.start()
thread.join()
assert outside == ["written"], outside
print("ok")
"""


def test_a_stop_during_a_held_write_is_raised_once_the_write_is_done():
    """tune writes its folder under interrupts.held(): Ctrl-C then waits for the write, and
    goes to the handler that was there. Real signals, so in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", HELD_SCRIPT], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
