"""``probreg tune``: the search space, storage errors, workers sharing one study (SQLite and a
real PostgreSQL server), resuming after Ctrl-C, crashed workers, and a search that really
beats the defaults on held-out data.

The PostgreSQL tests need ``PROBREG_TEST_POSTGRES_URL`` (``.ci/postgres`` starts a server on
loopback and prints it). Without it they skip, unless ``PROBREG_REQUIRE_POSTGRES=1`` (CI sets
it), in which case they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from probreg import plugins, rundir, tune_report
from probreg.errors import UsageError
from probreg.tuning import Dimension, build_space, default_dimension, hide_password, parse_space

SMALL_DATA = "bishop:n=300,val=100,test=100"
SMALL_HEAD = "mdn:hidden=8,components=2"
SMALL_SPACE = "components=1..4,learning_rate=0.001..0.03:log"


def _probreg(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "probreg", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


def _tune_args(output: Path, trials: int, *extra: str) -> list[str]:
    return [
        "tune",
        "--dataset",
        SMALL_DATA,
        "--head",
        SMALL_HEAD,
        "--space",
        SMALL_SPACE,
        "--epochs",
        "4",
        "--trials",
        str(trials),
        "--output",
        str(output),
        *extra,
    ]


def _trials(storage: str, study: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def _study_ready(path: Path, study: str) -> bool:
    """Whether a running tune has created ``study`` in the SQLite file ``path``. Read-only:
    polling with Optuna itself would create the schema too, racing the process that does."""
    import sqlite3

    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            query = "SELECT 1 FROM studies WHERE study_name = ?"
            return db.execute(query, (study,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _finished(trials) -> list:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


# --- the search space ---------------------------------------------------------------------


def test_default_space_comes_from_the_declared_parameters():
    from probreg.params import Param

    head = plugins.create("head", "mdn")
    space = build_space("mdn", None)
    declared = {p.name for p in type(head).params}
    assert set(space.dimensions) <= declared
    # Budgets are left alone; choices and log scales come from the declarations.
    assert not {"epochs", "patience", "members"} & set(space.dimensions)
    assert (
        space.dimensions["learning_rate"].log and space.dimensions["learning_rate"].kind == "float"
    )
    assert space.dimensions["weight_decay"].log
    scale = next(p for p in type(head).params if p.name == "scale")
    assert space.dimensions["scale"].choices == scale.choices
    components = space.dimensions["components"]
    assert components.kind == "int" and components.low >= 1 and components.high <= 1000
    assert "128+128+128" in space.dimensions["hidden"].choices
    # Switches that default to off stay off unless --space names them.
    assert not {"dropout", "clipnorm", "ema"} & set(space.dimensions)
    assert build_space("mdn", "dropout=0.01..0.3:log").dimensions["dropout"] == Dimension(
        "dropout", "float", 0.01, 0.3, log=True
    )
    # Options given in the head spec are fixed, not searched.
    assert "components" not in build_space("mdn:components=3", None).dimensions
    # Bounds are respected and a parameter without a usable range is left out.
    bounded = Param("k", "int", 20, "", minimum=10, maximum=30)
    assert default_dimension(bounded) == Dimension("k", "int", 10, 30, log=False)
    assert default_dimension(Param("name", "str", "x", "")) is None


def test_space_follows_the_family_the_head_spec_picks(tmp_path):
    """``mdn:family=student_t`` searches the Student-t mixture's parameters around its own
    defaults (5 components, ``df_min``), not the default Gaussian mixture's; ``family`` itself
    is chosen in --head, never searched."""
    from probreg.tuning import tune

    student = plugins.create("head", "mdn:family=student_t")
    space = build_space("mdn:family=student_t", None)
    df_min = next(p for p in student.params if p.name == "df_min")
    assert space.dimensions["df_min"] == default_dimension(df_min)
    components = space.dimensions["components"]
    assert components.low <= 5 <= components.high < 80  # around 5, not the Gaussian's 20
    assert build_space("mdn:family=student_t", "df_min=3..6").dimensions["df_min"] == Dimension(
        "df_min", "float", 3.0, 6.0
    )
    with pytest.raises(UsageError, match="unknown parameter 'df_min'"):
        build_space("mdn", "df_min=3..6")
    with pytest.raises(UsageError, match="--space cannot set 'family'") as info:
        build_space("mdn", "components=2..4,family=student_t|gaussian_mixture")
    assert "\n" not in str(info.value)
    # The defaults (trial 0) include df_min, which only the chosen family declares.
    result = tune(
        "bishop:n=200,val=100,test=100",
        "mdn:family=student_t,hidden=8,epochs=2,patience=2",
        trials=2,
        space="df_min=2.5..5,components=2..5",
        output=tmp_path / "tune",
        quiet=True,
    )
    assert result.summary["default"]["number"] == 0
    assert "family=student_t" in result.best_spec


def test_space_narrows_and_fixes_parameters():
    space = build_space(
        "mdn:epochs=7",
        "components=2..30,learning_rate=1e-4..1e-2:log,hidden=64+64|256+256+256,scale=exp",
    )
    assert space.dimensions["components"] == Dimension("components", "int", 2, 30)
    assert space.dimensions["learning_rate"] == Dimension(
        "learning_rate", "float", 1e-4, 1e-2, log=True
    )
    assert space.dimensions["hidden"].choices == ("64+64", "256+256+256")
    assert space.fixed == {"scale": "exp"}
    assert "scale" not in space.dimensions and "epochs" not in space.dimensions
    # A spec option named in --space is searched, its spec value being the baseline.
    assert "components" in build_space("mdn:components=1", "components=1..4").dimensions
    # The epochs come from --epochs or from --space, not both (each trial would get two).
    for items in ("epochs=3..9", "epochs=4"):
        with pytest.raises(
            UsageError, match=r"--epochs \(epochs=\) and --space epochs=\.\.\. both"
        ):
            build_space("mdn", items, epochs=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense=1..2", "unknown parameter 'nonsense' in --space for head 'mdn'; allowed"),
        ("components=30..2", "empty range, the low end 30 is above the high end 2"),
        ("components", "malformed --space item 'components'"),
        ("components=..5", "a range needs both ends"),
        ("learning_rate=1e-3..1e-2:lin", "a range takes only the suffix ':log'"),
        ("weight_decay=0..0.1:log", "a :log range must be above 0"),
        ("hidden=1..4", "a LOW..HIGH range needs a number parameter"),
        ("components=0..4", "below the minimum 1"),
        ("scale=exp|cubic", "'cubic' is not allowed"),
        ("components=2,components=3", "gives 'components' twice"),
        ("components=3:log", "':log' only applies to a LOW..HIGH range"),
    ],
)
def test_bad_space_is_a_one_line_error(text, message):
    head = plugins.create("head", "mdn")
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        parse_space(text, type(head).params, "head 'mdn'")
    assert "\n" not in str(info.value)


def _cli_error(capsys, *args: str) -> str:
    from probreg.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: ")
    return err


def test_cli_errors_are_one_line(capsys, tmp_path):
    base = ["tune", "--dataset", SMALL_DATA, "--head", SMALL_HEAD, "-o", str(tmp_path / "t")]
    err = _cli_error(capsys, *base, "--space", "wings=2..4")
    assert "unknown parameter 'wings'" in err
    err = _cli_error(capsys, *base, "--space", "components=5..1")
    assert "empty range" in err
    err = _cli_error(capsys, *base, "--storage", "nosuchdb://u:hunter2@host/x")
    assert "bad storage URL" in err and "hunter2" not in err and "host/x" in err
    err = _cli_error(capsys, *base, "--storage", "not a url")
    assert "bad storage URL" in err
    err = _cli_error(capsys, *base, "--timeout", "nan")  # click's float range lets nan pass
    assert "nan is not a number of seconds" in err
    err = _cli_error(capsys, *base, "--space", "family=student_t")
    assert "--space cannot set 'family'" in err
    err = _cli_error(capsys, *base, "--study", " ")
    assert "--study ' ' is not a name" in err
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_unreachable_database_names_the_url_without_its_password(capsys, tmp_path):
    pytest.importorskip("psycopg")
    url = "postgresql://probreg:hunter2@127.0.0.1:1/probreg"
    err = _cli_error(
        capsys,
        *["tune", "--dataset", SMALL_DATA, "--head", SMALL_HEAD, "--storage", url],
        *["-o", str(tmp_path / "t")],
    )
    assert "cannot connect to storage 'postgresql://probreg:***@127.0.0.1:1/probreg'" in err
    assert "hunter2" not in err
    assert hide_password(url) == "postgresql://probreg:***@127.0.0.1:1/probreg"


def test_tune_folder_is_claimed_resumed_and_forced(tmp_path):
    from probreg.tuning import open_tune_dir

    path = tmp_path / "tune"
    assert open_tune_dir(path, force=False) == (path, False)
    assert rundir.read_marker(path)["kind"] == "tune"
    (path / "study.db").write_text("the study")
    assert open_tune_dir(path, force=False) == (path, True)  # resumed, kept
    assert (path / "study.db").read_text() == "the study"
    # Once it has a report, only the same study resumes; another one would replace the report.
    (path / "tune.json").write_text(json.dumps({"study": "spiral-mdn-nll"}))
    assert open_tune_dir(path, force=False, study="spiral-mdn-nll") == (path, True)
    with pytest.raises(UsageError, match="holds the study 'spiral-mdn-nll', not 'bishop-mdn-nll'"):
        open_tune_dir(path, force=False, study="bishop-mdn-nll")
    # The refusal quotes the study's command whole, to be copied; a very long one is pointed to.
    command = "probreg tune --dataset spiral --head mdn:" + "x" * 200 + " --metric nll"
    (path / "tune.json").write_text(json.dumps({"study": "spiral-mdn-nll", "command": command}))
    with pytest.raises(UsageError) as refused:
        open_tune_dir(path, force=False, study="bishop-mdn-nll")
    assert f"({command})" in str(refused.value)
    (path / "tune.json").write_text(json.dumps({"study": "a", "command": command + "y" * 400}))
    with pytest.raises(UsageError, match=r"rerun its command \(in tune.json, 'command'\)"):
        open_tune_dir(path, force=False, study="bishop-mdn-nll")
    (path / "tune.json").write_text(json.dumps({"study": "spiral-mdn-nll"}))
    assert (path / "tune.json").is_file() and (path / "study.db").read_text() == "the study"
    (path / "NOTES.md").write_text("mine")  # a tune folder holds only what tune writes
    with pytest.raises(UsageError, match=r"did not write there \(NOTES.md\)"):
        open_tune_dir(path, force=True)
    assert (path / "NOTES.md").read_text() == "mine"
    (path / "NOTES.md").unlink()
    (path / ".report-ab12cd34.html").write_text("")  # an atomic write's temporary, left by a kill
    assert open_tune_dir(path, force=True) == (path, False)  # a new, empty tune folder
    assert not (path / "study.db").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not made by probreg"):
        open_tune_dir(other, force=True)
    assert (other / "notes.txt").read_text() == "mine"


def test_epoch_callback_sees_validation_loss_and_can_stop_training():
    """What pruning rests on: ``train_head`` reports every epoch, and an exception raised by
    the callback ends training and reaches the caller."""
    from probreg.api import train_head

    class Stop(Exception):
        pass

    seen = []

    def callback(epoch, logs):
        seen.append((epoch, logs["val_loss"]))
        if epoch == 2:
            raise Stop

    data = plugins.create("dataset", SMALL_DATA).load(0)
    head = plugins.create("head", SMALL_HEAD + ",epochs=50")
    with pytest.raises(Stop):
        train_head(head, data, 0, verbose=False, epoch_callback=callback)
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert all(isinstance(loss, float) for _, loss in seen)


# --- workers on one machine ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_two_workers_share_one_sqlite_study(tmp_path):
    out = tmp_path / "tune"
    proc = _probreg(*_tune_args(out, 5, "--workers", "2", "--study", "shared"))
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    trials = _trials(f"sqlite:///{out / 'study.db'}", "shared")
    finished = _finished(trials)
    # The count adds up exactly, and every trial ran in exactly one worker.
    assert len(finished) == 5
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state.name != "RUNNING" for t in trials)
    workers = {t.user_attrs["worker"] for t in finished}
    assert 1 <= len(workers) <= 2
    assert "[worker 2]" in stderr  # the second process reported its own progress
    summary = json.loads((out / "tune.json").read_text())
    assert summary["trials"]["finished"] == 5
    assert stdout.strip() == summary["best"]["spec"] == (out / "best_spec.txt").read_text().strip()
    for name in ("trials.csv", "report.html", "report.md", "history.png", "importance.png"):
        assert (out / name).is_file(), name
    assert len((out / "trials.csv").read_text().splitlines()) == len(trials) + 1
    assert "probreg run --dataset" in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_a_killed_worker_process_loses_no_trial(tmp_path):
    """``--workers 2``: kill the second worker in the middle of a trial; its trial is marked
    failed at once and the first worker still brings the study to its count."""
    out = tmp_path / "tune"
    storage = f"sqlite:///{out / 'study.db'}"
    proc = _probreg(*_tune_args(out, 4, "--workers", "2", "--study", "kill"))
    deadline, victim = time.monotonic() + 300, None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if not _study_ready(out / "study.db", "kill"):
            continue
        try:
            trials = _trials(storage, "kill")
        except Exception:  # not created yet
            continue
        for trial in trials:
            pid = int(trial.user_attrs.get("worker", "x:0").rsplit(":", 1)[1])
            if trial.state.name == "RUNNING" and pid not in (0, proc.pid):
                os.kill(pid, signal.SIGKILL)
                victim = trial.number
                break
    assert victim is not None, "the second worker never ran a trial"
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "exited with code -9; 1 of its trials marked failed" in stderr
    trials = {t.number: t for t in _trials(storage, "kill")}
    assert trials[victim].state.name == "FAIL"
    assert "exited with code -9" in trials[victim].user_attrs["error"]
    assert len(_finished(trials.values())) == 4
    assert not any(t.state.name == "RUNNING" for t in trials.values())


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_a_crashed_workers_trial_is_marked_failed(tmp_path):
    """A worker killed mid-trial leaves a RUNNING trial; once its heartbeat is stale the next
    worker marks it failed and the budget is still met."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    crash = (
        "import os, signal\n"
        "from probreg.tuning import BASELINE, TuneConfig, _Search, open_storage, worker_id\n"
        f"config = TuneConfig({SMALL_DATA!r}, {SMALL_HEAD + ',epochs=2'!r}, 'nll', 2, "
        f"{storage!r}, 'crash', space={SMALL_SPACE!r}, heartbeat=1)\n"
        "search = _Search(config, open_storage(config.storage, 1), print, worker_id())\n"
        "trial = search.claim()\n"
        "if trial is BASELINE:  # the defaults are scored beside the trials; claim a trial\n"
        "    trial = search.claim()\n"
        "search.storage.optuna.record_heartbeat(trial._trial_id)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    died = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr
    (running,) = _trials(storage, "crash")
    assert running.state.name == "RUNNING"
    time.sleep(3)  # past the grace period of 2 heartbeats
    from probreg.tuning import tune

    result = tune(
        SMALL_DATA,
        SMALL_HEAD + ",epochs=2",
        trials=2,
        space=SMALL_SPACE,
        storage=storage,
        study="crash",
        heartbeat=1,
        write=False,
        quiet=True,
    )
    trials = _trials(storage, "crash")
    assert trials[0].number == running.number and trials[0].state.name == "FAIL"
    assert len(_finished(trials)) == 2
    assert result.summary["trials"]["failed"] == 1


