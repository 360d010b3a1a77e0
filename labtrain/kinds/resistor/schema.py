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
    "learning": {
        "beta_s": F("float", 1e-6, "EP nudge conductance beta (S)", 0, 1e6, low_open=True, rules=("ep",)),
        "eta": F("float", 0.1, "Coupled-learning clamp fraction eta", 0, 1, low_open=True,
                 rules=("cl", "cl_clocked")),
    },
}
