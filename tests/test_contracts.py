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
