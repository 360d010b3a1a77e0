"""Equilibrium propagation for non-conservative (non-reciprocal) systems (docs/algorithms.md, section 8).

System ``ds/dt = F(s, theta)``, free fixed point ``s0``, Jacobian
``J = dF/ds`` at ``s0`` (not symmetric), ``A = (J - J^T)/2``.  Loss
``C = mean_b 1/2 |s_out - t|^2`` on the output units' states (squared error,
so the nudge is an affine force and every phase is a plain relaxation).

Exact gradient (implicit differentiation of ``F(s0, theta) = 0``)::

    ds0/dtheta = -J^{-1} dF/dtheta   =>   dC/dtheta = -(dF/dtheta)^T lambda,   lambda = J^{-T} dC/ds

Every rule below measures the free state and two learning-phase states at
``+beta`` and ``-beta`` (centred, bias O(beta^2); ``centred=False`` uses
``s0`` and ``+beta``, bias O(beta)), started from ``s0``:

* :class:`AsymmetricEP` (AEP, Scurria et al. 2026): learning phase
  ``ds/dt = F(s) - beta dC/ds - 2A(s - s0)``.  Differentiating its fixed point
  at ``beta = 0``: ``(J - 2A) delta = dC/ds`` and ``J - 2A = J^T``, so
  ``delta = (s^beta - s^-beta)/(2 beta) -> J^{-T} dC/ds = lambda`` and
  ``dC/dtheta ~ -(dF/dtheta)(s0)^T delta`` -- exact as ``beta -> 0`` for any
  ``J``, feedforward networks included.
* :class:`VectorFieldEP` (VF, Scellier, Goyal, Binas, Mesnard & Bengio,
  "Generalization of Equilibrium Propagation to Vector Field Dynamics",
  arXiv:1808.04873, 2018): learning phase ``ds/dt = F - beta dC/ds``, same
  estimate ``-(dF/dtheta)(s0)^T delta``.  Here ``delta -> J^{-1} dC/ds``: exact
  only when ``J`` is symmetric (their rule ``dW_ij ~ rho(s_j)(s_i^beta - s_i^0)/beta``
  is this with the gain ``rho'(s_i)`` folded into the state difference).
* :class:`PlainEP` (Scellier & Bengio 2017, centred as Laborieux et al. 2021):
  learning phase ``ds/dt = F - beta dC/ds``, estimate
  ``[dE/dtheta(s^beta) - dE/dtheta(s^-beta)]/(2 beta)`` with ``E`` the energy
  of the *reciprocal* network (every ``W_f``/``W_b`` read as a copy of one
  coupling, so both get the same local update ``-rho_i rho_j``).  On a
  reciprocal ``hopfield`` network it is the exact gradient w.r.t. the tied
  coupling (``LayeredTopology.tie`` of the exact gradient) and keeps
  ``W_b = W_f^T``; on a non-reciprocal network it is biased.

* :class:`DyadicEP`: EP on an energy over the augmented ("dyadic") state
  ``(s, l)``: ``E(s, l) = -l . F(s, theta) + beta C(s)``.  Its stationary point
  has ``F(s) = 0`` (the free state, whatever ``beta``) and
  ``J^T l = beta dC/ds``: the second member of the dyad is a mirror copy of
  the network with transposed (linearised) couplings, relaxed with the nudge
  ``beta (t - s_out)`` as its drive (:meth:`NonReciprocalChip.relax_mirror`).
  The EP theorem applied to this energy gives
  ``dC/dtheta = d/dbeta dE/dtheta = -(dF/dtheta)^T l / beta`` -- the same
  estimate as AEP with ``delta = l / beta`` (AEP's ``s^beta - s0`` *is* the
  mirror state, realised inside the one network by the ``-2A`` force), but
  exact at any ``beta`` because the mirror is linear.  Scurria et al. describe
  their second algorithm as "derived using a variational formulation that
  generates the learning dynamics through an energy function defined over an
  augmented state space" and equivalent to AEP; their equations were not
  available to us, so this is our derivation of that idea, verified against
  the implicit gradient and AEP in tests/test_nonreciprocal.py.
"""

