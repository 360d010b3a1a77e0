"""Two-phase contrastive rules: the generalized-EP family (EP and coupled learning).

Every member measures a free state ``s0`` and one (or, centred, two) nudged
states ``s_beta`` and estimates::

    dC/dtheta ~ (1/beta)   [dE/dtheta(s_beta)  - dE/dtheta(s0)]        (one-sided)
    dC/dtheta ~ (1/2 beta) [dE/dtheta(s_+beta) - dE/dtheta(s_-beta)]   (centred)

with the local energy derivative ``dE/dg_e = 1/2 dv_e^2`` of a resistor
network (``E`` = half the dissipated power) -- on a nonlinear network ``E`` is
the total co-content and the chip's ``energy_parameter_slope`` gives
``dE/dtheta`` of each trainable element (a gate voltage's as well).  Members differ in *how* they
nudge, which fixes the order ``k`` at which the nudge perturbs the energy at
the free equilibrium (docs/algorithms.md, section 4):

* ``k = 1`` -- equilibrium propagation: a current ``beta (t - v_O)`` is
  injected at the outputs (``beta`` in siemens).  It descends the true loss;
  one-sided bias O(beta), centred O(beta^2) (exact for a linear network).
* ``k = 2`` -- coupled learning: the outputs are held at
  ``v_O + eta (t - v_O)``.  It descends a different objective that agrees with
  the loss to leading order: its gradient is the EP gradient with the error
  weighted by the outputs' effective conductance matrix (parallel to the true
  gradient for a single output).

Scale: dividing by the nudge strength does *not* put the members on one
scale.  What each estimate is (``tests/test_gep_scale.py``):

* EP: ``dC/dg`` itself, in V^2/S, times ``1 + O(beta / g)`` (one-sided; the
  bias is ``(beta/2) mean_b (B^T u)^2``); centred EP is exact on a linear
  network.
* CL: ``Y_out dC/dg`` for one output, in V^2 -- the gradient times the
  output's effective conductance to ground with the input sources at zero
  (about 1e-4 S at the default 10 uS .. 1 mS conductances: the estimate is
  ~1e-4 of EP's); for several outputs, the adjoint gradient driven by
  ``Y (v_O - t)`` with ``Y`` the outputs' effective conductance matrix.

So a learning rate is in each member's own units.  The SGD optimiser
(:class:`~labtrain.training.optim.SGD`) steps in normalised coordinates,
``dg = -lr span^2 * estimate`` (``span`` = each conductance's allowed range),
so ``lr`` is in 1/V^2 for EP and in 1/(V^2 S) for CL; CL at
``lr / Y_out`` takes EP's step at ``lr``.  Adam divides by the gradient's
running RMS, which removes a constant scale only where the normalised
gradient ``span * estimate`` is well above its ``eps`` (1e-8): CL's are
~1e-9 .. 1e-5 at the default range, so pass a smaller ``eps`` (or rescale)
for CL with Adam.
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
        energy_slope = chip.energy_parameter_slope  # dE/dtheta at measured drops (1/2 dv^2 for a conductance)
        if self.centred:
            minus = chip.measure(inputs, self.nudge(free, targets_v, -s), edge_drops=True)
            diff = energy_slope(plus.edge_drops) - energy_slope(minus.edge_drops)
            gradient, phases = diff / (2 * s), 3
        else:
            diff = energy_slope(plus.edge_drops) - energy_slope(free.edge_drops)
            gradient, phases = diff / s, 2
        return GradientEstimate(gradient, half_squared_error(free.output_v, targets_v), free.output_v, phases)

    def describe(self) -> dict:
        return {"rule": self.name, "gep_order": self.order, self.strength_name: self.strength,
                "centred": self.centred}


class EquilibriumPropagation(GEPRule):
    """EP (GEP order 1): inject ``beta_s * (t - v_O)`` amperes at the outputs.

    The estimate is ``dC/dg`` (V^2/S) with a one-sided bias
    ``(beta_s / 2) mean_b (B^T u)^2`` (relative size ~ ``beta_s / g``); centred
    EP has none on a linear network.  With plain SGD at learning rate ``lr``
    (1/V^2) the update is ``dg = -lr span^2 dC/dg``, ``span`` the allowed range
    of each conductance (S).
    """

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

    The estimate ``(1 / 2 eta) mean_b [dv_C^2 - dv_F^2]`` is not ``dC/dg``: it is
    ``Y_out dC/dg + O(eta)`` for one output (V^2; ``Y_out`` = the output's
    effective conductance with the input sources at zero, S), the adjoint
    gradient driven by ``Y (v_O - t)`` for several (docs/algorithms.md, section 4).

    With plain SGD at learning rate ``lr`` (1/(V^2 S)) the update is
    ``dg = (lr span^2 / 2 eta) [dv_F^2 - dv_C^2]``, ``span`` the allowed range of
    each conductance (S): Stern et al.'s rule with ``alpha = lr span^2 / 2``
    (S/V^2).  EP's step at ``lr_ep`` is CL's at ``lr_ep / Y_out``.
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
