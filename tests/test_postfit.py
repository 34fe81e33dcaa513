"""Recalibration, conformal sets and score selection through ``run``, ``compare`` and
``predict`` (tiny trainings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probreg import api, calibration, cli, postfit
from probreg.comparison import compare
from probreg.errors import UsageError
from probreg.predict import predict

DATA = "spiral:n=700,val=250,test=300"
HEAD = "mdn:components=3,hidden=16,epochs=3"


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("postfit") / "run"
    result = api.run(
        DATA, HEAD, seed=1, output=out, quiet=True, recalibrate=True, conformal=0.25, monitor="crps"
    )
    return result, out


def test_run_saves_the_map_the_rows_and_scores_before_and_after(calibrated_run):
    result, out = calibrated_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / postfit.RECALIBRATION).is_file() and (out / postfit.CONFORMAL).is_file()
    assert (out / "reliability.png").is_file()
    assert metrics["rows"]["train"] == 700 - 175  # a quarter held out for conformal calibration
    after = metrics["recalibrated"]["test"]
    assert set(after) == set(metrics["test"])
    # the recalibrated scores are those of the saved map applied to the model
    pit_map = postfit.load_map(out)
    recal = calibration.Recalibrated(result.distribution, pit_map)
    y = result.data.y_test
    assert after["nll"] == pytest.approx(-np.mean(recal.log_prob(y)), rel=1e-9)
    assert after["calibration_error"] == pytest.approx(
        calibration.calibration_error(recal.cdf(y)), rel=1e-9
    )
    curve = metrics["reliability"]
    assert curve["nominal"] == list(calibration.RELIABILITY_LEVELS)
    conf = metrics["conformal"]
    assert conf["rows"] == 175 and {"model", "interval", "region"} <= set(conf)
    # selection by CRPS: the history has the score and the best epoch follows it
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_crps"]) == metrics["epochs"]
    assert metrics["best_epoch"] == int(np.argmin(history["val_crps"])) + 1
    # the same scores through predict's Python API (the recalibrated distribution)
    again = postfit.score_run(out, result.data.x_test, y)
    assert again["nll"] == pytest.approx(after["nll"], rel=1e-6)


def test_predict_uses_the_map_and_writes_conformal_sets(calibrated_run, tmp_path):
    result, out = calibrated_run
    x = np.linspace(0.2, 4.8, 7)
    (tmp_path / "in.csv").write_text("x\n" + "\n".join(repr(float(v)) for v in x) + "\n")
    header, table = predict(out, tmp_path / "in.csv", tmp_path / "q.csv", quantiles=(0.9,))
    recal = calibration.Recalibrated(
        result.predictor.distribution(x[:, None]), postfit.load_map(out)
    )
    np.testing.assert_allclose(table[:, 1], recal.quantile(0.9)[:, 0], rtol=1e-6)
    header, table = predict(
        out, tmp_path / "in.csv", tmp_path / "i.csv", intervals="conformal:level=0.9"
    )
    assert header == ["x", "y_lower", "y_upper"]
    assert np.all(table[:, 1] < table[:, 2])
    # the bounds are the model's 5% and 95% quantiles widened by the calibrated margin
    margin = json.loads((out / "metrics.json").read_text())["conformal"]["interval"]["margin"][0]
    model = result.predictor.distribution(x[:, None])
    np.testing.assert_allclose(table[:, 1], model.quantile(0.05)[:, 0] - margin, rtol=1e-6)
    header, table = predict(
        out, tmp_path / "in.csv", tmp_path / "r.csv", intervals="conformal:level=0.8,kind=region"
    )
    pieces = (len(header) - 1) // 2
    assert header[1:3] == ["y_region_1_lower", "y_region_1_upper"]
    assert header[-1] == f"y_region_{pieces}_upper"
    lower, upper = table[:, 1::2], table[:, 2::2]
    finite = np.isfinite(lower)
    assert finite[:, 0].all() and np.all(lower[finite] <= upper[finite])
    with pytest.raises(UsageError):
        predict(out, tmp_path / "in.csv", tmp_path / "x.csv", intervals="conformal:level=2")


def test_predict_without_calibration_rows_says_how(small_run, tmp_path):
    (tmp_path / "in.csv").write_text("x\n1.0\n")
    with pytest.raises(UsageError, match="--conformal"):
        predict(small_run.run_dir, tmp_path / "in.csv", "-", intervals="conformal:level=0.9")


def test_compare_adds_recalibrated_heads_and_conformal_section(tmp_path):
    result = compare(
        DATA,
        [HEAD],
        seeds=[2],
        output=tmp_path / "report",
        quiet=True,
        recalibrate=True,
        conformal=0.2,
    )
    heads = [row["head"] for row in result.table]
    assert sorted(heads) == sorted([HEAD, HEAD + postfit.SUFFIX])
    for row in result.table:
        for key in calibration.SCORES:
            assert np.isfinite(row[key])
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "Conformal intervals and regions" in markdown and "reliability.png" in markdown
    assert "--recalibrate --conformal 0.2" in markdown
    assert "region length" in markdown


def test_options_are_checked_before_training():
    with pytest.raises(UsageError, match="monitor"):
        postfit.Options(monitor="accuracy")
    with pytest.raises(UsageError, match="conformal"):
        postfit.Options(conformal=1.0)
    with pytest.raises(UsageError, match="1-D"):
        api.run("robot-arm:n=200,val=50,test=50", HEAD, write=False, quiet=True, recalibrate=True)
    assert cli.MONITORS == postfit.MONITORS
