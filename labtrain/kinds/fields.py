"""Experiment-file keys shared by several chip kinds (each kind's schema picks the fragments it needs).

A fragment maps ``section -> {key: Field}``; :func:`merge` joins fragments into a kind's schema.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from labtrain.linalg import SOLVERS
from labtrain.physics.network import DEFAULT_G_MAX_S, DEFAULT_G_MIN_S
from labtrain.schema import ConfigError, Field

__all__ = ["GRAPH", "HIDDEN_LAYERS", "CONDUCTANCE", "GEP", "FP", "VOLTAGE_TASK", "AC_WINDOW", "RELAXATION",
           "SOLVER", "TOPOLOGIES", "FP_ACTIVATIONS", "topology", "merge", "check_fp",
           "check_direct_solver", "check_bench_settings"]

F = Field
#: Every network builder of :mod:`labtrain.physics.network` (a kind accepts a subset).
TOPOLOGIES = ("lattice", "all_to_all", "layered", "random", "edge_list", "stacked_lattice")
FP_ACTIVATIONS = ("", "ac", "dc")

#: Graph keys: a kind built on a :class:`~labtrain.physics.network.Network`.
GRAPH: dict[str, dict[str, Field]] = {
    "chip": {
        "rows": F("int", 4, "Lattice rows", 1, 2000),
        "cols": F("int", 4, "Lattice columns", 2, 2000),
        "diagonals": F("bool", False, "Lattice: add diagonal edges"),
        "skip": F("int", 0, "Lattice: extra links this many nodes apart (0 = none)", 0, 1000),
        "n_nodes": F("int", 16, "all_to_all / random: number of nodes", 2, 10_000_000),
        "n_edges": F("int", 40, "random: number of edges", 1, 100_000_000),
        "edge_list": F("str", "", "edge_list: path of the edge file (relative to the experiment file)"),
        "graph_seed": F("int", 0, "random: seed of the graph and of its terminal placement", 0, 2**32 - 1),
        "inputs": F("ints", [], "Input node indices (default: placed by the builder)", 0, None),
        "outputs": F("ints", [], "Output node indices (default: placed by the builder)", 0, None),
        "grounds": F("ints", [], "Ground node indices (resistors: 0 V; xy: reference oscillators; default: "
                     "placed by the builder)", 0, None),
    },
}
HIDDEN_LAYERS: dict[str, dict[str, Field]] = {
    "chip": {
        "hidden_layers": F("ints", [4], "layered (and nonreciprocal): sizes of the hidden layers", 1, 100_000),
    },
}
#: Trainable edge conductances (siemens) and node read noise.
CONDUCTANCE: dict[str, dict[str, Field]] = {
    "chip": {
        "g_min_s": F("float", DEFAULT_G_MIN_S, "Lowest edge conductance (S)", 0, 1e6, low_open=True),
        "g_max_s": F("float", DEFAULT_G_MAX_S, "Highest edge conductance (S)", 0, 1e6, low_open=True),
        "g_init": F("str", "geometric_mean", "Initial conductances (nonlinear_resistor: of the linear edges; "
                    "transistor gates start mid-range, or uniformly random with the *_random choices)",
                    choices=("geometric_mean", "uniform_random", "log_uniform_random", "min", "max")),
    },
    "backend": {
        "read_noise_v": F("float", 0.0, "ideal: Gaussian noise (std, V) on every node reading", 0, 10),
    },
}
#: The two-phase rules on resistive networks (linear or nonlinear): EP's current nudge and CL's clamp.
GEP: dict[str, dict[str, Field]] = {
    "learning": {
        "beta_s": F("float", 1e-6, "EP nudge conductance beta (S)", 0, 1e6, low_open=True, rules=("ep",)),
        "eta": F("float", 0.1, "Coupled-learning clamp fraction eta", 0, 1, low_open=True,
                 rules=("cl", "cl_clocked")),
    },
}
_FP = ("fp",)
#: Frequency propagation (rule ``fp``).
FP: dict[str, dict[str, Field]] = {
    "learning": {
        "gamma_a_per_v": F("float", 1e-6, "fp: error current injected per volt of output error (A/V); on a "
                           "nonlinear network the bias shrinks with it", 0, 1, low_open=True, rules=_FP),
        "fp_activation": F("str", "", "fp: inputs as tones at activation_hz (ac) or held at their DC levels (dc: "
                           "the error is a small signal around the operating point); default: ac on "
                           "resistor_network, dc on nonlinear_resistor", choices=FP_ACTIVATIONS, rules=_FP),
        "activation_hz": F("float", 0.0, "fp, ac activation: activation tone (Hz; 0 = planned with error_hz)",
                           0, 1e7, rules=_FP),
        "error_hz": F("float", 0.0, "fp: error tone (Hz; 0 = planned; with ac activation give both or neither)",
                      0, 1e7, rules=_FP),
        "fp_mode": F("str", "time_domain", "fp: measure through sampled waveforms (time_domain) or the "
                     "ideal-chip linear-response shortcut (frequency_domain: no waveforms)",
                     choices=("time_domain", "frequency_domain"), rules=_FP),
    },
}
#: Inputs and targets in volts.
VOLTAGE_TASK: dict[str, dict[str, Field]] = {
    "task": {
        "input_low_v": F("float", 0.0, "Input voltage for the smallest feature value (V)", -10, 10),
        "input_high_v": F("float", 1.0, "Input voltage for the largest feature value (V)", -10, 10),
        "target_on_v": F("float", 0.6, "Target voltage of the output of the true class (V)", -10, 10),
        "target_off_v": F("float", 0.2, "Target voltage of the other outputs (V)", -10, 10),
        "bias_inputs_v": F("floats", [], "Constant voltages appended to every input vector (V)", -10, 10),
        "complementary_inputs": F("bool", False, "Also drive every feature's mirrored voltage "
                                  "(input_low_v + input_high_v - x) on a second input (differential drive)"),
        "complementary_outputs": F("bool", False, "Classification: give every output a partner whose target is "
                                   "the mirrored voltage (target_on_v + target_off_v - t); a class is read from the "
                                   "difference of its pair (signed readout of the last hidden layer)"),
        "noise_v": F("float", 0.0, "Regression: target noise (std, V)", 0, 10),
    },
}
#: Demodulation window of the AC rules (fp, hge).
AC_WINDOW: dict[str, dict[str, Field]] = {
    "learning": {
        "window_s": F("float", 0.05, "fp / hge: demodulation window per example (s; whole periods of every tone)",
                      0, 1e3, low_open=True, rules=("fp", "hge")),
        "settle_s": F("float", 0.005, "fp / hge: samples discarded before each example's window (s)", 0, 1e3,
                      rules=("fp", "hge")),
    },
}
#: Relaxation of dynamical kinds (phases, rates) and their dimensionless nudge.
RELAXATION: dict[str, dict[str, Field]] = {
    "chip": {
        "relax_tol": F("float", 1e-10, "xy / nonreciprocal: relaxation converged when max |dphi/dt| (rad/s) / "
                       "max |ds/dt| (1/time unit) < relax_tol", 0, 1, low_open=True),
        "relax_max_steps": F("int", 0, "xy / nonreciprocal: relaxation iteration limit (0 = the chip's default: "
                             "xy 20000, nonreciprocal 5000)", 0, 100_000_000),
    },
    "learning": {
        "beta": F("float", 0.1, "xy_ep / aep / dyadic_ep / plain_ep / vf_ep: nudge strength (dimensionless: multiplier of the "
                  "cost in the energy / force per unit output error)", 0, 1e6, low_open=True,
                  rules=("xy_ep", "aep", "dyadic_ep", "plain_ep", "vf_ep")),
    },
}

#: Sparse SPD linear solver of the physics model (:mod:`labtrain.linalg`).
SOLVER: dict[str, dict[str, Field]] = {
    "chip": {
        "solver": F("str", "auto", "Sparse linear solver of the ideal chip's model (twin and hardware "
                    "models use auto): auto (by size and fill), superlu, cholmod (sparse Cholesky; superlu and a "
                    "warning when scikit-sparse is missing) or cg (preconditioned conjugate gradients, warm-started; "
                    "resistor_network only: Newton steps of xy / nonlinear_resistor need a factorisation)", choices=SOLVERS),
    },
}


def check_direct_solver(s: dict[str, dict[str, Any]], source: str) -> None:
    """``[chip] solver = "cg"`` on a kind whose Newton steps need a factorisation: one-line ConfigError."""
    if s["chip"]["solver"] == "cg":
        raise ConfigError(f"{source}: [chip] solver = 'cg': [chip] type = {s['chip']['type']!r} needs a "
                          "factorisation in every Newton step (pivots, stability check); use auto, superlu or "
                          "cholmod")


def check_bench_settings(s: dict[str, dict[str, Any]], source: str) -> None:
    """Twin/hardware benches of voltage-driven pot networks, checked from the file alone (what the bench chip
    would refuse only once it runs): the pots' nominal range must overlap the allowed conductances, the input
    levels must lie inside ``+-max_abs_v`` and the largest input step must ramp at ``max_slew_v_per_s`` within
    ``settle_samples``."""
    b, chip, task = s["backend"], s["chip"], s["task"]
    if b["kind"] == "ideal":
        return
    if "g_min_s" in chip:
        r_min = b["pot_r_end_ohm"] + b["pot_r_wiper_ohm"]
        r_max = r_min + b["pot_r_total_ohm"]
        if chip["g_min_s"] > (1.0 / r_min if r_min > 0 else float("inf")) or chip["g_max_s"] < 1.0 / r_max:
            raise ConfigError(f"{source}: [backend] the pots span [{1 / r_max:g}, "
                              f"{(1 / r_min) if r_min > 0 else float('inf'):g}] S (pot_r_total_ohm, pot_r_wiper_ohm, "
                              f"pot_r_end_ohm), which misses [chip] g_min_s..g_max_s = [{chip['g_min_s']:g}, "
                              f"{chip['g_max_s']:g}] S")
    levels = {"input": [task["input_low_v"], task["input_high_v"], *task.get("bias_inputs_v", [])],
              "target": [task["target_on_v"], task["target_off_v"]]}  # outputs are clamped towards the targets
    for what, values in levels.items():
        worst = max(values, key=abs)
        if abs(worst) > b["max_abs_v"]:
            raise ConfigError(f"{source}: [task] {what} level {worst:g} V is beyond [backend] max_abs_v = "
                              f"{b['max_abs_v']!r}; the safety layer would refuse it")
    jump = abs(task["input_high_v"] - task["input_low_v"])
    step = b["max_slew_v_per_s"] / b["rate_hz"]
    need = math.ceil(jump / step - 1e-9)
    if need > b["settle_samples"]:
        raise ConfigError(f"{source}: [backend] settle_samples = {b['settle_samples']}: an input step of {jump:g} V "
                          f"ramps for {need:.3g} samples at max_slew_v_per_s = {b['max_slew_v_per_s']!r} and rate_hz = "
                          f"{b['rate_hz']!r}; raise settle_samples or max_slew_v_per_s")


def topology(choices: tuple[str, ...], default: str, doc: str) -> dict[str, dict[str, Field]]:
    """The ``[chip] topology`` key of a kind that takes the network builders ``choices``."""
    return {"chip": {"topology": Field("str", default, doc, choices=choices)}}


def merge(*fragments: Mapping[str, Mapping[str, Field]]) -> dict[str, dict[str, Field]]:
    """Join schema fragments (a key given twice must be the same Field)."""
    out: dict[str, dict[str, Field]] = {}
    for frag in fragments:
        for section, keys in frag.items():
            target = out.setdefault(section, {})
            for key, spec in keys.items():
                if key in target and target[key] != spec:
                    raise ValueError(f"schema fragments disagree on [{section}] {key}")
                target[key] = spec
    return out


def check_fp(s: dict[str, dict[str, Any]], source: str, default_activation: str) -> None:
    """Frequency-propagation settings: activation kind, tones given both-or-neither, the shortcut mode."""
    learning = s["learning"]
    if not learning["fp_activation"]:
        learning["fp_activation"] = default_activation
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
