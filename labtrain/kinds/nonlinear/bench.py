"""NonlinearBenchChip: a nonlinear resistive chip on the bench (or its twin), seen through instrument ports.

The same class runs the ``twin`` backend (simulated DAQ and pots,
:mod:`labtrain.kinds.nonlinear.twin`) and the ``hardware`` backend (a real DAQ
and pot array): everything above the ports is shared.

The chip (:mod:`labtrain.kinds.nonlinear.wiring`): fixed diodes and diode pairs
soldered in place; digital pots (rheostats) as the trainable conductances of the
linear edges; transistor edges whose gate voltages are AO channels of the DAQ,
held at DC between acquisitions (``set_dc``: a slew-limited ramp through the
safety layer, inside the gate channels' own limits); inputs driven by AO
channels; outputs behind switches and a series resistor (open: free; closed
with the output AO at ``v_free + I R``: current injection; at ``V``: a clamp).

Parameters (one vector, :meth:`NonlinearBenchChip.parameter_blocks`): the
conductances (S) of the linear edges in increasing edge order (pot taps: what
the device took is the nominal conductance of the nearest tap), then the gate
voltages (V) of the transistor edges in increasing edge order (clipped to
``[gate_min_v, gate_max_v]``).

Acquisitions.  A batch of B examples is **one** synchronised AO/AI acquisition
of B windows, one per example (DC: a plateau of ``settle_samples +
average_samples`` samples, the settling samples discarded, the rest averaged;
AC: ``settle_samples + plan.window_samples`` samples, tones from phase 0 at the
window's first sample, demodulated).  Between two windows the chip inserts a
*gap*: the fewest samples (the same number before every window) over which
every AO channel ramps from the last sample of one window to the first of the
next at the safety layer's slew limit; gap samples are acquired and discarded,
so a window's settling samples are pure settling, whatever the jump.  The
safety layer (:class:`~labtrain.instruments.safety.SafeDAQ`) ramps in from the
held levels and out to the safe level around each acquisition.  Before each
acquisition the chip makes sure the pots hold its taps and every gate AO its
level (after a fault the safety layer has ramped the gates to their safe level
and the pots to their safe taps; they are written again, through the same
checks).

Instrument faults (:class:`~labtrain.instruments.ports.PortTimeout`,
:class:`~labtrain.instruments.ports.PortIOError`) are retried ``retries`` times,
then propagate (the run loop pauses the run in the safe state).  Every level
the chip is about to write -- inputs, clamp voltages, current-injection levels,
tone waveforms, gate voltages -- goes through ``daq.check_ao_values`` first, so
a ``nan`` or an out-of-limit value is refused with a one-line message naming
it, its channel and the allowed range, and nothing is sent.

On a nonlinear network the current injection ``v_free(t) + I(t) R`` uses the free
output's DC level and its fundamentals at the input tones (from a free acquisition
of the same batch): exact for DC activation (what ``fp`` uses on this kind), an
approximation with input tones (the free output's harmonics are not replayed).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from labtrain.chip.base import (AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, REFERENCE_GRADIENT,
                                ACMeasurement, ClampNudge, CurrentNudge, Measurement, NetworkChip, ParameterSpec,
                                PotQuantizer, Tone)
from labtrain.instruments.ports import DAQ, Guarded, PotArray
from labtrain.instruments.retry import call_with_retries
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork
from labtrain.kinds.nonlinear.wiring import NonlinearWiring
from labtrain.kinds.resistor.bench import AcquisitionSettings, PortErrorMismatch
from labtrain.kinds.resistor.tones import check_ac_request, edge_demodulated, network_tone_drive, synthesise
from labtrain.physics.demod import FrequencyPlan, demodulate
from labtrain.physics.network import Network
from labtrain.physics.readouts import EdgeDrops

__all__ = ["NonlinearBenchChip"]


class NonlinearBenchChip(NetworkChip):
    """Nonlinear resistive chip driven through a DAQ (inputs, outputs, gates) and a potentiometer array.

    Parameters
    ----------
    network : Network
        Topology, terminals and the conductance bounds the experiment allows (linear edges).
    edges : NonlinearEdges
        Kind and *nominal* parameters of every edge: what the chip's model assumes
        (the parts on the bench may differ; the twin's :func:`~labtrain.kinds.nonlinear.twin.vary_diodes`).
    wiring : NonlinearWiring
        Which terminal, node, pot and gate is on which channel.
    daq : DAQ
        The data-acquisition port behind the safety layer (:class:`~labtrain.instruments.safety.SafeDAQ`).
    pots : PotArray or None
        The potentiometer port behind the safety layer (:class:`~labtrain.instruments.safety.SafePotArray`);
        None only when the network has no linear edge.
    settings : AcquisitionSettings, optional
        Sample clock, plateau, retries.
    parameters : ndarray, optional
        Initial parameters (order of :meth:`parameter_blocks`); default: the geometric mean of each
        conductance range, the middle of each gate range.
    backend : str
        ``"twin"`` or ``"hardware"`` (records and messages).
    on_fault : callable, optional
        Called with a one-line description of every retried fault.
    solver_options : dict, optional
        Newton settings of the chip's model (``tol_a``, ``rtol``, ``tol_v``, ``max_iter``).
    """

    def __init__(self, network: Network, edges: NonlinearEdges, wiring: NonlinearWiring, daq: DAQ,
                 pots: PotArray | None, settings: AcquisitionSettings | None = None,
                 parameters: np.ndarray | None = None, *, backend: str = "twin",
                 on_fault: Callable[[str], None] | None = None, solver_options: dict | None = None) -> None:
        wiring.check(network, edges)
        ports = [("daq", daq, DAQ)] + ([("pots", pots, PotArray)] if pots is not None else [])
        for name, port, kind in ports:
            if not (isinstance(port, kind) and isinstance(port, Guarded)):
                raise TypeError(f"{name} must be a {kind.__name__} port behind the safety layer "
                                f"(labtrain.instruments.safety.Safe{kind.__name__}), got {type(port).__name__}")
        self.network, self.edges, self.wiring, self.daq, self.pots = network, edges, wiring, daq, pots
        self.settings = settings or AcquisitionSettings()
        self.backend = backend
        self.on_fault = on_fault
        self.fault_log: list[str] = []
        self.solver_options = dict(solver_options or {})
        self._lin, self._tr = edges.indices("linear"), edges.indices("transistor")
        n_g, n_v = len(self._lin), len(self._tr)
        if n_g and pots is None:
            raise ValueError(f"the network has {n_g} linear edges: a pot array is needed")
        # ---- pots: the linear edges' conductances
        self._channels = np.asarray(wiring.pot_channels, np.int64)
        self._quantizer: PotQuantizer | None = None
        g_lo = g_hi = np.zeros(0)
        if n_g:
            calib = pots.calibration
            if self._channels.max() >= calib.n_channels:
                raise ValueError(f"pot channel {int(self._channels.max())} does not exist (the array has "
                                 f"{calib.n_channels} channels)")
            r_min = (calib.r_end_ohm + calib.r_wiper_ohm)[self._channels]
            r_max = r_min + calib.r_total_ohm[self._channels]
            self._quantizer = PotQuantizer(r_min, r_max, calib.n_taps)
            lower = np.maximum(network.g_min_s[self._lin], 1.0 / r_max)
            upper = np.minimum(network.g_max_s[self._lin], 1.0 / r_min)
            if np.any(lower > upper):
                p = int(np.flatnonzero(lower > upper)[0])
                e = int(self._lin[p])
                raise ValueError(f"edge {e}: allowed conductances [{network.g_min_s[e]:g}, {network.g_max_s[e]:g}] S "
                                 f"do not overlap its pot's range [{1 / r_max[p]:g}, {1 / r_min[p]:g}] S")
            pos = lambda g: (1.0 / g - r_min) / (r_max - r_min) * (calib.n_taps - 1)  # noqa: E731
            self._tap_lo = np.clip(np.ceil(pos(upper) - 1e-9), 0, calib.n_taps - 1).astype(np.int64)
            self._tap_hi = np.clip(np.floor(pos(lower) + 1e-9), 0, calib.n_taps - 1).astype(np.int64)
            g_lo, g_hi = self._quantizer.to_conductance(self._tap_hi), self._quantizer.to_conductance(self._tap_lo)
        # ---- gates: the transistor edges' gate voltages, inside the gate channels' safety limits
        v_lo = edges.params["gate_min_v"][self._tr].astype(float)
        v_hi = edges.params["gate_max_v"][self._tr].astype(float)
        if n_v:
            self.daq.check_ao_values(wiring.gate_ao, np.c_[v_lo, v_hi], what=self._gate_labels(),
                                     where="gate range", columns=["gate_min_v", "gate_max_v"])
        unit = "mixed" if (n_g and n_v) else ("S" if n_g else "V")
        name = "parameters" if unit == "mixed" else ("conductance" if n_g else "gate_voltage")
        self._spec = ParameterSpec(name, unit, np.r_[g_lo, v_lo], np.r_[g_hi, v_hi],
                                   self._quantizer if not n_v else None)
        self.reads_all = wiring.reads_every_node(network)
        self.capabilities = self.capabilities_for(self.reads_all)
        self._row_of_node = {n: k for k, n in enumerate(wiring.read_nodes)}
        self._out_rows = [self._row_of_node[n] for n in network.outputs]
        self._taps = np.zeros(n_g, np.int64)
        self._device_taps = np.zeros(0, np.int64)
        self._g = np.zeros(n_g)
        self._gates = np.zeros(n_v)
        self._pots_dirty = True
        self._model: NonlinearResistorNetwork | None = None
        self._nominal = NonlinearResistorNetwork(network, edges, **self.solver_options)
        self._last_free: tuple[np.ndarray, np.ndarray] | None = None
        self._last_free_ac: tuple[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None
        self.acquisitions = 0
        self.acquired_time_s = 0.0
        #: the last acquisition's waveforms (for a scope view): rate, AO (signals, then gates) and AI samples
        self.last_waveforms: dict | None = None
        init = np.r_[np.sqrt(g_lo * g_hi), 0.5 * (v_lo + v_hi)] if parameters is None else parameters
        self.set_parameters(init)

    @staticmethod
    def capabilities_for(reads_every_node: bool) -> frozenset[str]:
        """What the bench chip can do with a given wiring (edge drops -- FP -- need every node read)."""
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, NETWORK_MODEL, AC_TONES, REFERENCE_GRADIENT}
        return frozenset(caps | ({EDGE_DROPS} if reads_every_node else set()))

    # -------------------------------------------------------- retrying
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return call_with_retries(what, fn, args, kwargs, retries=self.settings.retries,
                                 wait_s=self.settings.retry_wait_s, fault_log=self.fault_log, on_fault=self.on_fault)

    # ------------------------------------------------------- parameters
    def parameter_blocks(self) -> list[dict]:
        """Name, unit, ``[start, stop)`` and edge indices of each parameter block."""
        n_g = len(self._lin)
        blocks = []
        if n_g:
            blocks.append({"name": "conductance", "kind": "linear", "unit": "S", "start": 0, "stop": n_g,
                           "edges": self._lin.tolist(), "channels": [int(c) for c in self._channels]})
        if len(self._tr):
            blocks.append({"name": "gate_voltage", "kind": "transistor", "unit": "V", "start": n_g,
                           "stop": n_g + len(self._tr), "edges": self._tr.tolist(),
                           "channels": list(self.wiring.gate_ao)})
        return blocks

    @property
    def parameter_edges(self) -> np.ndarray:
        """Edge index of every parameter."""
        return np.r_[self._lin, self._tr].astype(np.int64)

    def edge_current_slope(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``d i_e / d theta_p`` at measured edge drops (B, n_edges): the drop for a pot, the nominal transistor
        characteristic ``di/dV_g`` for a gate."""
        return self.network_model().current_parameter_derivative(np.asarray(edge_drop_v, float))

    def _gate_labels(self) -> list[str]:
        e = self.network.edges
        return [f"gate of edge {int(k)} ({int(e[k, 0])}-{int(e[k, 1])})" for k in self._tr]

    def parameter_labels(self) -> list[str]:
        """``g 0-6`` per linear edge (its nodes), ``Vg 3-4`` per transistor edge."""
        e = self.network.edges
        return ([f"g {int(e[k, 0])}-{int(e[k, 1])}" for k in self._lin]
                + [f"Vg {int(e[k, 0])}-{int(e[k, 1])}" for k in self._tr])

    def get_parameters(self) -> np.ndarray:
        return np.r_[self._g, self._gates]

    def get_taps(self) -> np.ndarray:
        """Tap of every linear edge's pot (as last set)."""
        return self._taps.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        n_g, size = len(self._lin), self._spec.size
        if values.shape != (size,):
            raise ValueError(f"expected {size} parameters ({n_g} conductances, {len(self._tr)} gate voltages), "
                             f"got shape {values.shape}")
        labels = self.parameter_labels()
        bad = ~np.isfinite(values) | np.r_[~(values[:n_g] > 0), np.zeros(size - n_g, bool)]
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            what = "conductances must be finite and > 0" if k < n_g else "gate voltages must be finite"
            raise ValueError(f"set_parameters: {labels[k]} is {float(values[k])!r}; {what} (allowed range "
                             f"[{self._spec.lower[k]:.6g}, {self._spec.upper[k]:.6g}] {'S' if k < n_g else 'V'} "
                             f"after clipping); nothing was written")
        if n_g:
            self._write_taps(np.clip(self._quantizer.to_taps(values[:n_g]), self._tap_lo, self._tap_hi))
        if len(self._tr):
            self._write_gates(np.clip(values[n_g:], self._spec.lower[n_g:], self._spec.upper[n_g:]))
        return self.get_parameters()

    def step_parameters(self, direction: np.ndarray) -> np.ndarray:
        """One pot tap per conductance, 1/256 of the range per gate voltage, in ``sign(direction)``."""
        sign = np.sign(np.asarray(direction, float))
        n_g = len(self._lin)
        current = self.get_parameters()
        if n_g:
            taps = np.clip(self._taps - sign[:n_g].astype(np.int64), self._tap_lo, self._tap_hi)
            current[:n_g] = self._quantizer.to_conductance(taps)
        current[n_g:] += sign[n_g:] * self._spec.span[n_g:] / 256.0
        return self.set_parameters(current)

    def _write_taps(self, taps: np.ndarray) -> None:
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

    def _write_gates(self, gates_v: np.ndarray) -> None:
        """Ramp every gate AO to its level (``SafeDAQ.set_dc``: checked against the gate limits, slew-limited)."""
        self.daq.check_ao_values(self.wiring.gate_ao, gates_v, what=self._gate_labels(), where="set_parameters",
                                 columns="level")
        self._call("set gate voltages", self.daq.set_dc,
                   {c: float(v) for c, v in zip(self.wiring.gate_ao, gates_v)})
        self._gates = np.asarray(gates_v, float).copy()
        self._parameters_changed()

    def _parameters_changed(self) -> None:
        self._model = None
        self._last_free = None
        self._last_free_ac = None

    def _ready_bench(self) -> None:
        """Before an acquisition: the pots hold the chip's taps and every gate AO its level (after a fault or a
        safe state they were brought to their safe state)."""
        if len(self._lin) and self._pots_dirty:
            self._write_taps(self._taps)
        if len(self._tr):
            held = self.daq.dc_levels_v()
            if any(float(held[c]) != v for c, v in zip(self.wiring.gate_ao, self._gates)):
                self._write_gates(self._gates)

    # ----------------------------------------------------------- model
    def network_model(self) -> NonlinearResistorNetwork:
        """The nominal network (datasheet parts, nominal pot calibration) at the parameters the chip believes."""
        if self._model is None:
            self._model = self._nominal.with_parameters(self.get_parameters())
        return self._model

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dtheta`` of the nominal model (adjoint at its operating points) at ``parameters``
        (default: the current ones)."""
        model = self.network_model() if parameters is None else \
            self._nominal.with_parameters(np.asarray(parameters, float))
        return model.exact_gradient(np.atleast_2d(np.asarray(inputs, float)), np.atleast_2d(np.asarray(targets, float)))

    # -------------------------------------------------------- measuring
    @property
    def rate_hz(self) -> float:
        """Sample clock of AO and AI (also of :meth:`measure_ac`), Hz."""
        return self.settings.rate_hz

    def ao_labels(self, output_role: str = "") -> list[str]:
        """What every signal AO channel drives, in ``wiring.ao_channels()`` order."""
        suffix = f" ({output_role})" if output_role else ""
        return [f"input {k}" for k in range(self.n_inputs)] + [f"output {k}{suffix}" for k in range(self.n_outputs)]

    def _check_levels(self, levels_v: np.ndarray, where: str, output_role: str = "",
                      columns: str | Sequence[str] = "example") -> None:
        """``levels_v`` (n_signal_ao, n) through the safety layer's value check, before anything is shaped or sent."""
        self.daq.check_ao_values(self.wiring.ao_channels(), levels_v, what=self.ao_labels(output_role), where=where,
                                 columns=columns)

    def _join_windows(self, ao: np.ndarray) -> tuple[np.ndarray, int]:
        """Windows ``(n_ao, B, n_s)`` -> one waveform ``(n_ao, B * (gap + n_s))`` with a ramp of ``gap`` samples
        before every window (from the previous window's last sample; before the first, its own first level),
        every step within the slew limit; returns the waveform and ``gap``."""
        n_ch, n_b, n_s = ao.shape
        if n_b < 2:
            return ao.reshape(n_ch, n_b * n_s), 0
        step = np.asarray(self.daq.max_step_v(self.wiring.ao_channels(), self.rate_hz), float)
        jumps = np.abs(ao[:, 1:, 0] - ao[:, :-1, -1]) / step[:, None]
        gap = max(0, int(np.ceil(float(jumps.max()) * (1 - 1e-12))) - 1)
        if gap == 0:
            return ao.reshape(n_ch, n_b * n_s), 0
        prev = np.concatenate([ao[:, :1, 0], ao[:, :-1, -1]], axis=1)                    # (n_ch, B)
        frac = np.arange(1, gap + 1) / (gap + 1)
        ramps = prev[:, :, None] + (ao[:, :, 0] - prev)[:, :, None] * frac[None, None, :]
        return np.concatenate([ramps, ao], axis=2).reshape(n_ch, n_b * (gap + n_s)), gap

    def _acquire_windows(self, ao: np.ndarray, switches_closed: bool, settle_samples: int,
                         extra: dict | None = None) -> tuple[np.ndarray, float]:
        """One acquisition of B windows ``ao`` (n_signal_ao, B, n_s); returns the AI windows (B, n_read, n_s) and
        the acquisition's duration (gaps included)."""
        n_ch, n_b, n_s = ao.shape
        wave, gap = self._join_windows(ao)
        self._ready_bench()
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
        ai = np.asarray(acq.ai_v, float)
        if ai.shape != (len(self.wiring.node_ai), n):
            raise PortErrorMismatch(f"DAQ returned {ai.shape} samples, expected {(len(self.wiring.node_ai), n)}")
        gates = np.repeat(self._gates[:, None], n, axis=1)
        self.last_waveforms = {"rate_hz": s.rate_hz, "ao_channels": list(self.wiring.all_ao_channels()),
                               "ao_v": np.vstack([wave, gates]), "ai_channels": list(self.wiring.node_ai), "ai_v": ai,
                               "ai_labels": [f"{ch} (node {node})" for ch, node in zip(self.wiring.node_ai,
                                                                                      self.wiring.read_nodes)],
                               "output_ai_rows": list(self._out_rows),
                               "settle_samples": gap + settle_samples, "plateau_samples": gap + n_s,
                               **(extra or {})}
        self.acquisitions += 1
        self.acquired_time_s += acq.duration_s
        return ai.reshape(ai.shape[0], n_b, gap + n_s)[:, :, gap:].transpose(1, 0, 2), float(acq.duration_s)

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
        s = self.settings
        windows, duration = self._acquire_windows(np.repeat(levels[:, :, None], s.plateau_samples, axis=2),
                                                  out_ao is not None, s.settle_samples)
        node_v = windows[:, :, s.settle_samples:].mean(axis=2)                                  # (B, n_read)
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

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *,
                   settle_samples: int = 0, edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` plus ``tones`` in one DAQ acquisition per batch and demodulate what the AIs read.

        Every example is a window of ``settle_samples + plan.window_samples``
        samples (tones from phase 0 at its first sample), preceded by the gap
        ramp (see the module docstring).  Input AOs play DC + input tones; with
        an ``output_current`` tone the switches close and each output AO plays
        ``v_free(t) + I(t) * output_series_ohm`` (``v_free``: the free output's DC
        level and fundamentals at the input tones, from the last free acquisition
        of this batch or one made now), otherwise the switches stay open.  Outputs
        and, with ``edge_drops``, every edge drop are demodulated at ``plan.tones_hz``.
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
        signals, duration = self._acquire_windows(ao, injecting, settle, {"tones_hz": plan.tones_hz.tolist(),
                                                                         "window_samples": plan.window_samples})
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
            rows = [self._row_of_node[n] for n in range(self.network.n_nodes)]
            drops = edge_demodulated(demod(signals[:, rows, :]), self.network.edges)
        return ACMeasurement(output, plan, drops, duration, out_v)

    def _free_ac(self, x: np.ndarray, drive: Any, plan: FrequencyPlan, settle: int, in_freqs: np.ndarray,
                 key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Free output response (DC, in-phase, quadrature at the input tones) for this batch and these input tones."""
        if self._last_free_ac is None or self._last_free_ac[0] != key:
            tones = [Tone("input", i, float(f), drive.input_amplitude[:, i, k].copy())
                     for k, f in enumerate(drive.frequencies_hz) for i in range(self.n_inputs)
                     if np.any(drive.input_amplitude[:, i, k] != 0)]
            self.measure_ac(x, tones, plan, settle_samples=settle)
        return self._last_free_ac[1]

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Reseed a simulated DAQ's noise (no effect on real instruments)."""
        self.daq.reseed(seed)

    # ----------------------------------------------------------- safety
    def safe_state(self) -> None:
        """Open the output switches, ramp every AO (inputs, outputs, gates) to its safe level, pots to their safe
        taps; the next acquisition writes the chip's taps and gate levels again."""
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

    def close(self) -> None:
        self.safe_state()
        for port in (self.daq, self.pots):
            if port is None:
                continue
            try:
                port.close()
            except Exception as exc:
                self.fault_log.append(f"close {type(port).__name__}: {exc}")

    def snapshot(self) -> dict:
        s = self.settings
        return {
            "backend": self.backend,
            "chip": "nonlinear resistive network on instruments",
            "network": self.network.describe(),
            "edges": self.edges.describe(),
            "wiring": self.wiring.to_dict(),
            "acquisition": {"rate_hz": s.rate_hz, "settle_samples": s.settle_samples,
                            "average_samples": s.average_samples, "timeout_s": s.timeout_s,
                            "retries": s.retries, "retry_wait_s": s.retry_wait_s},
            "daq": self.daq.snapshot(),
            "pots": None if self.pots is None else self.pots.snapshot(),
            "parameter_blocks": [{k: v for k, v in b.items() if k != "edges"} for b in self.parameter_blocks()],
            "parameter": {"name": self._spec.name, "unit": self._spec.unit, "lower": self._spec.lower.tolist(),
                          "upper": self._spec.upper.tolist()},
            "capabilities": sorted(self.capabilities),
        }
