"""The compiled prediction call: the model's own numbers, for any batch size, fresh or loaded."""

from __future__ import annotations

import keras
import numpy as np

from probreg.fastpath import compiled_call
from probreg.runs import load_run


def test_compiled_call_matches_the_eager_model_for_any_batch(small_run):
    model = small_run.predictor.model
    call = compiled_call(model)
    rng = np.random.default_rng(0)
    for rows in (1, 7, 300):
        x = rng.standard_normal((rows, *model.input_shape[1:])).astype(np.float32)
        eager = keras.ops.convert_to_numpy(model(x, training=False))
        np.testing.assert_allclose(call(x), eager, rtol=1e-5, atol=1e-6)


def test_a_fresh_and_a_loaded_model_agree_bit_for_bit(small_run):
    x = np.random.default_rng(1).standard_normal((50, 1)).astype(np.float32)
    fresh = compiled_call(small_run.predictor.model)(x)
    loaded = compiled_call(load_run(small_run.run_dir).model)(x)
    np.testing.assert_array_equal(fresh, loaded)
