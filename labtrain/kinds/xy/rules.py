"""Equilibrium propagation for XY oscillator networks (docs/algorithms.md, section 7).

Energy ``E = -sum_e W_e cos(phi_a - phi_b) - sum_i h_i cos(phi_i - psi_i)``, so
the local readout of a coupler is ``dE/dW_e = -cos(phi_a - phi_b)``.  With the
free equilibria ``phi^0`` and the nudged ones ``phi^beta`` (relaxed from each
free state with the extra energy ``beta C``):

    dC/dW_e ~ -(1/beta)  [cos(dphi_e^beta)  - cos(dphi_e^0)]          (one-sided, O(beta) bias)
    dC/dW_e ~ -(1/2beta) [cos(dphi_e^+beta) - cos(dphi_e^-beta)]      (centred, O(beta^2) bias)

averaged over random initial states (fresh each step, ``XYChip.measure_free``;
evaluation uses the chip's fixed per-example starts) and the batch.  Gradient descent
``dW = -lr dC/dW = (lr/beta)[cos(dphi^beta) - cos(dphi^0)]`` is the update of
Wang, Wanjura & Marquardt.  Bias fields get the same contrast of their own
readouts.  The sign and the ``1/beta`` scale make the estimate a gradient of
the cost (checked against implicit differentiation in ``tests/test_xy.py``).

Costs (:class:`~labtrain.kinds.xy.chip.PhaseCost`): ``cosine`` ``C = sum_o (1 -
cos(phi_o - tau_o))/2`` and ``log`` ``C = -sum_o log[(1 + eps + cos(phi_o -
tau_o))/(2 + eps)]``.

Choosing beta.  The O(beta) bias of one-sided EP scales with ``beta`` times
the cost's curvature (``PhaseCost.max_curvature``: 1/2 for the cosine cost,
``1/eps`` = 10 for the log cost at eps 0.1) over the stiffness of the network's
softest modes.  Small dense networks are stiff: on all-to-all N = 6 the
estimate at beta = 0.1 (log cost) has cosine 0.997 with the exact gradient.  A
5x5 lattice has soft long-wavelength modes: at beta = 0.1 with the log cost
the cosine is 0.07-0.82 (seeds 0-2 at initialisation, centred EP 0.17-0.92)
and XOR training with it fails; at beta = 0.01 (log) or with the cosine cost
at beta = 0.1 it is 0.985-1.000 (``tests/test_xy.py``).
"""

from __future__ import annotations

import numpy as np

from labtrain.chip.base import Chip
from labtrain.kinds.xy.chip import TORQUE_NUDGE, XY_MODEL, XY_PHASES, PhaseCost, TorqueNudge, XYMeasurement
from labtrain.protocols.base import GradientEstimate, GradientEstimator
from labtrain.protocols.fidelity import Fidelity, compare_gradients

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
    max_shift_rad : float, optional
        Basin-jump guard.  A start whose nudged equilibrium differs from its
        free one by more than ``max_shift_rad`` (circular distance, on any
        oscillator) has left its basin: its contrast is not a derivative
        (it is O(1) / beta) and it gets zero weight in the average.  The test
        uses only the phases every EP run reads anyway.  ``None``: keep all.

    Notes
    -----
    On lattices some random starts sit next to a saddle-node bifurcation and
    a nudge of beta = 0.01 moves them by 1.5-3 rad (instead of ~0.012 rad),
    giving gradient spikes of norm 10-40 that inflate Adam's second moment and
    stall training (XOR on ``xy_lattice(5, 5)``: 0/10 seeds without the guard).
    :attr:`last_dropped` is the number of starts the last estimate dropped.
    """

    name = "xy_ep"
    requires = frozenset({XY_PHASES, TORQUE_NUDGE})
    loss_unit = "1"

    def __init__(self, beta: float, centred: bool = False, cost: PhaseCost | str = "cosine",
                 eps: float = 0.1, max_shift_rad: float | None = None) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if max_shift_rad is not None and not max_shift_rad > 0:
            raise ValueError(f"max_shift_rad must be > 0 or None, got {max_shift_rad}")
        self.beta = float(beta)
        self.centred = bool(centred)
        self.cost = _cost(cost, eps)
        self.max_shift_rad = None if max_shift_rad is None else float(max_shift_rad)
        self.last_dropped = 0

    def _jumped(self, free: np.ndarray, nudged: np.ndarray) -> np.ndarray:
        """(B, S) mask of starts whose nudged state moved more than ``max_shift_rad`` on some oscillator."""
        shift = np.abs(np.angle(np.exp(1j * (np.asarray(nudged) - np.asarray(free))))).max(axis=-1)
        return shift > self.max_shift_rad

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        targets = np.asarray(targets_v, float)
        free = chip.measure_free(inputs)          # fresh random starts (the run reseeds per step)
        b = self.beta
        plus = chip.measure(inputs, TorqueNudge(b, targets, self.cost, free.phases))
        d_plus = chip.energy_derivatives(plus.phases)
        jumped = np.zeros(free.phases.shape[:2], bool)
        if self.max_shift_rad is not None:
            jumped |= self._jumped(free.phases, plus.phases)
        if self.centred:
            minus = chip.measure(inputs, TorqueNudge(-b, targets, self.cost, free.phases))
            if self.max_shift_rad is not None:
                jumped |= self._jumped(free.phases, minus.phases)
            diff, phases = (d_plus - chip.energy_derivatives(minus.phases)) / (2 * b), 3
        else:
            diff, phases = (d_plus - chip.energy_derivatives(free.phases)) / b, 2
        diff = np.where(jumped[..., None], 0.0, diff)
        self.last_dropped = int(jumped.sum())
        gradient = diff.reshape(-1, diff.shape[-1]).mean(axis=0)
        return GradientEstimate(gradient, phase_loss(free, targets, self.cost), free.output_v, phases)

    def measurement_loss(self, measurement: XYMeasurement, targets_v: np.ndarray) -> float:
        """Mean cost over examples and random starts (:func:`phase_loss`), as in :meth:`estimate`."""
        return phase_loss(measurement, targets_v, self.cost)

    def describe(self) -> dict:
        out = {"rule": self.name, "beta": self.beta, "centred": self.centred, "cost": self.cost.describe()}
        if self.max_shift_rad is not None:
            out["max_shift_rad"] = self.max_shift_rad
        return out


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
        free = chip.measure_free(inputs)
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
