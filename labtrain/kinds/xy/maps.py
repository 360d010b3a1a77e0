"""Spatial maps of an XY oscillator network: where the couplings are, and how far the inputs reach.

Recorded by the run loop every ``[run] record_maps_every`` steps (and once
before training) into the run file's ``/maps`` group (docs/run-file.md):

``coupling_rad_per_s`` (n_edges,)
    Every edge's coupling ``W_e`` (rad/s; signed: > 0 ferromagnetic, < 0 antiferromagnetic).
``response`` (n_inputs, n_nodes)
    Linear response of every oscillator to each input phase,
    ``|d phi_i / d phi_in_k|`` (rad/rad), at the free equilibria and averaged
    over a fixed set of training examples and the random starts.  From
    implicit differentiation of ``dE/dphi_F = 0`` with the inputs clamped:
    ``H_FF dphi_F = -H_F,k dphi_k``.  Input ``k``'s own entry is 1, other
    clamped nodes 0.  Starts on saddles (free-node Hessian not positive
    definite) are left out.  It shows how far an input perturbation reaches
    into the lattice -- and whether it reaches the outputs.
``coupling_image_rad_per_s`` (2 rows - 1, 2 cols - 1), grid networks only
    The couplings on a doubled grid: ``[2r, 2c + 1]`` is the edge from node
    ``(r, c)`` to ``(r, c + 1)``, ``[2r + 1, 2c]`` the edge to ``(r + 1, c)``,
    ``[2r + 1, 2c + 1]`` the mean of the two diagonals crossing there; node
    sites and absent edges are NaN.  Links longer than one site (``skip``,
    between stacked layers) are only in ``coupling_rad_per_s``.
``response_image`` (rows, cols), grid networks only
    ``response`` averaged over the inputs, at node ``(r, c)``; NaN where no node.

A *grid network* has integer drawing positions (lattices, stacked lattices);
image row ``r`` is lattice row ``r`` (top row first), so ``image[r, c]`` is
node ``r * cols + c`` of a lattice.
"""

from __future__ import annotations

import numpy as np

from labtrain.physics.network import Network

__all__ = ["XYMapRecorder", "xy_linear_response", "grid_layout", "GridLayout", "MAP_ATTRS"]

#: unit, meaning and dimension names (after the recording dimension) of every map, stored as dataset attributes.
MAP_ATTRS = {
    "coupling_rad_per_s": {"unit": "rad/s", "doc": "coupling W_e of every edge", "dims": ["edge"]},
    "response": {"unit": "rad/rad", "doc": "|dphi_i/dphi_in_k| per input k and node i, mean over examples and "
                                           "stable starts at the free equilibria (linear response)",
                 "dims": ["input", "node"]},
    "coupling_image_rad_per_s": {"unit": "rad/s", "doc": "couplings on the doubled grid: [2r, 2c+1] edge "
                                                         "(r,c)-(r,c+1), [2r+1, 2c] edge (r,c)-(r+1,c); NaN elsewhere",
                                 "dims": ["grid_row", "grid_col"]},
    "response_image": {"unit": "rad/rad", "doc": "response averaged over the inputs at node (r, c); NaN: no node",
                       "dims": ["row", "col"]},
}


class GridLayout:
    """Where the nodes and nearest-neighbour edges of a grid network sit in an image.

    Attributes
    ----------
    shape : (int, int)
        Node grid (rows, cols).
    node_rc : ndarray, shape (n_nodes, 2)
        Row and column of every node.
    edge_index, edge_flat : ndarray
        Edges drawn on the doubled grid and their flat pixel index there.
    """

    def __init__(self, network: Network) -> None:
        pos = np.round(np.asarray(network.positions, float)).astype(np.int64)
        col = pos[:, 0] - pos[:, 0].min()
        row = pos[:, 1].max() - pos[:, 1]
        self.shape = (int(row.max()) + 1, int(col.max()) + 1)
        self.node_rc = np.c_[row, col]
        e = network.edges
        d = np.abs(self.node_rc[e[:, 0]] - self.node_rc[e[:, 1]])
        self.edge_index = np.flatnonzero(d.max(axis=1) <= 1)
        mid = self.node_rc[e[self.edge_index, 0]] + self.node_rc[e[self.edge_index, 1]]
        self.double_shape = (2 * self.shape[0] - 1, 2 * self.shape[1] - 1)
        self.edge_flat = mid[:, 0] * self.double_shape[1] + mid[:, 1]
        self._count = np.bincount(self.edge_flat, minlength=self.double_shape[0] * self.double_shape[1])
        self.node_flat = row * self.shape[1] + col

    def edge_image(self, edge_values: np.ndarray) -> np.ndarray:
        """Edge values on the doubled grid (mean where two diagonals cross; NaN elsewhere)."""
        v = np.asarray(edge_values, float)[self.edge_index]
        total = np.bincount(self.edge_flat, weights=v, minlength=self._count.size)
        img = np.full(self._count.size, np.nan)
        has = self._count > 0
        img[has] = total[has] / self._count[has]
        return img.reshape(self.double_shape)

    def node_image(self, node_values: np.ndarray) -> np.ndarray:
        """Node values on the node grid (NaN where no node)."""
        img = np.full(self.shape[0] * self.shape[1], np.nan)
        img[self.node_flat] = np.asarray(node_values, float)
        return img.reshape(self.shape)


