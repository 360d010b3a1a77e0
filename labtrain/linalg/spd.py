"""Solver layer for symmetric positive definite systems with a fixed sparsity pattern.

Physical networks give SPD matrices (reduced Laplacians, Newton Jacobians of
convex co-contents, Hessians at stable equilibria) whose *pattern* is fixed by
the topology and whose *values* change with every parameter update or Newton
step.  :class:`SPDSolver` is built once per pattern and does the
pattern-only work once; :meth:`SPDSolver.factor` then does the numeric work
for new values and returns an :class:`SPDFactor` with ``solve``.

Methods (``solver=``, :data:`SOLVERS`):

``"superlu"``
    SciPy's SuperLU without pivoting (``diag_pivot_thresh = 0``, symmetric
    mode) on the matrix laid out once in SuperLU's ``MMD_AT_PLUS_A`` order.
    Always available; LU fill, no symbolic reuse inside SuperLU.
``"cholmod"``
    Sparse Cholesky (CHOLMOD through scikit-sparse): fill-reducing ordering
    (AMD, or METIS where AMD fills in badly) and symbolic analysis once, then
    only the numeric factorisation per update.  Needs the optional
    ``scikit-sparse`` package (``pip install -e '.[fast]'``, which builds
    against the system SuiteSparse: ``apt-get install libsuitesparse-dev``).
``"cg"``
    Preconditioned conjugate gradients (:mod:`labtrain.linalg.cg`), warm
    started by the caller from the previous solution; stops at
    ``||b - A x|| <= rtol ||b||`` per column.  No fill at all: the method of
    choice where a factor fills in (random graphs, whose separators grow
    linearly with their size).
``"auto"``
    :func:`choose_solver`: a direct solver (CHOLMOD, else SuperLU) for small
    or mesh-like patterns, CG for large patterns whose graph expands like a
    random graph.

A direct solver's result depends only on the matrix (the same path every
time: resumed runs reproduce uninterrupted ones bit for bit).  CG's result
depends on its starting point within ``rtol``.

A requested optional method that is not installed falls back (``cholmod`` to
``superlu``, ``amg`` to ``jacobi``) with one logged line.
"""

from __future__ import annotations

import abc

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import shortest_path

from labtrain.linalg.cg import PRECONDITIONERS, CGResult, block_pcg, make_preconditioner

__all__ = ["SOLVERS", "SPDSolver", "SPDFactor", "GraphProfile", "graph_profile", "choose_solver",
           "cholmod_available", "pyamg_available", "NotPositiveDefiniteError", "check_solver",
           "DIRECT_MAX_SIZE", "MESH_MAX_DIMENSION", "DEFAULT_CG_RTOL"]

SOLVERS = ("auto", "superlu", "cholmod", "cg")
#: ``auto`` factors directly up to this many unknowns, whatever the graph
DIRECT_MAX_SIZE = 500
#: ... and above it while the graph's effective dimension (see :class:`GraphProfile`) is at most this
MESH_MAX_DIMENSION = 3.0
#: ... or, for graphs that expand like random graphs, up to ``RANDOM_DIRECT_SIZE * (4 / mean degree)^1.6``
#: unknowns: where a CHOLMOD step and a CG step cost the same on random graphs of mean degree 4 and 10 and
#: on dense layered networks (``benchmarks/bench_scaling.py``; factor cost grows like n^3 there, CG's like n)
RANDOM_DIRECT_SIZE = 3_000
#: CG tolerance when the caller gives none (relative residual per column)
DEFAULT_CG_RTOL = 1e-10

_log = logging.getLogger("labtrain.linalg")
_SPLU_OPTIONS = {"SymmetricMode": True}
_noted: set[str] = set()


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """The matrix is singular or not positive definite."""


