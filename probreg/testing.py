"""Contract checks for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

Call them from your plugin's tests::

    from probreg.testing import check_head
    def test_my_head_keeps_the_contract():
        check_head("histogram:bins=32")

Each check raises ``AssertionError`` with a message that says which promise was broken, and
returns a short report of what it verified. They use small random data, so they run in seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from probreg import plugins
from probreg.distributions import Distribution, GaussianMixture
from probreg.errors import UsageError
from probreg.params import format_spec, parse_spec


class ContractError(AssertionError):
    """A plugin broke the probreg contract."""


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ContractError(message)


def check_params(kind: str, spec: str) -> list[str]:
    """Declared parameters: documented, defaults valid, specs round-trip, bad values refused."""
    instance = plugins.create(kind, spec)
    cls = type(instance)
    done = []
    _require(cls.summary(), f"{kind} '{cls.name}' needs a docstring: its first line is the summary")
    for param in cls.params:
        _require(param.help, f"parameter '{param.name}' of {kind} '{cls.name}' has no help text")
        if param.default is not None:
            again = param.parse(param.format(param.default), cls.name)
            _require(again == param.default, f"default of '{param.name}' does not round-trip")
        if param.type in ("int", "float") and param.minimum is not None:
            try:
                plugins.create(kind, f"{cls.name}:{param.name}={param.minimum - 1:g}")
            except UsageError:
                pass
            else:
                raise ContractError(f"'{param.name}' below its minimum was accepted")
    try:
        plugins.create(kind, f"{cls.name}:no_such_parameter=1")
    except UsageError:
        pass
    else:
        raise ContractError(f"{kind} '{cls.name}' accepted an unknown parameter")
    name, _ = parse_spec(instance.spec)
    rebuilt = plugins.create(kind, format_spec(name, cls.params, instance.options))
    _require(rebuilt.options == instance.options, "spec -> options -> spec does not round-trip")
    done.append(f"{len(cls.params)} parameters declared, validated and round-tripped")
    return done


def check_distribution(
    distribution: Distribution, rng: np.random.Generator | None = None, draws: int = 20_000
) -> list[str]:
    """Shapes, finiteness, samples against ``mean``/``variance``, CDF and quantiles, and (for
    one-dimensional targets) a density that integrates to 1 on a grid."""
    rng = rng if rng is not None else np.random.default_rng(0)
    n, d = distribution.batch_size, distribution.event_dim
    done = []
    mean, variance = distribution.mean(), distribution.variance()
    _require(mean.shape == (n, d) and variance.shape == (n, d), "mean/variance must be (n, d)")
    _require(np.all(np.isfinite(mean)) and np.all(variance >= 0), "mean/variance must be finite")
    samples = distribution.sample(rng, draws)
    _require(
        samples.shape == (draws, n, d),
        f"sample() must return (num_samples, n, d), got {samples.shape}",
    )
    _require(np.all(np.isfinite(samples)), "samples must be finite")
    error = np.abs(samples.mean(axis=0) - mean)
    tolerance = 6 * np.sqrt(variance / draws) + 1e-6
    _require(np.all(error <= tolerance), "the average of many draws does not match mean()")
    _require(
        np.allclose(samples.var(axis=0), variance, rtol=0.15, atol=1e-6),
        "the spread of many draws does not match variance()",
    )
    done.append(f"{draws} draws match mean() and variance()")
    log_prob = distribution.log_prob(samples[0])
    _require(
        log_prob.shape == (n,) and np.all(np.isfinite(log_prob)), "log_prob must be finite, (n,)"
    )
    low, mid, high = (distribution.quantile(q) for q in (0.1, 0.5, 0.9))
    _require(np.all(low <= mid) and np.all(mid <= high), "quantiles must increase with the level")
    _require(np.allclose(distribution.cdf(mid), 0.5, atol=1e-3), "cdf(quantile(0.5)) must be 0.5")
    done.append("log_prob finite; quantiles ordered and inverse to cdf")
    if d == 1:
        # Each row on its own grid of mean +- 20 standard deviations, scored column by column.
        std = np.maximum(np.sqrt(variance[:, 0]), 1e-6)
        ys = mean[:, :1] + 20 * std[:, None] * np.linspace(-1.0, 1.0, 40_001)[None, :]
        density = np.stack(
            [np.exp(distribution.log_prob(ys[:, j : j + 1])) for j in range(ys.shape[1])], axis=1
        )
        totals = np.trapezoid(density, ys, axis=1)
        worst = int(np.argmax(np.abs(totals - 1.0)))
        _require(
            abs(totals[worst] - 1.0) < 2e-3,
            f"the density of row {worst} integrates to {totals[worst]:.4f}, not 1",
        )
        done.append("density integrates to 1 on a grid")
    return done


def check_head(spec: str, input_dim: int = 2, output_dim: int = 1, seed: int = 0) -> list[str]:
    """A head's contract: model shapes and dtype, finite loss and gradients, a valid predictive
    distribution, and a ``get_config`` / save / load round trip with identical outputs."""
    import keras

    from probreg.runs import load_model

    head = plugins.create("head", spec)
    done = check_params("head", spec)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, input_dim)).astype("float32")
    y = (x[:, :1] ** 2 + rng.normal(scale=0.3, size=(64, output_dim))).astype("float32")
    model = head.build(input_dim, output_dim)
    outputs = model(x, training=False)
    _require(len(outputs.shape) == 2 and outputs.shape[0] == 64, "the model must output (batch, m)")
    _require(
        "float32" in str(outputs.dtype), f"model outputs should be float32, got {outputs.dtype}"
    )
    loss = head.loss(output_dim)
    value, gradients = _loss_and_gradients(model, loss, x, y)
    _require(np.isfinite(value), f"the loss is not finite on simple data: {value}")
    _require(all(np.all(np.isfinite(g)) for g in gradients), "some gradients are not finite")
    done.append("finite loss and gradients")
    distribution = head.distribution(keras.ops.convert_to_numpy(outputs), output_dim)
    _require(
        distribution.batch_size == 64 and distribution.event_dim == output_dim,
        "the distribution must have one row per input and event_dim == output_dim",
    )
    done += check_distribution(distribution, rng)
    for layer in model.layers:
        rebuilt = type(layer).from_config(layer.get_config())
        _require(type(rebuilt) is type(layer), f"{type(layer).__name__}.from_config failed")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.compile(loss=loss)
        model.save(path)
        loaded = load_model(path, head)
        again = loaded(x, training=False)
    _require(
        np.array_equal(keras.ops.convert_to_numpy(outputs), keras.ops.convert_to_numpy(again)),
        "a saved and reloaded model gives different outputs",
    )
    done.append("get_config and save/load (Keras safe mode) round trip")
    return done


def _loss_and_gradients(model, loss, x, y) -> tuple[float, list[np.ndarray]]:
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        grads = tape.gradient(value, model.trainable_weights)
        return float(value), [g.numpy() for g in grads if g is not None]
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def compute(params):
            out, _ = model.stateless_call(params, frozen, x, training=True)
            return loss(y, out)

        value, grads = jax.value_and_grad(compute)(trainable)
        return float(value), [np.asarray(g) for g in grads]
    value = loss(y, model(x, training=True))
    return float(keras.ops.convert_to_numpy(value)), []


def check_sampler(spec: str, seed: int = 0) -> list[str]:
    """A sampler's contract: shape ``(num_samples, n, d)``, finite draws, same seed same draws."""
    sampler = plugins.create("sampler", spec)
    done = check_params("sampler", spec)
    rng = np.random.default_rng(seed)
    mixture = GaussianMixture(
        rng.normal(size=(8, 3)), rng.normal(size=(8, 3, 2)), np.exp(rng.normal(size=(8, 3, 2)))
    )
    first = sampler.sample(mixture, np.random.default_rng(1), 5)
    second = sampler.sample(mixture, np.random.default_rng(1), 5)
    _require(
        first.shape == (5, 8, 2), f"sample() must return (num_samples, n, d), got {first.shape}"
    )
    _require(np.all(np.isfinite(first)), "draws must be finite")
    _require(np.array_equal(first, second), "the same rng seed must give the same draws")
    done.append("shape, finiteness and seeded reproducibility")
    return done


