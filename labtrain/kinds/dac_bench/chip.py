"""DACBenchChip: the part of a bench chip that every DAQ-and-pot bench shares.

A batch of B examples is **one** synchronised AO/AI acquisition of B windows,
one per example.  DC (:meth:`DACBenchChip.measure`): a plateau of
``settle_samples + average_samples`` samples per example, the settling samples
discarded, the rest averaged.  Phases:

* free      -- output switches open;
* clamp     -- output switches closed, output AOs at the clamp voltages
               (through ``output_series_ohm``: a small resistance is a voltage clamp);
* current   -- output switches closed, output AO at ``v_free + I * R_series``:
               injects ``I`` up to a relative error ``Z_out / R_series`` (use a
               series resistance much larger than the network's output
               resistance for EP, e.g. ``1 / beta_s``).

AC (:meth:`DACBenchChip.measure_ac`): ``settle_samples + plan.window_samples``
samples per example, tones from phase 0 at the window's first sample,
demodulated.  How consecutive windows are joined within the slew limit is the
kind's (:meth:`DACBenchChip._acquire_plateaus`, :meth:`DACBenchChip._acquire_windows`):
the linear bench ramps inside each window's settling samples, the nonlinear
bench inserts gap samples between windows.

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

import abc

import logging

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from labtrain.chip.base import (AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, REFERENCE_GRADIENT,
                                ACMeasurement, ClampNudge, CurrentNudge, Measurement, NetworkChip, PotQuantizer, Tone)
from labtrain.instruments.ports import DAQ, Guarded, PortIOError, PotArray
from labtrain.instruments.retry import call_with_retries
from labtrain.kinds.dac_bench.wiring import DACWiring
from labtrain.kinds.resistor.tones import check_ac_request, edge_demodulated, network_tone_drive, synthesise
from labtrain.physics.demod import FrequencyPlan, demodulate
from labtrain.physics.network import Network
from labtrain.physics.readouts import EdgeDrops

__all__ = ["AcquisitionSettings", "DACBenchChip", "PortErrorMismatch"]

log = logging.getLogger(__name__)


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

    def describe(self) -> dict:
        """The settings as a record (a chip's ``snapshot()["acquisition"]``)."""
        return {"rate_hz": self.rate_hz, "settle_samples": self.settle_samples,
                "average_samples": self.average_samples, "timeout_s": self.timeout_s,
                "retries": self.retries, "retry_wait_s": self.retry_wait_s}


class PortErrorMismatch(PortIOError):
    """An instrument reported a state other than the one requested."""


class DACBenchChip(NetworkChip):
    """Base of the chips driven through a DAQ (inputs, switched outputs, node reads) and a pot array.

    A kind's ``__init__`` checks its wiring, calls :meth:`_attach`, works out
    its parameters (:meth:`_pot_window` for the pots' conductances) and sets
    its initial parameters.  It provides :meth:`_acquire_plateaus` (DC) and
    :meth:`_acquire_windows` (AC): how a batch's levels become one acquisition.
    """

    network: Network
    wiring: DACWiring
    daq: DAQ
    pots: PotArray | None

    def _attach(self, network: Network, wiring: DACWiring, daq: DAQ, pots: PotArray | None,
                settings: AcquisitionSettings | None, backend: str,
                on_fault: Callable[[str], None] | None) -> None:
        """Check the ports (behind the safety layer; ``pots`` None only where the kind allows it) and set the
        state every bench chip keeps."""
        ports = [("daq", daq, DAQ)] + ([("pots", pots, PotArray)] if pots is not None else [])
        for name, port, kind in ports:
            if not (isinstance(port, kind) and isinstance(port, Guarded)):
                raise TypeError(f"{name} must be a {kind.__name__} port behind the safety layer "
                                f"(labtrain.instruments.safety.Safe{kind.__name__}), got {type(port).__name__}")
        self.network, self.wiring, self.daq, self.pots = network, wiring, daq, pots
        self.settings = settings or AcquisitionSettings()
        self.backend = backend
        self.on_fault = on_fault
        self.fault_log: list[str] = []
        self.reads_all = wiring.reads_every_node(network)
        self.capabilities = self.capabilities_for(self.reads_all)
        self._row_of_node = {n: k for k, n in enumerate(wiring.read_nodes)}
        self._out_rows = [self._row_of_node[n] for n in network.outputs]
        self._channels = np.asarray(wiring.pot_channels, np.int64)
        self._quantizer: PotQuantizer | None = None
        self._device_taps = np.zeros(0, np.int64)
        self._pots_dirty = True
        self._last_free: tuple[np.ndarray, np.ndarray] | None = None
        self._last_free_ac: tuple[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None
        self.acquisitions = 0
        self.acquired_time_s = 0.0
        #: the last acquisition's waveforms (for a scope view): rate, AO/AI channels and samples
        self.last_waveforms: dict | None = None

    @staticmethod
    def capabilities_for(reads_every_node: bool) -> frozenset[str]:
        """What a bench chip can do with a given wiring (edge drops need every node read)."""
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, NETWORK_MODEL, AC_TONES, REFERENCE_GRADIENT}
        return frozenset(caps | ({EDGE_DROPS} if reads_every_node else set()))

    # -------------------------------------------------------- retrying
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(what, fn, args, kwargs, retries=self.settings.retries,
                                 wait_s=self.settings.retry_wait_s, fault_log=self.fault_log, on_fault=self.on_fault)

    # ------------------------------------------------------------ pots
    def _pot_window(self, edges: np.ndarray) -> tuple[PotQuantizer, np.ndarray, np.ndarray]:
        """The pots of ``edges`` (the edges on ``wiring.pot_channels``, in that order): their quantizer (nominal
        calibration) and the tap window ``[tap_lo, tap_hi]`` inside both the edges' allowed conductances and
        the pots' range (higher conductance = lower tap); sets ``self._quantizer``."""
        calib = self.pots.calibration
        channels = self._channels
        if channels.max(initial=-1) >= calib.n_channels:
            raise ValueError(f"pot channel {int(channels.max())} does not exist (the array has "
                             f"{calib.n_channels} channels)")
        r_min = (calib.r_end_ohm + calib.r_wiper_ohm)[channels]
        r_max = r_min + calib.r_total_ohm[channels]
        self._quantizer = PotQuantizer(r_min, r_max, calib.n_taps)
        g_min, g_max = self.network.g_min_s, self.network.g_max_s
        lower = np.maximum(g_min[edges], 1.0 / r_max)
        upper = np.minimum(g_max[edges], 1.0 / r_min)
        if np.any(lower > upper):
            p = int(np.flatnonzero(lower > upper)[0])
            e = int(edges[p])
            raise ValueError(f"edge {e}: allowed conductances [{g_min[e]:g}, {g_max[e]:g}] S "
                             f"do not overlap its pot's range [{1 / r_max[p]:g}, {1 / r_min[p]:g}] S")
        pos = lambda g: (1.0 / g - r_min) / (r_max - r_min) * (calib.n_taps - 1)  # noqa: E731
        tap_lo = np.clip(np.ceil(pos(upper) - 1e-9), 0, calib.n_taps - 1).astype(np.int64)
        tap_hi = np.clip(np.floor(pos(lower) + 1e-9), 0, calib.n_taps - 1).astype(np.int64)
        return self._quantizer, tap_lo, tap_hi

    def get_taps(self) -> np.ndarray:
        """Tap of every pot on an edge (as last set), in ``wiring.pot_channels`` order."""
        return self._taps.copy()

    def _write_taps(self, taps: np.ndarray) -> None:
        """Set the pots of the wired edges to ``taps`` (channels not wired keep what they hold); raises
        :class:`PortErrorMismatch` when a pot reports another tap."""
        if self._pots_dirty or len(self._device_taps) != self.pots.n_channels:
            # channels not wired to an edge keep what they hold
            request = np.asarray(self._call("read pot taps", self.pots.get_taps), np.int64).copy()
        else:
            request = self._device_taps.copy()
        request[self._channels] = taps
        self._pots_dirty = True   # until the pots confirm: a write that fails may or may not have reached them
        took = np.asarray(self._call("set pot taps", self.pots.set_taps, request), np.int64)
        self._device_taps = took.copy()
        self._taps = took[self._channels]
        if not np.array_equal(self._taps, taps):
            bad = int(np.flatnonzero(self._taps != taps)[0])
            raise PortErrorMismatch(f"pot channel {int(self._channels[bad])} holds tap {int(self._taps[bad])}, "
                                    f"asked for {int(taps[bad])}")
        self._g = self._quantizer.to_conductance(self._taps)
        self._pots_dirty = False
        self._parameters_changed()

    def _parameters_changed(self) -> None:
        """The chip's parameters moved: its model and the cached free responses are stale."""
        self._model = None
        self._last_free = None
        self._last_free_ac = None

    # -------------------------------------------------------- measuring
    @property
    def rate_hz(self) -> float:
        """Sample clock of AO and AI (also of :meth:`measure_ac`), Hz."""
        return self.settings.rate_hz

    def ao_labels(self, output_role: str = "") -> list[str]:
        """What every signal AO channel drives, in ``wiring.ao_channels()`` order (``"input 0"``,
        ``"output 1 (clamp)"``)."""
        suffix = f" ({output_role})" if output_role else ""
        return [f"input {k}" for k in range(self.n_inputs)] + [f"output {k}{suffix}" for k in range(self.n_outputs)]

    def _check_levels(self, levels_v: np.ndarray, where: str, output_role: str = "",
                      columns: str | Sequence[str] = "example") -> None:
        """``levels_v`` (n_signal_ao, n) through the safety layer's value check, before anything is shaped or sent."""
        self.daq.check_ao_values(self.wiring.ao_channels(), levels_v, what=self.ao_labels(output_role), where=where,
                                 columns=columns)

    @abc.abstractmethod
    def _acquire_plateaus(self, levels_v: np.ndarray, switches_closed: bool) -> tuple[np.ndarray, float]:
        """One DC acquisition of a batch: ``levels_v`` (n_signal_ao, B), already checked, one plateau per example;
        returns the averaged node voltages of the read nodes (B, n_read) and the acquisition's duration."""

    @abc.abstractmethod
    def _acquire_windows(self, ao: np.ndarray, switches_closed: bool, settle_samples: int,
                         extra: dict | None = None) -> tuple[np.ndarray, float]:
        """One AC acquisition of B windows ``ao`` (n_signal_ao, B, n_s), already checked; returns the AI windows
        (B, n_read, n_s) and the acquisition's duration."""

    def _switched_write_read(self, wave: np.ndarray, switches_closed: bool) -> tuple[np.ndarray, Any]:
        """Play ``wave`` (n_signal_ao, n) on the signal AOs and read every AI, the output switches closed or
        open (opened again after an acquisition that closed them, whatever happens); returns the AI samples
        (n_read, n) as the DAQ gave them and the acquisition."""
        s = self.settings
        n = wave.shape[1]
        switches = {line: bool(switches_closed) for line in self.wiring.output_switch_do}
        self._call("set output switches", self.daq.set_digital, switches)
        try:
            acq = self._call("acquire", self.daq.write_read, self.wiring.ao_channels(), wave, self.wiring.node_ai,
                             s.rate_hz, s.timeout_s + n / s.rate_hz)
        finally:
            if switches_closed:
                self._call("open output switches", self.daq.set_digital,
                           {line: False for line in self.wiring.output_switch_do})
        return np.asarray(acq.ai_v, float), acq

    def _check_ai(self, ai: np.ndarray, n: int) -> None:
        if ai.shape != (len(self.wiring.node_ai), n):
            raise PortErrorMismatch(f"DAQ returned {ai.shape} samples, expected {(len(self.wiring.node_ai), n)}")

    def _count(self, acq: Any) -> float:
        """Count an acquisition (``acquisitions``, ``acquired_time_s``); returns its duration."""
        self.acquisitions += 1
        self.acquired_time_s += acq.duration_s
        return float(acq.duration_s)

    def _keep_waveforms(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai: np.ndarray, settle_samples: int,
                        plateau_samples: int, extra: dict | None) -> None:
        """Keep an acquisition's waveforms for a scope view (``last_waveforms``)."""
        w = self.wiring
        self.last_waveforms = {"rate_hz": self.settings.rate_hz, "ao_channels": list(ao_channels), "ao_v": ao_v,
                               "ai_channels": list(w.node_ai), "ai_v": ai,
                               "ai_labels": [f"{ch} (node {node})" for ch, node in zip(w.node_ai, w.read_nodes)],
                               "output_ai_rows": list(self._out_rows),
                               "settle_samples": settle_samples, "plateau_samples": plateau_samples,
                               **(extra or {})}

    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        """DC plateaus: free, clamped (outputs at ``nudge.voltage_v`` through the series resistor) or with
        ``nudge.current_a`` injected (output AO at ``v_free + I R``)."""
        x = np.atleast_2d(np.asarray(inputs, float))
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected inputs of shape (B, {self.n_inputs}), got {np.shape(inputs)}")
        if edge_drops and not self.reads_all:
            raise ValueError("edge drops need every node read (wiring reads outputs only)")
        n_b = len(x)
        if nudge is None:
            out_ao, role = None, ""
        elif isinstance(nudge, ClampNudge):
            out_ao, role = np.broadcast_to(np.asarray(nudge.voltage_v, float), (n_b, self.n_outputs)), "clamp"
        elif isinstance(nudge, CurrentNudge):
            current = np.broadcast_to(np.asarray(nudge.current_a, float), (n_b, self.n_outputs))
            self._check_levels(np.vstack([x.T, current.T * self.wiring.output_series_ohm]), "measure",
                               "current nudge x output_series_ohm")
            out_ao = self._free_outputs(x) + current * self.wiring.output_series_ohm
            role = "free output + current nudge"
        else:
            raise TypeError(f"unknown nudge {type(nudge).__name__}")
        levels = np.vstack([x.T, np.zeros((self.n_outputs, n_b)) if out_ao is None else out_ao.T])
        self._check_levels(levels, "measure", role)
        node_v, duration = self._acquire_plateaus(levels, out_ao is not None)                # (B, n_read)
        output_v = node_v[:, self._out_rows]
        if nudge is None:
            self._last_free = (x.copy(), output_v.copy())
        drops = None
        if edge_drops:
            v = node_v[:, [self._row_of_node[n] for n in range(self.network.n_nodes)]]
            e = self.network.edges
            drops = EdgeDrops.dense(v[:, e[:, 0]] - v[:, e[:, 1]])
        return Measurement(output_v, drops, acquisition_s=duration)

    def _free_outputs(self, inputs: np.ndarray) -> np.ndarray:
        if self._last_free is not None and self._last_free[0].shape == inputs.shape \
                and np.array_equal(self._last_free[0], inputs):
            return self._last_free[1]
        return self.measure(inputs).output_v

    # ------------------------------------------------------ AC (tones)
    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *,
                   settle_samples: int = 0, edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` plus ``tones`` in one DAQ acquisition per batch and demodulate what the AIs read.

        Every example is a window of ``settle_samples + plan.window_samples``
        samples; tones start at phase 0 in each window (time counted from its
        first sample), so each window starts at its DC level.  How one window
        joins the next within the safety layer's slew limit is the kind's
        (:meth:`_acquire_windows`); ``SafeDAQ`` ramps in from and out to the
        safe level.

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
          On a nonlinear network ``v_free`` leaves out the free output's
          harmonics: exact for DC activation, an approximation with input tones.

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
            dc, xs, ys, freqs = self._free_ac(x, drive, plan, settle, key)
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
        signals, duration = self._acquire_windows(ao, injecting, settle, {"tones_hz": plan.tones_hz.tolist(),
                                                                         "window_samples": plan.window_samples})
        out_v = signals[:, self._out_rows, :]                                                 # (B, n_out, n_s)
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

    def _free_ac(self, x: np.ndarray, drive: Any, plan: FrequencyPlan, settle: int,
                 key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Free output response (DC, in-phase, quadrature at the input tones) for this batch and these input tones."""
        if self._last_free_ac is None or self._last_free_ac[0] != key:
            tones = [Tone("input", i, float(f), drive.input_amplitude[:, i, k].copy())
                     for k, f in enumerate(drive.frequencies_hz) for i in range(self.n_inputs)
                     if np.any(drive.input_amplitude[:, i, k] != 0)]
            self.measure_ac(x, tones, plan, settle_samples=settle)
        assert self._last_free_ac is not None and self._last_free_ac[0] == key
        return self._last_free_ac[1]

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Reseed a simulated DAQ's noise (no effect on real instruments)."""
        self.daq.reseed(seed)

    # ----------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Open the output switches, ramp every AO to its safe level, pots to their safe taps; the next
        acquisition writes the chip's taps (and any held DC level) again."""
        errors = []
        for port in (self.daq, self.pots):
            if port is None:
                continue
            try:
                port.safe_state()
            except Exception as exc:  # keep going: every port must get its chance
                errors.append(f"{type(port).__name__}: {exc}")
        self._pots_dirty = True
        self._last_free = None
        self._last_free_ac = None
        if errors:
            self.fault_log.append("safe state: " + "; ".join(errors))
            log.error("%s", self.fault_log[-1], extra={"labtrain_event": "safety_failed"})

    def close(self) -> None:
        self.safe_state()
        for port in (self.daq, self.pots):
            if port is None:
                continue
            try:
                port.close()
            except Exception as exc:
                self.fault_log.append(f"close {type(port).__name__}: {exc}")
                log.error("%s", self.fault_log[-1], extra={"labtrain_event": "safety_failed"})
