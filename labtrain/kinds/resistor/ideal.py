"""Ideal chip: the physics model called directly (exact and fastest).

Optional imperfections let an offline study look like a bench: parameters
quantised to the taps of a digital potentiometer and Gaussian read noise on
every node reading.
"""

from __future__ import annotations

import numpy as np

from typing import Sequence

from labtrain.physics.demod import FrequencyPlan, demodulate
from labtrain.physics.network import Network
from labtrain.physics.readouts import EdgeDrops
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.linalg import check_solver
from labtrain.protocols.analytic import adjoint_gradient
from labtrain.chip.base import (NetworkChip, LINEAR_NETWORK_MODEL, REFERENCE_GRADIENT, AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, ACMeasurement, Chip,
                   ClampNudge, CurrentNudge, Measurement, ParameterSpec, PotQuantizer, Tone)
from labtrain.kinds.resistor.tones import (check_ac_request, concat_demodulated, edge_demodulated, network_tone_drive,
                            synthesise)

__all__ = ["IdealChip"]

#: most samples x signals one block of examples of ``measure_ac`` holds in memory at once
_AC_BLOCK_ELEMENTS = 4_000_000


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
    rate_hz : float
        Sample clock of AC measurements (:meth:`measure_ac`), Hz.
    solver : {"auto", "superlu", "cholmod", "cg"}
        Sparse solver of the model (:class:`~labtrain.kinds.resistor.model.LinearResistorNetwork`).
    """

    backend = "ideal"

    def __init__(self, network: Network, conductance_s: np.ndarray | None = None, *,
                 input_mode: str = "voltage", pot_steps: int = 0, read_noise_v: float = 0.0,
                 seed: int | None = None, rate_hz: float = 10_000.0, solver: str = "auto") -> None:
        self.solver = check_solver(solver)
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        if pot_steps == 1 or pot_steps < 0:
            raise ValueError(f"pot_steps must be 0 (continuous) or >= 2, got {pot_steps}")
        if read_noise_v < 0:
            raise ValueError(f"read_noise_v must be >= 0, got {read_noise_v}")
        self.network = network
        self.input_mode = input_mode
        self.pot_steps = int(pot_steps)
        self.read_noise_v = float(read_noise_v)
        self.rate_hz = float(rate_hz)
        self.rng = np.random.default_rng(seed)
        quantizer = None
        if self.pot_steps:
            quantizer = PotQuantizer(1.0 / network.g_max_s, 1.0 / network.g_min_s, self.pot_steps)
        self._spec = ParameterSpec("conductance", "S", network.g_min_s.copy(), network.g_max_s.copy(), quantizer)
        caps = {CURRENT_NUDGE, CLAMP_NUDGE, EDGE_DROPS, NETWORK_MODEL, LINEAR_NETWORK_MODEL, AC_TONES, REFERENCE_GRADIENT}
        self.capabilities = frozenset(caps)
        self._model: LinearResistorNetwork | None = None
        init = np.sqrt(network.g_min_s * network.g_max_s) if conductance_s is None else conductance_s
        self._g = np.empty(network.n_edges)
        self.set_parameters(init)

    def get_parameters(self) -> np.ndarray:
        return self._g.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        g = self.network.clip(self._spec.checked(values, "conductances"))
        if self._spec.quantizer is not None:
            # clip again: 1/(1/g) at the end taps can land one ulp outside the bounds
            g = self.network.clip(self._spec.quantizer.quantize(g))
        self._g = g
        self._model = None
        return g.copy()

    def reseed(self, seed: int | list[int]) -> None:
        """Reset the read-noise generator (the run loop does this per step, for exact resumes)."""
        self.rng = np.random.default_rng(seed)

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dg`` (adjoint) of the noise-free network at ``parameters`` (default: current)."""
        model = self.network_model() if parameters is None else LinearResistorNetwork(
            self.network, self.network.clip(np.asarray(parameters, float)), self.input_mode, solver=self.solver)
        return adjoint_gradient(model, inputs, model.steady_state(inputs).output_v - targets)

    def network_model(self) -> LinearResistorNetwork:
        """The physics model at the current conductances (factored once per parameter update)."""
        if self._model is None:
            self._model = LinearResistorNetwork(self.network, self._g, self.input_mode, solver=self.solver)
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

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *,
                   settle_samples: int = 0, edge_drops: bool = False) -> ACMeasurement:
        """Synthesise every example's waveforms, evaluate the network at every sample, demodulate.

        Per example, a window of ``settle_samples + plan.window_samples``
        samples at ``rate_hz``: inputs at their DC level plus their tones,
        output nodes fed with their ``output_current`` tones.  The node
        voltages of every sample are the network's steady state for that
        sample's drive (quasi-static: a resistor network has no memory), i.e.
        the terminal response times the drive, one matrix product per block of
        examples; Gaussian read noise (``read_noise_v``) is added to every node
        sample.  Outputs and (``edge_drops``) every edge drop ``v_tail - v_head``
        are demodulated at ``plan.tones_hz`` after discarding the settling samples.

        Parameters
        ----------
        inputs : ndarray, shape (B, n_inputs)
            DC level of each input (V, or A for a current-driven chip).
        tones : sequence of Tone
            ``"input"`` tones (same unit as inputs) and ``"output_current"`` tones (A).
        plan : FrequencyPlan
            Demodulation tones and window; its ``rate_hz`` must be the chip's.
        settle_samples : int
            Samples discarded at the start of each example's window.
        edge_drops : bool
            Also demodulate every edge's voltage drop.

        Returns
        -------
        ACMeasurement
            ``output`` in volts (B, n_outputs, n_tones), ``edge_drops`` (B, n_edges, n_tones) or None,
            ``waveforms`` the sampled output voltages (B, n_outputs, n_samples).
        """
        x = check_ac_request(inputs, self.n_inputs, plan, self.rate_hz, settle_samples)
        n_b, n_samples = x.shape[0], int(settle_samples) + plan.window_samples
        drive = network_tone_drive(tones, plan, n_b, self.n_inputs, self.n_outputs)
        response = self.network_model().response                         # (n_nodes, n_in + n_out)
        net = self.network
        outputs = list(net.outputs)
        width = net.n_nodes
        block = max(1, _AC_BLOCK_ELEMENTS // (width * n_samples))
        out_parts, edge_parts, waves = [], [], []
        for start in range(0, n_b, block):   # blocks of examples (memory), not a loop over examples
            sl = slice(start, start + block)
            v_in = synthesise(x[sl], drive.input_amplitude[sl], drive.frequencies_hz, self.rate_hz, n_samples)
            i_out = synthesise(np.zeros((v_in.shape[0], self.n_outputs)), drive.output_current_a[sl],
                               drive.frequencies_hz, self.rate_hz, n_samples)
            node_v = response @ np.concatenate([v_in, i_out], axis=1)      # (b, n_nodes, n_samples)
            if self.read_noise_v:
                node_v += self.rng.normal(0.0, self.read_noise_v, size=node_v.shape)
            out_v = node_v[:, outputs, :]
            waves.append(out_v)
            out_parts.append(demodulate(out_v, self.rate_hz, plan.tones_hz, settle_samples=int(settle_samples),
                                        window_samples=plan.window_samples))
            if edge_drops:  # every node demodulated once; drops as differences (the lock-in is linear)
                nodes = demodulate(node_v, self.rate_hz, plan.tones_hz, settle_samples=int(settle_samples),
                                   window_samples=plan.window_samples)
                edge_parts.append(edge_demodulated(nodes, net.edges))
        return ACMeasurement(concat_demodulated(out_parts), plan,
                             concat_demodulated(edge_parts) if edge_drops else None,
                             n_b * n_samples / self.rate_hz, np.concatenate(waves))

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "linear resistor network",
            "network": self.network.describe(),
            "input_mode": self.input_mode,
            "pot_steps": self.pot_steps,
            "read_noise_v": self.read_noise_v,
            "rate_hz": self.rate_hz,
            "parameter": {"name": "conductance", "unit": "S"},
            "capabilities": sorted(self.capabilities),
        }