# --- resuming -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_resume_after_sigint_keeps_finished_trials(tmp_path):
    out = tmp_path / "tune"
    storage = f"sqlite:///{out / 'study.db'}"
    proc = _probreg(*_tune_args(out, 50, "--study", "resume"))
    try:
        deadline = time.monotonic() + 300
        finished: list = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if _study_ready(out / "study.db", "resume"):
                try:
                    finished = _finished(_trials(storage, "resume"))
                except Exception:  # the study is being created
                    continue
                if finished:
                    break
        assert finished, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:  # a search that ignored the signal must not run on after the test
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    before = {t.number: t.value for t in _finished(_trials(storage, "resume"))}
    assert 1 <= len(before) < 50
    assert (out / "tune.json").is_file()  # what was done is reported
    failed = [t for t in _trials(storage, "resume") if t.state.name == "FAIL"]
    assert all("error" in t.user_attrs for t in failed)  # each says why, the stopped one too
    stopped = [t for t in failed if t.user_attrs["error"].startswith("interrupted")]
    assert len(stopped) <= 1  # only a trial the signal cut short (if it came during one)

    from probreg.tuning import tune

    result = tune(
        SMALL_DATA,
        SMALL_HEAD,
        trials=len(before) + 1,
        space=SMALL_SPACE,
        epochs=4,
        study="resume",
        output=out,
        quiet=True,
    )
    after = _finished(_trials(storage, "resume"))
    assert len(after) == len(before) + 1
    assert {t.number: t.value for t in after if t.number in before} == before
    assert max(t.number for t in after) > max(before)
    assert not any(t.state.name == "RUNNING" for t in _trials(storage, "resume"))
    assert result.summary["trials"]["finished"] == len(before) + 1