from __future__ import annotations

import numpy as np

from labtrain.chip.base import NETWORK_MODEL, Chip
from labtrain.kinds.nonreciprocal.chip import ADJOINT_MIRROR, ANTISYMMETRIC_FEEDBACK, STATE_READOUT
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error
from labtrain.protocols.fidelity import Fidelity, compare_gradients

__all__ = ["NonReciprocalEP", "AsymmetricEP", "DyadicEP", "PlainEP", "VectorFieldEP", "ImplicitGradient",
           "nonreciprocal_exact_gradient", "nonreciprocal_fidelity", "NONRECIPROCAL_RULES", "make_nonreciprocal_rule"]


class NonReciprocalEP(GradientEstimator):
    """Shared three-phase measurement (free, +beta, -beta) of the non-reciprocal EP rules.

    Parameters
    ----------
    beta : float
        Nudge strength (dimensionless: force per unit of output error).
    centred : bool
        Nudge at ``+beta`` and ``-beta`` (default) instead of ``0`` and ``+beta``.
    """

    correction = False
    requires = frozenset({STATE_READOUT})
    loss_unit = "1"

    def __init__(self, beta: float, centred: bool = True) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)
        self.centred = bool(centred)
        self.dropped_examples = 0

    def phases(self, chip: Chip, inputs: np.ndarray, targets: np.ndarray):
        """Free measurement, learning-phase states at ``+beta`` and at ``-beta`` (or the free state),
        the difference width and a mask of the examples whose every phase converged."""
        x = np.atleast_2d(np.asarray(inputs, float))
        free = chip.relax(x)
        feedback = chip.antisymmetric_feedback(x, free.states) if self.correction else None
        plus = chip.relax(x, chip.output_nudge(targets, self.beta) + feedback, start=free.states)
        ok = free.converged & plus.converged
        if self.centred:
            minus = chip.relax(x, chip.output_nudge(targets, -self.beta) + feedback, start=free.states)
            return free, plus.states, minus.states, 2.0 * self.beta, ok & minus.converged
        return free, plus.states, free.states, self.beta, ok

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        """Three (centred) or two phases; examples with an unconverged phase are left out of the average
        (counted in ``dropped_examples``; a zero gradient if none is left)."""
        x = np.atleast_2d(np.asarray(inputs, float))
        free, plus, minus, width, ok = self.phases(chip, x, targets_v)
        if not ok.all():
            self.dropped_examples += int(np.sum(~ok))
        if ok.any():
            gradient = self.contrast(chip, x[ok], free.states[ok], plus[ok], minus[ok], width)
        else:
            gradient = np.zeros(chip.parameter_spec.size)
        n_phases = 3 if self.centred else 2
        return GradientEstimate(gradient, half_squared_error(free.output_v, targets_v), free.output_v, n_phases)

    def contrast(self, chip, inputs, free, plus, minus, width) -> np.ndarray:
        """``-(dF/dtheta)(s0)^T delta`` with ``delta = (plus - minus) / width``."""
        return -chip.local_force_gradient(inputs, free, (plus - minus) / width)

    def describe(self) -> dict:
        return {"rule": self.name, "beta": self.beta, "centred": self.centred}


class AsymmetricEP(NonReciprocalEP):
    """Asymmetric EP: learning phase with the extra ``-2A(s - s0)`` force; exact as ``beta -> 0``."""

    name = "aep"
    correction = True
    requires = frozenset({STATE_READOUT, ANTISYMMETRIC_FEEDBACK})


class VectorFieldEP(NonReciprocalEP):
    """Vector-field EP (Scellier et al. 2018): plain nudge, ``-(dF/dtheta)^T delta``; biased if ``J != J^T``."""

    name = "vf_ep"


