"""probreg.testing over the whole registry, and proof that its distribution checks catch what
they promise to catch: each broken distribution below has exactly one deliberate fault."""

from __future__ import annotations

import numpy as np
import pytest

from probreg import plugins
from probreg.distributions import GaussianMixture
from probreg.testing import ContractError, check_distribution, check_plugin


def _registered_specs() -> list[tuple[str, str, str]]:
    found = []
    for kind, entries in plugins.registry().items():
        for name, entry in sorted(entries.items()):
            found.append((kind, name, entry.cls))
    return found


@pytest.mark.parametrize(
    ("kind", "name", "cls"),
    _registered_specs(),
    ids=[f"{kind}-{name}" for kind, name, _ in _registered_specs()],
)
def test_every_registered_plugin_keeps_the_contract(kind, name, cls, tmp_path):
    specs = cls.contract_specs(tmp_path)
    assert specs, f"{kind} {name} gives no spec to check"
    for spec in specs:
        assert spec.partition(":")[0] == name
        report = check_plugin(kind, spec)
        assert report, f"{spec}: nothing was checked"


def test_the_registry_holds_the_builtins_and_the_example_package():
    registry = plugins.registry()
    assert {"gaussian_mixture", "student_t", "fixed_gaussian"} <= set(registry["family"])
    assert {"mdn", "mlp"} <= set(registry["head"])


# ---- deliberately broken distributions -------------------------------------------------------


def _mixture(d: int = 1, n: int = 6) -> GaussianMixture:
    rng = np.random.default_rng(1)
    return GaussianMixture(
        rng.normal(size=(n, 3)), rng.normal(scale=2.0, size=(n, 3, d)), np.full((n, 3, d), 0.7)
    )


class WrongAffine(GaussianMixture):
    def affine(self, shift, scale):  # forgets to scale the component widths
        return GaussianMixture(self.log_weights, shift + scale * self.means, self.scales)


class DoubledCRPS(GaussianMixture):
    def crps(self, y, rng=None):
        return 2.0 * super().crps(y, rng)


class WrongQuantile(GaussianMixture):
    def quantile(self, q):  # a normal approximation: wrong for a multimodal mixture
        from scipy import special

        return self.mean() + special.ndtri(q) * np.sqrt(self.variance())


class WrongMode(GaussianMixture):
    def mode(self):
        return self.mean() + 3 * np.sqrt(self.variance())


class WrongVariance(GaussianMixture):
    def variance(self):
        return 1.3 * super().variance()


class OffsetLogProb(GaussianMixture):
    def log_prob(self, y):
        return super().log_prob(y) + np.log(1.5)


def _rebuild(cls, mixture):
    return cls(mixture.log_weights, mixture.means, mixture.scales)


def test_a_correct_mixture_passes_in_one_and_two_dimensions():
    assert "density integrates to 1 on a grid" in check_distribution(_mixture(1))
    assert "density integrates to 1 (importance sampling)" in check_distribution(_mixture(2))


@pytest.mark.parametrize(
    ("cls", "d", "message"),
    [
        (WrongAffine, 1, "affine"),
        (DoubledCRPS, 1, "crps"),
        (WrongQuantile, 1, "quantile"),
        (WrongMode, 1, "mode"),
        (WrongVariance, 1, "variance"),
        (OffsetLogProb, 2, "integrates to about"),
        (OffsetLogProb, 1, "integrates to"),
    ],
)
def test_check_distribution_catches_a_broken_distribution(cls, d, message):
    with pytest.raises(ContractError, match=message):
        check_distribution(_rebuild(cls, _mixture(d)))


class MomentMatchedLogProb(GaussianMixture):
    """Draws, cdf and quantiles of the mixture, but the log-density of one Gaussian with the
    same mean and variance: the mean/variance checks and the normalisation cannot see it."""

    def log_prob(self, y):
        from scipy import stats

        sd = np.sqrt(self.variance())
        return stats.norm.logpdf(y, self.mean(), sd).sum(axis=-1)

    def mode(self):  # that Gaussian's mode, so the mode check agrees with log_prob
        return self.mean()


def test_a_density_that_is_not_the_cdfs_derivative_is_caught():
    with pytest.raises(ContractError, match="from the integral of exp"):
        check_distribution(_rebuild(MomentMatchedLogProb, _mixture(1)))


# ---- samplers, datasets and heads that break their contract ---------------------------------