# --- the search pays off ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_tuned_spec_beats_the_default_on_held_out_data(tmp_path):
    """A deliberately poor baseline (one Gaussian, a tiny learning rate) on Bishop's
    three-branched inverse problem: the search must find a spec that is better on the
    validation rows *and* on the test rows, which it never saw."""
    from probreg import api
    from probreg.tuning import tune

    data = "bishop:n=500,val=200,test=1000"
    default = "mdn:hidden=16+16,epochs=40,patience=40,components=1,learning_rate=0.0003"
    space = (
        "components=1..6,learning_rate=0.0003..0.03:log,"
        # The rest stays at the defaults, so the defaults lie in the space and are trial 0.
        "batch_size=128,weight_decay=0,schedule=cosine,scale=softplus,scale_floor=0.03,"
        "activation=relu"
    )
    result = tune(data, default, trials=6, space=space, output=tmp_path / "tune", quiet=True)
    assert result.default_value is not None
    assert result.summary["default"]["number"] == 0  # the defaults were trial 0
    assert result.best_value < result.default_value
    tuned = api.run(data, result.best_spec, seed=0, write=False, quiet=True)
    baseline = api.run(data, default, seed=0, write=False, quiet=True)
    assert tuned.metrics["test"]["nll"] < baseline.metrics["test"]["nll"] - 0.1, (
        result.best_spec,
        tuned.metrics["test"],
        baseline.metrics["test"],
    )


