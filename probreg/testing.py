"""Contract checks for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

Call them from your plugin's tests, one plugin at a time or a whole installed package::

    from probreg.testing import check_head, check_package
    def test_my_plugins_keep_the_contract():
        check_head("histogram:bins=32")
        check_package("probreg-histogram")  # every plugin it registers, with its test_specs

Each check raises ``AssertionError`` with a message that says which promise was broken, and
returns a short report of what it verified. They use small random data, so they run in seconds.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from probreg import plugins
from probreg.distributions import Distribution, GaussianMixture
from probreg.errors import PluginError, ProbregError, UsageError, shorten
from probreg.params import format_spec, parse_spec


class ContractError(AssertionError):
    """A plugin broke the probreg contract."""


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _contract(check: Callable) -> Callable:
    """Plugin code that raises where it should answer fails the check as a ContractError
    naming the check and the exception (chained, so the traceback stays), not as a bare
    exception. probreg's one-line errors pass through: the caller's (an unknown plugin, a bad
    spec) and a plugin's own refusals."""

    @functools.wraps(check)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except (ContractError, ProbregError):
            raise
        except Exception as error:
            raise ContractError(
                f"{check.__name__}: the plugin raised {type(error).__name__}: {shorten(error)}"
            ) from error

    return checked


def check_params(kind: str, spec: str) -> list[str]:
    """Declared parameters: documented, defaults valid, specs round-trip, bad values refused."""
    instance = plugins.create(kind, spec)
    cls = type(instance)
    name, given = parse_spec(spec, kind)
    params = instance.params  # a family head's follow its chosen family
    done = []
    _require(cls.summary(), f"{kind} '{cls.name}' needs a docstring: its first line is the summary")
    for param in params:
        _require(param.help, f"parameter '{param.name}' of {kind} '{cls.name}' has no help text")
        if param.default is not None:
            again = param.parse(param.format(param.default), cls.name)
            _require(again == param.default, f"default of '{param.name}' does not round-trip")
        if param.type in ("int", "float") and param.minimum is not None:
            try:
                cls(**{**given, param.name: f"{param.minimum - 1:g}"})
            except UsageError:
                pass
            else:
                raise ContractError(f"'{param.name}' below its minimum was accepted")
    try:
        cls(**given, no_such_parameter="1")
    except UsageError:
        pass
    else:
        raise ContractError(f"{kind} '{cls.name}' accepted an unknown parameter")
    rebuilt = plugins.create(kind, format_spec(name, params, instance.options))
    _require(rebuilt.options == instance.options, "spec -> options -> spec does not round-trip")
    noun = "parameter" if len(params) == 1 else "parameters"
    done.append(f"{len(params)} {noun} declared, validated and round-tripped")
    return done


