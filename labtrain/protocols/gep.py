"""Two-phase contrastive rules: the generalized-EP family (EP and coupled learning).

Every member measures a free state ``s0`` and one (or, centred, two) nudged
states ``s_beta`` and estimates

    dC/dtheta ~ (1/beta)   [dE/dtheta(s_beta)  - dE/dtheta(s0)]        (one-sided)
    dC/dtheta ~ (1/2 beta) [dE/dtheta(s_+beta) - dE/dtheta(s_-beta)]   (centred)

with the local energy derivative ``dE/dg_e = 1/2 dv_e^2`` of a resistor
network (``E`` = half the dissipated power).  Members differ in *how* they
nudge, which fixes the order ``k`` at which the nudge perturbs the energy at
the free equilibrium (ALGORITHMS.md section 4):

* ``k = 1`` -- equilibrium propagation: a current ``beta (t - v_O)`` is
  injected at the outputs (``beta`` in siemens).  It descends the true loss;
  one-sided bias O(beta), centred O(beta^2) (exact for a linear network).
* ``k = 2`` -- coupled learning: the outputs are held at
  ``v_O + eta (t - v_O)``.  It descends a different objective that agrees with
  the loss to leading order: its gradient is the EP gradient with the error
  weighted by the outputs' effective conductance matrix (parallel to the true
  gradient for a single output).

The ``1/beta`` normalisation makes every member an O(1) gradient estimate, so
one learning rate means the same thing across the family.
"""

from __future__ import annotations

import abc

import numpy as np

from labtrain.chip.base import CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, Chip, ClampNudge, CurrentNudge, Measurement
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error

__all__ = ["GEPRule", "EquilibriumPropagation", "CoupledLearning", "gep_family"]


class GEPRule(GradientEstimator):
    """A member of the generalized-EP family.

    Parameters
    ----------
    strength : float
        Nudge strength (``beta`` in S for EP, ``eta`` dimensionless for CL).
    centred : bool
        Use the symmetric +/- nudge (two nudged phases, bias one order lower).
    """

    order: int = 0
    strength_name: str = "strength"

    def __init__(self, strength: float, centred: bool = False) -> None:
        if not strength > 0:
            raise ValueError(f"{self.strength_name} must be > 0, got {strength}")
        self.strength = float(strength)
        self.centred = bool(centred)

    @property
    def label(self) -> str:
        return self.name + (" centred" if self.centred else "")

    @property
    def setting(self) -> str:
        return f"{self.strength_name} = {self.strength:g}"

    @abc.abstractmethod
    def nudge(self, free: Measurement, targets_v: np.ndarray, strength: float) -> CurrentNudge | ClampNudge:
        """The nudge applied in the learning phase at signed ``strength``."""

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        free = chip.measure(inputs, edge_drops=True)
        s = self.strength
        plus = chip.measure(inputs, self.nudge(free, targets_v, s), edge_drops=True)
        if self.centred:
            minus = chip.measure(inputs, self.nudge(free, targets_v, -s), edge_drops=True)
            diff = plus.edge_drops.mean_square() - minus.edge_drops.mean_square()
            gradient, phases = 0.5 * diff / (2 * s), 3
        else:
            diff = plus.edge_drops.mean_square() - free.edge_drops.mean_square()
            gradient, phases = 0.5 * diff / s, 2
        return GradientEstimate(gradient, half_squared_error(free.output_v, targets_v), free.output_v, phases)

    def describe(self) -> dict:
        return {"rule": self.name, "gep_order": self.order, self.strength_name: self.strength,
                "centred": self.centred}


class EquilibriumPropagation(GEPRule):
    """EP (GEP order 1): inject ``beta_s * (t - v_O)`` amperes at the outputs."""

    name = "ep"
    order = 1
    strength_name = "beta_s"
    requires = frozenset({EDGE_DROPS, CURRENT_NUDGE})

    def __init__(self, beta_s: float, centred: bool = False) -> None:
        super().__init__(beta_s, centred)

    def nudge(self, free: Measurement, targets_v: np.ndarray, strength: float) -> CurrentNudge:
        return CurrentNudge(strength * (targets_v - free.output_v))


class CoupledLearning(GEPRule):
    """Coupled learning (GEP order 2): clamp the outputs at ``v_O + eta (t - v_O)``.

    With plain SGD at learning rate ``lr`` the update is
    ``dg = (lr / 2 eta) [dv_F^2 - dv_C^2]``: Stern et al.'s rule with ``alpha = lr / 2``.
    """

    name = "cl"
    order = 2
    strength_name = "eta"
    requires = frozenset({EDGE_DROPS, CLAMP_NUDGE})

    def __init__(self, eta: float, centred: bool = False) -> None:
        super().__init__(eta, centred)

    def nudge(self, free: Measurement, targets_v: np.ndarray, strength: float) -> ClampNudge:
        return ClampNudge(free.output_v + strength * (targets_v - free.output_v))


def gep_family(beta_s: float, eta: float) -> list[GEPRule]:
    """Every GEP member (one-sided and centred EP and CL) at the given strengths."""
    return [EquilibriumPropagation(beta_s), EquilibriumPropagation(beta_s, centred=True),
            CoupledLearning(eta), CoupledLearning(eta, centred=True)]
