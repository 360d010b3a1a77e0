"""Builder helpers shared by several chip kinds: voltage-encoded tasks, networks from ``[chip]`` keys,
initial conductances, install hints."""

from __future__ import annotations

from typing import Any

import numpy as np

from labtrain.config import ConfigError, Experiment, schema_for
from labtrain.kinds import source_of as _src
from labtrain.resources import BYTES_PER_EDGE, BYTES_PER_NODE, check_memory, graph_size
from labtrain.physics.network import Network, NetworkError, all_to_all, from_edge_list, layered, lattice, random_graph
from labtrain.training.tasks import Task, TaskError, make_task

__all__ = ["task_arguments", "build_task", "build_network", "initial_conductances", "with_install_hint"]


def task_arguments(exp: Experiment) -> dict[str, Any]:
    """The ``[task]`` keys that apply to the experiment's chip type (``name`` included)."""
    keys = schema_for(exp["chip"]["type"])["task"]
    return {k: v for k, v in exp["task"].items() if k in keys}


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
    bounds = {k: c[k] for k in ("g_min_s", "g_max_s") if k in c}  # conductance kinds: the edge bounds
    topo = c["topology"]
    nodes, edges = graph_size(c, n_inputs, n_outputs)
    check_memory(f"{_src(exp)}: [chip] topology = {topo!r}", f"a network of {nodes:,} nodes and {edges:,} edges",
                 BYTES_PER_NODE * nodes + BYTES_PER_EDGE * edges)
    try:
        if topo == "lattice":
            net = lattice(c["rows"], c["cols"], diagonals=c["diagonals"], skip=c["skip"], n_inputs=n_inputs,
                          n_outputs=n_outputs, inset=c.get("lattice_inset", 0), **explicit, **bounds)
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


def with_install_hint(exc: Exception) -> str:
    text = str(exc)
    return text if ".[hardware]'" in text else f"{text} (pip install -e '.[hardware]' in the labtrain checkout)"
