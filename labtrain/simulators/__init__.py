"""Physics models: pure numerical steady-state solvers, no I/O and no instruments."""

from .linear_resistor import INPUT_MODES, LinearResistorNetwork, SteadyState

__all__ = ["LinearResistorNetwork", "SteadyState", "INPUT_MODES"]
