"""Experiment files: TOML with sections [experiment], [chip], [backend], [task], [learning], [run].

Every key is declared once in :data:`SCHEMA` with its type, default, allowed
range or choices and a one-line description (the GUI builds its form from the
same table).  :func:`load_experiment` validates a file and raises
:class:`ConfigError` with a one-line message naming the file, the key, the bad
value and what is allowed; unknown keys get a did-you-mean.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrain.instruments.bench_file import parse_instruments
from labtrain.schema import ConfigError, Field, check_value as _check_value, show as _show, suggest as _suggest
from labtrain.physics.network import DEFAULT_G_MAX_S, DEFAULT_G_MIN_S
from labtrain.training.optim import OPTIMIZERS
from labtrain.protocols.masks import MASK_MODES
from labtrain.kinds.dnpu.layout import default_layout as _dnpu_layout
from labtrain.protocols.homodyne import DEFAULT_AMPLITUDES_V, HGE_MODES
from labtrain.kinds.resistor.model import INPUT_MODES
from labtrain.kinds.nonreciprocal.model import ACTIVATIONS as NR_ACTIVATIONS
from labtrain.kinds.nonreciprocal.model import DYNAMICS as NR_DYNAMICS
from labtrain.kinds.nonreciprocal.model import INIT_MODES as NR_INIT_MODES
from labtrain.training.tasks import DECODERS, TASKS
from labtrain.kinds.xy.tasks import PHASE_TASKS

__all__ = ["ConfigError", "Field", "SCHEMA", "Experiment", "load_experiment", "parse_experiment", "RULES", "BACKENDS",
           "CHIP_RULES", "CHIP_TYPES", "CHIP_BACKENDS", "CHIP_TOPOLOGIES"]

#: Learning rules of every ``[chip] type`` (the first is the type's default rule).  A new chip type adds
#: itself here, to CHIP_BACKENDS / CHIP_TOPOLOGIES, and to ``labtrain.build.CHIP_BUILDERS``.
CHIP_RULES: dict[str, tuple[str, ...]] = {
    "resistor_network": ("cl", "analytic", "ep", "cl_clocked", "fp"),
    "xy": ("xy_ep", "xy_implicit"),
    "nonreciprocal": ("aep", "dyadic_ep", "plain_ep", "vf_ep", "implicit"),
    "nonlinear_resistor": ("fp", "analytic"),
    "dnpu": ("hge",),
}
CHIP_TYPES = tuple(CHIP_RULES)
RULES = tuple(dict.fromkeys(r for rules in CHIP_RULES.values() for r in rules))
BACKENDS = ("ideal", "twin", "hardware")
AVAILABLE_BACKENDS = ("ideal", "twin", "hardware")
TOPOLOGIES = ("lattice", "all_to_all", "layered", "random", "edge_list", "stacked_lattice")
#: Backends that can realise each chip type (types not listed: every backend).
CHIP_BACKENDS: dict[str, tuple[str, ...]] = {"xy": ("ideal",), "nonreciprocal": ("ideal",),
                                             "nonlinear_resistor": ("ideal",)}
#: Topologies each chip type accepts (types not listed: every topology but stacked_lattice).
CHIP_TOPOLOGIES: dict[str, tuple[str, ...]] = {
    "xy": ("lattice", "stacked_lattice", "all_to_all", "layered", "random", "edge_list"),
    "nonreciprocal": ("layered",),
    "nonlinear_resistor": ("layered", "lattice", "all_to_all", "random", "edge_list"),
    "dnpu": (),  # no network: [chip] topology does not apply
}
#: Chip types whose inputs and targets are voltages (the task's ``_v`` keys).
VOLTAGE_CHIPS = ("resistor_network", "nonlinear_resistor", "dnpu")
#: Chip types built on a graph (labtrain.physics.network.Network): lattice / random / edge-list keys apply.
GRAPH_CHIPS = ("resistor_network", "xy", "nonlinear_resistor")
XY, NONRECIPROCAL = ("xy",), ("nonreciprocal",)
RESISTOR, NONLINEAR, DNPU = ("resistor_network",), ("nonlinear_resistor",), ("dnpu",)
#: Chip types with trainable edge conductances (siemens).
CONDUCTANCE_CHIPS = RESISTOR + NONLINEAR
#: Chip types the AC rules (fp, hge) run on: their demodulation window keys apply.
AC_CHIPS = RESISTOR + NONLINEAR + DNPU
FP_ACTIVATIONS = ("", "ac", "dc")
DNPU_MODELS = ("hopping", "surrogate")
_LAYOUT = _dnpu_layout()
#: [chip] keys of a DNPU that describe the device; a surrogate file brings its own.
DNPU_LAYOUT_KEYS = ("electrode_low_v", "electrode_high_v", "data_electrodes", "control_electrodes", "gain_ohm",
                    "clip_a", "abort_abs_v")


F = Field
SCHEMA: dict[str, dict[str, Field]] = {
    "experiment": {
        "name": F("str", "", "Run name (default: the file's stem)"),
        "description": F("str", "", "Free text stored with the run"),
    },
    "chip": {
        "type": F("str", "resistor_network", "Kind of learning machine: resistor network, XY oscillator network, "
                  "non-reciprocal (layered rate) network, nonlinear resistive network (diodes, transistor edges) "
                  "or DNPU (dopant-network processing unit)", choices=CHIP_TYPES),
        "topology": F("str", "lattice", "Network builder (nonreciprocal: layered only; stacked_lattice: xy only; "
                      "nonlinear_resistor: default layered, the diode network)", choices=TOPOLOGIES,
                      types=GRAPH_CHIPS + NONRECIPROCAL),
        "rows": F("int", 4, "Lattice rows", 1, 2000, types=GRAPH_CHIPS),
        "cols": F("int", 4, "Lattice columns", 2, 2000, types=GRAPH_CHIPS),
        "diagonals": F("bool", False, "Lattice: add diagonal edges", types=GRAPH_CHIPS),
        "skip": F("int", 0, "Lattice: extra links this many nodes apart (0 = none)", 0, 1000, types=GRAPH_CHIPS),
        "lattice_inset": F("int", 0, "xy, lattice / stacked_lattice: move the default input column this many "
                           "columns in from the left edge and the output column as many in from the right (0 = "
                           "the edges; 1 on a 5x5 lattice puts them 2 columns apart, which XOR needs)", 0, 1000,
                           types=XY),
        "layers": F("int", 2, "stacked_lattice: number of rows x cols lattices, node (r, c) of one linked to "
                    "node (r, c) of the next", 1, 1000, types=XY),
        "n_nodes": F("int", 16, "all_to_all / random: number of nodes", 2, 10_000_000, types=GRAPH_CHIPS),
        "n_edges": F("int", 40, "random: number of edges", 1, 100_000_000, types=GRAPH_CHIPS),
        "hidden_layers": F("ints", [4], "layered (and nonreciprocal): sizes of the hidden layers", 1, 100_000,
                           types=GRAPH_CHIPS + NONRECIPROCAL),
        "edge_list": F("str", "", "edge_list: path of the edge file (relative to the experiment file)", types=GRAPH_CHIPS),
        "graph_seed": F("int", 0, "random: seed of the graph and of its terminal placement", 0, 2**32 - 1, types=GRAPH_CHIPS),
        "inputs": F("ints", [], "Input node indices (default: placed by the builder)", 0, None, types=GRAPH_CHIPS),
        "outputs": F("ints", [], "Output node indices (default: placed by the builder)", 0, None, types=GRAPH_CHIPS),
        "grounds": F("ints", [], "Ground node indices (resistors: 0 V; xy: reference oscillators; default: "
                     "placed by the builder)", 0, None, types=GRAPH_CHIPS),
        "input_mode": F("str", "voltage", "Inputs as voltage or current sources", choices=INPUT_MODES,
                        types=RESISTOR),
        "g_min_s": F("float", DEFAULT_G_MIN_S, "Lowest edge conductance (S)", 0, 1e6, low_open=True,
                     types=CONDUCTANCE_CHIPS),
        "g_max_s": F("float", DEFAULT_G_MAX_S, "Highest edge conductance (S)", 0, 1e6, low_open=True,
                     types=CONDUCTANCE_CHIPS),
        "g_init": F("str", "geometric_mean", "Initial conductances (nonlinear_resistor: of the linear edges; "
                    "transistor gates start mid-range, or uniformly random with the *_random choices)",
                    choices=("geometric_mean", "uniform_random", "log_uniform_random", "min", "max"),
                    types=CONDUCTANCE_CHIPS),
        # --- nonlinear_resistor: labtrain.kinds.nonlinear.model (diodes, transistor edges)
        "edge_kind": F("str", "linear", "nonlinear_resistor, graph topologies (not layered): kind of every edge, "
                       "linear (trainable conductance) or transistor (trainable gate voltage)",
                       choices=("linear", "transistor"), types=NONLINEAR),
        "diode": F("str", "diode", "nonlinear_resistor, layered: fixed diodes from every hidden node to ground, "
                   "exponential (Shockley) or piecewise-linear ideal_diode", choices=("diode", "ideal_diode"),
                   types=NONLINEAR),
        "diode_orientation": F("str", "both", "nonlinear_resistor, layered: diodes conducting above ground "
                               "(down), below (up) or an antiparallel pair (both: a soft clip at about +-0.5 V)",
                               choices=("both", "down", "up"), types=NONLINEAR),
        "skip_inputs": F("bool", True, "nonlinear_resistor, layered: also join every input (and the ground) to "
                         "the outputs", types=NONLINEAR),
        "diode_saturation_current_a": F("float", 1e-12, "nonlinear_resistor, diode: saturation current I_s (A)",
                                        0, 1, low_open=True, types=NONLINEAR),
        "diode_ideality": F("float", 1.0, "nonlinear_resistor, diode: ideality factor n", 0, 100, low_open=True,
                            types=NONLINEAR),
        "diode_series_ohm": F("float", 0.0, "nonlinear_resistor, diode: series resistance (ohm)", 0, 1e12,
                              types=NONLINEAR),
        "diode_parallel_s": F("float", 0.0, "nonlinear_resistor, diode: parallel (leak) conductance (S)", 0, 1e6,
                              types=NONLINEAR),
        "ideal_diode_on_s": F("float", 1e-3, "nonlinear_resistor, ideal_diode: on conductance (S)", 0, 1e6,
                              low_open=True, types=NONLINEAR),
        "ideal_diode_off_s": F("float", 1e-8, "nonlinear_resistor, ideal_diode: off conductance (S)", 0, 1e6,
                               types=NONLINEAR),
        "ideal_diode_on_v": F("float", 0.3, "nonlinear_resistor, ideal_diode: turn-on voltage (V)", -10, 10,
                              types=NONLINEAR),
        "transistor_gain_a_per_v2": F("float", 1e-3, "nonlinear_resistor, transistor: gain K (A/V^2)", 0, 1e3,
                                      low_open=True, types=NONLINEAR),
        "transistor_threshold_v": F("float", 0.5, "nonlinear_resistor, transistor: threshold voltage (V)",
                                    -10, 10, types=NONLINEAR),
        "transistor_off_s": F("float", 1e-8, "nonlinear_resistor, transistor: off conductance (S)", 0, 1e6,
                              types=NONLINEAR),
        "gate_min_v": F("float", 0.6, "nonlinear_resistor, transistor: lowest gate voltage (V)", -20, 20,
                        types=NONLINEAR),
        "gate_max_v": F("float", 3.0, "nonlinear_resistor, transistor: highest gate voltage (V)", -20, 20,
                        types=NONLINEAR),
        # --- dnpu: labtrain.kinds.dnpu.layout / labtrain.kinds.dnpu.model (synthetic) / dnpu_surrogate (fitted MLP)
        "model": F("str", "hopping", "dnpu, ideal/twin: device physics, the synthetic hopping network "
                   "(HoppingDNPU) or a fitted surrogate file (labtrain characterize)", choices=DNPU_MODELS,
                   types=DNPU),
        "surrogate_path": F("str", "", "dnpu, model = surrogate: the surrogate file (.h5, relative to the "
                            "experiment file); it brings its electrode ranges, roles, gain and clipping",
                            types=DNPU),
        "model_seed": F("int", 5, "dnpu, model = hopping: seed of the synthetic device (5: the documented "
                        "default device)", 0, 2**32 - 1, types=DNPU),
        "electrode_low_v": F("floats", list(_LAYOUT.low_v), "dnpu: lowest allowed voltage of every activation "
                             "electrode (V, electrode order)", -10, 10, types=DNPU),
        "electrode_high_v": F("floats", list(_LAYOUT.high_v), "dnpu: highest allowed voltage of every "
                              "activation electrode (V)", -10, 10, types=DNPU),
        "data_electrodes": F("ints", list(_LAYOUT.data_electrodes), "dnpu: electrodes carrying the task's inputs",
                             0, 1000, types=DNPU),
        "control_electrodes": F("ints", list(_LAYOUT.control_electrodes), "dnpu: electrodes whose voltages are "
                                "trained", 0, 1000, types=DNPU),
        "gain_ohm": F("float", _LAYOUT.gain_ohm, "dnpu: transimpedance gain of the output amplifier (V per A)",
                      0, 1e13, low_open=True, types=DNPU),
        "clip_a": F("float", _LAYOUT.clip_a, "dnpu: the amplifier saturates at +-clip_a (A at its input)",
                    0, 1, low_open=True, types=DNPU),
        "abort_abs_v": F("float", _LAYOUT.abort_abs_v, "dnpu: no electrode may ever see |V| >= abort_abs_v (V; "
                         "every range must stay below it)", 0, 10, low_open=True, types=DNPU),
        # --- xy: oscillator phases phi, energy E = -sum W cos(phi_a - phi_b) - sum h cos(phi - psi)
        "bias": F("str", "vector", "xy: trainable bias fields on the free oscillators: none, field (amplitude at "
                  "fixed phase bias_phase_rad) or vector (amplitude and phase)", choices=("none", "field", "vector"),
                  types=XY),
        "bias_on": F("str", "free", "xy: bias fields on every free oscillator, or on the hidden ones only "
                     "(not the outputs)", choices=("free", "hidden"), types=XY),
        "bias_phase_rad": F("float", math.pi / 2, "xy, bias = field: fixed phase of every bias field (rad)",
                            -2 * math.pi, 2 * math.pi, types=XY),
        "coupling_min_rad_per_s": F("float", -2.0, "xy: lowest coupling W (rad/s; negative = antiferromagnetic)",
                                    -1e6, 1e6, types=XY),
        "coupling_max_rad_per_s": F("float", 2.0, "xy: highest coupling W (rad/s)", -1e6, 1e6, types=XY),
        "bias_max_rad_per_s": F("float", 2.0, "xy: every bias component lies in [-bias_max_rad_per_s, "
                                "+bias_max_rad_per_s] (rad/s)", 0, 1e6, low_open=True, types=XY),
        "init_coupling_rad_per_s": F("floats", [-1.0, 1.0], "xy: initial couplings uniform in [low, high] "
                                     "(rad/s; seeded by [run] seed)", -1e6, 1e6, types=XY),
        "init_bias_rad_per_s": F("float", 0.0, "xy: initial bias components uniform in [-x, x] (rad/s)",
                                 0, 1e6, types=XY),
        "n_starts": F("int", 8, "xy: random initial phase states relaxed per example (multistability: the output "
                      "is their circular mean)", 1, 100_000, types=XY),
        "clamp_grounds": F("bool", False, "xy: clamp the ground (reference) oscillators at ground_phase_rad; "
                           "false: they are ordinary free oscillators", types=XY),
        "ground_phase_rad": F("float", 0.0, "xy, clamp_grounds: phase of the reference oscillators (rad)",
                              -2 * math.pi, 2 * math.pi, types=XY),
        "relax_tol": F("float", 1e-10, "xy / nonreciprocal: relaxation converged when max |dphi/dt| (rad/s) / "
                       "max |ds/dt| (1/time unit) < relax_tol", 0, 1, low_open=True, types=XY + NONRECIPROCAL),
        "relax_max_steps": F("int", 0, "xy / nonreciprocal: relaxation iteration limit (0 = the chip's default: "
                             "xy 20000, nonreciprocal 5000)", 0, 100_000_000, types=XY + NONRECIPROCAL),
        # --- nonreciprocal: layered rate network, ds/dt = F(s, theta) with separate forward/backward couplings
        "backward": F("bool", True, "nonreciprocal: separate trainable backward couplings W_b (false: strictly "
                      "feedforward)", types=NONRECIPROCAL),
        "dynamics": F("str", "hopfield", "nonreciprocal: hopfield (gain rho'(s) on the synaptic input) or leaky",
                      choices=NR_DYNAMICS, types=NONRECIPROCAL),
        "activation": F("str", "smooth_hard_sigmoid", "nonreciprocal: activation rho", choices=NR_ACTIVATIONS,
                        types=NONRECIPROCAL),
        "weight_init": F("str", "asymmetric", "nonreciprocal: backward couplings drawn independently "
                         "(asymmetric), as W_f^T (symmetric) or zero", choices=NR_INIT_MODES, types=NONRECIPROCAL),
        "weight_init_scale": F("float", 1.0, "nonreciprocal: weights start N(0, scale^2 / fan_in) "
                               "(dimensionless)", 0, 1e3, types=NONRECIPROCAL),
        "weight_bound": F("float", 5.0, "nonreciprocal: couplings clipped to [-bound, bound] (dimensionless)",
                          0, 1e6, low_open=True, types=NONRECIPROCAL),
        "unit_bias_bound": F("float", 5.0, "nonreciprocal: unit biases clipped to [-bound, bound] (dimensionless)",
                             0, 1e6, low_open=True, types=NONRECIPROCAL),
    },
    "backend": {
        "kind": F("str", "ideal", "ideal (physics model), twin (simulated instruments) or hardware",
                  choices=BACKENDS),
        "pot_steps": F("int", 0, "Quantise conductances to this many pot taps (0 = continuous)", 0, 1_000_000,
                       types=RESISTOR),
        "read_noise_v": F("float", 0.0, "ideal: Gaussian noise (std, V) on every node reading", 0, 10,
                          types=CONDUCTANCE_CHIPS),
        "read_noise_a": F("float", 0.0, "dnpu, ideal: white noise on every sample of the output current "
                          "(RMS, A)", 0, 1e-3, types=DNPU),
        "rate_hz": F("float", 10_000.0, "Sample clock (Hz): the DAQ's on twin/hardware, the synthesised "
                     "waveforms' of the AC rules (fp, hge) on ideal chips", 0, 1e7, low_open=True),
        "settle_samples": F("int", 10, "twin/hardware: samples discarded at the start of each example's plateau",
                            0, 1_000_000),
        "average_samples": F("int", 10, "twin/hardware: samples averaged per example", 1, 1_000_000),
        "timeout_s": F("float", 10.0, "twin/hardware: longest wait for an instrument beyond the acquisition (s)",
                       0, 3600, low_open=True),
        "retries": F("int", 2, "twin/hardware: extra attempts after an instrument timeout or I/O error", 0, 100),
        "retry_wait_s": F("float", 0.0, "twin/hardware: pause between attempts (s)", 0, 600),
        "max_abs_v": F("float", 2.0, "twin/hardware: no AO channel may leave [-max_abs_v, max_abs_v] (V)",
                       0, 10, low_open=True),
        "max_slew_v_per_s": F("float", 1000.0, "twin/hardware: fastest allowed AO change (V/s)", 0, 1e9,
                              low_open=True),
        "ai_max_abs_v": F("float", 10.0, "twin/hardware: AI input range +- (V)", 0, 10, low_open=True),
        "pot_taps": F("int", 1024, "twin/hardware: taps of every digital pot", 2, 1_000_000),
        "pot_r_total_ohm": F("float", 1e5, "twin/hardware: end-to-end resistance of a pot (ohm)", 0, 1e12,
                             low_open=True),
        "pot_r_wiper_ohm": F("float", 50.0, "twin/hardware: wiper resistance (ohm)", 0, 1e9),
        "pot_r_end_ohm": F("float", 0.0, "twin/hardware: fixed resistance in series with every pot (ohm)", 0, 1e12),
        "pot_tolerance": F("float", 0.0, "twin: relative spread of the parts' true end-to-end resistance", 0, 0.5),
        "twin_noise_white_v": F("float", 1e-4, "twin: white noise on every AI sample (RMS, V)", 0, 10),
        "twin_noise_1f_v": F("float", 0.0, "twin: 1/f noise on every AI channel (RMS, V)", 0, 10),
        "twin_adc_bits": F("int", 16, "twin: ADC resolution (bits)", 4, 32),
        "twin_rc_time_s": F("float", 0.0, "twin: first-order settling time constant of every node (s)", 0, 10),
        "daq_device": F("str", "Dev1", "hardware: NI-DAQmx device name"),
        "pot_interface": F("str", "serial", "hardware: pot array behind a serial bridge or an FTDI SPI chain",
                           choices=("serial", "ftdi")),
        "pot_address": F("str", "", "hardware: serial port (e.g. /dev/ttyACM0) or FTDI URL (ftdi://ftdi:232h/1)"),
    },
    "wiring": {
        "read": F("str", "all", "AI channels on every node (local readouts) or on the outputs only",
                  choices=("all", "outputs")),
        "output_series_ohm": F("float", 10.0, "Resistance between an output's AO and its node when its switch "
                               "is closed (ohm; small: voltage clamp; large, ~1/beta_s: EP current nudge)", 0, 1e12),
        "input_ao": F("strs", [], "AO channel of every input node (default: <daq_device>/ao0, ao1, ...)"),
        "output_ao": F("strs", [], "AO channel behind every output's switch (default: the next AO channels)"),
        "output_switch_do": F("strs", [], "Digital line of every output's switch (default: port0/line0, ...)"),
        "node_ai": F("strs", [], "AI channel of every read node (default: <daq_device>/ai0, ai1, ...)"),
        "read_nodes": F("ints", [], "Nodes read by node_ai (default: all nodes or the outputs, see read)", 0, None),
        "pot_channels": F("ints", [], "Pot channel of every edge (default: edge e on channel e)", 0, None),
    },
    "task": {
        "name": F("str", "xor", "Task", choices=TASKS),
        "input_low_v": F("float", 0.0, "Input voltage for the smallest feature value (V)", -10, 10,
                         types=VOLTAGE_CHIPS),
        "input_high_v": F("float", 1.0, "Input voltage for the largest feature value (V)", -10, 10,
                          types=VOLTAGE_CHIPS),
        "target_on_v": F("float", 0.6, "Target voltage of the output of the true class (V)", -10, 10,
                         types=VOLTAGE_CHIPS),
        "target_off_v": F("float", 0.2, "Target voltage of the other outputs (V)", -10, 10, types=VOLTAGE_CHIPS),
        "bias_inputs_v": F("floats", [], "Constant voltages appended to every input vector (V)", -10, 10,
                           types=VOLTAGE_CHIPS),
        "complementary_inputs": F("bool", False, "Also drive every feature's mirrored voltage "
                                  "(input_low_v + input_high_v - x) on a second input (differential drive)",
                                  types=VOLTAGE_CHIPS),
        "input_phase_rad": F("float", math.pi / 2, "xy: inputs (features min-max scaled) span [-x, +x] (rad)",
                             0, math.pi, low_open=True, types=XY),
        "target_phase_rad": F("float", math.pi / 2, "xy: target phase +x for the true class, -x otherwise (rad)",
                              0, math.pi, low_open=True, types=XY),
        "state_target_on": F("float", 1.0, "nonreciprocal: target state of the true class's output unit "
                             "(dimensionless; inputs are scaled to [0, 1])", -1e3, 1e3, types=NONRECIPROCAL),
        "state_target_off": F("float", 0.0, "nonreciprocal: target state of the other output units",
                              -1e3, 1e3, types=NONRECIPROCAL),
        "decoder": F("str", "", "regression, argmax or nearest_target (default: by task)", choices=("",) + DECODERS),
        "test_fraction": F("float", 0.3, "Fraction of examples held out for testing", 0, 1, low_open=True),
        "n_samples": F("int", 200, "Regression: number of examples", 2, 10_000_000),
        "n_features": F("int", 2, "Regression: number of input features", 1, 100_000),
        "n_targets": F("int", 1, "Regression: number of outputs", 1, 100_000),
        "noise_v": F("float", 0.0, "Regression: target noise (std, V)", 0, 10, types=VOLTAGE_CHIPS),
        "classes": F("ints", [], "Classification: keep only these classes (default: all)", 0, 9),
        "downsample": F("int", 1, "Digits/MNIST: average-pool images by this factor", 1, 28),
        "mnist_path": F("str", "", "MNIST: folder with the four IDX files (relative paths: to the experiment file)"),
        "n_train": F("int", 60000, "MNIST: number of training images", 1, 60000),
        "n_test": F("int", 10000, "MNIST: number of test images", 1, 10000),
        "seed": F("int", 0, "Seed of the train/test split and of synthetic data", 0, 2**32 - 1),
    },
    "learning": {
        "rule": F("str", "", "Learning rule (default: cl for resistor_network, xy_ep for xy, aep for "
                  "nonreciprocal, fp for nonlinear_resistor, hge for dnpu)", choices=("",) + RULES),
        "beta_s": F("float", 1e-6, "EP nudge conductance beta (S)", 0, 1e6, low_open=True, types=RESISTOR),
        "beta": F("float", 0.1, "xy_ep / aep / dyadic_ep / plain_ep / vf_ep: nudge strength (dimensionless: multiplier of the "
                  "cost in the energy / force per unit output error)", 0, 1e6, low_open=True,
                  types=XY + NONRECIPROCAL),
        "cost": F("str", "cosine", "xy: output cost, cosine (1 - cos(phi - tau))/2 or log "
                  "-log[(1 + eps + cos(phi - tau))/(2 + eps)]", choices=("cosine", "log"), types=XY),
        "cost_eps": F("float", 0.1, "xy, cost = log: eps", 0, 1e6, low_open=True, types=XY),
        "max_shift_rad": F("float", 0.0, "xy_ep: basin-jump guard -- random starts whose nudged state moved more "
                           "than this from the free one (rad, on any oscillator) are left out of the gradient "
                           "(0 = keep all; 0.5 for lattices at beta = 0.01)", 0, math.pi, types=XY),
        "eta": F("float", 0.1, "Coupled-learning clamp fraction eta", 0, 1, low_open=True, types=RESISTOR),
        # --- AC rules: frequency propagation (fp) and homodyne gradient extraction (hge)
        "window_s": F("float", 0.05, "fp / hge: demodulation window per example (s; whole periods of every tone)",
                      0, 1e3, low_open=True, types=AC_CHIPS),
        "settle_s": F("float", 0.005, "fp / hge: samples discarded before each example's window (s)", 0, 1e3,
                      types=AC_CHIPS),
        "gamma_a_per_v": F("float", 1e-6, "fp: error current injected per volt of output error (A/V); on a "
                           "nonlinear network the bias shrinks with it", 0, 1, low_open=True,
                           types=CONDUCTANCE_CHIPS),
        "fp_activation": F("str", "", "fp: inputs as tones at activation_hz (ac) or held at their DC levels (dc: "
                           "the error is a small signal around the operating point); default: ac on "
                           "resistor_network, dc on nonlinear_resistor", choices=FP_ACTIVATIONS,
                           types=CONDUCTANCE_CHIPS),
        "activation_hz": F("float", 0.0, "fp, ac activation: activation tone (Hz; 0 = planned with error_hz)",
                           0, 1e7, types=CONDUCTANCE_CHIPS),
        "error_hz": F("float", 0.0, "fp: error tone (Hz; 0 = planned; with ac activation give both or neither)",
                      0, 1e7, types=CONDUCTANCE_CHIPS),
        "fp_mode": F("str", "time_domain", "fp: measure through sampled waveforms (time_domain) or the "
                     "ideal-chip linear-response shortcut (frequency_domain: no waveforms)",
                     choices=("time_domain", "frequency_domain"), types=CONDUCTANCE_CHIPS),
        "amplitudes_v": F("floats", list(DEFAULT_AMPLITUDES_V), "hge: peak tone amplitude per control electrode "
                          "(V; one value for all, or one per control; below half each control's range)",
                          0, 1, low_open=True, types=DNPU),
        "tones_hz": F("floats", [], "hge: tone per control electrode (Hz, on the window's 1/window_s grid, "
                      "collision-free; [] = planned)", 0, 1e7, low_open=True, types=DNPU),
        "hge_mode": F("str", "parallel", "hge: all controls at once (parallel), one at a time (sequential) or "
                      "finite differences", choices=HGE_MODES, types=DNPU),
        "fd_step_v": F("float", 0.01, "hge, finite_difference: step on each control (V)", 0, 1, low_open=True,
                       types=DNPU),
        "hge_loss": F("str", "squared", "hge: squared error, or one_sided (a squared hinge about the threshold "
                      "half-way between [task] target_on_v and target_off_v: outputs beyond their target on the "
                      "correct side are left alone)", choices=("squared", "one_sided"), types=DNPU),
        "fd_central": F("bool", True, "hge, finite_difference: central (2P measurements) or forward (P)",
                        types=DNPU),
        "centred": F("bool", False, "EP/CL/xy_ep/aep/dyadic_ep/plain_ep/vf_ep: symmetric +/- nudge (bias O(beta^2) "
                     "instead of O(beta))"),
        "optimizer": F("str", "adam", "Optimiser (cl_clocked always uses tap_step)", choices=OPTIMIZERS),
        "learning_rate": F("float", 0.01, "Step size, in units of each parameter's allowed range", 0, 1e6, low_open=True),
        "lr_halflife_steps": F("float", 0.0, "sgd / momentum / adam: the step size halves every this many steps "
                               "(exponential decay; 0 = constant learning_rate)", 0, 1e9),
        "momentum": F("float", 0.9, "Momentum coefficient", 0, 1),
        "deadband": F("float", 0.0, "tap_step: normalised gradients below this do not move a pot", 0, 1e6),
        "update_fraction": F("float", 1.0, "Fraction of edges updated per step (partial updates)", 0, 1, low_open=True),
        "mask_mode": F("str", "fixed", "Partial updates: fixed subset or a new random subset each step",
                       choices=MASK_MODES),
    },
    "run": {
        "epochs": F("int", 20, "Passes over the training set", 1, 10_000_000),
        "batch_size": F("int", 0, "Examples per step (0 = full batch)", 0, 10_000_000),
        "seed": F("int", 0, "Seed of shuffling, initial conductances and read noise", 0, 2**32 - 1),
        "eval_every": F("int", 0, "Evaluate train/test every N steps (0 = once per epoch)", 0, 10_000_000),
        "checkpoint_every": F("int", 1, "Write a resumable checkpoint every N steps", 1, 10_000_000),
        "record_parameters_every": F("int", 1, "Store the parameter vector every N steps (0 = never)", 0, 10_000_000),
        "record_maps_every": F("int", 0, "xy: store spatial maps (couplings, response to the inputs) every N steps "
                               "(0 = never)", 0, 10_000_000, types=XY),
        "out_dir": F("str", "runs", "Folder for run files (relative to the working directory)"),
    },
}
SECTION_DOCS = {
    "experiment": "name and description", "chip": "the learning machine and its network",
    "backend": "what realises the chip", "task": "data and its encoding to volts",
    "learning": "learning rule and optimiser", "run": "training loop and storage",
    "wiring": "twin/hardware: which node and edge is on which instrument channel",
}


@dataclass
class Experiment:
    """A validated experiment: ``sections[section][key]`` holds every value (defaults filled)."""

    sections: dict[str, dict[str, Any]]
    text: str = ""
    path: Path | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    @property
    def name(self) -> str:
        return self.sections["experiment"]["name"] or (self.path.stem if self.path else "experiment")

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the file, resolved against the experiment file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def parse_experiment(data: dict[str, Any], source: str = "<experiment>",
                     overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Validate a parsed TOML mapping; return every section with defaults filled in."""
    merged: dict[str, dict[str, Any]] = {}
    data = dict(data)
    instruments = data.pop("instruments", None)
    for section, values in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]{_suggest(section, list(SCHEMA))}; "
                              f"sections are {', '.join(SCHEMA)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of keys, got {values!r}")
        merged[section] = dict(values)
    for section, values in (overrides or {}).items():
        merged.setdefault(section, {}).update(values)
    type_spec = SCHEMA["chip"]["type"]
    kind = _check_value(f"{source}: [chip]", "type", merged.get("chip", {}).get("type", type_spec.default), type_spec)
    result: dict[str, dict[str, Any]] = {}
    for section, fields in SCHEMA.items():
        given = merged.get(section, {})
        where = f"{source}: [{section}]"
        applicable = [k for k, spec in fields.items() if spec.types is None or kind in spec.types]
        for key in given:
            if key not in fields:
                raise ConfigError(f"{where} unknown key {key!r}{_suggest(key, applicable)}; "
                                  f"allowed keys: {', '.join(applicable)}")
            if key not in applicable:
                raise ConfigError(f"{where} {key} applies to [chip] type {' / '.join(fields[key].types)}, "
                                  f"not to type = {kind!r}; remove it")
        result[section] = {k: (_check_value(where, k, given[k], spec) if k in given else spec.default)
                           for k, spec in fields.items()}
    _check_chip_type(result, merged, source)
    _cross_checks(result, source)
    result["instruments"] = _check_instruments(instruments, source)
    return result


