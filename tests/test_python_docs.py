"""docs/python.md runs: every python and bash block, top to bottom, as one notebook."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(python|bash)\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_has_its_sections_and_is_linked():
    text = PAGE.read_text()
    for title in ("## The estimator", "## Pipelines", "## Your own trunk", "## An MDN-RNN"):
        assert title in text
    assert "## Export" in text and "PREDICT_TABLE" not in text
    assert "(python.md)" in (PAGE.parent / "index.md").read_text()
    assert {kind for kind, _ in blocks()} == {"python", "bash"}


@pytest.mark.slow
def test_every_code_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    pytest.importorskip("skpro")
    pytest.importorskip("tf2onnx")
    monkeypatch.chdir(tmp_path)
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    namespace: dict = {"__name__": "__docs__"}
    for number, (kind, code) in enumerate(blocks(), 1):
        if kind == "python":
            exec(compile(code, f"docs/python.md block {number}", "exec"), namespace)
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            assert done.returncode == 0, f"block {number}: {done.stderr}"
