"""InstrumentChip: a resistor-network chip on the bench (or its twin), seen through instrument ports.

The same class runs the ``twin`` backend (simulated DAQ and pots) and the
``hardware`` backend (nidaqmx DAQ, pot bridge): everything above the ports is
shared, so a dry run on the twin exercises exactly the code that will touch
the chip.

A batch of B DC input vectors is **one** synchronised AO/AI acquisition: every
example is a plateau of ``settle_samples + average_samples`` samples; the
settling samples are discarded and the averaging window is averaged, whole
samples only.  Phases:

* free      -- output switches open;
* clamp     -- output switches closed, output AOs at the clamp voltages
               (through ``output_series_ohm``: a small resistance is a voltage clamp);
* current   -- output switches closed, output AO at ``v_free + I * R_series``:
               injects ``I`` up to a relative error ``Z_out / R_series`` (use a
               series resistance much larger than the network's output
               resistance for EP, e.g. ``1 / beta_s``).

Instrument faults (:class:`~labtrain.ports.PortTimeout`,
:class:`~labtrain.ports.PortIOError`) are retried ``retries`` times; then the
fault propagates (the run loop pauses the run in the safe state).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..network import Network
from ..ports import DAQ, PortError, PortIOError, PotArray
from ..readouts import EdgeDrops
from ..simulators.linear_resistor import LinearResistorNetwork
from ..wiring import Wiring
from .base import (NetworkChip, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, Chip, ClampNudge, CurrentNudge,
                   Measurement, ParameterSpec, PotQuantizer)

__all__ = ["InstrumentChip", "AcquisitionSettings"]


@dataclass(frozen=True)
class AcquisitionSettings:
    """How one batch becomes one acquisition.

    Attributes
    ----------
    rate_hz : float
        Sample clock of AO and AI.
    settle_samples : int
        Samples discarded at the start of every plateau (the network and the
        input filters settle).
    average_samples : int
        Samples averaged per plateau (the reading of one example).
    timeout_s : float
        Longest wait for one acquisition beyond its own duration.
    retries : int
        Extra attempts after an instrument timeout or I/O error.
    retry_wait_s : float
        Pause between attempts.
    """

    rate_hz: float = 10_000.0
    settle_samples: int = 10
    average_samples: int = 10
    timeout_s: float = 10.0
    retries: int = 2
    retry_wait_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if self.settle_samples < 0 or self.average_samples < 1:
            raise ValueError("settle_samples must be >= 0 and average_samples >= 1")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    @property
    def plateau_samples(self) -> int:
        return self.settle_samples + self.average_samples


class InstrumentChip(NetworkChip):
    """Resistor-network chip driven through a DAQ and a potentiometer array.

    Parameters
    ----------
    network : Network
        Topology, terminals and the conductance bounds the experiment allows.
    wiring : Wiring
        Which node / edge is on which channel.
    daq : DAQ
        The data-acquisition port, already wrapped by the safety layer.
    pots : PotArray
        The potentiometer port (one rheostat per edge), already wrapped by the safety layer.
    settings : AcquisitionSettings
        Sample clock, plateau, retries.
    conductance_s : ndarray, optional
        Initial conductances (default: geometric mean of the bounds).
    backend : str
        ``"twin"`` or ``"hardware"`` (for records and messages).
    on_fault : callable, optional
        Called with a one-line description of every retried fault (logging).
    """

    def __init__(self, network: Network, wiring: Wiring, daq: DAQ, pots: PotArray,
                 settings: AcquisitionSettings | None = None, conductance_s: np.ndarray | None = None, *,
                 backend: str = "twin", on_fault: Callable[[str], None] | None = None) -> None:
        wiring.check(network)
        self.network, self.wiring, self.daq, self.pots = network, wiring, daq, pots
        self.settings = settings or AcquisitionSettings()
        self.backend = backend
        self.on_fault = on_fault
        self.fault_log: list[str] = []
        calib = pots.calibration
        channels = np.asarray(wiring.pot_channels)
        if channels.max(initial=-1) >= calib.n_channels:
            raise ValueError(f"pot channel {int(channels.max())} does not exist (the array has "
                             f"{calib.n_channels} channels)")
        self._channels = channels
        r_min = (calib.r_end_ohm + calib.r_wiper_ohm)[channels]
        r_max = r_min + calib.r_total_ohm[channels]
        quantizer = PotQuantizer(r_min, r_max, calib.n_taps)
        lower = np.maximum(network.g_min_s, 1.0 / r_max)
        upper = np.minimum(network.g_max_s, 1.0 / r_min)
        if np.any(lower > upper):
            e = int(np.flatnonzero(lower > upper)[0])
            raise ValueError(f"edge {e}: allowed conductances [{network.g_min_s[e]:g}, {network.g_max_s[e]:g}] S "
                             f"do not overlap its pot's range [{1 / r_max[e]:g}, {1 / r_min[e]:g}] S")
        # Tap window inside the bounds (higher conductance = lower tap).
        pos = lambda g: (1.0 / g - r_min) / (r_max - r_min) * (calib.n_taps - 1)  # noqa: E731
        self._tap_lo = np.clip(np.ceil(pos(upper) - 1e-9), 0, calib.n_taps - 1).astype(np.int64)
        self._tap_hi = np.clip(np.floor(pos(lower) + 1e-9), 0, calib.n_taps - 1).astype(np.int64)
        self._spec = ParameterSpec("conductance", "S", quantizer.to_conductance(self._tap_hi),
                                   quantizer.to_conductance(self._tap_lo), quantizer)
        self.reads_all = wiring.reads_every_node(network)
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, NETWORK_MODEL}
        if self.reads_all:
            caps.add(EDGE_DROPS)
        self.capabilities = frozenset(caps)
        self._row_of_node = {n: k for k, n in enumerate(wiring.read_nodes)}
        self._out_rows = [self._row_of_node[n] for n in network.outputs]
        self._taps = np.zeros(network.n_edges, np.int64)
        self._g = np.zeros(network.n_edges)
        self._model: LinearResistorNetwork | None = None
        self._pots_dirty = True
        self._last_free: tuple[np.ndarray, np.ndarray] | None = None
        self.acquisitions = 0
        #: the last acquisition's waveforms (for a scope view): rate, AO/AI channels and samples
        self.last_waveforms: dict | None = None
        self.acquired_time_s = 0.0
        init = np.sqrt(self._spec.lower * self._spec.upper) if conductance_s is None else conductance_s
        self.set_parameters(init)

    # -------------------------------------------------------- retrying
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return fn(*args, **kwargs)
            except PortError as exc:
                line = f"{what}: {type(exc).__name__}: {exc} (attempt {attempt} of {attempts})"
                self.fault_log.append(line)
                if self.on_fault is not None:
                    self.on_fault(line)
                if attempt == attempts:
                    raise type(exc)(f"{what} failed {attempts} times: {exc}") from exc
                if self.settings.retry_wait_s:
                    time.sleep(self.settings.retry_wait_s)
        raise AssertionError("unreachable")

    # ------------------------------------------------------- parameters
    def get_parameters(self) -> np.ndarray:
        return self._g.copy()

    def get_taps(self) -> np.ndarray:
        """Tap of every edge's pot (as last set)."""
        return self._taps.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        if values.shape != (self.network.n_edges,):
            raise ValueError(f"expected {self.network.n_edges} conductances, got shape {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError("conductances must be finite and > 0")
        q = self._spec.quantizer
        taps = np.clip(q.to_taps(values), self._tap_lo, self._tap_hi)
        self._write_taps(taps)
        return self._g.copy()

    def _write_taps(self, taps: np.ndarray) -> None:
        request = np.zeros(self.pots.n_channels, np.int64)
        if self._pots_dirty or self.pots.n_channels != len(taps):
            # channels not wired to an edge keep what they hold
            request = np.asarray(self._call("read pot taps", self.pots.get_taps), np.int64).copy()
        else:
            request = self._device_taps.copy()
        request[self._channels] = taps
        took = np.asarray(self._call("set pot taps", self.pots.set_taps, request), np.int64)
        self._device_taps = took.copy()
        self._taps = took[self._channels]
        if not np.array_equal(self._taps, taps):
            bad = int(np.flatnonzero(self._taps != taps)[0])
            raise PortErrorMismatch(f"pot channel {int(self._channels[bad])} holds tap {int(self._taps[bad])}, "
                                    f"asked for {int(taps[bad])}")
        self._g = self._spec.quantizer.to_conductance(self._taps)
        self._model = None
        self._pots_dirty = False
        self._last_free = None

    def network_model(self) -> LinearResistorNetwork:
        """The network at the conductances the chip believes it holds (nominal pot calibration)."""
        if self._model is None:
            self._model = LinearResistorNetwork(self.network, self._g, "voltage")
        return self._model

    # -------------------------------------------------------- measuring
    def _acquire(self, inputs_v: np.ndarray, output_ao_v: np.ndarray | None) -> np.ndarray:
        """One acquisition for a batch: node voltages of the read nodes, shape (B, n_read)."""
        if self._pots_dirty:
            self._write_taps(self._taps)
        s = self.settings
        n_b = inputs_v.shape[0]
        p = s.plateau_samples
        ao = [np.repeat(inputs_v.T, p, axis=1)]
        if output_ao_v is None:
            ao.append(np.zeros((self.n_outputs, n_b * p)))
        else:
            ao.append(np.repeat(output_ao_v.T, p, axis=1))
        ao_v = np.vstack(ao)
        ao_v = self._slew_shaped(ao_v, n_b)
        switches = {line: output_ao_v is not None for line in self.wiring.output_switch_do}
        self._call("set output switches", self.daq.set_digital, switches)
        try:
            acq = self._call("acquire", self.daq.write_read, self.wiring.ao_channels(), ao_v,
                             self.wiring.node_ai, s.rate_hz, s.timeout_s + n_b * p / s.rate_hz)
        finally:
            if output_ao_v is not None:
                self._call("open output switches", self.daq.set_digital,
                           {line: False for line in self.wiring.output_switch_do})
        ai = np.asarray(acq.ai_v, float)
        self.last_waveforms = {"rate_hz": s.rate_hz, "ao_channels": list(self.wiring.ao_channels()), "ao_v": ao_v,
                               "ai_channels": list(self.wiring.node_ai), "ai_v": ai,
                               "settle_samples": s.settle_samples, "plateau_samples": p}
        if ai.shape != (len(self.wiring.node_ai), n_b * p):
            raise PortErrorMismatch(f"DAQ returned {ai.shape} samples, expected {(len(self.wiring.node_ai), n_b * p)}")
        self.acquisitions += 1
        self.acquired_time_s += acq.duration_s
        windows = ai.reshape(ai.shape[0], n_b, p)[:, :, s.settle_samples:]
        return windows.mean(axis=2).T

    def _slew_shaped(self, ao_v: np.ndarray, n_b: int) -> np.ndarray:
        """Replace the jumps between plateaus by ramps at the safety layer's slew limit.

        The ramps must end inside each plateau's settling samples, else the
        averaging window would see them: that is a settings error, raised
        before anything is written.
        """
        if not hasattr(self.daq, "max_step_v") or n_b < 2:
            return ao_v
        s = self.settings
        channels = self.wiring.ao_channels()
        step = np.asarray(self.daq.max_step_v(channels, s.rate_hz), float)
        levels = ao_v[:, ::s.plateau_samples]
        jumps = np.abs(np.diff(levels, axis=1)).max(axis=1)
        need = int(np.ceil(np.max(jumps / step) - 1e-9))
        if need > s.settle_samples:
            c = int(np.argmax(jumps / step))
            raise ValueError(f"{channels[c]} jumps {jumps[c]:.3g} V between examples; at the slew limit "
                             f"({step[c] * s.rate_hz:.3g} V/s) that ramp takes {need} samples, more than "
                             f"settle_samples = {s.settle_samples}: raise settle_samples or max_slew_v_per_s")
        # Vectorised form of safety.rate_limit for plateau waveforms: the ramp into plateau k starts
        # from plateau k-1's level and fits inside the settling window (checked above).
        n_ch, p = ao_v.shape[0], s.plateau_samples
        prev = np.concatenate([levels[:, :1], levels[:, :-1]], axis=1)           # (n_ch, B)
        gap = levels - prev
        moved = np.minimum(np.abs(gap)[:, :, None], step[:, None, None] * np.arange(1, p + 1)[None, None, :])
        return (prev[:, :, None] + np.sign(gap)[:, :, None] * moved).reshape(n_ch, n_b * p)

    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        inputs = np.atleast_2d(np.asarray(inputs, float))
        if inputs.shape[1] != self.n_inputs:
            raise ValueError(f"expected inputs of shape (B, {self.n_inputs}), got {inputs.shape}")
        if edge_drops and not self.reads_all:
            raise ValueError("edge drops need every node read (wiring reads outputs only)")
        if nudge is None:
            out_ao = None
        elif isinstance(nudge, ClampNudge):
            out_ao = np.asarray(nudge.voltage_v, float)
        elif isinstance(nudge, CurrentNudge):
            free_out = self._free_outputs(inputs)
            out_ao = free_out + np.asarray(nudge.current_a, float) * self.wiring.output_series_ohm
        else:
            raise TypeError(f"unknown nudge {type(nudge).__name__}")
        node_v = self._acquire(inputs, out_ao)
        output_v = node_v[:, self._out_rows]
        if nudge is None:
            self._last_free = (inputs.copy(), output_v.copy())
        drops = None
        if edge_drops:
            rows = [self._row_of_node[n] for n in range(self.network.n_nodes)]
            v = node_v[:, rows]
            e = self.network.edges
            drops = EdgeDrops.dense(v[:, e[:, 0]] - v[:, e[:, 1]])
        return Measurement(output_v, drops)

    def _free_outputs(self, inputs: np.ndarray) -> np.ndarray:
        if self._last_free is not None and self._last_free[0].shape == inputs.shape \
                and np.array_equal(self._last_free[0], inputs):
            return self._last_free[1]
        return self.measure(inputs).output_v

    def reseed(self, seed: int | list[int]) -> None:
        """Reseed a simulated DAQ's noise (no effect on real instruments)."""
        inner = getattr(self.daq, "daq", self.daq)
        reseed = getattr(inner, "reseed", None)
        if reseed is not None:
            reseed(seed)

    # ----------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Open the output switches, ramp every output to its safe level, pots to their safe taps."""
        errors = []
        for port in (self.daq, self.pots):
            safe = getattr(port, "safe_state", None)
            if safe is None:
                continue
            try:
                safe()
            except Exception as exc:  # keep going: every port must get its chance
                errors.append(f"{type(port).__name__}: {exc}")
        self._pots_dirty = True
        self._last_free = None
        if errors:
            self.fault_log.append("safe state: " + "; ".join(errors))

    def close(self) -> None:
        self.safe_state()
        for port in (self.daq, self.pots):
            try:
                port.close()
            except Exception as exc:
                self.fault_log.append(f"close {type(port).__name__}: {exc}")

    def snapshot(self) -> dict:
        s = self.settings
        return {
            "backend": self.backend,
            "chip": "linear resistor network on instruments",
            "network": self.network.describe(),
            "wiring": self.wiring.to_dict(),
            "acquisition": {"rate_hz": s.rate_hz, "settle_samples": s.settle_samples,
                            "average_samples": s.average_samples, "timeout_s": s.timeout_s,
                            "retries": s.retries, "retry_wait_s": s.retry_wait_s},
            "daq": self.daq.snapshot(),
            "pots": self.pots.snapshot(),
            "parameter": {"name": "conductance", "unit": "S", "lower_s": self._spec.lower.tolist(),
                          "upper_s": self._spec.upper.tolist()},
            "capabilities": sorted(self.capabilities),
        }


class PortErrorMismatch(PortIOError):
    """An instrument reported a state other than the one requested."""
