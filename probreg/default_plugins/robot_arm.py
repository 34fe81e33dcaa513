"""Dataset ``robot-arm``: inverse kinematics of a two-link planar arm (2-D in, 2-D out).

Joint angles ``theta = (theta1, theta2)`` are drawn uniformly from ``[0.3, 1.2] x [pi/2, 3pi/2]``
(Bishop, 1994 and *Neural Networks for Pattern Recognition*, section 6.4) with link lengths
0.8 and 0.2. The input is the end-effector position ``x = FK(theta)``; the target is the joint
reading ``y = theta + N(0, noise^2 R)``, ``R`` the 2 x 2 correlation matrix with off-diagonal
``correlation`` (0 by default: independent readings). Most positions can be reached with the
elbow up or down, so ``p(y | x)`` has two branches.

The exact density is a two-component Gaussian mixture: the inverse-kinematics solutions
``theta_b(x)`` inside the box, weighted by the density of ``x`` they produce,
``1 / |det J(theta_b)| = 1 / (l1 l2 |sin theta2_b|)``. Runs therefore report the Bayes limit.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from probreg.datasets import Data, Dataset, size_params, split_draw
from probreg.hookspecs import hookimpl
from probreg.params import Param

L1, L2 = 0.8, 0.2
THETA1 = (0.3, 1.2)
THETA2 = (0.5 * np.pi, 1.5 * np.pi)


def forward_kinematics(theta: np.ndarray) -> np.ndarray:
    """End-effector positions ``(n, 2)`` for joint angles ``(n, 2)``."""
    t1, t2 = theta[:, 0], theta[:, 1]
    return np.stack(
        [L1 * np.cos(t1) + L2 * np.cos(t1 + t2), L1 * np.sin(t1) + L2 * np.sin(t1 + t2)], axis=1
    )


def inverse_kinematics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both solutions ``(n, 2, 2)`` (branch, angle) for positions ``(n, 2)``, and which lie in
    the joint box ``(n, 2)``."""
    cos2 = (np.sum(x**2, axis=1) - L1**2 - L2**2) / (2 * L1 * L2)
    alpha = np.arccos(np.clip(cos2, -1.0, 1.0))
    solutions = []
    for t2 in (alpha, 2.0 * np.pi - alpha):
        t1 = np.arctan2(x[:, 1], x[:, 0]) - np.arctan2(L2 * np.sin(t2), L1 + L2 * np.cos(t2))
        t1 = (t1 + np.pi) % (2.0 * np.pi) - np.pi
        solutions.append(np.stack([t1, t2], axis=1))
    theta = np.stack(solutions, axis=1)
    tol = 1e-9
    valid = (
        (theta[..., 0] >= THETA1[0] - tol)
        & (theta[..., 0] <= THETA1[1] + tol)
        & (theta[..., 1] >= THETA2[0] - tol)
        & (theta[..., 1] <= THETA2[1] + tol)
    )
    return theta, valid


class RobotArmDensity:
    """Exact ``log p(y | x)``: a mixture over the valid inverse-kinematics branches."""

    def __init__(self, noise: float, correlation: float = 0.0) -> None:
        self.noise = noise
        self.correlation = correlation

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        theta, valid = inverse_kinematics(np.asarray(x, np.float64).reshape(-1, 2))
        jacobian = L1 * L2 * np.maximum(np.abs(np.sin(theta[..., 1])), 1e-12)
        log_weight = np.where(valid, -np.log(jacobian), -np.inf)
        log_weight = log_weight - special.logsumexp(log_weight, axis=1, keepdims=True)
        z = (np.asarray(y, np.float64).reshape(-1, 1, 2) - theta) / self.noise
        rho = self.correlation
        quadratic = (z[..., 0] ** 2 - 2 * rho * z[..., 0] * z[..., 1] + z[..., 1] ** 2) / (
            1 - rho**2
        )
        component = (
            -0.5 * quadratic
            - 2 * np.log(self.noise)
            - 0.5 * np.log1p(-(rho**2))
            - np.log(2 * np.pi)
        )
        return special.logsumexp(log_weight + component, axis=1)


class RobotArm(Dataset):
    """Two-link robot arm inverse kinematics: 2-D position to 2 joint angles; two branches."""

    name = "robot-arm"
    params = (
        *size_params(n=5000, val=1000, test=5000),
        Param(
            "noise",
            "float",
            0.05,
            "standard deviation of the joint readings (radians)",
            minimum=0.001,
            maximum=1,
        ),
        Param(
            "correlation",
            "float",
            0.0,
            "correlation of the two joint readings' errors; non-zero values make the outputs "
            "correlated within each branch (what a full-covariance family models)",
            minimum=-0.99,
            maximum=0.99,
        ),
    )

    def load(self, seed: int) -> Data:
        o = self.options
        rng = np.random.default_rng(seed)
        total = o["n"] + o["val"] + o["test"]
        theta = np.stack([rng.uniform(*THETA1, total), rng.uniform(*THETA2, total)], axis=1)
        x = forward_kinematics(theta)
        rho = o["correlation"]
        mixing = np.array([[1.0, rho], [0.0, np.sqrt(1.0 - rho**2)]])  # the identity for rho = 0
        y = theta + rng.normal(scale=o["noise"], size=theta.shape) @ mixing
        return split_draw(
            x,
            y,
            o,
            x_names=("x1", "x2"),
            y_names=("theta1", "theta2"),
            log_density=RobotArmDensity(o["noise"], o["correlation"]),
        )


@hookimpl
def register_datasets(register):
    register(RobotArm)
