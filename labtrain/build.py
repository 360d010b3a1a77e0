"""Turn a validated :class:`~labtrain.config.Experiment` into task, network, chip, rule and optimiser.

Every failure here is still a :class:`~labtrain.config.ConfigError` naming the
file and section, raised before any chip exists.  The experiment's ``[chip]
type`` is looked up in the registry (:func:`labtrain.config.chip_kind`); its
:class:`~labtrain.kinds.ChipKind` builds the parts.  This module names no kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labtrain.chip.base import Chip
from labtrain.config import ConfigError, Experiment, chip_kind, kind_rules
from labtrain.kinds import ChipKind, source_of
from labtrain.physics.network import Network
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.masks import UpdateMask
from labtrain.registry import RegistryError
from labtrain.training.optim import Optimizer, make_optimizer
from labtrain.training.tasks import Task

__all__ = ["Setup", "build_estimator", "build_optimizer", "build_setup", "kind_of", "check_bench"]


def kind_of(exp: Experiment) -> ChipKind:
    """The :class:`~labtrain.kinds.ChipKind` of the experiment's ``[chip] type``."""
    try:
        return chip_kind(exp["chip"]["type"])
    except RegistryError as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] type: {exc}") from None


def build_estimator(exp: Experiment) -> GradientEstimator:
    """The ``[learning] rule`` of the experiment's chip kind."""
    rule = exp["learning"]["rule"]
    rules = kind_rules(exp["chip"]["type"])
    if rule not in rules:
        raise ConfigError(f"{source_of(exp)}: [learning] rule = {rule!r} does not fit [chip] type = "
                          f"{exp['chip']['type']!r}; rules for it: {', '.join(rules)}")
    try:
        return rules[rule](exp)
    except ValueError as exc:
        raise ConfigError(f"{source_of(exp)}: [learning] rule = {rule!r}: {exc}") from None


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
    kind: ChipKind | None = None
    maps: Any = None  # spatial-map recorder ([run] record_maps_every > 0), see ChipKind.maps


def build_setup(exp: Experiment) -> Setup:
    """Build and cross-check all parts.  Raises ConfigError; touches no instrument on failure."""
    kind = kind_of(exp)
    task = kind.task(exp)
    net = kind.network(exp, task)
    estimator = build_estimator(exp)
    optimizer = build_optimizer(exp)
    lr = exp["learning"]
    chip = kind.chip(exp, net, task)
    try:
        mask = UpdateMask.for_chip(chip, lr["update_fraction"], lr["mask_mode"], exp["run"]["seed"])
    except ValueError as exc:  # near_output on a chip whose parameters are not network edges
        chip.close()
        raise ConfigError(f"{source_of(exp)}: [learning] {exc}") from None
    try:
        estimator.check(chip)
    except Exception as exc:
        chip.close()
        raise ConfigError(f"{source_of(exp)}: [learning] rule = {lr['rule']!r}: {exc}") from None
    if kind.check_setup is not None:
        try:
            kind.check_setup(exp, estimator, chip)  # e.g. tones planned at the chip's clock, amplitudes
        except BaseException:  # bad input or a bug: the chip goes to its safe state either way
            chip.close()
            raise
    setup = Setup(exp, task, net, chip, estimator, optimizer, mask, kind)
    if exp["run"].get("record_maps_every", 0) and kind.maps is not None:
        try:
            setup.maps = kind.maps(setup)
        except BaseException:
            chip.close()
            raise
    return setup


def check_bench(exp: Experiment) -> tuple[Task, Network | None, dict[str, str], dict] | None:
    """``labtrain check`` on twin/hardware for kinds that can check their bench without applying any voltage:
    (task, network, instrument identities, wiring); ``None`` when the kind has no such check (then ``check``
    builds the whole setup, as ``run`` would)."""
    kind = kind_of(exp)
    if kind.check_bench is None or exp["backend"]["kind"] == "ideal":
        return None
    task = kind.task(exp)
    net = kind.network(exp, task)
    estimator = build_estimator(exp)
    if exp["learning"]["mask_mode"] == "near_output" and net is None:  # build_setup checks it on the chip
        raise ConfigError(f"{source_of(exp)}: [learning] mask_mode = 'near_output' needs parameters that are "
                          f"network edges; [chip] type = {exp['chip']['type']!r} has no network")
    if kind.check_setup is not None:  # what run checks once the chip exists, as far as it needs no chip
        kind.check_setup(exp, estimator, None)
    identities, wiring = kind.check_bench(exp, estimator, net)
    return task, net, identities, wiring
