"""Partial updates: train only a subset of the edges.

Four ways to choose the subset (``[learning] mask_mode``):

``fixed``
    One random subset, drawn once from the seed.
``random``
    A new random subset every step (step ``k``'s subset depends only on ``(seed, k)``).
``near_output``
    One fixed subset: the edges closest to the output nodes.  An edge's distance is the hop
    distance (number of edges on the shortest path) from its nearer endpoint to the nearest output
    node, so edges touching an output are at distance 0; ties are broken by a seeded random order.
    Needs parameters that are network edges (:func:`output_distance_hops`).
``largest_gradient``
    Every step, the parameters with the largest ``|gradient|`` of that step (in the optimiser's
    normalised coordinates, ``|dC/dtheta| * span``): a greedy per-step choice made after the
    estimate, which every rule provides; ties are broken by a seeded random order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from labtrain.chip.base import NetworkChip

__all__ = ["UpdateMask", "MASK_MODES", "output_distance_hops", "parameters_are_edges"]

MASK_MODES = ("fixed", "random", "near_output", "largest_gradient")


def output_distance_hops(network: Any, parameter_edges: np.ndarray | None = None) -> np.ndarray:
    """Hop distance of every parameter's edge to the nearest output node.

    Parameters
    ----------
    network : Network
        The graph (``n_nodes``, ``edges`` of shape (m, 2), ``outputs``).
    parameter_edges : ndarray of int, optional
        Edge index of every parameter (default: parameter ``e`` is edge ``e``).

    Returns
    -------
    ndarray of float, shape (P,)
        ``min`` over the edge's two endpoints of the number of edges on the shortest path from that
        endpoint to any output node: 0 for an edge touching an output, ``inf`` for an edge in a
        component without outputs.
    """
    edges = np.asarray(network.edges, np.int64).reshape(-1, 2)
    n = int(network.n_nodes)
    ones = np.ones(len(edges))
    adjacency = sp.csr_matrix((np.r_[ones, ones], (np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]])),
                              shape=(n, n))
    node_hops = shortest_path(adjacency, unweighted=True, directed=False, indices=list(network.outputs)).min(axis=0)
    edge_hops = np.minimum(node_hops[edges[:, 0]], node_hops[edges[:, 1]])
    if parameter_edges is None:
        return edge_hops
    return edge_hops[np.asarray(parameter_edges, np.int64)]


def parameters_are_edges(chip: Any) -> bool:
    """Whether every trainable parameter of ``chip`` sits on an edge of its network.

    True for a chip with a ``network`` and a ``parameter_edges`` contract (a
    :class:`~labtrain.chip.base.NetworkChip`) whose parameter edges are valid edge indices, one per
    parameter; False for chips without a graph (DNPUs, layered rate networks) or with parameters
    that are not edges (an oscillator network's bias fields).
    """
    if not isinstance(chip, NetworkChip):
        return False
    edges = np.asarray(chip.parameter_edges)
    n_edges = len(np.asarray(chip.network.edges).reshape(-1, 2))
    return (edges.shape == (chip.parameter_spec.size,) and np.issubdtype(edges.dtype, np.integer)
            and bool(np.all((edges >= 0) & (edges < n_edges))))


class UpdateMask:
    """Choose which parameters an update may change.

    Parameters
    ----------
    n_params : int
        Number of parameters.
    fraction : float
        Fraction of parameters updated, in (0, 1].
    mode : {"fixed", "random", "near_output", "largest_gradient"}
        How the subset is chosen (module docstring).
    seed : int
        Seed; the random mode draws step ``k``'s subset from ``(seed, k)`` so a
        resumed run sees the same subsets.  It also orders ties in ``near_output`` and
        ``largest_gradient``.
    distance_hops : ndarray, shape (n_params,), optional
        ``near_output``: each parameter's hop distance to the outputs (:func:`output_distance_hops`).
    gradient_scale : ndarray, shape (n_params,), optional
        ``largest_gradient``: ranks by ``|gradient * gradient_scale|`` (default 1; :meth:`for_chip` passes
        each parameter's span, so the ranking is in the optimiser's normalised coordinates).

    Raises
    ------
    ValueError
        A fraction outside (0, 1], an unknown mode, or ``near_output`` without ``distance_hops`` of length
        ``n_params``.
    """

    def __init__(self, n_params: int, fraction: float = 1.0, mode: str = "fixed", seed: int = 0,
                 distance_hops: np.ndarray | None = None, gradient_scale: np.ndarray | None = None) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"update fraction must be in (0, 1], got {fraction}")
        if mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
        self.n_params, self.fraction, self.mode, self.seed = n_params, float(fraction), mode, int(seed)
        self.n_selected = max(1, int(round(fraction * n_params)))
        # a seeded random rank per parameter: the tie-break of near_output and largest_gradient
        self._tie_rank = np.random.default_rng([self.seed, 15485863]).permutation(n_params)
        self.gradient_scale = None if gradient_scale is None else np.asarray(gradient_scale, float)
        if self.gradient_scale is not None and self.gradient_scale.shape != (n_params,):
            raise ValueError(f"gradient_scale must have shape ({n_params},), got {self.gradient_scale.shape}")
        if mode == "near_output":
            if distance_hops is None or np.shape(distance_hops) != (n_params,):
                raise ValueError(f"mask mode 'near_output' needs every parameter's hop distance to the outputs "
                                 f"({n_params} values)")
            self._fixed = self._top(-np.asarray(distance_hops, float))
        else:
            self._fixed = self._draw(np.random.default_rng([self.seed, 7919]))

    @classmethod
    def for_chip(cls, chip: Any, fraction: float = 1.0, mode: str = "fixed", seed: int = 0) -> "UpdateMask":
        """The mask for ``chip``'s parameters: hop distances from its network for ``near_output``, its
        parameter spans as the ``largest_gradient`` scale.

        Raises
        ------
        ValueError
            ``near_output`` on a chip whose parameters are not network edges (:func:`parameters_are_edges`),
            whatever the fraction.
        """
        spec = chip.parameter_spec
        hops = None
        if mode == "near_output":
            if not parameters_are_edges(chip):
                raise ValueError(f"mask_mode = 'near_output' needs parameters that are network edges; the "
                                 f"parameters of this chip ({type(chip).__name__}, {spec.size} {spec.name}) are not")
            hops = output_distance_hops(chip.network, chip.parameter_edges)
        return cls(spec.size, fraction, mode, seed, distance_hops=hops, gradient_scale=spec.span)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        mask = np.zeros(self.n_params, bool)
        mask[rng.choice(self.n_params, self.n_selected, replace=False)] = True
        return mask

    def _top(self, score: np.ndarray) -> np.ndarray:
        """The ``n_selected`` parameters of highest ``score``, ties in the seeded random order."""
        order = np.lexsort((self._tie_rank, -score))
        mask = np.zeros(self.n_params, bool)
        mask[order[:self.n_selected]] = True
        return mask

    def at_step(self, step: int, gradient: np.ndarray | None = None) -> np.ndarray | None:
        """Boolean mask for ``step`` (``None`` means every parameter).

        ``gradient`` (shape ``(n_params,)``, the step's estimate) is needed by ``largest_gradient``
        and ignored by the other modes.
        """
        if self.fraction >= 1.0:
            return None
        if self.mode in ("fixed", "near_output"):
            return self._fixed
        if self.mode == "largest_gradient":
            if gradient is None:
                raise ValueError("mask mode 'largest_gradient' needs the step's gradient")
            g = np.abs(np.asarray(gradient, float))
            if g.shape != (self.n_params,):
                raise ValueError(f"expected a gradient of shape ({self.n_params},), got {g.shape}")
            if self.gradient_scale is not None:
                g = g * np.abs(self.gradient_scale)
            return self._top(np.where(np.isfinite(g), g, -np.inf))
        return self._draw(np.random.default_rng([self.seed, 104729, step]))