# --- PostgreSQL: two machines, emulated by two processes ------------------------------------


@pytest.fixture
def postgres_url():
    url = os.environ.get("PROBREG_TEST_POSTGRES_URL")
    required = os.environ.get("PROBREG_REQUIRE_POSTGRES") == "1"
    if not url:
        if required:
            pytest.fail("PROBREG_REQUIRE_POSTGRES=1 but PROBREG_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server: set PROBREG_TEST_POSTGRES_URL (see .ci/postgres)")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:
        if required:
            pytest.fail(f"PROBREG_REQUIRE_POSTGRES=1 but {hide_password(url)} fails: {error}")
        pytest.skip(f"PostgreSQL at {hide_password(url)} is not reachable: {error}")
    return url


@pytest.mark.slow
@pytest.mark.timeout(900)  # several processes train on a shared machine
def test_two_machines_share_a_postgresql_study(tmp_path, postgres_url):
    study = f"test-{uuid.uuid4().hex[:12]}"
    procs = [
        _probreg(*_tune_args(tmp_path / name, 5, "--storage", postgres_url, "--study", study))
        for name in ("machine-a", "machine-b")
    ]
    outputs = [proc.communicate(timeout=400) for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert "postgresql://probreg:***@" in stderr  # joined, password hidden
    trials = _trials(postgres_url, study)
    finished = _finished(trials)
    assert len(finished) == 5
    assert len({t.number for t in trials}) == len(trials)
    pids = {str(proc.pid) for proc in procs}
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in finished} <= pids
    summaries = [
        json.loads((tmp_path / n / "tune.json").read_text()) for n in ("machine-a", "machine-b")
    ]
    for summary in summaries:  # each machine reports the whole study
        assert summary["trials"]["finished"] == 5
        complete = [t for t in finished if t.state.name == "COMPLETE"]
        assert summary["best"]["number"] == min(complete, key=lambda t: t.value).number


