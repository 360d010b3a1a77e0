"""Batched local readouts, stored densely or in factored (low-rank) form.

A linear network's edge voltage drops for a batch are ``D @ C``: a fixed
edge-response matrix ``D`` (edges x terminals) times per-example terminal
drives ``C`` (terminals x batch).  Keeping that factorisation lets a learning
rule form batch averages such as ``mean_b(dv_b * du_b)`` in ``O(m k^2)``
instead of materialising an ``m x B`` array.  Instrument-backed chips return
the dense form; the protocols never need to know which one they got.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EdgeDrops"]


class EdgeDrops:
    """Edge voltage drops (volts) of a batch, logically shape ``(n_examples, n_edges)``.

    Build with :meth:`dense` or :meth:`factored`.
    """

    def __init__(self, values: np.ndarray | None = None, basis: np.ndarray | None = None,
                 coeffs: np.ndarray | None = None) -> None:
        if (values is None) == (basis is None):
            raise ValueError("give either dense values or a basis with coefficients")
        self._values = None if values is None else np.asarray(values, float)
        self.basis = basis
        self.coeffs = coeffs

    @classmethod
    def dense(cls, values: np.ndarray) -> "EdgeDrops":
        """Drops given as an array of shape ``(n_examples, n_edges)``."""
        return cls(values=np.atleast_2d(values))

    @classmethod
    def factored(cls, basis: np.ndarray, coeffs: np.ndarray) -> "EdgeDrops":
        """Drops ``(basis @ coeffs).T`` with basis ``(n_edges, k)`` and coeffs ``(k, n_examples)``."""
        return cls(basis=basis, coeffs=coeffs)

    @property
    def is_factored(self) -> bool:
        return self._values is None

    @property
    def n_examples(self) -> int:
        return self._values.shape[0] if self._values is not None else self.coeffs.shape[1]

    @property
    def values(self) -> np.ndarray:
        """The drops as a dense ``(n_examples, n_edges)`` array (materialised on demand)."""
        if self._values is None:
            self._values = (self.basis @ self.coeffs).T
        return self._values

    def mean_product(self, other: "EdgeDrops") -> np.ndarray:
        """Per-edge batch mean of ``self * other``, shape ``(n_edges,)``."""
        if self.n_examples != other.n_examples:
            raise ValueError(f"batch sizes differ: {self.n_examples} vs {other.n_examples}")
        if self.is_factored and other.is_factored and self.basis is other.basis:
            moment = (other.coeffs @ self.coeffs.T) / self.n_examples  # (k, k)
            return np.einsum("ek,ek->e", self.basis, self.basis @ moment)
        return np.einsum("be,be->e", self.values, other.values) / self.n_examples

    def mean_square(self) -> np.ndarray:
        """Per-edge batch mean of the squared drop, shape ``(n_edges,)``."""
        return self.mean_product(self)
