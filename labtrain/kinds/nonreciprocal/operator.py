"""Per-example matrices built from one shared coupling matrix, without a dense (B, n, n) array.

The Jacobian of a layered rate network, ``J_b = diag(a_b) + diag(g_b) W diag(rho'_b)``,
and asymmetric EP's feedback ``2A_b = G_b W D_b - D_b W^T G_b`` are, per
example, a diagonal plus row- and column-scaled copies of the *shared*
coupling matrix ``W``.  :class:`ScaledCouplings` keeps them in that form:

    M_b = diag(diag_b) + sum_k diag(row_k,b) Q_k diag(col_k,b)  [+ dense_b]

so a product ``M_b s_b`` for the whole batch is one matrix product with each
shared ``Q_k`` (``O(B n^2)`` flops on a shared operand instead of a batched
``(B, n, n)`` product, which at 784-512-10 moves 70 MB per call), and a solve
only materialises the few blocks that block elimination needs
(:func:`labtrain.kinds.nonreciprocal.model.NonReciprocalNetwork.solve`).
``dense_b`` (optional, ``(B, n, n)``) carries a per-example matrix with no such
structure, e.g. a user's own extra force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ScaledCouplings"]


def _scale(v: np.ndarray | None, idx: slice | np.ndarray) -> np.ndarray | float:
    """``v[..., idx]`` (``1.0`` for an absent scale)."""
    return 1.0 if v is None else v[..., idx]


@dataclass(frozen=True)
class ScaledCouplings:
    """``M_b = diag(diag_b) + sum_k diag(row_k,b) Q_k diag(col_k,b) + dense_b`` for a batch of ``B`` examples.

    Parameters
    ----------
    diag : ndarray, shape (B, n) or (n,)
        The diagonal part.
    terms : tuple of (row, Q, col)
        ``Q`` (n, n) shared by every example; ``row``/``col`` shape (B, n), (n,)
        or ``None`` (no scaling).
    dense : ndarray, shape (B, n, n) or (n, n), optional
        A part with no structure (added as is).
    """

    diag: np.ndarray
    terms: tuple = ()
    dense: np.ndarray | None = None

    __array_ufunc__ = None  # ``ndarray + ScaledCouplings`` goes to __radd__, not to an elementwise object sum

    @property
    def n(self) -> int:
        return self.diag.shape[-1]

    # ------------------------------------------------------------ algebra
    def matvec(self, s: np.ndarray) -> np.ndarray:
        """``M_b s_b`` for every example (``s`` shape (B, n))."""
        out = self.diag * s
        for row, q, col in self.terms:
            out = out + _scale(row, slice(None)) * ((_scale(col, slice(None)) * s) @ q.T)
        if self.dense is not None:
            out = out + (s @ self.dense.T if self.dense.ndim == 2 else np.matmul(self.dense, s[..., None])[..., 0])
        return out

    def diagonal(self) -> np.ndarray:
        """``diag(M_b)`` (B x n, or n when nothing is per-example)."""
        out = self.diag
        for row, q, col in self.terms:
            out = out + _scale(row, slice(None)) * np.diag(q) * _scale(col, slice(None))
        if self.dense is not None:
            out = out + (np.diag(self.dense) if self.dense.ndim == 2 else np.diagonal(self.dense, axis1=1, axis2=2))
        return out

    def transpose(self) -> "ScaledCouplings":
        """``M_b^T``."""
        dense = None if self.dense is None else np.swapaxes(self.dense, -1, -2)
        return ScaledCouplings(self.diag, tuple((col, q.T, row) for row, q, col in self.terms), dense)

    @property
    def T(self) -> "ScaledCouplings":
        return self.transpose()

    def scaled(self, factor: float) -> "ScaledCouplings":
        """``factor * M``."""
        dense = None if self.dense is None else factor * self.dense
        return ScaledCouplings(factor * self.diag, tuple((row, factor * q, col) for row, q, col in self.terms), dense)

    def __neg__(self) -> "ScaledCouplings":
        return self.scaled(-1.0)

    def __add__(self, other) -> "ScaledCouplings":
        """Sum with another :class:`ScaledCouplings` or a plain matrix ((n, n) or (B, n, n))."""
        if other is None:
            return self
        if isinstance(other, ScaledCouplings):
            return ScaledCouplings(self.diag + other.diag, self.terms + other.terms,
                                   _sum_dense(self.dense, other.dense))
        m = np.asarray(other, float)
        if m.ndim == 2 and not np.any(m - np.diag(np.diag(m))):
            return ScaledCouplings(self.diag + np.diag(m), self.terms, self.dense)
        if m.ndim == 2:
            return ScaledCouplings(self.diag, self.terms + ((None, m, None),), self.dense)
        return ScaledCouplings(self.diag, self.terms, _sum_dense(self.dense, m))

    __radd__ = __add__

    def __sub__(self, other) -> "ScaledCouplings":
        if other is None:
            return self
        return self + (-other if isinstance(other, ScaledCouplings) else -np.asarray(other, float))

    def take(self, idx: np.ndarray) -> "ScaledCouplings":
        """The matrices of a subset of the batch."""
        def pick(v):
            return v if v is None or v.ndim < 2 else v[idx]

        dense = self.dense if self.dense is None or self.dense.ndim == 2 else self.dense[idx]
        return ScaledCouplings(pick(self.diag), tuple((pick(r), q, pick(c)) for r, q, c in self.terms), dense)

    # -------------------------------------------------------- materialise
    def block(self, rows: slice, cols: slice, batch: int) -> np.ndarray:
        """The dense block ``M_b[rows, cols]`` of every example, shape (batch, r, c)."""
        idx_r, idx_c = np.arange(self.n)[rows], np.arange(self.n)[cols]
        out = np.zeros((batch, idx_r.size, idx_c.size))
        for row, q, col in self.terms:
            sub = q[rows, cols]
            if np.any(sub):
                r = _scale(row, rows)
                c = _scale(col, cols)
                out += (r[..., :, None] if np.ndim(r) else r) * sub * (c[..., None, :] if np.ndim(c) else c)
        common, at_r, at_c = np.intersect1d(idx_r, idx_c, return_indices=True)
        if common.size:
            out[:, at_r, at_c] += np.broadcast_to(self.diag, (batch, self.n))[:, common]
        if self.dense is not None:
            out += self.dense[..., rows, cols]
        return out

    def couples_within(self, rows: slice) -> bool:
        """Whether any off-diagonal entry of ``M[rows, rows]`` can be non-zero."""
        def off(m):
            sub = m[..., rows, rows]
            k = sub.shape[-1]
            return np.any(sub * (1.0 - np.eye(k)))

        return any(off(q) for _, q, _ in self.terms) or (self.dense is not None and off(self.dense))

    def dense_matrix(self, batch: int) -> np.ndarray:
        """Every ``M_b`` as one (batch, n, n) array."""
        return self.block(slice(None), slice(None), batch)


def _sum_dense(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b
