"""How a nonlinear resistive chip is wired to the bench: which terminal, node and element on which channel.

::

      DAQ AO  input_ao[i] ──────────────────────────────────── input node   network.inputs[i]
      DAQ AO  output_ao[j] ──[switch output_switch_do[j]]──[R = output_series_ohm]── output node network.outputs[j]
      DAQ AI  node_ai[k]   ──────────────────────────────────── node read_nodes[k]
      pot channel pot_channels[p] ═════════════════════════════ p-th linear edge (rheostat, a trainable conductance)
      DAQ AO  gate_ao[q]   ──────────────────────────────────── gate of the q-th transistor edge (trainable gate voltage)
      fixed diodes / diode pairs: soldered in place, no channel
      ground nodes: to the DAQ's AO/AI ground

The same keys as the linear bench (:mod:`labtrain.kinds.resistor.wiring`), with two
differences: ``pot_channels`` lists one pot per *linear* edge (in increasing edge order,
the order of the chip's conductance parameters), and ``gate_ao`` lists one AO channel per
transistor edge (in increasing edge order, the order of its gate-voltage parameters).  A
gate AO holds a DC level between acquisitions; it is not part of the signal waveforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from labtrain.kinds.dac_bench.wiring import DACWiring, WiringError, default_channels
from labtrain.kinds.nonlinear.model import NonlinearEdges
from labtrain.physics.network import Network

__all__ = ["NonlinearWiring", "default_nonlinear_wiring", "WiringError"]


@dataclass(frozen=True)
class NonlinearWiring(DACWiring):
    """Channel assignment of one nonlinear resistive chip: the keys of
    :class:`~labtrain.kinds.dac_bench.wiring.DACWiring` (``pot_channels``: one pot per *linear* edge,
    in increasing edge order), and

    Attributes
    ----------
    gate_ao : tuple of str
        AO channel holding each transistor edge's gate voltage, in increasing edge order.
    """

    gate_ao: tuple[str, ...]

    def check(self, network: Network, edges: NonlinearEdges) -> None:
        """Raise :class:`WiringError` (one line) unless this wiring fits ``network`` and its ``edges``."""
        n_lin, n_tr = len(edges.indices("linear")), len(edges.indices("transistor"))
        self._check_channels(
            network, n_lin, f"pot_channels lists {len(self.pot_channels)} channels for {n_lin} linear edges "
                            "(one pot per trainable conductance; diodes need none)",
            [(len(self.gate_ao) != n_tr, f"gate_ao lists {len(self.gate_ao)} channels for {n_tr} transistor edges")])

    def all_ao_channels(self) -> tuple[str, ...]:
        """Every AO channel the chip uses: inputs, outputs, then gates."""
        return self.ao_channels() + tuple(self.gate_ao)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "gate_ao": list(self.gate_ao)}


def default_nonlinear_wiring(network: Network, edges: NonlinearEdges, device: str = "Dev1", read: str = "all",
                             output_series_ohm: float = 1e6,
                             read_nodes: Sequence[int] | None = None) -> NonlinearWiring:
    """Channels in order: inputs on ao0.., outputs on the next AO channels, gates on the AO channels after those,
    read nodes on ai0.., linear edge p on pot channel p, output switches on port0/line0..."""
    n_lin, n_tr = len(edges.indices("linear")), len(edges.indices("transistor"))
    base = default_channels(network, device, read, output_series_ohm, read_nodes, n_lin)
    n_sig = len(base["input_ao"]) + len(base["output_ao"])
    return NonlinearWiring(**base, gate_ao=tuple(f"{device}/ao{n_sig + q}" for q in range(n_tr)))