def _note(message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` once per process."""
    if message not in _noted:
        _noted.add(message)
        _log.log(level, message)


def cholmod_available() -> bool:
    """Whether scikit-sparse's CHOLMOD can be imported."""
    try:
        import sksparse.cholmod  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


def pyamg_available() -> bool:
    """Whether pyamg can be imported."""
    try:
        import pyamg  # noqa: F401  (optional dependency)
    except ImportError:
        return False
    return True


def check_solver(solver: str) -> str:
    """``solver`` if it is one of :data:`SOLVERS`, else a one-line ``ValueError``."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    return solver


# ------------------------------------------------------------------ choosing
@dataclass(frozen=True)
class GraphProfile:
    """How a sparsity pattern's graph grows, to predict the fill of a direct factor.

    Attributes
    ----------
    size : int
        Unknowns.
    nnz : int
        Stored entries.
    eccentricity : float
        Mean, over a few seed vertices, of the largest breadth-first distance.
    effective_dimension : float
        ``log(size) / log(eccentricity)``: about 2 for a planar lattice, 3 for a
        cubic one, larger for random graphs
        (4 and more at 10^4 nodes): their separators -- and so the
        Cholesky fill -- grow linearly with the size.
    """

    size: int
    nnz: int
    eccentricity: float
    effective_dimension: float

    @property
    def mean_degree(self) -> float:
        """Off-diagonal entries per row."""
        return max(self.nnz - self.size, 0) / max(self.size, 1)

    @property
    def direct_max_size(self) -> float:
        """Largest size at which ``auto`` still factors a graph like this one directly."""
        if self.mesh_like:
            return float("inf")
        return RANDOM_DIRECT_SIZE * (4.0 / max(self.mean_degree, 1.0)) ** 1.6

    @property
    def mesh_like(self) -> bool:
        """Small separators (nested-dissection fill about ``n log n`` to ``n^(4/3)``)."""
        return self.effective_dimension <= MESH_MAX_DIMENSION


def graph_profile(indptr: np.ndarray, indices: np.ndarray, size: int, n_seeds: int = 4, seed: int = 0) -> GraphProfile:
    """Breadth-first eccentricities of a few seed vertices of the pattern's graph (O(n_seeds * nnz))."""
    size = int(size)
    nnz = int(indptr[-1])
    if size <= 2:
        return GraphProfile(size, nnz, 1.0, 1.0)
    graph = sp.csr_matrix((np.ones(nnz), np.asarray(indices), np.asarray(indptr)), shape=(size, size))
    seeds = np.random.default_rng(seed).choice(size, size=min(n_seeds, size), replace=False)
    dist = shortest_path(graph, method="D", directed=False, unweighted=True, indices=seeds)
    ecc = []
    for row in dist:
        finite = row[np.isfinite(row)]
        ecc.append(float(finite.max()) if len(finite) > 1 else 1.0)
    mean_ecc = max(float(np.mean(ecc)), 1.0)
    dim = math.log(size) / math.log(mean_ecc) if mean_ecc > 1.0 else float("inf")
    return GraphProfile(size, nnz, mean_ecc, dim)


def choose_solver(indptr: np.ndarray, indices: np.ndarray, size: int, requested: str = "auto") -> str:
    """The method :class:`SPDSolver` uses for this pattern: ``requested`` resolved.

    ``auto``: a direct factor (``cholmod`` if installed, else ``superlu``) up
    to :data:`DIRECT_MAX_SIZE` unknowns, for mesh-like graphs
    (:attr:`GraphProfile.mesh_like`: nested-dissection fill ``n log n`` to
    ``n^(4/3)``) and for graphs that expand like random graphs up to
    :attr:`GraphProfile.direct_max_size` (their separators, and so the
    factor's dense fronts, grow linearly with the size, faster with the mean
    degree); ``cg`` above.  ``cholmod`` without scikit-sparse: ``superlu``
    and a logged note.
    """
    check_solver(requested)
    if requested == "cholmod" and not cholmod_available():
        _note("labtrain.linalg: scikit-sparse (CHOLMOD) is not installed; using SuperLU "
              "(pip install -e '.[fast]' in the labtrain checkout, for sparse Cholesky)")
        return "superlu"
    if requested != "auto":
        return requested
    direct = "cholmod" if cholmod_available() else "superlu"
    if size <= DIRECT_MAX_SIZE:
        return direct
    profile = graph_profile(indptr, indices, size)
    if size <= profile.direct_max_size:
        if direct == "superlu":
            _note("labtrain.linalg: scikit-sparse (CHOLMOD) is not installed; large networks factor with SuperLU "
                  "(pip install -e '.[fast]' in the labtrain checkout, for sparse Cholesky)", logging.INFO)
        return direct
    return "cg"


# ------------------------------------------------------------------ factors
class SPDFactor(abc.ABC):
    """Numeric factorisation (or CG operator) of one matrix; ``solve`` takes and returns rows in the pattern's order.

    Attributes
    ----------
    method : str
        ``"superlu"``, ``"cholmod"`` or ``"cg"``.
    last_result : CGResult or None
        The last CG solve's iterations and residuals (CG only).
    """

    method: str = ""
    last_result: CGResult | None = None

    @abc.abstractmethod
    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        """``A^-1 rhs`` for ``rhs`` of shape (n,) or (n, k); ``x0`` warm-starts CG (ignored by direct methods)."""

    def pivots(self) -> np.ndarray:
        """Pivots ``D`` of ``A = L D L^T`` (no pivoting), one per row in the pattern's order.

        By Sylvester's law of inertia ``A`` has as many negative eigenvalues
        as ``D`` has negative entries.  Direct methods only.
        """
        raise NotImplementedError(f"{self.method} gives no pivots")


class _SuperLUFactor(SPDFactor):
    method = "superlu"

    def __init__(self, lu: spla.SuperLU, order: np.ndarray) -> None:
        self.lu = lu
        self.order = order

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        rhs = np.asarray(rhs, float)
        out = np.empty_like(rhs)
        out[self.order] = self.lu.solve(np.ascontiguousarray(rhs[self.order]))
        return out

    def pivots(self) -> np.ndarray:
        out = np.empty(len(self.order))
        out[self.order] = self.lu.U.diagonal()
        return out


class _CholmodFactor(SPDFactor):
    method = "cholmod"

    def __init__(self, factor) -> None:
        self.factor = factor

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        return self.factor.solve_A(np.asarray(rhs, float))

    def pivots(self) -> np.ndarray:
        d = self.factor.D()
        out = np.empty(len(d))
        out[self.factor.P()] = d
        return out


class _CGFactor(SPDFactor):
    method = "cg"

    def __init__(self, matrix: sp.csr_matrix, preconditioner, rtol: float, max_iter: int | None,
                 owner: "SPDSolver") -> None:
        self.matrix = matrix
        self.preconditioner = preconditioner
        self.rtol = rtol
        self.max_iter = max_iter
        self.owner = owner

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        result = block_pcg(self.matrix, rhs, x0, self.preconditioner, rtol=self.rtol, max_iter=self.max_iter)
        self.last_result = result
        self.owner._record_iterations(result.iterations)
        return result.x


# ------------------------------------------------------------------ solver
class SPDSolver:
    """Factor SPD matrices of one fixed CSC pattern, doing the pattern-only work once.

    Parameters
    ----------
    indptr, indices : ndarray
        CSC structure (sorted, no duplicates, both triangles stored) of a
        ``size x size`` symmetric pattern.
    size : int
        Matrix size.
    solver : {"auto", "superlu", "cholmod", "cg"}
        See the module docstring; ``auto`` resolves through :func:`choose_solver`.
    rtol : float, optional
        CG tolerance (relative residual per column); default :data:`DEFAULT_CG_RTOL`.
    preconditioner : {"auto", "jacobi", "amg"}
        CG preconditioner; ``auto``: AMG for mesh-like graphs when pyamg is
        installed, Jacobi otherwise.
    max_iter : int, optional
        CG iteration limit.
    ordering : str
        CHOLMOD ordering method (``"default"``: AMD, METIS when AMD fills in
        badly; ``"amd"``, ``"metis"``, ``"nesdis"``, ``"colamd"``, ``"natural"``).
    ldl : bool
        CHOLMOD: simplicial ``L D L^T`` (pivots available, indefinite
        matrices factor without error as long as no pivot is zero), instead
        of a supernodal ``L L^T``.

    Attributes
    ----------
    method : str
        The resolved method.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, size: int, *, solver: str = "auto",
                 rtol: float | None = None, preconditioner: str = "auto", max_iter: int | None = None,
                 ordering: str = "default", ldl: bool = False) -> None:
        self.indptr = np.asarray(indptr, np.int32)
        self.indices = np.asarray(indices, np.int32)
        self.size = int(size)
        self.method = choose_solver(self.indptr, self.indices, self.size, solver)
        self.rtol = DEFAULT_CG_RTOL if rtol is None else float(rtol)
        if not self.rtol > 0:
            raise ValueError(f"rtol must be > 0, got {rtol}")
        if preconditioner not in ("auto",) + PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {('auto',) + PRECONDITIONERS}, got {preconditioner!r}")
        if preconditioner == "amg" and not pyamg_available():
            _note("labtrain.linalg: pyamg is not installed; CG uses the Jacobi preconditioner "
                  "(pip install -e '.[fast]' in the labtrain checkout, for AMG)")
            preconditioner = "jacobi"
        self._preconditioner_kind = preconditioner
        self.max_iter = max_iter
        self.ordering = ordering
        self.ldl = bool(ldl)
        self._symbolic = None  # CHOLMOD analysis
        self._perm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # SuperLU layout
        self._amg = None  # reusable AMG preconditioner and the iterations it gave when built
        self._amg_iterations: int | None = None
        self._last_iterations: int | None = None

    # -------------------------------------------------------------- helpers
    def matrix(self, data: np.ndarray) -> sp.csc_matrix:
        """The CSC matrix with these values."""
        return sp.csc_matrix((np.asarray(data, float), self.indices, self.indptr), shape=(self.size, self.size))

    @property
    def preconditioner(self) -> str:
        """The CG preconditioner this solver uses (resolved from ``auto`` on first use)."""
        if self._preconditioner_kind == "auto":
            kind = "jacobi"
            if pyamg_available() and self.size > 5_000:
                if graph_profile(self.indptr, self.indices, self.size).mesh_like:
                    kind = "amg"
            self._preconditioner_kind = kind
        return self._preconditioner_kind

    def _record_iterations(self, iterations: int) -> None:
        self._last_iterations = iterations
        if self._amg is not None and self._amg_iterations is None:
            self._amg_iterations = iterations

    # -------------------------------------------------------------- factor
    def factor(self, data: np.ndarray) -> SPDFactor:
        """Numeric factorisation (direct) or CG operator for the matrix with values ``data`` (CSC order).

        Raises
        ------
        NotPositiveDefiniteError
            If a direct factorisation meets a zero (or, for Cholesky, negative) pivot.
        """
        data = np.asarray(data, float)
        if data.shape != (len(self.indices),):
            raise ValueError(f"expected {len(self.indices)} matrix values, got shape {data.shape}")
        if self.method == "superlu":
            return self._factor_superlu(data)
        if self.method == "cholmod":
            return self._factor_cholmod(data)
        return self._factor_cg(data)

    def _factor_superlu(self, data: np.ndarray) -> SPDFactor:
        n = self.size
        if self._perm is None:
            # SuperLU's MMD on A^T + A depends on the pattern only (no pivoting, symmetric mode): find it once,
            # lay the matrix out in that order, and factor it as it stands from then on.
            try:
                probe = spla.splu(self.matrix(data), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                  options=_SPLU_OPTIONS)
            except RuntimeError as exc:
                raise NotPositiveDefiniteError(f"singular matrix ({exc})") from None
            new_index = np.asarray(probe.perm_c, dtype=np.int64)  # row/column p moves to new_index[p]
            cols = np.repeat(np.arange(n), np.diff(self.indptr))
            key = new_index[cols] * n + new_index[self.indices]
            take = np.argsort(key, kind="stable")
            skey = key[take]
            indices = (skey % n).astype(np.int32)
            indptr = np.searchsorted(skey // n, np.arange(n + 1)).astype(np.int32)
            self._perm = (take, indices, indptr, np.argsort(new_index))
        take, indices, indptr, order = self._perm
        mat = sp.csc_matrix((data[take], indices, indptr), shape=(n, n))
        try:
            lu = spla.splu(mat, permc_spec="NATURAL", diag_pivot_thresh=0.0, options=_SPLU_OPTIONS)
        except RuntimeError as exc:
            raise NotPositiveDefiniteError(f"singular matrix ({exc})") from None
        return _SuperLUFactor(lu, order)

    def _factor_cholmod(self, data: np.ndarray) -> SPDFactor:
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze  # optional dependency

        mat = self.matrix(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CHOLMOD's "not positive definite" also comes as a warning
            if self._symbolic is None:
                mode = "simplicial" if self.ldl else "supernodal"
                self._symbolic = analyze(mat, mode=mode, ordering_method=self.ordering)
            try:
                factor = self._symbolic.cholesky(mat)
            except CholmodNotPositiveDefiniteError as exc:
                raise NotPositiveDefiniteError(f"matrix is not positive definite ({exc})") from None
        if self.ldl:
            d = factor.D()
            if not np.all(np.isfinite(d)) or np.any(d == 0):
                raise NotPositiveDefiniteError("zero pivot in the L D L^T factorisation: singular matrix")
        return _CholmodFactor(factor)

    def _factor_cg(self, data: np.ndarray) -> SPDFactor:
        mat = self.matrix(data).tocsr()
        kind = self.preconditioner
        if kind == "amg":
            # An AMG hierarchy built for earlier values still preconditions well after small updates:
            # rebuild only when CG needs half again as many iterations as right after the last build.
            stale = (self._amg is None or self._amg_iterations is None or self._last_iterations is None
                     or self._last_iterations > 1.5 * self._amg_iterations + 2)
            if stale:
                self._amg = make_preconditioner(mat, "amg")
                self._amg_iterations = None
            precond = self._amg
        else:
            precond = make_preconditioner(mat, kind)
        return _CGFactor(mat, precond, self.rtol, self.max_iter, self)
