"""probreg-histogram keeps probreg's contract and computes the density it promises."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from probreg_histogram.distribution import HistogramDistribution
from probreg_histogram.keras_objects import HistogramNLL

from probreg import plugins
from probreg.testing import check_head


def test_registered_through_the_entry_point():
    entry = plugins.registry()["head"]["histogram"]
    assert entry.source.name == "probreg-histogram"
    assert not entry.source.builtin


def test_contract():
    report = check_head("histogram:bins=20,hidden=16", input_dim=2, output_dim=1)
    assert "density integrates to 1 on a grid" in report


def test_density_by_hand():
    log_weights = np.log([[0.5, 0.25, 0.25 - 1e-9, 1e-9]])  # 3 bins on [-3, 3] + tail
    dist = HistogramDistribution(log_weights, 3.0)
    # Inside bin 0 ([-3, -1)): 0.5 / width 2, plus a negligible tail.
    assert np.exp(dist.log_prob(np.array([[-2.0]])))[0] == pytest.approx(0.25, rel=1e-6)
    assert dist.cdf(np.array([[-1.0]]))[0, 0] == pytest.approx(0.5, rel=1e-6)
    assert dist.mean()[0, 0] == pytest.approx(0.5 * -2 + 0.25 * 0 + 0.25 * 2, abs=1e-6)


def test_keras_loss_matches_numpy_density():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 11)).astype("float32")
    log_weights = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    y = rng.normal(scale=3.0, size=(50, 1)).astype("float32")
    loss = keras.ops.convert_to_numpy(HistogramNLL(10, 2.0).call(y, log_weights))
    expected = -HistogramDistribution(log_weights, 2.0).log_prob(y)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)


def test_refuses_multi_dimensional_targets():
    from probreg.errors import UsageError

    with pytest.raises(UsageError, match="needs one target column"):
        plugins.create("head", "histogram").build(1, 2)