def _check_instruments(table: Any, source: str) -> dict[str, dict[str, Any]]:
    """``[instruments.<name>]`` tables: each names a registered driver, its resource and options."""
    if table is None:
        return {}
    return parse_instruments(table, source)


def _check_chip_type(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """Rule, topology, backend and task must fit ``[chip] type``; an empty rule becomes the type's default."""
    kind = s["chip"]["type"]
    learning = s["learning"]
    rules = CHIP_RULES[kind]
    if not learning["rule"]:
        learning["rule"] = rules[0]
    elif learning["rule"] not in rules:
        raise ConfigError(f"{source}: [learning] rule = {learning['rule']!r} does not fit [chip] type = {kind!r}; "
                          f"rules for {kind}: {', '.join(rules)}")
    topo = s["chip"]["topology"]
    topologies = CHIP_TOPOLOGIES.get(kind, tuple(t for t in TOPOLOGIES if t != "stacked_lattice"))
    if kind in ("nonreciprocal", "nonlinear_resistor") and "topology" not in given.get("chip", {}):
        s["chip"]["topology"] = "layered"
    elif kind == "dnpu":
        pass  # no network ([chip] topology does not apply to it)
    elif topo not in topologies:
        raise ConfigError(f"{source}: [chip] topology = {topo!r} does not fit type = {kind!r}; "
                          f"topologies for {kind}: {', '.join(topologies)}")
    backend = s["backend"]["kind"]
    backends = CHIP_BACKENDS.get(kind, BACKENDS)
    if backend not in backends:
        raise ConfigError(f"{source}: [backend] kind = {backend!r}: [chip] type = {kind!r} has no {backend} "
                          f"backend yet; available: {', '.join(backends)}")
    if kind == "xy":
        c = s["chip"]
        if c["coupling_min_rad_per_s"] >= c["coupling_max_rad_per_s"]:
            raise ConfigError(f"{source}: [chip] coupling_min_rad_per_s = {c['coupling_min_rad_per_s']!r} must be "
                              f"below coupling_max_rad_per_s = {c['coupling_max_rad_per_s']!r}")
        init = c["init_coupling_rad_per_s"]
        if len(init) != 2 or init[0] > init[1]:
            raise ConfigError(f"{source}: [chip] init_coupling_rad_per_s = {_show(init)}: expected [low, high] "
                              "with low <= high")
        if c["lattice_inset"] and c["topology"] not in ("lattice", "stacked_lattice"):
            raise ConfigError(f"{source}: [chip] lattice_inset = {c['lattice_inset']!r} applies to topology = "
                              f"'lattice' / 'stacked_lattice', not {c['topology']!r}; remove it")
        if learning["max_shift_rad"] and learning["rule"] != "xy_ep":
            raise ConfigError(f"{source}: [learning] max_shift_rad = {learning['max_shift_rad']!r} is the xy_ep "
                              f"basin-jump guard; rule = {learning['rule']!r} takes no nudge: remove it")
        if s["task"]["name"] not in PHASE_TASKS:
            raise ConfigError(f"{source}: [task] name = {s['task']['name']!r}: [chip] type = 'xy' takes "
                              f"phase-encoded classification tasks: {', '.join(PHASE_TASKS)}")
        if s["task"]["decoder"] not in ("", "nearest_phase"):
            raise ConfigError(f"{source}: [task] decoder = {s['task']['decoder']!r}: xy outputs are phases, "
                              "decoded by nearest_phase (circular distance); leave decoder out")
    if kind == "nonlinear_resistor":
        c = s["chip"]
        if c["gate_min_v"] > c["gate_max_v"]:
            raise ConfigError(f"{source}: [chip] gate_min_v = {c['gate_min_v']!r} is above gate_max_v = "
                              f"{c['gate_max_v']!r}")
    if kind == "dnpu":
        _check_dnpu(s, given.get("chip", {}), source)
    if learning["rule"] == "fp":
        _check_fp(s, source)


def _check_fp(s: dict[str, dict[str, Any]], source: str) -> None:
    """Frequency-propagation settings: activation kind, tones given both-or-neither, the shortcut mode."""
    kind, learning = s["chip"]["type"], s["learning"]
    if not learning["fp_activation"]:
        learning["fp_activation"] = "dc" if kind == "nonlinear_resistor" else "ac"
    act, f_a, f_b = learning["fp_activation"], learning["activation_hz"], learning["error_hz"]
    where = f"{source}: [learning]"
    if act == "dc" and f_a:
        raise ConfigError(f"{where} activation_hz = {f_a!r}: fp_activation = 'dc' holds the inputs at DC; "
                          "remove activation_hz (or use fp_activation = 'ac')")
    if act == "ac" and bool(f_a) != bool(f_b):
        raise ConfigError(f"{where} activation_hz = {f_a!r}, error_hz = {f_b!r}: give both tones or neither "
                          "(0 = planned)")
    if act == "ac" and f_a and f_a == f_b:
        raise ConfigError(f"{where} activation_hz = error_hz = {f_a!r}: the two tones must differ")
    if learning["fp_mode"] == "frequency_domain":
        if kind != "resistor_network" or s["backend"]["kind"] != "ideal":
            raise ConfigError(f"{where} fp_mode = 'frequency_domain' is a model shortcut for ideal linear "
                              f"resistor networks (this is {kind} on {s['backend']['kind']}); use 'time_domain'")


def _check_dnpu(s: dict[str, dict[str, Any]], given_chip: dict[str, Any], source: str) -> None:
    """DNPU: model and surrogate file, electrode lists that fit together, tone amplitudes per control."""
    c, where = s["chip"], f"{source}: [chip]"
    if c["model"] == "surrogate":
        if not c["surrogate_path"]:
            raise ConfigError(f"{where} model = 'surrogate' needs surrogate_path = \"path/to/surrogate.h5\" "
                              "(written by labtrain characterize)")
        extra = [k for k in DNPU_LAYOUT_KEYS + ("model_seed",) if k in given_chip]
        if extra:
            raise ConfigError(f"{where} {extra[0]} = {_show(given_chip[extra[0]])}: with model = 'surrogate' the "
                              "surrogate file sets the electrode ranges, roles, gain and clipping; remove it")
        return
    if c["surrogate_path"]:
        raise ConfigError(f"{where} surrogate_path = {c['surrogate_path']!r} applies to model = 'surrogate', "
                          f"not to model = {c['model']!r}; remove it")
    low, high = c["electrode_low_v"], c["electrode_high_v"]
    if len(low) != len(high):
        raise ConfigError(f"{where} electrode_low_v = {_show(low)} and electrode_high_v = {_show(high)} must list "
                          "the same electrodes")
    bad = [i for i, (lo, hi) in enumerate(zip(low, high)) if lo >= hi]
    if bad:
        raise ConfigError(f"{where} electrode {bad[0]}: electrode_low_v = {low[bad[0]]!r} must be below "
                          f"electrode_high_v = {high[bad[0]]!r}")
    amps = s["learning"]["amplitudes_v"]
    n_c = len(c["control_electrodes"])
    if len(amps) not in (1, n_c):
        raise ConfigError(f"{source}: [learning] amplitudes_v = {_show(amps)}: expected one amplitude or one per "
                          f"control electrode ({n_c})")


def _cross_checks(s: dict[str, dict[str, Any]], source: str) -> None:
    chip, task, learning, backend = s["chip"], s["task"], s["learning"], s["backend"]
    if chip["g_min_s"] > chip["g_max_s"]:
        raise ConfigError(f"{source}: [chip] g_min_s = {chip['g_min_s']!r} is above g_max_s = {chip['g_max_s']!r}")
    if task["input_low_v"] == task["input_high_v"]:
        raise ConfigError(f"{source}: [task] input_low_v = input_high_v = {task['input_low_v']!r}: the inputs "
                          "would carry no information")
    if backend["kind"] not in AVAILABLE_BACKENDS:
        raise ConfigError(f"{source}: [backend] kind = {backend['kind']!r}: this labtrain version has no instrument "
                          f"layer yet; available: {', '.join(AVAILABLE_BACKENDS)}")
    if backend["pot_steps"] == 1:
        raise ConfigError(f"{source}: [backend] pot_steps = 1: a pot needs >= 2 taps (0 = continuous)")
    if chip["topology"] == "edge_list" and not chip["edge_list"]:
        raise ConfigError(f"{source}: [chip] topology = 'edge_list' needs edge_list = \"path/to/edges.txt\"")
    if chip["topology"] == "edge_list" and not (chip["inputs"] and chip["outputs"] and chip["grounds"]):
        raise ConfigError(f"{source}: [chip] topology = 'edge_list' needs explicit inputs, outputs and grounds")
    if task["name"] == "mnist" and not task["mnist_path"]:
        raise ConfigError(f"{source}: [task] name = 'mnist' needs mnist_path, a folder with the MNIST IDX files")
    if learning["rule"] == "cl_clocked" and learning["optimizer"] not in ("adam", "tap_step"):
        # adam is the default; an explicit other choice is a contradiction worth flagging
        raise ConfigError(f"{source}: [learning] optimizer = {learning['optimizer']!r}: rule cl_clocked moves one "
                          "pot tap per step; use optimizer = 'tap_step' or leave it out")
    if learning["lr_halflife_steps"] and (learning["rule"] == "cl_clocked" or learning["optimizer"] == "tap_step"):
        raise ConfigError(f"{source}: [learning] lr_halflife_steps = {learning['lr_halflife_steps']!r}: tap_step "
                          "(and cl_clocked) moves one device step per update, there is no step size to decay; "
                          "remove it")


def load_experiment(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> Experiment:
    """Read and validate an experiment file (raises :class:`ConfigError`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return experiment_from_text(text, path, overrides)


def experiment_from_text(text: str, path: Path | None = None,
                         overrides: dict[str, dict[str, Any]] | None = None) -> Experiment:
    """Validate experiment-file text (``path`` names it in errors and anchors relative paths)."""
    source = str(path) if path else "<experiment>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    sections = parse_experiment(data, source, overrides)
    return Experiment(sections, text, path, dict(overrides or {}))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def schema_markdown() -> str:
    """The experiment-file reference (docs/experiment-file.md is generated from this)."""
    lines = ["# Experiment-file reference", "",
             "Generated from `labtrain.config.SCHEMA` (`labtrain.config.schema_markdown()`); "
             "a test keeps this page in step with the code.", "",
             "An experiment file is TOML with the sections below; every key is optional (defaults shown). "
             "Unknown sections and keys are errors. Relative paths are resolved against the experiment file's "
             "folder, except `[run] out_dir` (the working directory).", ""]
    lines += ["`[chip] type` selects the learning machine; a key listed for some chip types only is an error "
              "with any other type. Rules per type (the first is the default): "
              + "; ".join(f"{kind}: {', '.join(rules)}" for kind, rules in CHIP_RULES.items()) + ".", ""]
    for section, fields in SCHEMA.items():
        lines += [f"## [{section}] — {SECTION_DOCS[section]}", "",
                  "| key | type | default | allowed | chip types | meaning |", "|---|---|---|---|---|---|"]
        for key, spec in fields.items():
            allowed = spec.allowed() if (spec.choices or spec.low is not None or spec.high is not None) else ""
            types = ", ".join(spec.types) if spec.types else "all"
            lines.append(f"| `{key}` | {spec.kind} | `{_toml(spec.default)}` | {allowed.replace('|', '/')} | {types} "
                         f"| {spec.doc} |")
        lines.append("")
    return "\n".join(lines)