def _with(temporary_plugin, hook: str, cls) -> None:
    import types

    from probreg.hookspecs import hookimpl

    plugin = types.SimpleNamespace(**{hook: hookimpl(lambda register: register(cls))})
    temporary_plugin(plugin, name=f"test-{cls.name}")


def _sampler(name: str, draw):
    from probreg.samplers import Sampler

    return type(
        name.title(), (Sampler,), {"__doc__": "A test sampler.", "name": name, "sample": draw}
    )


def _squeezing(self, distribution, rng, num_samples):  # drops the target axis when d == 1
    draws = distribution.sample(rng, num_samples)
    return draws[..., 0] if distribution.event_dim == 1 else draws


def _heaviest(self, distribution, rng, num_samples):  # only a mixture has weights and means
    params = distribution.params()
    rows = np.arange(distribution.batch_size)
    means = params["mean"][rows, np.argmax(params["weight"], axis=1)]
    return np.broadcast_to(means, (num_samples, *means.shape)).copy()


@pytest.mark.parametrize(
    ("name", "draw", "message"),
    [
        (
            "squeezing",
            _squeezing,
            r"\(5, 8, 1\) for a Gaussian mixture with one output, got \(5, 8\)",
        ),
        ("listing", lambda self, dist, rng, k: dist.sample(rng, k).tolist(), "numpy array"),
        ("heaviest", _heaviest, "failed on a spline flow .*KeyError"),
    ],
)
def test_check_sampler_catches_a_broken_sampler(temporary_plugin, name, draw, message):
    _with(temporary_plugin, "register_samplers", _sampler(name, draw))
    with pytest.raises(ContractError, match=message):
        check_plugin("sampler", name)


def _dataset(name: str, log_density, y_of=lambda rng, x: x + rng.normal(0.0, 0.1, x.shape)):
    from probreg.datasets import Data, Dataset

    def load(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0.0, 1.0, (400, 1))
        y = y_of(rng, x)
        return Data(
            x[:200],
            y[:200],
            x[200:250],
            y[200:250],
            x[250:],
            y[250:],
            ("x",),
            tuple(f"y{j}" for j in range(y.shape[1])),
            log_density,
        )

    return type(
        name.title(), (Dataset,), {"__doc__": "A test dataset.", "name": name, "load": load}
    )


def _normal(x, y, slope=1.0, sd=0.1):
    from scipy import stats

    return stats.norm.logpdf(y[:, 0], slope * x[:, 0], sd)


def _poisson_shifted(x, y):
    from scipy import stats

    return stats.poisson.logpmf(y[:, 0] + 100, 3.0)


_poisson_shifted.discrete = True


def _square(x, y):  # (m, 1) against (m,): broadcasts to (m, m)
    from scipy import stats

    return stats.norm.logpdf(y[:, 0], x, 0.1)


@pytest.mark.parametrize(
    ("name", "log_density", "y_of", "message"),
    [
        # y = x + N(0, 0.1^2), declared as slope 1.5 and sd 0.3: normalised, but not the data's
        (
            "wrong-density",
            lambda x, y: _normal(x, y, 1.5, 0.3),
            None,
            "PIT under it is not uniform",
        ),
        (
            "column-density",
            lambda x, y: _normal(x, y)[:, None],
            None,
            r"shape \(400, 1\)|shape \(150, 1\)",
        ),
        ("square-density", _square, None, r"shape \(\d+, \d+\)"),
        # zero density where a target was drawn
        (
            "zero-density",
            lambda x, y: np.where(y[:, 0] > 0.5, -np.inf, _normal(x, y)),
            None,
            "-inf at row",
        ),
        (
            "unnormalised-2d",
            lambda x, y: 1.0 + _normal(x, y[:, :1]) + _normal(x, y[:, 1:]),
            lambda rng, x: x + rng.normal(0.0, 0.1, (len(x), 2)),
            "integrates to about",
        ),
    ],
)
def test_check_dataset_catches_a_wrong_exact_density(
    temporary_plugin, name, log_density, y_of, message
):
    _with(
        temporary_plugin,
        "register_datasets",
        _dataset(name, log_density, *([y_of] if y_of else [])),
    )
    with pytest.raises(ContractError, match=message):
        check_plugin("dataset", name)