@_contract
def check_distribution(
    distribution: Distribution, rng: np.random.Generator | None = None, draws: int = 20_000
) -> list[str]:
    """A distribution's promises, each against an independent computation:

    - shapes and finiteness; ``mean`` and ``variance`` against many draws (a statistical band);
    - ``quantile`` at several levels against ``cdf`` and against the share of draws below it;
    - ``mode`` at least as probable as most draws;
    - ``affine`` against transformed draws and the change-of-variables formula;
    - ``crps`` against scoringrules' estimate from draws;
    - the density integrates to 1: on a grid for ``d = 1``, by importance sampling above;
    - for ``d = 1``, the running integral of the density is ``cdf`` (the same distribution).

    A discrete distribution (``distribution.discrete``) gets :func:`check_discrete` instead of
    the checks that assume a density (cdf inverse to quantile, the density's integral).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n, d = distribution.batch_size, distribution.event_dim
    done = []
    discrete = bool(getattr(distribution, "discrete", False))
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
    centred = (samples - samples.mean(axis=0)) ** 2
    band = 6 * centred.std(axis=0) / np.sqrt(draws) + 1e-3 * variance + 1e-9
    _require(
        np.all(np.abs(centred.mean(axis=0) - variance) <= band),
        "the spread of many draws does not match variance()",
    )
    done.append(f"{draws} draws match mean() and variance()")
    log_prob = distribution.log_prob(samples[0])
    _require(
        log_prob.shape == (n,) and np.all(np.isfinite(log_prob)), "log_prob must be finite, (n,)"
    )
    if discrete:
        done += check_discrete(distribution, samples)
        _check_mode(distribution, samples)
        done.append("mode() at least as probable as 90% of draws")
        _check_affine(distribution, samples, rng)
        done.append("affine() matches transformed draws and the change of variables")
        _check_crps(distribution, samples)
        done.append("crps() matches the estimate from draws")
        return done
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantiles = [distribution.quantile(q) for q in levels]
    _require(
        all(np.all(lo <= hi) for lo, hi in itertools.pairwise(quantiles)),
        "quantiles must increase with the level",
    )
    for q, value in zip(levels, quantiles, strict=True):
        _require(
            np.allclose(distribution.cdf(value), q, atol=1e-3),
            f"cdf(quantile({q})) must be {q}",
        )
        below = (samples <= value).mean(axis=0)
        _require(
            np.all(np.abs(below - q) <= 6 * np.sqrt(q * (1 - q) / draws) + 1e-3),
            f"the share of draws below quantile({q}) is not {q}",
        )
    done.append("quantiles ordered, inverse to cdf and matching the draws")
    _check_mode(distribution, samples)
    done.append("mode() at least as probable as 90% of draws")
    _check_affine(distribution, samples, rng)
    done.append("affine() matches transformed draws and the change of variables")
    _check_crps(distribution, samples)
    done.append("crps() matches the estimate from draws")
    if d == 1:
        # Each row on its own grid of mean +- 20 standard deviations, scored column by column.
        std = np.maximum(np.sqrt(variance[:, 0]), 1e-6)
        ys = mean[:, :1] + 20 * std[:, None] * np.linspace(-1.0, 1.0, 20_001)[None, :]
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
        # The running integral of exp(log_prob) must be cdf(): a log_prob of another shape
        # with the same mean and variance as the draws fails here.
        steps = 0.5 * (density[:, 1:] + density[:, :-1]) * np.diff(ys, axis=1)
        running = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
        start = distribution.cdf(ys[:, :1])[:, 0]
        for j in range(0, ys.shape[1], 200):
            gap = np.abs(distribution.cdf(ys[:, j : j + 1])[:, 0] - start - running[:, j])
            worst = int(np.argmax(gap))
            _require(
                gap[worst] < 2e-3,
                f"cdf() of row {worst} differs by {gap[worst]:.4f} from the integral of "
                "exp(log_prob()): the density and the cdf describe different distributions",
            )
        done.append("the integral of the density matches cdf()")
    else:
        _check_normalised(distribution, samples)
        done.append("density integrates to 1 (importance sampling)")
    return done


def check_discrete(distribution: Distribution, samples: np.ndarray) -> list[str]:
    """A discrete distribution's promises: draws on its lattice, the mass sums to 1 over the
    lattice, ``cdf`` a step function whose steps are the masses, and ``quantile(q)`` the
    smallest lattice point whose CDF reaches ``q`` (and matching the draws)."""
    n, d = distribution.batch_size, distribution.event_dim
    offset, spacing = distribution.lattice()
    done = []
    index = (samples - offset) / spacing
    _require(
        np.allclose(index, np.round(index), atol=1e-6), "draws must lie on the lattice (integers)"
    )
    done.append("draws lie on the lattice")
    low, high = np.round(index.min(axis=0)), np.round(index.max(axis=0))  # (n, d)
    span = high - low
    low, high = low - span - 5, high + span + 5  # well past every draw
    if d <= 2:
        points = int((high - low).max()) + 1
        axes = [np.arange(points)] * d
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)  # (G, d)
        total = np.zeros(n)
        for step in grid:
            total += np.exp(distribution.log_prob(offset + spacing * (low + step)))
        worst = int(np.argmax(np.abs(total - 1.0)))
        _require(
            abs(total[worst] - 1.0) < 1e-6,
            f"the mass of row {worst} sums to {total[worst]:.6f} over the lattice, not 1",
        )
        done.append("the mass sums to 1 over the lattice")
    points = offset + spacing * np.round(index[0])  # one lattice point per row
    below = points - spacing
    _require(
        np.allclose(distribution.cdf(points + 0.4 * spacing), distribution.cdf(points))
        and np.allclose(distribution.cdf(points - 0.6 * spacing), distribution.cdf(below)),
        "cdf must be a step function, constant between lattice points",
    )
    if d == 1:
        step = distribution.cdf(points) - distribution.cdf(below)
        _require(
            np.allclose(step[:, 0], np.exp(distribution.log_prob(points)), atol=1e-9),
            "cdf(k) - cdf(k - 1) must be the mass at k",
        )
    done.append("cdf is a step function consistent with the mass")
    draws = len(samples)
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        value = distribution.quantile(q)
        _require(
            np.allclose((value - offset) / spacing, np.round((value - offset) / spacing)),
            f"quantile({q}) must be a lattice point",
        )
        _require(
            np.all(distribution.cdf(value) >= q - 1e-9)
            and np.all(distribution.cdf(value - spacing) < q + 1e-9),
            f"quantile({q}) must be the smallest lattice point whose cdf reaches {q}",
        )
        band = 6 * np.sqrt(q * (1 - q) / draws) + 1e-3
        _require(
            np.all((samples <= value + 0.5 * spacing).mean(axis=0) >= q - band)
            and np.all((samples <= value - 0.5 * spacing).mean(axis=0) <= q + band),
            f"the draws do not match quantile({q})",
        )
    done.append("quantiles are the smallest lattice points reaching each level")
    return done


def _check_mode(distribution: Distribution, samples: np.ndarray) -> None:
    mode = distribution.mode()
    _require(mode.shape == samples.shape[1:], "mode() must be (n, d)")
    at_draws = np.stack([distribution.log_prob(draw) for draw in samples[:200]])  # (200, n)
    at_mode = distribution.log_prob(mode)
    worst = int(np.argmin(at_mode - np.quantile(at_draws, 0.9, axis=0)))
    _require(
        at_mode[worst] >= np.quantile(at_draws[:, worst], 0.9) - 1e-6,
        f"mode() of row {worst} is less probable than most draws: it is not a mode",
    )


def _check_affine(distribution: Distribution, samples: np.ndarray, rng: np.random.Generator):
    d = distribution.event_dim
    shift, scale = np.linspace(1.5, -2.0, d), np.linspace(2.0, 0.5, d)
    moved = distribution.affine(shift, scale)
    y = samples[0]
    pairs = (
        ("mean()", moved.mean(), shift + scale * distribution.mean()),
        ("variance()", moved.variance(), scale**2 * distribution.variance()),
        (
            "log_prob()",
            moved.log_prob(shift + scale * y),
            # a mass moves with its point; a density picks up the Jacobian
            distribution.log_prob(y)
            - (0.0 if getattr(distribution, "discrete", False) else np.log(scale).sum()),
        ),
        ("cdf()", moved.cdf(shift + scale * y), distribution.cdf(y)),
        ("quantile(0.3)", moved.quantile(0.3), shift + scale * distribution.quantile(0.3)),
    )
    for name, ours, expected in pairs:
        _require(
            np.allclose(ours, expected, rtol=1e-5, atol=1e-6 * (1 + np.abs(expected).max())),
            f"affine(shift, scale).{name} does not match the transformed distribution",
        )
    # The transformed distribution's CDF against the empirical CDF of transformed draws.
    moved_draws = moved.sample(rng, len(samples))
    points = shift + scale * distribution.quantile(0.3)
    if getattr(distribution, "discrete", False):  # between lattice points: no ties to round
        points = points + 0.5 * scale * distribution.lattice()[1]
    empirical = (moved_draws <= points).mean(axis=0)
    _require(
        np.all(np.abs(empirical - moved.cdf(points)) < 0.02),
        "draws from affine(shift, scale) do not follow its cdf()",
    )
    _require(
        np.all(np.abs((shift + scale * samples <= points).mean(axis=0) - empirical) < 0.03),
        "affine(shift, scale) draws differ from transformed draws",
    )


def _check_crps(distribution: Distribution, samples: np.ndarray) -> None:
    import scoringrules as sr

    y = samples[-1]
    ours = distribution.crps(y)
    _require(ours.shape == (distribution.batch_size,), "crps() must return (n,)")
    ensemble = np.moveaxis(samples[:4000], 0, -1)  # (n, d, m)
    estimate = np.asarray(sr.crps_ensemble(y, ensemble, backend="numpy")).mean(axis=-1)
    scale = np.sqrt(distribution.variance()).mean(axis=-1)
    # Both sides may be Monte Carlo estimates (the generic crps() draws 1,000 samples): a loose
    # band per row, a tighter one on the average, and a factor-of-two error fails both.
    _require(
        np.all(np.abs(ours - estimate) <= 0.15 * estimate + 0.02 * scale)
        and abs(ours.mean() - estimate.mean()) <= 0.05 * estimate.mean(),
        "crps() does not match the estimate from draws (a closed form off by a factor?)",
    )


def _check_normalised(distribution: Distribution, samples: np.ndarray) -> None:
    """``exp(log_prob)`` integrates to 1, for any dimension, by importance sampling.

    ``q`` is a Gaussian kernel density built from one half of the draws (normalised by
    construction); over the other half, drawn from ``p``, the mean of ``q(y) / p(y)`` estimates
    the integral of ``q``, which is 1 exactly when ``p`` is normalised and ``exp(-c)`` when
    ``log_prob`` is off by ``c``. No grid, so narrow peaks and heavy tails cost nothing extra.
    """
    centres, points = samples[:1000], samples[1000:5000]  # (M, n, d), (N, n, d)
    m, _, d = centres.shape
    bandwidth = 0.5 * centres.std(axis=0) * m ** (-1.0 / (d + 4)) + 1e-12  # (n, d)
    log_q = []
    for point in points:
        z = (point[None] - centres) / bandwidth  # (M, n, d)
        kernel = -0.5 * (z**2).sum(-1) - np.log(bandwidth).sum(-1) - 0.5 * d * np.log(2 * np.pi)
        log_q.append(np.logaddexp.reduce(kernel, axis=0) - np.log(m))
    ratio = np.exp(np.stack(log_q) - np.stack([distribution.log_prob(p) for p in points]))
    estimate = ratio.mean(axis=0)
    error = 6 * ratio.std(axis=0) / np.sqrt(len(points)) + 0.03
    worst = int(np.argmax(np.abs(estimate - 1) - error))
    _require(
        abs(estimate[worst] - 1) <= error[worst],
        f"the density of row {worst} integrates to about {estimate[worst]:.3f}, not 1 "
        "(importance sampling): log_prob is off by a constant",
    )


@_contract
def check_family(spec: str, seed: int = 0) -> list[str]:
    """A family's contract: its layer (shapes over any leading axes, argument checks, config
    round trip), its ``keras.ops`` log-density against its numpy distribution, finite loss
    and gradients, and the distribution checks for one and two outputs (as far as
    ``max_output_dim`` allows) and a two-member ensemble."""
    import keras

    from probreg.default_plugins.mdn import MDN
    from probreg.families.base import Family
    from probreg.heads import family_head_params
    from probreg.losses import FamilyNLL

    family = plugins.create("family", spec)
    _require(isinstance(family, Family), "a family must subclass probreg.families.Family")
    done = check_params("family", spec)
    try:
        family_head_params(MDN.own_params, type(family), MDN.default_family)
    except PluginError as error:
        raise ContractError(str(error)) from None
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    dims = [d for d in (1, 2) if family.max_output_dim is None or d <= family.max_output_dim]
    for d in dims:
        size = family.layout(d).size
        layer = family.layer(d, name="family")
        features = rng.normal(size=(3, 5, 8)).astype("float32")
        out = keras.ops.convert_to_numpy(layer(features))
        _require(out.shape == (3, 5, size), f"layer output must be (..., {size}), got {out.shape}")
        flat = keras.ops.convert_to_numpy(layer(features.reshape(15, 8)))
        _require(
            np.allclose(flat, out.reshape(15, size), atol=1e-6),
            "the layer must act on the last axis alone",
        )
        rebuilt = type(layer).from_config(layer.get_config())
        rebuilt.build((None, 8))
        rebuilt.set_weights(layer.get_weights())
        _require(
            np.allclose(keras.ops.convert_to_numpy(rebuilt(features)), out, atol=1e-6),
            "get_config / from_config does not rebuild the same layer",
        )
        fixed = family.options_from_layer(layer.get_config())
        _require(
            all(family.options.get(k) == v for k, v in fixed.items()),
            f"options_from_layer reads {fixed} from a layer the family built with other options",
        )
        distribution = family.distribution(flat.astype(np.float64), d)
        y = distribution.sample(rng, 1)[0]
        ours = keras.ops.convert_to_numpy(family.log_prob(flat, y.astype("float32"), d))
        _require(
            np.allclose(ours, distribution.log_prob(y), rtol=1e-4, atol=1e-3),
            "the keras.ops log_prob and the numpy distribution's log_prob disagree",
        )
        loss = FamilyNLL(family, d)
        value = float(keras.ops.convert_to_numpy(loss(y.reshape(3, 5, d), out)))
        _require(
            np.isclose(value, -distribution.log_prob(y).mean(), rtol=1e-4, atol=1e-3),
            "FamilyNLL over (batch, time) rows does not match the numpy NLL",
        )
        far = keras.ops.convert_to_numpy(family.log_prob(flat, np.full_like(y, 1e6, "float32"), d))
        _require(np.all(np.isfinite(far)), "log_prob is not finite for a target 1e6 away")
        inputs = keras.Input((8,))
        model = keras.Model(inputs, family.layer(d)(inputs))
        value, gradients = _loss_and_gradients(model, loss, features.reshape(15, 8), y)
        _require(
            np.isfinite(value) and all(np.all(np.isfinite(g)) for g in gradients),
            "the loss or its gradients are not finite",
        )
        if d == dims[0]:
            done.append(_check_layer_saves(family, model, features.reshape(15, 8)))
        done.append(
            f"d={d}: the layer acts on the last axis and rebuilds from its config, which gives "
            "back the family's options; the keras.ops "
            "log_prob matches the numpy one; FamilyNLL over (batch, time) rows; finite far away; "
            "finite loss and gradients"
        )
        done += [f"d={d}: {line}" for line in check_distribution(distribution, rng)]
    _require(
        _raises(lambda: family.layer(0)), "the layer must refuse output_dim=0 with a ValueError"
    )
    # A two-member ensemble of the last dimension's rows: the rows, and the rows reversed.
    last_dim, last_rows = dims[-1], flat
    ensemble = family.ensemble_distribution(
        np.concatenate([last_rows, last_rows[::-1]], axis=1), last_dim, 2
    )
    done += [f"ensemble: {line}" for line in check_distribution(ensemble, rng, draws=10_000)]
    return done


def _check_layer_saves(family: Any, model: Any, x: np.ndarray) -> str:
    """A model holding the family's layer saves and loads back in Keras safe mode, after
    ``layer_class()`` (what probreg calls before loading a run), with identical outputs."""
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "family.keras"
        model.save(path)
        family.layer_class()
        try:
            loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:
            raise ContractError(
                f"a model holding the family's layer does not load back: {shorten(error)}; "
                "decorate the layer class with @keras.saving.register_keras_serializable() "
                "inside layer_class()"
            ) from None
    _require(
        np.array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(loaded(x))),
        "a model holding the family's layer gives other outputs after save and load",
    )
    return "the layer saves in a model and loads back in Keras safe mode, outputs unchanged"


def _raises(function) -> bool:
    try:
        function()
    except ValueError:
        return True
    return False


@_contract
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
        before = head.spec
        try:
            loaded = load_model(path, head)
        except UsageError as error:
            raise ContractError(f"a saved model does not load: {error}") from None
        _require(
            head.spec == before,
            f"after_load changed the options of the head that saved the model: {before} -> "
            f"{head.spec}",
        )
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


@_contract
def check_sampler(spec: str, seed: int = 0) -> list[str]:
    """A sampler's contract, on a two-output mixture, a one-output mixture and a one-output
    distribution that is not a mixture (a spline flow): an array of shape
    ``(num_samples, n, d)``, finite draws, the same seed the same draws. Every sampler must
    serve the mixtures; one that cannot serve the non-mixture must refuse it with a one-line
    ``UsageError``."""
    from probreg.families.spline import SplineFlow

    sampler = plugins.create("sampler", spec)
    done = check_params("sampler", spec)
    rng = np.random.default_rng(seed)

    def mixture(d: int) -> GaussianMixture:
        return GaussianMixture(
            rng.normal(size=(8, 3)), rng.normal(size=(8, 3, d)), np.exp(rng.normal(size=(8, 3, d)))
        )

    def bins() -> np.ndarray:  # 8 bins of random sizes filling [-3, 3]
        sizes = rng.uniform(0.5, 1.5, size=(8, 1, 8))
        return 6.0 * sizes / sizes.sum(axis=-1, keepdims=True)

    slopes = rng.uniform(0.5, 2.0, size=(8, 1, 7))
    shift, scale = rng.normal(size=(8, 1)), rng.uniform(0.5, 2.0, size=(8, 1))
    flow = SplineFlow(bins(), bins(), slopes, bound=3.0, loc=shift, scale=scale)
    cases = (  # (what, distribution, whether the sampler may refuse it)
        ("a Gaussian mixture with two outputs", mixture(2), False),
        ("a Gaussian mixture with one output", mixture(1), False),
        ("a spline flow (one output, not a mixture)", flow, True),
    )
    for what, distribution, may_refuse in cases:
        try:
            first = sampler.sample(distribution, np.random.default_rng(1), 5)
        except UsageError as error:
            _require(may_refuse, f"sample() refused {what}")
            _require("\n" not in str(error), f"sample() refused {what} in more than one line")
            done.append(f"refuses {what} with a one-line error")
            continue
        except Exception as error:  # the contract names what went wrong
            raise ContractError(
                f"sample() failed on {what}: {type(error).__name__}: {error}; a sampler must "
                "work with any Distribution, or refuse it with a UsageError"
            ) from error
        second = sampler.sample(distribution, np.random.default_rng(1), 5)
        shape = (5, distribution.batch_size, distribution.event_dim)
        _require(
            isinstance(first, np.ndarray),
            f"sample() must return a numpy array, got {type(first).__name__} for {what}",
        )
        _require(
            first.shape == shape,
            f"sample() must return (num_samples, n, d) = {shape} for {what}, got {first.shape}",
        )
        _require(np.all(np.isfinite(first)), f"draws must be finite ({what})")
        _require(
            np.array_equal(first, second), f"the same rng seed must give the same draws ({what})"
        )
        done.append(f"{what}: shape, finiteness and seeded reproducibility")
    return done


@_contract
def check_dataset(spec: str, seed: int = 0) -> list[str]:
    """A dataset's contract: parts with matching shapes, finite values, the same data for the
    same seed, and (if it has one) an exact density: one value per row, normalised over ``y``
    (a mass summing to 1 over the integers), and followed by the test targets (their PIT
    under it is uniform, for one target)."""
    from probreg.datasets import exact_log_density

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
    if data.log_density is None:
        return done

    def log_density(x: np.ndarray, y: np.ndarray, at_data: bool = False) -> np.ndarray:
        try:
            return exact_log_density(data.log_density, x, y, at_data=at_data)
        except PluginError as error:
            raise ContractError(str(error)) from None

    log_density(data.x_test, data.y_test, at_data=True)
    done.append("log_density gives one finite value per test row")
    x_all = np.concatenate([data.x_train, data.x_test])
    y_all = np.concatenate([data.y_train, data.y_test])
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(data.x_test))[:40]

    def near(x0: np.ndarray, count: int) -> np.ndarray:
        """The targets of the ``count`` rows nearest ``x0``: where its density lives."""
        return y_all[np.argsort(((x_all - x0) ** 2).sum(axis=1))[:count]]

    if getattr(data.log_density, "discrete", False):
        if data.output_dim > 1:
            return [*done, "a mass over more than one target: not checked"]
        pit = _mass_pit(log_density, data, rows, y_all, rng)
        done.append("exact mass sums to 1 over the integers")
    elif data.output_dim == 1:
        pit = _density_pit(log_density, data, rows, y_all, near)
        done.append("exact density integrates to 1 over y")
    else:
        checked = 0
        for i in rows[:3]:
            x0 = data.x_test[i]
            estimate, error, ess = _importance_total(log_density, x0, near(x0, 20), y_all, rng)
            if ess < 200:  # too narrow for these draws to say anything: not a failure
                continue
            checked += 1
            _require(
                abs(estimate - 1.0) <= 6 * error + 0.05,
                f"log_density at test row {i} integrates to about {estimate:.3f} over y "
                "(importance sampling), not 1",
            )
        if checked == 0:
            return [*done, "exact density too narrow to check by importance sampling"]
        return [
            *done,
            f"exact density integrates to 1 over y on {checked} of 3 rows (importance "
            "sampling; any others too narrow to sample)",
        ]
    from scipy import stats

    p_value = stats.kstest(pit, "uniform").pvalue
    _require(
        p_value > 1e-4,
        f"the test targets do not follow log_density: their PIT under it is not uniform "
        f"(Kolmogorov-Smirnov p = {p_value:.1e} over {len(pit)} rows)",
    )
    done.append(f"the test targets' PIT under log_density is uniform ({len(pit)} rows)")
    return done


def _mass_pit(log_density, data, rows, y_all: np.ndarray, rng: np.random.Generator) -> list:
    """Each row's mass sums to 1 over the integers around the targets; the test targets'
    randomised PIT under it."""
    low, high = y_all[:, 0].min(), y_all[:, 0].max()
    span = high - low
    ks = np.arange(np.floor(low - 2 * span) - 50, np.ceil(high + 2 * span) + 51)
    pit = []
    for i in rows:
        x0, y0 = data.x_test[i], data.y_test[i, 0]
        mass = np.exp(log_density(np.repeat(x0[None], len(ks), 0), ks[:, None]))
        _require(
            abs(mass.sum() - 1.0) < 1e-6,
            f"log_density's mass at test row {i} sums to {mass.sum():.6f} over the "
            f"integers {ks[0]:.0f} to {ks[-1]:.0f}, not 1",
        )
        pit.append(mass[ks < y0].sum() + rng.uniform() * mass[ks == y0].sum())
    return pit


def _density_pit(log_density, data, rows, y_all: np.ndarray, near) -> list:
    """The first rows' density integrates to 1 (closely, on fine grids); the test targets'
    PIT under it."""
    span = np.ptp(y_all[:, 0]) + 1e-12
    reach = (y_all[:, 0].min() - span, y_all[:, 0].max() + span)
    pit = []
    for count, i in enumerate(rows):
        x0, y0 = data.x_test[i], data.y_test[i, 0]
        hints = np.append(near(x0, 10)[:, 0], y0)  # where this row's density lives
        grids = (2001, 4001) if count < 3 else (201, 401)
        total, below = _integrate_density(log_density, x0, y0, *reach, hints, *grids)
        _require(
            total > 0 and (count >= 3 or abs(total - 1.0) < 2e-3),
            f"log_density at test row {i} integrates to {total:.4f} over y, not 1",
        )
        pit.append(below / total)
    return pit


def _integrate_density(
    log_density,
    x0: np.ndarray,
    y0: float,
    low: float,
    high: float,
    hints: np.ndarray,
    coarse: int,
    fine: int,
    depth: int = 0,
) -> tuple[float, float]:
    """The integral of ``exp(log_density(x0, .))`` over ``[low, high]``, and its part below
    ``y0``.

    A coarse grid, which also holds ``hints`` (``y0`` and nearby rows' targets, where the
    density is known to live), finds the stretches within 32 nats of the largest value. A
    stretch a few steps wide is searched again the same way; a wider one is integrated on a
    fine grid, which is split and integrated again where the trapezoid and Simpson's rule
    disagree (a hard edge, a narrow peak inside heavy tails)."""
    from scipy import integrate

    ys = np.union1d(np.linspace(low, high, coarse), hints[(hints > low) & (hints < high)])
    logs = log_density(np.repeat(x0[None], len(ys), 0), ys[:, None])
    if not np.isfinite(logs.max()):
        return 0.0, 0.0
    alive = np.flatnonzero(logs > logs.max() - 32.0)
    breaks = np.flatnonzero(np.diff(alive) > 2)
    total = below = 0.0
    for a, b in zip(alive[np.r_[0, breaks + 1]], alive[np.r_[breaks, -1]], strict=True):
        lo, hi = ys[max(a - 1, 0)], ys[min(b + 1, len(ys) - 1)]
        again = (log_density, x0, y0)
        if b - a < 20 and depth < 8:
            part, under = _integrate_density(*again, lo, hi, hints, coarse, fine, depth + 1)
        else:
            grid = np.linspace(lo, hi, fine)
            density = np.exp(log_density(np.repeat(x0[None], fine, 0), grid[:, None]))
            part = float(np.trapezoid(density, grid))
            if abs(part - integrate.simpson(density, x=grid)) > 1e-5 and depth < 8:
                part = under = 0.0
                edges = np.linspace(lo, hi, 9)
                for left, right in itertools.pairwise(edges):
                    piece = _integrate_density(*again, left, right, hints, coarse, fine, depth + 1)
                    part, under = part + piece[0], under + piece[1]
            else:
                kept = grid <= y0
                under = float(np.trapezoid(density[kept], grid[kept])) if kept.sum() > 1 else 0.0
        total, below = total + part, below + under
    return total, below


def _importance_total(
    log_density, x0: np.ndarray, near: np.ndarray, y_all: np.ndarray, rng: np.random.Generator
) -> tuple[float, float, float]:
    """The integral of ``exp(log_density(x0, .))`` over ``y`` (any dimension), its standard
    error and the effective sample size, by importance sampling from a defensive mixture: half
    a wide Gaussian over the data's range, half kernels on ``near`` (the targets of the rows
    nearest ``x0``, where the density lives)."""
    draws_count, d = 200_000, y_all.shape[1]
    centre, spread = y_all.mean(axis=0), 2.0 * y_all.std(axis=0) + 1e-12
    width = 0.05 * spread
    wide = centre + spread * rng.standard_normal((draws_count // 2, d))
    local = near[rng.integers(0, len(near), draws_count // 2)] + width * rng.standard_normal(
        (draws_count // 2, d)
    )
    draws = np.concatenate([wide, local])

    def log_normal(y, mean, scale):  # (m, d) against (k, d) means -> (m, k)
        z = (y[:, None, :] - mean[None]) / scale
        return -0.5 * (z**2).sum(-1) - np.log(scale).sum() - 0.5 * d * np.log(2 * np.pi)

    log_q = np.logaddexp(
        np.log(0.5) + log_normal(draws, centre[None], spread)[:, 0],
        np.log(0.5 / len(near)) + np.logaddexp.reduce(log_normal(draws, near, width), axis=1),
    )
    weights = np.exp(log_density(np.repeat(x0[None], len(draws), 0), draws) - log_q)
    ess = weights.sum() ** 2 / max((weights**2).sum(), 1e-300)
    return float(weights.mean()), float(weights.std() / np.sqrt(len(weights))), float(ess)


def check_package(package: str) -> dict[str, list[str]]:
    """Check every plugin that ``package`` (an installed distribution, e.g.
    ``"probreg-laplace"``) registers, with each plugin's own specs (``test_specs``, or
    ``contract_specs(folder)``, else its bare name): what probreg's tests do for the built-ins,
    for a plugin package's own tests. Returns each ``"kind spec"``'s report."""
    from probreg.plugins import _normalise

    wanted = _normalise(package)
    record = next((p for p in plugins.installed() if _normalise(p["name"]) == wanted), None)
    _require(record is not None, f"no plugin is registered by a package named {package!r}")
    _require(
        "error" not in record, f"plugin package {package!r} failed to load: {record.get('error')}"
    )
    _require(
        "left_out" not in record, f"plugin package {package!r} is left out by PROBREG_LOAD_PLUGINS"
    )
    registry = plugins.registry()
    entries = [
        registry[kind][name] for kind in plugins.KINDS for name in record[plugins.plural(kind)]
    ]
    reports = {}
    with tempfile.TemporaryDirectory() as folder:
        for entry in entries:
            for spec in entry.cls.contract_specs(Path(folder)):
                _require(
                    spec.partition(":")[0] == entry.name,
                    f"{entry.kind} {entry.name}: its test spec {spec!r} names another plugin",
                )
                reports[f"{entry.kind} {spec}"] = check_plugin(entry.kind, spec)
    return reports


def check_plugin(kind: str, spec: str) -> list[str]:
    """Run the contract check for a plugin of any kind (``dataset``, ``head``, ``sampler`` or
    ``family``); the registry-wide test calls this for every registered plugin."""
    checks = {
        "dataset": check_dataset,
        "head": check_head,
        "sampler": check_sampler,
        "family": check_family,
    }
    if kind not in checks:
        raise ValueError(f"unknown plugin kind {kind!r}; allowed: {', '.join(checks)}")
    return checks[kind](spec)
