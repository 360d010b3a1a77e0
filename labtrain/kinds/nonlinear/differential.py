"""Differential readout of a nonlinear resistive network: every output is the voltage between two nodes.

Physics.  The network has two output nodes per task output, ``o_k+`` and ``o_k-`` (physical outputs ``k`` and
``K + k`` of the :class:`~labtrain.physics.network.Network`, ``K`` task outputs).  Output ``k`` is read as the
voltage *between* them, ``y_k = v(o_k+) - v(o_k-)`` (a differential amplifier or a floating voltmeter).  A
passive network's node voltages are convex combinations of their neighbours', so a single-ended output
weights every hidden node positively; the difference of two such combinations gives each hidden node a signed
weight onto ``y_k`` -- the readout a layer of inverting amplifiers would give, with passive parts only.

Nudges.  EP's nudge current ``I_k = beta (t_k - y_k)`` is a *floating* current source across the pair: ``+I_k``
into ``o_k+``, ``-I_k`` into ``o_k-``.  Its energy is ``-I_k y_k``, so the nudged network is the free one plus
``beta C`` with ``C = 1/2 ||y - t||^2`` and EP's two-phase estimate is ``dC/dtheta`` exactly as on a single-ended
readout.  The adjoint of ``C`` injects ``+e_k`` / ``-e_k`` (``e = y - t``) at the two nodes.  A clamp of the
difference (coupled learning's nudge) would be a floating voltage source, which the solver does not model:
:meth:`DifferentialReadout.steady_state` refuses ``output_clamp_v``.

:class:`DifferentialReadout` wraps any :class:`~labtrain.kinds.nonlinear.model.NonlinearResistorNetwork`
(passive or :class:`~labtrain.kinds.nonlinear.amplified.AmplifiedNetwork`) and exposes the task's outputs:
``n_outputs`` is ``K``, currents and errors are per task output, and a steady state's ``output_v`` is ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labtrain.kinds.nonlinear.model import NonlinearResistorNetwork, NonlinearSteadyState

__all__ = ["DifferentialReadout", "DifferentialSteadyState", "pair_difference"]


def pair_difference(physical_outputs_v: np.ndarray) -> np.ndarray:
    """``y_k = v(o_k+) - v(o_k-)`` from the ``2K`` physical output voltages (``o+`` first), shape ``(..., K)``."""
    v = np.asarray(physical_outputs_v, float)
    if v.shape[-1] % 2:
        raise ValueError(f"a differential readout needs an even number of output nodes, got {v.shape[-1]}")
    k = v.shape[-1] // 2
    return v[..., :k] - v[..., k:]


@dataclass
class DifferentialSteadyState(NonlinearSteadyState):
    """A steady state whose ``output_v`` is the pair differences ``y`` (V); every node and edge as solved."""

    @property
    def output_v(self) -> np.ndarray:
        """``v(o_k+) - v(o_k-)`` per task output, shape S + (K,)."""
        return pair_difference(self.node_v[..., list(self.network.outputs)])


class DifferentialReadout:
    """A nonlinear network read differentially: task output ``k`` is ``v(o_k+) - v(o_k-)`` (module docstring).

    Parameters
    ----------
    model : NonlinearResistorNetwork
        The physical network, with ``2K`` output nodes (``o_0+ .. o_(K-1)+``, then ``o_0- .. o_(K-1)-``).

    Every attribute not defined here (parameters, bounds, element characteristics, ...) is the wrapped model's.
    """

    def __init__(self, model: NonlinearResistorNetwork) -> None:
        n_physical = len(model.network.outputs)
        if n_physical < 2 or n_physical % 2:
            raise ValueError(f"a differential readout needs an even number (>= 2) of output nodes, the network "
                             f"has {n_physical}")
        self.model = model
        self.n_outputs = n_physical // 2

    def __getattr__(self, name: str):
        if name == "model":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def with_parameters(self, parameters: np.ndarray) -> "DifferentialReadout":
        """The same network and readout at other parameters."""
        return DifferentialReadout(self.model.with_parameters(parameters))

    def physical_current(self, output_current_a: np.ndarray) -> np.ndarray:
        """Currents (A) into the ``2K`` output nodes for floating sources ``I_k`` across the pairs: ``[I, -I]``."""
        i = np.asarray(output_current_a, float)
        if i.shape[-1:] != (self.n_outputs,):
            raise ValueError(f"output_current_a must end in {self.n_outputs} task outputs, got shape {i.shape}")
        return np.concatenate([i, -i], axis=-1)

    def steady_state(self, inputs: np.ndarray, output_current_a: np.ndarray | None = None,
                     output_clamp_v: np.ndarray | None = None, **solver) -> DifferentialSteadyState:
        """Steady state with floating current sources ``output_current_a`` (A, per task output) across the pairs.

        Raises
        ------
        ValueError
            For ``output_clamp_v``: a clamp of a pair's difference is a floating voltage source, not modelled.
        """
        if output_clamp_v is not None:
            raise ValueError("a differential readout cannot clamp an output: holding v(o+) - v(o-) needs a "
                             "floating voltage source, which is not modelled (use a current nudge: ep, or analytic)")
        current = None if output_current_a is None else self.physical_current(output_current_a)
        state = self.model.steady_state(inputs, current, **solver)
        return DifferentialSteadyState(**{f: getattr(state, f) for f in state.__dataclass_fields__})

    def adjoint_gradient(self, inputs: np.ndarray, error_v: np.ndarray,
                         state: NonlinearSteadyState | None = None) -> np.ndarray:
        """``dC/dtheta`` for ``C = mean_b 1/2 ||y - t||^2`` given ``error_v = y - t`` (V, per task output)."""
        err = np.asarray(error_v, float)
        return self.model.adjoint_gradient(inputs, np.concatenate([err, -err], axis=-1), state)

    #: ``dC/dtheta`` and ``C = mean_b 1/2 ||y - t||^2`` (V^2): the network's own methods, which solve through
    #: :meth:`steady_state` (outputs ``y``) and differentiate through :meth:`adjoint_gradient` (errors ``[e, -e]``)
    exact_gradient = NonlinearResistorNetwork.exact_gradient
    loss = NonlinearResistorNetwork.loss

    def describe(self) -> dict:
        out = self.model.describe()
        out["readout"] = {"kind": "differential", "n_outputs": self.n_outputs,
                          "pairs": "task output k = v(output k) - v(output K + k)"}
        return out
