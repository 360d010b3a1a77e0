"""Random gradient-check problems on linear resistor networks (tests, studies)."""

from __future__ import annotations

import numpy as np

from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.physics.network import DEFAULT_G_MAX_S, DEFAULT_G_MIN_S, Network

__all__ = ["random_linear_problem"]


def random_linear_problem(net: Network, mode: str = "voltage", seed: int = 0,
                          batch: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A gradient-check problem on a linear network: conductances ``g`` log-uniform over the default range
    (100x), inputs ``x`` (B, n_inputs) uniform in +-1 V (+-100 uA in ``"current"`` mode) and targets ``t``
    a loss away from the free outputs (30 % of their mean size, Gaussian).  Returns ``(g, x, t)``."""
    rng = np.random.default_rng(seed)
    g = np.exp(rng.uniform(np.log(DEFAULT_G_MIN_S), np.log(DEFAULT_G_MAX_S), net.n_edges))
    scale = 1.0 if mode == "voltage" else 1e-4  # volts, or amperes into ~10 kOhm
    x = rng.uniform(-1, 1, (batch, len(net.inputs))) * scale
    free = LinearResistorNetwork(net, g, mode).steady_state(x).output_v
    t = free + rng.normal(0, 0.3, free.shape) * np.abs(free).mean()
    return g, x, t
