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

Instrument faults (:class:`~labtrain.instruments.ports.PortTimeout`,
:class:`~labtrain.instruments.ports.PortIOError`) are retried ``retries`` times; then the
fault propagates (the run loop pauses the run in the safe state).

The chip takes only ports behind the safety layer
(:class:`~labtrain.instruments.ports.Guarded`): every level it is about to
write -- inputs, clamp voltages, current-injection levels, tone waveforms --
goes through ``daq.check_ao_values`` before it is shaped into ramps, so a
``nan`` or an out-of-limit value is refused with a message naming it, its
channel, the example and the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from labtrain.physics.demod import FrequencyPlan, demodulate
from labtrain.physics.network import Network
from labtrain.instruments.ports import DAQ, Guarded, PortIOError, PotArray
from labtrain.physics.readouts import EdgeDrops
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.resistor.wiring import Wiring
from labtrain.protocols.analytic import adjoint_gradient
from labtrain.chip.base import (NetworkChip, REFERENCE_GRADIENT, AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, ACMeasurement, Chip,
                   ClampNudge, CurrentNudge, Measurement, ParameterSpec, PotQuantizer, Tone)
from labtrain.kinds.resistor.tones import check_ac_request, edge_demodulated, network_tone_drive, synthesise
from labtrain.instruments.retry import call_with_retries

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
        The data-acquisition port, already wrapped by the safety layer
        (:class:`~labtrain.instruments.safety.SafeDAQ`; a bare port is refused).
    pots : PotArray
        The potentiometer port (one rheostat per edge), already wrapped by the safety layer
        (:class:`~labtrain.instruments.safety.SafePotArray`; a bare port is refused).
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
        for name, port, kind in (("daq", daq, DAQ), ("pots", pots, PotArray)):
            if not (isinstance(port, kind) and isinstance(port, Guarded)):
                raise TypeError(f"{name} must be a {kind.__name__} port behind the safety layer "
                                f"(labtrain.instruments.safety.Safe{kind.__name__}), got {type(port).__name__}")
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
        self.capabilities = self.capabilities_for(self.reads_all)
        self._row_of_node = {n: k for k, n in enumerate(wiring.read_nodes)}
        self._out_rows = [self._row_of_node[n] for n in network.outputs]
        self._taps = np.zeros(network.n_edges, np.int64)
        self._g = np.zeros(network.n_edges)
        self._model: LinearResistorNetwork | None = None
        self._pots_dirty = True
        self._last_free: tuple[np.ndarray, np.ndarray] | None = None
        self._last_free_ac: tuple[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None
        self.acquisitions = 0
        #: the last acquisition's waveforms (for a scope view): rate, AO/AI channels and samples
        self.last_waveforms: dict | None = None
        self.acquired_time_s = 0.0
        init = np.sqrt(self._spec.lower * self._spec.upper) if conductance_s is None else conductance_s
        self.set_parameters(init)

    @staticmethod
    def capabilities_for(reads_every_node: bool) -> frozenset[str]:
        """What an instrument chip can do with a given wiring (edge drops need every node read)."""
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, NETWORK_MODEL, AC_TONES, REFERENCE_GRADIENT}
        return frozenset(caps | ({EDGE_DROPS} if reads_every_node else set()))

    # -------------------------------------------------------- retrying
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(what, fn, args, kwargs, retries=self.settings.retries, wait_s=self.settings.retry_wait_s,
                                 fault_log=self.fault_log, on_fault=self.on_fault)

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
        bad = ~np.isfinite(values) | ~(values > 0)
        if np.any(bad):
            e = int(np.flatnonzero(bad)[0])
            raise ValueError(f"set_parameters: conductance of edge {e} is {float(values[e])!r} S; conductances must be "
                             f"finite and > 0 (allowed range [{self._spec.lower[e]:.6g}, {self._spec.upper[e]:.6g}] "
                             f"S after clipping); nothing was written")
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
        self._last_free_ac = None

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dg`` of the nominal network model (what a gradient estimate on the bench is judged by)."""
        model = self.network_model() if parameters is None else LinearResistorNetwork(
            self.network, self.network.clip(np.asarray(parameters, float)), "voltage")
        return adjoint_gradient(model, inputs, model.steady_state(inputs).output_v - targets)

    def network_model(self) -> LinearResistorNetwork:
        """The network at the conductances the chip believes it holds (nominal pot calibration)."""
        if self._model is None:
            self._model = LinearResistorNetwork(self.network, self._g, "voltage")
        return self._model

    # -------------------------------------------------------- measuring
    def ao_labels(self, output_role: str = "") -> list[str]:
        """What every AO channel drives, in ``wiring.ao_channels()`` order (``"input 0"``, ``"output 1 (clamp)"``)."""
        suffix = f" ({output_role})" if output_role else ""
        return [f"input {k}" for k in range(self.n_inputs)] + [f"output {k}{suffix}" for k in range(self.n_outputs)]

    def _check_levels(self, levels_v: np.ndarray, where: str, output_role: str = "",
                      columns: str | Sequence[str] = "example") -> None:
        """``levels_v`` (n_ao, n) through the safety layer's value check, before anything is shaped or sent."""
        self.daq.check_ao_values(self.wiring.ao_channels(), levels_v, what=self.ao_labels(output_role), where=where,
                                 columns=columns)

    def _acquire(self, inputs_v: np.ndarray, output_ao_v: np.ndarray | None, output_role: str = "") -> np.ndarray:
        """One acquisition for a batch: node voltages of the read nodes, shape (B, n_read)."""
        s = self.settings
        n_b = inputs_v.shape[0]
        p = s.plateau_samples
        out_levels = np.zeros((n_b, self.n_outputs)) if output_ao_v is None else output_ao_v
        self._check_levels(np.vstack([inputs_v.T, out_levels.T]), "measure", output_role)
        if self._pots_dirty:
            self._write_taps(self._taps)
        ao = [np.repeat(inputs_v.T, p, axis=1)]
        if output_ao_v is None:
            ao.append(np.zeros((self.n_outputs, n_b * p)))
        else:
            ao.append(np.repeat(output_ao_v.T, p, axis=1))
        ao_v = np.vstack(ao)
        ao_v = self._slew_shaped(ao_v, n_b)
        ai, _ = self._write_read(ao_v, output_ao_v is not None, s.settle_samples, p)
        windows = ai.reshape(ai.shape[0], n_b, p)[:, :, s.settle_samples:]
        return windows.mean(axis=2).T

    def _write_read(self, ao_v: np.ndarray, switches_closed: bool, settle_samples: int, plateau_samples: int,
                    extra: dict | None = None) -> tuple[np.ndarray, float]:
        """One acquisition of the AO waveform ``ao_v`` (n_ao, n) with the output switches open or closed.

        Returns the AI samples (n_read, n) and the acquisition's duration; keeps
        the waveforms for a scope view (``last_waveforms``).
        """
        s = self.settings
        n = ao_v.shape[1]
        switches = {line: bool(switches_closed) for line in self.wiring.output_switch_do}
        self._call("set output switches", self.daq.set_digital, switches)
        try:
            acq = self._call("acquire", self.daq.write_read, self.wiring.ao_channels(), ao_v,
                             self.wiring.node_ai, s.rate_hz, s.timeout_s + n / s.rate_hz)
        finally:
            if switches_closed:
                self._call("open output switches", self.daq.set_digital,
                           {line: False for line in self.wiring.output_switch_do})
        ai = np.asarray(acq.ai_v, float)
        read_rows = {node: k for k, node in enumerate(self.wiring.read_nodes)}
        self.last_waveforms = {"rate_hz": s.rate_hz, "ao_channels": list(self.wiring.ao_channels()), "ao_v": ao_v,
                               "ai_channels": list(self.wiring.node_ai), "ai_v": ai,
                               "ai_labels": [f"{ch} (node {node})" for ch, node in zip(self.wiring.node_ai,
                                                                                      self.wiring.read_nodes)],
                               "output_ai_rows": [read_rows[n] for n in self.network.outputs if n in read_rows],
                               "settle_samples": settle_samples, "plateau_samples": plateau_samples, **(extra or {})}
        if ai.shape != (len(self.wiring.node_ai), n):
            raise PortErrorMismatch(f"DAQ returned {ai.shape} samples, expected {(len(self.wiring.node_ai), n)}")
        self.acquisitions += 1
        self.acquired_time_s += acq.duration_s
        return ai, float(acq.duration_s)

    def _slew_shaped(self, ao_v: np.ndarray, n_b: int) -> np.ndarray:
        """Replace the jumps between plateaus by ramps at the safety layer's slew limit.

        The ramps must end inside each plateau's settling samples, else the
        averaging window would see them: that is a settings error, raised
        before anything is written.
        """
        if n_b < 2:
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
            out_ao, role = None, ""
        elif isinstance(nudge, ClampNudge):
            out_ao, role = np.broadcast_to(np.asarray(nudge.voltage_v, float), (len(inputs), self.n_outputs)), "clamp"
        elif isinstance(nudge, CurrentNudge):
            current = np.broadcast_to(np.asarray(nudge.current_a, float), (len(inputs), self.n_outputs))
            self._check_levels(np.vstack([inputs.T, current.T * self.wiring.output_series_ohm]), "measure",
                               "current nudge x output_series_ohm")
            free_out = self._free_outputs(inputs)
            out_ao, role = free_out + current * self.wiring.output_series_ohm, "free output + current nudge"
        else:
            raise TypeError(f"unknown nudge {type(nudge).__name__}")
        node_v = self._acquire(inputs, out_ao, role)
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

    # ------------------------------------------------------ AC (tones)
    @property
    def rate_hz(self) -> float:
        """Sample clock of AO and AI (also of :meth:`measure_ac`), Hz."""
        return self.settings.rate_hz

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *,
                   settle_samples: int = 0, edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` plus ``tones`` in one DAQ acquisition per batch and demodulate what the AIs read.

        Every example is a window of ``settle_samples + plan.window_samples``
        samples; tones start at phase 0 in each window (time counted from its
        first sample), so each window starts at its DC level.  The jump from
        one window's last sample to the next window's waveform becomes a
        linear ramp at the safety layer's slew limit inside the settling
        samples (a ``ValueError`` before anything is written if it does not
        fit); ``SafeDAQ`` ramps in from and out to the safe level.

        * input AOs: DC level + the input tones;
        * output AOs: with no ``output_current`` tone the switches stay open;
          otherwise they close and each output AO plays
          ``v_free(t) + I(t) * output_series_ohm`` -- ``v_free(t)`` the output's
          own response to the same inputs and input tones with the switch open
          (DC + in-phase and quadrature at every input-tone frequency, from the
          last such acquisition of this batch, or one made now), ``I(t)`` the
          current tones: the Norton source of ``measure(..., CurrentNudge)``.
          The current that flows is ``I`` up to a relative error
          ``Z_out / output_series_ohm`` (a large series resistance makes an
          accurate current source; its AO swing is ``I * output_series_ohm``).

        Outputs and, with ``edge_drops`` (every node read), every edge drop are
        demodulated at ``plan.tones_hz``.  ``last_waveforms`` keeps the AO and
        AI samples for a scope view.
        """
        x0 = np.atleast_2d(np.asarray(inputs, float))
        if x0.ndim == 2 and x0.shape[1] == self.n_inputs:
            self.daq.check_ao_values(self.wiring.input_ao, x0.T, what=self.ao_labels()[:self.n_inputs],
                                     where="measure_ac", columns="example")
        x = check_ac_request(inputs, self.n_inputs, plan, self.rate_hz, settle_samples)
        settle = int(settle_samples)
        if edge_drops and not self.reads_all:
            raise ValueError("measure_ac: edge drops need every node read (wiring reads outputs only)")
        n_b, n_s = x.shape[0], settle + plan.window_samples
        drive = network_tone_drive(tones, plan, n_b, self.n_inputs, self.n_outputs)
        injecting = drive.injects_current
        v_in = synthesise(x, drive.input_amplitude, drive.frequencies_hz, self.rate_hz, n_s)   # (B, n_in, n_s)
        used = np.any(drive.input_amplitude != 0, axis=(0, 1))
        in_freqs = drive.frequencies_hz[used]
        key = (x.tobytes(), x.shape, np.ascontiguousarray(drive.input_amplitude[:, :, used]).tobytes(),
               in_freqs.tobytes(), n_s, settle, plan.window_samples)
        if injecting:
            dc, xs, ys, freqs = self._free_ac(x, drive, plan, settle, in_freqs, key)
            t = np.arange(n_s) / self.rate_hz
            arg = 2 * np.pi * np.outer(freqs, t)                                              # (n_f, n_s)
            v_free = dc[:, :, None] + xs @ np.sin(arg) + ys @ np.cos(arg)                    # (B, n_out, n_s)
            i_out = synthesise(np.zeros((n_b, self.n_outputs)), drive.output_current_a, drive.frequencies_hz,
                               self.rate_hz, n_s)
            v_out = v_free + i_out * self.wiring.output_series_ohm
        else:
            v_out = np.zeros((n_b, self.n_outputs, n_s))
        ao = np.concatenate([v_in, v_out], axis=1).transpose(1, 0, 2)                        # (n_ao, B, n_s)
        extremes = np.concatenate([ao.min(axis=2), ao.max(axis=2)], axis=1)                  # (n_ao, 2B)
        self._check_levels(extremes, "measure_ac", "current tones" if injecting else "",
                           [f"example {b} ({side} sample)" for side in ("lowest", "highest") for b in range(n_b)])
        ao = self._ramp_windows(ao, settle)
        if self._pots_dirty:
            self._write_taps(self._taps)
        ai, duration = self._write_read(ao.reshape(ao.shape[0], n_b * n_s), injecting, settle, n_s,
                                        {"tones_hz": plan.tones_hz.tolist(), "window_samples": plan.window_samples})
        signals = ai.reshape(ai.shape[0], n_b, n_s).transpose(1, 0, 2)                       # (B, n_read, n_s)
        out_v = signals[:, self._out_rows, :]
        demod = lambda s: demodulate(s, self.rate_hz, plan.tones_hz, settle_samples=settle,  # noqa: E731
                                     window_samples=plan.window_samples)
        output = demod(out_v)
        if not injecting:
            # the free response at the input-tone frequencies: the Norton source of a later current injection
            free = demodulate(out_v, self.rate_hz, in_freqs, settle_samples=settle,
                              window_samples=plan.window_samples) if len(in_freqs) else None
            self._last_free_ac = (key, (output.dc.copy(),
                                        free.in_phase if free else np.zeros((n_b, self.n_outputs, 0)),
                                        free.quadrature if free else np.zeros((n_b, self.n_outputs, 0)), in_freqs))
        drops = None
        if edge_drops:
            # each read node demodulated once; drops as differences (the lock-in is linear)
            rows = [self._row_of_node[n] for n in range(self.network.n_nodes)]
            drops = edge_demodulated(demod(signals[:, rows, :]), self.network.edges)
        return ACMeasurement(output, plan, drops, duration, out_v)

    def _free_ac(self, x: np.ndarray, drive: Any, plan: FrequencyPlan, settle: int, in_freqs: np.ndarray,
                 key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Free output response (DC, in-phase, quadrature at the input tones) for this batch and these input tones."""
        if self._last_free_ac is None or self._last_free_ac[0] != key:
            tones = []
            for k, f in enumerate(drive.frequencies_hz):
                for i in range(self.n_inputs):
                    if np.any(drive.input_amplitude[:, i, k] != 0):
                        tones.append(Tone("input", i, float(f), drive.input_amplitude[:, i, k].copy()))
            self.measure_ac(x, tones, plan, settle_samples=settle)
        assert self._last_free_ac is not None and self._last_free_ac[0] == key
        return self._last_free_ac[1]

    def _ramp_windows(self, ao: np.ndarray, settle: int) -> np.ndarray:
        """Join consecutive example windows (ao: n_ao x B x n_s) by linear ramps at the slew limit.

        The first ``r`` samples of every window after the first become a ramp
        from the previous window's last sample to the window's own sample
        ``r`` (``r`` the fewest samples, common to all windows, that keep every
        step within the limit); ``r`` must not exceed ``settle``.
        """
        n_ch, n_b, n_s = ao.shape
        if n_b < 2:
            return ao
        channels = self.wiring.ao_channels()
        step = np.asarray(self.daq.max_step_v(channels, self.rate_hz), float)[:, None]       # (n_ch, 1)
        prev = ao[:, :-1, -1]                                                                 # (n_ch, B-1)
        reach = min(settle, n_s - 1)
        # |target(r) - prev| <= (r + 1) step for every channel and window, r = 0..reach
        gap = np.abs(ao[:, 1:, :reach + 1] - prev[:, :, None]) / step[:, :, None]          # (n_ch, B-1, reach+1)
        ok = np.all(gap <= np.arange(1, reach + 2)[None, None, :] * (1 + 1e-12), axis=(0, 1))
        if not ok.any():
            worst = np.unravel_index(np.argmax(gap[:, :, -1]), gap.shape[:2])
            need = int(np.ceil(gap[worst[0], worst[1], -1])) - 1
            jump_v = gap[worst[0], worst[1], -1] * step[worst[0], 0]
            raise ValueError(f"measure_ac: {channels[worst[0]]} jumps {jump_v:.3g} V "
                             f"between examples; at the slew limit ({step[worst[0], 0] * self.rate_hz:.3g} V/s) that "
                             f"ramp takes more than settle_samples = {settle} samples (about {need}): raise "
                             f"settle_samples or max_slew_v_per_s")
        r = int(np.argmax(ok))
        if r == 0:
            return ao
        out = ao.copy()
        target = ao[:, 1:, r]
        frac = np.arange(1, r + 1) / (r + 1)
        out[:, 1:, :r] = prev[:, :, None] + (target - prev)[:, :, None] * frac[None, None, :]
        return out

    def reseed(self, seed: int | list[int]) -> None:
        """Reseed a simulated DAQ's noise (no effect on real instruments)."""
        self.daq.reseed(seed)

    # ----------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Open the output switches, ramp every output to its safe level, pots to their safe taps."""
        errors = []
        for port in (self.daq, self.pots):
            try:
                port.safe_state()
            except Exception as exc:  # keep going: every port must get its chance
                errors.append(f"{type(port).__name__}: {exc}")
        self._pots_dirty = True
        self._last_free = None
        self._last_free_ac = None
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
