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

from labtrain.kinds.nonlinear.model import NonlinearEdges
from labtrain.kinds.resistor.wiring import READ_MODES, WiringError
from labtrain.physics.network import Network

__all__ = ["NonlinearWiring", "default_nonlinear_wiring", "WiringError"]


@dataclass(frozen=True)
class NonlinearWiring:
    """Channel assignment of one nonlinear resistive chip.

    Attributes
    ----------
    input_ao : tuple of str
        AO channel driving each input node (order of ``network.inputs``).
    output_ao : tuple of str
        AO channel behind each output node's switch (order of ``network.outputs``).
    output_switch_do : tuple of str
        Digital line closing each output's switch.
    output_series_ohm : float
        Resistance between an output's AO and its node when the switch is closed (ohms).
    read_nodes : tuple of int
        Nodes whose voltage an AI channel reads.
    node_ai : tuple of str
        AI channel of each node in ``read_nodes``.
    pot_channels : tuple of int
        Potentiometer channel of each linear edge, in increasing edge order.
    gate_ao : tuple of str
        AO channel holding each transistor edge's gate voltage, in increasing edge order.
    """

    input_ao: tuple[str, ...]
    output_ao: tuple[str, ...]
    output_switch_do: tuple[str, ...]
    output_series_ohm: float
    read_nodes: tuple[int, ...]
    node_ai: tuple[str, ...]
    pot_channels: tuple[int, ...]
    gate_ao: tuple[str, ...]

    def check(self, network: Network, edges: NonlinearEdges) -> None:
        """Raise :class:`WiringError` (one line) unless this wiring fits ``network`` and its ``edges``."""
        if len(self.input_ao) != len(network.inputs):
            raise WiringError(f"input_ao lists {len(self.input_ao)} channels for {len(network.inputs)} inputs")
        for name in ("output_ao", "output_switch_do"):
            if len(getattr(self, name)) != len(network.outputs):
                raise WiringError(f"{name} lists {len(getattr(self, name))} channels for "
                                  f"{len(network.outputs)} outputs")
        if len(self.node_ai) != len(self.read_nodes):
            raise WiringError(f"node_ai lists {len(self.node_ai)} channels for {len(self.read_nodes)} read nodes")
        n_lin, n_tr = len(edges.indices("linear")), len(edges.indices("transistor"))
        if len(self.pot_channels) != n_lin:
            raise WiringError(f"pot_channels lists {len(self.pot_channels)} channels for {n_lin} linear edges "
                              "(one pot per trainable conductance; diodes need none)")
        if len(set(self.pot_channels)) != len(self.pot_channels) or min(self.pot_channels, default=0) < 0:
            raise WiringError("pot_channels must be distinct channel numbers >= 0")
        if len(self.gate_ao) != n_tr:
            raise WiringError(f"gate_ao lists {len(self.gate_ao)} channels for {n_tr} transistor edges")
        bad = [n for n in self.read_nodes if not 0 <= n < network.n_nodes]
        if bad:
            raise WiringError(f"read node {bad[0]} is not a node of the network (0..{network.n_nodes - 1})")
        missing = [n for n in network.outputs if n not in self.read_nodes]
        if missing:
            raise WiringError(f"output node {missing[0]} is not read by any AI channel")
        ao = list(self.all_ao_channels())
        for group, names in (("AO", ao), ("AI", list(self.node_ai)), ("DO", list(self.output_switch_do))):
            dup = sorted({c for c in names if names.count(c) > 1})
            if dup:
                raise WiringError(f"{group} channel {dup[0]!r} is wired twice")
        if not self.output_series_ohm >= 0:
            raise WiringError(f"output_series_ohm must be >= 0, got {self.output_series_ohm}")

    def reads_every_node(self, network: Network) -> bool:
        """True if every node is read, so edge drops (local readouts) are measurable."""
        return set(self.read_nodes) == set(range(network.n_nodes))

    def ao_channels(self) -> tuple[str, ...]:
        """The signal AO channels (inputs, then outputs): the rows of every acquisition's waveform."""
        return tuple(self.input_ao) + tuple(self.output_ao)

    def all_ao_channels(self) -> tuple[str, ...]:
        """Every AO channel the chip uses: inputs, outputs, then gates."""
        return self.ao_channels() + tuple(self.gate_ao)

    def to_dict(self) -> dict:
        return {"input_ao": list(self.input_ao), "output_ao": list(self.output_ao),
                "output_switch_do": list(self.output_switch_do), "output_series_ohm": self.output_series_ohm,
                "read_nodes": list(self.read_nodes), "node_ai": list(self.node_ai),
                "pot_channels": list(self.pot_channels), "gate_ao": list(self.gate_ao)}


def default_nonlinear_wiring(network: Network, edges: NonlinearEdges, device: str = "Dev1", read: str = "all",
                             output_series_ohm: float = 1e6,
                             read_nodes: Sequence[int] | None = None) -> NonlinearWiring:
    """Channels in order: inputs on ao0.., outputs on the next AO channels, gates on the AO channels after those,
    read nodes on ai0.., linear edge p on pot channel p, output switches on port0/line0..."""
    if read not in READ_MODES:
        raise WiringError(f"read = {read!r}: expected one of {', '.join(READ_MODES)}")
    n_in, n_out = len(network.inputs), len(network.outputs)
    n_lin, n_tr = len(edges.indices("linear")), len(edges.indices("transistor"))
    if read_nodes is None:
        read_nodes = tuple(range(network.n_nodes)) if read == "all" else tuple(network.outputs)
    return NonlinearWiring(
        input_ao=tuple(f"{device}/ao{i}" for i in range(n_in)),
        output_ao=tuple(f"{device}/ao{n_in + j}" for j in range(n_out)),
        output_switch_do=tuple(f"{device}/port0/line{j}" for j in range(n_out)),
        output_series_ohm=float(output_series_ohm),
        read_nodes=tuple(int(n) for n in read_nodes),
        node_ai=tuple(f"{device}/ai{k}" for k in range(len(read_nodes))),
        pot_channels=tuple(range(n_lin)),
        gate_ao=tuple(f"{device}/ao{n_in + n_out + q}" for q in range(n_tr)),
    )
