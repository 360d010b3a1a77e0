"""2-D drawing coordinates for a network without stored positions (numpy only).

Spectral start (the Laplacian's 2nd and 3rd eigenvectors) refined by a
vectorised Fruchterman-Reingold spring layout; deterministic, so a network is
drawn the same way every time.  Inputs are pulled to the left and outputs to
the right, so signals read left to right as on a schematic.

Layered networks (nodes in columns, dense between consecutive layers) are
drawn as one weight matrix per pair of layers instead (:func:`layer_blocks`):
a few thousand edges as a graph are a solid blob.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

__all__ = ["network_positions", "spring_layout", "is_layered", "layer_blocks", "block_grids"]


def network_positions(network, max_spring_nodes: int = 600) -> np.ndarray:
    """Drawing coordinates (n_nodes x 2): the network's own, else a computed layout."""
    if network.positions is not None:
        return np.asarray(network.positions, float)
    return spring_layout(network.n_nodes, network.edges, network.inputs, network.outputs,
                         iterations=100 if network.n_nodes <= max_spring_nodes else 0)


def _spectral(n: int, edges: np.ndarray) -> np.ndarray:
    a = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    a = ((a + a.T) > 0).astype(float)
    deg = np.asarray(a.sum(axis=1)).ravel()
    lap = sp.diags(deg) - a
    if n <= 400:
        _, vec = np.linalg.eigh(lap.toarray())
        return vec[:, 1:3].copy()
    try:
        _, vec = eigsh(lap.tocsc() + 1e-9 * sp.identity(n), k=3, sigma=0, which="LM",
                       v0=np.random.default_rng(0).random(n))
        return vec[:, 1:3].copy()
    except Exception:  # pragma: no cover - a degenerate graph: fall back to a circle
        t = 2 * np.pi * np.arange(n) / n
        return np.c_[np.cos(t), np.sin(t)]


def spring_layout(n: int, edges: np.ndarray, inputs=(), outputs=(), iterations: int = 100) -> np.ndarray:
    """Node coordinates in about [-1, 1]^2."""
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    pos = _spectral(n, edges)
    pos -= pos.mean(axis=0)
    pos /= np.abs(pos).max() + 1e-12
    pos += 1e-3 * np.random.default_rng(0).standard_normal(pos.shape)
    k = 1.0 / np.sqrt(n)
    temp = 0.1
    ins, outs = list(inputs), list(outputs)
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((delta**2).sum(-1)) + 1e-9
        force = (delta / dist[..., None] * (k * k / dist)[..., None]).sum(axis=1)  # repulsion
        d = pos[edges[:, 0]] - pos[edges[:, 1]]
        dl = np.sqrt((d**2).sum(-1)) + 1e-9
        pull = d * (dl / k)[:, None]
        np.add.at(force, edges[:, 0], -pull)
        np.add.at(force, edges[:, 1], pull)
        if ins:
            force[ins, 0] -= 5 * k  # inputs to the left, outputs to the right
        if outs:
            force[outs, 0] += 5 * k
        length = np.sqrt((force**2).sum(-1)) + 1e-12
        pos += force / length[:, None] * np.minimum(length, temp)[:, None]
        pos -= pos.mean(axis=0)
        pos /= np.abs(pos).max() + 1e-12
        temp *= 0.97
    return pos


def is_layered(network) -> bool:
    """Nodes in columns (integer x = layer), as :func:`labtrain.physics.network.layered` places them."""
    pos = network.positions if network is not None else None
    return (pos is not None and str(network.name).startswith("layered") and len(pos) > 0
            and np.allclose(pos[:, 0], np.round(pos[:, 0])))


def _layer_name(k: int, n_layers: int) -> str:
    return "inputs" if k == 0 else "outputs" if k == n_layers - 1 else f"hidden {k}"


def layer_blocks(network) -> list[tuple[str, np.ndarray]]:
    """One matrix per pair of joined layers of a layered network: (title, edge index of every cell).

    Rows are the nodes of the later layer, columns those of the earlier one, each from the top of the
    drawing down; a cell without an edge holds -1.
    """
    pos = np.asarray(network.positions, float)
    layer = np.round(pos[:, 0]).astype(np.int64)
    layer -= layer.min()
    n_layers = int(layer.max()) + 1
    e = np.asarray(network.edges, np.int64)
    a, b = e[:, 0].copy(), e[:, 1].copy()
    swap = layer[a] > layer[b]
    a[swap], b[swap] = b[swap], a[swap]
    rank = np.empty(len(pos), np.int64)  # position of every node in its layer, top first
    for k in range(n_layers):
        nodes = np.flatnonzero(layer == k)
        rank[nodes[np.argsort(-pos[nodes, 1], kind="stable")]] = np.arange(len(nodes))
    size = np.bincount(layer, minlength=n_layers)
    out = []
    pairs = sorted({(int(layer[i]), int(layer[j])) for i, j in zip(a, b)})
    for la, lb in pairs:
        sel = np.flatnonzero((layer[a] == la) & (layer[b] == lb))
        grid = np.full((size[lb], size[la]), -1, np.int64)
        grid[rank[b[sel]], rank[a[sel]]] = sel
        title = f"{_layer_name(la, n_layers)} → {_layer_name(lb, n_layers)}" if la != lb else \
            f"within {_layer_name(la, n_layers)}"
        out.append((title, grid))
    return out


def block_grids(blocks) -> list[tuple[str, np.ndarray]]:
    """(title, parameter index of every cell) of a chip's parameter blocks (``Chip.parameter_blocks``):
    a matrix per 2-D block, one row per 1-D block (biases)."""
    out = []
    for b in blocks:
        shape = tuple(b.get("shape") or (b["stop"] - b["start"],))
        index = np.arange(b["start"], b["stop"], dtype=np.int64)
        if len(shape) == 2 and shape[0] * shape[1] == len(index):
            out.append((f"{b['name']}  ({shape[0]}×{shape[1]})", index.reshape(shape)))
        else:
            out.append((f"{b['name']}  ({len(index)})", index.reshape(1, -1)))
    return out
