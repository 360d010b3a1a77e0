"""Steady state of a linear resistor network (Kirchhoff's laws).

The reduced Laplacian ``L_FF`` (F = nodes whose voltage is not imposed) is
factored once per set of conductances.  Because the number of terminals is
small, the model then solves once for the *terminal response*: the node
voltages produced by a unit drive on every terminal.  Any batch of inputs,
output currents and output clamps, in any phase, is a matrix product with that
response; a clamp is realised exactly as the output current that holds the
clamped voltages (a Schur complement on the outputs), so clamped phases reuse
the same factorisation.

What depends on the topology only -- the incidence matrix, the map from
conductances to the entries of ``L_FF``, the solver's fill-reducing ordering
and symbolic analysis -- is computed once per network, input mode and solver
and cached, so refactoring after a parameter update is a sparse matrix-vector
product plus the numeric factorisation (:class:`labtrain.linalg.SPDSolver`:
sparse Cholesky, SuperLU, or for large random graphs, whose factors fill in,
preconditioned CG warm-started from the last response).  With a direct solver
every factorisation takes the same path, so a result never depends on what
was factored before (a resumed run reproduces an uninterrupted one bit for
bit); with CG it does, within the solver tolerance.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp

from labtrain.linalg import SPDFactor, SPDSolver, check_solver, csc_assembly, laplacian_terms
from labtrain.physics.network import Network, NetworkTerminals
from labtrain.physics.readouts import EdgeDrops

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


class LinearResistorNetwork(NetworkTerminals):
    """Linear resistor network at fixed conductances.

    Parameters
    ----------
    network : Network
        Topology and terminal roles.
    conductance_s : ndarray, shape (n_edges,)
        Edge conductances in siemens (must be > 0).
    input_mode : {"voltage", "current"}
        Inputs are ideal voltage sources (default) or current sources.
    solver : {"auto", "superlu", "cholmod", "cg"}
        How ``L_FF`` is solved (:mod:`labtrain.linalg.spd`): ``auto`` factors
        small and mesh-like networks directly (sparse Cholesky when
        scikit-sparse is installed, else SuperLU) and solves large random
        graphs with preconditioned CG warm-started from the last update.
    rtol : float, optional
        CG tolerance, ``||b - L_FF x|| <= rtol ||b||`` per terminal column
        (default 1e-10: CL/EP gradients within a cosine of 1 - 1e-12 of the
        direct solve's on 10^4..10^5-node random graphs, see
        ``benchmarks/bench_scaling.py``).  Ignored by direct solvers.

    Notes
    -----
    Drive columns are ordered ``[inputs..., outputs...]``: input columns carry
    volts (voltage mode) or amperes (current mode); output columns carry the
    current injected into each output node in amperes.
    """

    def __init__(self, network: Network, conductance_s: np.ndarray, input_mode: str = "voltage", *,
                 solver: str = "auto", rtol: float | None = None) -> None:
        check_solver(solver)
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
        structure = _structure(network, input_mode, solver, rtol)
        self.solver = structure.solver.method
        inputs, outputs = list(network.inputs), list(network.outputs)
        n_in, n_out = len(inputs), len(outputs)
        rhs = np.zeros((len(structure.free), n_in + n_out))
        if input_mode == "voltage":
            rhs[:, :n_in] = structure.input_coupling(g)
        else:
            rhs[structure.position[inputs], np.arange(n_in)] = 1.0
        rhs[structure.position[outputs], n_in + np.arange(n_out)] = 1.0
        self._factor, solution = structure.factor_and_solve(g, rhs)
        response = np.zeros((network.n_nodes, n_in + n_out))
        response[structure.free] = solution
        if input_mode == "voltage":
            response[inputs, np.arange(n_in)] = 1.0
        self.response = response
        self._incidence = structure.incidence
        self._incidence_t = structure.incidence_t
        self._edge_response: np.ndarray | None = None
        # Output-output block of the response to output currents (ohms): SPD.
        self._z_out = response[outputs][:, n_in:]

    @property
    def edge_response(self) -> np.ndarray:
        """Edge drops per unit terminal drive, shape (n_edges, n_inputs + n_outputs)."""
        if self._edge_response is None:
            self._edge_response = np.asarray(self._incidence_t @ self.response)
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


# ------------------------------------------------------------ topology cache
_STRUCTURES: "weakref.WeakKeyDictionary[Network, dict[tuple, _Structure]]" = weakref.WeakKeyDictionary()


def _structure(network: Network, input_mode: str, solver: str = "auto", rtol: float | None = None) -> "_Structure":
    """The cached :class:`_Structure` of ``network`` in ``input_mode`` with ``solver`` (built on first use)."""
    per_key = _STRUCTURES.get(network)
    if per_key is None:
        per_key = _STRUCTURES.setdefault(network, {})
    key = (input_mode, solver, rtol)
    structure = per_key.get(key)
    if structure is None:
        structure = per_key.setdefault(key, _Structure(network, input_mode, solver, rtol))
    return structure


class _Structure:
    """Everything about a network's solve that depends on topology only, not on conductances.

    Training refactors the network after every parameter update, but the
    sparsity pattern of ``L_FF`` never changes.  This object, built once per
    network, input mode and solver, holds the incidence matrix, a linear map
    from the conductances straight to the CSC data of ``L_FF`` (no sparse
    products or slicing per update) and a :class:`~labtrain.linalg.SPDSolver`
    that did the pattern-only work (fill-reducing ordering, symbolic
    analysis) once, so each factorisation does the numeric work only.  With
    CG it also keeps the last terminal response, the warm start of the next
    solve (conductances change little between updates).
    """

    def __init__(self, network: Network, input_mode: str, solver: str = "auto", rtol: float | None = None) -> None:
        n, m = network.n_nodes, network.n_edges
        inputs = list(network.inputs)
        fixed = list(network.grounds) + (inputs if input_mode == "voltage" else [])
        free_mask = np.ones(n, bool)
        free_mask[fixed] = False
        self.free = np.flatnonzero(free_mask)
        self.position = np.full(n, -1)
        self.position[self.free] = np.arange(len(self.free))
        self.incidence = network.incidence().tocsr()
        self.incidence_t = self.incidence.T.tocsr()
        self.n_edges = m
        rows, cols, sign, edge = laplacian_terms(network.edges, self.position)
        self._indptr, self._indices, self._op = csc_assembly(rows, cols, sign, edge, len(self.free), m)
        self.solver = SPDSolver(self._indptr, self._indices, len(self.free), solver=solver, rtol=rtol)
        self._warm: np.ndarray | None = None

        # Right-hand side of a unit input voltage: -L[free, inputs] (voltage mode only).
        self._input_op: sp.csr_matrix | None = None
        if input_mode == "voltage":
            a, b = network.edges[:, 0], network.edges[:, 1]
            ids = np.arange(m)
            all_rows, all_cols = np.r_[a, b, a, b], np.r_[a, b, b, a]
            all_sign, all_edge = np.r_[np.ones(2 * m), -np.ones(2 * m)], np.r_[ids, ids, ids, ids]
            column = np.full(n, -1)
            column[inputs] = np.arange(len(inputs))
            pr, pc = self.position[all_rows], column[all_cols]
            keep = (pr >= 0) & (pc >= 0)
            flat = pr[keep] * len(inputs) + pc[keep]
            self._input_op = sp.csr_matrix((-all_sign[keep], (flat, all_edge[keep])),
                                           shape=(len(self.free) * len(inputs), m))
            self._n_inputs = len(inputs)

    def input_coupling(self, conductance_s: np.ndarray) -> np.ndarray:
        """``-L[free, inputs]`` at these conductances, shape (n_free, n_inputs)."""
        return (self._input_op @ conductance_s).reshape(len(self.free), self._n_inputs)

    def factor_and_solve(self, conductance_s: np.ndarray, rhs: np.ndarray) -> tuple[SPDFactor, np.ndarray]:
        """Factor ``L_FF`` at these conductances and solve ``L_FF X = rhs`` (rows in free order).

        The returned factor's ``solve`` takes right-hand sides in free order too,
        whatever ordering the factorisation used.  CG starts from the last
        solution of the same shape.
        """
        factor = self.solver.factor(self._op @ conductance_s)
        warm = self._warm if self._warm is not None and self._warm.shape == rhs.shape else None
        solution = factor.solve(rhs, warm)
        if factor.method == "cg":
            self._warm = solution.copy()
        return factor, solution
