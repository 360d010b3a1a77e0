"""The chip contract: the one interface learning rules, the run loop and the GUI talk to.

Kinds of chips (resistor networks, DNPUs, ...) live in :mod:`labtrain.kinds`, one package each.
"""

from labtrain.chip.base import (CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, CapabilityError, Chip,
                                ClampNudge, CurrentNudge, Measurement, ParameterSpec, PotQuantizer)

__all__ = [
    "Chip", "CapabilityError", "ParameterSpec", "PotQuantizer", "CurrentNudge",
    "ClampNudge", "Measurement", "EDGE_DROPS", "CURRENT_NUDGE", "CLAMP_NUDGE", "NETWORK_MODEL",
]
