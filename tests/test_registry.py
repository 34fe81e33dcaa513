"""The plugin manager: built-ins, conflicts, unknown names, broken and temporary plugins."""

from __future__ import annotations

import types

import numpy as np
import pytest

from probreg import plugins
from probreg.errors import PluginError, UsageError
from probreg.hookspecs import hookimpl
from probreg.params import Param
from probreg.samplers import Sampler


def test_builtins_are_registered_from_default_plugins():
    registry = plugins.registry()
    assert {"spiral"} <= set(registry["dataset"])
    assert {"mdn", "mlp"} <= set(registry["head"])
    assert {"ancestral", "mean", "mode"} <= set(registry["sampler"])
    for entry in registry["head"].values():
        if entry.source.builtin:
            assert entry.source.name in plugins.DEFAULT_PLUGINS


def test_unknown_plugin_lists_what_exists():
    with pytest.raises(UsageError, match="unknown head 'nope'; available heads: .*mdn, mlp"):
        plugins.create("head", "nope")


def test_create_applies_spec_and_overrides():
    head = plugins.create("head", "mdn:components=3", epochs=7)
    assert head.options["components"] == 3
    assert head.options["epochs"] == 7
    assert head.spec == "mdn:components=3,epochs=7"


class Duplicate(Sampler):
    """A sampler that reuses a built-in name."""

    name = "mean"


class Echo(Sampler):
    """Returns the mean, scaled by a factor."""

    name = "echo"
    params = (Param("factor", "float", 1.0, "scale"),)

    def sample(self, distribution, rng, num_samples=1):
        mean = self.options["factor"] * distribution.mean()
        return mean[None].repeat(num_samples, axis=0)


def _module(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_two_plugins_with_one_name_are_refused_naming_both(temporary_plugin):
    temporary_plugin(_module(register_samplers=lambda register: register(Duplicate)), "dupe-pkg")
    with pytest.raises(
        PluginError, match="'probreg.default_plugins.mean' and 'dupe-pkg'"
    ) as caught:
        plugins.registry()
    # Built-ins always load, so the remedy names the package.
    assert str(caught.value).endswith(
        "uninstall 'dupe-pkg' or leave it out of PROBREG_LOAD_PLUGINS"
    )


def test_temporary_plugin_appears_and_disappears(temporary_plugin):
    temporary_plugin(_module(register_samplers=lambda register: register(Echo)), "echo-pkg")
    sampler = plugins.create("sampler", "echo:factor=2")
    assert sampler.options == {"factor": 2.0}
    assert plugins.source_of(sampler).name == "echo-pkg"


def test_temporary_plugin_is_gone_after_the_test():
    assert "echo" not in plugins.registry()["sampler"]


def test_a_hook_that_raises_is_skipped_with_a_warning(temporary_plugin, capsys):
    def explode(register):
        raise RuntimeError("boom")

    temporary_plugin(_module(register_heads=explode), "broken-pkg")
    registry = plugins.registry()
    assert "mdn" in registry["head"]  # everything else keeps working
    err = capsys.readouterr().err
    assert "Warning: plugin 'broken-pkg' is broken and was skipped: RuntimeError: boom" in err
    assert err.count("\n") == 1
    with pytest.raises(UsageError, match="broken plugin packages were skipped: broken-pkg"):
        plugins.create("head", "whatever")


def test_register_checks_the_class(temporary_plugin, capsys):
    temporary_plugin(_module(register_heads=lambda register: register(object)), "bad-pkg")
    plugins.registry()
    assert "wants a Head subclass" in capsys.readouterr().err


def test_misspelt_hooks_are_rejected():
    with pytest.raises(Exception, match="unknown hook"):
        plugins.register_plugin(
            _module(register_head=lambda register: None), "typo", plugins.Source("typo", "0")
        )
    assert "typo" not in plugins._sources


def test_every_plugin_declares_documented_params():
    for kind, entries in plugins.registry().items():
        for name, entry in entries.items():
            assert entry.cls.summary(), f"{kind} {name} has no docstring summary"
            for param in entry.cls.params:
                assert param.help, f"{kind} {name} parameter {param.name} has no help"
                if param.default is not None:
                    assert param.parse(param.format(param.default), name) == param.default


def test_mdn_ensemble_predicts_one_mixture_of_all_members():
    import keras

    head = plugins.create("head", "mdn:components=3,hidden=8,members=4")
    model = head.build(2, 1)
    outputs = keras.ops.convert_to_numpy(model(np.zeros((5, 2), "float32")))
    distribution = head.distribution(outputs, 1)
    assert distribution.components == 12
    assert distribution.weights.sum(axis=1) == pytest.approx(np.ones(5))


class Ranged(Sampler):
    """A sampler whose two options must be checked together."""

    name = "ranged"
    params = (Param("low", "float", 0.0, "lower end"), Param("high", "float", 1.0, "upper end"))

    def check_options(self) -> None:
        if self.options["low"] >= self.options["high"]:
            raise UsageError(
                f"sampler 'ranged' needs low < high, got low={self.options['low']:g} and "
                f"high={self.options['high']:g}"
            )


def test_check_options_validates_options_together(temporary_plugin, tmp_path):
    from probreg import api

    temporary_plugin(
        types.SimpleNamespace(register_samplers=hookimpl(lambda register: register(Ranged)))
    )
    assert plugins.create("sampler", "ranged:low=-1").options == {"low": -1.0, "high": 1.0}
    with pytest.raises(UsageError, match="needs low < high, got low=2 and high=1"):
        plugins.create("sampler", "ranged:low=2,high=1")
    with pytest.raises(UsageError, match="needs low < high"):  # before any data or folder
        api.run("spiral", "mdn", "ranged:low=1,high=1", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_old_user_signal_flag_still_reads_whether_a_stop_signal_came(monkeypatch):
    """``plugins.user_signal_received`` (set by earlier versions' CLI) now reads
    ``interrupts.received``; other missing attributes still raise."""
    from probreg import interrupts

    monkeypatch.setattr(interrupts, "received", 0)
    assert plugins.user_signal_received is False
    monkeypatch.setattr(interrupts, "received", 1)
    assert plugins.user_signal_received is True
    with pytest.raises(AttributeError):
        plugins.no_such_attribute  # noqa: B018