def test_the_best_line_says_when_the_defaults_trial_won():
    """The defaults' trial runs a default outside the space (a weight decay of 0) as the
    space's nearest value, so its spec differs from the head's; the line says which won."""
    from probreg.cli import best_line

    default = {"number": 0, "value": 1.5, "spec": "mdn"}
    won = {"best": {"number": 0, "value": 1.5}, "default": default}
    assert best_line("nll", won) == (
        "best validation nll 1.5000 (the head's defaults won; the spec below is how that trial ran)"
    )
    lost = {"best": {"number": 3, "value": 1.25}, "default": default}
    assert best_line("nll", lost) == "best validation nll 1.2500 (the head's defaults: 1.5000)"
    assert best_line("crps", {**lost, "default": None}) == "best validation crps 1.2500"
    # a baseline outside the space that beats every trial is what to keep
    baseline = {"number": None, "value": 1.0, "spec": "mdn"}
    beaten = {"best": {"number": 3, "value": 1.25, "spec": "mdn:hidden=16"}, "default": baseline}
    assert best_line("nll", beaten) == (
        "the head's defaults beat every trial: validation nll 1.0000 against 1.2500 for the "
        "best trial; keep the defaults"
    )
    from probreg.tune_report import chosen

    assert chosen(beaten)["spec"] == "mdn" and chosen(lost)["number"] == 3


