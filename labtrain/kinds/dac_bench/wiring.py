"""The channel assignment every DAQ-and-pot bench shares: which terminal and node on which channel.

::

      DAQ AO  input_ao[i] ───────────────────────────── input node  network.inputs[i]
      DAQ AO  output_ao[j] ──[switch output_switch_do[j]]──[R = output_series_ohm]── output node network.outputs[j]
      DAQ AI  node_ai[k]   ───────────────────────────── node read_nodes[k]
      pot channel pot_channels[p]  ═════════════════════ the p-th edge with a pot (rheostat)
      ground nodes: to the DAQ's AO/AI ground

Closing an output's switch with its AO at ``V`` clamps the node (through the
series resistance; a small resistance gives a voltage clamp) or, with a large
series resistance, injects ``(V - v_node) / R`` -- the current nudge of EP.
Which edges have a pot, and any further channels, are the kind's
(:class:`~labtrain.kinds.resistor.wiring.Wiring`: every edge;
:class:`~labtrain.kinds.nonlinear.wiring.NonlinearWiring`: the linear edges, plus gate AOs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from labtrain.physics.network import Network

__all__ = ["DACWiring", "WiringError", "READ_MODES", "default_channels"]

READ_MODES = ("all", "outputs")


class WiringError(ValueError):
    """The wiring does not fit the network (one-line message)."""


@dataclass(frozen=True)
class DACWiring:
    """Channel assignment of one bench chip (the keys every DAQ-and-pot bench has).

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
        Nodes whose voltage an AI channel reads: every node (local readouts
        available) or only the outputs.
    node_ai : tuple of str
        AI channel of each node in ``read_nodes``.
    pot_channels : tuple of int
        Potentiometer channel of each edge with a pot (the kind says which).
    """

    input_ao: tuple[str, ...]
    output_ao: tuple[str, ...]
    output_switch_do: tuple[str, ...]
    output_series_ohm: float
    read_nodes: tuple[int, ...]
    node_ai: tuple[str, ...]
    pot_channels: tuple[int, ...]

    def _check_channels(self, network: Network, n_pots: int, pots_message: str,
                        more: Sequence[tuple[bool, str]] = ()) -> None:
        """Raise :class:`WiringError` unless the shared keys fit ``network`` with ``n_pots`` pots
        (``pots_message`` when the count is off) and no condition of ``more`` (``(failed, message)``) fails."""
        if len(self.input_ao) != len(network.inputs):
            raise WiringError(f"input_ao lists {len(self.input_ao)} channels for {len(network.inputs)} inputs")
        for name in ("output_ao", "output_switch_do"):
            if len(getattr(self, name)) != len(network.outputs):
                raise WiringError(f"{name} lists {len(getattr(self, name))} channels for "
                                  f"{len(network.outputs)} outputs")
        if len(self.node_ai) != len(self.read_nodes):
            raise WiringError(f"node_ai lists {len(self.node_ai)} channels for {len(self.read_nodes)} read nodes")
        if len(self.pot_channels) != n_pots:
            raise WiringError(pots_message)
        if len(set(self.pot_channels)) != len(self.pot_channels) or min(self.pot_channels, default=0) < 0:
            raise WiringError("pot_channels must be distinct channel numbers >= 0")
        for failed, message in more:
            if failed:
                raise WiringError(message)
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
        """Every AO channel the chip uses (the signal channels, then any the kind adds)."""
        return self.ao_channels()

    def to_dict(self) -> dict:
        return {"input_ao": list(self.input_ao), "output_ao": list(self.output_ao),
                "output_switch_do": list(self.output_switch_do), "output_series_ohm": self.output_series_ohm,
                "read_nodes": list(self.read_nodes), "node_ai": list(self.node_ai),
                "pot_channels": list(self.pot_channels)}


def default_channels(network: Network, device: str, read: str, output_series_ohm: float,
                     read_nodes: Sequence[int] | None, n_pots: int) -> dict[str, Any]:
    """The shared keys in order: inputs on ao0.., outputs on the next AO channels, output switches on
    port0/line0.., read nodes (every node, or the outputs) on ai0.., the pots on channels 0..n_pots-1."""
    if read not in READ_MODES:
        raise WiringError(f"read = {read!r}: expected one of {', '.join(READ_MODES)}")
    n_in, n_out = len(network.inputs), len(network.outputs)
    if read_nodes is None:
        read_nodes = tuple(range(network.n_nodes)) if read == "all" else tuple(network.outputs)
    return dict(
        input_ao=tuple(f"{device}/ao{i}" for i in range(n_in)),
        output_ao=tuple(f"{device}/ao{n_in + j}" for j in range(n_out)),
        output_switch_do=tuple(f"{device}/port0/line{j}" for j in range(n_out)),
        output_series_ohm=float(output_series_ohm),
        read_nodes=tuple(int(n) for n in read_nodes),
        node_ai=tuple(f"{device}/ai{k}" for k in range(len(read_nodes))),
        pot_channels=tuple(range(n_pots)),
    )
