"""Gradient fidelity: how well an estimator agrees with the exact gradient.

``labtrain gradcheck`` and the tests use these to tell a user whether EP with
their ``beta`` or CL with their ``eta`` is trustworthy on their chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from labtrain.chip.base import REFERENCE_GRADIENT, CapabilityError, Chip
from labtrain.physics.network import DEFAULT_G_MAX_S, DEFAULT_G_MIN_S, Network
from labtrain.protocols.analytic import adjoint_gradient
from labtrain.protocols.base import GradientEstimator

__all__ = ["exact_gradient", "Fidelity", "compare_gradients", "gradient_fidelity", "finite_difference_gradient",
           "fidelity_row", "estimator_rows"]


def exact_gradient(chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
    """dC/dtheta of the chip's noise-free reference model at its current parameters
    (:meth:`~labtrain.chip.base.Chip.reference_gradient`; capability ``reference_gradient``)."""
    chip.require({REFERENCE_GRADIENT}, "exact gradient")
    return chip.reference_gradient(inputs, targets_v)


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


def fidelity_row(label: str, setting: str, f: Fidelity, n_phases: int, note: str = "") -> list[str]:
    """One row of a ``labtrain gradcheck`` table: estimator, setting, cosine, rel. error, scale, err. after
    scale, phases, note."""
    return [label, setting, f"{f.cosine:.6f}", f"{f.relative_error:.2e}", f"{f.scale:.4g}", f"{f.scaled_error:.2e}",
            str(n_phases), note]


def estimator_rows(estimators: list[GradientEstimator], chip: Chip, inputs: np.ndarray, targets: np.ndarray,
                   exact: np.ndarray, seed: int, note: str = "") -> list[list[str]]:
    """:func:`fidelity_row` of each estimator run once (noise reseeded ``[seed, 9]``) against ``exact``; an
    estimator the chip cannot serve gets a row saying why."""
    rows = []
    for est in estimators:
        try:
            est.check(chip)
        except CapabilityError as exc:
            rows.append([est.label, est.setting, "-", "-", "-", "-", "-", f"unsupported: {' '.join(str(exc).split())}"])
            continue
        chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        rows.append(fidelity_row(est.label, est.setting, compare_gradients(e.gradient, exact), e.n_phases, note))
    return rows


def gradient_fidelity(chip: Chip, estimator: GradientEstimator, inputs: np.ndarray,
                      targets_v: np.ndarray) -> Fidelity:
    """Run ``estimator`` once on ``chip`` and compare with :func:`exact_gradient`."""
    exact = exact_gradient(chip, inputs, targets_v)
    return compare_gradients(estimator.estimate(chip, inputs, targets_v).gradient, exact)


def finite_difference_gradient(loss: Callable[[np.ndarray], float], params: np.ndarray, rel_step: float = 1e-5,
                               floor: float = 0.0) -> np.ndarray:
    """Central finite differences of ``loss`` at ``params`` (a reference for gradient checks).

    Parameter ``k`` is stepped by ``h = rel_step * max(|params[k]|, floor)`` either way (a relative step;
    ``floor`` keeps it away from 0 for parameters at or near 0): ``(loss(+h) - loss(-h)) / 2h``.
    """
    params = np.asarray(params, float)
    grad = np.empty_like(params)
    for k in range(len(params)):
        h = rel_step * max(abs(params[k]), floor)
        if not h > 0:
            raise ValueError(f"finite-difference step of parameter {k} is {h}: give a floor > 0 for zero parameters")
        plus, minus = params.copy(), params.copy()
        plus[k] += h
        minus[k] -= h
        grad[k] = (loss(plus) - loss(minus)) / (2 * h)
    return grad
