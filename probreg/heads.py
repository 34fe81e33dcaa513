"""Head plugins: a Keras model, its loss, and the map from its outputs to a predictive distribution.

This module stays free of Keras imports so that ``probreg list`` starts fast; heads import
Keras inside their methods.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from probreg.params import Param
from probreg.plugin import Plugin

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from probreg.distributions import Distribution

SCHEDULES = ("cosine", "plateau", "constant")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "elu")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a head wants to be fitted; built from its options by :meth:`Head.training`."""

    epochs: int
    batch_size: int
    learning_rate: float
    schedule: str = "cosine"
    patience: int = 20
    weight_decay: float = 0.0
    clipnorm: float = 0.0  # clip each step's gradients to this global norm; 0 is off
    #: XLA-compile the training step: True, False or "auto" (always on JAX; on TensorFlow only
    #: for runs of at least ``training.XLA_MIN_STEPS`` steps: :func:`training.uses_xla`).
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 16
    validation_batch_size: int | None = None
    #: Momentum of a moving average of the weights that validation, early stopping and the kept
    #: weights use (:func:`probreg.training.fit`); 0 is off.
    ema: float = 0.0


def training_params(
    epochs: int = 300,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    schedule: str = "cosine",
    patience: int = 20,
    weight_decay: float = 0.0,
    clipnorm: float = 0.0,
    ema: float = 0.0,
) -> tuple[Param, ...]:
    """The training parameters every built-in head accepts, with that head's own defaults."""
    return (
        Param("epochs", "int", epochs, "most passes over the training data", minimum=1),
        Param("batch_size", "int", batch_size, "rows per gradient step", minimum=1),
        Param("learning_rate", "float", learning_rate, "Adam's peak step size", minimum=1e-12),
        Param(
            "schedule",
            "str",
            schedule,
            "learning-rate schedule: cosine decay to 0 over `epochs`, plateau (x0.1 after "
            "patience/4 epochs without improvement), or constant",
            choices=SCHEDULES,
        ),
        Param(
            "patience",
            "int",
            patience,
            "stop when no validation score --monitor names has improved for this many "
            "epochs; the best weights are kept",
            minimum=1,
        ),
        Param(
            "weight_decay",
            "float",
            weight_decay,
            "decoupled weight decay (AdamW-style): each step shrinks the weights by "
            "learning_rate x weight_decay; 0 turns it off",
            minimum=0.0,
        ),
        Param(
            "clipnorm",
            "float",
            clipnorm,
            "clip each step's gradients to this global norm before Adam sees them (1 helped "
            "the spline family on data with hard edges); 0 turns it off",
            minimum=0.0,
        ),
        Param(
            "ema",
            "float",
            ema,
            "keep an exponential moving average of the weights with this momentum (e.g. 0.999) "
            "and validate, stop early and predict with it; 0 turns it off",
            minimum=0.0,
            maximum=0.9999,
        ),
    )


def trunk_params(
    hidden: tuple[int, ...], activation: str, dropout: float = 0.0
) -> tuple[Param, ...]:
    """The trunk (shared hidden layers) parameters: sizes, activation and dropout rate."""
    return (
        Param("hidden", "ints", hidden, "sizes of the hidden layers, e.g. 128+128", minimum=1),
        Param(
            "activation", "str", activation, "activation of the hidden layers", choices=ACTIVATIONS
        ),
        Param(
            "dropout",
            "float",
            dropout,
            "share of each hidden layer's outputs dropped in training (a regulariser; "
            "predictions use the whole network); 0 turns it off",
            minimum=0.0,
            maximum=0.9,
        ),
    )