def check_dataset(spec: str, seed: int = 0) -> list[str]:
    """A dataset's contract: parts with matching shapes, finite values, the same data for the
    same seed, and (if it has one) an exact density that integrates to 1 over ``y``."""
    dataset = plugins.create("dataset", spec)
    done = check_params("dataset", spec)
    data, again = dataset.load(seed), dataset.load(seed)
    for part in ("train", "val", "test"):
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        _require(x.ndim == 2 and y.ndim == 2 and len(x) == len(y), f"{part} part has bad shapes")
        _require(np.all(np.isfinite(x)) and np.all(np.isfinite(y)), f"{part} part is not finite")
        _require(
            np.array_equal(x, getattr(again, f"x_{part}"))
            and np.array_equal(y, getattr(again, f"y_{part}")),
            "the same seed must give the same data",
        )
    done.append("three finite parts; same seed, same data")
    if data.log_density is not None and data.output_dim == 1:
        y_all = np.concatenate([data.y_train, data.y_test])[:, 0]
        span = y_all.max() - y_all.min()
        ys = np.linspace(y_all.min() - span, y_all.max() + span, 20_001)
        for x0 in data.x_test[:3]:
            density = np.exp(data.log_density(np.repeat(x0[None], len(ys), 0), ys[:, None]))
            total = np.trapezoid(density, ys)
            _require(
                abs(total - 1.0) < 2e-3, f"log_density integrates to {total:.4f} over y, not 1"
            )
        done.append("exact density integrates to 1 over y")
    return done
