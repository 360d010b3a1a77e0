"""Partial updates: train only a subset of the edges."""

from __future__ import annotations

import numpy as np

__all__ = ["UpdateMask", "MASK_MODES"]

MASK_MODES = ("fixed", "random")


class UpdateMask:
    """Choose which parameters an update may change.

    Parameters
    ----------
    n_params : int
        Number of parameters.
    fraction : float
        Fraction of parameters updated, in (0, 1].
    mode : {"fixed", "random"}
        ``fixed``: one subset drawn once; ``random``: a new subset every step.
    seed : int
        Seed; the random mode draws step ``k``'s subset from ``(seed, k)`` so a
        resumed run sees the same subsets.
    """

    def __init__(self, n_params: int, fraction: float = 1.0, mode: str = "fixed", seed: int = 0) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"update fraction must be in (0, 1], got {fraction}")
        if mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
        self.n_params, self.fraction, self.mode, self.seed = n_params, float(fraction), mode, int(seed)
        self.n_selected = max(1, int(round(fraction * n_params)))
        self._fixed = self._draw(np.random.default_rng([self.seed, 7919]))

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        mask = np.zeros(self.n_params, bool)
        mask[rng.choice(self.n_params, self.n_selected, replace=False)] = True
        return mask

    def at_step(self, step: int) -> np.ndarray | None:
        """Boolean mask for ``step`` (``None`` means every parameter)."""
        if self.fraction >= 1.0:
            return None
        if self.mode == "fixed":
            return self._fixed
        return self._draw(np.random.default_rng([self.seed, 104729, step]))
