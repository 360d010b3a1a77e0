"""Experiment-file keys of ``[chip] type = "nonreciprocal"`` (beyond the shared ones of :mod:`labtrain.config`)."""

from __future__ import annotations

from labtrain.kinds.nonreciprocal.model import ACTIVATIONS as NR_ACTIVATIONS
from labtrain.kinds.nonreciprocal.model import DYNAMICS as NR_DYNAMICS
from labtrain.kinds.nonreciprocal.model import INIT_MODES as NR_INIT_MODES
from labtrain.linalg.backend import ARRAY_BACKENDS

from labtrain.schema import Field

F = Field
OWN: dict[str, dict[str, Field]] = {
    "chip": {
        "backward": F("bool", True, "nonreciprocal: separate trainable backward couplings W_b (false: strictly "
                      "feedforward)"),
        "dynamics": F("str", "hopfield", "nonreciprocal: hopfield (gain rho'(s) on the synaptic input) or leaky",
                      choices=NR_DYNAMICS),
        "activation": F("str", "smooth_hard_sigmoid", "nonreciprocal: activation rho", choices=NR_ACTIVATIONS),
        "weight_init": F("str", "asymmetric", "nonreciprocal: backward couplings drawn independently "
                         "(asymmetric), as W_f^T (symmetric) or zero", choices=NR_INIT_MODES),
        "weight_init_scale": F("float", 1.0, "nonreciprocal: weights start N(0, scale^2 / fan_in) "
                               "(dimensionless)", 0, 1e3),
        "weight_bound": F("float", 5.0, "nonreciprocal: couplings clipped to [-bound, bound] (dimensionless)",
                          0, 1e6, low_open=True),
        "unit_bias_bound": F("float", 5.0, "nonreciprocal: unit biases clipped to [-bound, bound] (dimensionless)",
                             0, 1e6, low_open=True),
        "array_backend": F("str", "numpy", "nonreciprocal: where the relaxation runs, numpy (the reference) or jax "
                           "(the same algorithm compiled, on the default JAX device, float64; needs pip install "
                           "-e '.[accel]' in the labtrain checkout, else numpy and a warning)", choices=ARRAY_BACKENDS),
    },
    "task": {
        "state_target_on": F("float", 1.0, "nonreciprocal: target state of the true class's output unit "
                             "(dimensionless; inputs are scaled to [0, 1])", -1e3, 1e3),
        "state_target_off": F("float", 0.0, "nonreciprocal: target state of the other output units",
                              -1e3, 1e3),
    },
}
