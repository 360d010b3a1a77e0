"""Gradient fidelity: how well an estimator agrees with the exact gradient.

``labtrain gradcheck`` and the tests use these to tell a user whether EP with
their ``beta`` or CL with their ``eta`` is trustworthy on their chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chip.base import NETWORK_MODEL, Chip
from .analytic import adjoint_gradient
from .base import GradientEstimator

__all__ = ["exact_gradient", "Fidelity", "compare_gradients", "gradient_fidelity"]


def exact_gradient(chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
    """dC/dg of the noise-free network model at the chip's current conductances (adjoint method)."""
    chip.require({NETWORK_MODEL}, "exact gradient")
    model = chip.network_model()
    return adjoint_gradient(model, inputs, model.steady_state(inputs).output_v - targets_v)


@dataclass(frozen=True)
class Fidelity:
    """Agreement of an estimate ``g`` with the exact gradient ``g*``.

    Attributes
    ----------
    cosine : float
        ``g . g* / (|g| |g*|)``; 1 means the same direction.
    relative_error : float
        ``|g - g*| / |g*|``; sensitive to scale as well as direction.
    scale : float
        Least-squares factor ``g . g* / |g*|^2`` (how much larger the estimate is
        along the true gradient; CL's effective-conductance weighting shows here).
    scaled_error : float
        ``|g - s g*| / |s g*|`` with that scale ``s``: the error left once the
        scale is forgiven (``tan`` of the angle); the figure of merit for rules
        like CL whose natural normalisation differs from ``dC/dtheta``.
    """

    cosine: float
    relative_error: float
    scale: float

    scaled_error: float = float("nan")


def compare_gradients(estimate: np.ndarray, exact: np.ndarray) -> Fidelity:
    """Cosine, relative error and scale of ``estimate`` against ``exact``."""
    estimate, exact = np.asarray(estimate, float), np.asarray(exact, float)
    n_exact = float(np.linalg.norm(exact))
    n_est = float(np.linalg.norm(estimate))
    if n_exact == 0.0:
        return Fidelity(float("nan"), float("inf") if n_est else 0.0, float("nan"))
    dot = float(estimate @ exact)
    cosine = dot / (n_est * n_exact) if n_est else 0.0
    scale = dot / n_exact**2
    scaled = float(np.linalg.norm(estimate - scale * exact)) / (abs(scale) * n_exact) if scale else float("inf")
    return Fidelity(cosine, float(np.linalg.norm(estimate - exact)) / n_exact, scale, scaled)


def gradient_fidelity(chip: Chip, estimator: GradientEstimator, inputs: np.ndarray,
                      targets_v: np.ndarray) -> Fidelity:
    """Run ``estimator`` once on ``chip`` and compare with :func:`exact_gradient`."""
    exact = exact_gradient(chip, inputs, targets_v)
    return compare_gradients(estimator.estimate(chip, inputs, targets_v).gradient, exact)
