"""``[chip] type = "nonlinear_resistor"``: resistive networks with diodes or transistor edges, rules ``fp`` and
``analytic``.

Topologies:

* ``layered`` (the default): :func:`labtrain.kinds.nonlinear.model.diode_network` --
  layers ``(n_features, *hidden_layers, n_outputs)`` joined by trainable resistors, fixed diodes
  (``diode``, ``diode_orientation``) from every hidden node to ground; the input layer holds the task's
  features, their mirrors (``[task] complementary_inputs``, needed for non-monotone tasks such as XOR)
  and the bias inputs (``[task] bias_inputs_v``), in that order, plus the ground node.  ``[chip]
  layer_gain`` > 1 puts ideal bidirectional amplifiers between the node layers
  (:class:`labtrain.kinds.nonlinear.amplified.AmplifiedNetwork`).
* ``lattice``, ``all_to_all``, ``random``, ``edge_list``: the resistor-network graph builders with every
  edge of ``edge_kind`` (``linear``: trainable conductance; ``transistor``: trainable gate voltage).

Backends: ``ideal`` is :class:`~labtrain.kinds.nonlinear.chip.NonlinearResistorChip` (the physics
solved at every synthesised sample for ``fp``); ``twin`` and ``hardware`` are
:class:`~labtrain.kinds.nonlinear.bench.NonlinearBenchChip` over simulated or real instruments
(:mod:`labtrain.kinds.nonlinear.hardware`), with the same ``[wiring]`` keys as the linear bench
plus ``gate_ao``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from labtrain.chip.base import Chip
from labtrain.config import ConfigError, Experiment
from labtrain.instruments.ports import PortError
from labtrain.kinds import GradcheckReport, source_of
from labtrain.kinds.ac_rules import fp_gradcheck_rows
from labtrain.kinds.common import build_network, build_task, with_install_hint
from labtrain.kinds.dac_bench.hardware import require_rule_capabilities
from labtrain.kinds.nonlinear.amplified import layered_node_layers
from labtrain.kinds.nonlinear.bench import NonlinearBenchChip
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.kinds.nonlinear.hardware import (BUILD_ERRORS, build_nonlinear_bench_chip, build_nonlinear_wiring,
                                               identify_nonlinear_instruments)
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork, diode_network
from labtrain.kinds.nonlinear.wiring import WiringError
from labtrain.physics.network import Network, NetworkError
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.fidelity import compare_gradients, estimator_rows, fidelity_row
from labtrain.protocols.gep import gep_family
from labtrain.training.tasks import Task

__all__ = ["build_nonlinear_network", "build_nonlinear_chip", "nonlinear_edges", "nonlinear_gradcheck",
           "check_nonlinear_bench", "initial_parameters"]


def _diode_params(c: dict) -> dict:
    return {"saturation_current_a": c["diode_saturation_current_a"], "ideality": c["diode_ideality"],
            "series_ohm": c["diode_series_ohm"], "parallel_s": c["diode_parallel_s"],
            "on_s": c["ideal_diode_on_s"], "off_s": c["ideal_diode_off_s"], "on_v": c["ideal_diode_on_v"]}


def _network_and_edges(exp: Experiment, task: Task) -> tuple[Network, NonlinearEdges]:

    c, t = exp["chip"], exp["task"]
    src = source_of(exp)
    if c["topology"] == "layered":
        if c["inputs"] or c["outputs"] or c["grounds"]:
            raise ConfigError(f"{src}: [chip] topology = 'layered' places its own terminals; remove "
                              "inputs/outputs/grounds")
        n_bias = len(t["bias_inputs_v"])
        per_feature = 2 if t["complementary_inputs"] else 1
        n_features = (task.n_inputs - n_bias) // per_feature
        try:
            n_output_nodes = task.n_outputs * (2 if c["differential_outputs"] else 1)  # o+ then o- per output
            net, edges = diode_network((n_features, *c["hidden_layers"], n_output_nodes),
                                       complementary_inputs=t["complementary_inputs"], n_bias_inputs=n_bias,
                                       diode=c["diode"], orientation=c["diode_orientation"],
                                       skip_inputs=c["skip_inputs"], g_min_s=c["g_min_s"], g_max_s=c["g_max_s"],
                                       **_diode_params(c))
        except (NetworkError, ValueError) as exc:
            raise ConfigError(f"{src}: [chip] {exc}") from None
        if c["differential_outputs"]:
            pairs = f"{task.n_outputs} differential pair{'s' if task.n_outputs != 1 else ''}"
            net = dataclasses.replace(net, name=f"{net.name}, outputs read as {pairs}")
        return net, edges
    net = build_network(exp, task.n_inputs, task.n_outputs)
    try:
        edges = NonlinearEdges.uniform(net.n_edges, c["edge_kind"], gain_a_per_v2=c["transistor_gain_a_per_v2"],
                                       threshold_v=c["transistor_threshold_v"], off_s=c["transistor_off_s"],
                                       gate_min_v=c["gate_min_v"], gate_max_v=c["gate_max_v"])
    except ValueError as exc:
        raise ConfigError(f"{src}: [chip] {exc}") from None
    return net, edges


def build_nonlinear_network(exp: Experiment, task: Task) -> Network:
    """The graph (the diode network for ``layered``)."""
    return _network_and_edges(exp, task)[0]


def nonlinear_edges(exp: Experiment, task: Task) -> NonlinearEdges:
    """Kind and fixed parameters of every edge, as the chip is built with."""
    return _network_and_edges(exp, task)[1]


def initial_parameters(exp: Experiment, lower: np.ndarray, upper: np.ndarray, n_conductances: int) -> np.ndarray:
    """``[chip] g_init`` for the conductances (S); transistor gates mid-range or uniformly random (V)."""
    rng = np.random.default_rng([exp["run"]["seed"], 2])
    kind = exp["chip"]["g_init"]
    lo_g, hi_g, lo_v, hi_v = lower[:n_conductances], upper[:n_conductances], lower[n_conductances:], \
        upper[n_conductances:]
    if kind == "uniform_random":
        g = rng.uniform(lo_g, hi_g)
    elif kind == "log_uniform_random":
        g = np.exp(rng.uniform(np.log(lo_g), np.log(hi_g)))
    elif kind == "min":
        g = lo_g.copy()
    elif kind == "max":
        g = hi_g.copy()
    else:
        g = np.sqrt(lo_g * hi_g)
    gates = rng.uniform(lo_v, hi_v) if kind.endswith("random") else 0.5 * (lo_v + hi_v)
    return np.r_[g, gates]


def build_nonlinear_chip(exp: Experiment, net: Network, task: Task) -> Chip:
    """The chip at ``[chip] g_init``: ideal (read noise and sample clock from ``[backend]``), or the bench chip
    over the twin or the hardware (every failure a one-line ConfigError naming the section)."""
    b = exp["backend"]
    edges = nonlinear_edges(exp, task)
    if b["kind"] != "ideal":
        return _build_bench_chip(exp, net, edges)
    try:
        c = exp["chip"]
        amplified = c["topology"] == "layered" and c["layer_gain"] != 1.0
        chip = NonlinearResistorChip(net, edges, read_noise_v=b["read_noise_v"], rate_hz=b["rate_hz"],
                                     seed=exp["run"]["seed"], solver=c["solver"],
                                     layer_gain=c["layer_gain"] if amplified else 1.0,
                                     node_layer=layered_node_layers(net, c["hidden_layers"]) if amplified else None,
                                     differential_outputs=c["differential_outputs"])
        spec = chip.parameter_spec
        n_g = chip.network_model().n_conductances
        chip.set_parameters(initial_parameters(exp, spec.lower, spec.upper, n_g))
    except ValueError as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] {exc}") from None
    return chip


def _build_bench_chip(exp: Experiment, net: Network, edges: NonlinearEdges) -> NonlinearBenchChip:
    """Twin or hardware chip, started at the parameters the ideal chip starts at (then quantised by the pots)."""
    b, src = exp["backend"], source_of(exp)
    try:
        nominal = NonlinearResistorNetwork(net, edges)
        init = initial_parameters(exp, nominal.lower, nominal.upper, nominal.n_conductances)
    except ValueError as exc:
        raise ConfigError(f"{src}: [chip] {exc}") from None
    try:
        return build_nonlinear_bench_chip(b, exp["wiring"], net, edges, init, exp["run"]["seed"],
                                          exp["instruments"] or None)
    except BUILD_ERRORS as exc:
        section = "wiring" if isinstance(exc, WiringError) else getattr(exc, "section", "backend")
        raise ConfigError(f"{src}: [{section}] {_one_line(exc)}") from None
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{with_install_hint(exc)}") from None
    except (PortError, OSError) as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r}: instrument not reachable: {_one_line(exc)}") \
            from None
    except ValueError as exc:
        raise ConfigError(f"{src}: [backend] {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def check_nonlinear_bench(exp: Experiment, estimator: GradientEstimator, net: Network
                          ) -> tuple[dict[str, str], dict]:
    """``labtrain check`` on twin/hardware: the wiring, the capabilities of the bench chip it implies, and every
    instrument's identity -- without applying any voltage or moving any pot.  Returns (identities, wiring)."""
    b, src = exp["backend"], source_of(exp)
    edges = nonlinear_edges(exp, build_task(exp))
    try:
        wiring = build_nonlinear_wiring(b, exp["wiring"], net, edges, exp["instruments"] or None)
    except WiringError as exc:
        raise ConfigError(f"{src}: [wiring] {exc}") from None
    except BUILD_ERRORS as exc:
        raise ConfigError(f"{src}: [{getattr(exc, 'section', 'backend')}] {_one_line(exc)}") from None
    require_rule_capabilities(exp, estimator, NonlinearBenchChip.capabilities_for(wiring.reads_every_node(net)), src)
    try:
        identities = identify_nonlinear_instruments(b, exp["wiring"], net, edges, exp["instruments"] or None)
    except BUILD_ERRORS as exc:
        raise ConfigError(f"{src}: [{getattr(exc, 'section', 'backend')}] {_one_line(exc)}") from None
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{with_install_hint(exc)}") from None
    except (PortError, OSError, ValueError) as exc:
        raise ConfigError(f"{src}: [backend] instrument not reachable: {_one_line(exc)}") from None
    return identities, wiring.to_dict()