class Head(Plugin):
    """Base class of head plugins.

    A head builds a Keras model from inputs to raw outputs, gives the loss it trains with, and
    turns the model's outputs (numpy, in standardised units) into a
    :class:`~probreg.distributions.Distribution`. ``keras_modules`` names the modules that define
    the model's custom Keras objects; :meth:`prepare_load` imports them before a saved model is
    loaded.
    """

    kind = "head"
    keras_modules: ClassVar[tuple[str, ...]] = ()

    def build(self, input_dim: int, output_dim: int) -> keras.Model:
        """The untrained Keras model: ``(batch, input_dim)`` in, raw outputs out."""
        raise NotImplementedError

    def loss(self, output_dim: int) -> keras.losses.Loss:
        """The Keras loss the model trains with (lower is better)."""
        raise NotImplementedError

    def distribution(self, outputs: np.ndarray, output_dim: int) -> Distribution:
        """The predictive distribution for each row of model outputs."""
        raise NotImplementedError

    def prepare_load(self) -> None:
        """Register the custom Keras objects a saved model of this head needs."""
        import importlib

        for module in self.keras_modules:
            importlib.import_module(module)

    def after_load(self, model: keras.Model) -> None:
        """Called with a model loaded from a run folder, before it predicts: a head whose
        options the saved model fixes (one saved before an option existed) reads them here."""

    def before_fit(self, model: keras.Model, y_scaling: Any) -> None:
        """Called once before training with the built model and the target's
        :class:`~probreg.runs.Standardizer`; a no-op by default."""

    def after_fit(self, model: keras.Model, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """Called after training with standardised validation data; a no-op by default.

        It sees the kept weights last; with several monitored scores (``--monitor nll,rmse``) it
        is also called on each further score's checkpoint before that is scored, so keep the
        state it sets in the model's weights."""

    def training(self) -> TrainingConfig:
        """The fitting recipe; by default read from the options named like its fields."""
        names = {f.name for f in dataclasses.fields(TrainingConfig)}
        given: dict[str, Any] = {k: v for k, v in self.options.items() if k in names}
        return TrainingConfig(**given)


def family_param(default: str) -> Param:
    """The ``family`` parameter of a head that lets users pick its predictive family."""
    return Param(
        "family",
        "str",
        default,
        "predictive family (see `probreg list`, Families); its parameters join the head's, "
        "e.g. mdn:family=student_t,components=5",
    )


def family_head_params(
    own: tuple[Param, ...], family_cls: type, choice: str | None
) -> tuple[Param, ...]:
    """A family head's parameters: ``family`` (default ``choice``; left out when ``None``, for
    heads with a fixed family), the family's, then the head's own."""
    clash = {p.name for p in own} & {p.name for p in family_cls.params}
    if choice is not None and any(p.name == "family" for p in family_cls.params):
        clash.add("family")
    if clash:
        from probreg.errors import PluginError

        raise PluginError(
            f"family '{family_cls.name}' declares {', '.join(sorted(clash))}, which family heads "
            "already have (trunk, training and ensemble parameters, or the head's own): no head "
            "could use it; rename them"
        )
    chosen = (family_param(choice),) if choice is not None else ()
    return (*chosen, *family_cls.params, *own)


def _family_class(name: Any) -> type:
    from probreg import plugins

    return plugins.get("family", str(name).strip()).cls


class FamilyHead(Head):
    """A head made of a trunk, a predictive family and a training recipe.

    The trunk maps inputs to features (the built-in one is :func:`probreg.layers.dense_trunk`,
    set by ``hidden`` and ``activation``; ``build(..., trunk=...)`` takes any Keras layer or
    model instead); the family's layer sits on top; ``members > 1`` trains that many
    independent trunk + layer pairs (a deep ensemble). The loss is the family's NLL.

    Subclasses set ``own_params`` (trunk, recipe and ``members``), ``default_family``,
    ``family_choice`` (whether users may pick another family with ``family=NAME``) and
    ``params = family_head_params(own_params, DefaultFamily, ...)`` (what ``probreg list``
    shows); each instance's ``params`` follow its chosen family.
    """

    keras_modules: ClassVar[tuple[str, ...]] = ("probreg.losses",)
    own_params: ClassVar[tuple[Param, ...]] = ()
    default_family: ClassVar[str] = "gaussian_mixture"
    family_choice: ClassVar[bool] = True
    layer_name: ClassVar[str] = "family"
    _params_as_own: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "params" in cls.__dict__ and "own_params" not in cls.__dict__:
            # Declared like any other head's: those are the head's own parameters. The
            # family's, if listed too (family_head_params), are set aside when it is created.
            cls.own_params = tuple(p for p in cls.params if p.name != "family")
            cls._params_as_own = True

    def __init__(self, **options: Any) -> None:
        from probreg.errors import UsageError
        from probreg.params import resolve_options

        chosen = options.get("family", self.default_family) if self.family_choice else None
        if not self.family_choice and "family" in options:
            raise UsageError(f"head '{self.name}' has a fixed family, {self.default_family}")
        family_cls = _family_class(chosen or self.default_family)
        default = self.default_family if self.family_choice else None
        own = self.own_params
        if self._params_as_own:
            listed = {p.name for p in _family_class(self.default_family).params}
            own = tuple(p for p in own if p.name not in listed)
        self.params = family_head_params(own, family_cls, default)  # this instance's
        # The family's own options first, so a bad one is named as the family's too.
        mine = {p.name for p in family_cls.params}
        resolve_options(
            family_cls.params,
            {k: v for k, v in options.items() if k in mine},
            f"head '{self.name}' (family '{family_cls.name}')",
        )
        try:
            super().__init__(**options)
        except UsageError as error:
            hint = _other_family_hint(options, self.params) if self.family_choice else ""
            raise UsageError(f"{error}{hint}") from None
        self.family = family_cls(**{p.name: self.options[p.name] for p in family_cls.params})

    def prepare_load(self) -> None:
        super().prepare_load()
        self.family.layer_class()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled before the family had some options: its unpickling filled them in; the head
        # takes them too, so its spec says what the family does.
        self.__dict__.update(state)
        missing = {k: v for k, v in self.family.options.items() if k not in self.options}
        self.options.update(missing)
        self.params = (*self.params, *(p for p in self.family.params if p.name in missing))

    def after_load(self, model) -> None:
        """Take the options the saved family layer fixes (:meth:`adopt_layer_config`)."""
        config = self.layer_config(model)
        if config is not None:
            self.adopt_layer_config(config)

    def layer_config(self, model) -> dict[str, Any] | None:
        """The config of ``model``'s (first) family layer, ``None`` if it has none by that name."""
        try:
            return model.get_layer(self.member_layer_names()[0]).get_config()
        except ValueError:
            return None

    def adopt_layer_config(self, config: dict[str, Any]) -> None:
        """Take the options a saved family layer's ``config`` fixes
        (:meth:`~probreg.families.Family.options_from_layer`); ``{}`` stands for a layer saved
        before any of them existed."""
        fixed = self.family.options_from_layer(config)
        self.options.update(fixed)
        self.family.options.update(fixed)

    def packed_width(self, output_dim: int) -> int:
        """Model outputs per row: the family's packed parameters, once per member."""
        return self.family.layout(output_dim).size * self.members

    def before_fit(self, model, y_scaling) -> None:
        self.family.before_fit(model, y_scaling.mean, y_scaling.scale)

    def after_fit(self, model, x_val: np.ndarray, y_val: np.ndarray) -> None:
        self.family.after_fit(self, model, x_val, y_val)

    def member_layer_names(self) -> list[str]:
        """The names of the family layers, one per ensemble member."""
        if self.members == 1:
            return [self.layer_name]
        return [f"{self.layer_name}_{m}" for m in range(self.members)]

    @property
    def members(self) -> int:
        return int(self.options.get("members", 1))

    def features(self, inputs, trunk: Any = None, name: str = "trunk", copy: bool = False):
        """Apply the trunk: the dense one from ``hidden``/``activation``, or ``trunk``.

        ``trunk`` is a Keras layer or model or a function that returns a new one; ``copy``
        makes a fresh copy of a given layer (each ensemble member after the first gets one).
        """
        from probreg.layers import dense_trunk

        if trunk is None:
            o = self.options
            return dense_trunk(inputs, o["hidden"], o["activation"], name, o.get("dropout", 0.0))
        return resolve_trunk(trunk, copy=copy)(inputs)

    def build(self, input_dim: int | tuple[int, ...], output_dim: int, trunk: Any = None):
        """The untrained model: inputs of shape ``input_dim`` (an int, or a shape such as
        ``(T, F)`` for sequences) -> the family's packed parameters (members side by side)."""
        import keras

        shape = (int(input_dim),) if isinstance(input_dim, int | np.integer) else tuple(input_dim)
        inputs = keras.Input(shape, name="x")
        outputs = []
        self.family.check_output_dim(output_dim)
        for m, layer_name in enumerate(self.member_layer_names()):
            suffix = "" if self.members == 1 else f"_{m}"
            features = self.features(inputs, trunk, name=f"trunk{suffix}", copy=m > 0)
            outputs.append(self.family.layer(output_dim, name=layer_name)(features))
        if len(outputs) > 1:
            outputs = [keras.layers.Concatenate(name="members")(outputs)]
        return keras.Model(inputs, outputs[0], name=self.name)

    def loss(self, output_dim: int):
        from probreg.losses import FamilyNLL

        return FamilyNLL(self.family, output_dim, self.members)

    def distribution(self, outputs: np.ndarray, output_dim: int) -> Distribution:
        return self.family.ensemble_distribution(outputs, output_dim, self.members)


def _other_family_hint(options: dict[str, Any], params: tuple[Param, ...]) -> str:
    """``; 'components' is a parameter of families ...`` for an unknown option that another
    family declares (``mdn:family=spline,components=3``), else ``""``."""
    from probreg import plugins

    known = {p.name for p in params}
    unknown = next((name for name in options if name not in known), None)
    owners = sorted(
        name
        for name, entry in plugins.registry()["family"].items()
        if unknown in {p.name for p in entry.cls.params}
    )
    if not owners:
        return ""
    which = f"family {owners[0]}" if len(owners) == 1 else f"families {', '.join(owners)}"
    return f"; '{unknown}' is a parameter of {which} (pick one with family=NAME)"


def resolve_trunk(trunk: Any, copy: bool = False):
    """A Keras layer or model to apply as a trunk, from a layer/model or a function making one.

    With ``copy`` a given layer or model is cloned with fresh weights, so ensemble members do
    not share them.
    """
    import keras

    if isinstance(trunk, keras.layers.Layer):
        if not copy:
            return trunk
        if isinstance(trunk, keras.Model):
            return keras.models.clone_model(trunk)
        return type(trunk).from_config(trunk.get_config())
    if callable(trunk):
        made = trunk()
        if not isinstance(made, keras.layers.Layer):
            from probreg.errors import UsageError

            raise UsageError(
                f"the trunk function returned {type(made).__name__}, not a Keras layer"
            )
        return made
    from probreg.errors import UsageError

    raise UsageError(
        "trunk must be a Keras layer or model, or a function returning one; "
        f"got {type(trunk).__name__}"
    )
