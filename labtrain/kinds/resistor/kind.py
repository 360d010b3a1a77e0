"""``[chip] type = "resistor_network"``: linear resistor networks with tunable conductances (digital pots)."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.ac_rules import check_ac_settings
from labtrain.kinds.common import build_task
from labtrain.kinds.fields import (AC_WINDOW, CONDUCTANCE, FP, GEP, GRAPH, HIDDEN_LAYERS, SOLVER, TOPOLOGIES,
                                   VOLTAGE_TASK, check_bench_settings, check_fp, merge, topology)
from labtrain.kinds.resistor.builder import (RULES, build_resistor_chip, build_resistor_network, check_bench,
                                             resistor_gradcheck)
from labtrain.kinds.resistor.schema import OWN
from labtrain.kinds.resistor.selftest import resistor_selftest
from labtrain.schema import ConfigError

_TOPOLOGIES = tuple(t for t in TOPOLOGIES if t != "stacked_lattice")


def check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """Cross-checks of a resistor-network experiment."""
    learning, backend = s["learning"], s["backend"]
    if backend["pot_steps"] == 1:
        raise ConfigError(f"{source}: [backend] pot_steps = 1: a pot needs >= 2 taps (0 = continuous)")
    check_bench_settings(s, source)
    if learning["rule"] == "cl_clocked" and learning["optimizer"] not in ("adam", "tap_step"):
        # adam is the default; an explicit other choice is a contradiction worth flagging
        raise ConfigError(f"{source}: [learning] optimizer = {learning['optimizer']!r}: rule cl_clocked moves one "
                          "pot tap per step; use optimizer = 'tap_step' or leave it out")
    if learning["lr_halflife_steps"] and learning["rule"] == "cl_clocked":
        raise ConfigError(f"{source}: [learning] lr_halflife_steps = {learning['lr_halflife_steps']!r}: tap_step "
                          "(and cl_clocked) moves one device step per update, there is no step size to decay; "
                          "remove it")
    if learning["rule"] == "fp":
        check_fp(s, source, default_activation="ac")
        if learning["fp_mode"] == "frequency_domain" and backend["kind"] != "ideal":
            raise ConfigError(f"{source}: [learning] fp_mode = 'frequency_domain' is a model shortcut for ideal "
                              f"linear resistor networks (this is resistor_network on {backend['kind']}); use "
                              "'time_domain'")


def describe(s: dict[str, dict[str, Any]]) -> str:
    c = s["chip"]
    net = (f"lattice {c['rows']}x{c['cols']}" if c["topology"] == "lattice" else
           f"{c['topology']} ({c['n_nodes']} nodes)")
    return f"{net} network"


KIND = ChipKind(
    name="resistor_network",
    summary="linear resistor network with tunable conductances (digital pots); EP, CL, FP, exact gradient",
    schema=merge(topology(_TOPOLOGIES, "lattice", "Network builder"), GRAPH, HIDDEN_LAYERS, CONDUCTANCE, FP,
                 VOLTAGE_TASK, AC_WINDOW, SOLVER, GEP, OWN),
    rules=RULES,
    task=build_task,
    network=build_resistor_network,
    chip=build_resistor_chip,
    backends=("ideal", "twin", "hardware"),
    topologies=_TOPOLOGIES,
    default_topology="lattice",
    check=check,
    check_setup=check_ac_settings,
    check_bench=check_bench,
    gradcheck=resistor_gradcheck,
    gradcheck_options=("beta_s", "eta"),
    describe=describe,
    selftest=resistor_selftest,
)
