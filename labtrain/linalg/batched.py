"""Many symmetric matrices of one sparsity pattern, factored together.

Newton solves of a nonlinear network, or Hessians of an oscillator lattice,
give one matrix per problem (example, time sample, random start), all with
the pattern of the network's graph.  :class:`BatchedSPD` finds a
fill-reducing ordering of that pattern once, lays every block out in it, and
factors the block-diagonal matrix of a batch in one call: one symbolic
analysis per batch size (cached), one numeric factorisation per Newton step
-- no Python loop over problems, no dense ``O(n^3)`` work.

Methods: ``"cholmod"`` (scikit-sparse; supernodal ``L L^T``, or simplicial
``L D L^T`` with ``ldl=True``) and ``"superlu"`` (SciPy, no pivoting: ``L U``
with ``U``'s diagonal the ``L D L^T`` pivots).  ``"auto"`` takes CHOLMOD when
installed.  With ``ldl=True`` matrices need not be definite: the pivots give
each block's inertia (Sylvester), e.g. to tell a minimum from a saddle.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from labtrain.linalg.assembly import BlockDiagonalPattern
from labtrain.linalg.spd import NotPositiveDefiniteError, _note, check_solver, cholmod_available

__all__ = ["BatchedSPD", "BatchedFactor"]

_SPLU_OPTIONS = {"SymmetricMode": True}


def _grid_size(n: int) -> int:
    """Smallest size >= n on the grid 1, 2, ..., 8, then ceil(8 * 1.25^k)."""
    if n <= 8:
        return n
    k = math.ceil(math.log(n / 8.0) / math.log(1.25) - 1e-12)
    size = math.ceil(8.0 * 1.25**k)
    while size < n:  # guard against rounding
        k += 1
        size = math.ceil(8.0 * 1.25**k)
    return size


class BatchedFactor:
    """Factorisation of a batch of blocks; solves and pivots per block."""

    def __init__(self, owner: "BatchedSPD", n_blocks: int, lu: spla.SuperLU | None = None, cholmod=None,
                 n_padded: int | None = None) -> None:
        self.owner = owner
        self.n_blocks = n_blocks
        self.n_padded = n_blocks if n_padded is None else n_padded
        self._lu = lu
        self._cholmod = cholmod

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve every block: ``rhs`` (n_blocks, size) or (n_blocks, size, k) -> same shape.

        Rows are in the pattern's (original) order.
        """
        rhs = np.asarray(rhs, float)
        o = self.owner
        vector = rhs.ndim == 2
        r3 = rhs[..., None] if vector else rhs
        k = r3.shape[2]
        laid = np.zeros((self.n_padded, o.size, k))
        laid[:self.n_blocks, o.new_index] = r3  # row p of a block moves to new_index[p]
        flat = laid.reshape(self.n_padded * o.size, k)
        if self._lu is not None:
            sol = self._lu.solve(np.ascontiguousarray(flat))
        else:
            sol = self._cholmod.solve_A(flat)
        sol = np.asarray(sol).reshape(self.n_padded, o.size, k)[:self.n_blocks, o.new_index]
        return sol[..., 0] if vector else sol

    def pivots(self) -> np.ndarray:
        """Pivots ``D`` of every block's ``L D L^T`` in the pattern's row order, shape (n_blocks, size)."""
        o = self.owner
        if self._lu is not None:
            d = self._lu.U.diagonal()
        else:
            raw = self._cholmod.D()
            d = np.empty_like(raw)
            d[self._cholmod.P()] = raw  # natural ordering: P is the identity, kept for safety
        return d.reshape(self.n_padded, o.size)[:self.n_blocks, o.new_index]


