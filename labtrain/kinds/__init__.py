"""How each ``[chip] type`` of an experiment file is built: one :class:`ChipBuilder` per type.

:data:`labtrain.build.CHIP_BUILDERS` maps every ``[chip] type`` to its
builder; :func:`labtrain.build.build_setup` looks the type up and calls, in
order, ``task`` -> ``network`` -> ``rules[rule]`` -> ``chip`` (-> ``maps``).
A builder's functions raise :class:`~labtrain.config.ConfigError` with the
file and section for anything the schema could not check.

Adding a chip type (e.g. ``dnpu``):

1. ``labtrain/config.py``: add the type and its rules to ``CHIP_RULES``
   (and to ``CHIP_BACKENDS`` / ``CHIP_TOPOLOGIES`` if it is restricted), its
   keys to ``SCHEMA`` with ``types=("dnpu",)``;
2. a module here (``builders/dnpu.py``) with ``BUILDER = ChipBuilder(...)``;
3. ``labtrain/build.py``: ``CHIP_BUILDERS["dnpu"] = dnpu.BUILDER``.

A new rule for an existing type is one entry in ``CHIP_RULES`` and one in
that builder's ``rules``; ``tests/test_xy_config.py`` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from labtrain.chip.base import Chip
    from labtrain.config import Experiment
    from labtrain.physics.network import Network
    from labtrain.protocols.base import GradientEstimator
    from labtrain.training.tasks import Task

__all__ = ["ChipBuilder", "GradcheckReport", "source_of"]


def source_of(exp: "Experiment") -> str:
    """The experiment's file name as error messages start with it."""
    return str(exp.path) if exp.path else "<experiment>"


@dataclass
class GradcheckReport:
    """What ``labtrain gradcheck`` prints: a first line, one table row per estimator, a closing note.

    Rows have the columns ``estimator, setting, cosine, rel. error, scale,
    err. after scale, phases, note``.
    """

    intro: str
    rows: list[list[str]]
    note: str


@dataclass(frozen=True)
class ChipBuilder:
    """Everything ``build_setup`` needs to know about one ``[chip] type``.

    Attributes
    ----------
    task : callable(exp) -> Task
        The task, encoded for this chip (volts, phases, unit-less states).
    network : callable(exp, task) -> Network or None
        The graph (``None`` for chips without one, e.g. layered rate networks).
    chip : callable(exp, network, task) -> Chip
        The chip at its initial parameters (opens instruments, if any: called last).
    rules : mapping rule name -> callable(exp) -> GradientEstimator
        Every ``[learning] rule`` this type takes (the names in ``config.CHIP_RULES``).
    gradcheck : callable(setup, inputs, targets, seed, options) -> GradcheckReport, optional
        ``labtrain gradcheck`` for this type (``None``: the resistor-network table in the CLI).
    maps : callable(setup) -> map recorder, optional
        ``[run] record_maps_every > 0``: an object with ``record(step) -> dict`` and ``attrs``
        (see :mod:`labtrain.kinds.xy.maps`).
    """

    task: Callable[["Experiment"], "Task"]
    network: Callable[["Experiment", "Task"], "Network | None"]
    chip: Callable[["Experiment", "Network | None", "Task"], "Chip"]
    rules: Mapping[str, Callable[["Experiment"], "GradientEstimator"]]
    gradcheck: Callable[..., GradcheckReport] | None = None
    maps: Callable[[Any], Any] | None = None
