"""A real browser (headless Chromium via Playwright) opens report.html offline.

Skipped when no Chromium is installed, unless PROBREG_REQUIRE_BROWSER=1 (CI sets it), in which
case a missing browser fails the test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.browser
def test_report_renders_in_chromium_with_every_image(tmp_path_factory):
    executable = _chromium()
    if executable is None or not _has_playwright():
        if os.environ.get("PROBREG_REQUIRE_BROWSER") == "1":
            pytest.fail("PROBREG_REQUIRE_BROWSER=1 but Chromium or playwright is missing")
        pytest.skip("headless Chromium or playwright is not installed")
    from playwright.sync_api import sync_playwright

    from probreg.comparison import compare

    out = tmp_path_factory.mktemp("browser") / "report"
    compare(
        "spiral:n=800,val=200,test=600",
        ["mlp:hidden=8", "mdn:components=3,hidden=16+16"],
        epochs=2,
        output=out,
        quiet=True,
    )
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#ranking tbody tr")
        assert rows.count() == 2
        assert "mdn" in page.locator("#ranking").inner_text()
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 6
    for alt, complete, width in images:
        assert complete and width > 0, f"image {alt!r} did not render"
    external = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert external == []


def _has_playwright() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True
