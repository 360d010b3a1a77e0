"""Turn a validated :class:`~labtrain.config.Experiment` into task, network, chip, rule and optimiser.

Every failure here is still a :class:`~labtrain.config.ConfigError` naming the
file and section, raised before any chip exists.

Chip types dispatch through :data:`CHIP_BUILDERS` (``[chip] type`` ->
:class:`~labtrain.kinds.ChipBuilder`): the resistor network is built by the
functions of this module, other types by ``labtrain.kinds.<type>``; see
:mod:`labtrain.kinds` for how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from labtrain.kinds import ChipBuilder
from labtrain.kinds.dnpu import builder as _dnpu_builder
from labtrain.kinds.nonlinear import builder as _nonlinear_builder
from labtrain.kinds.nonreciprocal import builder as _nonreciprocal_builder
from labtrain.kinds.ac_rules import check_ac_settings, fp_rule
from labtrain.kinds.xy import builder as _xy_builder
from labtrain.chip.base import Chip
from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.config import SCHEMA, ConfigError, Experiment
from labtrain.physics.network import Network, NetworkError, all_to_all, from_edge_list, layered, lattice, random_graph
from labtrain.training.optim import Optimizer, make_optimizer
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation
from labtrain.protocols.masks import UpdateMask
from labtrain.training.tasks import Task, TaskError, make_task

__all__ = ["Setup", "build_task", "build_network", "build_chip", "build_estimator", "build_optimizer",
           "build_setup", "initial_conductances", "task_arguments", "chip_builder", "CHIP_BUILDERS",
           "RESISTOR_RULES"]


def _src(exp: Experiment) -> str:
    return str(exp.path) if exp.path else "<experiment>"


def task_arguments(exp: Experiment) -> dict[str, Any]:
    """The ``[task]`` keys that apply to the experiment's chip type (``name`` included)."""
    kind = exp["chip"]["type"]
    return {k: v for k, v in exp["task"].items() if SCHEMA["task"][k].types is None or kind in SCHEMA["task"][k].types}


def build_task(exp: Experiment) -> Task:
    """The task of a voltage-driven chip (inputs and targets in volts)."""
    t = task_arguments(exp)
    name = t.pop("name")
    if t["mnist_path"]:
        t["mnist_path"] = str(exp.resolve(t["mnist_path"]))
    t["classes"] = t["classes"] or None
    t["decoder"] = t["decoder"] or None
    try:
        return make_task(name, **t)
    except TaskError as exc:
        hint = f" (test_fraction = {t['test_fraction']!r})" if "empty train or test split" in str(exc) else ""
        raise ConfigError(f"{_src(exp)}: [task] {exc}{hint}") from None


def build_network(exp: Experiment, n_inputs: int, n_outputs: int) -> Network:
    """Build the network; terminal counts come from the task unless listed explicitly."""
    c = exp["chip"]
    explicit = {k: (c[k] or None) for k in ("inputs", "outputs", "grounds")}
    bounds = {"g_min_s": c["g_min_s"], "g_max_s": c["g_max_s"]}
    topo = c["topology"]
    try:
        if topo == "lattice":
            net = lattice(c["rows"], c["cols"], diagonals=c["diagonals"], skip=c["skip"], n_inputs=n_inputs,
                          n_outputs=n_outputs, inset=c["lattice_inset"], **explicit, **bounds)
        elif topo == "all_to_all":
            net = all_to_all(c["n_nodes"], n_inputs=n_inputs, n_outputs=n_outputs, **explicit, **bounds)
        elif topo == "layered":
            if any(explicit.values()):
                raise NetworkError("layered networks place their own terminals; remove inputs/outputs/grounds")
            net = layered([n_inputs, *c["hidden_layers"], n_outputs], **bounds)
        elif topo == "random":
            net = random_graph(c["n_nodes"], c["n_edges"], seed=c["graph_seed"], n_inputs=n_inputs,
                               n_outputs=n_outputs, **explicit, **bounds)
        else:
            edge_file = exp.resolve(c["edge_list"])
            if not edge_file.is_file():
                raise NetworkError(f"edge_list = {c['edge_list']!r}: file {edge_file} not found")
            net = from_edge_list(edge_file, **explicit, **bounds)
    except NetworkError as exc:
        raise ConfigError(f"{_src(exp)}: [chip] {exc}") from None
    if len(net.inputs) != n_inputs:
        raise ConfigError(f"{_src(exp)}: [chip] inputs = {list(net.inputs)}: the task feeds {n_inputs} input "
                          f"value(s) per example (features + bias inputs), the network has {len(net.inputs)} inputs")
    if len(net.outputs) != n_outputs:
        raise ConfigError(f"{_src(exp)}: [chip] outputs = {list(net.outputs)}: the task needs {n_outputs} "
                          f"output(s), the network has {len(net.outputs)}")
    return net


