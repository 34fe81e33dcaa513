"""Head ``mdn``: a mixture density network (Bishop, 1994), a dense trunk plus a family.

The default family is the diagonal Gaussian mixture (``gaussian_mixture``); ``family=NAME``
picks another (``student_t`` for heavy tails), whose parameters join the head's. The network is
trained on the family's negative log-likelihood; ``members=N`` makes a deep ensemble.
"""

from __future__ import annotations

from probreg.families.gaussian_mixture import GaussianMixtureFamily
from probreg.heads import FamilyHead, family_head_params, training_params, trunk_params
from probreg.hookspecs import hookimpl
from probreg.params import Param


class MDN(FamilyHead):
    """Mixture density network: a dense trunk and a predictive family (Gaussian mixture)."""

    name = "mdn"
    layer_name = "mixture"
    default_family = "gaussian_mixture"
    own_params = (
        Param(
            "members",
            "int",
            1,
            "independently trained networks averaged into one mixture (a deep ensemble with "
            "members x components components); costs members times the compute",
            minimum=1,
            maximum=50,
        ),
        *trunk_params(hidden=(128, 128, 128), activation="relu"),
        *training_params(epochs=200, batch_size=128, learning_rate=3e-3, patience=50),
    )
    params = family_head_params(own_params, GaussianMixtureFamily, default_family)
    test_specs = (
        "mdn:hidden=16,components=3",
        "mdn:hidden=16,family=student_t,components=2",
        "mdn:hidden=8,members=2,components=2",
    )


@hookimpl
def register_heads(register):
    register(MDN)
