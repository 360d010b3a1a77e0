"""``[chip] type = "xy"``: coupled phase oscillators (XY model) trained by EP on phases."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.fields import (GRAPH, HIDDEN_LAYERS, RELAXATION, SOLVER, TOPOLOGIES, check_direct_solver, merge,
                                   topology)
from labtrain.kinds.xy.builder import (build_xy_chip, build_xy_network, build_xy_task, xy_ep_rule, xy_gradcheck,
                                       xy_implicit_rule, xy_maps)
from labtrain.kinds.xy.schema import OWN
from labtrain.kinds.xy.tasks import PHASE_TASKS
from labtrain.schema import ConfigError, show


def check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    c, learning = s["chip"], s["learning"]
    check_direct_solver(s, source)
    if c["coupling_min_rad_per_s"] >= c["coupling_max_rad_per_s"]:
        raise ConfigError(f"{source}: [chip] coupling_min_rad_per_s = {c['coupling_min_rad_per_s']!r} must be "
                          f"below coupling_max_rad_per_s = {c['coupling_max_rad_per_s']!r}")
    init = c["init_coupling_rad_per_s"]
    if len(init) != 2 or init[0] > init[1]:
        raise ConfigError(f"{source}: [chip] init_coupling_rad_per_s = {show(init)}: expected [low, high] "
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


def describe(s: dict[str, dict[str, Any]]) -> str:
    c = s["chip"]
    net = f"lattice {c['rows']}x{c['cols']}" if c["topology"] == "lattice" else f"{c['topology']} ({c['n_nodes']} nodes)"
    return f"xy {net} network"


KIND = ChipKind(
    name="xy",
    summary="XY oscillator network (phases, couplings in rad/s); EP on phases, implicit gradient",
    schema=merge(topology(TOPOLOGIES, "lattice", "Network builder (stacked_lattice: lattices linked layer to "
                          "layer)"), GRAPH, HIDDEN_LAYERS, RELAXATION, SOLVER, OWN),
    rules={"xy_ep": xy_ep_rule, "xy_implicit": xy_implicit_rule},
    task=build_xy_task,
    network=build_xy_network,
    chip=build_xy_chip,
    backends=("ideal",),
    topologies=TOPOLOGIES,
    default_topology="lattice",
    check=check,
    gradcheck=xy_gradcheck,
    gradcheck_options=("beta",),
    maps=xy_maps,
    describe=describe,
)
