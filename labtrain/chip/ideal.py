"""Ideal chip: the physics model called directly (exact and fastest).

Optional imperfections let an offline study look like a bench: parameters
quantised to the taps of a digital potentiometer and Gaussian read noise on
every node reading.
"""

from __future__ import annotations

import numpy as np

from ..network import Network
from ..readouts import EdgeDrops
from ..simulators.linear_resistor import LinearResistorNetwork
from .base import (NetworkChip, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, Chip, ClampNudge,
                   CurrentNudge, Measurement, ParameterSpec, PotQuantizer)

__all__ = ["IdealChip"]


class IdealChip(NetworkChip):
    """Linear resistor network chip backed directly by :class:`LinearResistorNetwork`.

    Parameters
    ----------
    network : Network
        Topology, terminals and conductance bounds.
    conductance_s : ndarray, optional
        Initial conductances (default: geometric mean of each edge's bounds).
    input_mode : {"voltage", "current"}
        Inputs as voltage sources or current sources.
    pot_steps : int
        0 for continuous conductances, else the number of pot taps (>= 2).
    read_noise_v : float
        Standard deviation of Gaussian noise on every node-voltage reading.
    seed : int, optional
        Seed of the read-noise generator.
    """

    backend = "ideal"

    def __init__(self, network: Network, conductance_s: np.ndarray | None = None, *,
                 input_mode: str = "voltage", pot_steps: int = 0, read_noise_v: float = 0.0,
                 seed: int | None = None) -> None:
        if pot_steps == 1 or pot_steps < 0:
            raise ValueError(f"pot_steps must be 0 (continuous) or >= 2, got {pot_steps}")
        if read_noise_v < 0:
            raise ValueError(f"read_noise_v must be >= 0, got {read_noise_v}")
        self.network = network
        self.input_mode = input_mode
        self.pot_steps = int(pot_steps)
        self.read_noise_v = float(read_noise_v)
        self.rng = np.random.default_rng(seed)
        quantizer = None
        if self.pot_steps:
            quantizer = PotQuantizer(1.0 / network.g_max_s, 1.0 / network.g_min_s, self.pot_steps)
        self._spec = ParameterSpec("conductance", "S", network.g_min_s.copy(), network.g_max_s.copy(), quantizer)
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, EDGE_DROPS, NETWORK_MODEL}
        self.capabilities = frozenset(caps)
        self._model: LinearResistorNetwork | None = None
        init = np.sqrt(network.g_min_s * network.g_max_s) if conductance_s is None else conductance_s
        self._g = np.empty(network.n_edges)
        self.set_parameters(init)

    def get_parameters(self) -> np.ndarray:
        return self._g.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        if values.shape != (self.network.n_edges,):
            raise ValueError(f"expected {self.network.n_edges} conductances, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("conductances must be finite")
        g = self.network.clip(values)
        if self._spec.quantizer is not None:
            # clip again: 1/(1/g) at the end taps can land one ulp outside the bounds
            g = self.network.clip(self._spec.quantizer.quantize(g))
        self._g = g
        self._model = None
        return g.copy()

    def reseed(self, seed: int | list[int]) -> None:
        """Reset the read-noise generator (the run loop does this per step, for exact resumes)."""
        self.rng = np.random.default_rng(seed)

    def network_model(self) -> LinearResistorNetwork:
        """The physics model at the current conductances (factored once per parameter update)."""
        if self._model is None:
            self._model = LinearResistorNetwork(self.network, self._g, self.input_mode)
        return self._model

    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        model = self.network_model()
        if isinstance(nudge, CurrentNudge):
            state = model.steady_state(inputs, output_current_a=nudge.current_a)
        elif isinstance(nudge, ClampNudge):
            state = model.steady_state(inputs, output_clamp_v=nudge.voltage_v)
        elif nudge is None:
            state = model.steady_state(inputs)
        else:
            raise TypeError(f"unknown nudge {type(nudge).__name__}")
        if self.read_noise_v == 0.0:
            return Measurement(state.output_v, state.edge_drops if edge_drops else None)
        node_v = state.node_v + self.rng.normal(0.0, self.read_noise_v, size=(state.n_examples, self.network.n_nodes))
        drops = None
        if edge_drops:
            e = self.network.edges
            drops = EdgeDrops.dense(node_v[:, e[:, 0]] - node_v[:, e[:, 1]])
        return Measurement(node_v[:, list(self.network.outputs)], drops)

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "linear resistor network",
            "network": self.network.describe(),
            "input_mode": self.input_mode,
            "pot_steps": self.pot_steps,
            "read_noise_v": self.read_noise_v,
            "parameter": {"name": "conductance", "unit": "S"},
            "capabilities": sorted(self.capabilities),
        }
