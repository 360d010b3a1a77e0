"""Experiment-file keys of ``[chip] type = "nonlinear_resistor"`` (beyond the shared ones of :mod:`labtrain.config`)."""

from __future__ import annotations


from labtrain.schema import Field

F = Field
OWN: dict[str, dict[str, Field]] = {
    "chip": {
        "edge_kind": F("str", "linear", "nonlinear_resistor, graph topologies (not layered): kind of every edge, "
                       "linear (trainable conductance) or transistor (trainable gate voltage)",
                       choices=("linear", "transistor")),
        "diode": F("str", "diode", "nonlinear_resistor, layered: fixed diodes from every hidden node to ground, "
                   "exponential (Shockley) or piecewise-linear ideal_diode", choices=("diode", "ideal_diode")),
        "diode_orientation": F("str", "both", "nonlinear_resistor, layered: diodes conducting above ground "
                               "(down), below (up) or an antiparallel pair (both: a soft clip at about +-0.5 V)",
                               choices=("both", "down", "up")),
        "layer_gain": F("float", 1.0, "nonlinear_resistor, layered: voltage gain A of ideal bidirectional "
                        "amplifiers between consecutive node layers (forward A v, backward current / A; Kendall et "
                        "al. 2020); 1 = passive", 1, 1e6),
        "differential_outputs": F("bool", False, "nonlinear_resistor, layered, ideal backend: two output nodes "
                                  "per output, read as the voltage between them (signed weights from the hidden "
                                  "layer with passive parts); EP's nudge is a floating current source across each "
                                  "pair (rules ep and analytic)"),
        "skip_inputs": F("bool", True, "nonlinear_resistor, layered: also join every input (and the ground) to "
                         "the outputs"),
        "diode_saturation_current_a": F("float", 1e-12, "nonlinear_resistor, diode: saturation current I_s (A)",
                                        0, 1, low_open=True),
        "diode_ideality": F("float", 1.0, "nonlinear_resistor, diode: ideality factor n", 0, 100, low_open=True),
        "diode_series_ohm": F("float", 0.0, "nonlinear_resistor, diode: series resistance (ohm)", 0, 1e12),
        "diode_parallel_s": F("float", 0.0, "nonlinear_resistor, diode: parallel (leak) conductance (S)", 0, 1e6),
        "ideal_diode_on_s": F("float", 1e-3, "nonlinear_resistor, ideal_diode: on conductance (S)", 0, 1e6,
                              low_open=True),
        "ideal_diode_off_s": F("float", 1e-8, "nonlinear_resistor, ideal_diode: off conductance (S)", 0, 1e6),
        "ideal_diode_on_v": F("float", 0.3, "nonlinear_resistor, ideal_diode: turn-on voltage (V)", -10, 10),
        "transistor_gain_a_per_v2": F("float", 1e-3, "nonlinear_resistor, transistor: gain K (A/V^2)", 0, 1e3,
                                      low_open=True),
        "transistor_threshold_v": F("float", 0.5, "nonlinear_resistor, transistor: threshold voltage (V)",
                                    -10, 10),
        "transistor_off_s": F("float", 1e-8, "nonlinear_resistor, transistor: off conductance (S)", 0, 1e6),
        "gate_min_v": F("float", 0.6, "nonlinear_resistor, transistor: lowest gate voltage (V)", -20, 20),
        "gate_max_v": F("float", 3.0, "nonlinear_resistor, transistor: highest gate voltage (V)", -20, 20),
    },
    "backend": {
        "twin_diode_tolerance": F("float", 0.0, "nonlinear_resistor, twin: relative spread (std) of every diode "
                                  "part's forward voltage (its ideality factor), unknown to the chip's model",
                                  0, 0.5),
        "twin_temperature_k": F("float", 0.0, "nonlinear_resistor, twin: bench temperature (K) of the diodes' "
                                "thermal voltage and saturation current (about -2 mV/K); 0 = the model's 300 K",
                                0, 500),
    },
    "wiring": {
        "gate_ao": F("strs", [], "nonlinear_resistor: AO channel of every transistor edge's gate, in edge order "
                     "(default: the AO channels after the outputs); pot_channels lists one pot per linear edge"),
    },
}
