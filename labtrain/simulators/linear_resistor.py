"""Steady state of a linear resistor network (Kirchhoff's laws).

The reduced Laplacian ``L_FF`` (F = nodes whose voltage is not imposed) is
factored once per set of conductances.  Because the number of terminals is
small, the model then solves once for the *terminal response*: the node
voltages produced by a unit drive on every terminal.  Any batch of inputs,
output currents and output clamps, in any phase, is a matrix product with that
response; a clamp is realised exactly as the output current that holds the
clamped voltages (a Schur complement on the outputs), so clamped phases reuse
the same factorisation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..network import Network
from ..readouts import EdgeDrops

__all__ = ["LinearResistorNetwork", "SteadyState", "INPUT_MODES"]

INPUT_MODES = ("voltage", "current")


class SteadyState:
    """A batch of DC steady states, stored as terminal drives ``coeffs`` (k x B)."""

    def __init__(self, model: "LinearResistorNetwork", coeffs: np.ndarray,
                 clamp_current_a: np.ndarray | None = None) -> None:
        self.model = model
        self.coeffs = coeffs
        self.clamp_current_a = clamp_current_a

    @property
    def n_examples(self) -> int:
        return self.coeffs.shape[1]

    @property
    def node_v(self) -> np.ndarray:
        """Node voltages, shape (B, n_nodes)."""
        return (self.model.response @ self.coeffs).T

    @property
    def output_v(self) -> np.ndarray:
        """Output-node voltages, shape (B, n_outputs)."""
        return (self.model.response[self.model.network.outputs, :] @ self.coeffs).T

    @property
    def edge_drops(self) -> EdgeDrops:
        """Edge voltage drops ``v_tail - v_head`` (factored, no B x m array is built)."""
        return EdgeDrops.factored(self.model.edge_response, self.coeffs)


class LinearResistorNetwork:
    """Linear resistor network at fixed conductances.

    Parameters
    ----------
    network : Network
        Topology and terminal roles.
    conductance_s : ndarray, shape (n_edges,)
        Edge conductances in siemens (must be > 0).
    input_mode : {"voltage", "current"}
        Inputs are ideal voltage sources (default) or current sources.

    Notes
    -----
    Drive columns are ordered ``[inputs..., outputs...]``: input columns carry
    volts (voltage mode) or amperes (current mode); output columns carry the
    current injected into each output node in amperes.
    """

    def __init__(self, network: Network, conductance_s: np.ndarray, input_mode: str = "voltage") -> None:
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
        g = np.asarray(conductance_s, float)
        if g.shape != (network.n_edges,):
            raise ValueError(f"expected {network.n_edges} conductances, got shape {g.shape}")
        if not np.all(g > 0):
            raise ValueError("conductances must be positive")
        self.network = network
        self.conductance_s = g
        self.input_mode = input_mode
        n = network.n_nodes
        inputs, outputs = list(network.inputs), list(network.outputs)
        fixed = list(network.grounds) + (inputs if input_mode == "voltage" else [])
        free_mask = np.ones(n, bool)
        free_mask[fixed] = False
        free = np.flatnonzero(free_mask)
        position = np.full(n, -1)
        position[free] = np.arange(len(free))

        inc = network.incidence().tocsr()
        lap = (inc @ sp.diags(g) @ inc.T).tocsr()
        l_ff = lap[free][:, free].tocsc()
        self._factor = spla.splu(l_ff, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                 options={"SymmetricMode": True})
        n_in, n_out = len(inputs), len(outputs)
        rhs = np.zeros((len(free), n_in + n_out))
        if input_mode == "voltage":
            rhs[:, :n_in] = -lap[free][:, inputs].toarray()
        else:
            rhs[position[inputs], np.arange(n_in)] = 1.0
        rhs[position[outputs], n_in + np.arange(n_out)] = 1.0
        response = np.zeros((n, n_in + n_out))
        response[free] = self._factor.solve(rhs)
        if input_mode == "voltage":
            response[inputs, np.arange(n_in)] = 1.0
        self.response = response
        self._incidence = inc
        self._edge_response: np.ndarray | None = None
        # Output-output block of the response to output currents (ohms): SPD.
        self._z_out = response[outputs][:, n_in:]

    @property
    def n_inputs(self) -> int:
        return len(self.network.inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.network.outputs)

    @property
    def edge_response(self) -> np.ndarray:
        """Edge drops per unit terminal drive, shape (n_edges, n_inputs + n_outputs)."""
        if self._edge_response is None:
            self._edge_response = np.asarray(self._incidence.T @ self.response)
        return self._edge_response

    def steady_state(self, inputs: np.ndarray, output_current_a: np.ndarray | None = None,
                     output_clamp_v: np.ndarray | None = None) -> SteadyState:
        """Steady state for a batch.

        Parameters
        ----------
        inputs : ndarray, shape (B, n_inputs)
            Input drive (volts or amperes by ``input_mode``).
        output_current_a : ndarray, shape (B, n_outputs), optional
            Current injected into the outputs (e.g. an EP nudge).
        output_clamp_v : ndarray, shape (B, n_outputs), optional
            Hold the outputs at these voltages (coupled-learning clamp).
            Exclusive with ``output_current_a``.
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        n_in, n_out = self.n_inputs, self.n_outputs
        if x.shape[1] != n_in:
            raise ValueError(f"expected {n_in} input values per example, got {x.shape[1]}")
        coeffs = np.zeros((n_in + n_out, x.shape[0]))
        coeffs[:n_in] = x.T
        clamp_current = None
        if output_clamp_v is not None:
            if output_current_a is not None:
                raise ValueError("give output_current_a or output_clamp_v, not both")
            clamp = np.atleast_2d(np.asarray(output_clamp_v, float))
            free_out = self.response[list(self.network.outputs), :n_in] @ x.T
            clamp_current = np.linalg.solve(self._z_out, clamp.T - free_out)
            coeffs[n_in:] = clamp_current
            clamp_current = clamp_current.T
        elif output_current_a is not None:
            coeffs[n_in:] = np.atleast_2d(np.asarray(output_current_a, float)).T
        return SteadyState(self, coeffs, clamp_current)

    def power_w(self, state: SteadyState) -> np.ndarray:
        """Dissipated power ``sum_e g_e dv_e^2`` per example (watts)."""
        dv = state.edge_drops.values
        return dv**2 @ self.conductance_s
