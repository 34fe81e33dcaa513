"""Numbers stay exact: data is float64 until it is standardised (in float64), training and
prediction standardise alike, and adding a constant to x or y does not change the scores."""

from __future__ import annotations

import numpy as np
import pytest

from probreg import api, plugins
from probreg.errors import UsageError
from probreg.predict import predict

HEAD = "mdn:hidden=8,components=2,epochs=3"
STAMP = 1.7e9  # a Unix timestamp: float32 keeps only every 128th second of it


def table(path, x, y, extra=None):
    """Write columns ``x`` and ``y`` (and ``extra`` name -> values) as a CSV file, exactly."""
    columns = {"x": x, "y": y, **(extra or {})}
    rows = zip(*columns.values(), strict=True)
    path.write_text(
        ",".join(columns)
        + "\n"
        + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)
    )
    return f"csv:path={path},x=x,y=y"


def seconds_and_signal(n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n, dtype=np.float64)
    y = np.sin(t / 40.0) + 0.1 * np.random.default_rng(0).standard_normal(n)
    return t, y


def test_timestamps_keep_every_distinct_value(tmp_path):
    t, y = seconds_and_signal()
    data = plugins.create("dataset", table(tmp_path / "t.csv", STAMP + t, y)).load(0)
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert data.x_train.dtype == np.float64
    assert len(np.unique(x)) == 500  # float32 would leave a handful


def test_scores_do_not_change_when_a_constant_is_added(tmp_path):
    t, y = seconds_and_signal()
    base = api.run(table(tmp_path / "a.csv", t, y), HEAD, write=False, quiet=True)
    for name, x_offset, y_offset in (("x", STAMP, 0.0), ("y", 0.0, 1e9)):
        spec = table(tmp_path / f"{name}.csv", t + x_offset, y + y_offset)
        shifted = api.run(spec, HEAD, write=False, quiet=True)
        for key, value in base.metrics["test"].items():
            assert shifted.metrics["test"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (
                name,
                key,
            )


def test_training_and_predict_standardise_alike(tmp_path):
    t, y = seconds_and_signal()
    result = api.run(
        table(tmp_path / "a.csv", STAMP + t, 1e9 + y), HEAD, output=tmp_path / "run", quiet=True
    )
    x_test = result.data.x_test[:, 0]
    inputs = tmp_path / "new.csv"
    inputs.write_text("x\n" + "".join(f"{float(v)!r}\n" for v in x_test))
    _, predicted = predict(tmp_path / "run", inputs, tmp_path / "out.csv", mean=True)
    np.testing.assert_allclose(predicted[:, 0], x_test, rtol=0, atol=0)
    np.testing.assert_allclose(predicted[:, 1], result.distribution.mean()[:, 0], rtol=1e-12)


def test_a_constant_input_column_is_a_notice(tmp_path):
    t, y = seconds_and_signal(200)
    path = tmp_path / "c.csv"
    table(path, t, y, {"k": np.full(200, 3.25)})
    said: list[str] = []
    result = api.run(f"csv:path={path},x=x+k,y=y", HEAD, write=False, echo=said.append)
    notes = [line for line in said if line.startswith("Note:")]
    assert notes == [
        "Note: input column 'k' is constant in the training rows; the model sees it as 0"
    ]
    assert np.isfinite(result.metrics["test"]["nll"])
    assert result.predictor.x_scaling.scale[1] == 1.0


def test_a_constant_target_is_an_error_before_any_folder(tmp_path):
    t, _ = seconds_and_signal(200)
    spec = table(tmp_path / "c.csv", t, np.full(200, 1e9 + 0.5))
    with pytest.raises(UsageError, match="target column 'y' is constant .* 1000000000.5"):
        api.run(spec, HEAD, output=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_a_target_of_1e9_plus_noise_is_not_constant(tmp_path):
    t, y = seconds_and_signal(300)
    result = api.run(table(tmp_path / "n.csv", t, 1e9 + 1e-3 * y), HEAD, write=False, quiet=True)
    assert result.predictor.y_scaling.scale[0] == pytest.approx(1e-3 * y[:200].std(), rel=0.3)
    assert result.metrics["test"]["rmse"] < 3e-3
