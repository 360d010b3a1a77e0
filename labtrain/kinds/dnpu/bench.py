"""InstrumentDNPUChip: a DNPU on the bench (or its twin), seen through a safety-wrapped DAQ and a lock-in.

The same class runs the ``twin`` backend (:func:`labtrain.kinds.dnpu.twin.build_dnpu_twin`:
a :class:`~labtrain.simulators.daq_twin.SimulatedDAQ` over a DNPU circuit) and
the ``hardware`` backend (an NI DAQ and an SR830/SR860); it follows the API of
the ideal :class:`~labtrain.kinds.dnpu.chip.DNPUChip` exactly, so protocols run
unchanged on either.

Wiring: every activation electrode on one AO channel (``electrode_ao``, layout
order); the output current through a transimpedance amplifier (gain
``layout.gain_ohm``, inverting unless ``inverting=False``) into one AI channel
(``output_ai``).  ``output_v`` is ``+gain_ohm * I_out`` on every backend.

Acquisitions
------------
A batch is **one** synchronised AO/AI acquisition; example ``b`` is a block of

``ramp_samples`` (slew-limited ramp from the previous block's last sample to
this example's DC levels; the same length for every block of the batch, just
long enough for the largest jump at the safety layer's slew limit)
+ ``settle_samples`` (DC held: the device settles)
+ the measured part:

* :meth:`measure`: ``average_samples`` at the DC levels, averaged;
* :meth:`measure_ac`: ``settle_samples + plan.window_samples`` (the call's
  ``settle_samples``) of DC plus tones ``a sin(2 pi f t)`` with ``t`` counted
  from the first sample of that part, demodulated in software by
  :func:`labtrain.physics.demod.demodulate`.

The safety layer (:class:`~labtrain.instruments.safety.SafeDAQ`) ramps from 0 V into the
first sample and from the last sample back to 0 V, so every waveform starts
and ends at 0 V and the electrodes rest at 0 V between acquisitions.  Tone
amplitudes are included in the range check (DC +- the summed amplitudes on an
electrode inside its range), which raises a one-line ``ValueError`` before
anything is written; the safety layer checks every sample again against the
per-electrode limits and the abort level.

Lock-in (sequential) mode
-------------------------
With a :class:`~labtrain.instruments.ports.LockIn` and a *router* (a callable that
connects the lock-in's sine out to the summing input of one electrode's AO,
``None`` = to none: a relay box on the bench, :class:`~labtrain.kinds.dnpu.twin.TwinLockInRouter`
on the twin), ``measure_ac(..., demodulator="lockin")`` measures one tone at a
time: for every example it drops the sine out to its minimum amplitude and
routes it to no electrode, sets the DC levels (``set_dc``, slew-limited),
then for every tone routes the sine out (still at its minimum) to the tone's
electrode, sets frequency and amplitude (``a / sqrt(2)`` V RMS), waits
``lockin_settle_time_constants`` time constants, reads X and Y (RMS), converts
them to peak units (``sqrt(2) X``) and drops the amplitude to its minimum again
-- the same :class:`~labtrain.chip.base.ACMeasurement` as the software
demodulator.  No DC level ever moves under a routed sine.  Before anything is
sent, every state of that schedule is checked through the safety layer: the
DC level plus or minus the routed sine's peak on every electrode, across the
transitions from one example to the next, not only per example.  The DC part
comes from one :meth:`measure` of the batch.  Every exit leaves the sine out
disconnected at its minimum amplitude and the electrodes at 0 V.

Faults: :class:`~labtrain.instruments.ports.PortTimeout` / :class:`~labtrain.instruments.ports.PortIOError`
are retried ``retries`` times (the safety layer has ramped the outputs to 0 V
in between), then re-raised; the run loop pauses in the safe state.
"""

from __future__ import annotations

import logging

from typing import Any, Callable, Sequence

import numpy as np

from labtrain.physics.demod import Demodulated, FrequencyPlan, demodulate
from labtrain.kinds.dnpu.layout import DNPULayout, default_electrode_ao, default_layout
from labtrain.instruments.ports import DAQ, Guarded, LockIn, PortError
from labtrain.chip.base import AC_TONES, ACMeasurement, CapabilityError, Chip, Tone
from labtrain.kinds.dnpu.chip import DNPU, DNPUControls, DNPUMeasurement, check_tones, tone_electrode_waveforms
from labtrain.instruments.retry import call_with_retries