def initial_conductances(exp: Experiment, net: Network) -> np.ndarray:
    rng = np.random.default_rng([exp["run"]["seed"], 2])
    lo, hi = net.g_min_s, net.g_max_s
    kind = exp["chip"]["g_init"]
    if kind == "uniform_random":
        return rng.uniform(lo, hi)
    if kind == "log_uniform_random":
        return np.exp(rng.uniform(np.log(lo), np.log(hi)))
    if kind == "min":
        return lo.copy()
    if kind == "max":
        return hi.copy()
    return np.sqrt(lo * hi)


def build_chip(exp: Experiment, net: Network) -> Chip:
    b = exp["backend"]
    if b["kind"] != "ideal":
        return _build_instrument_chip(exp, net)
    return IdealChip(net, initial_conductances(exp, net), input_mode=exp["chip"]["input_mode"],
                     pot_steps=b["pot_steps"], read_noise_v=b["read_noise_v"], seed=exp["run"]["seed"],
                     rate_hz=b["rate_hz"])


def _build_instrument_chip(exp: Experiment, net: Network) -> Chip:
    """Twin or hardware chip; every failure becomes a one-line ConfigError naming the section."""
    from labtrain.kinds.resistor.hardware import BUILD_ERRORS, build_instrument_chip
    from labtrain.instruments.ports import PortError

    b = exp["backend"]
    try:
        return build_instrument_chip(b, exp["wiring"], net, initial_conductances(exp, net), exp["run"]["seed"])
    except BUILD_ERRORS as exc:
        section = "wiring" if type(exc).__name__ == "WiringError" else "backend"
        raise ConfigError(f"{_src(exp)}: [{section}] {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{_src(exp)}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{_with_install_hint(exc)}") from None
    except (PortError, OSError) as exc:
        raise ConfigError(f"{_src(exp)}: [backend] kind = {b['kind']!r}: instrument not reachable: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{_src(exp)}: [backend] {exc}") from None


def check_instruments(exp: Experiment) -> tuple[Task, Network, dict[str, str], dict]:
    """For ``labtrain check`` on twin/hardware: build task, network and wiring, ask every instrument its
    identity -- without applying any voltage or moving any pot.  Returns (task, network, identities, wiring)."""
    from labtrain.kinds.resistor.bench import InstrumentChip
    from labtrain.kinds.resistor.hardware import build_wiring, identify_instruments
    from labtrain.instruments.ports import PortError
    from labtrain.kinds.resistor.wiring import WiringError

    task = build_task(exp)
    net = build_network(exp, task.n_inputs, task.n_outputs)
    b = exp["backend"]
    try:
        wiring = build_wiring(b, exp["wiring"], net)
    except WiringError as exc:
        raise ConfigError(f"{_src(exp)}: [wiring] {exc}") from None
    caps = InstrumentChip.capabilities_for(wiring.reads_every_node(net))
    estimator = build_estimator(exp)
    missing = sorted(estimator.requires - caps)
    if missing:
        # same words as build_setup's capability check, so `check` and `run` agree
        raise ConfigError(f"{_src(exp)}: [learning] rule = {exp['learning']['rule']!r}: {estimator.name} needs "
                          f"chip capabilities {missing}, which the {b['kind']} chip does not have "
                          f"(it has {sorted(caps)})")
    try:
        identities = identify_instruments(b, exp["wiring"], net)
    except ImportError as exc:
        raise ConfigError(f"{_src(exp)}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{_with_install_hint(exc)}") from None
    except (PortError, OSError, ValueError) as exc:
        raise ConfigError(f"{_src(exp)}: [backend] instrument not reachable: {exc}") from None
    return task, net, identities, wiring.to_dict()


def _with_install_hint(exc: Exception) -> str:
    text = str(exc)
    return text if "labtrain[hardware]" in text else f"{text} (pip install 'labtrain[hardware]')"


