"""Instrument twins: simulated DAQ, lock-in and digital-pot ports behind the same port contracts
(:mod:`labtrain.instruments.ports`) as the real drivers in :mod:`labtrain.drivers`.

A kind's twin circuit (what the simulated DAQ evaluates at every sample) lives in the kind's
package, e.g. :mod:`labtrain.kinds.resistor.twin`.
"""

from labtrain.simulators.daq_twin import AOWrite, DOWrite, LinearCircuit, SimulatedDAQ, twin_speed_ratio
from labtrain.simulators.lockin_twin import SimulatedLockIn
from labtrain.simulators.pot_twin import SimulatedPotArray

__all__ = ["SimulatedDAQ", "LinearCircuit", "AOWrite", "DOWrite", "twin_speed_ratio", "SimulatedLockIn",
           "SimulatedPotArray"]
