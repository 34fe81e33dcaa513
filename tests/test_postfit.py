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


def test_several_monitors_report_each_scores_own_best_epoch(tmp_path):
    """``nll,rmse`` keeps the NLL-selected weights and adds the test scores at the best
    validation-RMSE epoch of the same training: the same numbers as a run selecting by RMSE
    alone (same seed, no early stop), and the NLL run's are a plain run's."""
    head = "mdn:components=3,hidden=16,epochs=6"
    both = api.run(DATA, head, seed=4, output=tmp_path / "both", quiet=True, monitor="nll,rmse")
    by_nll = api.run(DATA, head, seed=4, write=False, quiet=True)
    by_rmse = api.run(DATA, head, seed=4, write=False, quiet=True, monitor="rmse")
    history = json.loads((tmp_path / "both" / "history.json").read_text())
    metrics = json.loads((tmp_path / "both" / "metrics.json").read_text())
    at = metrics["selected"]["rmse"]
    assert metrics["best_epoch"] == int(np.argmin(history["val_loss"])) + 1
    assert at["best_epoch"] == int(np.argmin(history["val_rmse"])) + 1
    assert at["best_epoch"] == by_rmse.metrics["best_epoch"]
    for key in ("nll", "crps", "rmse"):
        assert metrics["test"][key] == pytest.approx(by_nll.metrics["test"][key], rel=1e-5)
        assert at["test"][key] == pytest.approx(by_rmse.metrics["test"][key], rel=1e-5)
    # the kept (NLL-selected) weights are what the run folder holds
    again = postfit.score_run(tmp_path / "both", both.data.x_test, both.data.y_test)
    assert again["nll"] == pytest.approx(metrics["test"]["nll"], rel=1e-6)
    assert any(line.startswith("  at best val rmse") for line in postfit.summary_lines(metrics))
    # a head whose after_fit sets weights (mlp: the validation residuals' scale) keeps its own
    plain = api.run(DATA, "mlp:hidden=16,epochs=6", seed=4, write=False, quiet=True)
    mixed = api.run(
        DATA, "mlp:hidden=16,epochs=6", seed=4, write=False, quiet=True, monitor="nll,rmse"
    )
    assert mixed.metrics["test"]["nll"] == pytest.approx(plain.metrics["test"]["nll"], rel=1e-5)
    # compare averages the selected scores over replicates and shows them beside the rest
    result = compare(DATA, [head], seeds=[4, 5], write=False, quiet=True, monitor="nll,rmse")
    runs = [run["selected"]["rmse"]["test"]["rmse"] for run in result.runs]
    assert result.table[0]["selected"]["rmse"]["rmse"] == pytest.approx(np.mean(runs))
    lines = postfit.ranking_lines(result)
    assert any("at its best validation rmse epoch" in line for line in lines)


def test_distributed_runs_refuse_other_monitors_before_any_folder(tmp_path):
    from probreg.distributed import Layout

    with pytest.raises(UsageError, match="needs a single process"):
        api.run(
            DATA,
            HEAD,
            output=tmp_path / "out",
            quiet=True,
            monitor="nll,rmse",
            layout=Layout(process_count=2),
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="needs a single process"):  # compare: the same check
        compare(
            DATA,
            [HEAD],
            output=tmp_path / "cmp",
            quiet=True,
            monitor="rmse",
            layout=Layout(process_count=2),
        )
    assert not (tmp_path / "cmp").exists()


def test_options_are_checked_before_training():
    with pytest.raises(UsageError, match="monitor"):
        postfit.Options(monitor="accuracy")
    with pytest.raises(UsageError, match="names 'rmse' twice"):
        postfit.Options(monitor="rmse,nll,rmse")
    with pytest.raises(UsageError, match="unknown monitor ''"):
        postfit.Options(monitor="nll,")
    assert postfit.Options(monitor=" nll, rmse").monitor == "nll,rmse"  # as commands write it
    with pytest.raises(UsageError, match="conformal"):
        postfit.Options(conformal=1.0)
    with pytest.raises(UsageError, match="1-D"):
        api.run("robot-arm:n=200,val=50,test=50", HEAD, write=False, quiet=True, recalibrate=True)
    assert cli.MONITORS == postfit.MONITORS


def test_progress_counts_the_rows_held_out_for_conformal_calibration():
    said = []
    result = api.run(DATA, HEAD, epochs=1, conformal=0.25, write=False, echo=said.append)
    assert result.metrics["rows"]["train"] == 525
    assert any(
        "on 525 rows (250 validation, 300 test, 175 held out for conformal" in s for s in said
    )


def test_a_damaged_recalibration_map_is_named(calibrated_run, tmp_path):
    import shutil

    _, out = calibrated_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / postfit.RECALIBRATION).write_text('{"knots": [0, 1], "values": [1, 0]}')
    with pytest.raises(UsageError, match=f"'{copy / postfit.RECALIBRATION}' is unreadable"):
        postfit.load_map(copy)


def test_mean_and_params_keep_the_models_own_mean_beside_a_recalibrated_one(tmp_path):
    """The spline's parameters include its mean. With --mean --params it is written once; on a
    recalibrated run the mean column is the recalibrated mean, so the model's own comes too."""
    import shutil

    out = tmp_path / "spline"
    result = api.run(
        DATA, "mdn:family=spline,bins=4,hidden=8,epochs=2", output=out, quiet=True, recalibrate=True
    )
    x = np.linspace(0.2, 4.8, 5)
    (tmp_path / "in.csv").write_text("x\n" + "\n".join(repr(float(v)) for v in x) + "\n")
    header, table = predict(out, tmp_path / "in.csv", tmp_path / "p.csv", mean=True, params=True)
    assert header.count("y_mean") == 1 and "y_mean_model" in header
    model = result.predictor.distribution(x[:, None])
    recal = calibration.Recalibrated(model, postfit.load_map(out))
    np.testing.assert_allclose(table[:, header.index("y_mean")], recal.mean()[:, 0], rtol=1e-6)
    np.testing.assert_allclose(
        table[:, header.index("y_mean_model")], model.mean()[:, 0], rtol=1e-6
    )
    plain = tmp_path / "plain"
    shutil.copytree(out, plain)
    (plain / "recalibration.json").unlink()
    header, table = predict(plain, tmp_path / "in.csv", tmp_path / "q.csv", mean=True, params=True)
    assert header.count("y_mean") == 1 and "y_mean_model" not in header
    np.testing.assert_allclose(table[:, header.index("y_mean")], model.mean()[:, 0], rtol=1e-6)
