"""Physics of a resistor-network chip on the bench: the circuit behind the DAQ twin.

:class:`ResistorBenchCircuit` maps the DAQ's AO levels and switch states to the
voltages at its AI channels, following :mod:`labtrain.kinds.resistor.wiring`::

    input AO ─────────────────────────────── input node       (ideal source)
    output AO ──[switch]──[output_series_ohm]── output node
    AI ───────────────────────────────────── read node
    pot channel ═════════════════════════════ edge            (true, per-part resistance)

It builds, once, an *augmented* :class:`~labtrain.physics.network.Network`: the chip's
nodes plus one node per output carrying that output's AO voltage, joined to
the output by a *switch edge* whose conductance is
``1 / max(output_series_ohm + switch_on_ohm, min_series_ohm)`` when the switch
is closed and ``switch_off_s`` (a real switch's leakage) when it is open.
Input AOs and output AOs are the voltage-source inputs of a
:class:`~labtrain.kinds.resistor.model.LinearResistorNetwork` on that
network; edge conductances are the pots' *true* conductances at the taps they
hold.  The terminal response restricted to the read nodes is the transfer
matrix ``T`` (n_read x n_ao) and ``ai = T @ ao`` for all samples at once.
``T`` is cached per (taps, switch states), so a new factorisation happens only
when the pots or the switches change (the last few settings are kept, so the
free and nudged phases of a training step alternate without refactoring).

:func:`build_resistor_twin` wires a network, a pot-array twin, this circuit and
a :class:`~labtrain.simulators.daq_twin.SimulatedDAQ` together.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from labtrain.kinds.dac_bench.twin import SwitchedOutputs, default_pot_array
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.resistor.wiring import Wiring, default_wiring
from labtrain.physics.network import Network
from labtrain.simulators.daq_twin import SimulatedDAQ
from labtrain.simulators.pot_twin import SimulatedPotArray

__all__ = ["ResistorBenchCircuit", "ResistorTwin", "build_resistor_twin"]


class ResistorBenchCircuit(SwitchedOutputs):
    """AO levels + switch states -> AI voltages of a resistor-network chip with pot-array edges.

    Parameters
    ----------
    network : Network
        The chip.
    wiring : Wiring
        Its channel assignment (checked against ``network``).
    pots : SimulatedPotArray
        The pot array whose *true* conductances are the edges (any object with
        ``held_taps`` and ``true_conductance_s(taps)`` works).
    switch_off_s : float
        Conductance of an open output switch (leakage), siemens.
    switch_on_ohm : float
        On-resistance of a closed switch, in series with ``output_series_ohm``.
    min_series_ohm : float
        Floor of the closed-switch path (a 0-ohm path would be a singular
        conductance); 1 mOhm clamps an output to within ~1 uV at mA currents.
    cache_size : int
        Number of (taps, switch states) transfer matrices kept.
    """

    def __init__(self, network: Network, wiring: Wiring, pots: SimulatedPotArray, switch_off_s: float = 1e-12,
                 switch_on_ohm: float = 0.0, min_series_ohm: float = 1e-3, cache_size: int = 8) -> None:
        wiring.check(network)
        if max(wiring.pot_channels) >= pots.n_channels:
            raise ValueError(f"wiring uses pot channel {max(wiring.pot_channels)}, the array has "
                             f"{pots.n_channels} channels")
        self._init_switches(network, wiring, switch_off_s, switch_on_ohm, min_series_ohm, cache_size)
        self.pots = pots
        self.ao_channels = wiring.ao_channels()
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.n_factorisations = 0

    # -------------------------------------------------------------- physics
    def edge_conductance_s(self) -> np.ndarray:
        """True conductance of every chip edge at the taps the pots hold now."""
        return np.asarray(self.pots.true_conductance_s(self.pots.held_taps), float)[self._pot_channels]

    def node_transfer(self, do_states: Mapping[str, bool]) -> np.ndarray:
        """Node voltages per volt on each AO channel, shape (n_nodes, n_ao), AO in ``ao_channels`` order."""
        taps = np.asarray(self.pots.held_taps)
        closed = tuple(bool(do_states.get(line, False)) for line in self.do_lines)
        key = (taps.tobytes(), closed)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        g = np.r_[self.edge_conductance_s(), self.switch_conductance_s(do_states)]
        model = LinearResistorNetwork(self.augmented, g, input_mode="voltage")
        self.n_factorisations += 1
        n_ao = len(self.ao_channels)
        transfer = np.ascontiguousarray(model.response[:self.network.n_nodes, :n_ao])
        transfer.setflags(write=False)
        self._cache[key] = transfer
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return transfer

    def transfer(self, do_states: Mapping[str, bool]) -> np.ndarray:
        """AI voltages per volt on each AO channel, shape (n_read, n_ao): rows in ``wiring.node_ai`` order."""
        return self.node_transfer(do_states)[self._read]

    def ai_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Voltages of the read nodes, shape (n_read, n_samples), for AO levels (n_ao, n_samples)."""
        ao_v = np.asarray(ao_v, float)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(self.ao_channels):
            raise ValueError(f"ao_v must have shape ({len(self.ao_channels)}, n_samples), got {ao_v.shape}")
        return self.transfer(do_states) @ ao_v

    def node_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Voltages of every chip node, shape (n_nodes, n_samples)."""
        return self.node_transfer(do_states) @ np.asarray(ao_v, float)

    def snapshot(self) -> dict:
        return {"kind": type(self).__name__, "network": self.network.describe(), "wiring": self.wiring.to_dict(),
                **self._switch_snapshot()}


@dataclass
class ResistorTwin:
    """A simulated bench for a resistor-network chip: DAQ, pot array, the circuit joining them, the wiring."""

    daq: SimulatedDAQ
    pots: SimulatedPotArray
    circuit: ResistorBenchCircuit
    wiring: Wiring


def build_resistor_twin(network: Network, wiring: Wiring | None = None, *, seed: int = 0,
                        pot_options: dict | None = None, daq_options: dict | None = None,
                        circuit_options: dict | None = None) -> ResistorTwin:
    """Wire a pot-array twin, a :class:`ResistorBenchCircuit` and a :class:`SimulatedDAQ` for ``network``.

    ``wiring`` defaults to :func:`~labtrain.kinds.resistor.wiring.default_wiring` (every node
    read).  Unless ``pot_options`` says otherwise the pots are nominal
    1024-tap parts with a 50-ohm wiper whose nominal range spans the network's
    conductance bounds (``r_end_ohm + r_wiper_ohm = 1 / max(g_max_s)``,
    ``r_total_ohm = 1 / min(g_min_s) - 1 / max(g_max_s)``), 20 % tolerance.
    The pot history is stamped with the DAQ's simulated clock.  ``seed`` seeds
    the pot tolerances and (``seed + 1``) the DAQ noise.
    """
    wiring = default_wiring(network) if wiring is None else wiring
    pots = default_pot_array(network, wiring, seed, pot_options)
    circuit = ResistorBenchCircuit(network, wiring, pots, **(circuit_options or {}))
    daq_kw = {"seed": seed + 1}
    daq_kw.update(daq_options or {})
    daq = SimulatedDAQ(circuit, **daq_kw)
    pots.clock = lambda: daq.simulated_time_s
    return ResistorTwin(daq, pots, circuit, wiring)
