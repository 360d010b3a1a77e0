"""Physics of a nonlinear resistive chip on the bench: the circuit behind the DAQ twin.

:class:`NonlinearBenchCircuit` maps the DAQ's AO levels and switch states to the
voltages at its AI channels, following :mod:`labtrain.kinds.nonlinear.wiring`::

    input AO ─────────────────────────────── input node           (ideal source)
    output AO ──[switch]──[output_series_ohm]── output node
    gate AO ──────────────────────────────── gate of a transistor edge
    AI ───────────────────────────────────── read node
    pot channel ═════════════════════════════ linear edge            (true, per-part resistance)
    diodes ────────────────────────────────── soldered parts         (true, per-part I-V)

It builds, once, an *augmented* network: the chip's nodes plus one node per
output carrying that output's AO voltage, joined to the output by a *switch
edge* (a linear edge of conductance ``1 / max(output_series_ohm + switch_on_ohm,
min_series_ohm)`` when the switch is closed, ``switch_off_s`` when open).  Input
AOs and output AOs are the voltage sources of a
:class:`~labtrain.kinds.nonlinear.model.NonlinearResistorNetwork` on it; the
linear edges take the pots' *true* conductances at the taps they hold, the
transistor edges the gate AOs' levels, the diodes their *true* parts.

The circuit is memoryless (quasi-static): every sample is a DC steady state of
the network at that sample's AO levels, solved by the batched Newton solver.
Identical samples (the plateaus of a DC acquisition) are solved once; the
samples of one gate setting are solved as one batch (a new gate setting --
a ramp of a gate AO -- is a new batch); each batch starts from the solution
of the sample nearest in AO space solved last (or 0 V).  Node capacitance is
the DAQ twin's first-order ``rc_time_s`` response on every AI node.

Per-part variations unknown to the chip's model (:func:`vary_diodes`): every
Shockley diode's ideality factor (hence its forward voltage at any current)
spread by ``diode_tolerance``, and the bench temperature ``temperature_k``
(thermal voltage ``k T / q`` and the saturation current's temperature law,
SPICE's ``XTI = 3``, ``EG = 1.11 eV``).  The chip's model keeps the nominal
parts at the nominal temperature (300 K: the model's thermal voltage).

:func:`build_nonlinear_twin` wires a network, a pot-array twin, this circuit and
a :class:`~labtrain.simulators.daq_twin.SimulatedDAQ` together.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from labtrain.kinds.dac_bench.twin import SwitchedOutputs, default_pot_array
from labtrain.kinds.nonlinear.model import THERMAL_VOLTAGE_V, NonlinearEdges, NonlinearResistorNetwork
from labtrain.kinds.nonlinear.wiring import NonlinearWiring, default_nonlinear_wiring
from labtrain.physics.network import Network
from labtrain.simulators.daq_twin import SimulatedDAQ
from labtrain.simulators.pot_twin import SimulatedPotArray

__all__ = ["NonlinearBenchCircuit", "NonlinearTwin", "build_nonlinear_twin", "vary_diodes", "BOLTZMANN_V_PER_K",
           "NOMINAL_TEMPERATURE_K"]

#: Boltzmann constant over the elementary charge (V/K)
BOLTZMANN_V_PER_K = 8.617333262e-5
#: temperature of the model's thermal voltage (K)
NOMINAL_TEMPERATURE_K = THERMAL_VOLTAGE_V / BOLTZMANN_V_PER_K
#: silicon band gap (eV) and saturation-current temperature exponent of the SPICE diode model
SILICON_GAP_EV = 1.11
XTI = 3.0
#: gate range of the twin's true transistors: the AO level is applied as it is
_GATE_SPAN_V = 1e3


def vary_diodes(edges: NonlinearEdges, tolerance: float = 0.0, temperature_k: float = 0.0,
                seed: int = 0) -> NonlinearEdges:
    """The true parts of a bench built from ``edges``: per-part diode spread and the bench temperature.

    Parameters
    ----------
    edges : NonlinearEdges
        Nominal parts (what the chip's model assumes).
    tolerance : float
        Relative standard deviation of every diode part's forward voltage at any current: a Shockley
        diode's ideality factor ``n`` is drawn from ``n N(1, tolerance)`` (clipped to ``[0.5, 1.5] n``);
        an ideal (piecewise-linear) diode's turn-on voltage likewise.  Drawn once from ``seed``.
    temperature_k : float
        Bench temperature (K); 0: the model's (300 K).  Shockley diodes get the thermal voltage
        ``k T / q`` and ``I_s(T) = I_s (T/T0)^(XTI/n) exp((EG / (n k T)) (T/T0 - 1))`` (SPICE, ``XTI = 3``,
        ``EG = 1.11 eV``): about -2 mV/K of forward voltage.  Ideal diodes and transistors do not change.

    Returns
    -------
    NonlinearEdges
        The same kinds with the true parameters (``edges`` itself when nothing varies).
    """
    if not (np.isfinite(tolerance) and 0 <= tolerance < 1):
        raise ValueError(f"diode tolerance must be in [0, 1), got {tolerance!r}")
    if not (np.isfinite(temperature_k) and temperature_k >= 0):
        raise ValueError(f"temperature_k must be >= 0 (0: the model's {NOMINAL_TEMPERATURE_K:.1f} K), "
                         f"got {temperature_k!r}")
    if tolerance == 0 and temperature_k in (0, NOMINAL_TEMPERATURE_K):
        return edges
    params = {name: values.copy() for name, values in edges.params.items()}
    kinds = np.array(edges.kinds)
    factor = np.clip(np.random.default_rng([int(seed), 0xD10DE]).normal(1.0, tolerance, edges.n_edges), 0.5, 1.5)
    dio, idd = kinds == "diode", kinds == "ideal_diode"
    params["ideality"] = np.where(dio, params["ideality"] * factor, params["ideality"])
    params["on_v"] = np.where(idd, params["on_v"] * factor, params["on_v"])
    if temperature_k and temperature_k != NOMINAL_TEMPERATURE_K:
        ratio = temperature_k / NOMINAL_TEMPERATURE_K
        n = params["ideality"]
        vt = BOLTZMANN_V_PER_K * temperature_k
        scale = ratio ** (XTI / n) * np.exp(SILICON_GAP_EV / (n * vt) * (ratio - 1.0))
        params["saturation_current_a"] = np.where(dio, params["saturation_current_a"] * scale,
                                                  params["saturation_current_a"])
        params["thermal_voltage_v"] = np.where(dio, vt, params["thermal_voltage_v"])
    return NonlinearEdges.from_kinds(edges.kinds, **params)


class NonlinearBenchCircuit(SwitchedOutputs):
    """AO levels + switch states -> AI voltages of a nonlinear resistive chip on the bench.

    Parameters
    ----------
    network : Network
        The chip.
    edges : NonlinearEdges
        Its *true* parts (:func:`vary_diodes` of the nominal ones for a bench with spread).
    wiring : NonlinearWiring
        Its channel assignment (checked against ``network`` and ``edges``).
    pots : SimulatedPotArray or None
        The pot array whose *true* conductances are the linear edges (any object with
        ``held_taps`` and ``true_conductance_s(taps)``); None when there is no linear edge.
    switch_off_s : float
        Conductance of an open output switch (leakage), siemens.
    switch_on_ohm : float
        On-resistance of a closed switch, in series with ``output_series_ohm``.
    min_series_ohm : float
        Floor of the closed-switch path (a 0-ohm path would be a singular conductance).
    cache_size : int
        Number of (taps, switch states, gate levels) models kept.
    solver_options : dict, optional
        Keywords of :class:`~labtrain.kinds.nonlinear.model.NonlinearResistorNetwork`
        (``tol_a``, ``rtol``, ``tol_v``, ``max_iter``).
    """

    def __init__(self, network: Network, edges: NonlinearEdges, wiring: NonlinearWiring,
                 pots: SimulatedPotArray | None, switch_off_s: float = 1e-12, switch_on_ohm: float = 0.0,
                 min_series_ohm: float = 1e-3, cache_size: int = 16, solver_options: dict | None = None) -> None:
        wiring.check(network, edges)
        if wiring.pot_channels and (pots is None or max(wiring.pot_channels) >= pots.n_channels):
            have = 0 if pots is None else pots.n_channels
            raise ValueError(f"wiring uses pot channel {max(wiring.pot_channels)}, the array has {have} channels")
        self._init_switches(network, wiring, switch_off_s, switch_on_ohm, min_series_ohm, cache_size)
        self.edges, self.pots = edges, pots
        self.solver_options = dict(solver_options or {})
        self.ao_channels = wiring.all_ao_channels()
        self._n_signal = len(wiring.ao_channels())
        self._n_gates = len(wiring.gate_ao)
        outs = list(network.outputs)
        params = {name: np.r_[values, np.full(len(outs), np.nan)] for name, values in edges.params.items()}
        tr = np.array(edges.kinds + ("linear",) * len(outs)) == "transistor"
        params["gate_min_v"] = np.where(tr, -_GATE_SPAN_V, np.nan)
        params["gate_max_v"] = np.where(tr, _GATE_SPAN_V, np.nan)
        self.true_edges = NonlinearEdges.from_kinds(edges.kinds + ("linear",) * len(outs),
                                                    **{k: v for k, v in params.items() if not np.all(np.isnan(v))})
        self._models: OrderedDict[tuple, NonlinearResistorNetwork] = OrderedDict()
        self._last_solution: tuple[np.ndarray, np.ndarray] | None = None  # (AO levels, node voltages) of the last sample
        self.n_solves = 0
        self.n_samples_solved = 0

    # -------------------------------------------------------------- physics
    def linear_conductance_s(self) -> np.ndarray:
        """True conductance of every linear edge (increasing edge order) at the taps the pots hold now."""
        if self.pots is None or not len(self._pot_channels):
            return np.zeros(0)
        return np.asarray(self.pots.true_conductance_s(self.pots.held_taps), float)[self._pot_channels]

    def _model(self, do_states: Mapping[str, bool], gate_v: np.ndarray) -> NonlinearResistorNetwork:
        taps = np.zeros(0, np.int64) if self.pots is None else np.asarray(self.pots.held_taps)
        closed = tuple(bool(do_states.get(line, False)) for line in self.do_lines)
        key = (taps.tobytes(), closed, np.asarray(gate_v, float).tobytes())
        hit = self._models.get(key)
        if hit is not None:
            self._models.move_to_end(key)
            return hit
        theta = np.r_[self.linear_conductance_s(), self.switch_conductance_s(do_states), gate_v]
        model = NonlinearResistorNetwork(self.augmented, self.true_edges, theta, **self.solver_options)
        self._models[key] = model
        while len(self._models) > self.cache_size:
            self._models.popitem(last=False)
        return model

    def node_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Voltages of every chip node, shape (n_nodes, n_samples), for AO levels (n_ao, n_samples).

        AO rows in ``ao_channels`` order: inputs, outputs, gates.
        """
        ao_v = np.asarray(ao_v, float)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(self.ao_channels):
            raise ValueError(f"ao_v must have shape ({len(self.ao_channels)}, n_samples), got {ao_v.shape}")
        n_nodes = self.network.n_nodes
        out = np.empty((n_nodes, ao_v.shape[1]))
        if ao_v.shape[1] == 0:
            return out
        levels, where = np.unique(ao_v.T, axis=0, return_inverse=True)          # distinct samples
        where = where.ravel()
        solved = np.empty((len(levels), self.augmented.n_nodes))
        gates, group = np.unique(levels[:, self._n_signal:], axis=0, return_inverse=True)
        group = group.ravel()
        for k in range(len(gates)):
            rows = np.flatnonzero(group == k)
            sources = levels[rows, :self._n_signal]
            model = self._model(do_states, gates[k])
            state = model.steady_state(sources, start_v=self._warm_start(levels[rows]))
            solved[rows] = state.node_v
            self.n_solves += 1
            self.n_samples_solved += len(rows)
        last = where[-1]
        self._last_solution = (levels[last].copy(), solved[last].copy())
        out[:] = solved[where, :n_nodes].T
        return out

    def _warm_start(self, levels: np.ndarray) -> np.ndarray | None:
        """Start of a batch's Newton solves: the last sample solved (its AO levels are usually nearest), or 0 V."""
        if self._last_solution is None or self._last_solution[0].shape != levels.shape[1:]:
            return None
        return self._last_solution[1]

    def ai_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Voltages of the read nodes, shape (n_read, n_samples), for AO levels (n_ao, n_samples)."""
        return self.node_voltages(ao_v, do_states)[self._read]

    def snapshot(self) -> dict:
        return {"kind": type(self).__name__, "network": self.network.describe(), "wiring": self.wiring.to_dict(),
                "true_edges": self.edges.describe(), **self._switch_snapshot()}


@dataclass
class NonlinearTwin:
    """A simulated bench for a nonlinear chip: DAQ, pot array (None without linear edges), circuit, wiring."""

    daq: SimulatedDAQ
    pots: SimulatedPotArray | None
    circuit: NonlinearBenchCircuit
    wiring: NonlinearWiring


def build_nonlinear_twin(network: Network, edges: NonlinearEdges, wiring: NonlinearWiring | None = None, *,
                         seed: int = 0, diode_tolerance: float = 0.0, temperature_k: float = 0.0,
                         pot_options: dict | None = None, daq_options: dict | None = None,
                         circuit_options: dict | None = None) -> NonlinearTwin:
    """Wire a pot-array twin, a :class:`NonlinearBenchCircuit` and a :class:`SimulatedDAQ` for ``network``.

    ``edges`` are the nominal parts; the circuit gets :func:`vary_diodes` of them
    (``diode_tolerance``, ``temperature_k``, seeded by ``seed``).  ``wiring``
    defaults to :func:`~labtrain.kinds.nonlinear.wiring.default_nonlinear_wiring`
    (every node read).  Unless ``pot_options`` says otherwise the pots are nominal
    1024-tap parts with a 50-ohm wiper spanning the network's conductance bounds,
    20 % tolerance (as the linear twin's).  ``seed`` seeds the pot tolerances,
    (``seed + 1``) the DAQ noise.
    """
    wiring = default_nonlinear_wiring(network, edges) if wiring is None else wiring
    pots = None
    if wiring.pot_channels:
        pots = default_pot_array(network, wiring, seed, pot_options)
    true_edges = vary_diodes(edges, diode_tolerance, temperature_k, seed)
    circuit = NonlinearBenchCircuit(network, true_edges, wiring, pots, **(circuit_options or {}))
    daq_kw = {"seed": seed + 1}
    daq_kw.update(daq_options or {})
    daq = SimulatedDAQ(circuit, **daq_kw)
    if pots is not None:
        pots.clock = lambda: daq.simulated_time_s
    return NonlinearTwin(daq, pots, circuit, wiring)