def nonlinear_gradcheck(setup, inputs: np.ndarray, targets: np.ndarray, seed: int, options: dict) -> GradcheckReport:
    """The analytic rule, EP and CL (one-sided and centred) and FP (the file's settings at gamma x 10, x 1, x 0.1)
    against the exact gradient.  ``options``: ``beta_s`` (S) and ``eta`` override the file's EP nudge and CL clamp
    fraction."""
    exp, chip = setup.experiment, setup.chip
    if options.get("beta"):
        raise ConfigError(f"{source_of(exp)}: --beta is the nudge of xy / nonreciprocal chips; fp on a nonlinear "
                          "network takes [learning] gamma_a_per_v")
    exact = chip.reference_gradient(inputs, targets)
    a = AnalyticGradient().estimate(chip, inputs, targets)
    f = compare_gradients(a.gradient, exact)
    bench = chip.backend != "ideal"
    rows = [fidelity_row("analytic", "", f, a.n_phases,
                         "measured outputs + model adjoint" if bench else "model adjoint (no measurement)")]
    beta_s = options.get("beta_s") if options.get("beta_s") is not None else exp["learning"]["beta_s"]
    eta = options.get("eta") if options.get("eta") is not None else exp["learning"]["eta"]
    rows += estimator_rows(gep_family(beta_s, eta), chip, inputs, targets, exact, seed,
                           "co-content derivative at measured drops")
    gamma = exp["learning"]["gamma_a_per_v"]
    if exp["chip"]["layer_gain"] != 1.0:  # FP's in-phase edge products are not modelled through amplifiers
        rows.append(["fp", "-", "-", "-", "-", "-", "-", "not modelled with [chip] layer_gain != 1"])
        gamma = None
    elif exp["chip"]["differential_outputs"]:  # an output-current tone would be a floating source across a pair
        rows.append(["fp", "-", "-", "-", "-", "-", "-", "not modelled with [chip] differential_outputs"])
        gamma = None
    for g in (() if gamma is None else (10 * gamma, gamma, 0.1 * gamma)):
        try:
            rows += fp_gradcheck_rows(exp, chip, inputs, targets, exact, seed, [g])
        except ValueError as exc:  # on a bench: the error current's AO swing beyond the safety limits
            act = exp["learning"]["fp_activation"]
            rows.append([f"fp (time_domain, {act} activation)", f"gamma = {g:g} A/V", "-", "-", "-", "-", "-",
                         f"refused: {_one_line(exc)}"])
    blocks = ", ".join(f"{b['stop'] - b['start']} {b['name']} ({b['unit']})" for b in chip.parameter_blocks())
    model = "nominal nonlinear network (datasheet parts, nominal pots)" if bench else "noise-free nonlinear network"
    intro = (f"against the exact gradient (adjoint of the {model} at its operating points); "
             f"{blocks}; |exact| = {np.linalg.norm(exact):.3g}")
    note = ("cosine 1 = same direction.  On a nonlinear network FP reads the linear response around the operating "
            "point: its bias shrinks with gamma (O(gamma^2): the in-phase response to a sine has no second-order "
            "term) until read noise dominates.")
    return GradcheckReport(intro, rows, note)