@pytest.mark.parametrize(
    ("name", "log_density", "y_of"),
    [
        # far narrower than the targets' range: each stretch gets its own fine grid
        (
            "narrow",
            lambda x, y: _normal(x * 1000, y, sd=1e-3),
            lambda rng, x: 1000 * x + rng.normal(0, 1e-3, x.shape),
        ),
        # a mass on negative integers
        ("negative-counts", _poisson_shifted, lambda rng, x: rng.poisson(3.0, x.shape) - 100.0),
    ],
)
def test_check_dataset_passes_narrow_densities_and_negative_counts(
    temporary_plugin, name, log_density, y_of
):
    _with(temporary_plugin, "register_datasets", _dataset(name, log_density, y_of))
    report = check_plugin("dataset", name)
    assert any("PIT under log_density is uniform" in line for line in report)


def test_check_head_names_an_unregistered_layer(temporary_plugin):
    import keras

    from probreg.default_plugins.mlp import MLP

    class Scale(keras.layers.Layer):  # not registered: a saved model cannot find it
        def call(self, x):
            return 2.0 * x

    class Unregistered(MLP):
        """An MLP with an unregistered layer in front."""

        name = "unregistered"

        def features(self, inputs, trunk=None, name="trunk", copy=False):
            return super().features(Scale()(inputs), trunk, name, copy)

    _with(temporary_plugin, "register_heads", Unregistered)
    with pytest.raises(
        ContractError, match="does not load: .*uses 'Scale'.*register_keras_serializable"
    ):
        check_plugin("head", "unregistered:hidden=8")


def test_a_family_head_declaring_params_like_any_head_gets_them(temporary_plugin):
    from probreg.heads import FamilyHead, training_params, trunk_params

    class Naive(FamilyHead):
        """A family head declared the way every other plugin declares parameters."""

        name = "naive"
        params = (*trunk_params(hidden=(16,), activation="relu"), *training_params(epochs=5))

    _with(temporary_plugin, "register_heads", Naive)
    head = plugins.create("head", "naive:hidden=8,components=2", epochs=1)
    assert head.options["hidden"] == (8,) and head.options["epochs"] == 1
    assert head.options["components"] == 2  # the family's parameters join them
    assert check_plugin("head", "naive:hidden=8,components=2")


def test_a_zero_exact_density_at_the_data_is_refused_before_training(temporary_plugin, tmp_path):
    from probreg import api
    from probreg.errors import PluginError

    _with(
        temporary_plugin,
        "register_datasets",
        _dataset("holes", lambda x, y: np.where(y[:, 0] > 0.5, -np.inf, _normal(x, y))),
    )
    with pytest.raises(PluginError, match="log_density is -inf at row"):
        api.run("holes", "mdn:hidden=8", epochs=1, output=tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()
    # Zero only at the last test row: every test row is checked before training, too.
    last = lambda x, y: np.where(np.arange(len(y)) == len(y) - 1, -np.inf, _normal(x, y))  # noqa: E731
    _with(temporary_plugin, "register_datasets", _dataset("late-hole", last))
    with pytest.raises(PluginError, match="log_density is -inf at row"):
        api.run("late-hole", "mdn:hidden=8", epochs=1, output=tmp_path / "late", quiet=True)
    assert not (tmp_path / "late").exists()


def test_a_run_below_the_bayes_limit_warns_that_the_exact_density_is_wrong(temporary_plugin):
    from probreg import api

    # y = x + N(0, 0.1^2), declared with sd 5: any fitted model "beats" the declared limit.
    _with(
        temporary_plugin,
        "register_datasets",
        _dataset("too-wide", lambda x, y: _normal(x, y, sd=5.0)),
    )
    said = []
    api.run("too-wide", "mdn:hidden=8,components=1", epochs=20, write=False, echo=said.append)
    assert any("below the dataset's exact Bayes limit" in line for line in said), said
    # the right density gives no warning
    _with(temporary_plugin, "register_datasets", _dataset("right", _normal))
    said.clear()
    api.run("right", "mdn:hidden=8,components=1", epochs=20, write=False, echo=said.append)
    assert not any("Bayes limit" in line for line in said), said
    # a log-density against a log-mass (integer targets, a continuous family) is not compared
    import types

    result = api.run("too-wide", "mdn:hidden=8,components=1", epochs=20, write=False, quiet=True)
    assert api.below_bayes_limit(result)
    mass = lambda x, y: _normal(x, y, sd=5.0)  # noqa: E731 - marked as a mass below
    mass.discrete = True
    data = types.SimpleNamespace(**{**vars(result.data), "log_density": mass})
    assert api.below_bayes_limit(types.SimpleNamespace(**{**vars(result), "data": data})) is None


def _clashing_family():
    from probreg.families.gaussian_mixture import GaussianMixtureFamily
    from probreg.params import Param

    class Clash(GaussianMixtureFamily):
        """A mixture that wants its own 'hidden'."""

        name = "clash"
        params = (*GaussianMixtureFamily.params, Param("hidden", "int", 3, "a clash"))

    return Clash


def _misreading_family():
    from probreg.families.spline import SplineFamily

    class Misread(SplineFamily):
        """A spline that reads 'affine' from a key its layer does not write."""

        name = "misread"

        def options_from_layer(self, config):
            return {"affine": bool(config.get("shift", False))}

    return Misread


def _unregistered_layer_family():
    from probreg.families.gaussian_mixture import GaussianMixtureFamily, layer_class

    class Hidden(layer_class()):
        """Defined in a function and not registered: a saved model cannot find it."""

    class Unregistered(GaussianMixtureFamily):
        """A Gaussian mixture whose layer class is not registered with Keras."""

        name = "unregistered-layer"

        def layer_class(self):
            return Hidden

    return Unregistered


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # A parameter every family head already has.
        (_clashing_family, "declares hidden, which family heads already have"),
        (_misreading_family, "options_from_layer reads"),
        # A layer Keras cannot find when loading fails check_family, not only a head's check.
        (_unregistered_layer_family, "does not load back: .*register_keras_serializable"),
    ],
    ids=["param-clash", "options-from-layer", "unregistered-layer"],
)
def test_check_family_catches_a_broken_family(temporary_plugin, make, message):
    family = make()
    _with(temporary_plugin, "register_families", family)
    with pytest.raises(ContractError, match=message):
        check_plugin("family", family.name)