class BatchedSPD:
    """Factor batches of matrices that share one symmetric CSC pattern.

    Parameters
    ----------
    indptr, indices : ndarray
        CSC structure of one ``size x size`` block (sorted, both triangles, no duplicates).
    size : int
        Block size.
    solver : {"auto", "cholmod", "superlu"}
        ``auto``: CHOLMOD when scikit-sparse is installed, else SuperLU
        (``cholmod`` without it falls back with a logged note).  ``cg`` is
        not offered for batches (each block would need its own stopping rule).
    ldl : bool
        Factor ``L D L^T`` (indefinite blocks allowed, :meth:`BatchedFactor.pivots`)
        instead of ``L L^T`` (CHOLMOD only; SuperLU always gives the pivots).

    Notes
    -----
    Values of a batch come as ``data`` of shape (n_blocks, nnz) in the
    block's CSC order; :meth:`layout` maps them to the fill-reducing layout.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, size: int, *, solver: str = "auto",
                 ldl: bool = False) -> None:
        check_solver(solver)
        if solver == "cg":
            raise ValueError("solver 'cg' is not available for batched blocks; use 'auto', 'cholmod' or 'superlu'")
        if solver in ("auto", "cholmod") and cholmod_available():
            method = "cholmod"
        else:
            if solver == "cholmod":
                _note("labtrain.linalg: scikit-sparse (CHOLMOD) is not installed; using SuperLU "
                      "(pip install -e '.[fast]' in the labtrain checkout, for sparse Cholesky)")
            method = "superlu"
        self.method = method
        self.ldl = bool(ldl)
        self.size = n = int(size)
        indptr = np.asarray(indptr, np.int64)
        indices = np.asarray(indices, np.int64)
        nnz = int(indptr[-1])
        # One fill-reducing ordering of the block (pattern only).
        if method == "cholmod":
            from sksparse.cholmod import analyze  # optional dependency

            spd = sp.csc_matrix((np.ones(nnz), indices, indptr), shape=(n, n)) + n * sp.eye(n, format="csc")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                perm = np.asarray(analyze(spd.tocsc(), ordering_method="default").P(), np.int64)
            new_index = np.empty(n, np.int64)
            new_index[perm] = np.arange(n)
        else:
            spd = sp.csc_matrix((np.ones(nnz), indices, indptr), shape=(n, n)) + n * sp.eye(n, format="csc")
            probe = spla.splu(spd.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=_SPLU_OPTIONS)
            new_index = np.asarray(probe.perm_c, np.int64)
        self.new_index = new_index  # row/column p of a block moves to new_index[p]
        cols = np.repeat(np.arange(n), np.diff(indptr))
        key = new_index[cols] * n + new_index[indices]
        take = np.argsort(key, kind="stable")
        skey = key[take]
        self._take = take
        laid_indices = skey % n
        laid_indptr = np.searchsorted(skey // n, np.arange(n + 1))
        self.blocks = BlockDiagonalPattern(laid_indptr, laid_indices, n)
        self._symbolic: dict[int, object] = {}
        # values of an identity block in the laid-out order (pads a batch up to a cached analysis)
        self._identity = (laid_indices == np.repeat(np.arange(n), np.diff(laid_indptr))).astype(float)

    def layout(self, data: np.ndarray) -> np.ndarray:
        """Block values (n_blocks, nnz) in the pattern's CSC order -> in the fill-reducing layout."""
        return np.asarray(data, float)[:, self._take]

    def factor(self, data: np.ndarray) -> BatchedFactor:
        """Factor every block: ``data`` (n_blocks, nnz) in the pattern's CSC order.

        Raises
        ------
        NotPositiveDefiniteError
            A zero pivot (``ldl`` or SuperLU) or a non-positive one (CHOLMOD ``L L^T``).
        """
        data = np.atleast_2d(np.asarray(data, float))
        n_blocks = data.shape[0]
        laid = self.layout(data)
        if self.method == "superlu":
            mat = self.blocks.matrix(laid)
            try:
                lu = spla.splu(mat, permc_spec="NATURAL", diag_pivot_thresh=0.0, options=_SPLU_OPTIONS)
            except RuntimeError as exc:
                raise NotPositiveDefiniteError(f"singular matrix ({exc})") from None
            return BatchedFactor(self, n_blocks, lu=lu)
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze  # optional dependency

        # Newton drops converged problems, so batch sizes shrink step by step: pad a batch with identity
        # blocks up to the next size on a 1.25x grid, whose symbolic analysis (as costly as a numeric
        # factorisation) is then reused.
        n_padded = _grid_size(n_blocks)
        if n_padded > n_blocks:
            laid = np.concatenate([laid, np.broadcast_to(self._identity, (n_padded - n_blocks, len(self._identity)))])
        mat = self.blocks.matrix(laid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            symbolic = self._symbolic.get(n_padded)
            if symbolic is None:
                symbolic = analyze(mat, mode="simplicial" if self.ldl else "auto", ordering_method="natural")
                if len(self._symbolic) >= 32:
                    self._symbolic.pop(next(iter(self._symbolic)))
                self._symbolic[n_padded] = symbolic
            try:
                factor = symbolic.cholesky(mat)
            except CholmodNotPositiveDefiniteError as exc:
                raise NotPositiveDefiniteError(f"matrix is not positive definite ({exc})") from None
        d = factor.D()  # CHOLMOD's simplicial L D L^T does not stop at a non-positive pivot: check them
        if not np.all(np.isfinite(d)) or np.any(d == 0) or (not self.ldl and np.any(d < 0)):
            raise NotPositiveDefiniteError("zero pivot: singular matrix" if self.ldl or not np.any(d < 0)
                                           else "negative pivot: matrix is not positive definite")
        return BatchedFactor(self, n_blocks, cholmod=factor, n_padded=n_padded)
