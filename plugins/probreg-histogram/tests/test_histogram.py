"""probreg-histogram keeps probreg's contract and computes the density it promises."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from probreg_histogram.family import HistogramDistribution, log_prob
from probreg_histogram.keras_objects import HistogramNLL

from probreg import plugins
from probreg.errors import UsageError
from probreg.testing import check_family, check_head


def test_registered_through_the_entry_point():
    for kind in ("head", "family"):
        entry = plugins.registry()[kind]["histogram"]
        assert entry.source.name == "probreg-histogram"
        assert not entry.source.builtin


def test_contract():
    report = check_head("histogram:bins=20,hidden=16", input_dim=2, output_dim=1)
    assert "density integrates to 1 on a grid" in report


def test_family_contract_for_one_output():
    report = check_family("histogram:bins=20")
    assert not any(line.startswith("d=2") for line in report)  # max_output_dim is 1
    head = plugins.create("head", "mdn:family=histogram,bins=20,hidden=16")
    assert head.family.name == "histogram"


def test_density_by_hand():
    log_weights = np.log([[0.5, 0.25, 0.25 - 1e-9, 1e-9]])  # 3 bins on [-3, 3] + tail
    dist = HistogramDistribution(log_weights, 3.0)
    # Inside bin 0 ([-3, -1)): 0.5 / width 2, plus a negligible tail.
    assert np.exp(dist.log_prob(np.array([[-2.0]])))[0] == pytest.approx(0.25, rel=1e-6)
    assert dist.cdf(np.array([[-1.0]]))[0, 0] == pytest.approx(0.5, rel=1e-6)
    assert dist.mean()[0, 0] == pytest.approx(0.5 * -2 + 0.25 * 0 + 0.25 * 2, abs=1e-6)
    assert -3.0 <= dist.mode()[0, 0] < -1.0  # in the densest bin


def test_keras_log_density_matches_numpy_density():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 11)).astype("float32")
    log_weights = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    y = rng.normal(scale=3.0, size=(50, 1)).astype("float32")
    ours = keras.ops.convert_to_numpy(log_prob(log_weights, y, 10, 2.0))
    expected = HistogramDistribution(log_weights, 2.0).log_prob(y)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    # The loss kept for models saved by version 0.1 is the same density.
    old = keras.ops.convert_to_numpy(HistogramNLL(10, 2.0).call(y, log_weights))
    np.testing.assert_allclose(old, -expected, rtol=1e-5, atol=1e-5)


def test_refuses_multi_dimensional_targets():
    with pytest.raises(UsageError, match="at most 1 target column"):
        plugins.create("head", "histogram").build(1, 2)
