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
conductances to the entries of ``L_FF`` and SuperLU's fill-reducing ordering --
is computed once per network and input mode and cached, so refactoring after a
parameter update is a sparse matrix-vector product plus the numeric LU.  Every
factorisation takes the same path, so a result never depends on what was
factored before (a resumed run reproduces an uninterrupted one bit for bit).
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

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
        structure = _structure(network, input_mode)
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
_SPLU_OPTIONS = {"SymmetricMode": True}
_STRUCTURES: "weakref.WeakKeyDictionary[Network, dict[str, _Structure]]" = weakref.WeakKeyDictionary()


def _structure(network: Network, input_mode: str) -> "_Structure":
    """The cached :class:`_Structure` of ``network`` in ``input_mode`` (built on first use)."""
    per_mode = _STRUCTURES.get(network)
    if per_mode is None:
        per_mode = _STRUCTURES.setdefault(network, {})
    structure = per_mode.get(input_mode)
    if structure is None:
        structure = per_mode.setdefault(input_mode, _Structure(network, input_mode))
    return structure


def _csc_assembly(rows: np.ndarray, cols: np.ndarray, sign: np.ndarray, edge: np.ndarray,
                  size: int, n_edges: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """CSC pattern of ``sum_e g_e * sign * [rows, cols]`` and the map ``g -> data``.

    Returns ``(indptr, indices, op)`` with ``data = op @ g`` in the pattern's order.
    """
    key = cols.astype(np.int64) * size + rows
    slots, slot_of = np.unique(key, return_inverse=True)
    indices = (slots % size).astype(np.int32)
    indptr = np.searchsorted(slots // size, np.arange(size + 1)).astype(np.int32)
    op = sp.csr_matrix((sign, (slot_of.ravel(), edge)), shape=(len(slots), n_edges))
    return indptr, indices, op


class _Structure:
    """Everything about a network's solve that depends on topology only, not on conductances.

    Training refactors the network after every parameter update, but the
    sparsity pattern of ``L_FF`` never changes.  This object, built once per
    network and input mode, holds the incidence matrix, a linear map from the
    conductances straight to the CSC data of ``L_FF`` (no sparse products or
    slicing per update) and SuperLU's fill-reducing ordering (``MMD_AT_PLUS_A``,
    found once from the pattern), so each factorisation does the numeric work only.
    """

    def __init__(self, network: Network, input_mode: str) -> None:
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

        # Laplacian terms g_e * (+1 at (a,a), (b,b); -1 at (a,b), (b,a)) for edge e = (a, b).
        a, b = network.edges[:, 0], network.edges[:, 1]
        ids = np.arange(m)
        self._rows = np.r_[a, b, a, b]
        self._cols = np.r_[a, b, b, a]
        self._sign = np.r_[np.ones(2 * m), -np.ones(2 * m)]
        self._edge = np.r_[ids, ids, ids, ids]
        self.n_edges = m
        # Fill-reducing ordering: SuperLU's MMD on A^T + A depends on the pattern only (no
        # pivoting, symmetric mode), so find it once, at unit conductances, and from then on lay
        # L_FF out in that order and factor it as it stands.  Every factorisation then takes
        # the same path, so results do not depend on what was factored before (exact resumes).
        indptr, indices, op = self._make_layout(np.arange(len(self.free)))
        pattern = sp.csc_matrix((op @ np.ones(m), indices, indptr), shape=(len(self.free),) * 2)
        probe = spla.splu(pattern, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=_SPLU_OPTIONS)
        new_index = np.asarray(probe.perm_c, dtype=np.int64)  # column p moved to new_index[p]
        self._order = np.argsort(new_index)  # row i of the laid-out matrix is free position _order[i]
        self._indptr, self._indices, self._op = self._make_layout(new_index)

        # Right-hand side of a unit input voltage: -L[free, inputs] (voltage mode only).
        self._input_op: sp.csr_matrix | None = None
        if input_mode == "voltage":
            column = np.full(n, -1)
            column[inputs] = np.arange(len(inputs))
            pr, pc = self.position[self._rows], column[self._cols]
            keep = (pr >= 0) & (pc >= 0)
            flat = pr[keep] * len(inputs) + pc[keep]
            self._input_op = sp.csr_matrix((-self._sign[keep], (flat, self._edge[keep])),
                                           shape=(len(self.free) * len(inputs), m))
            self._n_inputs = len(inputs)

    def _make_layout(self, new_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """CSC ``(indptr, indices, op)`` of ``L_FF`` with free position ``p`` at row/column ``new_index[p]``."""
        pr, pc = self.position[self._rows], self.position[self._cols]
        keep = (pr >= 0) & (pc >= 0)
        return _csc_assembly(new_index[pr[keep]], new_index[pc[keep]], self._sign[keep], self._edge[keep],
                             len(self.free), self.n_edges)

    def input_coupling(self, conductance_s: np.ndarray) -> np.ndarray:
        """``-L[free, inputs]`` at these conductances, shape (n_free, n_inputs)."""
        return (self._input_op @ conductance_s).reshape(len(self.free), self._n_inputs)

    def factor_and_solve(self, conductance_s: np.ndarray, rhs: np.ndarray) -> tuple["_OrderedFactor", np.ndarray]:
        """Factor ``L_FF`` at these conductances and solve ``L_FF X = rhs`` (rows in free order).

        The returned factor's ``solve`` takes right-hand sides in free order too,
        whatever ordering the factorisation used.
        """
        size = len(self.free)
        l_ff = sp.csc_matrix((self._op @ conductance_s, self._indices, self._indptr), shape=(size, size))
        factor = _OrderedFactor(spla.splu(l_ff, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                                          options=_SPLU_OPTIONS), self._order)
        return factor, factor.solve(rhs)


class _OrderedFactor:
    """A SuperLU factor of a symmetrically permuted ``L_FF``; solves in the original order."""

    def __init__(self, factor: spla.SuperLU, order: np.ndarray) -> None:
        self.factor = factor
        self.order = order

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``L_FF X = rhs`` with ``rhs`` rows in free-node order."""
        out = np.empty_like(rhs, dtype=float)
        out[self.order] = self.factor.solve(np.ascontiguousarray(rhs[self.order]))
        return out
