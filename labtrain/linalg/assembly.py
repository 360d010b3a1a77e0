"""Fixed sparsity patterns whose values are a linear function of parameters.

A weighted graph Laplacian (reduced to the free nodes) has the same pattern
for every set of edge weights; only its values change.  :func:`csc_assembly`
finds that pattern once and returns a sparse operator ``op`` with
``data = op @ weights`` in the pattern's CSC order, so re-assembling after a
parameter update is one sparse matrix-vector product (no COO sorting, no
slicing).  :func:`laplacian_terms` lists the four ``(row, col, sign, edge)``
terms of every edge of a reduced Laplacian.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["csc_assembly", "laplacian_terms", "BlockDiagonalPattern"]


def csc_assembly(rows: np.ndarray, cols: np.ndarray, sign: np.ndarray, edge: np.ndarray,
                 size: int, n_edges: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """CSC pattern of ``sum_t w[edge_t] * sign_t * [rows_t, cols_t]`` and the map ``w -> data``.

    Parameters
    ----------
    rows, cols : ndarray of int
        Row and column of every term (``0 <= . < size``).
    sign : ndarray of float
        Coefficient of every term.
    edge : ndarray of int
        Which weight every term scales (``0 <= . < n_edges``).
    size : int
        The matrix is ``size x size``.
    n_edges : int
        Number of weights.

    Returns
    -------
    (indptr, indices, op)
        CSC structure (sorted, no duplicates) and ``op`` with ``data = op @ w``.
    """
    key = np.asarray(cols, np.int64) * size + np.asarray(rows, np.int64)
    slots, slot_of = np.unique(key, return_inverse=True)
    indices = (slots % size).astype(np.int32)
    indptr = np.searchsorted(slots // size, np.arange(size + 1)).astype(np.int32)
    op = sp.csr_matrix((np.asarray(sign, float), (slot_of.ravel(), np.asarray(edge))), shape=(len(slots), n_edges))
    return indptr, indices, op


def laplacian_terms(edges: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Terms ``(rows, cols, sign, edge)`` of the Laplacian ``sum_e w_e (u_a - u_b)(u_a - u_b)^T`` on free nodes.

    ``position[node]`` is the node's row among the free nodes, or -1 for a
    fixed node (its terms are dropped).
    """
    edges = np.asarray(edges, np.int64)
    m = len(edges)
    pa, pb = position[edges[:, 0]], position[edges[:, 1]]
    ids = np.arange(m)
    rows = np.r_[pa, pb, pa, pb]
    cols = np.r_[pa, pb, pb, pa]
    sign = np.r_[np.ones(2 * m), -np.ones(2 * m)]
    edge = np.r_[ids, ids, ids, ids]
    keep = (rows >= 0) & (cols >= 0)
    return rows[keep], cols[keep], sign[keep], edge[keep]


class BlockDiagonalPattern:
    """``n_blocks`` copies of one CSC block along the diagonal, cached per block count.

    Parameters
    ----------
    indptr, indices : ndarray
        CSC structure of one ``size x size`` block.
    size : int
        Block size.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, size: int) -> None:
        self.indptr = np.asarray(indptr, np.int64)
        self.indices = np.asarray(indices, np.int64)
        self.size = int(size)
        self.nnz = int(self.indptr[-1])
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def structure(self, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)`` (int32 where it fits) of the block-diagonal matrix."""
        got = self._cache.get(n_blocks)
        if got is None:
            offs = np.arange(n_blocks, dtype=np.int64)
            indices = (self.indices[None, :] + (offs * self.size)[:, None]).ravel()
            indptr = np.r_[(self.indptr[None, :-1] + (offs * self.nnz)[:, None]).ravel(), n_blocks * self.nnz]
            itype = np.int32 if n_blocks * max(self.nnz, self.size) < 2**31 - 1 else np.int64
            got = (indptr.astype(itype), indices.astype(itype))
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[n_blocks] = got
        return got

    def matrix(self, data: np.ndarray) -> sp.csc_matrix:
        """Block-diagonal CSC matrix from ``data`` of shape ``(n_blocks, nnz)`` (block after block)."""
        data = np.asarray(data, float)
        n_blocks = data.shape[0]
        indptr, indices = self.structure(n_blocks)
        n = n_blocks * self.size
        return sp.csc_matrix((data.ravel(), indices, indptr), shape=(n, n))
