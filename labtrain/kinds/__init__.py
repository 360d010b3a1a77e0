"""Chip kinds: one package per kind of learning machine, described by one :class:`ChipKind`.

A kind's package (``labtrain/kinds/<kind>/``) holds everything about it: its
physics model, its ideal chip, its bench chip and twin circuit, kind-specific
rules, its experiment-file keys (a schema fragment) and cross-checks, its
builder, its reference gradient and the GUI's one-line summary.  Its
``__init__.py`` exports ``KIND = ChipKind(...)``; :mod:`labtrain.registry` lists
it (one line in ``BUILTIN["labtrain.kinds"]``), or a plugin package declares it
as an entry point in the group ``labtrain.kinds``.  Config, build, CLI and GUI
iterate the registry and never name a kind.

Writing a kind: see ``docs/plugins.md`` and ``examples/plugin/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from labtrain.schema import Field

if TYPE_CHECKING:  # pragma: no cover
    from labtrain.chip.base import Chip
    from labtrain.config import Experiment
    from labtrain.instruments.selftest import SelfTestReport
    from labtrain.physics.network import Network
    from labtrain.protocols.base import GradientEstimator
    from labtrain.training.tasks import Task

__all__ = ["ChipKind", "GradcheckReport", "RulePlugin", "source_of", "BACKENDS"]

#: Every backend a kind may offer: the physics model called directly, simulated instruments, real ones.
BACKENDS = ("ideal", "twin", "hardware")


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


Sections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ChipKind:
    """Everything labtrain's front ends need to know about one ``[chip] type``.

    Attributes
    ----------
    name : str
        The ``[chip] type`` value (e.g. ``resistor_network``).
    summary : str
        One line for ``labtrain devices`` and the docs.
    schema : mapping section -> {key: Field}
        The kind's experiment-file keys (beyond the shared ones in :mod:`labtrain.config`).
    rules : mapping rule name -> callable(exp) -> GradientEstimator
        Every ``[learning] rule`` the kind takes; the first is the default.
    task : callable(exp) -> Task
        The task, encoded for this kind (volts, phases, dimensionless states).
    network : callable(exp, task) -> Network or None
        The graph (``None`` for kinds without one).
    chip : callable(exp, network, task) -> Chip
        The chip at its initial parameters (opens instruments, if any: called last).
    backends : tuple of str
        Backends the kind can realise (a subset of :data:`BACKENDS`).
    topologies : tuple of str
        ``[chip] topology`` values it accepts (empty: the kind has no graph, the key does not apply).
    default_topology : str
        Topology when the file gives none.
    check : callable(sections, given, source), optional
        Cross-checks of the validated sections (defaults filled; ``given`` is what the file wrote);
        may fill derived defaults; raises :class:`~labtrain.schema.ConfigError`.
    check_setup : callable(exp, estimator, chip), optional
        Checks once the chip exists (tone plans at the chip's clock, amplitudes); ConfigError.  ``labtrain
        check`` on a bench calls it with ``chip=None`` (no chip is built there): it checks what needs no chip.
    check_bench : callable(exp) -> (identities, wiring dict), optional
        ``labtrain check`` on twin/hardware: builds the wiring and asks every instrument its identity,
        without applying any voltage.
    gradcheck : callable(setup, inputs, targets, seed, options) -> GradcheckReport, optional
        ``labtrain gradcheck`` for this kind.
    gradcheck_options : tuple of str
        The ``gradcheck`` flags it takes (``beta``, ``beta_s``, ``eta``); the CLI refuses the others.
    maps : callable(setup) -> map recorder, optional
        ``[run] record_maps_every > 0``: an object with ``record(step) -> dict`` and ``attrs``.
    describe : callable(sections) -> str, optional
        A short phrase for the GUI's status line ("lattice 4x4 network").
    selftest : callable(exp, options) -> SelfTestReport, optional
        ``labtrain selftest`` on twin/hardware: the bench bring-up check (every AO ramped and read back on
        the AI channels the wiring connects, pots stepped, a lock-in tone), through the same safety layer
        and fault handling as a run, ending in the safe state.  ``options``: ``thresholds``
        (:class:`~labtrain.instruments.selftest.Thresholds`) and ``twin_faults`` (twin only, see
        :data:`~labtrain.instruments.selftest.TWIN_FAULTS`).  Raises ``ConfigError`` for bad input and
        :class:`~labtrain.instruments.selftest.InstrumentUnreachable` when the bench cannot be opened.
    """

    name: str
    summary: str
    schema: Mapping[str, Mapping[str, Field]]
    rules: Mapping[str, Callable[["Experiment"], "GradientEstimator"]]
    task: Callable[["Experiment"], "Task"]
    network: Callable[["Experiment", "Task"], "Network | None"]
    chip: Callable[["Experiment", "Network | None", "Task"], "Chip"]
    backends: tuple[str, ...] = ("ideal",)
    topologies: tuple[str, ...] = ()
    default_topology: str = ""
    check: Callable[[Sections, Sections, str], None] | None = None
    check_setup: Callable[["Experiment", Any, "Chip"], None] | None = None
    check_bench: Callable[["Experiment"], tuple[dict[str, str], dict]] | None = None
    gradcheck: Callable[..., GradcheckReport] | None = None
    gradcheck_options: tuple[str, ...] = ()
    maps: Callable[[Any], Any] | None = None
    describe: Callable[[Sections], str] | None = None
    selftest: Callable[["Experiment", dict], "SelfTestReport"] | None = None

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError(f"chip kind {self.name!r} declares no learning rule")
        bad = set(self.backends) - set(BACKENDS)
        if bad:
            raise ValueError(f"chip kind {self.name!r}: unknown backends {sorted(bad)}; allowed {BACKENDS}")
        if self.topologies and self.default_topology not in self.topologies:
            raise ValueError(f"chip kind {self.name!r}: default_topology {self.default_topology!r} is not one of "
                             f"{self.topologies}")

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(self.rules)

    @property
    def default_rule(self) -> str:
        return next(iter(self.rules))


@dataclass(frozen=True)
class RulePlugin:
    """A learning rule added to existing kinds by a plugin (entry-point group ``labtrain.rules``).

    ``build(exp)`` returns the estimator; ``kinds`` names the ``[chip] type`` values it applies to;
    ``schema`` adds keys (usually ``[learning]``) that apply whenever the rule is available.
    """

    name: str
    kinds: tuple[str, ...]
    build: Callable[["Experiment"], "GradientEstimator"]
    schema: Mapping[str, Mapping[str, Field]] = field(default_factory=dict)

