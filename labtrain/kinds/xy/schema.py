"""Experiment-file keys of ``[chip] type = "xy"`` (beyond the shared ones of :mod:`labtrain.config`)."""

from __future__ import annotations

import math

from labtrain.schema import Field

F = Field
OWN: dict[str, dict[str, Field]] = {
    "chip": {
        "lattice_inset": F("int", 0, "xy, lattice / stacked_lattice: move the default input column this many "
                           "columns in from the left edge and the output column as many in from the right (0 = "
                           "the edges; 1 on a 5x5 lattice puts them 2 columns apart, which XOR needs)", 0, 1000),
        "layers": F("int", 2, "stacked_lattice: number of rows x cols lattices, node (r, c) of one linked to "
                    "node (r, c) of the next", 1, 1000),
        "bias": F("str", "vector", "xy: trainable bias fields on the free oscillators: none, field (amplitude at "
                  "fixed phase bias_phase_rad) or vector (amplitude and phase)", choices=("none", "field", "vector")),
        "bias_on": F("str", "free", "xy: bias fields on every free oscillator, or on the hidden ones only "
                     "(not the outputs)", choices=("free", "hidden")),
        "bias_phase_rad": F("float", math.pi / 2, "xy, bias = field: fixed phase of every bias field (rad)",
                            -2 * math.pi, 2 * math.pi),
        "coupling_min_rad_per_s": F("float", -2.0, "xy: lowest coupling W (rad/s; negative = antiferromagnetic)",
                                    -1e6, 1e6),
        "coupling_max_rad_per_s": F("float", 2.0, "xy: highest coupling W (rad/s)", -1e6, 1e6),
        "bias_max_rad_per_s": F("float", 2.0, "xy: every bias component lies in [-bias_max_rad_per_s, "
                                "+bias_max_rad_per_s] (rad/s)", 0, 1e6, low_open=True),
        "init_coupling_rad_per_s": F("floats", [-1.0, 1.0], "xy: initial couplings uniform in [low, high] "
                                     "(rad/s; seeded by [run] seed)", -1e6, 1e6),
        "init_bias_rad_per_s": F("float", 0.0, "xy: initial bias components uniform in [-x, x] (rad/s)",
                                 0, 1e6),
        "n_starts": F("int", 8, "xy: random initial phase states relaxed per example (multistability: the output "
                      "is their circular mean)", 1, 100_000),
        "clamp_grounds": F("bool", False, "xy: clamp the ground (reference) oscillators at ground_phase_rad; "
                           "false: they are ordinary free oscillators"),
        "ground_phase_rad": F("float", 0.0, "xy, clamp_grounds: phase of the reference oscillators (rad)",
                              -2 * math.pi, 2 * math.pi),
    },
    "task": {
        "input_phase_rad": F("float", math.pi / 2, "xy: inputs (features min-max scaled) span [-x, +x] (rad)",
                             0, math.pi, low_open=True),
        "target_phase_rad": F("float", math.pi / 2, "xy: target phase +x for the true class, -x otherwise (rad)",
                              0, math.pi, low_open=True),
    },
    "learning": {
        "cost": F("str", "cosine", "xy: output cost, cosine (1 - cos(phi - tau))/2 or log "
                  "-log[(1 + eps + cos(phi - tau))/(2 + eps)]", choices=("cosine", "log")),
        "cost_eps": F("float", 0.1, "xy, cost = log: eps", 0, 1e6, low_open=True),
        "max_shift_rad": F("float", 0.0, "xy_ep: basin-jump guard -- random starts whose nudged state moved more "
                           "than this from the free one (rad, on any oscillator) are left out of the gradient "
                           "(0 = keep all; 0.5 for lattices at beta = 0.01)", 0, math.pi, rules=("xy_ep",)),
    },
    "run": {
        "record_maps_every": F("int", 0, "xy: store spatial maps (couplings, response to the inputs) every N steps "
                               "(0 = never)", 0, 10_000_000),
    },
}
