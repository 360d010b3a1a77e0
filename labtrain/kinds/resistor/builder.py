"""How ``[chip] type = "resistor_network"`` is built from an experiment: ideal chip, bench chip, rules,
``check`` of the bench, ``gradcheck``."""

from __future__ import annotations

from typing import Callable

import numpy as np

from labtrain.chip.base import Chip
from labtrain.config import ConfigError, Experiment
from labtrain.instruments.bench_file import BenchError
from labtrain.instruments.ports import PortError
from labtrain.kinds import GradcheckReport, source_of as _src
from labtrain.kinds.ac_rules import fp_gradcheck_rows, fp_rule
from labtrain.kinds.common import build_network, build_task, initial_conductances, with_install_hint as _with_install_hint
from labtrain.kinds.dac_bench.hardware import require_rule_capabilities
from labtrain.kinds.resistor.bench import InstrumentChip
from labtrain.kinds.resistor.hardware import BUILD_ERRORS, build_instrument_chip, build_wiring, identify_instruments
from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.kinds.resistor.wiring import WiringError
from labtrain.physics.network import Network
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.fidelity import estimator_rows, exact_gradient
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation, gep_family
from labtrain.training.tasks import Task

__all__ = ["RULES", "build_chip", "build_resistor_network", "build_resistor_chip", "check_bench", "resistor_gradcheck"]


def build_chip(exp: Experiment, net: Network) -> Chip:
    b = exp["backend"]
    if b["kind"] != "ideal":
        return _build_instrument_chip(exp, net)
    return IdealChip(net, initial_conductances(exp, net), input_mode=exp["chip"]["input_mode"],
                     pot_steps=b["pot_steps"], read_noise_v=b["read_noise_v"], seed=exp["run"]["seed"],
                     rate_hz=b["rate_hz"], solver=exp["chip"]["solver"])


def _build_instrument_chip(exp: Experiment, net: Network) -> Chip:
    """Twin or hardware chip; every failure becomes a one-line ConfigError naming the section."""
    b = exp["backend"]
    try:
        return build_instrument_chip(b, exp["wiring"], net, initial_conductances(exp, net), exp["run"]["seed"],
                                     instruments=exp["instruments"])
    except BenchError as exc:
        raise ConfigError(f"{_src(exp)}: [{exc.section}] {exc}") from None
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


def check_bench(exp: Experiment, estimator: GradientEstimator, net: Network) -> tuple[dict[str, str], dict]:
    """``labtrain check`` on twin/hardware: wiring, capabilities of the bench chip it implies, and every
    instrument's identity -- without applying any voltage or moving any pot.  Returns (identities, wiring)."""
    b = exp["backend"]
    try:
        wiring = build_wiring(b, exp["wiring"], net, exp["instruments"])
    except BenchError as exc:
        raise ConfigError(f"{_src(exp)}: [{exc.section}] {exc}") from None
    except WiringError as exc:
        raise ConfigError(f"{_src(exp)}: [wiring] {exc}") from None
    require_rule_capabilities(exp, estimator, InstrumentChip.capabilities_for(wiring.reads_every_node(net)), _src(exp))
    try:
        identities = identify_instruments(b, exp["wiring"], net, exp["instruments"])
    except BenchError as exc:
        raise ConfigError(f"{_src(exp)}: [{exc.section}] {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{_src(exp)}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{_with_install_hint(exc)}") from None
    except (PortError, OSError, ValueError) as exc:
        raise ConfigError(f"{_src(exp)}: [backend] instrument not reachable: {exc}") from None
    return identities, wiring.to_dict()


#: Rules of ``[chip] type = "resistor_network"``; the first is the default.
RULES: dict[str, Callable[[Experiment], GradientEstimator]] = {
    "cl": lambda exp: CoupledLearning(exp["learning"]["eta"], centred=exp["learning"]["centred"]),
    "analytic": lambda exp: AnalyticGradient(),
    "ep": lambda exp: EquilibriumPropagation(exp["learning"]["beta_s"], centred=exp["learning"]["centred"]),
    "cl_clocked": lambda exp: CoupledLearning(exp["learning"]["eta"], centred=exp["learning"]["centred"]),
    "fp": fp_rule,
}


def build_resistor_network(exp: Experiment, task: Task) -> Network:
    return build_network(exp, task.n_inputs, task.n_outputs)


def build_resistor_chip(exp: Experiment, net: Network, task: Task) -> Chip:
    return build_chip(exp, net)


def resistor_gradcheck(setup, x: np.ndarray, t: np.ndarray, seed: int, options: dict) -> GradcheckReport:
    """EP, CL, the analytic rule (and FP when it is the file's rule) against the exact adjoint gradient.

    ``options``: ``beta_s`` (S) and ``eta`` override the file's EP nudge and CL clamp fraction.
    """
    exp, chip = setup.experiment, setup.chip
    beta_s = options.get("beta_s") if options.get("beta_s") is not None else exp["learning"]["beta_s"]
    eta = options.get("eta") if options.get("eta") is not None else exp["learning"]["eta"]
    exact = exact_gradient(chip, x, t)
    rows = []
    if exp["learning"]["rule"] == "fp":
        rows += fp_gradcheck_rows(exp, chip, x, t, exact, seed, [exp["learning"]["gamma_a_per_v"]])
    rows += estimator_rows([AnalyticGradient(), *gep_family(beta_s, eta)], chip, x, t, exact, seed)
    intro = (f"against the exact (adjoint) gradient of the noise-free network model; "
             f"|exact| = {np.linalg.norm(exact):.3g} V^2/S")
    note = ("cosine 1 = same direction; scale = least-squares factor between estimate and exact gradient; "
            "err. after scale = what remains once the scale is forgiven.\nCL estimates the gradient weighted "
            "by the outputs' effective conductance (its scale is ~ that conductance in S, so its plain rel. "
            "error is ~1 by construction): judge CL by cosine and err. after scale.")
    return GradcheckReport(intro, rows, note)