#: Rules of ``[chip] type = "resistor_network"`` (names as in ``config.CHIP_RULES``).
RESISTOR_RULES: dict[str, Callable[[Experiment], GradientEstimator]] = {
    "analytic": lambda exp: AnalyticGradient(),
    "ep": lambda exp: EquilibriumPropagation(exp["learning"]["beta_s"], centred=exp["learning"]["centred"]),
    "cl": lambda exp: CoupledLearning(exp["learning"]["eta"], centred=exp["learning"]["centred"]),
    "cl_clocked": lambda exp: CoupledLearning(exp["learning"]["eta"], centred=exp["learning"]["centred"]),
    "fp": fp_rule,
}


def _resistor_network(exp: Experiment, task: Task) -> Network:
    return build_network(exp, task.n_inputs, task.n_outputs)


def _resistor_chip(exp: Experiment, net: Network, task: Task) -> Chip:
    return build_chip(exp, net)


#: ``[chip] type`` -> how to build it.  Add new types here (see :mod:`labtrain.kinds`).
CHIP_BUILDERS: dict[str, ChipBuilder] = {
    "resistor_network": ChipBuilder(build_task, _resistor_network, _resistor_chip, RESISTOR_RULES),
    "xy": _xy_builder.BUILDER,
    "nonreciprocal": _nonreciprocal_builder.BUILDER,
    "nonlinear_resistor": _nonlinear_builder.BUILDER,
    "dnpu": _dnpu_builder.BUILDER,
}


def chip_builder(exp: Experiment) -> ChipBuilder:
    """The builder of the experiment's ``[chip] type``."""
    kind = exp["chip"]["type"]
    try:
        return CHIP_BUILDERS[kind]
    except KeyError:
        raise ConfigError(f"{_src(exp)}: [chip] type = {kind!r}: this labtrain version cannot build it; "
                          f"available: {', '.join(CHIP_BUILDERS)}") from None


def build_estimator(exp: Experiment) -> GradientEstimator:
    """The ``[learning] rule`` of the experiment's chip type."""
    rule = exp["learning"]["rule"]
    rules = chip_builder(exp).rules
    if rule not in rules:
        raise ConfigError(f"{_src(exp)}: [learning] rule = {rule!r} does not fit [chip] type = "
                          f"{exp['chip']['type']!r}; rules for it: {', '.join(rules)}")
    try:
        return rules[rule](exp)
    except ValueError as exc:
        raise ConfigError(f"{_src(exp)}: [learning] rule = {rule!r}: {exc}") from None


def build_optimizer(exp: Experiment) -> Optimizer:
    lr = exp["learning"]
    name = "tap_step" if lr["rule"] == "cl_clocked" else lr["optimizer"]
    return make_optimizer(name, lr["learning_rate"], lr["momentum"], lr["deadband"], lr["lr_halflife_steps"])


@dataclass
class Setup:
    """Everything a run needs, built from one experiment."""

    experiment: Experiment
    task: Task
    network: Network | None
    chip: Chip
    estimator: GradientEstimator
    optimizer: Optimizer
    mask: UpdateMask
    maps: Any = None  # spatial-map recorder ([run] record_maps_every > 0), see labtrain.kinds.xy.maps


def build_setup(exp: Experiment) -> Setup:
    """Build and cross-check all parts.  Raises ConfigError; touches no instrument on failure."""
    builder = chip_builder(exp)
    task = builder.task(exp)
    net = builder.network(exp, task)
    estimator = build_estimator(exp)
    optimizer = build_optimizer(exp)
    lr = exp["learning"]
    chip = builder.chip(exp, net, task)
    mask = UpdateMask(chip.parameter_spec.size, lr["update_fraction"], lr["mask_mode"], exp["run"]["seed"])
    try:
        estimator.check(chip)
    except Exception as exc:
        chip.close()
        raise ConfigError(f"{_src(exp)}: [learning] rule = {lr['rule']!r}: {exc}") from None
    try:
        check_ac_settings(exp, estimator, chip)  # fp / hge: tones planned at the chip's clock, amplitudes
    except ConfigError:
        chip.close()
        raise
    setup = Setup(exp, task, net, chip, estimator, optimizer, mask)
    if exp["run"].get("record_maps_every", 0) and builder.maps is not None:
        setup.maps = builder.maps(setup)
    return setup
