"""``[chip] type = "nonlinear_resistor"``: resistive networks with diodes and transistor-like edges."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.ac_rules import check_ac_settings, fp_rule
from labtrain.kinds.common import build_task
from labtrain.kinds.fields import (AC_WINDOW, CONDUCTANCE, FP, GEP, GRAPH, HIDDEN_LAYERS, SOLVER, VOLTAGE_TASK,
                                   check_bench_settings, check_direct_solver, check_fp, merge, topology)
from labtrain.kinds.nonlinear.builder import (build_nonlinear_chip, build_nonlinear_network, check_nonlinear_bench,
                                              nonlinear_gradcheck)
from labtrain.kinds.nonlinear.schema import OWN
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation
from labtrain.schema import ConfigError

_TOPOLOGIES = ("layered", "lattice", "all_to_all", "random", "edge_list")


def check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """Cross-checks of a nonlinear-network experiment.

    ``fp``: DC activation only (AC activation is refused, it is biased on a nonlinear network).  On a bench
    (twin/hardware) without ``[wiring] output_series_ohm`` the error current goes through ``1 / gamma_a_per_v``
    ohms: a Norton source whose output AO swings 1 V per volt of output error (1 MOhm at gamma = 1e-6 A/V, far
    above the network's output resistance of kilo-ohms; 10 mV per 0.01 V of error, far above the DAC step).  The
    shared default, 10 ohm, is a voltage clamp: the DAC's rounding of ``v_free`` would drive more current through
    it than the error current itself.  ``ep`` likewise gets ``1 / beta_s`` ohms (its nudge ``beta (t - v_O)`` is
    then the output AO held at the target); ``cl`` keeps the 10-ohm clamp.
    """
    c, learning, backend = s["chip"], s["learning"], s["backend"]
    if c["differential_outputs"]:
        _layered_ideal_only(s, source, "differential_outputs = true", "it places two output nodes per output",
                            "reads and nudges single-ended outputs")
        if learning["rule"] not in ("ep", "analytic"):
            raise ConfigError(f"{source}: [chip] differential_outputs = true with rule {learning['rule']!r}: its "
                              "nudge would be a floating voltage source (cl) or tone (fp) across a pair, not "
                              "modelled; use ep or analytic")
    check_direct_solver(s, source)
    check_bench_settings(s, source)
    if c["gate_min_v"] > c["gate_max_v"]:
        raise ConfigError(f"{source}: [chip] gate_min_v = {c['gate_min_v']!r} is above gate_max_v = "
                          f"{c['gate_max_v']!r}")
    if c["layer_gain"] != 1.0:
        _layered_ideal_only(s, source, f"layer_gain = {c['layer_gain']!r}", "amplifiers sit between node layers",
                            "has no amplifiers between layers")
        if learning["rule"] == "fp":
            raise ConfigError(f"{source}: [chip] layer_gain = {c['layer_gain']!r} with rule 'fp': not modelled "
                              "(use ep, cl or analytic)")
    if learning["rule"] == "ep" and backend["kind"] != "ideal" and "output_series_ohm" not in given.get("wiring", {}):
        # EP's nudge beta (t - v_O) through 1 / beta ohms is the AO at the target voltage: a physical current source
        s["wiring"]["output_series_ohm"] = 1.0 / learning["beta_s"]
    if learning["rule"] == "fp":
        check_fp(s, source, default_activation="dc")
        if learning["fp_activation"] == "ac":
            raise ConfigError(f"{source}: [learning] fp_activation = 'ac': on a nonlinear network the input tones "
                              "move every operating point, so the edges' in-phase products are not the gradient "
                              "(biased, with harmonics); use fp_activation = 'dc' (inputs held, error as a small "
                              "tone)")
        if backend["kind"] != "ideal" and "output_series_ohm" not in given.get("wiring", {}):
            s["wiring"]["output_series_ohm"] = 1.0 / learning["gamma_a_per_v"]
        if learning["fp_mode"] == "frequency_domain":
            raise ConfigError(f"{source}: [learning] fp_mode = 'frequency_domain' is a model shortcut for ideal "
                              f"linear resistor networks (this is nonlinear_resistor on {s['backend']['kind']}); "
                              "use 'time_domain'")


def _layered_ideal_only(s: dict[str, dict[str, Any]], source: str, setting: str, why_layered: str,
                        bench_lacks: str) -> None:
    """Refuse ``[chip] setting`` (one line) off the layered topology or off the ideal backend."""
    topology, backend = s["chip"]["topology"], s["backend"]["kind"]
    if topology != "layered":
        raise ConfigError(f"{source}: [chip] {setting} needs topology = 'layered' ({why_layered}; this is "
                          f"{topology!r})")
    if backend != "ideal":
        raise ConfigError(f"{source}: [chip] {setting} is modelled on the ideal backend only (the {backend} bench "
                          f"{bench_lacks})")


def describe(s: dict[str, dict[str, Any]]) -> str:
    c = s["chip"]
    if c["topology"] == "layered":
        return f"diode layered network ({'-'.join(map(str, c['hidden_layers']))} hidden, {c['diode']})"
    net = f"lattice {c['rows']}x{c['cols']}" if c["topology"] == "lattice" else f"{c['topology']} ({c['n_nodes']} nodes)"
    return f"nonlinear_resistor {net} network"


KIND = ChipKind(
    name="nonlinear_resistor",
    summary="resistive network with diodes and transistor edges (Newton solver); FP, EP, CL, exact gradient",
    schema=merge(topology(_TOPOLOGIES, "layered", "Network builder (layered: the diode network)"), GRAPH,
                 HIDDEN_LAYERS, CONDUCTANCE, FP, VOLTAGE_TASK, AC_WINDOW, SOLVER, GEP, OWN),
    rules={"fp": fp_rule, "analytic": lambda exp: AnalyticGradient(),
           "ep": lambda exp: EquilibriumPropagation(exp["learning"]["beta_s"], centred=exp["learning"]["centred"]),
           "cl": lambda exp: CoupledLearning(exp["learning"]["eta"], centred=exp["learning"]["centred"])},
    task=build_task,
    network=build_nonlinear_network,
    chip=build_nonlinear_chip,
    backends=("ideal", "twin", "hardware"),
    topologies=_TOPOLOGIES,
    default_topology="layered",
    check=check,
    check_setup=check_ac_settings,
    check_bench=check_nonlinear_bench,
    gradcheck=nonlinear_gradcheck,
    describe=describe,
)