def test_check_package_runs_every_plugin_of_one_package_with_its_test_specs(monkeypatch):
    """A plugin package's own tests check all it registers in one call; test_specs are used."""
    import types

    from probreg.default_plugins.bishop import Bishop
    from probreg.hookspecs import hookimpl
    from probreg.testing import check_package

    class SmallBishop(Bishop):
        """Bishop's problem under another name."""

        name = "small-bishop"
        test_specs = (
            "small-bishop:n=60,val=10,test=40",
            "small-bishop:n=60,val=10,test=40,noise=0.2",
        )

    class Misnamed(SmallBishop):
        """A test spec that names another plugin."""

        name = "misnamed"
        test_specs = ("small-bishop:n=60,val=10,test=40",)

    def package(*classes):
        return types.SimpleNamespace(
            register_datasets=hookimpl(lambda register: [register(c) for c in classes])
        )

    with plugins.temporary_plugin(package(SmallBishop), "probreg-small"):
        reports = check_package("probreg_small")  # the name as pip normalises it
    assert list(reports) == [f"dataset {spec}" for spec in SmallBishop.test_specs]
    assert all(any("integrates to 1" in line for line in r) for r in reports.values())
    with pytest.raises(ContractError, match="no plugin is registered by a package named 'nowhere'"):
        check_package("nowhere")
    misnamed = plugins.temporary_plugin(package(Misnamed), "probreg-misnamed")
    with misnamed, pytest.raises(ContractError, match="names another plugin"):
        check_package("probreg-misnamed")
    # A package whose other hook failed is not passed on what is left of it.
    monkeypatch.setattr(plugins, "_broken", {})  # the warning's record, for this test only

    def broken_families(register):
        raise ImportError("no module named 'scipy_extra'")

    half = types.SimpleNamespace(
        register_datasets=hookimpl(lambda register: register(SmallBishop)),
        register_families=hookimpl(broken_families),
    )
    failed = plugins.temporary_plugin(half, "probreg-half")
    with failed, pytest.raises(ContractError, match="'probreg-half' failed to load: ImportError"):
        check_package("probreg-half")
    monkeypatch.setitem(plugins.left_out, "Probreg.Gone", "1.0")
    with pytest.raises(ContractError, match="is left out by PROBREG_LOAD_PLUGINS"):
        check_package("probreg_gone")


def test_a_distribution_that_raises_fails_as_a_contract_error_naming_it():
    class WrongAxis(GaussianMixture):
        def variance(self):
            return np.sum(super().variance(), axis=5)  # numpy's AxisError

    broken = WrongAxis(np.zeros((4, 1)), np.zeros((4, 1, 1)), np.ones((4, 1, 1)))
    with pytest.raises(ContractError, match="check_distribution: the plugin raised AxisError"):
        check_distribution(broken)
