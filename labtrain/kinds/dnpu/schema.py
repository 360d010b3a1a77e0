"""Experiment-file keys of ``[chip] type = "dnpu"`` (beyond the shared ones of :mod:`labtrain.config`)."""

from __future__ import annotations

from labtrain.kinds.dnpu.layout import default_layout
from labtrain.protocols.homodyne import DEFAULT_AMPLITUDES_V, HGE_MODES

DNPU_MODELS = ("hopping", "surrogate")
_LAYOUT = default_layout()

from labtrain.schema import Field

F = Field
_HGE = ("hge",)  # [learning] keys read by rule hge only
OWN: dict[str, dict[str, Field]] = {
    "chip": {
        "model": F("str", "hopping", "dnpu, ideal/twin: device physics, the synthetic hopping network "
                   "(HoppingDNPU) or a fitted surrogate file (labtrain characterize)", choices=DNPU_MODELS),
        "surrogate_path": F("str", "", "dnpu, model = surrogate: the surrogate file, relative to the experiment "
                            "file: .h5 from labtrain characterize, .npz of a real device in the Twente layout "
                            "(W0.., b0.., input_min_V, input_max_V, amplification; data on inputs 3 and 4) or a "
                            "SkyNEt/brains-py .pt (needs torch); it brings its electrode ranges, roles, gain and "
                            "clipping"),
        "model_seed": F("int", 5, "dnpu, model = hopping: seed of the synthetic device (5: the documented "
                        "default device)", 0, 2**32 - 1),
        "electrode_low_v": F("floats", list(_LAYOUT.low_v), "dnpu: lowest allowed voltage of every activation "
                             "electrode (V, electrode order)", -10, 10),
        "electrode_high_v": F("floats", list(_LAYOUT.high_v), "dnpu: highest allowed voltage of every "
                              "activation electrode (V)", -10, 10),
        "data_electrodes": F("ints", list(_LAYOUT.data_electrodes), "dnpu: electrodes carrying the task's inputs",
                             0, 1000),
        "control_electrodes": F("ints", list(_LAYOUT.control_electrodes), "dnpu: electrodes whose voltages are "
                                "trained", 0, 1000),
        "gain_ohm": F("float", _LAYOUT.gain_ohm, "dnpu: transimpedance gain of the output amplifier (V per A)",
                      0, 1e13, low_open=True),
        "clip_a": F("float", _LAYOUT.clip_a, "dnpu: the amplifier saturates at +-clip_a (A at its input)",
                    0, 1, low_open=True),
        "abort_abs_v": F("float", _LAYOUT.abort_abs_v, "dnpu: no electrode may ever see |V| >= abort_abs_v (V; "
                         "every range must stay below it)", 0, 10, low_open=True),
    },
    "backend": {
        "read_noise_a": F("float", 0.0, "dnpu, ideal: white noise on every sample of the output current "
                          "(RMS, A)", 0, 1e-3),
    },
    "learning": {
        "amplitudes_v": F("floats", list(DEFAULT_AMPLITUDES_V), "hge: peak tone amplitude per control electrode "
                          "(V; one value for all, or one per control; below half each control's range)",
                          0, 1, low_open=True, rules=_HGE),
        "tones_hz": F("floats", [], "hge: tone per control electrode (Hz, on the window's 1/window_s grid, "
                      "collision-free; [] = planned)", 0, 1e7, low_open=True, rules=_HGE),
        "hge_mode": F("str", "parallel", "hge: all controls at once (parallel), one at a time (sequential) or "
                      "finite differences", choices=HGE_MODES, rules=_HGE),
        "fd_step_v": F("float", 0.01, "hge, finite_difference: step on each control (V)", 0, 1, low_open=True,
                       rules=_HGE),
        "hge_loss": F("str", "squared", "hge: squared error, or one_sided (a squared hinge about the threshold "
                      "half-way between [task] target_on_v and target_off_v: outputs beyond their target on the "
                      "correct side are left alone)", choices=("squared", "one_sided"), rules=_HGE),
        "fd_central": F("bool", True, "hge, finite_difference: central (2P measurements) or forward (P)",
                        rules=_HGE),
    },
}
