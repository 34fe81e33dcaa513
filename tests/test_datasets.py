"""The other built-in datasets: bundled files, exact densities checked by simulation, user CSVs
with one-line errors, and the UCI split format."""

from __future__ import annotations

import numpy as np
import pytest

from probreg import plugins
from probreg.default_plugins.bishop import forward
from probreg.default_plugins.robot_arm import forward_kinematics, inverse_kinematics
from probreg.errors import UsageError
from probreg.testing import check_dataset


@pytest.mark.parametrize(
    "spec",
    [
        "spiral:n=500,val=100,test=200",
        "bishop",
        "robot-arm:n=500,val=100,test=200",
        "mcycle",
        "faithful",
    ],
)
def test_builtin_datasets_keep_the_contract(spec):
    check_dataset(spec)


def test_bundled_tables_load_with_their_sizes():
    mcycle = plugins.create("dataset", "mcycle").load(0)
    faithful = plugins.create("dataset", "faithful").load(0)
    assert sum(len(p) for p in (mcycle.x_train, mcycle.x_val, mcycle.x_test)) == 133
    assert sum(len(p) for p in (faithful.x_train, faithful.x_val, faithful.x_test)) == 272
    assert mcycle.x_names == ("times",) and mcycle.y_names == ("accel",)
    assert faithful.x_names == ("waiting",) and faithful.y_names == ("eruptions",)
    # Durations are bimodal: few eruptions last between 2.5 and 3 minutes.
    durations = np.concatenate([faithful.y_train, faithful.y_val, faithful.y_test])[:, 0]
    assert np.mean((durations > 2.5) & (durations < 3.0)) < 0.08


def test_bishop_density_matches_simulation():
    """p(x) = L(x) / (2 noise) for the uniform noise: compare with a histogram of draws."""
    data = plugins.create("dataset", "bishop:n=3,val=1,test=400000").load(7)
    x = data.x_test[:, 0]
    edges = np.linspace(0.0, 1.0, 21)
    observed = np.histogram(x, bins=edges)[0] / len(x)
    fine = np.linspace(0.0, 1.0, 20 * 500 + 1)
    density = data.log_density.support_length(fine) / 0.2
    expected = [
        np.trapezoid(density[i * 500 : (i + 1) * 500 + 1], fine[i * 500 : (i + 1) * 500 + 1])
        for i in range(20)
    ]
    np.testing.assert_allclose(observed, expected, rtol=0.03)
    # Every drawn (x, t) lies inside the support the density claims.
    assert np.all(np.isfinite(data.log_density(data.x_test[:1000], data.y_test[:1000])))
    assert np.all(np.abs(data.x_test[:1000, 0] - forward(data.y_test[:1000, 0])) <= 0.1)


def test_robot_arm_inverse_kinematics_and_branch_weights():
    data = plugins.create("dataset", "robot-arm:n=3,val=1,test=200000,noise=0.01").load(3)
    theta, valid = inverse_kinematics(data.x_test)
    np.testing.assert_allclose(forward_kinematics(theta[:, 0]), data.x_test, atol=1e-6)
    np.testing.assert_allclose(forward_kinematics(theta[:, 1]), data.x_test, atol=1e-6)
    # The density's branch weights must match how often each branch produced the data.
    jacobian = 1.0 / np.abs(np.sin(theta[..., 1]))
    weights = np.where(valid, jacobian, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    elbow_down = data.y_test[:, 1] > np.pi  # the branch with theta2 above pi
    assert weights[:, 1].mean() == pytest.approx(elbow_down.mean(), abs=0.01)
    # Many positions have two valid solutions: the mapping is not a function.
    assert valid.all(axis=1).mean() > 0.3


def write(path, text):
    path.write_text(text)
    return path


def test_csv_dataset_reads_columns_and_splits(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{(i % 7) * 1.0}" for i in range(100))
    path = write(tmp_path / "data.csv", "a,b,c\n" + rows + "\n")
    data = plugins.create("dataset", f"csv:path={path},x=a+b,y=c").load(0)
    assert data.x_names == ("a", "b") and data.y_names == ("c",)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 100
    assert len(data.x_test) == 20
    test = write(tmp_path / "test.csv", "c,b,a\n1,2,3\n4,5,6\n")
    with_test = plugins.create("dataset", f"csv:path={path},x=a,y=c,test={test}").load(0)
    np.testing.assert_array_equal(with_test.x_test[:, 0], [3, 6])
    np.testing.assert_array_equal(with_test.y_test[:, 0], [1, 4])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("x,y\n", "has a header but no data rows"),
        ("x,z\n1,2\n", "has no column 'y'; its columns are: x, z"),
        ("x,y\n1,2\n3,abc\n", "line 3, column 'y': 'abc' is not a number"),
        ("x,y\n1,2\n3,1_000\n", "line 3, column 'y': '1_000' is not a number"),  # float() takes it
        ("x,y\n1,2\nNaN,3\n", "line 3, column 'x': 'NaN' is not a finite number"),
        ("x,y\n1,inf\n", "'inf' is not a finite number"),
        ("x,y\n1,2\n3\n", "line 3 has 1 fields but the header has 2"),
        ("x,y\n1,2\n3,4\n5,6\n", "too few rows to split"),
    ],
)
def test_bad_csv_files_give_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=fragment) as error:
        plugins.create("dataset", f"csv:path={path},x=x,y=y").load(0)
    assert "\n" not in str(error.value)
    if content is not None and "line" in fragment:
        assert str(path) in str(error.value)


