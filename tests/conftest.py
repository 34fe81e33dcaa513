"""Shared fixtures: quiet TensorFlow, temporary plugins, one small trained run to reuse, and
waiting for a child process to start training."""

from __future__ import annotations

import os
import signal
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A suite started in the background by a non-interactive shell (`pytest &`) inherits SIGINT
# ignored, and so would every child it starts; the Ctrl-C and stop-signal tests need it live.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest

from probreg import plugins


@pytest.fixture
def temporary_plugin():
    """Register a plugin object for one test: ``temporary_plugin(obj, name=...)``."""
    names: list[str] = []

    def add(plugin, name: str = "test-plugin") -> None:
        plugins.load_plugins()
        plugins.register_plugin(plugin, name, plugins.Source(name, "0"))
        names.append(name)

    yield add
    for name in names:
        plugins.unregister_plugin(name)


@pytest.fixture
def wait_for_training():
    """``wait_for_training(process, timeout=180)``: read a child ``probreg`` process's stderr
    until it reports its first epoch, and return what it printed."""

    def wait(process: subprocess.Popen, timeout: float = 180) -> str:
        seen = ""
        deadline = time.time() + timeout
        while "epoch 1/" not in seen and time.time() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen += line
        assert "epoch 1/" in seen, seen[-2000:]
        return seen

    return wait


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """An MDN trained for a few epochs on a small spiral, written to disk (shared, read-only)."""
    from probreg import api

    out = tmp_path_factory.mktemp("runs") / "small"
    return api.run(
        "spiral:n=1500,val=300,test=600",
        "mdn:components=5,hidden=32+32,epochs=8",
        seed=3,
        output=out,
        quiet=True,
    )
