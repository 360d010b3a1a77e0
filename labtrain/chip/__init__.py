"""Chips: the one interface learning protocols talk to (ideal, twin, hardware)."""

from .base import (CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, CapabilityError, Chip,
                   ClampNudge, CurrentNudge, Measurement, ParameterSpec, PotQuantizer)
from .ideal import IdealChip
from .instrument import AcquisitionSettings, InstrumentChip

__all__ = [
    "Chip", "IdealChip", "InstrumentChip", "AcquisitionSettings", "CapabilityError", "ParameterSpec", "PotQuantizer", "CurrentNudge",
    "ClampNudge", "Measurement", "EDGE_DROPS", "CURRENT_NUDGE", "CLAMP_NUDGE", "NETWORK_MODEL",
]
