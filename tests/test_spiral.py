"""The spiral dataset: the original's generator and its exact conditional density."""

from __future__ import annotations

import numpy as np
import pytest

from probreg import plugins
from probreg.default_plugins.spiral import SpiralDensity


@pytest.fixture(scope="module")
def data():
    return plugins.create("dataset", "spiral:n=3000,val=500,test=3000").load(seed=0)


def test_parts_shapes_and_rescaling(data):
    assert data.x_train.shape == (3000, 1) and data.y_val.shape == (500, 1)
    assert data.x_test.shape == (3000, 1)
    everything = np.concatenate(
        [data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test]
    )
    # One scalar min-max rescaling of the whole draw to [0, 5].
    assert everything.min() == pytest.approx(0.0, abs=1e-6)
    assert everything.max() == pytest.approx(5.0, abs=1e-5)


def test_same_seed_same_data_other_seed_other_data(data):
    again = plugins.create("dataset", "spiral:n=3000,val=500,test=3000").load(seed=0)
    other = plugins.create("dataset", "spiral:n=3000,val=500,test=3000").load(seed=1)
    np.testing.assert_array_equal(again.y_test, data.y_test)
    assert not np.allclose(other.y_test, data.y_test)


@pytest.mark.parametrize("x0", [0.3, 1.5, 2.5, 3.1, 4.6])
def test_conditional_density_integrates_to_one(data, x0):
    ys = np.linspace(-1.0, 6.0, 7001)
    density = np.exp(data.log_density(np.full_like(ys, x0), ys))
    assert np.trapezoid(density, ys) == pytest.approx(1.0, abs=1e-6)


def test_quadrature_has_converged(data):
    density = data.log_density
    finer = SpiralDensity(density.jitter, 2.0, density.offset, density.span)
    finer.set_nodes(4 * density.angles.size, density.angles[-1])
    x, y = data.x_test[:500], data.y_test[:500]
    np.testing.assert_allclose(density(x, y), finer(x, y), atol=1e-4)


def test_density_matches_a_histogram_of_fresh_draws():
    """Bin probabilities of ``p(y | x = 2)`` match the share of fresh draws near ``x = 2``."""
    big = plugins.create("dataset", "spiral:n=3,val=1,test=400000").load(seed=5)
    x, y = big.x_test[:, 0], big.y_test[:, 0]
    in_slab = y[np.abs(x - 2.0) < 0.005]
    edges = np.linspace(0.0, 5.0, 41)
    observed = np.histogram(in_slab, bins=edges)[0] / in_slab.size
    fine = np.linspace(0.0, 5.0, 40 * 200 + 1)
    density = np.exp(big.log_density(np.full_like(fine, 2.0), fine))
    expected = np.array(
        [
            np.trapezoid(density[i * 200 : (i + 1) * 200 + 1], fine[i * 200 : (i + 1) * 200 + 1])
            for i in range(40)
        ]
    )
    noise = np.sqrt(expected * (1 - expected) / in_slab.size)
    assert in_slab.size > 500
    assert np.all(np.abs(observed - expected) < 4 * noise + 0.01)


def test_bayes_limit_of_the_default_spiral_is_about_minus_0_39():
    data = plugins.create("dataset", "spiral").load(seed=0)
    nll = -np.mean(data.log_density(data.x_test, data.y_test))
    assert nll == pytest.approx(-0.39, abs=0.01)
