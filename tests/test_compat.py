"""What worked before keeps working: a head written against the pre-family API (``build``,
``loss``, ``distribution``), and run folders saved by probreg 0.1 (``tests/data/runs-0.1``,
made by the 0.1 code with the ``expected.npz`` it computed)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest

import probreg
from probreg import plugins
from probreg.distributions import Distribution
from probreg.errors import UsageError
from probreg.heads import Head, training_params, trunk_params
from probreg.hookspecs import hookimpl
from probreg.testing import check_head

OLD_RUNS = Path(__file__).parent / "data" / "runs-0.1"


class LaplaceDistribution(Distribution):
    """Independent Laplace coordinates, written against the 0.1 Distribution API."""

    def __init__(self, location, scale):
        self.location, self.scale = np.asarray(location, float), np.asarray(scale, float)

    @property
    def batch_size(self):
        return self.location.shape[0]

    @property
    def event_dim(self):
        return self.location.shape[1]

    def log_prob(self, y):
        z = np.abs(np.asarray(y) - self.location) / self.scale
        return -(z + np.log(2.0 * self.scale)).sum(axis=1)

    def sample(self, rng, num_samples=1):
        return rng.laplace(self.location, self.scale, size=(num_samples, *self.location.shape))

    def mean(self):
        return self.location

    def mode(self):
        return self.location

    def variance(self):
        return 2.0 * self.scale**2

    def cdf(self, y):
        z = (np.asarray(y) - self.location) / self.scale
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))


@keras.saving.register_keras_serializable(package="old_style_laplace")
class LaplaceNLL(keras.losses.Loss):
    """The 0.1 tutorial's loss."""

    def __init__(self, output_dim, name="laplace_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.output_dim = int(output_dim)

    def call(self, y_true, y_pred):
        d, ops = self.output_dim, keras.ops
        scale = ops.softplus(y_pred[:, d:]) + 1e-3
        y = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, d))
        return ops.sum(ops.abs(y - y_pred[:, :d]) / scale + ops.log(2.0 * scale), axis=-1)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim}


def _old_style_module() -> types.ModuleType:
    """The 0.1 tutorial's head: its own model, loss and distribution; no family."""
    module = types.ModuleType("old_style_laplace")

    class OldLaplace(Head):
        """Laplace p(y|x), written against the 0.1 head API."""

        name = "old-laplace"
        keras_modules = ("old_style_laplace",)
        params = (
            *trunk_params(hidden=(16,), activation="relu"),
            *training_params(epochs=3, learning_rate=2e-3),
        )

        def build(self, input_dim, output_dim):
            import keras

            from probreg.layers import dense_trunk

            inputs = keras.Input((input_dim,))
            features = dense_trunk(inputs, self.options["hidden"], self.options["activation"])
            return keras.Model(inputs, keras.layers.Dense(2 * output_dim)(features))

        def loss(self, output_dim):
            return LaplaceNLL(output_dim)

        def distribution(self, outputs, output_dim):
            scale = np.logaddexp(0.0, outputs[:, output_dim:]) + 1e-3
            return LaplaceDistribution(outputs[:, :output_dim], scale)

    module.OldLaplace = OldLaplace

    @hookimpl
    def register_heads(register):
        register(OldLaplace)

    module.register_heads = register_heads
    return module


def test_a_head_written_against_the_old_api_still_trains_saves_and_predicts(
    temporary_plugin, tmp_path, monkeypatch
):
    module = _old_style_module()
    monkeypatch.setitem(sys.modules, "old_style_laplace", module)
    temporary_plugin(module)
    assert check_head("old-laplace")
    result = probreg.run(
        "spiral:n=300,val=60,test=60", "old-laplace", seed=0, output=tmp_path / "run", quiet=True
    )
    assert np.isfinite(result.metrics["test"]["nll"])
    loaded = probreg.load_run(tmp_path / "run")
    x = result.data.x_test
    np.testing.assert_allclose(loaded.distribution(x).mean(), result.distribution.mean())
    with pytest.raises(UsageError, match="'old-laplace' builds its whole model itself"):
        probreg.Regressor("old-laplace", trunk=lambda: keras.layers.Dense(8)).fit(x, x[:, 0])
    with pytest.raises(UsageError, match="'old-laplace' builds its whole model itself"):
        probreg.run(
            "spiral:n=100", "old-laplace", trunk=keras.layers.Dense(8), output=tmp_path / "t"
        )
    assert not (tmp_path / "t").exists()  # refused before the dataset loads or a folder exists
    from probreg.api import takes_trunk

    module.OldLaplace.build = lambda self, input_dim, output_dim, **extra: None
    assert takes_trunk(module.OldLaplace()) and takes_trunk(plugins.create("head", "mdn"))


@pytest.mark.parametrize("name", ["mdn", "mlp", "mdn-ensemble"])
def test_runs_saved_by_version_0_1_load_and_predict_the_same(name, tmp_path):
    run_dir = tmp_path / name
    shutil.copytree(OLD_RUNS / name, run_dir)
    expected = np.load(run_dir / "expected.npz")
    distribution = probreg.load_run(run_dir).distribution(expected["x"])
    np.testing.assert_allclose(distribution.mean(), expected["mean"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        distribution.log_prob(np.zeros((7, 1))), expected["log_prob"], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(distribution.quantile(0.3), expected["q"], rtol=1e-6, atol=1e-6)


def test_the_old_module_path_of_the_gaussian_mixture_still_imports():
    from probreg.distributions import GaussianMixture
    from probreg.distributions.gaussian_mixture import GaussianMixture as Old
    from probreg.layers import MixtureDensity, packed_size

    assert Old is GaussianMixture
    assert packed_size(3, 2) == 3 + 2 * 3 * 2 and MixtureDensity(2, 3).components == 3
