"""The training loop's input paths: streamed batches cover every row once per epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from probreg import api
from probreg.training import BatchStream


def test_batch_stream_visits_every_row_once_per_epoch_and_reshuffles():
    x = np.arange(103, dtype=np.float32)[:, None]
    stream = BatchStream(x, x, batch_size=10, seed=0)
    assert len(stream) == 11
    epochs = []
    for _ in range(2):
        rows = np.concatenate([stream.batch_in_order(i)[0][:, 0] for i in range(len(stream))])
        assert sorted(rows.tolist()) == list(range(103))
        epochs.append(rows)
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch


def test_streamed_and_in_memory_training_both_work():
    spec = ("spiral:n=600,val=100,test=200", "mdn:components=3,hidden=16,epochs=3")
    streamed = api.run(*spec, write=False, quiet=True, stream=True)
    in_memory = api.run(*spec, write=False, quiet=True, stream=False)
    assert streamed.metrics["streamed"] and not in_memory.metrics["streamed"]
    for result in (streamed, in_memory):
        assert np.isfinite(result.metrics["test"]["nll"]) and result.metrics["epochs"] == 3
    # Different batch orders, same model class: similar (not identical) scores.
    assert abs(streamed.metrics["test"]["nll"] - in_memory.metrics["test"]["nll"]) < 0.5


def test_weight_decay_shrinks_the_weights():
    def kernel_norm(weight_decay: float) -> float:
        result = api.run(
            "spiral:n=600,val=100,test=200",
            f"mlp:hidden=16,epochs=5,schedule=constant,weight_decay={weight_decay}",
            seed=0,
            write=False,
            quiet=True,
        )
        kernels = [w for w in result.model.trainable_weights if "kernel" in w.path]
        return float(np.sqrt(sum(np.sum(np.square(w.numpy())) for w in kernels)))

    # 300 training rows, batch 128, 5 epochs: 15 steps, each shrinking every weight by
    # learning rate 1e-3 x decay 50 = 5%, so 0.95^15 = 0.46 before the gradients push back.
    assert kernel_norm(50.0) < 0.7 * kernel_norm(0.0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's rule")
def test_xla_compiles_long_runs_only_unless_told_on_tensorflow():
    import dataclasses

    from probreg import plugins
    from probreg.training import XLA_MIN_STEPS, uses_xla

    recipe = plugins.create("head", "mdn").training()
    assert recipe.jit_compile == "auto"
    steps = XLA_MIN_STEPS // recipe.epochs  # steps per epoch around the threshold
    assert not uses_xla(recipe, steps - 1) and uses_xla(recipe, steps + 1)
    assert uses_xla(dataclasses.replace(recipe, jit_compile=True), 1)
    assert not uses_xla(dataclasses.replace(recipe, jit_compile=False), 10**6)
    # A short run really trains without XLA (the compiled model says so).
    short = api.run(
        "spiral:n=300,val=60,test=60", "mdn:hidden=8,components=2,epochs=2", write=False, quiet=True
    )
    assert short.model.jit_compile is False
