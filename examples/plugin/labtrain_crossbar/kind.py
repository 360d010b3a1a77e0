"""``[chip] type = "crossbar"``: everything labtrain needs to know about the kind, in one object."""

from __future__ import annotations

from typing import Any

import numpy as np

from labtrain.kinds import ChipKind, GradcheckReport
from labtrain.kinds.common import build_task
from labtrain.kinds.fields import CONDUCTANCE, VOLTAGE_TASK, merge
from labtrain.protocols.fidelity import compare_gradients
from labtrain.schema import ConfigError, Field

from labtrain_crossbar.chip import CrossbarChip, DeltaRule

SCHEMA = merge(CONDUCTANCE, VOLTAGE_TASK, {
    "chip": {"feedback_ohm": Field("float", 1000.0, "crossbar: feedback resistance of every column's "
                                   "transimpedance amplifier (ohm)", 0, 1e12, low_open=True)},
})


def _chip(exp, net, task) -> CrossbarChip:
    c = exp["chip"]
    rng = np.random.default_rng([exp["run"]["seed"], 2])
    size = task.n_inputs * task.n_outputs
    init = {"geometric_mean": np.full(size, np.sqrt(c["g_min_s"] * c["g_max_s"])),
            "uniform_random": rng.uniform(c["g_min_s"], c["g_max_s"], size),
            "log_uniform_random": np.exp(rng.uniform(np.log(c["g_min_s"]), np.log(c["g_max_s"]), size)),
            "min": np.full(size, c["g_min_s"]), "max": np.full(size, c["g_max_s"])}[c["g_init"]]
    return CrossbarChip(task.n_inputs, task.n_outputs, g_min_s=c["g_min_s"], g_max_s=c["g_max_s"],
                        feedback_ohm=c["feedback_ohm"], conductance_s=init,
                        read_noise_v=exp["backend"]["read_noise_v"], seed=exp["run"]["seed"])


def _check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    if s["chip"]["g_min_s"] >= s["chip"]["g_max_s"]:
        raise ConfigError(f"{source}: [chip] g_min_s = {s['chip']['g_min_s']!r} must be below g_max_s = "
                          f"{s['chip']['g_max_s']!r}")


def _gradcheck(setup, x, t, seed, options) -> GradcheckReport:
    chip = setup.chip
    exact = chip.reference_gradient(x, t)
    chip.reseed([seed, 9])
    est = setup.estimator.estimate(chip, x, t)
    f = compare_gradients(est.gradient, exact)
    return GradcheckReport("against the crossbar's exact gradient",
                           [[setup.estimator.label, "", f"{f.cosine:.6f}", f"{f.relative_error:.2e}",
                             f"{f.scale:.4g}", f"{f.scaled_error:.2e}", "1", ""]],
                           "the delta rule is exact on a noise-free crossbar")


KIND = ChipKind(
    name="crossbar",
    summary="memristive crossbar read by transimpedance amplifiers (example plugin); delta rule",
    schema=SCHEMA,
    rules={"delta": lambda exp: DeltaRule(exp["chip"]["feedback_ohm"])},
    task=build_task,
    network=lambda exp, task: None,
    chip=_chip,
    backends=("ideal",),
    check=_check,
    gradcheck=_gradcheck,
    describe=lambda s: f"crossbar (R_f = {s['chip']['feedback_ohm']:g} ohm)",
)