__all__ = ["InstrumentDNPUChip", "DEMODULATORS", "DigitalLineRouter"]

log = logging.getLogger(__name__)

#: where ``measure_ac`` demodulates: in software from the sampled output, or with the lock-in, one tone at a time
DEMODULATORS = ("software", "lockin")


class InstrumentDNPUChip(DNPUControls, Chip):
    """A DNPU driven through a (safety-wrapped) DAQ, optionally with a lock-in for sequential AC reads.

    Parameters
    ----------
    daq : DAQ
        Data-acquisition port, already wrapped by :class:`~labtrain.instruments.safety.SafeDAQ`
        (any :class:`~labtrain.instruments.ports.Guarded` DAQ; a bare port is refused).
    layout : DNPULayout, optional
        Electrode roles, ranges, gain, clipping (default :func:`~labtrain.kinds.dnpu.layout.default_layout`).
    control_v : ndarray, optional
        Initial control voltages (default: the middle of each control's range).
    electrode_ao : sequence of str, optional
        AO channel of every activation electrode, layout order (default: the DAQ's first ``n_electrodes`` AOs).
    output_ai : str, optional
        AI channel of the amplifier output (default: the DAQ's first AI).
    inverting : bool
        The amplifier reads ``V_ai = -gain_ohm * I_out`` (``False``: ``+gain_ohm * I_out``).
    rate_hz : float
        Sample clock; AC plans must use it.
    settle_samples : int
        DC samples held after each ramp before anything is measured.
    average_samples : int
        Samples averaged per example by :meth:`measure`.
    timeout_s : float
        Longest wait for one acquisition beyond its own duration.
    retries : int
        Extra attempts after an instrument fault.
    retry_wait_s : float
        Pause between attempts.
    backend : {"twin", "hardware"}
        For records and messages.
    lockin : LockIn, optional
        Lock-in amplifier, wrapped by :class:`~labtrain.instruments.safety.SafeLockIn` (a bare port is
        refused), for ``demodulator="lockin"``.
    lockin_router : callable, optional
        ``router(ao_channel or None)`` connects the lock-in's sine out to that electrode's summing input.
    lockin_settle_time_constants : float
        Wait before each lock-in reading, in lock-in time constants.
    demodulator : {"software", "lockin"}
        Default demodulator of :meth:`measure_ac`.
    on_fault : callable, optional
        Called with a one-line description of every retried fault.
    """

    capabilities = frozenset({AC_TONES, DNPU})

    def __init__(self, daq: DAQ, layout: DNPULayout | None = None, control_v: np.ndarray | None = None, *,
                 electrode_ao: Sequence[str] | None = None, output_ai: str | None = None, inverting: bool = True,
                 rate_hz: float = 10_000.0, settle_samples: int = 20, average_samples: int = 20,
                 timeout_s: float = 10.0, retries: int = 2, retry_wait_s: float = 0.0, backend: str = "twin",
                 lockin: LockIn | None = None, lockin_router: Callable[[str | None], None] | None = None,
                 lockin_settle_time_constants: float = 10.0, demodulator: str = "software",
                 on_fault: Callable[[str], None] | None = None) -> None:
        self.layout = default_layout() if layout is None else layout
        n_el = self.layout.n_electrodes
        if backend not in ("twin", "hardware"):
            raise ValueError(f"backend must be 'twin' or 'hardware', got {backend!r}")
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        if int(settle_samples) != settle_samples or settle_samples < 0:
            raise ValueError(f"settle_samples must be an integer >= 0, got {settle_samples!r}")
        if int(average_samples) != average_samples or average_samples < 1:
            raise ValueError(f"average_samples must be an integer >= 1, got {average_samples!r}")
        if int(retries) != retries or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        if demodulator not in DEMODULATORS:
            raise ValueError(f"demodulator must be one of {DEMODULATORS}, got {demodulator!r}")
        if not lockin_settle_time_constants > 0:
            raise ValueError(f"lockin_settle_time_constants must be > 0, got {lockin_settle_time_constants!r}")
        if demodulator == "lockin" and (lockin is None or lockin_router is None):
            raise ValueError("demodulator 'lockin' needs a lockin and a lockin_router")
        for name, port, kind in (("daq", daq, DAQ), ("lockin", lockin, LockIn)):
            if port is not None and not (isinstance(port, kind) and isinstance(port, Guarded)):
                raise TypeError(f"{name} must be a {kind.__name__} port behind the safety layer "
                                f"(labtrain.instruments.safety.Safe{kind.__name__}), got {type(port).__name__}")
        ao = tuple(daq.ao_channels)[:n_el] if electrode_ao is None else tuple(electrode_ao)
        if len(ao) != n_el or len(set(ao)) != n_el:
            raise ValueError(f"electrode_ao must name {n_el} distinct AO channels, got {list(ao)}")
        missing = [c for c in ao if c not in daq.ao_channels]
        if missing:
            raise ValueError(f"electrode AO channel {missing[0]!r} is not a channel of the DAQ "
                             f"({', '.join(daq.ao_channels)})")
        ai = (tuple(daq.ai_channels) or ("",))[0] if output_ai is None else str(output_ai)
        if ai not in daq.ai_channels:
            raise ValueError(f"output AI channel {ai!r} is not a channel of the DAQ ({', '.join(daq.ai_channels)})")
        self.daq = daq
        self.electrode_ao = ao
        self.output_ai = ai
        self.inverting = bool(inverting)
        self.rate_hz = float(rate_hz)
        self.settle_samples = int(settle_samples)
        self.average_samples = int(average_samples)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.retry_wait_s = float(retry_wait_s)
        self.backend = backend
        self.lockin = lockin
        self.lockin_router = lockin_router
        #: electrode the lock-in's sine out may be routed onto (None: routed nowhere, as far as is known)
        self._lockin_electrode: int | None = None
        self.lockin_settle_time_constants = float(lockin_settle_time_constants)
        self.demodulator = demodulator
        self.on_fault = on_fault
        self.fault_log: list[str] = []
        self.acquisitions = 0
        self.acquired_time_s = 0.0
        #: the last acquisition's waveforms (GUI scope): rate, AO/AI channels and samples, plateau layout
        self.last_waveforms: dict | None = None
        self._init_controls(control_v)

    # ---------------------------------------------------------------- shape
    @property
    def sign(self) -> float:
        """``output_v / V_ai``: -1 behind an inverting amplifier."""
        return -1.0 if self.inverting else 1.0

    # ------------------------------------------------------------- retrying
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(what, fn, args, kwargs, retries=self.retries, wait_s=self.retry_wait_s,
                                 fault_log=self.fault_log, on_fault=self.on_fault)

    # ------------------------------------------------------------- waveforms
    def electrode_labels(self) -> list[str]:
        """What every electrode's AO drives, layout order (``"input 0 (electrode E1)"``), for messages."""
        lay = self.layout
        labels = [f"electrode {name}" for name in lay.names]
        for k, el in enumerate(lay.data_electrodes):
            labels[el] = f"input {k} (electrode {lay.names[el]})"
        for k, el in enumerate(lay.control_electrodes):
            labels[el] = f"control {k} (electrode {lay.names[el]})"
        return labels

    def _check_inputs(self, inputs: np.ndarray, where: str = "measure") -> np.ndarray:
        """Inputs as ``(B, n_inputs)`` volts: shape, then finiteness and the safety limits of each data electrode
        (one line naming the input, its channel, the example, the value and the allowed range), then the
        layout's ranges."""
        x = np.asarray(inputs, float)
        if x.ndim == 1 and self.n_inputs > 1 and x.shape[0] == self.n_inputs:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_inputs or x.shape[0] < 1:
            raise ValueError(f"inputs must have shape (B, {self.n_inputs}), got {np.shape(inputs)}")
        data = list(self.layout.data_electrodes)
        labels = self.electrode_labels()
        self.daq.check_ao_values([self.electrode_ao[e] for e in data], x.T, what=[labels[e] for e in data],
                                 where=where, columns="example")
        self._check_data_range(x, "; nothing was written")
        return x

    def _check_electrodes(self, dc_v: np.ndarray, where: str) -> None:
        """Every example's electrode levels ``(B, n_electrodes)`` through the safety layer, before anything is
        shaped or sent (a non-finite control voltage or an out-of-limit level, named)."""
        self.daq.check_ao_values(self.electrode_ao, np.asarray(dc_v, float).T, what=self.electrode_labels(),
                                 where=where, columns="example")

    def max_step_v(self) -> np.ndarray:
        """Largest change per sample the safety layer allows on every electrode at ``rate_hz`` (inf: no limit)."""
        return np.asarray(self.daq.max_step_v(self.electrode_ao, self.rate_hz), float)

    def _blocks(self, dc_v: np.ndarray, body_v: np.ndarray) -> tuple[np.ndarray, int]:
        """AO waveform ``(n_electrodes, B * block)`` of ramp + settle + body blocks, and ``ramp_samples``.

        ``dc_v`` (B, n_el) are the DC levels, ``body_v`` (B, m, n_el) the
        measured part of every example (its first sample must be the DC level).
        Vectorised over examples, samples and electrodes.
        """
        n_b, m, n_el = body_v.shape
        step = self.max_step_v()
        start = np.concatenate([dc_v[:1], body_v[:-1, -1, :]], axis=0)             # (B, n_el)
        gap = dc_v - start
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(np.abs(gap) > 0, np.abs(gap) / step, 0.0)
        ramp_n = int(np.ceil(np.max(need) - 1e-9)) if need.size else 0
        k = np.arange(1, ramp_n + 1)
        moved = np.minimum(np.abs(gap)[:, None, :], step[None, None, :] * k[None, :, None])
        ramp = start[:, None, :] + np.sign(gap)[:, None, :] * moved                 # (B, R, n_el)
        hold = np.broadcast_to(dc_v[:, None, :], (n_b, self.settle_samples, n_el))
        block = np.concatenate([ramp, hold, body_v], axis=1)                         # (B, P, n_el)
        return np.ascontiguousarray(block.reshape(-1, n_el).T), ramp_n

    def _acquire(self, ao_v: np.ndarray, measured_from: int, block: int) -> np.ndarray:
        """One acquisition: write ``ao_v`` to the electrodes, read the amplifier output ``(n_samples,)`` in volts."""
        n = ao_v.shape[1]
        acq = self._call("acquire", self.daq.write_read, self.electrode_ao, ao_v, (self.output_ai,), self.rate_hz,
                         self.timeout_s + n / self.rate_hz)
        ai = np.asarray(acq.ai_v, float)
        if ai.shape != (1, n):
            raise PortError(f"DAQ returned {ai.shape} samples, expected {(1, n)}")
        self.acquisitions += 1
        self.acquired_time_s += acq.duration_s
        self.last_waveforms = {"rate_hz": self.rate_hz, "ao_channels": list(self.electrode_ao), "ao_v": ao_v,
                               "ai_channels": [self.output_ai], "ai_v": ai, "settle_samples": measured_from,
                               "plateau_samples": block}
        return ai[0]

    def acquire_electrodes(self, electrode_v: np.ndarray) -> np.ndarray:
        """Write arbitrary electrode waveforms ``(n_electrodes, n_samples)`` and return the output current (A).

        One acquisition through the safety layer (ranges checked first: a
        one-line ``ValueError`` and nothing written).  Used by
        :func:`labtrain.kinds.dnpu.characterize.characterize`.
        """
        wave = np.asarray(electrode_v, float)
        n_el = self.layout.n_electrodes
        if wave.ndim != 2 or wave.shape[0] != n_el or wave.shape[1] < 1:
            raise ValueError(f"electrode_v must have shape ({n_el}, n_samples), got {wave.shape}")
        lo, hi = np.asarray(self.layout.low_v)[:, None], np.asarray(self.layout.high_v)[:, None]
        bad = ~np.isfinite(wave) | (wave < lo - 1e-12) | (wave > hi + 1e-12)
        if np.any(bad):
            el, k = np.argwhere(bad)[0]
            raise ValueError(f"electrode {self.layout.names[el]}, sample {k}: {wave[el, k]!r} V outside its range "
                             f"[{lo[el, 0]}, {hi[el, 0]}] V; nothing was written")
        ai = self._acquire(wave, 0, wave.shape[1])
        return self.sign * ai / self.layout.gain_ohm

    # ------------------------------------------------------------ measuring
    def measure(self, inputs: np.ndarray, nudge: Any = None, edge_drops: bool = False) -> DNPUMeasurement:
        """Settled DC output of every example, ``(B, 1)`` volts at the amplifier output (one acquisition)."""
        x = self._check_dc_request(inputs, nudge, edge_drops)
        dc = self.layout.electrode_voltages(x, np.broadcast_to(self._v, (len(x), len(self._v))))
        self._check_electrodes(dc, "measure")
        m = self.average_samples
        body = np.broadcast_to(dc[:, None, :], (len(x), m, dc.shape[1]))
        ao, ramp_n = self._blocks(dc, body)
        block = ramp_n + self.settle_samples + m
        ai = self._acquire(ao, block - m, block)
        out = self.sign * ai.reshape(len(x), block)[:, block - m:].mean(axis=1)
        return DNPUMeasurement(out[:, None], gain_ohm=self.layout.gain_ohm, acquisition_s=ao.shape[1] / self.rate_hz)

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *, settle_samples: int = 0,
                   edge_drops: bool = False, demodulator: str | None = None) -> ACMeasurement:
        """Drive DC ``inputs`` and controls plus ``tones``; demodulate the amplifier output at ``plan.tones_hz``.

        Parameters
        ----------
        inputs : ndarray, shape (B, n_inputs)
            Data-electrode DC levels (V).
        tones : sequence of Tone
            On terminal ``"control"`` (index into ``layout.control_electrodes``) or
            ``"input"`` (data electrode); amplitudes in volts (peak), scalar or ``(B,)``.
        plan : FrequencyPlan
            Tones, window and sample clock (must equal the chip's ``rate_hz``).
        settle_samples : int
            Samples with tones discarded before the window (time counts from the first of them).
        edge_drops : bool
            Not available on a DNPU (``CapabilityError``).
        demodulator : {"software", "lockin"}, optional
            Default: the chip's ``demodulator``.

        Returns
        -------
        ACMeasurement
            ``output.in_phase`` / ``quadrature`` ``(B, 1, n_tones)`` and ``dc`` ``(B, 1)`` in volts (peak) at the
            amplifier output; ``waveforms`` ``(B, 1, settle + window)`` (software mode).
        """
        if edge_drops:
            raise CapabilityError("a DNPU has no edge-drop readout")
        mode = self.demodulator if demodulator is None else demodulator
        if mode not in DEMODULATORS:
            raise ValueError(f"demodulator must be one of {DEMODULATORS}, got {mode!r}")
        if abs(plan.rate_hz - self.rate_hz) > 1e-9 * self.rate_hz:
            raise ValueError(f"plan rate_hz {plan.rate_hz} differs from the chip's sample clock {self.rate_hz} Hz")
        if int(settle_samples) != settle_samples or settle_samples < 0:
            raise ValueError(f"settle_samples must be an integer >= 0, got {settle_samples!r}")
        settle = int(settle_samples)
        x = self._check_inputs(inputs, "measure_ac")
        self._check_electrodes(self.layout.electrode_voltages(x, np.broadcast_to(self._v, (len(x), len(self._v)))),
                               "measure_ac")
        check_tones(tones, plan, self.n_inputs, len(self._v))
        if mode == "lockin":
            return self._measure_ac_lockin(x, list(tones), plan)
        n = settle + plan.window_samples
        body = tone_electrode_waveforms(self.layout, x, self._v, tones, self.rate_hz, n)   # (B, n, n_el), checked
        dc = body[:, 0, :]
        ao, ramp_n = self._blocks(dc, body)
        block = ramp_n + self.settle_samples + n
        ai = self._acquire(ao, block - plan.window_samples, block)
        out_v = (self.sign * ai.reshape(len(x), block)[:, block - n:])[:, None, :]        # (B, 1, n)
        demod = demodulate(out_v, plan.rate_hz, plan.tones_hz, settle_samples=settle,
                           window_samples=plan.window_samples)
        return ACMeasurement(demod, plan, None, ao.shape[1] / self.rate_hz, out_v)

    # ------------------------------------------------------------- lock-in
    def _wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the DAQ's clock: real time on the bench, the simulated clock on the twin."""
        self.daq.sleep(seconds)

    def _park_lockin(self, amplitude_v: float) -> None:
        """Sine out down to ``amplitude_v`` (its minimum) and routed to no electrode: nothing may move under it.

        While the sine may still sit on an electrode the amplitude is ramped down (:meth:`_ramp_lockin_amplitude`);
        routed nowhere it is one write.
        """
        assert self.lockin is not None and self.lockin_router is not None
        if self._lockin_electrode is None:
            self.lockin.amplitude_v = amplitude_v
        else:
            self._ramp_lockin_amplitude(amplitude_v, self._lockin_electrode)
        self._route_lockin(None)

    def _route_lockin(self, electrode: int | None) -> None:
        """Route the sine out onto ``electrode`` (None: nowhere), remembering where it may be.

        The electrode is recorded before the router is called (a failed call may have closed the relay), and
        cleared only once routing to nowhere has succeeded: the safe-state path then ramps whenever in doubt.
        """
        assert self.lockin_router is not None
        if electrode is not None:
            self._lockin_electrode = int(electrode)
        self._call("route lock-in", self.lockin_router, None if electrode is None else self.electrode_ao[electrode])
        if electrode is None:
            self._lockin_electrode = None

    def _ramp_lockin_amplitude(self, target_rms_v: float, electrode: int) -> None:
        """Move the routed sine's amplitude to ``target_rms_v`` within the electrode's slew limit.

        An amplitude change is a jump of the electrode's voltage of up to ``sqrt(2) |delta rms|``; the move goes
        from the amplitude the lock-in reports holding, in steps of at most the channel's ``max_step_v`` at the
        acquisition rate, each held ``1 / rate_hz`` on the DAQ's clock -- the pace of the safety layer's stepped
        DC ramps.  A step within the limit is one write.
        """
        assert self.lockin is not None
        start = float(self.lockin.amplitude_v)
        max_step_rms = float(self.max_step_v()[electrode]) / np.sqrt(2)
        n_steps = max(1, int(np.ceil(abs(target_rms_v - start) / max_step_rms * (1 - 1e-12))))
        for level in np.linspace(start, target_rms_v, n_steps + 1)[1:]:
            self.lockin.amplitude_v = float(level)
            if n_steps > 1:
                self._wait(1.0 / self.rate_hz)

    def _check_lockin_schedule(self, dc_v: np.ndarray, electrode: list[int], rms: np.ndarray,
                               frequency_hz: np.ndarray) -> None:
        """Every state the sequential schedule passes through, through the safety layer, before anything is sent.

        State (example ``b``, tone ``i``): the DC levels of example ``b`` with the sine routed onto electrode
        ``electrode[i]`` at ``sqrt(2) rms[b, i]`` V peak -- both extremes, ``DC - peak`` and ``DC + peak``.  The
        schedule parks the sine (minimum amplitude, routed nowhere) before every DC change, so these states are
        all there is: the check covers the transitions between examples, not only each example on its own.
        The sine's own steepest slope, ``2 pi f peak``, must be within the electrode channel's slew limit
        (amplitude changes are ramped by :meth:`_ramp_lockin_amplitude`).
        """
        n_b, n_t = rms.shape
        peak = np.sqrt(2) * rms                                                          # (B, T)
        onehot = np.zeros((n_t, self.layout.n_electrodes))
        onehot[np.arange(n_t), electrode] = 1.0
        swing = peak[:, :, None] * onehot[None, :, :]                                    # (B, T, n_el)
        low = (dc_v[:, None, :] - swing).reshape(n_b * n_t, -1)
        high = (dc_v[:, None, :] + swing).reshape(n_b * n_t, -1)
        labels = [f"example {b}, tone {i} (DC {sign} {peak[b, i]:.4g} V lock-in sine peak)"
                  for sign in ("-", "+") for b in range(n_b) for i in range(n_t)]
        self.daq.check_ao_values(self.electrode_ao, np.concatenate([low, high]).T, what=self.electrode_labels(),
                                 where="measure_ac (lock-in)", columns=labels)
        limit_v_per_s = self.max_step_v() * self.rate_hz                            # per electrode
        for i in range(n_t):
            channel, limit = self.electrode_ao[electrode[i]], float(limit_v_per_s[electrode[i]])
            slope_v_per_s = 2 * np.pi * float(frequency_hz[i]) * float(peak[:, i].max())
            if slope_v_per_s > limit * (1 + 1e-9):
                raise ValueError(f"{channel}: measure_ac (lock-in) tone {i} at {frequency_hz[i]:g} Hz, "
                                 f"{peak[:, i].max():.4g} V peak slews {slope_v_per_s:.4g} V/s, above the channel's "
                                 f"max_slew_v_per_s = {limit:.4g} V/s; nothing was sent")

    def _measure_ac_lockin(self, x: np.ndarray, tones: list[Tone], plan: FrequencyPlan) -> ACMeasurement:
        if self.lockin is None or self.lockin_router is None:
            raise CapabilityError(f"{self.backend} DNPU chip has no lock-in (and router) for demodulator 'lockin'")
        lay = self.layout
        freqs = plan.tones_hz
        which = np.array([int(np.argmin(np.abs(freqs - t.frequency_hz))) for t in tones], int)
        if len(tones) != plan.n_tones or sorted(which.tolist()) != list(range(plan.n_tones)) \
                or np.any(np.abs(freqs[which] - [t.frequency_hz for t in tones]) > 1e-9 * freqs[which]):
            raise ValueError(f"lock-in mode needs exactly one tone per plan frequency {freqs.tolist()} Hz, got "
                             f"{[t.frequency_hz for t in tones]}")
        n_b = len(x)
        amp = np.stack([np.broadcast_to(np.asarray(t.amplitude, float), (n_b,)) for t in tones], axis=1)  # (B, T)
        lo_rms = float(self.lockin.min_amplitude_v)
        hi_rms = float(self.lockin.max_amplitude_v)
        rms = amp / np.sqrt(2)
        bad = (rms < lo_rms * (1 - 1e-9)) | (rms > hi_rms)
        if np.any(bad):
            b, i = np.argwhere(bad)[0]
            raise ValueError(f"tone {i} (example {b}): amplitude {amp[b, i]:.4g} V peak = {rms[b, i]:.4g} V RMS is "
                             f"outside the lock-in's sine-out range [{lo_rms:g}, {hi_rms:g}] V RMS")
        dc_v = lay.electrode_voltages(x, np.broadcast_to(self._v, (n_b, len(self._v))))
        electrode = [(lay.data_electrodes if t.terminal == "input" else lay.control_electrodes)[t.index]
                     for t in tones]
        # every state of the schedule through the safety layer, then the layout's ranges (DC +- summed
        # amplitudes, conservative for one tone at a time), before anything is sent
        self._check_lockin_schedule(dc_v, electrode, rms, freqs[which])
        tone_electrode_waveforms(lay, x, self._v, tones, self.rate_hz, 1)
        xr = np.zeros((n_b, 1, plan.n_tones))
        yr = np.zeros((n_b, 1, plan.n_tones))
        lockin = self.lockin
        waited = 0.0
        try:
            self._park_lockin(lo_rms)
            dc_out = self.measure(x).output_v                                                # (B, 1)
            for b in range(n_b):                     # sequential by nature: one reading at a time
                self._park_lockin(lo_rms)            # no DC level moves under a routed sine
                self._call("set DC levels", self.daq.set_dc,
                           {c: float(v) for c, v in zip(self.electrode_ao, dc_v[b])})
                for i, tone in enumerate(tones):
                    lockin.amplitude_v = lo_rms      # the sine moves between electrodes at its minimum only
                    self._route_lockin(electrode[i])
                    lockin.frequency_hz = float(freqs[which[i]])
                    self._ramp_lockin_amplitude(float(rms[b, i]), electrode[i])
                    wait = self.lockin_settle_time_constants * float(lockin.time_constant_s)
                    self._wait(wait)
                    waited += wait
                    r = self._call("read lock-in", lockin.read_xy)
                    xr[b, 0, which[i]] = self.sign * np.sqrt(2) * r.x_v
                    yr[b, 0, which[i]] = self.sign * np.sqrt(2) * r.y_v
                    self._ramp_lockin_amplitude(lo_rms, electrode[i])
        finally:
            self._lockin_safe()
            self.daq.safe_state()
        demod = Demodulated(xr, yr, dc_out.copy(), freqs.copy(), plan.window_samples)
        return ACMeasurement(demod, plan, None, waited, None)

    def _lockin_safe(self) -> None:
        """Lock-in at its safe (minimum) amplitude, then routed to no electrode; failures go to the fault log.

        While the sine may sit on an electrode (a fault mid-tone), its amplitude is first ramped down from the
        level the lock-in reports holding within the electrode's slew limit; only if that ramp fails does the
        driver's own safe state drop it in one write.
        """
        errors = []
        if self.lockin is not None:
            if self._lockin_electrode is not None:
                try:
                    self._ramp_lockin_amplitude(float(self.lockin.min_amplitude_v), self._lockin_electrode)
                except Exception as exc:  # noqa: BLE001 -- the driver's safe state below still runs
                    errors.append(f"lock-in amplitude ramp: {exc}")
            try:
                self.lockin.safe_state()
            except Exception as exc:  # noqa: BLE001 -- the router must still be opened
                errors.append(f"lock-in: {exc}")
        if self.lockin_router is not None:
            try:
                self.lockin_router(None)
                self._lockin_electrode = None
            except Exception as exc:  # noqa: BLE001
                errors.append(f"lock-in router: {exc}")
        if errors:
            self.fault_log.append("safe state: " + "; ".join(errors))
            log.error("%s", self.fault_log[-1], extra={"labtrain_event": "safety_failed"})

    # ---------------------------------------------------------------- noise
    def reseed(self, seed: int | list[int]) -> None:
        """Reseed a simulated DAQ's noise (no effect on real instruments)."""
        self.daq.reseed(seed)

    # --------------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Lock-in sine out disconnected at its minimum amplitude, every electrode ramped to 0 V."""
        self._lockin_safe()
        try:
            self.daq.safe_state()
        except Exception as exc:  # noqa: BLE001 -- recorded; the safety layer's exit hook tries again
            self.fault_log.append(f"safe state: {type(self.daq).__name__}: {exc}")
            log.error("%s", self.fault_log[-1], extra={"labtrain_event": "safety_failed"})
            raise

    def close(self) -> None:
        """Safe state, then release the ports."""
        try:
            self.safe_state()
        finally:
            for port in (self.lockin, self.daq):
                if port is None:
                    continue
                try:
                    port.close()
                except Exception as exc:  # noqa: BLE001
                    self.fault_log.append(f"close {type(port).__name__}: {exc}")
                    log.error("%s", self.fault_log[-1], extra={"labtrain_event": "safety_failed"})

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "DNPU on instruments",
            "layout": self.layout.to_dict(),
            "wiring": {"electrode_ao": list(self.electrode_ao), "output_ai": self.output_ai,
                       "inverting": self.inverting},
            "acquisition": {"rate_hz": self.rate_hz, "settle_samples": self.settle_samples,
                            "average_samples": self.average_samples, "timeout_s": self.timeout_s,
                            "retries": self.retries, "retry_wait_s": self.retry_wait_s},
            "control_v": self._v.tolist(),
            "demodulator": self.demodulator,
            "daq": self.daq.snapshot(),
            "lockin": None if self.lockin is None else self.lockin.snapshot(),
            "lockin_settle_time_constants": self.lockin_settle_time_constants,
            "parameter": {"name": "control_voltage", "unit": "V", "lower_v": self._spec.lower.tolist(),
                          "upper_v": self._spec.upper.tolist()},
            "capabilities": sorted(self.capabilities),
        }


class DigitalLineRouter:
    """Lock-in routing on the bench: a relay per electrode, driven by the DAQ's digital lines.

    ``lines`` maps an electrode's AO channel to the digital line whose relay
    connects the lock-in's sine out to that electrode's summing input.
    ``router(channel)`` opens every relay, then closes ``channel``'s (``None``:
    all open).  The lines go through the (safety-wrapped) DAQ, whose safe
    state opens them all.
    """

    def __init__(self, daq: DAQ, lines: dict[str, str]) -> None:
        bad = [line for line in lines.values() if line not in daq.do_lines]
        if bad:
            raise ValueError(f"router line {bad[0]!r} is not a digital line of the DAQ ({', '.join(daq.do_lines)})")
        self.daq, self.lines = daq, dict(lines)
        self.channel: str | None = None

    def __call__(self, channel: str | None) -> None:
        if channel is not None and channel not in self.lines:
            raise ValueError(f"no lock-in relay for AO channel {channel!r} (relays: {', '.join(self.lines)})")
        self.daq.set_digital({line: False for line in self.lines.values()})
        self.channel = None
        if channel is not None:
            self.daq.set_digital({self.lines[channel]: True})
            self.channel = channel
