"""The hooks a probreg plugin can implement.

A plugin is a module (or any object) with functions decorated by :data:`hookimpl` whose names
match the specs below. probreg's own datasets, heads, samplers and families are plugins too:
they live in ``probreg.default_plugins`` and are registered through the same path as
third-party packages, which announce their module under the ``probreg`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("probreg")
hookimpl = pluggy.HookimplMarker("probreg")


@hookspec
def register_datasets(register: Callable[[type], None]) -> None:
    """Register dataset plugins.

    Call ``register(cls)`` once per dataset, where ``cls`` subclasses
    :class:`probreg.datasets.Dataset` and sets ``name``, ``params`` and a docstring whose first
    line is the summary shown by ``probreg list``. Names are unique among datasets across all
    plugins (each kind has its own names).

    Example::

        @hookimpl
        def register_datasets(register):
            register(Sine)
    """


@hookspec
def register_heads(register: Callable[[type], None]) -> None:
    """Register head plugins: models that predict a distribution.

    Call ``register(cls)`` once per head, where ``cls`` subclasses :class:`probreg.heads.Head`
    (``build``, ``loss``, ``distribution``). Keep Keras imports inside the methods so that
    ``probreg list`` and ``probreg --help`` stay fast.

    Example::

        @hookimpl
        def register_heads(register):
            register(LaplaceMixtureHead)
    """


@hookspec
def register_samplers(register: Callable[[type], None]) -> None:
    """Register sampler plugins: ways of drawing from a predictive distribution.

    Call ``register(cls)`` once per sampler, where ``cls`` subclasses
    :class:`probreg.samplers.Sampler` and implements ``sample(distribution, rng, num_samples)``.

    Example::

        @hookimpl
        def register_samplers(register):
            register(MedianSampler)
    """


@hookspec
def register_families(register: Callable[[type], None]) -> None:
    """Register family plugins: predictive families that heads put on top of their trunk.

    Call ``register(cls)`` once per family, where ``cls`` subclasses
    :class:`probreg.families.Family` (``layout``, ``layer_class``, ``layer``, ``log_prob``,
    ``distribution``).
    Users pick one with a family head's ``family`` parameter, e.g. ``mdn:family=laplace``.
    Keep Keras imports inside functions so that ``probreg list`` stays fast.

    Example::

        @hookimpl
        def register_families(register):
            register(LaplaceFamily)
    """
