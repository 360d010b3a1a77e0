"""Equilibrium propagation for XY oscillator networks (ALGORITHMS.md section 7).

Energy ``E = -sum_e W_e cos(phi_a - phi_b) - sum_i h_i cos(phi_i - psi_i)``, so
the local readout of a coupler is ``dE/dW_e = -cos(phi_a - phi_b)``.  With the
free equilibria ``phi^0`` and the nudged ones ``phi^beta`` (relaxed from each
free state with the extra energy ``beta C``):

    dC/dW_e ~ -(1/beta)  [cos(dphi_e^beta)  - cos(dphi_e^0)]          (one-sided, O(beta) bias)
    dC/dW_e ~ -(1/2beta) [cos(dphi_e^+beta) - cos(dphi_e^-beta)]      (centred, O(beta^2) bias)

averaged over random initial states and the batch.  Gradient descent
``dW = -lr dC/dW = (lr/beta)[cos(dphi^beta) - cos(dphi^0)]`` is the update of
Wang, Wanjura & Marquardt.  Bias fields get the same contrast of their own
readouts.  The sign and the ``1/beta`` scale make the estimate a gradient of
the cost (checked against implicit differentiation in ``tests/test_xy.py``).

Costs (:class:`~labtrain.chip.xy.PhaseCost`): ``cosine`` ``C = sum_o (1 -
cos(phi_o - tau_o))/2`` and ``log`` ``C = -sum_o log[(1 + eps + cos(phi_o -
tau_o))/(2 + eps)]``.
"""

from __future__ import annotations

import numpy as np

from ..chip.base import Chip
from ..chip.xy import TORQUE_NUDGE, XY_MODEL, XY_PHASES, PhaseCost, TorqueNudge, XYMeasurement
from .base import GradientEstimate, GradientEstimator
from .fidelity import Fidelity, compare_gradients

__all__ = ["XYEquilibriumPropagation", "XYImplicitGradient", "phase_loss", "xy_gradient_fidelity"]


def _cost(cost: PhaseCost | str, eps: float) -> PhaseCost:
    return cost if isinstance(cost, PhaseCost) else PhaseCost(str(cost), eps)


def phase_loss(measurement: XYMeasurement, target_phases: np.ndarray, cost: PhaseCost) -> float:
    """Mean over examples and starts of the cost of the output phases."""
    out = measurement.output_phases
    return float(np.mean(cost.value(out, np.asarray(target_phases, float)[:, None, :])))


class XYEquilibriumPropagation(GradientEstimator):
    """EP on an XY chip: free relaxation from S random starts, nudged relaxation(s) from each.

    Parameters
    ----------
    beta : float
        Nudge strength (dimensionless multiplier of the cost in the energy; the
        torque on output ``o`` is ``-beta dC/dphi_o`` in rad/s).
    centred : bool
        Nudge with ``+beta`` and ``-beta`` (three phases, bias O(beta^2)).
    cost : {"cosine", "log"} or PhaseCost
        Output cost.
    eps : float
        ``eps`` of the ``log`` cost.
    """

    name = "xy_ep"
    requires = frozenset({XY_PHASES, TORQUE_NUDGE})
    loss_unit = "1"

    def __init__(self, beta: float, centred: bool = False, cost: PhaseCost | str = "cosine",
                 eps: float = 0.1) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)
        self.centred = bool(centred)
        self.cost = _cost(cost, eps)

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        targets = np.asarray(targets_v, float)
        free = chip.measure(inputs)
        b = self.beta
        plus = chip.measure(inputs, TorqueNudge(b, targets, self.cost, free.phases))
        d_plus = chip.energy_derivatives(plus.phases)
        if self.centred:
            minus = chip.measure(inputs, TorqueNudge(-b, targets, self.cost, free.phases))
            diff, phases = (d_plus - chip.energy_derivatives(minus.phases)) / (2 * b), 3
        else:
            diff, phases = (d_plus - chip.energy_derivatives(free.phases)) / b, 2
        gradient = diff.reshape(-1, diff.shape[-1]).mean(axis=0)
        return GradientEstimate(gradient, phase_loss(free, targets, self.cost), free.output_v, phases)

    def measurement_loss(self, measurement: XYMeasurement, targets_v: np.ndarray) -> float:
        """Mean cost over examples and random starts (:func:`phase_loss`), as in :meth:`estimate`."""
        return phase_loss(measurement, targets_v, self.cost)

    def describe(self) -> dict:
        return {"rule": self.name, "beta": self.beta, "centred": self.centred, "cost": self.cost.describe()}


class XYImplicitGradient(GradientEstimator):
    """Exact ``dC/dtheta`` at the measured free equilibria (implicit differentiation on the chip's model).

    The reference every XY estimator is compared with, and a baseline learner.
    """

    name = "xy_exact"
    requires = frozenset({XY_PHASES, XY_MODEL})
    loss_unit = "1"

    def __init__(self, cost: PhaseCost | str = "cosine", eps: float = 0.1) -> None:
        self.cost = _cost(cost, eps)

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        targets = np.asarray(targets_v, float)
        free = chip.measure(inputs)
        gradient = chip.exact_gradient(inputs, targets, self.cost, phases=free.phases)
        return GradientEstimate(gradient, phase_loss(free, targets, self.cost), free.output_v, 1)

    def measurement_loss(self, measurement: XYMeasurement, targets_v: np.ndarray) -> float:
        """Mean cost over examples and random starts (:func:`phase_loss`), as in :meth:`estimate`."""
        return phase_loss(measurement, targets_v, self.cost)

    def describe(self) -> dict:
        return {"rule": self.name, "cost": self.cost.describe()}


def xy_gradient_fidelity(chip: Chip, estimator: XYEquilibriumPropagation, inputs: np.ndarray,
                         target_phases: np.ndarray) -> tuple[Fidelity, np.ndarray, np.ndarray]:
    """Run ``estimator`` once and compare with the exact gradient at the *same* free equilibria.

    Returns ``(fidelity, estimate, exact)``.
    """
    chip.require({XY_MODEL}, "xy gradient fidelity")
    est = estimator.estimate(chip, inputs, target_phases)
    exact = chip.exact_gradient(inputs, target_phases, estimator.cost, phases=chip.last_free.phases)
    return compare_gradients(est.gradient, exact), est.gradient, exact
