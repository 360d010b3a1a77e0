"""``[chip] type = "xy"``: XY oscillator networks (phases in, phases out), rules ``xy_ep`` and ``xy_implicit``.

Inputs and targets are phases (:func:`labtrain.kinds.xy.tasks.phase_task`, decoded
on the circle by ``nearest_phase``); the network is any graph builder of
:mod:`labtrain.physics.network` or a stack of lattices
(:func:`labtrain.kinds.xy.model.stacked_lattice`); the chip is the ideal
:class:`~labtrain.kinds.xy.chip.XYChip` with couplings (and bias fields) in rad/s.
"""

from __future__ import annotations

import numpy as np

from labtrain.kinds.xy.chip import XYChip
from labtrain.config import ConfigError, Experiment
from labtrain.physics.network import Network, NetworkError
from labtrain.protocols.fidelity import compare_gradients, fidelity_row
from labtrain.kinds.xy.rules import XYEquilibriumPropagation, XYImplicitGradient
from labtrain.kinds.xy.model import stacked_lattice
from labtrain.training.tasks import Task, TaskError
from labtrain.kinds.xy.tasks import phase_task
from labtrain.kinds import GradcheckReport, source_of
from labtrain.kinds.common import build_network

__all__ = ["build_xy_task", "build_xy_network", "build_xy_chip", "xy_gradcheck", "xy_ep_rule", "xy_implicit_rule", "xy_maps"]

#: XYChip's own relaxation iteration limit (``[chip] relax_max_steps = 0``).
DEFAULT_MAX_STEPS = 20000


def build_xy_task(exp: Experiment) -> Task:
    """A phase-encoded task: inputs in ``[-input_phase_rad, +input_phase_rad]``, targets ``+-target_phase_rad``."""
    t = exp["task"]
    mnist_path = str(exp.resolve(t["mnist_path"])) if t["mnist_path"] else ""
    try:
        return phase_task(t["name"], seed=t["seed"], input_phase=t["input_phase_rad"],
                          target_phase=t["target_phase_rad"], test_fraction=t["test_fraction"],
                          decoder="nearest_phase", classes=t["classes"] or None, downsample=t["downsample"],
                          mnist_path=mnist_path, n_train=t["n_train"], n_test=t["n_test"], shift_px=t["shift_px"])
    except TaskError as exc:
        raise ConfigError(f"{source_of(exp)}: [task] {exc}") from None


def build_xy_network(exp: Experiment, task: Task) -> Network:
    """The oscillator graph: the resistor-network builders, or ``stacked_lattice``."""

    c = exp["chip"]
    if c["topology"] != "stacked_lattice":
        return build_network(exp, task.n_inputs, task.n_outputs)
    if c["inputs"] or c["outputs"] or c["grounds"]:
        raise ConfigError(f"{source_of(exp)}: [chip] topology = 'stacked_lattice' places its own terminals; "
                          "remove inputs/outputs/grounds")
    try:
        return stacked_lattice(c["rows"], c["cols"], c["layers"], n_inputs=task.n_inputs,
                               n_outputs=task.n_outputs, skip=c["skip"], diagonals=c["diagonals"],
                               inset=c["lattice_inset"])
    except NetworkError as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] {exc}") from None


def build_xy_chip(exp: Experiment, net: Network, task: Task) -> XYChip:
    """The ideal XY chip; initial couplings/biases, random starts and the fixed evaluation starts seeded by
    ``[run] seed``."""
    c, seed = exp["chip"], exp["run"]["seed"]
    low, high = c["init_coupling_rad_per_s"]
    try:
        return XYChip(net, bias=c["bias"], bias_on=c["bias_on"], bias_phase=c["bias_phase_rad"],
                      coupling_bounds=(c["coupling_min_rad_per_s"], c["coupling_max_rad_per_s"]),
                      bias_bounds=(-c["bias_max_rad_per_s"], c["bias_max_rad_per_s"]), n_starts=c["n_starts"],
                      ground_phase=c["ground_phase_rad"] if c["clamp_grounds"] else None,
                      init_coupling=(low, high), init_bias=(-c["init_bias_rad_per_s"], c["init_bias_rad_per_s"]),
                      init_seed=seed, tol=c["relax_tol"], max_steps=c["relax_max_steps"] or DEFAULT_MAX_STEPS,
                      seed=seed, evaluation_seed=seed, solver=c["solver"])
    except ValueError as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] {exc}") from None


def max_shift_rad(exp: Experiment) -> float | None:
    """``[learning] max_shift_rad`` as the estimator takes it (0 = no guard = ``None``)."""
    return exp["learning"]["max_shift_rad"] or None


def xy_ep_rule(exp: Experiment) -> XYEquilibriumPropagation:
    lr = exp["learning"]
    return XYEquilibriumPropagation(lr["beta"], centred=lr["centred"], cost=lr["cost"], eps=lr["cost_eps"],
                                    max_shift_rad=max_shift_rad(exp))


def xy_implicit_rule(exp: Experiment) -> XYImplicitGradient:
    return XYImplicitGradient(exp["learning"]["cost"], eps=exp["learning"]["cost_eps"])


def xy_gradcheck(setup, inputs: np.ndarray, targets: np.ndarray, seed: int, options: dict) -> GradcheckReport:
    """XY EP (one-sided and centred) against the exact gradient at the *same* free equilibria.

    ``options["beta"]`` overrides ``[learning] beta``.  Each estimator relaxes
    from fresh random starts (chip reseeded per row); the exact gradient is
    taken by implicit differentiation at the free states that estimator measured.
    """
    exp, chip = setup.experiment, setup.chip
    lr = exp["learning"]
    beta = options.get("beta") or lr["beta"]
    rows, norm = [], float("nan")
    for centred in (False, True):
        est = XYEquilibriumPropagation(beta, centred=centred, cost=lr["cost"], eps=lr["cost_eps"],
                                       max_shift_rad=max_shift_rad(exp))
        chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        exact = chip.exact_gradient(inputs, targets, est.cost, phases=chip.last_free.phases)
        norm = float(np.linalg.norm(exact))
        f = compare_gradients(e.gradient, exact)
        rows.append(fidelity_row(est.name + (" centred" if centred else ""), f"beta = {beta:g}", f, e.n_phases,
                                 f"{chip.last_free.n_unconverged} unconverged starts"
                                 if chip.last_free.n_unconverged else ""))
    cost = est.cost.describe()
    intro = (f"against the exact gradient (implicit differentiation at the same free equilibria, "
             f"{chip.n_starts} random starts per example); cost {cost['kind']}; |exact| = {norm:.3g} (1/(rad/s))")
    note = ("cosine 1 = same direction; scale = least-squares factor between estimate and exact gradient. "
            "One-sided EP is biased by O(beta), centred by O(beta^2).")
    return GradcheckReport(intro, rows, note)


def xy_maps(setup):
    from labtrain.kinds.xy.maps import XYMapRecorder

    return XYMapRecorder(setup.chip, setup.task.x_train, setup.experiment["run"]["seed"])


