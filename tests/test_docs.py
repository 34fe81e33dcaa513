"""The docs stay true to the code: every hook, plugin and command is documented, the plugin
tutorial's package really works, and CI runs the README's test command."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probreg import hookspecs, plugins

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_every_hook_has_a_docs_section_with_its_signature():
    text = (DOCS / "writing-plugins.md").read_text()
    hooks = [
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("register_")
    ]
    assert hooks, "no hooks found"
    for name in hooks:
        assert f"### {name}\n" in text, f"hook {name} has no section in docs/writing-plugins.md"
        assert f"def {name}(register" in text


def test_every_builtin_plugin_has_a_docs_section():
    text = (DOCS / "plugins.md").read_text()
    for kind, entries in plugins.registry().items():
        for name, entry in entries.items():
            if entry.source.builtin:
                assert f"### `{name}`" in text, f"built-in {kind} {name} is not in docs/plugins.md"
                for param in entry.cls.params:
                    assert f"`{param.name}`" in text, (
                        f"{kind} {name}: parameter {param.name} undocumented"
                    )


def test_every_command_is_in_the_cli_reference():
    from probreg.cli import cli

    text = (DOCS / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"## `probreg {name}`" in text, f"probreg {name} is not in docs/cli.md"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in text, f"probreg {name} {opt} is not in docs/cli.md"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [b.strip() for b in blocks if "pytest" in b]
    assert commands, "README has no test command"
    assert commands[0] in (ROOT / ".ci" / "run").read_text()
    assert any("probreg run --dataset spiral --head mdn" in b for b in blocks)


def _tutorial_files() -> dict[str, str]:
    text = (DOCS / "writing-plugins.md").read_text()
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, re.S)
    return dict(found)


@pytest.mark.slow
def test_the_plugin_tutorial_builds_a_working_package(tmp_path):
    files = _tutorial_files()
    assert set(files) == {
        "probreg-laplace/pyproject.toml",
        "probreg-laplace/probreg_laplace/__init__.py",
        "probreg-laplace/probreg_laplace/family.py",
        "probreg-laplace/probreg_laplace/data.py",
        "probreg-laplace/probreg_laplace/sampler.py",
    }
    for name, content in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(tmp_path / "src" / "probreg-laplace"),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    env = {k: v for k, v in os.environ.items() if k != "PROBREG_LOAD_PLUGINS"}
    env.update({"PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"})

    def run(*args, **extra):
        return subprocess.run(
            args, capture_output=True, text=True, env={**env, **extra}, cwd=tmp_path
        )

    listed = run(sys.executable, "-m", "probreg", "plugins", "--json")
    laplace = next(p for p in json.loads(listed.stdout) if p["name"] == "probreg-laplace")
    assert laplace["version"] == "0.1.0"
    assert (laplace["families"], laplace["datasets"], laplace["samplers"]) == (
        ["laplace"],
        ["noisy-line"],
        ["quantile"],
    )
    checked = run(
        sys.executable,
        "-c",
        "from probreg.testing import check_package, check_head\n"
        "print(check_package('probreg-laplace'))\n"
        "print(check_head('mdn:family=laplace,hidden=8'))",
    )
    assert checked.returncode == 0, checked.stderr
    for checked_spec in (
        "family laplace",
        "dataset noisy-line:n=100,val=20,test=50",
        "sampler quantile",
    ):
        assert checked_spec in checked.stdout
    compared = run(
        sys.executable,
        "-m",
        "probreg",
        "compare",
        "--dataset",
        "noisy-line:n=600,val=150,test=300",
        "--head",
        "mdn:hidden=16,components=3",
        "--head",
        "mdn:family=laplace,hidden=16",
        "--sampler",
        "quantile",
        "--epochs",
        "2",
        "--output",
        str(tmp_path / "report"),
        "--quiet",
    )
    assert compared.returncode == 0, compared.stderr
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert {row["head"] for row in report["heads"]} == {
        "mdn:components=3,hidden=16",
        "mdn:family=laplace,hidden=16",
    }
    assert all(row["bayes_nll"] is not None for row in report["runs"])
    assert report["versions"]["probreg-laplace"] == "0.1.0"
    hidden = run(sys.executable, "-m", "probreg", "plugins", "--json", PROBREG_LOAD_PLUGINS="")
    left_out = {p["name"]: p for p in json.loads(hidden.stdout)}["probreg-laplace"]
    assert "left_out" in left_out and left_out["families"] == []


def _python_blocks(path: Path) -> list[str]:
    """The page's python blocks, except tutorial files (installed and run by the tutorial test)
    and blocks marked ``<!-- not run: reason -->`` (signatures)."""
    text = path.read_text()
    found = re.findall(r"(<!-- [^>]*-->\n)?```python\n(.*?)```", text, re.S)
    return [code for marker, code in found if not marker.startswith(("<!-- file:", "<!-- not run"))]


# Pages whose python blocks are run by a test of their own.
_OWN_RUNNER = {"python.md"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    [
        p
        for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
        if p.name not in _OWN_RUNNER and _python_blocks(p)
    ],
    ids=lambda p: p.name,
)
def test_every_python_block_in_the_docs_runs(page, tmp_path):
    blocks = _python_blocks(page)
    if page.name == "getting-started.md":  # it loads the run the page's CLI section made
        from probreg import api

        api.run(
            "spiral:n=300,val=60,test=60",
            "mdn:hidden=8,components=2",
            epochs=2,
            output=tmp_path / "runs" / "spiral-mdn",
            quiet=True,
        )
    script = "\n\n".join(blocks)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, f"{page.name}: {done.stderr[-3000:]}"


def test_benchmark_tables_in_the_docs_are_generated_from_their_json():
    """Every table between ``<!-- NAME -->`` markers equals what benchmarks/docs_tables.py
    makes from benchmarks/results/*.json, so a page cannot disagree with its numbers."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "docs_tables.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
