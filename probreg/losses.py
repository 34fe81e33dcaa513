"""Keras losses, written in ``keras.ops`` (TensorFlow and JAX alike).

:class:`FamilyNLL` is the one likelihood loss: it trains any family (and any ensemble of one)
from the family's own ``keras.ops`` log-density. The Gaussian-mixture names below it are kept
so that code and saved models from earlier versions keep working.
"""

from __future__ import annotations

import keras
from keras import ops

from probreg import optimizers  # noqa: F401  (registers ema's optimizer for loading models)
from probreg.families import gaussian_mixture
from probreg.families.base import Family, split_members


@keras.saving.register_keras_serializable(package="probreg")
class FamilyNLL(keras.losses.Loss):
    """Mean negative log-likelihood (nats per row) of targets under a family's packed rows.

    ``family`` is a family instance or spec (``"student_t:components=3"``). With ``members > 1``
    the rows hold that many parameter blocks side by side (an ensemble); the loss is the average
    of the members' own NLLs, so each member trains on its own, as in deep ensembles. Rows may
    have any leading shape (sequences); targets then have the same leading shape.
    """

    def __init__(
        self,
        family: Family | str,
        output_dim: int,
        members: int = 1,
        name: str = "family_nll",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        from probreg import plugins

        self.family = plugins.create("family", family)
        self.output_dim = int(output_dim)
        self.members = int(members)
        self.size = self.family.layout(self.output_dim).size

    def call(self, y_true, y_pred):
        total = 0.0
        for block in split_members(y_pred, self.members, self.size):
            total = total - self.family.log_prob(block, y_true, self.output_dim)
        return total / self.members

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "family": self.family.spec,
            "output_dim": self.output_dim,
            "members": self.members,
        }


def gaussian_mixture_log_prob(packed, y, components: int, output_dim: int):
    """``log p(y)`` under packed diagonal Gaussian mixtures (kept for earlier callers)."""
    return gaussian_mixture.log_prob(packed, y, components, output_dim)


@keras.saving.register_keras_serializable(package="probreg")
class GaussianMixtureNLL(FamilyNLL):
    """:class:`FamilyNLL` of the ``gaussian_mixture`` family (the name earlier versions saved)."""

    def __init__(
        self,
        components: int,
        output_dim: int,
        members: int = 1,
        name: str = "gaussian_mixture_nll",
        **kwargs,
    ):
        super().__init__(
            f"gaussian_mixture:components={int(components)}", output_dim, members, name, **kwargs
        )
        self.components = int(components)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("family")
        return {**config, "components": self.components}


@keras.saving.register_keras_serializable(package="probreg")
class MixtureMeanSquaredError(keras.losses.Loss):
    """Squared error of the mixture mean, averaged over coordinates: the MLP's MSE objective."""

    def __init__(self, components: int, output_dim: int, name: str = "mixture_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.components = int(components)
        self.output_dim = int(output_dim)

    def call(self, y_true, y_pred):
        blocks = gaussian_mixture.layout(self.components, self.output_dim).unpack(y_pred)
        mean = ops.sum(ops.exp(blocks["log_weights"])[:, :, None] * blocks["means"], axis=1)
        y_true = ops.reshape(ops.cast(y_true, mean.dtype), (-1, self.output_dim))
        return ops.mean(ops.square(y_true - mean), axis=-1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "components": self.components,
            "output_dim": self.output_dim,
        }
