"""Regenerate the benchmark tables in ``docs/`` from the JSON the benchmarks wrote.

    python benchmarks/docs_tables.py           # rewrite every generated table
    python benchmarks/docs_tables.py --check   # exit 1 if a page disagrees with its JSON

Each table sits in its page between ``<!-- NAME -->`` and ``<!-- /NAME -->``; the text between
the markers is generated from ``benchmarks/results/*.json`` and never edited by hand, so a
table cannot disagree with its JSON (a test runs ``--check``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import distributed  # noqa: E402
import families  # noqa: E402
import predict  # noqa: E402
import spiral  # noqa: E402
import spline_floor  # noqa: E402
import uci  # noqa: E402

#: marker name -> (page, results JSON, formatter of the loaded JSON)
TABLES: dict[str, tuple[str, str, Callable[[dict], str]]] = {
    "spiral-table": ("docs/benchmarks.md", "spiral.json", spiral.format_table),
    "distributed-table": ("docs/benchmarks.md", "distributed.json", distributed.format_table),
    "predict-table": ("docs/python.md", "predict.json", lambda r: predict.table(r["results"])),
    "families-table": ("docs/families.md", "families.json", lambda r: families.table(r["results"])),
    "uci-table": ("docs/uci.md", "uci.json", uci.format_report),
    "spline-floor-table": (
        "docs/families.md",
        "spline_floor.json",
        lambda r: spline_floor.table(r["results"]),
    ),
}


def replace_between(text: str, name: str, body: str) -> str:
    """``text`` with the part between the ``name`` markers replaced by ``body``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"expected one {start} and one {end}")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def regenerate(root: Path = ROOT) -> dict[Path, str]:
    """Every page with its tables regenerated: ``{page: new text}``."""
    pages: dict[Path, str] = {}
    for name, (page, source, formatter) in TABLES.items():
        path = root / page
        results = json.loads((root / "benchmarks" / "results" / source).read_text())
        pages[path] = replace_between(pages.get(path) or path.read_text(), name, formatter(results))
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; change nothing")
    args = parser.parse_args()
    stale = []
    for path, text in regenerate().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
                print(f"rewrote {path.relative_to(ROOT)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date with benchmarks/results: {names}; run python benchmarks/docs_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
