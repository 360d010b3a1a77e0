"""XY (Kuramoto-type) phase-oscillator network: energy, relaxation, exact gradients.

Physics (docs/algorithms.md, section 7).  Oscillator ``i`` has phase ``phi_i``; edge
``e = (a, b)`` couples two oscillators with strength ``W_e`` and every node may
feel a bias field of amplitude ``h_i`` and phase ``psi_i``:

    E(phi) = - sum_e W_e cos(phi_a - phi_b) - sum_i h_i cos(phi_i - psi_i)

(each edge counted once, i.e. ``-1/2 sum_ij W_ij cos(phi_i - phi_j)`` over
ordered pairs).  Input oscillators are clamped (phase-locked to a drive) at the
input phases; ground nodes of the :class:`~labtrain.physics.network.Network` are
reference oscillators clamped at ``ground_phase`` (or free, with
``ground_phase=None``).  Every other node follows the overdamped gradient flow

    dphi/dt = - dE/dphi            (unit mobility: W and h in rad/s)

from a random initial state to a stable equilibrium.  In the learning phase a
torque ``-beta dC/dphi_out`` from the cost (:class:`PhaseCost`) acts on the
outputs, starting from the free equilibrium so the same basin is followed.

Relaxation (:meth:`XYModel.relax`) is vectorised over the batch and over
``n_starts`` random initial states (rows of one ``(B * S, n)`` array):

1. explicit (forward-Euler) steps of the flow, each row with its own step
   ``dt`` that starts at ``1/L`` (``L`` a Gershgorin bound on the Hessian, for
   which the descent lemma guarantees an energy decrease), grows by 1.25 per
   accepted step up to ``max_dt_factor / L`` and halves when a step fails the
   energy-decrease (Armijo) check -- so the path stays a steepest-descent path
   of the flow, only coarser where the landscape allows;
2. once a row is close to equilibrium (``max |dE/dphi| < newton_tol``) and its
   free-node Hessian is positive definite, Newton steps (capped at
   ``max_newton_step`` rad, accepted only if the energy does not increase)
   polish it to machine precision -- finite-difference gradients need that;
3. a row has converged when ``max |dE/dphi| < tol``; rows that do not within
   ``max_steps`` are reported (``XYState.n_unconverged``), as are converged rows
   whose Hessian is not positive definite (saddles, ``XYState.n_unstable``).

Compared with a flow integrated with a 16x smaller step, about 2 % of the
random starts of a 5x5 lattice end in a different (equally valid) minimum:
starts near a saddle's stable manifold are sensitive to any discretisation.

Exact gradients (:meth:`XYModel.exact_gradient`) come from implicit
differentiation at each free equilibrium: ``H lambda = dC/dphi`` on the free
nodes, ``dC/dtheta = -lambda . d2E/dphi dtheta``, averaged over starts and
batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from labtrain.linalg import NotPositiveDefiniteError, check_solver, csc_assembly, laplacian_terms
from labtrain.linalg.batched import BatchedFactor, BatchedSPD
from labtrain.physics.network import Network, NetworkError, lattice

__all__ = ["PhaseCost", "COSTS", "TorqueNudge", "XYState", "XYModel", "wrap_phase", "circular_mean",
           "PARAMETER_GROUPS", "stacked_lattice", "xy_lattice", "xy_lattice_inset", "DEFAULT_TERMINAL_SPAN"]

#: Default number of lattice columns between the input and the output column of :func:`xy_lattice`.
DEFAULT_TERMINAL_SPAN = 2

COSTS = ("cosine", "log")
#: Parameter groups :meth:`XYModel.exact_gradient` and :meth:`XYModel.energy_derivatives` know.
PARAMETER_GROUPS = ("coupling", "bias_field", "bias_phase", "bias_x", "bias_y")


def wrap_phase(phi: np.ndarray) -> np.ndarray:
    """Phases wrapped into ``(-pi, pi]``."""
    w = np.mod(np.asarray(phi, float) + np.pi, 2 * np.pi) - np.pi
    return np.where(w == -np.pi, np.pi, w)


def circular_mean(phi: np.ndarray, axis: int) -> np.ndarray:
    """Circular mean ``arg(mean exp(i phi))`` along ``axis``, in ``(-pi, pi]``."""
    phi = np.asarray(phi, float)
    return wrap_phase(np.arctan2(np.sin(phi).mean(axis=axis), np.cos(phi).mean(axis=axis)))


def xy_lattice_inset(cols: int, span: int = DEFAULT_TERMINAL_SPAN) -> int:
    """Inset (columns from each edge) that puts the input and output columns about ``span`` columns apart.

    ``max(0, (cols - 1 - span) // 2)``: the terminals are centred, at least
    ``span`` columns apart (more where the parity does not allow exactly ``span``).
    """
    if span < 0:
        raise NetworkError(f"terminal span must be >= 0, got {span}")
    return max(0, (int(cols) - 1 - int(span)) // 2)


def xy_lattice(rows: int, cols: int, *, n_inputs: int = 2, n_outputs: int = 1, span: int = DEFAULT_TERMINAL_SPAN,
               skip: int = 0, diagonals: bool = False) -> Network:
    """Square lattice of XY oscillators with the input and output columns ``span`` columns apart.

    :func:`~labtrain.physics.network.lattice` with ``inset = xy_lattice_inset(cols,
    span)``: on a 5x5 lattice (``span = 2``) the inputs sit on column 1 (rows 1
    and 3), the output on column 3 (row 2), instead of on the left and right
    edges.  Why: with edge terminals (4 columns apart) XOR trained with the
    exact gradient reaches loss ~0 on 0 of 4 seeds in 400 steps -- the output
    is pinned input-independent at phase 0 or pi (cosine loss 0.5) by bias
    fields before the inputs' signal across the lattice is shaped; with the
    terminals 2 columns apart on 3 of 4 (``benchmarks/xy_xor_study.py``, which
    also lists the estimator settings the lattice needs).
    """
    inset = xy_lattice_inset(cols, span)
    return lattice(rows, cols, skip=skip, diagonals=diagonals, n_inputs=n_inputs, n_outputs=n_outputs, inset=inset)


def stacked_lattice(rows: int, cols: int, layers: int, *, n_inputs: int = 2, n_outputs: int = 1,
                    skip: int = 0, diagonals: bool = False, inset: int = 0) -> Network:
    """``layers`` copies of ``lattice(rows, cols)`` stacked, node ``(r, c)`` of layer ``k`` linked to
    node ``(r, c)`` of layer ``k + 1`` (local inter-layer links).

    Node ``k * rows * cols + r * cols + c``.  Inputs sit on the left column of
    the first layer, outputs on the right column of the last, the ground (a
    reference oscillator, free unless the model clamps grounds) at the middle
    of the last layer's bottom row -- the same placement rules as
    :func:`~labtrain.physics.network.lattice` (``inset`` moves the input and output
    columns in from the edges, as there).
    """
    if layers < 1:
        raise NetworkError(f"stacked_lattice needs layers >= 1, got {layers}")
    one = lattice(rows, cols, skip=skip, diagonals=diagonals, n_inputs=n_inputs, n_outputs=n_outputs, inset=inset)
    size = rows * cols
    if layers == 1:
        return one
    parts = [one.edges + k * size for k in range(layers)]
    parts += [np.c_[np.arange(size) + k * size, np.arange(size) + (k + 1) * size] for k in range(layers - 1)]
    last = (layers - 1) * size
    outs = [o + last for o in one.outputs]
    gnd = [g + last for g in one.grounds]
    pos = np.vstack([one.positions + [k * (cols + 1), 0] for k in range(layers)])
    return Network(layers * size, np.vstack(parts), list(one.inputs), outs, gnd, one.g_min_s[0], one.g_max_s[0],
                   f"stacked lattice {layers}x{rows}x{cols}", pos)


# --------------------------------------------------------------------- costs
@dataclass(frozen=True)
class PhaseCost:
    """Cost of output phases ``phi`` against target phases ``tau`` (summed over outputs).

    ``cosine``: ``C = sum_o (1 - cos(phi_o - tau_o)) / 2`` (0 at the target, 1 opposite).
    ``log``:    ``C = -sum_o log[(1 + eps + cos(phi_o - tau_o)) / (2 + eps)]``, the
    ``-log(1 + eps + cos)`` cost shifted to be 0 at the target; it diverges like
    ``-log eps`` at the opposite phase, which pushes harder on badly wrong outputs.
    """

    kind: str = "cosine"
    eps: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in COSTS:
            raise ValueError(f"unknown phase cost {self.kind!r}; choose from {COSTS}")
        if not self.eps > 0:
            raise ValueError(f"phase cost eps must be > 0, got {self.eps}")

    def value(self, phi: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Cost per row (last axis = outputs, summed)."""
        d = np.asarray(phi) - np.asarray(tau)
        if self.kind == "cosine":
            return 0.5 * np.sum(1.0 - np.cos(d), axis=-1)
        return -np.sum(np.log((1.0 + self.eps + np.cos(d)) / (2.0 + self.eps)), axis=-1)

    def gradient(self, phi: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """``dC/dphi_o`` (same shape as ``phi``)."""
        d = np.asarray(phi) - np.asarray(tau)
        if self.kind == "cosine":
            return 0.5 * np.sin(d)
        return np.sin(d) / (1.0 + self.eps + np.cos(d))

    def curvature(self, phi: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """``d2C/dphi_o^2`` (the cost is a sum over outputs, so its Hessian is diagonal)."""
        d = np.asarray(phi) - np.asarray(tau)
        if self.kind == "cosine":
            return 0.5 * np.cos(d)
        c = np.cos(d)
        return (1.0 + (1.0 + self.eps) * c) / (1.0 + self.eps + c) ** 2

    @property
    def max_curvature(self) -> float:
        """Bound on ``|d2C/dphi^2|`` (for the integrator's step size)."""
        return 0.5 if self.kind == "cosine" else max(1.0 / self.eps, 1.0 / (2.0 + self.eps))

    def describe(self) -> dict:
        return {"kind": self.kind, "eps": self.eps} if self.kind == "log" else {"kind": self.kind}


@dataclass
class TorqueNudge:
    """Learning-phase nudge: torque ``-beta dC/dphi_out`` towards ``target_phases``.

    Attributes
    ----------
    beta : float
        Nudge strength (signed: ``-beta`` for the second phase of centred EP).
    target_phases : ndarray, shape (B, n_outputs)
        Target output phases (rad).
    cost : PhaseCost
        The cost whose gradient gives the torque.
    start_phases : ndarray, shape (B, S, n_nodes), optional
        Where the nudged relaxation starts: the free equilibria, so each start
        stays in its basin.  Chips fill this in from their last free state.
    """

    beta: float
    target_phases: np.ndarray
    cost: PhaseCost = PhaseCost()
    start_phases: np.ndarray | None = None


@dataclass
class XYState:
    """Equilibria of one batch relaxation.

    Attributes
    ----------
    phases : ndarray, shape (B, S, n_nodes)
        Equilibrium phases per example and start, wrapped into ``(-pi, pi]``.
    converged : ndarray of bool, shape (B, S)
        ``max |dE/dphi| < tol`` was reached.
    stable : ndarray of bool, shape (B, S)
        The free-node Hessian is positive definite (a local minimum, not a saddle).
    iterations : int
        Integrator iterations of the slowest row.
    """

    phases: np.ndarray
    converged: np.ndarray
    stable: np.ndarray
    iterations: int

    @property
    def n_unconverged(self) -> int:
        return int(np.sum(~self.converged))

    @property
    def n_unstable(self) -> int:
        return int(np.sum(self.converged & ~self.stable))


# --------------------------------------------------------------------- model
class XYModel:
    """XY oscillator network on a :class:`~labtrain.physics.network.Network`.

    Parameters
    ----------
    network : Network
        Graph and terminal roles (conductance bounds are ignored).
    coupling : ndarray, shape (m,)
        Coupling ``W_e`` of every edge (rad/s; positive = ferromagnetic).
    bias_field, bias_phase : ndarray, shape (n_nodes,), optional
        Bias amplitude ``h_i`` (rad/s) and phase ``psi_i`` (rad); default 0.
        Values on clamped nodes have no effect.
    ground_phase : float or None
        Phase at which ground (reference) nodes are clamped; ``None`` makes them
        ordinary free oscillators.
    tol : float
        Convergence criterion ``max |dE/dphi| < tol`` (rad/s).
    max_steps : int
        Integrator iteration limit.
    newton_tol : float
        ``max |dE/dphi|`` below which Newton polishing is attempted.
    max_newton_step : float
        Largest phase change of one Newton step (rad).
    newton_every : int
        How often (iterations) rows below ``newton_tol`` try a Newton step.
    max_dt_factor : float
        Largest flow step in units of ``1/L``.
    solver : {"auto", "cholmod", "superlu"}
        Sparse ``L D L^T`` of the free-node Hessians (Newton steps, stability
        checks, exact gradients) above ``dense_max_nodes`` free nodes
        (:class:`~labtrain.linalg.batched.BatchedSPD`, all rows of a batch in
        one factorisation; the pivots' signs give the inertia): ``auto`` is
        CHOLMOD when scikit-sparse is installed, else SuperLU.
    dense_max_nodes : int
        Up to this many free nodes the Hessians are handled densely
        (batched ``eigh``/``solve``), above it sparsely.
    """

    def __init__(self, network: Network, coupling: np.ndarray, bias_field: np.ndarray | None = None,
                 bias_phase: np.ndarray | None = None, *, ground_phase: float | None = 0.0,
                 tol: float = 1e-10, max_steps: int = 20000, newton_tol: float = 0.05,
                 max_newton_step: float = 0.5, newton_every: int = 5, max_dt_factor: float = 4.0,
                 solver: str = "auto", dense_max_nodes: int = 64) -> None:
        if check_solver(solver) == "cg":
            raise ValueError("solver 'cg' is not available for XY lattices (Newton steps need the Hessian's "
                             "inertia); use 'auto', 'cholmod' or 'superlu'")
        self.solver = solver
        self.dense_max_nodes = int(dense_max_nodes)
        self.network = network
        n, m = network.n_nodes, network.n_edges
        self.n_nodes, self.n_edges = n, m
        self.inputs = np.array(network.inputs, dtype=np.int64)
        self.outputs = np.array(network.outputs, dtype=np.int64)
        self.grounds = np.array(network.grounds, dtype=np.int64)
        self.ground_phase = None if ground_phase is None else float(ground_phase)
        clamped = np.zeros(n, bool)
        clamped[self.inputs] = True
        if self.ground_phase is not None:
            clamped[self.grounds] = True
        self.clamped = clamped
        self.free = np.flatnonzero(~clamped)
        self.tol, self.max_steps = float(tol), int(max_steps)
        self.newton_tol, self.max_newton_step = float(newton_tol), float(max_newton_step)
        self.newton_every = max(1, int(newton_every))
        self.max_dt_factor = float(max_dt_factor)
        self._a, self._b = network.edges[:, 0].copy(), network.edges[:, 1].copy()
        # Incidence (n x m): +1 at the tail a, -1 at the head b.  Force on node i = sum_e B_ie W_e sin(d_e).
        inc = network.incidence()
        # Dense for small lattices (as before the sparse solver layer: same rounding, same trajectories);
        # sparse above dense_max_nodes free nodes, where a dense product costs O(n m) per row.
        small = int(np.sum(~clamped)) <= self.dense_max_nodes and n * m <= 4_000_000
        self._inc_t = inc.T.toarray() if small else None
        self._inc = None if small else inc.tocsr()
        # Position of each output among the free nodes, and the Hessian scatter map on free nodes.
        pos = -np.ones(n, np.int64)
        pos[self.free] = np.arange(len(self.free))
        self._free_pos = pos
        self._out_free = pos[self.outputs]
        nf = len(self.free)
        # Free-node Hessian = Laplacian of the weights W_e cos(d_e) plus the diagonal bias curvature:
        # its CSC pattern once, values per row as [edge weights, free-node diagonal] @ op.T.
        e_rows, e_cols, e_sign, e_edge = laplacian_terms(network.edges, pos)
        d_idx = np.arange(nf)
        self._hess_terms = (np.r_[e_rows, d_idx], np.r_[e_cols, d_idx], np.r_[e_sign, np.ones(nf)],
                            np.r_[e_edge, m + d_idx])
        self._hess_pattern: tuple[np.ndarray, np.ndarray, sp.csr_matrix] | None = None
        self._hess_batched: BatchedSPD | None = None
        self._hess_scatter_cache: np.ndarray | sp.csr_matrix | None = None
        self._degree_abs = None
        self.update(coupling, bias_field, bias_phase)

    # ----------------------------------------------------------- parameters
    def update(self, coupling: np.ndarray | None = None, bias_field: np.ndarray | None = None,
               bias_phase: np.ndarray | None = None) -> None:
        """Set new parameters (``None`` leaves a group as it is; initially 0 for the biases)."""
        n, m = self.n_nodes, self.n_edges
        if coupling is not None:
            coupling = np.asarray(coupling, float)
            if coupling.shape != (m,):
                raise ValueError(f"expected {m} couplings, got shape {coupling.shape}")
            self.coupling = coupling.copy()
        if bias_field is not None or not hasattr(self, "bias_field"):
            h = np.zeros(n) if bias_field is None else np.asarray(bias_field, float)
            if h.shape != (n,):
                raise ValueError(f"expected {n} bias fields, got shape {h.shape}")
            self.bias_field = h.copy()
        if bias_phase is not None or not hasattr(self, "bias_phase"):
            psi = np.zeros(n) if bias_phase is None else np.asarray(bias_phase, float)
            if psi.shape != (n,):
                raise ValueError(f"expected {n} bias phases, got shape {psi.shape}")
            self.bias_phase = psi.copy()
        # Gershgorin bound on the Hessian: 2 sum_{e at i} |W_e| + |h_i|.
        deg = np.zeros(n)
        np.add.at(deg, self._a, np.abs(self.coupling))
        np.add.at(deg, self._b, np.abs(self.coupling))
        self._lip_nodes = 2.0 * deg + np.abs(self.bias_field)

    # --------------------------------------------------------------- physics
    def _clamp(self, phi: np.ndarray, input_rows: np.ndarray) -> None:
        phi[:, self.inputs] = input_rows
        if self.ground_phase is not None:
            phi[:, self.grounds] = self.ground_phase

    def energy(self, phi: np.ndarray) -> np.ndarray:
        """``E`` of every row of ``phi`` (..., n_nodes)."""
        phi = np.asarray(phi, float)
        d = phi[..., self._a] - phi[..., self._b]
        return -(np.cos(d) @ self.coupling) - np.sum(self.bias_field * np.cos(phi - self.bias_phase), axis=-1)

    def force(self, phi: np.ndarray) -> np.ndarray:
        """``dE/dphi`` of every row (..., n_nodes); the flow is ``dphi/dt = -force``."""
        phi = np.asarray(phi, float)
        shape = phi.shape
        phi2 = phi.reshape(-1, shape[-1])
        f = np.sin(phi2[:, self._a] - phi2[:, self._b]) * self.coupling
        g = self._node_sum(f)
        g = g + self.bias_field * np.sin(phi2 - self.bias_phase)
        return g.reshape(shape)

    def _node_sum(self, f: np.ndarray) -> np.ndarray:
        """``sum_e B_ie f_e`` per row: edge values (K, m) -> node values (K, n)."""
        if self._inc_t is not None:
            return f @ self._inc_t
        return np.asarray(self._inc @ f.T).T

    def hessian(self, phi: np.ndarray, free_only: bool = True) -> np.ndarray:
        """Dense Hessian ``d2E/dphi2`` per row: (..., nf, nf) on free nodes, or (..., n, n)."""
        phi = np.asarray(phi, float)
        shape = phi.shape
        phi2 = phi.reshape(-1, shape[-1])
        c = np.cos(phi2[:, self._a] - phi2[:, self._b]) * self.coupling
        diag = self.bias_field * np.cos(phi2 - self.bias_phase)
        if free_only:
            nf = len(self.free)
            scatter = self._hess_scatter
            flat = c @ scatter if isinstance(scatter, np.ndarray) else (scatter.T @ c.T).T
            h = np.asarray(flat).reshape(-1, nf, nf)
            h[:, np.arange(nf), np.arange(nf)] += diag[:, self.free]
            return h.reshape(shape[:-1] + (nf, nf))
        n = self.n_nodes
        h = np.zeros((len(phi2), n, n))
        k = np.arange(len(phi2))[:, None]
        np.add.at(h, (k, self._a[None], self._a[None]), c)
        np.add.at(h, (k, self._b[None], self._b[None]), c)
        np.add.at(h, (k, self._a[None], self._b[None]), -c)
        np.add.at(h, (k, self._b[None], self._a[None]), -c)
        h[:, np.arange(n), np.arange(n)] += diag
        return h.reshape(shape[:-1] + (n, n))

    @property
    def _hess_scatter(self) -> np.ndarray | sp.csr_matrix:
        """Map from edge weights to the flat dense free-node Hessian (m, nf * nf); built on first use."""
        if self._hess_scatter_cache is None:
            nf, m = len(self.free), self.n_edges
            rows, cols, sign, edge = self._hess_terms
            keep = edge < m
            scatter = sp.csr_matrix((sign[keep], (edge[keep], rows[keep] * nf + cols[keep])), shape=(m, nf * nf))
            self._hess_scatter_cache = scatter.toarray() if m * nf * nf <= 4_000_000 else scatter
        return self._hess_scatter_cache

    def _sparse_hessian(self) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, BatchedSPD]:
        """CSC pattern of the free-node Hessian, the map to its values and its batched L D L^T solver."""
        if self._hess_batched is None:
            nf = len(self.free)
            rows, cols, sign, edge = self._hess_terms
            self._hess_pattern = csc_assembly(rows, cols, sign, edge, nf, self.n_edges + nf)
            indptr, indices, _ = self._hess_pattern
            self._hess_batched = BatchedSPD(indptr, indices, nf, solver=self.solver, ldl=True)
        indptr, indices, op = self._hess_pattern
        return indptr, indices, op, self._hess_batched

    def _use_sparse(self) -> bool:
        return len(self.free) > self.dense_max_nodes

    def _hessian_factor(self, phi: np.ndarray, beta: float = 0.0, targets: np.ndarray | None = None,
                        cost: "PhaseCost | None" = None) -> BatchedFactor:
        """Batched sparse ``L D L^T`` of the free-node Hessian of ``F = E + beta C`` at every row of ``phi``.

        Raises :class:`~labtrain.linalg.NotPositiveDefiniteError` on a zero pivot (singular Hessian).
        """
        _, _, op, batched = self._sparse_hessian()
        c = np.cos(phi[:, self._a] - phi[:, self._b]) * self.coupling
        diag = (self.bias_field * np.cos(phi - self.bias_phase))[:, self.free]
        if beta:
            diag[:, self._out_free] += beta * cost.curvature(phi[:, self.outputs], targets)
        weights = np.concatenate([c, diag], axis=1)
        return batched.factor(np.asarray(op @ weights.T).T)

    @staticmethod
    def _inertia_stable(factor: BatchedFactor, rel: float) -> np.ndarray:
        """Rows whose ``L D L^T`` pivots are all above ``-rel * max(1, max |pivot|)``: no negative eigenvalue
        beyond round-off (Sylvester: as many negative pivots as negative eigenvalues)."""
        piv = factor.pivots()
        return piv.min(axis=1) > -rel * np.maximum(1.0, np.abs(piv).max(axis=1))

    def energy_derivatives(self, phi: np.ndarray, group: str = "coupling") -> np.ndarray:
        """Local readout ``dE/dtheta`` at states ``phi`` (..., n_nodes) for one parameter group.

        ``coupling``: ``-cos(phi_a - phi_b)`` per edge; ``bias_field``: ``-cos(phi_i - psi_i)``;
        ``bias_phase``: ``-h_i sin(phi_i - psi_i)``; ``bias_x``: ``-cos phi_i``; ``bias_y``:
        ``-sin phi_i`` (the Cartesian bias ``h_x cos phi + h_y sin phi = h cos(phi - psi)``).
        """
        phi = np.asarray(phi, float)
        if group == "coupling":
            return -np.cos(phi[..., self._a] - phi[..., self._b])
        if group == "bias_field":
            return -np.cos(phi - self.bias_phase)
        if group == "bias_phase":
            return -self.bias_field * np.sin(phi - self.bias_phase)
        if group == "bias_x":
            return -np.cos(phi)
        if group == "bias_y":
            return -np.sin(phi)
        raise ValueError(f"unknown parameter group {group!r}; choose from {PARAMETER_GROUPS}")

    # ------------------------------------------------------------ relaxation
    def random_starts(self, input_phases: np.ndarray, n_starts: int,
                      rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Uniformly random phases (B, S, n) with the clamped nodes set."""
        x = self._check_inputs(input_phases)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        phi = rng.uniform(-np.pi, np.pi, size=(len(x), int(n_starts), self.n_nodes))
        flat = phi.reshape(-1, self.n_nodes)
        self._clamp(flat, np.repeat(x, int(n_starts), axis=0))
        return phi

    def _check_inputs(self, input_phases: np.ndarray) -> np.ndarray:
        x = np.asarray(input_phases, float)
        if x.ndim != 2 or x.shape[1] != len(self.inputs):
            raise ValueError(f"input phases must have shape (B, {len(self.inputs)}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("input phases must be finite")
        return x

    def relax(self, input_phases: np.ndarray, n_starts: int = 1, seed: np.random.Generator | int | None = None,
              nudge: TorqueNudge | None = None, start: np.ndarray | None = None) -> XYState:
        """Relax every example from ``n_starts`` initial states to a stable equilibrium.

        Parameters
        ----------
        input_phases : ndarray, shape (B, n_inputs)
            Clamped input phases (rad).
        n_starts : int
            Random initial states per example (ignored when ``start`` is given).
        seed : Generator or int, optional
            Source of the random initial states.
        nudge : TorqueNudge, optional
            Adds ``beta * C`` to the energy (torque ``-beta dC/dphi_out``).  Starts
            from ``start`` or else ``nudge.start_phases`` when either is given.
        start : ndarray, shape (B, S, n_nodes), optional
            Initial states (clamped nodes are reset to the inputs).
        """
        x = self._check_inputs(input_phases)
        if start is None and nudge is not None:
            start = nudge.start_phases
        if start is None:
            phi = self.random_starts(x, n_starts, seed)
        else:
            phi = np.array(start, float, copy=True)
            if phi.ndim != 3 or phi.shape[0] != len(x) or phi.shape[2] != self.n_nodes:
                raise ValueError(f"start phases must have shape ({len(x)}, S, {self.n_nodes}), got {phi.shape}")
        b, s, n = phi.shape
        flat = phi.reshape(b * s, n)
        self._clamp(flat, np.repeat(x, s, axis=0))
        beta, targets, cost = 0.0, None, None
        if nudge is not None and nudge.beta != 0.0:
            beta, cost = float(nudge.beta), nudge.cost
            t = np.asarray(nudge.target_phases, float)
            if t.shape != (b, len(self.outputs)):
                raise ValueError(f"target phases must have shape ({b}, {len(self.outputs)}), got {t.shape}")
            targets = np.repeat(t, s, axis=0)
        flat, converged, iters = self._descend(flat, beta, targets, cost)
        stable = np.ones(b * s, bool)
        if len(self.free):
            stable = self._stable_rows(flat, beta, targets, cost)
        return XYState(wrap_phase(flat).reshape(b, s, n), converged.reshape(b, s), stable.reshape(b, s), iters)

    def _stable_rows(self, phi, beta, targets, cost) -> np.ndarray:
        """Rows whose free-node Hessian of ``F`` has no negative eigenvalue beyond round-off.

        Dense: smallest eigenvalue above ``-1e-9 max(1, |largest|)``; sparse: the
        same test on the ``L D L^T`` pivots (as many negative pivots as negative
        eigenvalues), a singular Hessian counting as stable (as a zero eigenvalue does).
        """
        if not self._use_sparse():
            w = np.linalg.eigvalsh(self._total_hessian(phi, beta, targets, cost))
            return w[:, 0] > -1e-9 * np.maximum(1.0, np.abs(w[:, -1]))
        stable = np.empty(len(phi), bool)
        for lo in range(0, len(phi), self._sparse_chunk):
            sl = slice(lo, lo + self._sparse_chunk)
            try:
                factor = self._hessian_factor(phi[sl], beta, None if targets is None else targets[sl], cost)
                stable[sl] = self._inertia_stable(factor, 1e-9)
            except NotPositiveDefiniteError:  # an exactly zero pivot somewhere: dense check of this chunk
                w = np.linalg.eigvalsh(self._total_hessian(phi[sl], beta, None if targets is None else targets[sl],
                                                           cost))
                stable[sl] = w[:, 0] > -1e-9 * np.maximum(1.0, np.abs(w[:, -1]))
        return stable

    @property
    def _sparse_chunk(self) -> int:
        """Rows per batched sparse factorisation (bounds memory: about 2e7 stored factor entries)."""
        nnz = len(self._sparse_hessian()[1])
        return max(1, 20_000_000 // max(1, 8 * nnz))

    # Hessian of the total energy F = E + beta C on the free nodes, per row.
    def _total_hessian(self, phi, beta, targets, cost):
        h = self.hessian(phi)
        if beta:
            o = self._out_free
            h[:, o, o] += beta * cost.curvature(phi[:, self.outputs], targets)
        return h

    def _evaluate(self, phi, beta, targets, cost):
        """Total energy ``F = E + beta C`` and its gradient on the free nodes, per row."""
        d = phi[:, self._a] - phi[:, self._b]
        dpsi = phi - self.bias_phase
        e = -(np.cos(d) @ self.coupling) - np.cos(dpsi) @ self.bias_field
        f = np.sin(d) * self.coupling
        g = self._node_sum(f)
        g = g + self.bias_field * np.sin(dpsi)
        if beta:
            out = phi[:, self.outputs]
            e = e + beta * cost.value(out, targets)
            g[:, self.outputs] += beta * cost.gradient(out, targets)
        return e, g[:, self.free]

    def _descend(self, phi, beta, targets, cost):
        """Adaptive-step gradient flow, then Newton polishing; returns (phi, converged, iterations)."""
        k_rows = len(phi)
        free = self.free
        if len(free) == 0:
            return phi, np.ones(k_rows, bool), 0
        lip = float(self._lip_nodes[free].max())
        if beta:
            lip += abs(beta) * cost.max_curvature
        dt0 = 1.0 / max(lip, 1e-12)
        dt_max = self.max_dt_factor * dt0
        dt = np.full(k_rows, dt0)
        energy, grad = self._evaluate(phi, beta, targets, cost)
        active = np.ones(k_rows, bool)
        newton = np.zeros(k_rows, bool)
        it = 0
        for it in range(1, self.max_steps + 1):
            gmax_all = np.abs(grad).max(axis=1)
            active &= ~(gmax_all < self.tol)
            idx = np.flatnonzero(active)
            if len(idx) == 0:
                break
            p, g, e, gmax = phi[idx], grad[idx], energy[idx], gmax_all[idx]
            t = targets[idx] if beta else None
            step = -dt[idx, None] * g
            use_newton = np.zeros(len(idx), bool)
            trial = newton[idx] | ((gmax < self.newton_tol) & (it % self.newton_every == 0))
            if trial.any():
                j = np.flatnonzero(trial)
                pd, newton_delta = self._newton_directions(p[j], g[j], beta, t[j] if beta else None, cost)
                jj = j[pd]
                if len(jj):
                    delta = newton_delta[pd]
                    big = np.abs(delta).max(axis=1)
                    delta *= np.minimum(1.0, self.max_newton_step / np.maximum(big, 1e-300))[:, None]
                    step[jj] = delta
                    use_newton[jj] = True
            new = p.copy()
            new[:, free] += step
            e_new, g_new = self._evaluate(new, beta, t, cost)
            # Euler steps must lower F by a fraction of the first-order prediction (Armijo);
            # Newton steps must not raise it beyond rounding.
            slack = 1e-13 * (1.0 + np.abs(e))
            armijo = e_new <= e - 1e-4 * dt[idx] * np.sum(g * g, axis=1) + slack
            ok = np.where(use_newton, e_new <= e + slack, armijo)
            acc = idx[ok]
            phi[acc], energy[acc], grad[acc] = new[ok], e_new[ok], g_new[ok]
            newton[idx] = use_newton & ok
            euler = ~use_newton
            dt[idx[euler & ok]] = np.minimum(dt[idx[euler & ok]] * 1.25, dt_max)
            dt[idx[euler & ~ok]] *= 0.5
        active &= ~(np.abs(grad).max(axis=1) < self.tol)
        return phi, ~active, it

    def _newton_directions(self, phi, grad, beta, targets, cost) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose free-node Hessian is positive definite, and ``-H^{-1} grad`` per row.

        Dense: ``eigh``, definite when the smallest eigenvalue exceeds ``1e-10
        max(1, largest)``.  Sparse: batched ``L D L^T``, definite when every
        pivot exceeds ``1e-10 max(1, largest pivot)`` (pivots lie between the
        extreme eigenvalues); a singular Hessian (zero pivot) is not definite.
        """
        if not self._use_sparse():
            w, v = np.linalg.eigh(self._total_hessian(phi, beta, targets, cost))
            pd = w[:, 0] > 1e-10 * np.maximum(1.0, w[:, -1])
            coef = np.einsum("kij,ki->kj", v[pd], grad[pd]) / w[pd]
            delta = np.zeros_like(grad)
            delta[pd] = -np.einsum("kij,kj->ki", v[pd], coef)
            return pd, delta
        pd = np.zeros(len(phi), bool)
        delta = np.zeros_like(grad)
        for lo in range(0, len(phi), self._sparse_chunk):
            sl = slice(lo, lo + self._sparse_chunk)
            try:
                factor = self._hessian_factor(phi[sl], beta, None if targets is None else targets[sl], cost)
            except NotPositiveDefiniteError:
                continue  # a singular Hessian in this chunk: no Newton step for it this time
            piv = factor.pivots()
            pd[sl] = piv.min(axis=1) > 1e-10 * np.maximum(1.0, piv.max(axis=1))
            delta[sl] = -factor.solve(grad[sl])
        delta[~pd] = 0.0
        return pd, delta

    # --------------------------------------------------------- exact gradient
    def cost_gradient_free(self, phi: np.ndarray, targets: np.ndarray, cost: PhaseCost) -> np.ndarray:
        """``dC/dphi`` on the free nodes per row (K, nf)."""
        r = np.zeros((len(phi), len(self.free)))
        r[:, self._out_free] = cost.gradient(phi[:, self.outputs], targets)
        return r

    def exact_gradient(self, phases: np.ndarray, target_phases: np.ndarray, cost: PhaseCost | str = "cosine",
                       groups: tuple[str, ...] = PARAMETER_GROUPS) -> dict[str, np.ndarray]:
        """``dC/dtheta`` of ``C = mean_{b,s} cost`` by implicit differentiation at the equilibria ``phases``.

        ``phases`` (B, S, n) must be free equilibria of this model (e.g. from
        :meth:`relax`).  Per start: ``H_FF lambda = dC/dphi_F``, ``dC/dtheta =
        -lambda . d2E/dphi dtheta``; then averaged over starts and batch.
        Returns one array per requested group (see :meth:`energy_derivatives`).
        """
        cost = cost if isinstance(cost, PhaseCost) else PhaseCost(cost)
        phi = np.asarray(phases, float)
        b, s, n = phi.shape
        flat = phi.reshape(b * s, n)
        t = np.repeat(np.asarray(target_phases, float), s, axis=0)
        lam = np.zeros((b * s, n))
        if len(self.free):
            rhs = self.cost_gradient_free(flat, t, cost)
            if self._use_sparse():
                for lo in range(0, len(flat), self._sparse_chunk):
                    sl = slice(lo, lo + self._sparse_chunk)
                    try:
                        lam[sl, self.free] = self._hessian_factor(flat[sl]).solve(rhs[sl])
                    except NotPositiveDefiniteError:
                        raise np.linalg.LinAlgError("singular Hessian at an equilibrium: the exact gradient "
                                                    "is undefined there") from None
            else:
                lam[:, self.free] = np.linalg.solve(self.hessian(flat), rhs[..., None])[..., 0]
        out: dict[str, np.ndarray] = {}
        a, bb = self._a, self._b
        for group in groups:
            if group == "coupling":
                val = -(lam[:, a] - lam[:, bb]) * np.sin(flat[:, a] - flat[:, bb])
            elif group == "bias_field":
                val = -lam * np.sin(flat - self.bias_phase)
            elif group == "bias_phase":
                val = lam * self.bias_field * np.cos(flat - self.bias_phase)
            elif group == "bias_x":
                val = -lam * np.sin(flat)
            elif group == "bias_y":
                val = lam * np.cos(flat)
            else:
                raise ValueError(f"unknown parameter group {group!r}; choose from {PARAMETER_GROUPS}")
            out[group] = val.mean(axis=0)
        return out

    def loss(self, phases: np.ndarray, target_phases: np.ndarray, cost: PhaseCost | str = "cosine") -> float:
        """``mean_{b,s}`` of the cost of the output phases in ``phases`` (B, S, n)."""
        cost = cost if isinstance(cost, PhaseCost) else PhaseCost(cost)
        out = np.asarray(phases)[..., self.outputs]
        return float(np.mean(cost.value(out, np.asarray(target_phases, float)[:, None, :])))
