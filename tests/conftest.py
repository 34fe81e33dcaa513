"""Shared fixtures: quiet TensorFlow, temporary plugins, and one small trained run to reuse."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