def test_a_search_whose_every_trial_fails_stops(tmp_path, monkeypatch):
    """Failed trials do not count towards ``trials``, so a fault every configuration shares
    would start trials for ever; a worker stops after ``FAILURES_IN_A_ROW`` in a row, and a
    trial that completes starts the count again."""
    from probreg import tuning

    calls = []

    def every_tenth_completes(self, trial):
        calls.append(trial.number)
        if len(calls) % tuning.FAILURES_IN_A_ROW:
            raise RuntimeError("this configuration breaks")
        return 1.0

    monkeypatch.setattr(tuning._Search, "objective", every_tenth_completes)
    result = tuning.tune(
        SMALL_DATA,
        SMALL_HEAD,
        trials=2,
        epochs=1,
        write=False,
        storage=f"sqlite:///{tmp_path / 'a.db'}",
        quiet=True,
    )
    assert result.summary["trials"]["complete"] == 2 and result.summary["stopped"] is None

    def broken(self, trial):
        raise RuntimeError("every configuration breaks")

    monkeypatch.setattr(tuning._Search, "objective", broken)
    said = []
    result = tuning.tune(
        SMALL_DATA, SMALL_HEAD, trials=3, epochs=1, output=tmp_path / "t", echo=said.append
    )
    in_a_row = f"{tuning.FAILURES_IN_A_ROW} trials in a row failed"
    assert result.best_spec is None and result.summary["stopped"] == in_a_row
    assert result.summary["trials"]["failed"] == tuning.FAILURES_IN_A_ROW
    assert f"Stopping: {in_a_row} (the last: RuntimeError: every configuration breaks)" in said
    assert not (tmp_path / "t" / "history.png").exists()


