"""How a resistor-network chip is wired to the bench: which node on which channel.

::

      DAQ AO  input_ao[i] ───────────────────────────── input node  network.inputs[i]
      DAQ AO  output_ao[j] ──[switch output_switch_do[j]]──[R = output_series_ohm]── output node network.outputs[j]
      DAQ AI  node_ai[k]   ───────────────────────────── node read_nodes[k]
      pot channel pot_channels[e]  ═════════════════════ edge e (rheostat)
      ground nodes: to the DAQ's AO/AI ground

Closing an output's switch with its AO at ``V`` clamps the node (through the
series resistance; a small resistance gives a voltage clamp) or, with a large
series resistance, injects ``(V - v_node) / R`` -- the current nudge of EP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from labtrain.kinds.dac_bench.wiring import READ_MODES, DACWiring, WiringError, default_channels
from labtrain.physics.network import Network

__all__ = ["Wiring", "WiringError", "default_wiring", "READ_MODES"]


@dataclass(frozen=True)
class Wiring(DACWiring):
    """Channel assignment of one resistor-network chip: the keys of
    :class:`~labtrain.kinds.dac_bench.wiring.DACWiring`, ``pot_channels`` one pot per edge (edge order)."""

    def check(self, network: Network) -> None:
        """Raise :class:`WiringError` unless this wiring fits ``network``."""
        self._check_channels(network, network.n_edges,
                             f"pot_channels lists {len(self.pot_channels)} channels for {network.n_edges} edges")


def default_wiring(network: Network, device: str = "Dev1", read: str = "all", output_series_ohm: float = 10.0,
                   read_nodes: Sequence[int] | None = None) -> Wiring:
    """Channels in order: inputs on ao0.., outputs on the next AO channels, nodes on ai0.., edge e on pot e."""
    return Wiring(**default_channels(network, device, read, output_series_ohm, read_nodes, network.n_edges))
