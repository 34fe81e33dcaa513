"""The family seam: what one predictive family provides, and the pieces every family shares.

A family turns a feature vector into a predictive distribution. Its file holds four things:

1. its :class:`Layout` (the packed parameter columns), defined once;
2. a serializable Keras layer mapping features ``(..., F)`` to constrained parameters
   ``(..., layout.size)`` over the last axis, for any leading shape;
3. the log-density in ``keras.ops`` (:meth:`Family.log_prob`), which the generic
   :class:`probreg.losses.FamilyNLL` trains with;
4. the numpy :class:`~probreg.distributions.Distribution` (:meth:`Family.distribution`).

Ensembles (``members > 1``) place several parameter blocks side by side; :func:`split_members`
is the only place that slices them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from probreg.plugin import Plugin

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from probreg.distributions import Distribution

SCALE_ACTIVATIONS = ("softplus", "exp", "elu")


class Layout:
    """Named blocks of a packed parameter row, in order: ``Layout(("w", (K,)), ("mu", (K, d)))``.

    :meth:`unpack` works on numpy arrays and on Keras tensors with any leading shape, so the
    Keras loss and the numpy distribution read the same columns the same way.
    """

    def __init__(self, *blocks: tuple[str, tuple[int, ...]]) -> None:
        self.blocks = tuple((name, tuple(int(s) for s in shape)) for name, shape in blocks)
        self.widths = tuple(math.prod(shape) for _, shape in self.blocks)

    @property
    def size(self) -> int:
        """Columns of one packed row."""
        return sum(self.widths)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.blocks)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """``name -> (start, stop)`` column range of each block."""
        found, start = {}, 0
        for (name, _), width in zip(self.blocks, self.widths, strict=True):
            found[name] = (start, start + width)
            start += width
        return found

    def unpack(self, packed: Any, flat: bool = False) -> dict[str, Any]:
        """Split rows ``(..., size)`` into blocks ``(n, *shape)``, leading axes flattened to ``n``.

        With ``flat=True`` blocks keep their packed width instead, ``(..., width)``, and the
        leading shape is untouched (what a layer needs to constrain each block).
        """
        if isinstance(packed, np.ndarray):
            reshape = np.reshape
        else:
            from keras import ops

            reshape = ops.reshape
        if not flat:
            packed = reshape(packed, (-1, self.size))
        found = {}
        for (name, shape), (start, stop) in zip(self.blocks, self.offsets().values(), strict=True):
            block = packed[..., start:stop]
            found[name] = block if flat else reshape(block, (-1, *shape))
        return found

    def pack(self, blocks: dict[str, Any]) -> Any:
        """The inverse of :meth:`unpack` with ``flat=True``: join blocks on the last axis."""
        parts = [blocks[name] for name in self.names]
        if all(isinstance(p, np.ndarray) for p in parts):
            return np.concatenate(parts, axis=-1)
        from keras import ops

        return ops.concatenate(parts, axis=-1)


def split_members(packed: Any, members: int, size: int) -> list[Any]:
    """The parameter blocks of each ensemble member: ``members`` slices of ``size`` columns."""
    width = packed.shape[-1]
    if width is not None and width != members * size:
        raise ValueError(
            f"{members} member(s) of {size} columns need {members * size}, got {width}"
        )
    return [packed[..., m * size : (m + 1) * size] for m in range(members)]


def positive_scale(raw, activation: str, floor: float):
    """Map unconstrained values to standard deviations ``>= floor`` (``keras.ops``).

    ``softplus`` grows linearly for large inputs (gentle gradients), ``exp`` is the classic choice,
    and ``elu`` is the original example's ``ELU + 1``. The floor keeps the density bounded, so a
    component cannot collapse onto one training point and send the loss to minus infinity.
    """
    from keras import ops

    if activation == "softplus":
        value = ops.softplus(raw)
    elif activation == "exp":
        value = ops.exp(ops.minimum(raw, 40.0))
    elif activation == "elu":
        value = ops.elu(raw) + 1.0
    else:
        raise ValueError(f"unknown scale activation {activation!r}; allowed: {SCALE_ACTIVATIONS}")
    return value + floor


@functools.cache
def projection_layer() -> type:
    """Base class of family layers (made on first use, so importing a family needs no Keras).

    A dense projection to the layout's columns, then :meth:`constrain` on the named blocks, all
    over the last axis: any leading shape works (rows, sequences, ``TimeDistributed``).
    Subclasses call ``self.project_to(layout)`` in ``__init__`` and implement ``constrain``.
    """
    import keras

    class ProjectionLayer(keras.layers.Layer):
        def project_to(self, layout: Layout) -> None:
            self.layout = layout
            self.projection = keras.layers.Dense(layout.size, name="projection")

        def constrain(self, blocks: dict[str, Any]) -> dict[str, Any]:
            raise NotImplementedError

        def build(self, input_shape) -> None:
            self.projection.build(input_shape)

        def call(self, features):
            raw = self.layout.unpack(self.projection(features), flat=True)
            return self.layout.pack(self.constrain(raw))

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.layout.size)

    return ProjectionLayer


@functools.cache
def mixture_layer() -> type:
    """Base class of mixture layers: ``K`` log-weights, ``K x d`` locations and scales.

    Subclasses implement ``make_layout()`` (their family's :class:`Layout`) and may extend
    ``constrain`` and ``get_config`` with blocks of their own (a Student-t's ``df``).
    """
    from keras import ops

    class MixtureLayer(projection_layer()):
        def __init__(
            self,
            output_dim: int,
            components: int,
            scale_activation: str = "softplus",
            scale_floor: float = 1e-3,
            **kwargs,
        ) -> None:
            super().__init__(**kwargs)
            name = type(self).__name__
            check_layer_arguments(name, output_dim, components=components)
            check_scale_arguments(name, scale_activation, scale_floor)
            self.output_dim = int(output_dim)
            self.components = int(components)
            self.scale_activation = scale_activation
            self.scale_floor = float(scale_floor)
            self.project_to(self.make_layout())

        def make_layout(self) -> Layout:
            raise NotImplementedError

        def constrain(self, raw: dict[str, Any]) -> dict[str, Any]:
            scales = positive_scale(raw["scales"], self.scale_activation, self.scale_floor)
            return {
                **raw,
                "log_weights": ops.log_softmax(raw["log_weights"], axis=-1),
                "scales": scales,
            }

        def get_config(self) -> dict:
            return {
                **super().get_config(),
                "output_dim": self.output_dim,
                "components": self.components,
                "scale_activation": self.scale_activation,
                "scale_floor": self.scale_floor,
            }

    return MixtureLayer


def check_layer_arguments(layer: str, output_dim: Any, **positive: Any) -> None:
    """Validate a family layer's arguments in the layer, as Keras layers do: one clear error."""
    if not isinstance(output_dim, int | np.integer) or output_dim < 1:
        raise ValueError(f"{layer}: output_dim must be a positive integer, got {output_dim!r}")
    for name, value in positive.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


def check_scale_arguments(layer: str, activation: Any, floor: Any) -> None:
    """Validate a scale map and floor (see :func:`positive_scale`)."""
    if activation not in SCALE_ACTIVATIONS:
        raise ValueError(
            f"{layer}: scale_activation must be one of {SCALE_ACTIVATIONS}, got {activation!r}"
        )
    if not (isinstance(floor, int | float) and floor >= 0):
        raise ValueError(f"{layer}: scale_floor must be a number >= 0, got {floor!r}")


class Family(Plugin):
    """Base class of family plugins: one predictive family (layout, layer, log-density, numpy).

    Subclasses set ``name``, ``params`` and a docstring and implement :meth:`layout`,
    :meth:`layer_class`, :meth:`layer`, :meth:`log_prob` and :meth:`distribution`.
    """

    kind = "family"
    #: The largest target dimension the family supports (``None``: any).
    max_output_dim: ClassVar[int | None] = None

    def check_output_dim(self, output_dim: int) -> None:
        """A one-line :class:`~probreg.errors.UsageError` if the family cannot model ``d``."""
        if self.max_output_dim is not None and output_dim > self.max_output_dim:
            from probreg.errors import UsageError

            raise UsageError(
                f"family '{self.name}' models at most {self.max_output_dim} target column(s); "
                f"the data has {output_dim}"
            )

    #: Whether the family's distributions are discrete (a log-mass, integer draws).
    discrete: ClassVar[bool] = False

    def before_fit(self, model: Any, target_mean: np.ndarray, target_scale: np.ndarray) -> None:
        """Called once before training with the built model and the target's standardisation
        (``y_std = (y - mean) / scale``); a no-op unless the family needs it (``discrete``
        stores where the integers fall in standardised units)."""

    def after_fit(self, head: Any, model: Any, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """Called once after training with standardised validation data; a no-op unless the
        family fits something there (``fixed_gaussian`` sets its stored scale)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled before an option existed: it takes what a layer from before it used.
        self.__dict__.update(state)
        for name, value in self.options_from_layer({}).items():
            self.options.setdefault(name, value)

    def options_from_layer(self, config: dict[str, Any]) -> dict[str, Any]:
        """The options a saved layer's config fixes, for a run folder written before one of
        them existed or changed its default (e.g. the spline's ``affine``); ``{}`` by default."""
        return {}

    def layout(self, output_dim: int) -> Layout:
        """The packed parameter columns for ``output_dim``-dimensional targets."""
        raise NotImplementedError

    def layer_class(self) -> type:
        """The family's Keras layer class, registered with Keras for safe-mode loading.

        Make it on first call (``functools.cache``) with Keras imported inside, so that importing
        the family (``probreg list`` does) does not start TensorFlow; probreg calls this before a
        saved model is loaded.
        """
        raise NotImplementedError

    def layer(self, output_dim: int, name: str | None = None) -> keras.layers.Layer:
        """A fresh Keras layer: features ``(..., F)`` -> constrained parameters ``(..., size)``."""
        raise NotImplementedError

    def log_prob(self, params, y, output_dim: int):
        """``log p(y)`` in ``keras.ops``: params ``(..., size)``, y ``(..., d)`` -> ``(n,)``
        with the leading axes flattened."""
        raise NotImplementedError

    def distribution(self, params: np.ndarray, output_dim: int) -> Distribution:
        """The numpy distribution of packed rows ``(n, size)``."""
        raise NotImplementedError

    def combine(self, members: Sequence[Distribution]) -> Distribution:
        """The equal-weight mixture of ensemble members; families with weights merge exactly."""
        from probreg.distributions import EqualMixture

        return members[0] if len(members) == 1 else EqualMixture(list(members))

    def ensemble_distribution(
        self, params: np.ndarray, output_dim: int, members: int = 1
    ) -> Distribution:
        """The predictive distribution of ``members`` blocks side by side (one block: itself)."""
        size = self.layout(output_dim).size
        params = np.asarray(params, np.float64).reshape(-1, members * size)
        return self.combine(
            [self.distribution(block, output_dim) for block in split_members(params, members, size)]
        )


class MixtureFamily(Family):
    """A family of ``components`` location-scale components: the numpy side comes from
    ``distribution_class`` (a :class:`~probreg.distributions.mixture.LocationScaleMixture`)."""

    distribution_class: ClassVar[type]
    #: The family file's cached ``layer_class()`` and its ``keras.ops`` log-density
    #: ``log_prob(params, y, components, output_dim)``; set with ``staticmethod``.
    layer_factory: ClassVar[Callable[[], type]]
    density: ClassVar[Callable[..., Any]]

    def layer_class(self) -> type:
        return self.layer_factory()

    def layer_options(self) -> dict[str, Any]:
        """Layer arguments beyond components, scale map and floor (Student-t's ``df_min``)."""
        return {}

    def layer(self, output_dim: int, name: str | None = None):
        o = self.options
        return self.layer_class()(
            output_dim,
            o["components"],
            o["scale"],
            o["scale_floor"],
            name=name,
            **self.layer_options(),
        )

    def log_prob(self, params, y, output_dim: int):
        return self.density(params, y, self.options["components"], output_dim)

    def layout(self, output_dim: int) -> Layout:
        return self.distribution_class.layout(self.options["components"], output_dim)

    def distribution(self, params: np.ndarray, output_dim: int) -> Distribution:
        return self.distribution_class.from_packed(params, self.options["components"], output_dim)

    def combine(self, members: Sequence[Distribution]) -> Distribution:
        return self.distribution_class.combine(list(members))
