"""``[chip] type = "nonreciprocal"``: layered rate networks with separate forward and backward couplings.

Rules ``aep`` (asymmetric EP), ``dyadic_ep`` (EP on the augmented state with a
transposed mirror copy), ``plain_ep``, ``vf_ep`` (vector-field EP) and
``implicit`` (the exact gradient by implicit differentiation).  The network is
``(n_inputs, *hidden_layers, n_outputs)`` units; there is no graph.  Inputs are
the task's features min-max scaled to ``[0, 1]``; targets are
``state_target_on`` / ``state_target_off`` (dimensionless unit states).
"""

from __future__ import annotations

import numpy as np

from labtrain.kinds.nonreciprocal.chip import NonReciprocalChip
from labtrain.config import ConfigError, Experiment
from labtrain.kinds.nonreciprocal.rules import (make_nonreciprocal_rule, nonreciprocal_exact_gradient)
from labtrain.protocols.fidelity import compare_gradients, fidelity_row
from labtrain.training.tasks import Task, TaskError, make_task
from labtrain.kinds import GradcheckReport, source_of
from labtrain.kinds.common import task_arguments

__all__ = ["build_nonreciprocal_task", "build_nonreciprocal_chip", "nonreciprocal_gradcheck"]

#: NonReciprocalChip's own relaxation iteration limit (``[chip] relax_max_steps = 0``).
DEFAULT_MAX_STEPS = 5000
RULE_NAMES = ("aep", "dyadic_ep", "plain_ep", "vf_ep", "implicit")


def build_nonreciprocal_task(exp: Experiment) -> Task:
    """The task with inputs in ``[0, 1]`` and targets ``state_target_on`` / ``state_target_off``."""

    t = task_arguments(exp)
    name = t.pop("name")
    on, off = t.pop("state_target_on"), t.pop("state_target_off")
    if t["mnist_path"]:
        t["mnist_path"] = str(exp.resolve(t["mnist_path"]))
    t["classes"] = t["classes"] or None
    t["decoder"] = t["decoder"] or None
    try:
        task = make_task(name, input_low_v=0.0, input_high_v=1.0, target_on_v=on, target_off_v=off, **t)
    except TaskError as exc:
        raise ConfigError(f"{source_of(exp)}: [task] {exc}") from None
    task.info = {**task.info, "encoding": "unit states: inputs in [0, 1], targets state_target_on/off"}
    return task


def no_network(exp: Experiment, task: Task) -> None:
    return None


def build_nonreciprocal_chip(exp: Experiment, net: None, task: Task) -> NonReciprocalChip:
    """``NonReciprocalChip((n_in, *hidden_layers, n_out), ...)`` seeded by ``[run] seed``."""
    c = exp["chip"]
    try:
        return NonReciprocalChip((task.n_inputs, *c["hidden_layers"], task.n_outputs), backward=c["backward"],
                                 dynamics=c["dynamics"], activation=c["activation"], init=c["weight_init"],
                                 init_scale=c["weight_init_scale"], weight_bound=c["weight_bound"],
                                 bias_bound=c["unit_bias_bound"], seed=exp["run"]["seed"], tol=c["relax_tol"],
                                 max_steps=c["relax_max_steps"] or DEFAULT_MAX_STEPS, array_backend=c["array_backend"])
    except ValueError as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] {exc}") from None


def nonreciprocal_rule(name: str):
    def build(exp: Experiment):
        return make_nonreciprocal_rule(name, exp["learning"]["beta"], exp["learning"]["centred"])
    return build


def nonreciprocal_gradcheck(setup, inputs: np.ndarray, targets: np.ndarray, seed: int,
                            options: dict) -> GradcheckReport:
    """AEP, plain EP and VF-EP (centred as ``[learning] centred``) against the exact gradient of the model."""
    exp, chip = setup.experiment, setup.chip
    lr = exp["learning"]
    beta = options.get("beta") or lr["beta"]
    exact = nonreciprocal_exact_gradient(chip, inputs, targets)
    rows = []
    for name in ("aep", "dyadic_ep", "plain_ep", "vf_ep"):
        est = make_nonreciprocal_rule(name, beta, lr["centred"])
        chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        f = compare_gradients(e.gradient, exact)
        dropped = getattr(est, "dropped_examples", 0)
        rows.append(fidelity_row(name + (" centred" if lr["centred"] else ""), f"beta = {beta:g}", f, e.n_phases,
                                 f"{dropped} unconverged examples left out" if dropped else ""))
    topo = chip.topology
    intro = (f"against the exact gradient (implicit differentiation of the noise-free model), network "
             f"{'-'.join(map(str, topo.layer_sizes))} ({'with' if topo.backward else 'no'} backward couplings, "
             f"{topo.dynamics}); |exact| = {np.linalg.norm(exact):.3g}")
    note = ("cosine 1 = same direction.  AEP is exact as beta -> 0 for any network, dyadic EP at any beta (its "
            "mirror copy is linear); plain EP and VF-EP are "
            "biased when the couplings are not reciprocal.")
    return GradcheckReport(intro, rows, note)