def test_a_study_name_reused_for_another_problem_is_refused(tmp_path, monkeypatch):
    from probreg import tuning

    def objective(self, trial):  # no training: the refusal comes before any trial
        trial.set_user_attr("spec", SMALL_HEAD)
        return 1.0

    monkeypatch.setattr(tuning._Search, "objective", objective)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = {"trials": 1, "epochs": 1, "write": False, "storage": storage, "study": "s"}
    tuning.tune(SMALL_DATA, SMALL_HEAD, quiet=True, **common)
    with pytest.raises(UsageError) as refused:
        tuning.tune(SMALL_DATA, SMALL_HEAD, metric="crps", quiet=True, **common)
    assert str(refused.value) == (
        f"study 's' in {storage} searches another problem: its metric is 'nll', not 'crps'; "
        "use the same options, another --study (study=), or delete that study from the "
        "storage (optuna delete-study)"
    )
    # Trials on another Keras backend score differently: that is another problem too.
    import keras
    import optuna

    ours = keras.backend.backend()
    other = "jax" if ours != "jax" else "tensorflow"
    with monkeypatch.context() as patch:
        patch.setattr(keras.backend, "backend", lambda: other)
        with pytest.raises(
            UsageError,
            match=f"its backend is '{ours}', not '{other}'; use "
            f"KERAS_BACKEND={ours}, another --study",
        ):
            tuning.tune(SMALL_DATA, SMALL_HEAD, quiet=True, **common)
        # A study from before the backend was recorded resumes on any.
        study = optuna.load_study(study_name="s", storage=storage)
        problem = {k: v for k, v in study.user_attrs["probreg"].items() if k != "backend"}
        study.set_user_attr("probreg", problem)
        tuning.tune(SMALL_DATA, SMALL_HEAD, quiet=True, **{**common, "trials": 2})
    # In the tune folder's own storage, --force replaces the folder and so the study.
    folder = {"trials": 1, "epochs": 1, "output": tmp_path / "t", "study": "s", "quiet": True}
    tuning.tune(SMALL_DATA, SMALL_HEAD, **folder)
    # --force knows a tune folder by its names: everything tune wrote must be among them.
    assert set(os.listdir(tmp_path / "t")) <= tune_report.TUNE_FILES | {rundir.MARKER}
    with pytest.raises(UsageError, match=r"or --force \(force=True\) to start afresh$"):
        tuning.tune(SMALL_DATA, SMALL_HEAD, metric="crps", **folder)
    assert tuning.tune(SMALL_DATA, SMALL_HEAD, metric="crps", force=True, **folder).best_value


@pytest.mark.parametrize("study", ["../../escape", "a/b", "..", "."])
def test_a_study_name_that_is_a_path_is_refused_before_any_folder(study, tmp_path, monkeypatch):
    from probreg import tuning

    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    with pytest.raises(UsageError, match="cannot name a folder under tunes/"):
        tuning.tune(SMALL_DATA, SMALL_HEAD, trials=1, epochs=1, study=study, quiet=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "work"]
    database = f"sqlite:///{work / 'shared.db'}"  # a storage of one's own is not opened either
    with pytest.raises(UsageError, match="cannot name a folder under tunes/"):
        tuning.tune(SMALL_DATA, SMALL_HEAD, trials=1, study=study, storage=database, quiet=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "work"]


def test_more_workers_than_trials_or_cores_is_refused_before_any_folder(tmp_path):
    from probreg.tuning import tune

    with pytest.raises(UsageError, match=r"--workers 3 is more than --trials; allowed: 1 to 2"):
        tune("spiral:n=300", "mdn", trials=2, workers=3, output=tmp_path / "t")
    most = 4 * len(os.sched_getaffinity(0))
    with pytest.raises(UsageError, match=rf"more than 4 per CPU core here \({most}\)"):
        tune("spiral:n=300", "mdn", trials=10**6, workers=most + 1, output=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_study_whose_spec_kept_six_digits_still_matches():
    """Specs wrote floats with six digits before they kept every one: the same problem."""
    from probreg.tuning import _normal

    old = "mdn:learning_rate=0.00123457,hidden=8"
    new = "mdn:hidden=8,learning_rate=0.00123456789"
    assert _normal("head", old) == _normal("head", new)
    assert _normal("head", "mdn:learning_rate=0.002") != _normal("head", new)