def test_csv_needs_its_parameters():
    with pytest.raises(UsageError, match="needs parameter 'path'"):
        plugins.create("dataset", "csv:x=a,y=b")
    # Caught when the spec is read, before the file is opened or any folder made.
    with pytest.raises(UsageError, match="column 'b' is both an input"):
        plugins.create("dataset", "csv:path=nowhere.csv,x=a+b,y=b")
    with pytest.raises(UsageError, match="column 'a' is named twice in x="):
        plugins.create("dataset", "csv:path=nowhere.csv,x=a+a,y=b")


@pytest.fixture
def uci_folder(tmp_path):
    """A tiny folder in the standard UCI split format (3 splits)."""
    tmp_path = tmp_path / "tiny"
    tmp_path.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x @ [1.0, -2.0, 0.5] + rng.normal(scale=0.1, size=60)
    np.savetxt(tmp_path / "data.txt", np.column_stack([x, y]))
    np.savetxt(tmp_path / "index_features.txt", [0, 1, 2], fmt="%d")
    np.savetxt(tmp_path / "index_target.txt", [3], fmt="%d")
    for k in range(3):
        order = np.random.default_rng(k).permutation(60)
        np.savetxt(tmp_path / f"index_train_{k}.txt", order[:50], fmt="%d")
        np.savetxt(tmp_path / f"index_test_{k}.txt", order[50:], fmt="%d")
    (tmp_path / "n_splits.txt").write_text("3\n")
    return tmp_path


def test_uci_reads_the_split_and_carves_validation_from_training_rows(uci_folder):
    dataset = plugins.create("dataset", f"uci:path={uci_folder},split=1")
    assert dataset.n_splits() == 3
    data = dataset.load(1)
    table = np.loadtxt(uci_folder / "data.txt")
    test_rows = np.loadtxt(uci_folder / "index_test_1.txt", dtype=int)
    np.testing.assert_allclose(data.x_test, table[test_rows, :3], rtol=1e-6)
    np.testing.assert_allclose(data.y_test[:, 0], table[test_rows, 3], rtol=1e-6)
    assert len(data.x_train) + len(data.x_val) == 50 and len(data.x_val) == 5
    train_rows = set(
        map(tuple, table[np.loadtxt(uci_folder / "index_train_1.txt", dtype=int), :3].round(5))
    )
    assert all(tuple(row) in train_rows for row in data.x_val.astype(float).round(5))
    assert data.x_names == ("x0", "x1", "x2")


def test_uci_errors(uci_folder, tmp_path):
    with pytest.raises(UsageError, match="has 3 splits .* split=3 does not exist"):
        plugins.create("dataset", f"uci:path={uci_folder},split=3").load(0)
    with pytest.raises(UsageError, match="does not exist"):
        plugins.create("dataset", f"uci:path={tmp_path / 'nowhere'}").load(0)
    (uci_folder / "index_target.txt").unlink()
    with pytest.raises(UsageError, match="has no index_target.txt"):
        plugins.create("dataset", f"uci:path={uci_folder}").load(0)
    (uci_folder / "data.txt").unlink()  # named, rather than "0 splits" or a missing index
    with pytest.raises(UsageError, match="has no data.txt, index_target.txt \\(the standard"):
        plugins.create("dataset", f"uci:path={uci_folder}").load(0)


