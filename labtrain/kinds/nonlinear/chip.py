"""Ideal chip of a nonlinear resistive network (diodes, transistor edges): the physics model called directly.

Parameters (one vector, :meth:`NonlinearResistorChip.parameter_blocks`): the
conductances (S) of the linear edges in increasing edge order, then the gate
voltages (V) of the transistor edges in increasing edge order.  The spec's
unit is ``"S"``, ``"V"`` or ``"mixed"`` (both present).

``measure`` has the semantics of :class:`~labtrain.kinds.resistor.ideal.IdealChip`
(current nudge, clamp nudge, edge drops, Gaussian read noise on every node
reading).  ``measure_ac`` works in the time domain: every example is one
acquisition of ``settle_samples + plan.window_samples`` samples at
``plan.rate_hz``; at every sample the input voltages (DC level + input tones)
and the injected output currents (output-current tones) are applied and the
memoryless network's steady state is solved (batched over examples x
samples, warm-started from each example's DC operating point), read noise is
added per sample, and the sampled outputs (and edge drops) are demodulated
with :func:`labtrain.physics.demod.demodulate`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labtrain.physics.demod import Demodulated, FrequencyPlan, demodulate
from labtrain.physics.network import Network
from labtrain.physics.readouts import EdgeDrops
from labtrain.kinds.nonlinear.amplified import AmplifiedNetwork
from labtrain.kinds.nonlinear.differential import DifferentialReadout, pair_difference
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork
from labtrain.chip.base import (REFERENCE_GRADIENT, AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, ACMeasurement,
                   CapabilityError, ClampNudge, CurrentNudge, Measurement, NetworkChip, ParameterSpec, Tone)

__all__ = ["NonlinearResistorChip"]


class NonlinearResistorChip(NetworkChip):
    """Nonlinear resistive network chip backed by :class:`NonlinearResistorNetwork`.

    Parameters
    ----------
    network : Network
        Topology and terminals (inputs are voltage sources).
    edges : NonlinearEdges, str or sequence of str
        Kind and fixed parameters of every edge (see
        :class:`~labtrain.kinds.nonlinear.model.NonlinearEdges`).
    parameters : ndarray, optional
        Initial parameters (order of :meth:`parameter_blocks`); default: the
        geometric mean of each conductance range, the middle of each gate range.
    read_noise_v : float
        Standard deviation (V) of Gaussian noise on every node reading (per
        sample in ``measure_ac``).
    rate_hz : float
        Default sample clock (reported in the snapshot; ``measure_ac`` uses the plan's).
    seed : int, optional
        Seed of the read-noise generator.
    tol_a, rtol, tol_v, max_iter
        Newton settings of the model.
    max_chunk_elements : int
        Memory bound of ``measure_ac`` and of an outputs-only ``measure`` (no nudge, no edge drops): examples
        are simulated in chunks whose per-sample node and edge arrays hold at most about this many numbers.
    solver : {"auto", "cholmod", "superlu"}
        Sparse factorisation of the model's Newton steps.
    layer_gain : float
        Gain ``A`` of ideal bidirectional amplifiers between consecutive node layers (dimensionless; 1 = a
        passive network): the model is then :class:`~labtrain.kinds.nonlinear.amplified.AmplifiedNetwork` and
        every measurement (outputs, edge drops after the amplifiers) is physical.
    node_layer : ndarray of int, shape (n_nodes,), optional
        Layer of every node; needed when ``layer_gain != 1``.
    differential_outputs : bool
        Read output ``k`` as the voltage between output nodes ``k`` and ``K + k`` of the network (``2K`` output
        nodes, ``K`` outputs; :mod:`~labtrain.kinds.nonlinear.differential`): current nudges are floating
        sources across the pairs; clamp nudges and AC tones are not offered.
    """

    backend = "ideal"

    def __init__(self, network: Network, edges: NonlinearEdges | str | Sequence[str],
                 parameters: np.ndarray | None = None, *, read_noise_v: float = 0.0, rate_hz: float = 10_000.0,
                 seed: int | None = None, tol_a: float = 1e-15, rtol: float = 1e-11, tol_v: float = 1e-12,
                 max_iter: int = 100,
                 max_chunk_elements: int = 20_000_000, solver: str = "auto", layer_gain: float = 1.0,
                 node_layer: np.ndarray | None = None, differential_outputs: bool = False) -> None:
        if not read_noise_v >= 0:
            raise ValueError(f"read_noise_v must be >= 0, got {read_noise_v}")
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if max_chunk_elements < 1:
            raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
        self.network = network
        if float(layer_gain) != 1.0:
            if node_layer is None:
                raise ValueError("layer_gain != 1 needs node_layer (the layer of every node)")
            if isinstance(edges, str) or not isinstance(edges, NonlinearEdges):
                edges = NonlinearEdges.uniform(network.n_edges, edges) if isinstance(edges, str) else \
                    NonlinearEdges.from_kinds(edges)
            self._model = AmplifiedNetwork(network, edges, node_layer, layer_gain, parameters, tol_a=tol_a,
                                           rtol=rtol, tol_v=tol_v, max_iter=max_iter, solver=solver)
        else:
            self._model = NonlinearResistorNetwork(network, edges, parameters, tol_a=tol_a, rtol=rtol,
                                                    tol_v=tol_v, max_iter=max_iter, solver=solver)
        self.layer_gain = float(layer_gain)
        # the physical elements (an amplified model solves a rescaled copy of them)
        self.edges = self._model.physical_edges if isinstance(self._model, AmplifiedNetwork) else self._model.edges
        self.differential_outputs = bool(differential_outputs)
        if self.differential_outputs:
            self._model = DifferentialReadout(self._model)
        self.read_noise_v = float(read_noise_v)
        self.rate_hz = float(rate_hz)
        self.max_chunk_elements = int(max_chunk_elements)
        self.rng = np.random.default_rng(seed)
        n_g = self._model.n_conductances
        n_v = self._model.n_parameters - n_g
        unit = "mixed" if (n_g and n_v) else ("S" if n_g else "V")
        name = "parameters" if unit == "mixed" else ("conductance" if n_g else "gate_voltage")
        self._spec = ParameterSpec(name, unit, self._model.lower.copy(), self._model.upper.copy())
        caps = {CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, REFERENCE_GRADIENT}
        if not self.differential_outputs:  # a clamp or a tone across a pair would be a floating source
            caps |= {CLAMP_NUDGE, AC_TONES}
        self.capabilities = frozenset(caps)

    @property
    def n_outputs(self) -> int:
        """Number of outputs (with a differential readout: pairs of output nodes)."""
        return int(self._model.n_outputs)

    def _outputs_of_nodes(self, node_v: np.ndarray) -> np.ndarray:
        """Output readings from node voltages ``(..., n_nodes)``: the output nodes, or their pair differences."""
        out = node_v[..., list(self.network.outputs)]
        return pair_difference(out) if self.differential_outputs else out

    # ----------------------------------------------------------- parameters
    def parameter_blocks(self) -> list[dict]:
        """Name, unit, ``[start, stop)`` and edge indices of each parameter block."""
        n_g = self._model.n_conductances
        pe = self._model.parameter_edges
        blocks = []
        if n_g:
            blocks.append({"name": "conductance", "kind": "linear", "unit": "S", "start": 0, "stop": n_g,
                           "edges": pe[:n_g].tolist()})
        if len(pe) > n_g:
            blocks.append({"name": "gate_voltage", "kind": "transistor", "unit": "V", "start": n_g,
                           "stop": len(pe), "edges": pe[n_g:].tolist()})
        return blocks

    @property
    def parameter_edges(self) -> np.ndarray:
        """Edge index of every parameter."""
        return self._model.parameter_edges.copy()

    def edge_current_slope(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``d i_e / d theta_p``: the drop for a linear edge, the element characteristic for a gate voltage."""
        return self._model.current_parameter_derivative(edge_drop_v)

    def energy_parameter_slope(self, drops: EdgeDrops) -> np.ndarray:
        """Batch mean of ``dPhi_e/dtheta`` (co-content) of every trainable element at measured drops (EP/CL)."""
        return self._model.energy_parameter_derivative(drops.values).mean(axis=0)

    def get_parameters(self) -> np.ndarray:
        return self._model.parameters.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        self._model = self._model.with_parameters(self._spec.checked(values))  # the model clips into range
        return self._model.parameters.copy()

    def reseed(self, seed: int | list[int]) -> None:
        """Reset the read-noise generator (the run loop does this per step, for exact resumes)."""
        self.rng = np.random.default_rng(seed)

    def network_model(self) -> NonlinearResistorNetwork:
        """The physics model at the current parameters."""
        return self._model

    def exact_gradient(self, inputs: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
        """``dC/dtheta`` of the noise-free model, ``C = mean_b 1/2 ||v_O - t||^2`` (adjoint method)."""
        return self._model.exact_gradient(inputs, targets_v)

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dtheta`` of the noise-free model at ``parameters`` (default: current)."""
        model = self._model if parameters is None else self._model.with_parameters(np.asarray(parameters, float))
        return model.exact_gradient(inputs, targets)

    # ----------------------------------------------------------- measuring
    def _check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(inputs, float))
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must have shape (B, {self.n_inputs}), got {np.shape(inputs)}")
        return x

    def measure(self, inputs: np.ndarray, nudge: CurrentNudge | ClampNudge | None = None,
                edge_drops: bool = False) -> Measurement:
        x = self._check_inputs(inputs)
        chunk = max(1, self.max_chunk_elements // (3 * self.network.n_edges))
        if nudge is None and not edge_drops and len(x) > chunk:
            # outputs only (an evaluation of a whole data set): solve in chunks, so that the per-edge arrays of
            # a large network (784 x 100 input edges x 10,000 examples) are never held at once
            node_v = np.concatenate([self._model.steady_state(x[lo:lo + chunk]).node_v
                                     for lo in range(0, len(x), chunk)])
            if self.read_noise_v > 0.0:
                node_v = node_v + self.rng.normal(0.0, self.read_noise_v, size=node_v.shape)
            return Measurement(self._outputs_of_nodes(node_v), None)
        if isinstance(nudge, CurrentNudge):
            state = self._model.steady_state(x, output_current_a=nudge.current_a)
        elif isinstance(nudge, ClampNudge):
            if self.differential_outputs:
                raise CapabilityError("a differential readout cannot clamp an output (a floating voltage source "
                                      "across the pair is not modelled); use a current nudge")
            state = self._model.steady_state(x, output_clamp_v=nudge.voltage_v)
        elif nudge is None:
            state = self._model.steady_state(x)
        else:
            raise TypeError(f"unknown nudge {type(nudge).__name__}")
        if self.read_noise_v == 0.0:
            return Measurement(state.output_v, EdgeDrops.dense(state.edge_drop_v) if edge_drops else None)
        node_v = state.node_v + self.rng.normal(0.0, self.read_noise_v, size=state.node_v.shape)
        drops = None
        if edge_drops:
            drops = EdgeDrops.dense(self._drops_of_nodes(node_v))
        return Measurement(self._outputs_of_nodes(node_v), drops)

    def _drops_of_nodes(self, node_v: np.ndarray) -> np.ndarray:
        """Edge drops (V) from node readings ``(..., n_nodes)``; with amplifiers, the drops after them."""
        network = self._model.model if self.differential_outputs else self._model
        if isinstance(network, AmplifiedNetwork):
            return network.edge_drop_of_nodes(node_v)
        e = self.network.edges
        return node_v[..., e[:, 0]] - node_v[..., e[:, 1]]

    def _tone_amplitudes(self, tones: Sequence[Tone], plan: FrequencyPlan, n_examples: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-example amplitude matrices ``(B, n_inputs, n_t)`` and ``(B, n_outputs, n_t)``, frequencies ``(n_t,)``."""
        n_t = len(tones)
        a_in = np.zeros((n_examples, self.n_inputs, n_t))
        a_out = np.zeros((n_examples, self.n_outputs, n_t))
        freqs = np.empty(n_t)
        for k, tone in enumerate(tones):
            if not isinstance(tone, Tone):
                raise TypeError(f"tone {k} is a {type(tone).__name__}, expected labtrain.chip.Tone")
            periods = tone.frequency_hz * plan.window_samples / plan.rate_hz
            if abs(periods - round(periods)) > 1e-6 * max(periods, 1.0):
                raise ValueError(f"tone {k} at {tone.frequency_hz} Hz is not on the plan's "
                                 f"{plan.resolution_hz:g} Hz grid (window {plan.window_samples} samples)")
            amp = np.asarray(tone.amplitude, float)
            if amp.ndim > 1 or (amp.ndim == 1 and amp.shape != (n_examples,)):
                raise ValueError(f"tone {k} amplitude must be a scalar or shape ({n_examples},), got {amp.shape}")
            if not np.all(np.isfinite(amp)):
                raise ValueError(f"tone {k} amplitude contains NaN or inf")
            if tone.terminal == "input":
                if not 0 <= tone.index < self.n_inputs:
                    raise ValueError(f"tone {k}: input index {tone.index} outside 0..{self.n_inputs - 1}")
                a_in[:, tone.index, k] = amp
            elif tone.terminal == "output_current":
                if not 0 <= tone.index < self.n_outputs:
                    raise ValueError(f"tone {k}: output index {tone.index} outside 0..{self.n_outputs - 1}")
                a_out[:, tone.index, k] = amp
            else:
                raise ValueError(f"tone {k}: a resistor network has no {tone.terminal!r} terminal "
                                 f"(use 'input' or 'output_current')")
            freqs[k] = tone.frequency_hz
        return a_in, a_out, freqs

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *, settle_samples: int = 0,
                   edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` plus ``tones``, solve the network at every sample, demodulate.

        Parameters
        ----------
        inputs : ndarray, shape (B, n_inputs)
            DC input levels (V).
        tones : sequence of Tone
            ``"input"`` tones add ``a sin(2 pi f t)`` volts to an input;
            ``"output_current"`` tones inject ``a sin(2 pi f t)`` amperes into an output node.
        plan : FrequencyPlan
            Sample clock, window and the tones demodulated.
        settle_samples : int
            Samples acquired and discarded before the window (a memoryless
            network needs none; the time axis still starts at sample 0).
        edge_drops : bool
            Also demodulate every edge's voltage drop.

        Returns
        -------
        ACMeasurement
            ``output`` (volts, ``(B, n_outputs, n_tones)``), ``edge_drops``
            (``(B, n_edges, n_tones)`` or None), raw output ``waveforms``
            ``(B, n_outputs, n_samples)``, ``acquisition_s = B * n_samples / rate_hz``.
        """
        if not isinstance(plan, FrequencyPlan):
            raise TypeError(f"plan must be a labtrain.physics.demod.FrequencyPlan, got {type(plan).__name__}")
        if self.differential_outputs:
            raise CapabilityError("AC tones are not modelled with a differential readout (an output-current tone "
                                  "would be a floating source across a pair)")
        if settle_samples < 0:
            raise ValueError(f"settle_samples must be >= 0, got {settle_samples}")
        x = self._check_inputs(inputs)
        n_b = x.shape[0]
        n_s = int(settle_samples) + plan.window_samples
        a_in, a_out, freqs = self._tone_amplitudes(tones, plan, n_b)
        t = np.arange(n_s) / plan.rate_hz
        sin_ref = np.sin(2 * np.pi * np.outer(freqs, t)) if len(freqs) else np.zeros((0, n_s))  # (n_t, n_s)
        model = self._model
        net = self.network
        outs = list(net.outputs)
        waves = np.empty((n_b, self.n_outputs, n_s))
        has_current = bool(np.any(a_out))
        kw = dict(settle_samples=int(settle_samples), window_samples=plan.window_samples)
        dc_state = model.steady_state(x)  # each example's operating point: warm start for all its samples
        chunk = max(1, self.max_chunk_elements // (n_s * (net.n_nodes + 4 * net.n_edges)))
        parts = []
        for lo in range(0, n_b, chunk):
            hi = min(n_b, lo + chunk)
            v_in = x[lo:hi, :, None] + a_in[lo:hi] @ sin_ref                     # (b, n_in, n_s)
            i_out = (a_out[lo:hi] @ sin_ref).transpose(0, 2, 1) if has_current else None
            state = model.steady_state(v_in.transpose(0, 2, 1), output_current_a=i_out,
                                       start_v=dc_state.node_v[lo:hi, None, :], chord=True)
            node_v = state.node_v                                                 # (b, n_s, n_nodes)
            if self.read_noise_v > 0:
                node_v = node_v + self.rng.normal(0.0, self.read_noise_v, size=node_v.shape)
            waves[lo:hi] = node_v[:, :, outs].transpose(0, 2, 1)
            if edge_drops:
                drops = self._drops_of_nodes(node_v).transpose(0, 2, 1)
                parts.append(demodulate(drops, plan.rate_hz, plan.tones_hz, **kw))
        out = demodulate(waves, plan.rate_hz, plan.tones_hz, **kw)
        edge = None
        if edge_drops:
            edge = Demodulated(np.concatenate([p.in_phase for p in parts]),
                               np.concatenate([p.quadrature for p in parts]),
                               np.concatenate([p.dc for p in parts]), parts[0].frequencies_hz, parts[0].window_samples)
        return ACMeasurement(out, plan, edge, n_b * n_s / plan.rate_hz, waves)

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "nonlinear resistive network",
            "network": self.network.describe(),
            "edges": self.edges.describe(),
            "parameter_blocks": [{k: v for k, v in b.items() if k != "edges"} for b in self.parameter_blocks()],
            "read_noise_v": self.read_noise_v,
            "rate_hz": self.rate_hz,
            "layer_gain": self.layer_gain,
            "readout": "differential pairs" if self.differential_outputs else "single-ended",
            "solver": {"tol_a": self._model.tol_a, "rtol": self._model.rtol, "tol_v": self._model.tol_v,
                       "max_iter": self._model.max_iter},
            "capabilities": sorted(self.capabilities),
        }
