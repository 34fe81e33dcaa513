"""``compare``: labels, ranking, aggregation over seeds, and the self-contained report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import probreg
from probreg import plugins
from probreg.calibration import SCORES
from probreg.comparison import compare, head_labels, mean_and_se, rank
from probreg.errors import UsageError


def test_labels_are_distinct_and_readable():
    heads = [plugins.create("head", s) for s in ("mdn", "mdn:components=3", "mdn", "mlp", "mdn")]
    assert head_labels(heads) == ["mdn", "mdn:components=3", "mdn #2", "mlp", "mdn #3"]


def test_mean_and_standard_error():
    mean, se = mean_and_se([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert se == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3))
    assert mean_and_se([5.0]) == (5.0, None)


def test_rank_orders_by_nll_and_marks_the_best_of_each_column():
    rows = [
        {
            "head": "a",
            "nll": 1.0,
            "crps": 0.2,
            "rmse": 1.0,
            "coverage_90": 0.95,
            "train_seconds": 3.0,
            "bayes_gap": 0.5,
            "parameters": 10,
        },
        {
            "head": "b",
            "nll": 0.5,
            "crps": 0.3,
            "rmse": 2.0,
            "coverage_90": 0.88,
            "train_seconds": 9.0,
            "bayes_gap": 0.0,
            "parameters": 20,
        },
    ]
    ranked = rank(rows)
    assert [r["head"] for r in ranked] == ["b", "a"]
    assert [r["rank"] for r in ranked] == [1, 2]
    assert set(ranked[0]["best"]) == {"nll", "bayes_gap", "coverage_90"}  # 0.88 is closer to 0.9
    assert set(ranked[1]["best"]) == {"crps", "rmse", "train_seconds"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "report"
    result = compare(
        "spiral:n=1200,val=300,test=800",
        ["mlp:hidden=16+16", "mdn:components=4,hidden=32+32", "mdn:components=2,hidden=32+32"],
        seeds=(0, 1),
        epochs=4,
        output=out,
        quiet=True,
    )
    return result, out


def test_compare_returns_the_ranked_table_as_data(report):
    result, _ = report
    assert [row["rank"] for row in result.table] == [1, 2, 3]
    nlls = [row["nll"] for row in result.table]
    assert nlls == sorted(nlls)
    assert len(result.runs) == 6
    for row in result.table:
        mine = [run["test"]["nll"] for run in result.runs if run["head"] == row["head"]]
        assert row["nll"] == pytest.approx(np.mean(mine))
        assert row["nll_se"] == pytest.approx(np.std(mine, ddof=1) / math.sqrt(2))


def test_every_head_sees_the_same_test_points(report):
    result, out = report
    for seed in (0, 1):
        configs = [
            json.loads((out / run["run_dir"] / "config.json").read_text())
            for run in result.runs
            if run["seed"] == seed
        ]
        assert len({c["dataset"]["spec"] for c in configs}) == 1
        bayes = {run["bayes_nll"] for run in result.runs if run["seed"] == seed}
        assert len(bayes) == 1  # identical test data gives one Bayes limit


def test_report_files_and_metrics_json(report):
    result, out = report
    for name in (
        "report.html",
        "report.md",
        "metrics.json",
        "samples.png",
        "density.png",
        "training.png",
        "calibration.png",
    ):
        assert (out / name).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "spiral:n=1200,val=300,test=800"
    assert metrics["bayes_nll"] == pytest.approx(result.bayes_nll)
    run = metrics["runs"][0]
    assert set(run["test"]) == {"nll", "crps", "rmse", "coverage_90", *SCORES}
    assert {"head", "train_seconds", "seed"} <= set(run)
    assert {"nll", "nll_se", "crps_se"} <= set(metrics["heads"][0])
    for run in metrics["runs"]:
        assert (out / run["run_dir"] / "model.keras").is_file()  # same layout as `probreg run`


def test_html_is_self_contained(report):
    _, out = report
    page = (out / "report.html").read_text()
    command = (
        "probreg compare --dataset spiral:n=1200,val=300,test=800 --head mlp:hidden=16+16 "
        "--head mdn:components=4,hidden=32+32 --head mdn:components=2,hidden=32+32 "
        "--seeds 0,1 --epochs 4"
    )
    assert command in page and 'id="ranking"' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert page.count("data:image/png;base64,") >= 4 + 3  # figures + one PIT thumbnail per head
    assert 'class="best"' in page


def test_a_diverging_head_is_recorded_and_the_report_still_written(tmp_path, temporary_plugin):
    from test_fault_injection import exploding_plugin

    from probreg import rundir

    temporary_plugin(exploding_plugin())
    out = tmp_path / "report"
    result = compare(
        "spiral:n=200,val=50,test=50",
        ["mdn:hidden=8,components=2", "exploding:hidden=8"],
        epochs=2,
        output=out,
        quiet=True,
    )
    good, bad = (
        plugins.create("head", s).spec for s in ("mdn:hidden=8,components=2", "exploding:hidden=8")
    )
    assert [row["head"] for row in result.table] == [good]
    diverged = [run for run in result.runs if run["status"] == "diverged"]
    assert len(diverged) == 1 and diverged[0]["head"] == bad
    assert "training diverged" in diverged[0]["error"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [run["status"] for run in metrics["runs"]] == ["completed", "diverged"]
    assert "Diverged" in (out / "report.html").read_text()
    assert rundir.read_marker(out)["kind"] == "compare"
    assert rundir.read_marker(out / diverged[0]["run_dir"])["state"] == "diverged"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"seeds": []}, "--seeds is empty; give at least one"),
        ({"seeds": 0}, "--seeds must be a list of integers, e.g. [0, 1, 2], not 0"),
        ({"seeds": "01"}, "--seeds must be a list of integers"),
        ({"seeds": [0, "1"]}, "seed '1' is not an integer from 0 to 4294967295"),
        ({"seeds": [-1]}, "seed -1 is out of range: use 0 to 4294967295"),
        ({"seeds": [2, 2]}, "--seeds lists a seed twice"),
        ({"splits": []}, "--splits is empty; give at least one"),
        ({"splits": [-1]}, "split -1 is out of range"),
    ],
)
def test_replicate_lists_are_checked_before_any_work(options, fragment, tmp_path):
    """An empty list used to fail deep inside (compare: IndexError; tune: an endless run of
    failed trials, each scoring the mean of nothing)."""
    for call in (
        lambda out: compare("spiral", ["mlp"], output=out, **options),
        lambda out: probreg.tune("spiral", "mlp", output=out, **options),
    ):
        with pytest.raises(UsageError, match=re.escape(fragment)):
            call(tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match=re.escape("seed '1' is not an integer")):
        probreg.run("spiral", "mlp", seed="1", output=tmp_path / "out")


def test_one_head_spec_as_a_string_is_one_head():
    result = compare("spiral:n=200,val=50,test=50", "mlp:hidden=8", epochs=1, write=False)
    assert [row["head"] for row in result.table] == ["mlp:hidden=8"]


def test_splits_are_a_declared_dataset_capability():
    spiral = plugins.create("dataset", "spiral")
    assert spiral.n_splits() is None and spiral.reference() is None
    with pytest.raises(UsageError, match="dataset 'spiral' has no splits"):
        compare("spiral", ["mlp"], splits=[0, 1], write=False)


def test_the_terminal_tables_stay_aligned_with_long_head_labels():
    from types import SimpleNamespace

    from probreg.cli import _ranking

    scores = {"nll": 1.0, "crps": 0.5, "rmse": 0.7, "coverage_90": 0.9}
    scores.update(calibration_error=0.01, sharpness_90=1.0, interval_score_90=2.0, wis=0.3)
    long_label = "mdn:components=3,hidden=8,epochs=2,learning_rate=0.001"
    table = [
        {"rank": 1, "head": long_label, **scores, "pinball": 0.1},
        {"rank": 2, "head": "mlp", **scores, "pinball": 0.1},
    ]
    text = _ranking(SimpleNamespace(table=table, bayes_nll=0.9, runs=[]))
    rows = [line for line in text.splitlines() if "mlp" in line or long_label in line]
    assert len(rows) == 4  # the ranking and the calibration table, a row per head each
    for first, second in (rows[0:2], rows[2:4]):
        assert len(first) == len(second)  # numbers end in the same column
    header = text.splitlines()[0]
    assert len(header) == len(rows[0])


def test_an_interrupted_comparison_says_so_in_its_report(tmp_path, monkeypatch):
    from probreg import comparison

    real, calls = comparison.fit_and_score, []

    def second_is_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C before the second head's first epoch ended
        return real(*args, **kwargs)

    monkeypatch.setattr(comparison, "fit_and_score", second_is_interrupted)
    out = tmp_path / "report"
    result = compare(
        "spiral:n=200,val=50,test=50",
        ["mdn:hidden=8,components=2", "mlp:hidden=8"],
        epochs=2,
        output=out,
        quiet=True,
    )
    assert result.interrupted and len(result.runs) == 1
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    for name in ("report.md", "report.html"):
        assert (
            "Interrupted (Ctrl-C or SIGTERM): this report holds the 1 run(s)"
            in (out / name).read_text()
        )
