"""Head ``mdn``: a Gaussian mixture density network (Bishop, 1994).

A dense trunk feeds a :class:`~probreg.layers.MixtureDensity` layer; the network is trained on
the mixture's negative log-likelihood, computed stably with a log-softmax and a logsumexp.
Any output dimension works, each component with a diagonal covariance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.heads import Head, training_params, trunk_params
from probreg.hookspecs import hookimpl
from probreg.params import Param

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import GaussianMixture


class MDN(Head):
    """Gaussian mixture density network: predicts a K-component mixture p(y|x)."""

    name = "mdn"
    keras_modules = ("probreg.layers", "probreg.losses")
    params = (
        Param("components", "int", 20, "mixture components K", minimum=1, maximum=1000),
        Param(
            "members",
            "int",
            1,
            "independently trained networks averaged into one mixture (a deep ensemble with "
            "members x components components); costs members times the compute",
            minimum=1,
            maximum=50,
        ),
        *trunk_params(hidden=(256, 256, 256), activation="relu"),
        Param(
            "scale",
            "str",
            "softplus",
            "map from raw outputs to standard deviations: softplus, exp, or elu (ELU+1, the "
            "original's)",
            choices=("softplus", "exp", "elu"),
        ),
        Param(
            "scale_floor",
            "float",
            0.03,
            "smallest component standard deviation, in standardised target units (training "
            "standard deviations); lower it for nearly noise-free targets",
            minimum=0.0,
        ),
        *training_params(epochs=150, batch_size=128, learning_rate=3e-3, patience=50),
    )

    def build(self, input_dim: int, output_dim: int):
        import keras

        from probreg.layers import MixtureDensity, dense_trunk

        o = self.options
        inputs = keras.Input((input_dim,), name="x")
        outputs = []
        for m in range(o["members"]):
            suffix = "" if o["members"] == 1 else f"_{m}"
            features = dense_trunk(inputs, o["hidden"], o["activation"], name=f"trunk{suffix}")
            outputs.append(
                MixtureDensity(
                    output_dim,
                    o["components"],
                    o["scale"],
                    o["scale_floor"],
                    name=f"mixture{suffix}",
                )(features)
            )
        if len(outputs) > 1:
            outputs = [keras.layers.Concatenate(name="members")(outputs)]
        return keras.Model(inputs, outputs[0], name="mdn")

    def loss(self, output_dim: int):
        from probreg.losses import GaussianMixtureNLL

        return GaussianMixtureNLL(self.options["components"], output_dim, self.options["members"])

    def distribution(self, outputs: np.ndarray, output_dim: int) -> GaussianMixture:
        from probreg.distributions import GaussianMixture

        k, members = self.options["components"], self.options["members"]
        size = outputs.shape[1] // members
        return GaussianMixture.combine(
            [
                GaussianMixture.from_packed(outputs[:, m * size : (m + 1) * size], k, output_dim)
                for m in range(members)
            ]
        )


@hookimpl
def register_heads(register):
    register(MDN)