def grid_layout(network: Network | None) -> GridLayout | None:
    """The :class:`GridLayout` of a network with integer drawing positions, else ``None``."""
    if network is None or network.positions is None:
        return None
    pos = np.asarray(network.positions, float)
    if not np.allclose(pos, np.round(pos)) or len(np.unique(np.round(pos), axis=0)) != network.n_nodes:
        return None
    return GridLayout(network)


def xy_linear_response(model, phases: np.ndarray, max_block: int = 4_000_000) -> np.ndarray:
    """``mean |dphi_i/dphi_in_k|`` (n_inputs, n_nodes) over the stable equilibria ``phases`` (B, S, n).

    ``model`` is the chip's :class:`~labtrain.kinds.xy.model.XYModel`; see the module docstring.
    """
    n = model.n_nodes
    flat = np.asarray(phases, float).reshape(-1, n)
    free, ins = model.free, model.inputs
    total = np.zeros((len(ins), n))
    used = 0
    chunk = max(1, max_block // (n * n))
    for lo in range(0, len(flat), chunk):
        h = model.hessian(flat[lo:lo + chunk], free_only=False)
        h_ff = h[:, free][:, :, free]
        h_fi = h[:, free][:, :, ins]
        w = np.linalg.eigvalsh(h_ff)
        stable = w[:, 0] > 1e-9 * np.maximum(1.0, np.abs(w[:, -1]))
        if not stable.any():
            continue
        d = np.linalg.solve(h_ff[stable], -h_fi[stable])  # (K, nf, n_in)
        total[:, free] += np.abs(d).sum(axis=0).T
        used += int(stable.sum())
    if used:
        total /= used
    total[np.arange(len(ins)), ins] = 1.0
    return total


class XYMapRecorder:
    """Spatial maps of an :class:`~labtrain.kinds.xy.chip.XYChip` after a training step.

    Parameters
    ----------
    chip : XYChip
        The chip (its network and model are read; it is measured).
    inputs : ndarray, shape (N, n_inputs)
        Training inputs; the first ``max_examples`` are the fixed probe set.
    seed : int
        Run seed; the random starts of the probe measurement after step ``k``
        come from ``(seed, 6, k + 1)``, so a resumed run records the same maps.
    max_examples : int
        Probe-set size (the response costs one Hessian solve per example and start).
    """

    attrs = MAP_ATTRS

    def __init__(self, chip, inputs: np.ndarray, seed: int, max_examples: int = 16) -> None:
        self.chip = chip
        self.inputs = np.asarray(inputs, float)[:max_examples]
        self.seed = int(seed)
        self.layout = grid_layout(chip.network)

    def record(self, step: int) -> dict[str, np.ndarray]:
        """Maps at the chip's current parameters (``step``: the completed step, -1 before training)."""
        chip = self.chip
        chip.reseed([self.seed, 6, step + 1])
        meas = chip.measure(self.inputs)
        coupling = chip.split_parameters()["coupling"].copy()
        response = xy_linear_response(chip.network_model(), meas.phases)
        maps = {"coupling_rad_per_s": coupling, "response": response}
        if self.layout is not None:
            maps["coupling_image_rad_per_s"] = self.layout.edge_image(coupling)
            maps["response_image"] = self.layout.node_image(response.mean(axis=0))
        return maps
