"""Exact (adjoint) gradient of a linear resistor network.

Free state ``v``; adjoint ``u``: sources shorted, error current ``r = v_O - t``
injected at the outputs.  Then ``dC/dg_e = -(B^T u)_e (B^T v)_e`` exactly
(ALGORITHMS.md section 1).  On hardware only the *measured outputs* come from
the chip; the network model at the known conductances supplies the rest, so
the rule needs output readout only.
"""

from __future__ import annotations

import numpy as np

from ..chip.base import NETWORK_MODEL, Chip
from .base import GradientEstimate, GradientEstimator, half_squared_error

__all__ = ["AnalyticGradient"]


class AnalyticGradient(GradientEstimator):
    """Exact gradient from measured outputs plus the chip's network model."""

    name = "analytic"
    requires = frozenset({NETWORK_MODEL})

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        measured = chip.measure(inputs)
        model = chip.network_model()
        free = model.steady_state(inputs)
        error_a = measured.output_v - targets_v  # injected as a current, 1 A per volt of error
        adjoint = model.steady_state(np.zeros_like(inputs), output_current_a=error_a)
        gradient = -adjoint.edge_drops.mean_product(free.edge_drops)
        return GradientEstimate(gradient, half_squared_error(measured.output_v, targets_v), measured.output_v, 1)
