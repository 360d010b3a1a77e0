"""Preconditioned conjugate gradients for many right-hand sides at once.

:func:`block_pcg` runs independent CG iterations on every column of the
right-hand side in lock step, so each iteration costs one sparse
matrix-matrix product for all columns (not one Python-level solve per
column).  Each column stops when its residual satisfies
``||b - A x||_2 <= rtol ||b||_2``; converged columns are frozen.

Preconditioners (:func:`make_preconditioner`):

``"jacobi"``
    ``M = diag(A)^-1``.  Cheap and effective on graph Laplacians whose nodes
    have very different degrees or conductances (random graphs).
``"amg"``
    One V-cycle of smoothed-aggregation algebraic multigrid (pyamg).
    Mesh-like graphs (lattices) converge in a few tens of iterations
    whatever their size.  Needs the optional ``pyamg`` package.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import scipy.sparse as sp

__all__ = ["block_pcg", "make_preconditioner", "PRECONDITIONERS", "CGResult", "CGDidNotConvergeError"]

PRECONDITIONERS = ("jacobi", "amg")
_log = logging.getLogger("labtrain.linalg")


class CGDidNotConvergeError(RuntimeError):
    """Conjugate gradients reached the iteration limit above the tolerance."""


class CGResult:
    """Solution of :func:`block_pcg` and how it was reached.

    Attributes
    ----------
    x : ndarray, shape (n, k)
    iterations : int
        Iterations of the slowest column.
    relative_residual : ndarray, shape (k,)
        ``||b - A x|| / ||b||`` per column (0 for a zero right-hand side).
    """

    def __init__(self, x: np.ndarray, iterations: int, relative_residual: np.ndarray) -> None:
        self.x = x
        self.iterations = iterations
        self.relative_residual = relative_residual


def make_preconditioner(matrix: sp.csr_matrix, kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function applying the preconditioner ``M ~ A^-1`` to a block ``(n, k)``.

    Parameters
    ----------
    matrix : sparse matrix
        The SPD matrix ``A``.
    kind : {"jacobi", "amg"}
        See the module docstring.
    """
    if kind == "jacobi":
        diag = matrix.diagonal()
        if np.any(diag <= 0):
            raise np.linalg.LinAlgError("matrix has a non-positive diagonal entry: not positive definite")
        inv = (1.0 / diag)[:, None]
        return lambda r: inv * r
    if kind == "amg":
        import pyamg  # optional dependency, imported only when AMG is asked for

        ml = pyamg.smoothed_aggregation_solver(sp.csr_matrix(matrix), symmetry="symmetric", max_coarse=500)
        operator = ml.aspreconditioner(cycle="V")

        def apply(r: np.ndarray) -> np.ndarray:
            return np.column_stack([operator @ r[:, j] for j in range(r.shape[1])]) if r.shape[1] else r.copy()

        return apply
    raise ValueError(f"unknown preconditioner {kind!r}; choose from {PRECONDITIONERS}")


def block_pcg(matrix: sp.spmatrix, rhs: np.ndarray, x0: np.ndarray | None = None,
              preconditioner: Callable[[np.ndarray], np.ndarray] | None = None, *, rtol: float = 1e-10,
              max_iter: int | None = None) -> CGResult:
    """Solve ``A X = B`` (A symmetric positive definite) column by column, in lock step.

    Parameters
    ----------
    matrix : sparse matrix, shape (n, n)
        ``A`` (CSR is fastest).
    rhs : ndarray, shape (n,) or (n, k)
        ``B``.
    x0 : ndarray, same shape as ``rhs``, optional
        Initial guess (warm start); default 0.
    preconditioner : callable, optional
        Applies ``M ~ A^-1`` to an ``(n, j)`` block; default identity.
    rtol : float
        Stop a column when ``||b - A x||_2 <= rtol ||b||_2``.
    max_iter : int, optional
        Iteration limit (default ``max(200, 10 n)``).

    Returns
    -------
    CGResult

    Raises
    ------
    CGDidNotConvergeError
        If a column is still above the tolerance after ``max_iter`` iterations.
    """
    b = np.asarray(rhs, float)
    vector = b.ndim == 1
    b2 = b[:, None] if vector else b
    n, k = b2.shape
    limit = max(200, 10 * n) if max_iter is None else int(max_iter)
    x = np.zeros((n, k)) if x0 is None else np.array(np.asarray(x0, float).reshape(n, k), copy=True)
    apply_m = preconditioner if preconditioner is not None else (lambda r: r.copy())
    b_norm = np.linalg.norm(b2, axis=0)
    target = rtol * b_norm
    r = b2 - matrix @ x if x0 is not None else b2.copy()
    res = np.linalg.norm(r, axis=0)
    active = np.flatnonzero(res > target)
    x[:, b_norm == 0] = 0.0
    it = 0
    if len(active):
        ra = r[:, active]
        z = apply_m(ra)
        p = z.copy()
        rz = np.einsum("ij,ij->j", ra, z)
        while True:
            it += 1
            ap = matrix @ p
            pap = np.einsum("ij,ij->j", p, ap)
            if np.any(pap <= 0):
                raise np.linalg.LinAlgError("conjugate gradients met p^T A p <= 0: the matrix is not positive definite")
            alpha = rz / pap
            x[:, active] += alpha * p
            ra -= alpha * ap
            res_a = np.linalg.norm(ra, axis=0)
            res[active] = res_a
            done = res_a <= target[active]
            if done.all():
                break
            if it >= limit:
                worst = float(np.max(res_a / np.where(b_norm[active] > 0, b_norm[active], 1.0)))
                raise CGDidNotConvergeError(f"conjugate gradients did not reach rtol {rtol:g} in {limit} iterations "
                                            f"(relative residual {worst:.3g})")
            if done.any():
                keep = ~done
                active, ra, p, rz = active[keep], ra[:, keep], p[:, keep], rz[keep]
            z = apply_m(ra)
            rz_new = np.einsum("ij,ij->j", ra, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
    rel = np.where(b_norm > 0, res / np.where(b_norm > 0, b_norm, 1.0), 0.0)
    out = x[:, 0] if vector else x
    return CGResult(out, it, rel)
