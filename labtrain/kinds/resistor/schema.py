"""Experiment-file keys of ``[chip] type = "resistor_network"`` (beyond the shared ones of :mod:`labtrain.config`)."""

from __future__ import annotations

from labtrain.kinds.resistor.model import INPUT_MODES

from labtrain.schema import Field

F = Field
OWN: dict[str, dict[str, Field]] = {
    "chip": {
        "input_mode": F("str", "voltage", "Inputs as voltage or current sources", choices=INPUT_MODES),
    },
    "backend": {
        "pot_steps": F("int", 0, "Quantise conductances to this many pot taps (0 = continuous)", 0, 1_000_000),
    },
}
