"""What the DAQ-and-pot benches' twins share: the switched output paths and the simulated pot array.

A bench circuit (:class:`~labtrain.kinds.resistor.twin.ResistorBenchCircuit`,
:class:`~labtrain.kinds.nonlinear.twin.NonlinearBenchCircuit`) builds, once, an
*augmented* :class:`~labtrain.physics.network.Network`: the chip's nodes plus
one node per output carrying that output's AO voltage, joined to the output by
a *switch edge* whose conductance is
``1 / max(output_series_ohm + switch_on_ohm, min_series_ohm)`` when the switch
is closed and ``switch_off_s`` (a real switch's leakage) when it is open.
:class:`SwitchedOutputs` holds that part; the kind solves the augmented network.
"""

from __future__ import annotations

import abc

from typing import Mapping

import numpy as np

from labtrain.kinds.dac_bench.wiring import DACWiring
from labtrain.physics.network import Network
from labtrain.simulators.pot_twin import SimulatedPotArray

__all__ = ["SwitchedOutputs", "default_pot_array"]


class SwitchedOutputs(abc.ABC):
    """The output switch paths of a bench circuit and its augmented network (a base of the bench circuits)."""

    network: Network
    wiring: DACWiring
    ao_channels: tuple[str, ...]

    def _init_switches(self, network: Network, wiring: DACWiring, switch_off_s: float, switch_on_ohm: float,
                       min_series_ohm: float, cache_size: int) -> None:
        """Check the switch settings; set them, the AI and DO channels and the augmented network."""
        for name, value in (("switch_off_s", switch_off_s), ("min_series_ohm", min_series_ohm)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not (np.isfinite(switch_on_ohm) and switch_on_ohm >= 0):
            raise ValueError(f"switch_on_ohm must be >= 0, got {switch_on_ohm!r}")
        self.network, self.wiring = network, wiring
        self.switch_off_s, self.switch_on_ohm = float(switch_off_s), float(switch_on_ohm)
        self.min_series_ohm = float(min_series_ohm)
        self.cache_size = int(cache_size)
        self.ai_channels = tuple(wiring.node_ai)
        self.do_lines = tuple(wiring.output_switch_do)
        self._pot_channels = np.asarray(wiring.pot_channels, dtype=np.int64)
        self._read = np.asarray(wiring.read_nodes, dtype=np.int64)
        n, outs = network.n_nodes, list(network.outputs)
        aux = n + np.arange(len(outs))
        self.augmented = Network(n + len(outs), np.vstack([network.edges, np.c_[outs, aux]]),
                                 list(network.inputs) + aux.tolist(), outs, network.grounds, 1e-300, np.inf,
                                 f"{network.name} + {len(outs)} output switch(es)")

    @property
    def closed_conductance_s(self) -> float:
        """Conductance of a closed switch path (switch + series resistor)."""
        return 1.0 / max(self.wiring.output_series_ohm + self.switch_on_ohm, self.min_series_ohm)

    def switch_conductance_s(self, do_states: Mapping[str, bool]) -> np.ndarray:
        """Conductance of each output's switch path (lines missing from ``do_states`` are open)."""
        closed = np.array([bool(do_states.get(line, False)) for line in self.do_lines])
        return np.where(closed, self.closed_conductance_s, self.switch_off_s)

    @abc.abstractmethod
    def node_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Node voltages (V) of the circuit for AO levels ``ao_v`` and the output switches ``do_states``."""

    def output_current_a(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Current flowing from each output's AO into its node, shape (n_outputs, n_samples), amperes."""
        ao_v = np.asarray(ao_v, float)
        v_out = self.node_voltages(ao_v, do_states)[list(self.network.outputs)]
        v_src = ao_v[len(self.wiring.input_ao):len(self.wiring.ao_channels())]
        return self.switch_conductance_s(do_states)[:, None] * (v_src - v_out)

    def _switch_snapshot(self) -> dict:
        return {"switch_off_s": self.switch_off_s, "switch_on_ohm": self.switch_on_ohm,
                "min_series_ohm": self.min_series_ohm}


def default_pot_array(network: Network, wiring: DACWiring, seed: int,
                      pot_options: dict | None = None) -> SimulatedPotArray:
    """The twin's pot array: unless ``pot_options`` says otherwise, nominal 1024-tap parts with a 50-ohm wiper
    whose nominal range spans the network's conductance bounds (``r_end_ohm + r_wiper_ohm = 1 / max(g_max_s)``,
    ``r_total_ohm = 1 / min(g_min_s) - 1 / max(g_max_s)``), 20 % tolerance seeded by ``seed``, as many
    channels as the wiring uses."""
    r_low = 1.0 / float(np.max(network.g_max_s))
    r_high = 1.0 / float(np.min(network.g_min_s))
    pot_kw = {"n_taps": 1024, "r_wiper_ohm": min(50.0, r_low), "tolerance": 0.2, "seed": seed}
    pot_kw.update(pot_options or {})
    pot_kw.setdefault("r_end_ohm", max(0.0, r_low - pot_kw["r_wiper_ohm"]))
    pot_kw.setdefault("r_total_ohm", max(r_high - r_low, 1e-9))
    pot_kw.setdefault("n_channels", max(wiring.pot_channels) + 1)
    return SimulatedPotArray(**pot_kw)