class PlainEP(NonReciprocalEP):
    """Plain (centred) EP with the reciprocal network's energy; biased when the couplings are not reciprocal."""

    name = "plain_ep"

    def contrast(self, chip, inputs, free, plus, minus, width) -> np.ndarray:
        return (chip.local_energy_gradient(inputs, plus) - chip.local_energy_gradient(inputs, minus)) / width


class DyadicEP(NonReciprocalEP):
    """Dyadic EP: free state plus the mirror copy's stationary state at ``+beta`` (and ``-beta``, centred).

    ``gradient = -(dF/dtheta)(s0)^T (l^+ - l^-) / (2 beta)``; the mirror is linear,
    so centred and one-sided agree and the estimate does not depend on ``beta``
    (beyond read noise, which ``beta`` lifts above).
    """

    name = "dyadic_ep"
    requires = frozenset({STATE_READOUT, ADJOINT_MIRROR})

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        x = np.atleast_2d(np.asarray(inputs, float))
        t = np.atleast_2d(np.asarray(targets_v, float))
        free = chip.relax(x)
        out = chip.topology.output_slice
        drive = np.zeros_like(free.states)
        drive[:, out] = self.beta * (t - free.states[:, out])
        plus = chip.relax_mirror(x, free.states, drive)
        ok = free.converged & plus.converged
        if self.centred:
            minus = chip.relax_mirror(x, free.states, -drive)
            ok &= minus.converged
            delta = (plus.states - minus.states) / (2.0 * self.beta)
        else:
            delta = plus.states / self.beta
        self.dropped_examples += int(np.sum(~ok))
        if ok.any():
            gradient = -chip.local_force_gradient(x[ok], free.states[ok], delta[ok])
        else:
            gradient = np.zeros(chip.parameter_spec.size)
        n_phases = 3 if self.centred else 2
        return GradientEstimate(gradient, half_squared_error(free.output_v, t), free.output_v, n_phases)


class ImplicitGradient(GradientEstimator):
    """Exact ``dC/dtheta`` from the chip's model (implicit differentiation): the backprop-equivalent reference."""

    name = "implicit"
    requires = frozenset({NETWORK_MODEL, STATE_READOUT})
    loss_unit = "1"

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        free = chip.relax(inputs)
        model = chip.network_model()
        gradient = model.exact_gradient(inputs, targets_v, states=free.states)
        return GradientEstimate(gradient, half_squared_error(free.output_v, targets_v), free.output_v, 1)


NONRECIPROCAL_RULES = {"aep": AsymmetricEP, "dyadic_ep": DyadicEP, "plain_ep": PlainEP, "vf_ep": VectorFieldEP}


def make_nonreciprocal_rule(name: str, beta: float = 0.01, centred: bool = True) -> GradientEstimator:
    """Build ``aep``, ``plain_ep``, ``vf_ep`` (with ``beta``) or ``implicit`` by name."""
    if name == "implicit":
        return ImplicitGradient()
    if name not in NONRECIPROCAL_RULES:
        choices = sorted(NONRECIPROCAL_RULES) + ["implicit"]
        raise ValueError(f"unknown non-reciprocal rule {name!r}; choose from {choices}")
    return NONRECIPROCAL_RULES[name](beta, centred)


def nonreciprocal_exact_gradient(chip: Chip, inputs: np.ndarray, targets: np.ndarray, tied: bool = False) -> np.ndarray:
    """Exact ``dC/dtheta`` of a chip's noise-free model; ``tied``: w.r.t. reciprocal couplings (``topology.tie``)."""
    chip.require({NETWORK_MODEL}, "exact gradient")
    model = chip.network_model()
    g = model.exact_gradient(inputs, targets)
    return model.topology.tie(g) if tied else g


def nonreciprocal_fidelity(chip: Chip, estimator: GradientEstimator, inputs: np.ndarray, targets: np.ndarray,
                           tied: bool = False) -> Fidelity:
    """Run ``estimator`` once and compare with :func:`nonreciprocal_exact_gradient`."""
    exact = nonreciprocal_exact_gradient(chip, inputs, targets, tied)
    return compare_gradients(estimator.estimate(chip, inputs, targets).gradient, exact)