def test_a_split_in_the_spec_and_splits_to_run_are_refused_together(uci_folder, tmp_path):
    """``uci:split=1`` with ``--splits`` would silently run other splits than the spec says."""
    import probreg

    spec = f"uci:path={uci_folder},split=1"
    for call in (
        lambda out: probreg.compare(spec, ["mlp:hidden=8"], splits=[0, 2], output=out),
        lambda out: probreg.tune(spec, "mlp:hidden=8", splits=[0, 2], output=out),
    ):
        with pytest.raises(UsageError, match="sets split=1 and --splits chooses splits too"):
            call(tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="sets split=0 and --splits"):  # even the default
        probreg.compare(f"uci:path={uci_folder},split=0", ["mlp"], splits=[1], write=False)
    result = probreg.compare(
        f"uci:path={uci_folder}", "mlp:hidden=8,epochs=1", splits=[1], write=False
    )
    assert [run["replicate"] for run in result.runs] == ["split 1"]
    # The earlier positional call, without the spec as given, still works.
    from probreg.comparison import replicates

    dataset = plugins.create("dataset", f"uci:path={uci_folder}")
    assert [rep.name for rep in replicates(dataset, [0], [2, 1])] == ["split 2", "split 1"]


def test_uci_compare_over_splits_reports_published_numbers(uci_folder, tmp_path):
    from probreg.comparison import compare

    published = tmp_path / "concrete"  # a known folder name brings the published figures
    published.mkdir()
    for item in uci_folder.iterdir():
        (published / item.name).write_bytes(item.read_bytes())
    result = compare(
        f"uci:path={published}",
        ["mdn:components=2,hidden=8,epochs=3"],
        splits=[0, 1, 2],
        output=tmp_path / "report",
        quiet=True,
    )
    assert [run["replicate"] for run in result.runs] == ["split 0", "split 1", "split 2"]
    assert result.table[0]["nll_se"] is not None
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'id="published"' in page and "MC dropout" in page and "-2.93 ± 0.02" in page
    # Every published method for the set, with its source and split protocol.
    assert "WGBoost" in page and "-2.83 ± 0.11" in page and "own random 90/10 splits" in page
    assert "DVI" in page and "-3.06 ± 0.01" in page


@pytest.mark.parametrize(
    "spec",
    ["bishop:n=300,val=60,test=200", "robot-arm:n=300,val=60,test=200", "mcycle", "faithful"],
)
def test_every_dataset_compares_mlp_and_mdn(spec, tmp_path):
    from probreg.comparison import compare

    result = compare(
        spec,
        ["mlp:hidden=8", "mdn:components=3,hidden=16"],
        epochs=2,
        output=tmp_path / "r",
        quiet=True,
    )
    assert {row["head"] for row in result.table} == {"mlp:hidden=8", "mdn:components=3,hidden=16"}
    assert (tmp_path / "r" / "report.html").is_file()
    exact = plugins.create("dataset", spec).load(0).log_density is not None
    assert (result.bayes_nll is not None) == exact
    if spec.startswith("robot-arm"):
        assert (tmp_path / "r" / "joint.png").is_file() and (
            tmp_path / "r" / "intervals.png"
        ).is_file()


@pytest.mark.slow
def test_bundled_data_loads_from_a_regular_wheel(tmp_path):
    """Build a wheel (not editable), install it to a folder, and load the bundled tables."""
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("probreg-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "probreg/_bundled/mcycle.csv" in names and "probreg/_bundled/faithful.csv" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a wheel is a zip of its installed files
    code = (
        "import probreg, probreg.datasets as d; from probreg import plugins\n"
        "assert '/site/' in probreg.__file__, probreg.__file__\n"
        "assert '_bundled' in str(d.bundled_path('mcycle.csv'))\n"
        "print(len(plugins.create('dataset', 'mcycle').load(0).x_test))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "27"


def test_inconsistent_data_from_a_plugin_is_a_one_line_plugin_error():
    from probreg.datasets import Data
    from probreg.errors import PluginError

    x, y = np.zeros((5, 1)), np.zeros((5, 1))
    with pytest.raises(PluginError, match="2 y_names for 1 target columns") as names:
        Data(x, y, x, y, x, y, ("x",), ("a", "b"))
    assert isinstance(names.value, ValueError)  # what it raised before
    with pytest.raises(PluginError, match="x_val and y_val with different numbers of rows"):
        Data(x, y, x[:3], y, x, y, ("x",), ("y",))


def test_split_draw_cuts_n_val_and_test_rows_and_refuses_a_short_draw():
    from probreg.datasets import split_draw

    options = {"n": 5, "val": 2, "test": 3}
    x = np.arange(10.0)[:, None]
    names = {"x_names": ("x",), "y_names": ("y",)}
    data = split_draw(x, 2 * x, options, **names)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (5, 2, 3)
    np.testing.assert_array_equal(data.y_test[:, 0], [14.0, 16.0, 18.0])
    longer = split_draw(np.arange(12.0)[:, None], np.zeros((12, 1)), options, **names)
    assert len(longer.x_test) == 5  # a longer draw gives the test part the rest, as before
    with pytest.raises(ValueError, match="got 9 rows for n=5, val=2 and test=3: draw .* = 10"):
        split_draw(x[:9], x[:9], options, **names)
