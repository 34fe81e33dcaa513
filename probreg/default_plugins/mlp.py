"""Head ``mlp``: the deterministic baseline, an MLP trained with mean squared error.

An MSE network learns the conditional mean, so on a many-valued mapping it collapses to the
average of the branches. To score it with the same NLL and CRPS as the probabilistic heads, its
predictive distribution is a Gaussian around the prediction whose standard deviation (one per
output coordinate) is the root-mean-square residual on the validation part, which is the
maximum-likelihood choice for a constant scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from probreg.heads import Head, training_params, trunk_params
from probreg.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from probreg.distributions import GaussianMixture


class MLP(Head):
    """Deterministic MLP (MSE); Gaussian predictive with one validation-fitted sigma."""

    name = "mlp"
    keras_modules = ("probreg.layers", "probreg.losses")
    params = (
        *trunk_params(hidden=(128, 128), activation="relu"),
        *training_params(epochs=300, batch_size=128, learning_rate=1e-3, patience=20),
    )

    def build(self, input_dim: int, output_dim: int):
        import keras

        from probreg.layers import FixedScaleGaussian, dense_trunk

        inputs = keras.Input((input_dim,), name="x")
        features = dense_trunk(inputs, self.options["hidden"], self.options["activation"])
        mean = keras.layers.Dense(output_dim, name="mean")(features)
        outputs = FixedScaleGaussian(output_dim, name="gaussian")(mean)
        return keras.Model(inputs, outputs, name="mlp")

    def loss(self, output_dim: int):
        from probreg.losses import MixtureMeanSquaredError

        return MixtureMeanSquaredError(1, output_dim)

    def after_fit(self, model, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """Set the Gaussian's scale to the validation root-mean-square residual."""
        from probreg.distributions import GaussianMixture

        output_dim = y_val.shape[1]
        mean = GaussianMixture.from_packed(model.predict(x_val, verbose=0), 1, output_dim).mean()
        rms = np.sqrt(np.mean((y_val - mean) ** 2, axis=0))
        layer = model.get_layer("gaussian")
        layer.log_scale.assign(np.log(np.maximum(rms, 1e-6)).astype("float32"))

    def distribution(self, outputs: np.ndarray, output_dim: int) -> GaussianMixture:
        from probreg.distributions import GaussianMixture

        return GaussianMixture.from_packed(outputs, 1, output_dim)


@hookimpl
def register_heads(register):
    register(MLP)
