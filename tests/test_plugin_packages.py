"""Installed plugin packages: entry points, the allow-list, broken packages, ``probreg plugins``.

Runs ``probreg`` in subprocesses so each case starts with a fresh plugin manager. The example
package ``plugins/probreg-histogram`` must be installed (``.ci/run`` installs it with pip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

try:
    from importlib import metadata

    metadata.distribution("probreg-histogram")
    HISTOGRAM = True
except Exception:  # pragma: no cover - depends on the environment
    HISTOGRAM = False

needs_histogram = pytest.mark.skipif(
    not HISTOGRAM and os.environ.get("PROBREG_REQUIRE_PLUGIN") != "1",
    reason="plugins/probreg-histogram is not installed",
)


def probreg(*args, extra_env=None, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != "PROBREG_LOAD_PLUGINS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", **(extra_env or {})})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "probreg", *args], capture_output=True, text=True, env=env
    )


def names(result):
    assert result.returncode == 0, result.stderr
    return {item["name"] for item in json.loads(result.stdout)}


@needs_histogram
def test_installed_package_is_listed_with_what_it_registers():
    result = probreg("plugins", "--json")
    packages = {p["name"]: p for p in json.loads(result.stdout)}
    histogram = packages["probreg-histogram"]
    assert histogram["version"] == "0.2.0"
    assert (
        histogram["heads"] == ["histogram"]
        and histogram["families"] == ["histogram"]
        and histogram["datasets"] == []
        and histogram["samplers"] == []
    )
    assert all(not name.startswith("probreg.default_plugins") for name in packages)
    everything = names(probreg("plugins", "--json", "--all"))
    assert "probreg.default_plugins.mdn" in everything and "probreg-histogram" in everything
    text = probreg("plugins").stdout
    assert "probreg-histogram 0.2.0" in text and "heads: histogram" in text
    assert "families: histogram" in text


@needs_histogram
def test_allow_list_controls_third_party_loading():
    left_out = json.loads(
        probreg("plugins", "--json", extra_env={"PROBREG_LOAD_PLUGINS": ""}).stdout
    )
    assert [(p["name"], p["version"], p["left_out"], p["heads"]) for p in left_out] == [
        ("probreg-histogram", "0.2.0", "not in PROBREG_LOAD_PLUGINS", [])
    ]
    allowed = probreg("plugins", "--json", extra_env={"PROBREG_LOAD_PLUGINS": "probreg-histogram"})
    assert names(allowed) == {"probreg-histogram"}
    hidden = probreg(
        "run", "--head", "histogram", "--epochs", "1", extra_env={"PROBREG_LOAD_PLUGINS": ""}
    )
    assert hidden.returncode == 2 and "unknown head 'histogram'" in hidden.stderr
    assert "PROBREG_LOAD_PLUGINS leaves out installed plugin package probreg-histogram" in (
        hidden.stderr
    )
    listed = probreg("plugins", extra_env={"PROBREG_LOAD_PLUGINS": ""}).stdout
    assert "probreg-histogram" in listed and "left out: not in PROBREG_LOAD_PLUGINS" in listed
    assert "heads:" not in listed


def test_allow_list_naming_a_missing_package_warns():
    result = probreg("plugins", extra_env={"PROBREG_LOAD_PLUGINS": "probreg-nonexistent"})
    assert result.returncode == 0
    assert "Warning: plugin 'probreg-nonexistent'" in result.stderr
    assert "no such plugin package is installed" in result.stderr


@pytest.fixture
def broken_package(tmp_path):
    """A fake installed distribution whose entry point fails to import."""
    dist = tmp_path / "probreg_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probreg-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[probreg]\nbroken = probreg_broken_module\n")
    (tmp_path / "probreg_broken_module.py").write_text("import does_not_exist_anywhere\n")
    return tmp_path


def test_broken_package_warns_once_and_everything_else_works(broken_package):
    listed = probreg("list", pythonpath=broken_package)
    assert listed.returncode == 0
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("Warning")]
    assert warnings == [
        "Warning: plugin 'probreg-broken' is broken and was skipped: ModuleNotFoundError: "
        "No module named 'does_not_exist_anywhere'"
    ]
    assert "mdn" in listed.stdout
    shown = probreg("plugins", "--json", pythonpath=broken_package)
    broken = next(p for p in json.loads(shown.stdout) if p["name"] == "probreg-broken")
    assert "ModuleNotFoundError" in broken["error"] and broken["version"] == "1.0"
    # Only a command that needs something the broken package would provide fails, naming it.
    failed = probreg("run", "--head", "brokenhead", pythonpath=broken_package)
    assert failed.returncode == 2
    assert "broken plugin packages were skipped: probreg-broken" in failed.stderr
