"""Head ``mlp``: the deterministic baseline, an MLP trained with mean squared error.

An MSE network learns the conditional mean, so on a many-valued mapping it collapses to the
average of the branches. To score it with the same NLL and CRPS as the probabilistic heads, its
family is ``fixed_gaussian``: a Gaussian around the prediction whose standard deviation (one
per output coordinate) is the root-mean-square residual on the validation part, which is the
maximum-likelihood choice for a constant scale.
"""

from __future__ import annotations

from probreg.families.fixed_gaussian import FixedGaussianFamily
from probreg.heads import FamilyHead, family_head_params, training_params, trunk_params
from probreg.hookspecs import hookimpl


class MLP(FamilyHead):
    """Deterministic MLP (MSE); Gaussian predictive with one validation-fitted sigma."""

    name = "mlp"
    layer_name = "gaussian"
    default_family = "fixed_gaussian"
    family_choice = False
    own_params = (
        *trunk_params(hidden=(128, 128), activation="relu"),
        *training_params(epochs=300, batch_size=128, learning_rate=1e-3, patience=20),
    )
    params = family_head_params(own_params, FixedGaussianFamily, None)
    test_specs = ("mlp:hidden=16",)

    def loss(self, output_dim: int):
        from probreg.losses import MixtureMeanSquaredError

        return MixtureMeanSquaredError(1, output_dim)


@hookimpl
def register_heads(register):
    register(MLP)
