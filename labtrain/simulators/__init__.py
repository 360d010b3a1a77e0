"""Physics models: pure numerical steady-state solvers, no I/O and no instruments.

Also the instrument twins: ports of :mod:`labtrain.ports` backed by these models
(:class:`SimulatedDAQ` over a circuit such as :class:`ResistorBenchCircuit`,
:class:`SimulatedPotArray`, :class:`SimulatedLockIn`).
"""

from .daq_twin import AOWrite, DOWrite, LinearCircuit, SimulatedDAQ, twin_speed_ratio
from .linear_resistor import INPUT_MODES, LinearResistorNetwork, SteadyState
from .lockin_twin import SimulatedLockIn
from .pot_twin import SimulatedPotArray
from .resistor_bench import ResistorBenchCircuit, ResistorTwin, build_resistor_twin

__all__ = ["LinearResistorNetwork", "SteadyState", "INPUT_MODES", "SimulatedDAQ", "LinearCircuit", "AOWrite",
           "DOWrite", "twin_speed_ratio", "SimulatedLockIn", "SimulatedPotArray", "ResistorBenchCircuit",
           "ResistorTwin", "build_resistor_twin"]
