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
    jit_compile: bool = True
    steps_per_execution: int = 16
    validation_batch_size: int | None = None


def training_params(
    epochs: int = 300,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    schedule: str = "cosine",
    patience: int = 20,
    weight_decay: float = 0.0,
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
            "stop after this many epochs without a better validation loss; the best weights "
            "are kept",
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
    )


def trunk_params(hidden: tuple[int, ...], activation: str) -> tuple[Param, ...]:
    """The trunk (shared hidden layers) parameters: sizes and activation."""
    return (
        Param("hidden", "ints", hidden, "sizes of the hidden layers, e.g. 128+128", minimum=1),
        Param(
            "activation", "str", activation, "activation of the hidden layers", choices=ACTIVATIONS
        ),
    )


class Head(Plugin):
    """Base class of head plugins.

    A head builds a Keras model from inputs to raw outputs, gives the loss it trains with, and
    turns the model's outputs (numpy, in standardised units) into a
    :class:`~probreg.distributions.Distribution`. ``keras_modules`` names the modules that define
    the model's custom Keras objects; they are imported before a saved model is loaded.
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

    def after_fit(self, model: keras.Model, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """Called once after training with standardised validation data; a no-op by default."""

    def training(self) -> TrainingConfig:
        """The fitting recipe; by default read from the options named like its fields."""
        names = {f.name for f in dataclasses.fields(TrainingConfig)}
        given: dict[str, Any] = {k: v for k, v in self.options.items() if k in names}
        return TrainingConfig(**given)
