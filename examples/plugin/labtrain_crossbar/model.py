"""Physics of a memristive crossbar read by transimpedance amplifiers (numpy only, no labtrain imports).

Row ``i`` is driven at ``v_in_i`` (V); column ``j`` is held at virtual ground by a
transimpedance amplifier with feedback resistance ``R_f`` followed by a unity
inverter, so ``v_out_j = R_f * sum_i G_ij v_in_i`` with crosspoint conductances
``G_ij`` (S).
"""

from __future__ import annotations

import numpy as np


class CrossbarModel:
    """``v_out = R_f * v_in @ G`` for a batch; ``G`` has shape (n_rows, n_cols)."""

    def __init__(self, conductance_s: np.ndarray, feedback_ohm: float) -> None:
        self.conductance_s = np.asarray(conductance_s, float)
        if self.conductance_s.ndim != 2:
            raise ValueError(f"conductance_s must be (n_rows, n_cols), got shape {self.conductance_s.shape}")
        if not feedback_ohm > 0:
            raise ValueError(f"feedback_ohm must be > 0, got {feedback_ohm}")
        self.feedback_ohm = float(feedback_ohm)

    def output_v(self, inputs_v: np.ndarray) -> np.ndarray:
        """Output voltages (B, n_cols) for row voltages ``inputs_v`` (B, n_rows)."""
        return self.feedback_ohm * np.asarray(inputs_v, float) @ self.conductance_s

    def gradient(self, inputs_v: np.ndarray, error_v: np.ndarray) -> np.ndarray:
        """``dC/dG`` (n_rows, n_cols) of ``C = mean_b 1/2 |v_out - t|^2`` given ``error_v = v_out - t``."""
        x = np.asarray(inputs_v, float)
        return self.feedback_ohm * x.T @ np.asarray(error_v, float) / len(x)
