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

Retries, the safety layer's value checks (gate voltages included), DC and AC
measurements, pot writes and the safe state are
:class:`~labtrain.kinds.dac_bench.chip.DACBenchChip`'s, shared with the linear bench.

On a nonlinear network the current injection ``v_free(t) + I(t) R`` uses the free
output's DC level and its fundamentals at the input tones (from a free acquisition
of the same batch): exact for DC activation (what ``fp`` uses on this kind), an
approximation with input tones (the free output's harmonics are not replayed).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from labtrain.chip.base import ParameterSpec
from labtrain.instruments.ports import DAQ, PotArray
from labtrain.kinds.dac_bench.chip import AcquisitionSettings, DACBenchChip
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork
from labtrain.kinds.nonlinear.wiring import NonlinearWiring
from labtrain.physics.network import Network
from labtrain.physics.readouts import EdgeDrops

__all__ = ["NonlinearBenchChip"]


class NonlinearBenchChip(DACBenchChip):
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
        self._attach(network, wiring, daq, pots, settings, backend, on_fault)
        self.edges = edges
        self.solver_options = dict(solver_options or {})
        self._lin, self._tr = edges.indices("linear"), edges.indices("transistor")
        n_g, n_v = len(self._lin), len(self._tr)
        if n_g and pots is None:
            raise ValueError(f"the network has {n_g} linear edges: a pot array is needed")
        # ---- pots: the linear edges' conductances
        g_lo = g_hi = np.zeros(0)
        if n_g:
            quantizer, self._tap_lo, self._tap_hi = self._pot_window(self._lin)
            g_lo, g_hi = quantizer.to_conductance(self._tap_hi), quantizer.to_conductance(self._tap_lo)
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
        self._taps = np.zeros(n_g, np.int64)
        self._g = np.zeros(n_g)
        self._gates = np.zeros(n_v)
        self._model: NonlinearResistorNetwork | None = None
        self._nominal = NonlinearResistorNetwork(network, edges, **self.solver_options)
        init = np.r_[np.sqrt(g_lo * g_hi), 0.5 * (v_lo + v_hi)] if parameters is None else parameters
        self.set_parameters(init)

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

    def energy_parameter_slope(self, drops: EdgeDrops) -> np.ndarray:
        """Batch mean of ``dPhi_e/dtheta`` at measured drops (EP/CL): ``dv^2 / 2`` for a pot, the nominal
        transistor co-content's ``dPhi/dV_g`` for a gate."""
        return self.network_model().energy_parameter_derivative(drops.values).mean(axis=0)

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

    def _write_gates(self, gates_v: np.ndarray) -> None:
        """Ramp every gate AO to its level (``SafeDAQ.set_dc``: checked against the gate limits, slew-limited)."""
        self.daq.check_ao_values(self.wiring.gate_ao, gates_v, what=self._gate_labels(), where="set_parameters",
                                 columns="level")
        self._call("set gate voltages", self.daq.set_dc,
                   {c: float(v) for c, v in zip(self.wiring.gate_ao, gates_v)})
        self._gates = np.asarray(gates_v, float).copy()
        self._parameters_changed()

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
    def _acquire_plateaus(self, levels_v: np.ndarray, switches_closed: bool) -> tuple[np.ndarray, float]:
        """One plateau per example, the gap ramps between them (:meth:`_join_windows`)."""
        s = self.settings
        windows, duration = self._acquire_windows(np.repeat(levels_v[:, :, None], s.plateau_samples, axis=2),
                                                  switches_closed, s.settle_samples)
        return windows[:, :, s.settle_samples:].mean(axis=2), duration                      # (B, n_read)

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
        n = wave.shape[1]
        ai, acq = self._switched_write_read(wave, switches_closed)
        self._check_ai(ai, n)
        gates = np.repeat(self._gates[:, None], n, axis=1)
        self._keep_waveforms(self.wiring.all_ao_channels(), np.vstack([wave, gates]), ai, gap + settle_samples,
                             gap + n_s, extra)
        duration = self._count(acq)
        return ai.reshape(ai.shape[0], n_b, gap + n_s)[:, :, gap:].transpose(1, 0, 2), duration

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "nonlinear resistive network on instruments",
            "network": self.network.describe(),
            "edges": self.edges.describe(),
            "wiring": self.wiring.to_dict(),
            "acquisition": self.settings.describe(),
            "daq": self.daq.snapshot(),
            "pots": None if self.pots is None else self.pots.snapshot(),
            "parameter_blocks": [{k: v for k, v in b.items() if k != "edges"} for b in self.parameter_blocks()],
            "parameter": {"name": self._spec.name, "unit": self._spec.unit, "lower": self._spec.lower.tolist(),
                          "upper": self._spec.upper.tolist()},
            "capabilities": sorted(self.capabilities),
        }
