"""The Chip interface: everything a learning protocol may ask of a device.

A protocol sees trainable parameters (with units and bounds; setting them
returns what the device really took), ``measure`` for a batch of DC input
vectors with an optional nudge, optional local readouts, a ``capabilities``
set, ``snapshot()`` and a safe state.  The ideal chip (physics model called
directly) and the instrument-backed chips (twin and hardware) implement it.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from labtrain.physics.network import NetworkTerminals
from labtrain.physics.readouts import EdgeDrops

__all__ = [
    "Chip",
    "NetworkChip",
    "CapabilityError",
    "ParameterSpec",
    "PotQuantizer",
    "CurrentNudge",
    "ClampNudge",
    "Measurement",
    "EDGE_DROPS",
    "CURRENT_NUDGE",
    "CLAMP_NUDGE",
    "NETWORK_MODEL",
    "AC_TONES",
    "Tone",
    "ACMeasurement",
    "TONE_TERMINALS",
    "REFERENCE_GRADIENT",
    "LINEAR_NETWORK_MODEL",
]

EDGE_DROPS = "edge_drops"          #: every edge's voltage drop can be read (a NetworkChip: energy_parameter_slope)
CURRENT_NUDGE = "current_nudge"    #: currents can be injected into the outputs
CLAMP_NUDGE = "clamp_nudge"        #: outputs can be held at given voltages
NETWORK_MODEL = "network_model"    #: a physics model at the current parameters is available
AC_TONES = "ac_tones"              #: sinusoids can be added on terminals and responses demodulated
REFERENCE_GRADIENT = "reference_gradient"  #: the noise-free model's exact gradient is available (fidelity)
LINEAR_NETWORK_MODEL = "linear_network_model"  #: network_model() is linear (phasor / linear-response shortcuts)

#: where a :class:`Tone` can act: an input's voltage, a current injected into an output node,
#: or a control electrode's voltage (DNPU)
TONE_TERMINALS = ("input", "output_current", "control")


class CapabilityError(RuntimeError):
    """A protocol needs something the chip cannot do."""


@dataclass(frozen=True)
class PotQuantizer:
    """Digital potentiometer: ``n_taps`` resistance settings evenly spaced in ohms.

    Conductance ``g = 1 / R`` with ``R = r_min_ohm + tap / (n_taps - 1) * (r_max_ohm - r_min_ohm)``,
    so the conductance steps are uneven, as on a real pot.
    """

    r_min_ohm: np.ndarray
    r_max_ohm: np.ndarray
    n_taps: int

    def to_taps(self, conductance_s: np.ndarray) -> np.ndarray:
        """Nearest tap index of each conductance (clipped to the tap range)."""
        frac = (1.0 / np.asarray(conductance_s, float) - self.r_min_ohm) / (self.r_max_ohm - self.r_min_ohm)
        return np.clip(np.rint(frac * (self.n_taps - 1)), 0, self.n_taps - 1).astype(np.int64)

    def to_conductance(self, taps: np.ndarray) -> np.ndarray:
        """Conductance (S) at each tap index."""
        r = self.r_min_ohm + np.asarray(taps) / (self.n_taps - 1) * (self.r_max_ohm - self.r_min_ohm)
        return 1.0 / r

    def quantize(self, conductance_s: np.ndarray) -> np.ndarray:
        """Conductance the pot really takes when asked for ``conductance_s``."""
        return self.to_conductance(self.to_taps(conductance_s))


@dataclass(frozen=True)
class ParameterSpec:
    """Trainable parameters of a chip: name, unit and per-parameter bounds."""

    name: str
    unit: str
    lower: np.ndarray
    upper: np.ndarray
    quantizer: PotQuantizer | None = None

    @property
    def size(self) -> int:
        return len(self.lower)

    @property
    def span(self) -> np.ndarray:
        """Width of the allowed range of each parameter."""
        return self.upper - self.lower

    def checked(self, values: np.ndarray, what: str = "parameters") -> np.ndarray:
        """``values`` as a float array after checking its shape ``(size,)`` and that every entry is finite.

        Raises
        ------
        ValueError
            Naming ``what`` (e.g. "conductances") and the shape or the non-finite entries.
        """
        values = np.asarray(values, float)
        if values.shape != (self.size,):
            raise ValueError(f"expected {self.size} {what}, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{what} must be finite")
        return values

    def validated(self, values: np.ndarray, what: str = "parameters") -> np.ndarray:
        """:meth:`checked` values clipped into ``[lower, upper]`` (what a chip's ``set_parameters`` stores)."""
        return np.clip(self.checked(values, what), self.lower, self.upper)


@dataclass
class CurrentNudge:
    """Inject ``current_a`` (B x n_outputs, amperes) into the output nodes."""

    current_a: np.ndarray


@dataclass
class ClampNudge:
    """Hold the output nodes at ``voltage_v`` (B x n_outputs, volts)."""

    voltage_v: np.ndarray


@dataclass
class Measurement:
    """One batch measurement.

    Attributes
    ----------
    output_v : ndarray, shape (B, n_outputs)
        Outputs, in ``unit`` (volts for networks and DNPUs; radians for oscillator phases;
        dimensionless states for rate networks).  The name is historical.
    edge_drops : EdgeDrops or None
        Edge voltage drops, when requested and supported.
    timestamp_s : float
        Wall-clock time (``time.time()``) when the measurement finished.
    unit : str
        Unit of ``output_v`` (the chip's :attr:`Chip.output_unit`).
    acquisition_s : float
        Time the device spent acquiring this batch, settling included (0 when not tracked).
    """

    output_v: np.ndarray
    edge_drops: EdgeDrops | None = None
    timestamp_s: float = field(default_factory=time.time)
    unit: str = "V"
    acquisition_s: float = 0.0


@dataclass
class Tone:
    """A sinusoid ``amplitude * sin(2 pi frequency_hz t)`` added on one terminal during an AC measurement.

    Attributes
    ----------
    terminal : {"input", "output_current", "control"}
        Input voltage (V), current injected into an output node (A), or
        control-electrode voltage (V).
    index : int
        Which input / output / control electrode.
    frequency_hz : float
        Must lie on the measurement plan's grid (see :class:`labtrain.physics.demod.FrequencyPlan`).
    amplitude : float or ndarray, shape (B,)
        Peak amplitude, the same for every example or one per example.
    """

    terminal: str
    index: int
    frequency_hz: float
    amplitude: float | np.ndarray

    def __post_init__(self) -> None:
        if self.terminal not in TONE_TERMINALS:
            raise ValueError(f"tone terminal {self.terminal!r}: expected one of {TONE_TERMINALS}")
        if self.frequency_hz <= 0:
            raise ValueError(f"tone frequency must be > 0 Hz, got {self.frequency_hz}")


@dataclass
class ACMeasurement:
    """What one AC measurement of a batch read, demodulated at the plan's tones.

    Attributes
    ----------
    output : Demodulated
        Outputs (volts for networks, amperes for a DNPU), ``in_phase`` of shape
        ``(B, n_outputs, n_tones)``, ``dc`` of shape ``(B, n_outputs)``.
    edge_drops : Demodulated or None
        Every edge's voltage drop, ``(B, n_edges, n_tones)``, when requested.
    plan : FrequencyPlan
        Tones, window and sample clock used.
    acquisition_s : float
        Time the device spent acquiring (simulated or real), settling included.
    waveforms : ndarray or None
        Raw sampled outputs ``(B, n_outputs, n_samples)`` when the chip keeps them.
    """

    output: Any
    plan: Any
    edge_drops: Any = None
    acquisition_s: float = 0.0
    waveforms: np.ndarray | None = None
    timestamp_s: float = field(default_factory=time.time)


class Chip(abc.ABC):
    """Abstract learning device.  Use as a context manager: exit goes to the safe state."""

    backend: str = "abstract"
    capabilities: frozenset[str] = frozenset()
    #: unit of the outputs a measurement returns ("V", "rad", "1" for dimensionless); with
    #: :meth:`parameter_units` and the rule's ``loss_unit`` the units a run file and its export declare
    output_unit: str = "V"
    #: sample clock (Hz) of the waveforms the chip synthesises or samples; None: it has none
    rate_hz: float | None = None
    #: waveforms of the last acquisition for a scope view (``rate_hz``, channel names, sample arrays);
    #: None where the chip keeps none (set by instrument chips after every acquisition)
    last_waveforms: dict[str, Any] | None = None
    #: the graph the chip is built on (:class:`~labtrain.physics.network.Network`), None for chips without one
    network: Any = None
    #: called with a one-line description of every instrument fault the chip retried (None: nobody listens);
    #: every such fault is also logged (``labtrain.instruments.retry``), which a run records as an event
    on_fault: Any = None

    # ---------------------------------------------------------------- shape
    @property
    @abc.abstractmethod
    def n_inputs(self) -> int:
        """Number of input terminals."""

    @property
    @abc.abstractmethod
    def n_outputs(self) -> int:
        """Number of output terminals."""

    @property
    @abc.abstractmethod
    def parameter_spec(self) -> ParameterSpec:
        """Names, units and bounds of the trainable parameters."""

    # ----------------------------------------------------------- parameters
    @abc.abstractmethod
    def get_parameters(self) -> np.ndarray:
        """Current parameter values (a copy)."""

    @abc.abstractmethod
    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        """Request parameter values; returns what the device really took."""

    def step_parameters(self, direction: np.ndarray) -> np.ndarray:
        """Move every parameter one device step in ``sign(direction)`` (0 = stay).

        On a chip with digital pots one step is one tap; otherwise it is 1/256
        of the allowed range.  Returns what the device took.
        """
        spec = self.parameter_spec
        sign = np.sign(np.asarray(direction, float)).astype(np.int64)
        current = self.get_parameters()
        if spec.quantizer is not None:
            q = spec.quantizer
            # Higher conductance = lower resistance = lower tap index.
            taps = np.clip(q.to_taps(current) - sign, 0, q.n_taps - 1)
            return self.set_parameters(q.to_conductance(taps))
        return self.set_parameters(current + sign * spec.span / 256.0)

    # ----------------------------------------------------------- measuring
    @abc.abstractmethod
    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        """Measure a batch of DC input vectors (B x n_inputs), optionally nudged."""

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: Any, *, settle_samples: int = 0,
                   edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` (B x n_inputs) plus ``tones``, sample the response and demodulate it.

        Capability ``ac_tones``.  Each example is one window: ``settle_samples``
        samples discarded, then ``plan.window_samples`` demodulated at every
        tone of ``plan`` (time counts from the first settling sample, so each
        tone starts at phase 0).  Time-domain: the chip synthesises and
        samples real waveforms (a physics model evaluated per sample, or an
        instrument), it never shortcuts to the small-signal answer.
        """
        raise CapabilityError(f"{self.backend} chip cannot drive and demodulate tones")

    def network_model(self) -> Any:
        """Physics model of the chip at its current parameters (capability ``network_model``)."""
        raise CapabilityError(f"{self.backend} chip has no network model")

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dtheta`` of the rule's loss on the chip's noise-free model (capability ``reference_gradient``).

        At ``parameters`` (default: the current ones), for a batch of ``inputs`` and ``targets``.
        On a twin this is the model the twin simulates (nominal parts), the yardstick a
        gradient-fidelity check compares an estimate with; hardware has none.
        """
        raise CapabilityError(f"the {self.backend} chip has no reference model to compute an exact gradient")

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Restart every random stream of the chip (read noise, simulated instruments) from ``seed``.

        Chips without randomness ignore it.  Runs reseed at every step so a resumed run is bit-identical.
        """

    def parameter_labels(self) -> list[str]:
        """A short name per trainable parameter where the device names them (a DNPU's control electrodes);
        empty: the parameters are numbered (edge index)."""
        return []

    def parameter_units(self) -> list[str]:
        """The unit of every trainable parameter (UDUNITS spelling: ``"S"``, ``"V"``, ``"rad/s"``, ``"1"`` for
        dimensionless).  Default: ``parameter_spec.unit`` for all of them; where that is ``"mixed"``, each
        :meth:`parameter_blocks` entry's ``unit``.  Run files and exports take their units from here."""
        spec = self.parameter_spec
        units = [spec.unit] * spec.size
        if spec.unit == "mixed":
            for block in self.parameter_blocks():
                if "unit" in block:
                    units[block["start"]:block["stop"]] = [str(block["unit"])] * (block["stop"] - block["start"])
        return units

    def parameter_blocks(self) -> list[dict]:
        """Named parts of the parameter vector, in order: dicts with ``name``, ``start`` and ``stop``
        (``[start, stop)``), and ``shape`` (rows, cols; row-major) for a weight matrix (a layered network's
        layer); empty: one undivided vector.  Plots draw a heat map per matrix."""
        return []

    # ------------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Put every output at its safe level.  Idempotent."""

    def close(self) -> None:
        """Go to the safe state and release resources."""
        self.safe_state()

    def __enter__(self) -> "Chip":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ records
    @abc.abstractmethod
    def snapshot(self) -> dict:
        """JSON-friendly description of the chip and all its settings."""

    def require(self, needed: Iterable[str], who: str) -> None:
        """Raise :class:`CapabilityError` naming what ``who`` needs and the chip lacks."""
        missing = sorted(set(needed) - set(self.capabilities))
        if missing:
            raise CapabilityError(
                f"{who} needs chip capabilities {missing}, which the {self.backend} chip does not have "
                f"(it has {sorted(self.capabilities)})"
            )


class NetworkChip(NetworkTerminals, Chip):
    """A chip built on a :class:`~labtrain.physics.network.Network`: terminals from the network, parameters
    described by ``self._spec`` (subclasses set ``network`` and ``_spec``)."""

    network: Any
    _spec: ParameterSpec

    @property
    def parameter_spec(self) -> ParameterSpec:
        return self._spec

    @property
    def parameter_edges(self) -> np.ndarray:
        """Edge index of every trainable parameter (default: parameter ``e`` is edge ``e``'s conductance)."""
        return np.arange(self.parameter_spec.size)

    def edge_current_slope(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``d i_e / d theta_p`` of each parameter's edge at edge drops ``edge_drop_v`` (B, n_edges) -> (B, P).

        For a linear conductance ``i = g v`` the slope is the drop itself (the default); a chip with other
        elements (a transistor's gate voltage) overrides it.
        """
        drops = np.asarray(edge_drop_v)
        edges = self.parameter_edges
        if len(edges) == drops.shape[1] and np.all(edges == np.arange(len(edges))):
            return drops  # one conductance per edge, in edge order
        return drops[:, edges]

    def energy_parameter_slope(self, drops: "EdgeDrops") -> np.ndarray:
        """Batch mean of ``dE/dtheta_p``, the derivative of the network's energy (co-content) with respect to
        each parameter, at the measured edge drops ``drops`` -> (P,).

        The local quantity of the two-phase rules (EP, coupled learning).  For a linear conductance
        ``E_e = g v^2 / 2`` it is ``mean_b v^2 / 2`` (V^2), the default; a chip with other trainable elements
        (a transistor's gate voltage) overrides it.
        """
        half_square = 0.5 * drops.mean_square()
        edges = self.parameter_edges
        if len(edges) == len(half_square) and np.all(edges == np.arange(len(edges))):
            return half_square  # one conductance per edge, in edge order
        return half_square[edges]
