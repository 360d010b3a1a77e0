"""Exact (adjoint) gradient of a linear resistor network.

Free state ``v``; adjoint ``u``: sources shorted, error current ``r = v_O - t``
injected at the outputs.  Then ``dC/dg_e = -(B^T u)_e (B^T v)_e`` exactly
(docs/algorithms.md, section 1).  On hardware only the *measured outputs* come from
the chip; the network model at the known conductances supplies the rest, so
the rule needs output readout only.
"""

from __future__ import annotations

import numpy as np

from labtrain.chip.base import NETWORK_MODEL, Chip
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error

__all__ = ["AnalyticGradient", "adjoint_gradient"]


def adjoint_gradient(model, inputs: np.ndarray, error_v: np.ndarray) -> np.ndarray:
    """``dC/dg`` from the model's free state and its adjoint state driven by ``error_v = v_O - t``.

    The error is injected at the outputs as a current (1 A per volt of error)
    with every source shorted; ``dC/dg_e = -mean_b (B^T u)_e (B^T v)_e``.
    A model with its own ``adjoint_gradient(inputs, error_v)`` (a nonlinear
    network: adjoint of the network linearised at the free state, one entry
    per trainable parameter) computes it itself.
    """
    own = getattr(model, "adjoint_gradient", None)
    if own is not None:
        return own(inputs, error_v)
    free = model.steady_state(inputs)
    adjoint = model.steady_state(np.zeros_like(inputs), output_current_a=error_v)
    return -adjoint.edge_drops.mean_product(free.edge_drops)


class AnalyticGradient(GradientEstimator):
    """Exact gradient from measured outputs plus the chip's network model."""

    name = "analytic"
    requires = frozenset({NETWORK_MODEL})

    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        measured = chip.measure(inputs)
        gradient = adjoint_gradient(chip.network_model(), inputs, measured.output_v - targets_v)
        return GradientEstimate(gradient, half_squared_error(measured.output_v, targets_v), measured.output_v, 1)
