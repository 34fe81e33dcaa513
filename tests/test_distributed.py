"""Data-parallel training: two real processes on 127.0.0.1 with JAX's distributed runtime, and
several local devices. Skipped without JAX unless PROBREG_REQUIRE_JAX=1."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

HAS_JAX = importlib.util.find_spec("jax") is not None
pytestmark = pytest.mark.skipif(
    not HAS_JAX and os.environ.get("PROBREG_REQUIRE_JAX") != "1", reason="JAX is not installed"
)
DATA = "spiral:n=2000,val=400,test=1000"
HEAD = "mdn:components=5,hidden=32+32,epochs=4,batch_size=128"
LOSSES = re.compile(r"process (\d)/2 loss per epoch: (\[.*\])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    return {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _launch(port: int, rank: int, out, head: str = HEAD, timeout: int = 60) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probreg",
            "run",
            "--dataset",
            DATA,
            "--head",
            head,
            "--seed",
            "3",
            "--output",
            str(out),
            "--distributed",
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            str(rank),
            "--peer-timeout",
            str(timeout),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def test_two_processes_train_together_and_match_one(tmp_path):
    start = time.time()
    port = _free_port()
    out = tmp_path / "run"
    head = f"{HEAD},ema=0.99"  # the weight average is swapped in on every process too
    processes = [_launch(port, rank, out, head) for rank in (0, 1)]
    results = [p.communicate(timeout=110) for p in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-3000:]
    losses = {}
    for _, err in results:
        match = LOSSES.search(err)
        assert match, err[-2000:]
        losses[int(match.group(1))] = json.loads(match.group(2))
    assert len(losses[0]) == 4
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # one global loss, seen by both
    metrics = json.loads((out / "metrics.json").read_text())  # written by process 0 only
    assert metrics["rows"]["test"] == 1000  # scored on the full test set
    assert "test nll" in results[0][0] and "test nll" not in results[1][0]
    assert time.time() - start < 120

    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "probreg",
            "run",
            "--dataset",
            DATA,
            "--head",
            head,
            "--seed",
            "3",
            "--output",
            str(tmp_path / "single"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert single.returncode == 0, single.stderr
    alone = json.loads((tmp_path / "single" / "metrics.json").read_text())
    # Same data, model and global batch size; only the batch composition differs.
    assert metrics["test"]["nll"] == pytest.approx(alone["test"]["nll"], abs=0.15)


def test_a_dead_peer_stops_the_job_with_a_clear_error(tmp_path, wait_for_training):
    port = _free_port()
    head = "mdn:components=5,hidden=32+32,epochs=100000,patience=100000"
    survivor = _launch(port, 0, tmp_path / "run", head=head, timeout=15)
    victim = _launch(port, 1, tmp_path / "run", head=head, timeout=15)
    seen = wait_for_training(survivor, timeout=90)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    _, err = survivor.communicate(timeout=90)
    assert survivor.returncode != 0
    assert time.time() - killed_at < 60
    text = (seen + err).lower()
    assert "peer process probably died" in text or "heartbeat" in text or "task" in text, err[
        -2000:
    ]
    assert "Traceback" not in err, err[-2000:]  # a failed collective is one line too


def test_several_local_devices_on_one_host(tmp_path):
    for backend in ("jax", "tensorflow"):
        out = tmp_path / backend
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "probreg",
                "run",
                "--dataset",
                "spiral:n=2001,val=401,test=1000",  # batches that do not split evenly
                "--head",
                f"{HEAD},ema=0.99",  # the weight average is swapped in on every device too
                "--devices",
                "2",
                "--output",
                str(out),
                "--quiet",
            ],
            capture_output=True,
            text=True,
            env=_env(KERAS_BACKEND=backend),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["versions"]["backend"] == backend


RUN = [sys.executable, "-m", "probreg", "run", "--dataset", DATA, "--head", HEAD]


JOB = {"--coordinator": "127.0.0.1:1234", "--num-processes": "2", "--process-id": "0"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"--coordinator": "nohostport"}, "--coordinator must be HOST:PORT"),
        ({"--coordinator": "127.0.0.1:99999"}, "a port from 1 to 65535"),
        ({"--coordinator": "127.0.0.1:\u00b2"}, "--coordinator must be HOST:PORT"),
        ({"--process-id": "5"}, "--process-id must be below --num-processes (2): 0 to 1, not 5"),
        ({"--coordinator": None}, "--distributed needs --coordinator HOST:PORT"),
        ({"--num-processes": None}, "--num-processes N"),
    ],
)
def test_a_malformed_job_is_a_one_line_usage_error(tmp_path, changes, message):
    """Answered at once, with exit 2 and no folder (a setting JAX can neither read nor detect
    included), rather than as a failure to join."""
    given = {k: v for k, v in {**JOB, **changes}.items() if v is not None}
    env = {k: v for k, v in _env().items() if not k.startswith(("JAX_", "SLURM_", "OMPI_"))}
    out = tmp_path / "run"
    job = [x for pair in given.items() for x in pair]
    result = subprocess.run(
        [*RUN, "--output", str(out), "--distributed", *job],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize("devices", [[], ["--devices", "2"]])
def test_peer_timeout_without_distributed_is_refused(tmp_path, devices):
    out = tmp_path / "run"
    result = subprocess.run(
        [*RUN, "--output", str(out), *devices, "--peer-timeout", "30"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 2 and "--peer-timeout only applies with --distributed" in (
        result.stderr
    )
    assert not out.exists()
