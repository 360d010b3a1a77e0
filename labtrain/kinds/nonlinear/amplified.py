"""Layered nonlinear resistive network with ideal bidirectional amplifiers between consecutive node layers.

Physics.  Node layers ``0 .. L`` (layer 0: the input sources and the ground, layer ``L``: the outputs).  Between
layer ``k`` and ``k + 1`` sits an ideal bidirectional amplifier of gain ``A`` >= 1 at every layer-``k`` node
(Kendall et al. 2020, "Training end-to-end analog neural networks with equilibrium propagation"): *forward*, the
edges from node ``i`` of layer ``k`` to layer ``k + 1`` are driven by the voltage ``A v_i``; *backward*, the
current those edges draw is divided by ``A`` and returned into node ``i``.  An edge from layer ``a`` to layer
``b > a`` (the skip edges input -> output) sees ``b - a`` such stages: ``A^(b-a) v_i`` forward, ``1 / A^(b-a)``
of its current back.  The diodes of a hidden node ``h`` (layer ``m``) sit between ``v_h`` and the ground.  So the
physical drop across an edge is

    dv_e = A^(b - l_tail) v_tail - A^(b - l_head) v_head,      b = max(l_tail, l_head),

and Kirchhoff's current law at a node of layer ``m`` (currents out of the node)::

    sum_{edges to layer m-1} i_e(dv_e) + sum_{diodes} i_d(v) + A^-1 sum_{edges to layer m+1} i_e(dv_e) = 0 .

Energy.  KCL is the stationarity condition of ``E = sum_e A^(-2 (b_e - 1)) Phi_e(dv_e)`` (``Phi_e`` the element's
co-content, ``b_e`` the layer of the edge's downstream end; diodes of layer ``m``: ``b_e = m``): ``dE/dv_n =
A^(-2 (l_n - 1))`` times the KCL residual at ``n``.  With ``v_n = A^(l_n) u_n`` every drop is ``dv_e = A^(b_e)
(u_tail - u_head)``, so ``E = A^2 sum_e A^(-2 b_e) Phi_e(A^(b_e) du_e)``: an ordinary passive network in ``u``
whose element ``e`` has the characteristic ``i~_e(du) = A^(-b_e) i_e(A^(b_e) du)``.  Linear edges keep their
conductance; a Shockley diode of layer ``m`` gets ``I_s / A^m`` and ``n V_T / A^m`` (``R_s``, ``g_p`` unchanged);
a piecewise-linear diode gets ``V_on / A^m`` and ``smoothing / A^m`` (``g_on``, ``g_off`` unchanged).
:class:`AmplifiedNetwork` solves that ``u``-network with the Newton solver of
:class:`~labtrain.kinds.nonlinear.model.NonlinearResistorNetwork` and reports the *physical* quantities: node
voltages ``v = A^l u``, drops ``dv_e = A^(b_e) du_e``, currents ``i_e = A^(b_e) i~_e``, differential conductances
(unchanged), output clamp currents ``A^L i~``; a current ``I`` injected at an output is ``A^-L I`` in the
``u``-network, a clamp at ``v`` is ``v / A^L``.  The input sources are ``u_0 = v_0``.

Learning.  With the loss ``C = 1/2 ||v_L - t||^2`` (V^2) and EP's nudge current ``beta (t - v_L)`` at the
outputs, the energy normalised so that the nudge enters as ``beta C`` is ``E' = A^(2 (L - 1)) E``; its local
derivative, the quantity of the two-phase rules, is for a linear edge

    dE'/dg_e = 1/2 (A^(L - b_e) dv_e)^2 = A^(2 L) 1/2 du_e^2      (V^2),

the edge's measured drop (after the amplifier) referred to the output layer.  Output-layer edges (``b_e = L``)
keep the passive ``dv^2 / 2``.  The exact gradient is ``dC/dtheta = A^L x`` the ``u``-network's adjoint gradient
driven by the physical output error.  With ``A = 1`` every rescaling is by 1.0 and the results are bit for bit
those of the passive network.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork, NonlinearSteadyState
from labtrain.physics.network import Network

__all__ = ["AmplifiedNetwork", "layered_node_layers", "amplified_edges"]


def layered_node_layers(network: Network, hidden_layers: Sequence[int]) -> np.ndarray:
    """Layer index of every node of a :func:`~labtrain.kinds.nonlinear.model.diode_network`.

    Node order there: inputs, the ground (layer 0), each hidden layer, the outputs (layer ``len(hidden) + 1``).
    """
    n_first = len(network.inputs) + len(network.grounds)
    sizes = [n_first, *[int(h) for h in hidden_layers], len(network.outputs)]
    if sum(sizes) != network.n_nodes:
        raise ValueError(f"layer sizes {sizes} do not add up to the network's {network.n_nodes} nodes")
    return np.repeat(np.arange(len(sizes)), sizes)


def amplified_edges(edges: NonlinearEdges, edge_layer: np.ndarray, gain: float) -> NonlinearEdges:
    """The elements of the ``u``-network: diodes of layer ``m`` rescaled by ``A^-m`` (see the module docstring)."""
    scale = float(gain) ** np.asarray(edge_layer, float)
    p = {k: v.copy() for k, v in edges.params.items()}
    kinds = np.array(edges.kinds)
    dio, idd = kinds == "diode", kinds == "ideal_diode"
    for name in ("saturation_current_a", "thermal_voltage_v", "max_current_a"):
        p[name] = np.where(dio, p[name] / scale, p[name])
    for name in ("on_v", "smoothing_v"):
        p[name] = np.where(idd, p[name] / scale, p[name])
    return NonlinearEdges.from_kinds(edges.kinds, **p)


class AmplifiedNetwork(NonlinearResistorNetwork):
    """A layered nonlinear network with ideal bidirectional amplifiers of gain ``layer_gain`` between layers.

    Every public method takes and returns physical quantities (see the module docstring); the solve runs on the
    equivalent passive ``u``-network.

    Parameters
    ----------
    network : Network
        The layered topology (inputs and ground in layer 0, outputs in the last layer).
    edges : NonlinearEdges
        The *physical* elements (diode parameters as on the datasheet).
    node_layer : ndarray of int, shape (n_nodes,)
        Layer of every node (:func:`layered_node_layers`).  An edge belongs to the later layer of its two
        ends (a hidden node's diodes to the ground: the node's layer); an edge within one layer has no
        amplifier in front of it.
    layer_gain : float
        Voltage gain ``A`` >= 1 of every amplifier (dimensionless); 1 = the passive network.
    parameters : ndarray, optional
        Conductances (S) of the linear edges, as for :class:`NonlinearResistorNetwork`.
    **solver
        Newton settings of :class:`NonlinearResistorNetwork`.
    """

    def __init__(self, network: Network, edges: NonlinearEdges, node_layer: np.ndarray, layer_gain: float,
                 parameters: np.ndarray | None = None, **solver) -> None:
        gain = float(layer_gain)
        if not (np.isfinite(gain) and gain >= 1.0):
            raise ValueError(f"layer_gain must be a finite number >= 1, got {layer_gain!r}")
        layer = np.asarray(node_layer, np.int64)
        if layer.shape != (network.n_nodes,):
            raise ValueError(f"node_layer must have shape ({network.n_nodes},), got {layer.shape}")
        e = network.edges
        edge_layer = np.maximum(layer[e[:, 0]], layer[e[:, 1]])
        self.physical_edges = edges
        self.layer_gain = gain
        self.node_layer = layer
        self.edge_layer = edge_layer
        self.n_layers = int(layer.max())
        self.node_scale = gain ** layer.astype(float)           # v = A^l u
        self.edge_scale = gain ** edge_layer.astype(float)      # dv = A^b du
        #: physical drop = tail_gain * v_tail - head_gain * v_head (the amplifier stages in front of each end)
        self.tail_gain = gain ** (edge_layer - layer[e[:, 0]]).astype(float)
        self.head_gain = gain ** (edge_layer - layer[e[:, 1]]).astype(float)
        self.output_scale = gain ** self.n_layers               # v_L = A^L u_L
        super().__init__(network, amplified_edges(edges, edge_layer, gain), parameters, **solver)

    def with_parameters(self, parameters: np.ndarray) -> "AmplifiedNetwork":
        """The same amplified network at other parameters."""
        return AmplifiedNetwork(self.network, self.physical_edges, self.node_layer, self.layer_gain, parameters,
                                tol_a=self.tol_a, rtol=self.rtol, tol_v=self.tol_v, max_iter=self.max_iter,
                                dense_max_nodes=self.dense_max_nodes, max_chunk_elements=self.max_chunk_elements,
                                solver=self.solver, fold_sources=self.fold_sources)

    # ------------------------------------------------------------ unit conversion
    def edge_drop_of_nodes(self, node_v: np.ndarray) -> np.ndarray:
        """Physical drop (V) across every edge, after the amplifiers, from node voltages ``(..., n_nodes)``."""
        v = np.asarray(node_v, float)
        e = self.network.edges
        return self.tail_gain * v[..., e[:, 0]] - self.head_gain * v[..., e[:, 1]]

    def _physical(self, s: NonlinearSteadyState) -> NonlinearSteadyState:
        clamp = None if s.clamp_current_a is None else s.clamp_current_a * self.output_scale
        return NonlinearSteadyState(s.network, s.node_v * self.node_scale, s.edge_drop_v * self.edge_scale,
                                    lambda: (s.edge_current_a * self.edge_scale, s.conductance_s), None, clamp,
                                    s.iterations, s.max_residual_a)

    def _reduced(self, s: NonlinearSteadyState) -> NonlinearSteadyState:
        clamp = None if s.clamp_current_a is None else s.clamp_current_a / self.output_scale
        return NonlinearSteadyState(s.network, s.node_v / self.node_scale, s.edge_drop_v / self.edge_scale,
                                    lambda: (s.edge_current_a / self.edge_scale, s.conductance_s), None, clamp,
                                    s.iterations, s.max_residual_a)

    # ------------------------------------------------------------ element access (physical drops)
    def edge_characteristics(self, edge_drop_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical current (A) and differential conductance (S) of every element at physical drops."""
        dv = np.asarray(edge_drop_v, float)
        cur, gd = super().edge_characteristics(dv / self.edge_scale)
        return cur * self.edge_scale, gd

    def co_content(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """Physical co-content (W) of every element at physical drops."""
        dv = np.asarray(edge_drop_v, float)
        return super().co_content(dv / self.edge_scale) * self.edge_scale ** 2

    def energy_parameter_derivative(self, edge_drop_v: np.ndarray) -> np.ndarray:
        """``dE'/dtheta`` at physical drops: ``1/2 (A^(L - b_e) dv_e)^2`` for a conductance (V^2).

        ``E'`` is the amplified network's energy normalised so that EP's nudge enters as ``beta C``
        (module docstring): the two-phase rules' estimates are then ``dC/dtheta`` as on a passive network.
        """
        dv = np.asarray(edge_drop_v, float)
        return super().energy_parameter_derivative(dv / self.edge_scale) * self.output_scale ** 2

    # ------------------------------------------------------------ solve
    def steady_state(self, inputs: np.ndarray, output_current_a: np.ndarray | None = None,
                     output_clamp_v: np.ndarray | None = None, *, start_v: np.ndarray | None = None,
                     chord: bool = False, max_iter: int | None = None) -> NonlinearSteadyState:
        """Physical steady state (see :meth:`NonlinearResistorNetwork.steady_state`; every quantity physical)."""
        cur = None if output_current_a is None else np.asarray(output_current_a, float) / self.output_scale
        clamp = None if output_clamp_v is None else np.asarray(output_clamp_v, float) / self.output_scale
        start = None if start_v is None else np.asarray(start_v, float) / self.node_scale
        state = super().steady_state(inputs, cur, clamp, start_v=start, chord=chord, max_iter=max_iter)
        return self._physical(state)

    # ------------------------------------------------------------ gradients
    def adjoint_gradient(self, inputs: np.ndarray, error_v: np.ndarray,
                         state: NonlinearSteadyState | None = None) -> np.ndarray:
        """``dC/dtheta`` for ``C = mean_b 1/2 ||v_L - t||^2`` given the physical output error ``v_L - t`` (V).

        ``C = A^(2L) C~`` with ``C~`` the ``u``-network's loss at targets ``t / A^L``, so ``dC/dtheta = A^L``
        times the ``u``-network's adjoint gradient driven by ``error_v``.
        """
        x = np.atleast_2d(np.asarray(inputs, float))
        reduced = self._reduced(state) if state is not None else \
            NonlinearResistorNetwork.steady_state(self, x)
        return super().adjoint_gradient(x, error_v, reduced) * self.output_scale

    def describe(self) -> dict:
        out = super().describe()
        out["edges"] = self.physical_edges.describe()
        out["amplifiers"] = {"layer_gain": self.layer_gain, "n_layers": self.n_layers,
                             "model": "ideal bidirectional voltage amplifiers between node layers"}
        return out
