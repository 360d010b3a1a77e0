"""Instrument twins: simulated DAQ, lock-in and digital-pot ports behind the same port contracts
(:mod:`labtrain.instruments.ports`) as the real drivers in :mod:`labtrain.drivers`.

A kind's twin circuit (what the simulated DAQ evaluates at every sample) lives in the kind's
package, e.g. :mod:`labtrain.kinds.resistor.twin`.
"""

from labtrain.simulators._record import next_event
from labtrain.simulators.daq_twin import AOWrite, DOWrite, LinearCircuit, SimulatedDAQ
from labtrain.simulators.lockin_twin import AmplitudeChange, SimulatedLockIn
from labtrain.simulators.pot_twin import PotWrite, SimulatedPotArray

__all__ = ["SimulatedDAQ", "LinearCircuit", "AOWrite", "DOWrite", "SimulatedLockIn",
           "AmplitudeChange", "SimulatedPotArray", "PotWrite", "next_event"]
