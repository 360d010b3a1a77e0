"""Graph description of a resistor network: nodes, edges, terminal roles, bounds.

A :class:`Network` is pure data.  It says which nodes are driven (``inputs``),
which are read and nudged (``outputs``) and which are tied to 0 V
(``grounds``); every other node is hidden.  Each edge carries a tunable
conductance with per-edge bounds in siemens.

Builders return a validated network: :func:`lattice`, :func:`all_to_all`,
:func:`layered`, :func:`random_graph` and :func:`from_edge_list`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = [
    "Network",
    "NetworkError",
    "NetworkTerminals",
    "lattice",
    "all_to_all",
    "layered",
    "random_graph",
    "from_edge_list",
]

DEFAULT_G_MIN_S = 1e-5  # 100 kOhm
DEFAULT_G_MAX_S = 1e-3  # 1 kOhm


class NetworkError(ValueError):
    """A network description is inconsistent (bad index, disconnected, ...)."""


@dataclass(frozen=True, eq=False)
class Network:
    """A resistor network with terminal roles.

    Parameters
    ----------
    n_nodes : int
        Number of nodes, indexed ``0 .. n_nodes-1``.
    edges : ndarray of int, shape (m, 2)
        Node pairs joined by a tunable resistor.
    inputs, outputs, grounds : tuple of int
        Node indices of the driven, read-out and 0 V nodes (disjoint).
    g_min_s, g_max_s : ndarray, shape (m,)
        Allowed conductance range of every edge in siemens.
    name : str
        Short description, e.g. ``"lattice 5x5"``.
    positions : ndarray, shape (n_nodes, 2), optional
        Drawing coordinates (used by plots only).
    """

    n_nodes: int
    edges: np.ndarray
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    grounds: tuple[int, ...]
    g_min_s: np.ndarray
    g_max_s: np.ndarray
    name: str = "network"
    positions: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        m = len(edges)
        object.__setattr__(self, "n_nodes", int(self.n_nodes))
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        object.__setattr__(self, "grounds", tuple(int(i) for i in self.grounds))
        object.__setattr__(self, "g_min_s", np.broadcast_to(np.asarray(self.g_min_s, float), (m,)).copy())
        object.__setattr__(self, "g_max_s", np.broadcast_to(np.asarray(self.g_max_s, float), (m,)).copy())
        self._validate()

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        n, e = self.n_nodes, self.edges
        if n < 2:
            raise NetworkError(f"a network needs at least 2 nodes, got {n}")
        if len(e) == 0:
            raise NetworkError("a network needs at least one edge")
        if e.min() < 0 or e.max() >= n:
            bad = e[(e < 0) | (e >= n)][0]
            raise NetworkError(f"edge endpoint {bad} is outside the node range 0..{n - 1}")
        if np.any(e[:, 0] == e[:, 1]):
            raise NetworkError(f"edge {int(np.flatnonzero(e[:, 0] == e[:, 1])[0])} joins a node to itself")
        for role in ("inputs", "outputs", "grounds"):
            idx = getattr(self, role)
            for i in idx:
                if not 0 <= i < n:
                    raise NetworkError(f"{role} node {i} is outside the node range 0..{n - 1}")
            if len(set(idx)) != len(idx):
                raise NetworkError(f"{role} lists a node twice: {list(idx)}")
        if not self.outputs:
            raise NetworkError("a network needs at least one output node")
        if not self.inputs:
            raise NetworkError("a network needs at least one input node")
        if not self.grounds:
            raise NetworkError("a network needs at least one ground node (0 V reference)")
        roles = [set(self.inputs), set(self.outputs), set(self.grounds)]
        names = ["inputs", "outputs", "grounds"]
        for a in range(3):
            for b in range(a + 1, 3):
                both = roles[a] & roles[b]
                if both:
                    raise NetworkError(f"node {min(both)} is in both {names[a]} and {names[b]}")
        if np.any(self.g_min_s <= 0) or np.any(self.g_max_s < self.g_min_s):
            raise NetworkError("conductance bounds must satisfy 0 < g_min_s <= g_max_s on every edge")
        n_comp, labels = connected_components(self.adjacency(), directed=False)
        if n_comp > 1:
            grounded = set(labels[list(self.grounds)])
            floating = [i for i in range(n) if labels[i] not in grounded]
            if floating:
                raise NetworkError(
                    f"{len(floating)} node(s) (e.g. node {floating[0]}) have no path to ground; "
                    "their voltage is undefined"
                )

    # -------------------------------------------------------------- structure
    @property
    def n_edges(self) -> int:
        """Number of edges (tunable resistors)."""
        return len(self.edges)

    @property
    def hidden(self) -> np.ndarray:
        """Indices of nodes that are neither inputs, outputs nor grounds."""
        mask = np.ones(self.n_nodes, bool)
        mask[list(self.inputs + self.outputs + self.grounds)] = False
        return np.flatnonzero(mask)

    def incidence(self) -> sp.csr_matrix:
        """Signed incidence matrix B (n_nodes x n_edges): +1 at edge tail, -1 at head."""
        m = self.n_edges
        cols = np.arange(m)
        data = np.r_[np.ones(m), -np.ones(m)]
        rows = np.r_[self.edges[:, 0], self.edges[:, 1]]
        return sp.csr_matrix((data, (rows, np.r_[cols, cols])), shape=(self.n_nodes, m))

    def adjacency(self) -> sp.csr_matrix:
        """Symmetric 0/1 adjacency matrix."""
        e = self.edges
        a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(self.n_nodes,) * 2)
        return (a + a.T).tocsr()

    def clip(self, conductance_s: np.ndarray) -> np.ndarray:
        """Clip conductances into each edge's allowed range."""
        return np.clip(conductance_s, self.g_min_s, self.g_max_s)

    def describe(self) -> dict:
        """JSON-friendly summary (goes into the run snapshot)."""
        return {
            "name": self.name,
            "n_nodes": self.n_nodes,
            "n_edges": self.n_edges,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "grounds": list(self.grounds),
            "g_min_s": float(self.g_min_s.min()),
            "g_max_s": float(self.g_max_s.max()),
        }


class NetworkTerminals:
    """``n_inputs`` / ``n_outputs`` from the terminals of ``self.network``: shared by the solvers and chips
    built on a :class:`Network` (list it before any abstract base)."""

    network: Network

    @property
    def n_inputs(self) -> int:
        return len(self.network.inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.network.outputs)


# ---------------------------------------------------------------- builders
def _pick(candidates: Sequence[int], k: int) -> list[int]:
    """``k`` evenly spread entries of ``candidates``."""
    candidates = list(candidates)
    if k > len(candidates):
        raise NetworkError(f"cannot place {k} terminals on {len(candidates)} candidate nodes")
    if k == 0:
        return []
    pos = np.floor((np.arange(k) + 0.5) * len(candidates) / k).astype(int)  # centred, always distinct
    return [candidates[i] for i in pos]


def _terminals(explicit: Sequence[int] | None, default: list[int]) -> list[int]:
    return list(default) if explicit is None else [int(i) for i in explicit]


def lattice(
    rows: int,
    cols: int,
    *,
    diagonals: bool = False,
    skip: int = 0,
    n_inputs: int = 2,
    n_outputs: int = 1,
    inputs: Sequence[int] | None = None,
    outputs: Sequence[int] | None = None,
    grounds: Sequence[int] | None = None,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
    inset: int = 0,
) -> Network:
    """2-D square lattice, node ``r * cols + c``.

    Default terminals: inputs spread along the left column, outputs along the
    right column, one ground at the middle of the bottom row.  ``skip`` > 1 adds
    links between nodes ``skip`` apart along rows and columns.

    ``inset`` moves the default input column ``inset`` columns in from the
    left edge and the default output column ``inset`` columns in from the
    right edge (``inset = 0``: the edges).  Inset terminals have four
    neighbours and sit closer together; XY oscillator lattices use it
    (:func:`labtrain.kinds.xy.model.xy_lattice`).
    """
    if rows < 1 or cols < 2:
        raise NetworkError(f"lattice needs rows >= 1 and cols >= 2, got {rows}x{cols}")
    inset = int(inset)
    if inset < 0 or (inputs is None or outputs is None) and inset > cols - 1 - inset:
        raise NetworkError(f"inset {inset} leaves no room for an input and an output column on a "
                           f"{rows}x{cols} lattice (need 0 <= inset <= (cols - 1) / 2)")
    idx = np.arange(rows * cols).reshape(rows, cols)
    parts = [np.c_[idx[:, :-1].ravel(), idx[:, 1:].ravel()], np.c_[idx[:-1, :].ravel(), idx[1:, :].ravel()]]
    if diagonals:
        parts += [np.c_[idx[:-1, :-1].ravel(), idx[1:, 1:].ravel()], np.c_[idx[:-1, 1:].ravel(), idx[1:, :-1].ravel()]]
    if skip > 1:
        parts += [np.c_[idx[:, :-skip].ravel(), idx[:, skip:].ravel()], np.c_[idx[:-skip, :].ravel(), idx[skip:, :].ravel()]]
    edges = np.vstack([p for p in parts if len(p)])
    left, right = list(idx[:, inset]), list(idx[:, cols - 1 - inset])
    # More terminals than rows: fill whole columns inwards from the left (inputs) / right (outputs).
    ins = _terminals(inputs, _pick(left, n_inputs) if rows >= n_inputs else
                     [int(i) for i in idx[:, inset:].T.ravel()[:n_inputs]])
    outs = _terminals(outputs, _pick(right, n_outputs) if rows >= n_outputs else
                      [int(i) for i in idx[:, ::-1][:, inset:].T.ravel()[:n_outputs]])
    if (inputs is None or outputs is None) and set(ins) & set(outs):
        raise NetworkError(f"{n_inputs} inputs and {n_outputs} outputs do not fit on a {rows}x{cols} lattice "
                           f"(inputs fill columns from the left, outputs from the right); use a larger lattice "
                           f"or list inputs and outputs explicitly")
    used = set(ins) | set(outs)
    bottom = [int(i) for i in idx[-1, 1:-1] if int(i) not in used] or \
             [int(i) for i in idx[::-1].ravel() if int(i) not in used][:1]
    if grounds is None and not bottom:
        raise NetworkError(f"no node left for the ground on a {rows}x{cols} lattice with {n_inputs} inputs and "
                           f"{n_outputs} outputs; use a larger lattice")
    gnd = _terminals(grounds, [bottom[len(bottom) // 2]] if bottom else [])
    rr, cc = np.divmod(np.arange(rows * cols), cols)
    return Network(rows * cols, edges, ins, outs, gnd, g_min_s, g_max_s, f"lattice {rows}x{cols}",
                   np.c_[cc, -rr].astype(float))


def all_to_all(
    n_nodes: int,
    *,
    n_inputs: int = 2,
    n_outputs: int = 1,
    inputs: Sequence[int] | None = None,
    outputs: Sequence[int] | None = None,
    grounds: Sequence[int] | None = None,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
) -> Network:
    """Complete graph.  Default terminals: inputs first, then outputs, ground last."""
    i, j = np.triu_indices(n_nodes, 1)
    ins = _terminals(inputs, list(range(n_inputs)))
    outs = _terminals(outputs, list(range(n_inputs, n_inputs + n_outputs)))
    gnd = _terminals(grounds, [n_nodes - 1])
    ang = 2 * np.pi * np.arange(n_nodes) / n_nodes
    return Network(n_nodes, np.c_[i, j], ins, outs, gnd, g_min_s, g_max_s, f"all-to-all {n_nodes}",
                   np.c_[np.cos(ang), np.sin(ang)])


def layered(
    sizes: Sequence[int],
    *,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
) -> Network:
    """Layers dense between consecutive layers.

    ``sizes = [n_in, hidden..., n_out]``.  The first layer gets one extra node
    tied to ground (a 0 V bias terminal), so every layer sees the reference.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise NetworkError(f"layered needs at least two layers of size >= 1, got {sizes}")
    layer_sizes = [sizes[0] + 1] + sizes[1:]
    starts = np.cumsum([0] + layer_sizes)
    edges = []
    pos = []
    for k, size in enumerate(layer_sizes):
        pos += [(k, (size - 1) / 2 - r) for r in range(size)]
        if k + 1 < len(layer_sizes):
            a = np.arange(starts[k], starts[k + 1])
            b = np.arange(starts[k + 1], starts[k + 2])
            edges.append(np.array(np.meshgrid(a, b, indexing="ij")).reshape(2, -1).T)
    ins = list(range(sizes[0]))
    gnd = [sizes[0]]
    outs = list(range(starts[-2], starts[-1]))
    return Network(int(starts[-1]), np.vstack(edges), ins, outs, gnd, g_min_s, g_max_s,
                   "layered " + "-".join(map(str, sizes)), np.array(pos, float))


def random_graph(
    n_nodes: int,
    n_edges: int,
    *,
    seed: int = 0,
    n_inputs: int = 2,
    n_outputs: int = 1,
    n_grounds: int = 1,
    inputs: Sequence[int] | None = None,
    outputs: Sequence[int] | None = None,
    grounds: Sequence[int] | None = None,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
) -> Network:
    """Connected random graph: a random spanning tree plus random extra edges.

    Terminals are drawn at random (seeded) unless given explicitly.
    """
    if n_edges < n_nodes - 1:
        raise NetworkError(f"a connected graph on {n_nodes} nodes needs >= {n_nodes - 1} edges, got {n_edges}")
    max_edges = n_nodes * (n_nodes - 1) // 2
    if n_edges > max_edges:
        raise NetworkError(f"{n_nodes} nodes allow at most {max_edges} edges, got {n_edges}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_nodes)
    tree = [(int(order[k]), int(order[rng.integers(k)])) for k in range(1, n_nodes)]
    have = {tuple(sorted(e)) for e in tree}
    edges = list(tree)
    while len(edges) < n_edges:
        need = n_edges - len(edges)
        cand = rng.integers(0, n_nodes, size=(2 * need + 8, 2))
        for a, b in cand:
            key = (min(a, b), max(a, b))
            if a != b and key not in have:
                have.add(key)
                edges.append((int(a), int(b)))
                if len(edges) == n_edges:
                    break
    n_term = n_inputs + n_outputs + n_grounds
    if n_term > n_nodes:
        raise NetworkError(f"{n_term} terminals do not fit on {n_nodes} nodes")
    drawn = [int(i) for i in rng.choice(n_nodes, size=n_term, replace=False)]
    ins = _terminals(inputs, drawn[:n_inputs])
    outs = _terminals(outputs, drawn[n_inputs:n_inputs + n_outputs])
    gnd = _terminals(grounds, drawn[n_inputs + n_outputs:])
    ang = rng.uniform(0, 2 * np.pi, n_nodes)
    rad = np.sqrt(rng.uniform(0, 1, n_nodes))
    return Network(n_nodes, np.array(edges), ins, outs, gnd, g_min_s, g_max_s,
                   f"random {n_nodes} nodes / {n_edges} edges", np.c_[rad * np.cos(ang), rad * np.sin(ang)])


#: Largest node count of an edge-list file (the ``[chip] n_nodes`` limit of the other builders).
MAX_EDGE_LIST_NODES = 10_000_000


def from_edge_list(
    path: str | Path,
    *,
    inputs: Sequence[int],
    outputs: Sequence[int],
    grounds: Sequence[int],
    n_nodes: int | None = None,
    g_min_s: float = DEFAULT_G_MIN_S,
    g_max_s: float = DEFAULT_G_MAX_S,
) -> Network:
    """Load edges from a text file: one ``tail head`` pair of node indices per line.

    Lines starting with ``#`` are comments.  ``n_nodes`` defaults to the largest
    index + 1.
    """
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"edge-list file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetworkError(f"{path}: not a text edge list (byte {exc.start} is not UTF-8 text)") from None
    except OSError as exc:
        raise NetworkError(f"{path}: cannot read ({exc.strerror})") from None
    if "\x00" in text:
        raise NetworkError(f"{path}: not a text edge list (it holds NUL bytes)")
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        try:
            a, b = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise NetworkError(f"{path}:{lineno}: expected two node indices, got {line.strip()!r}") from None
        rows.append((a, b))
    if not rows:
        raise NetworkError(f"{path}: no edges found")
    edges = np.array(rows)
    if int(edges.max()) >= MAX_EDGE_LIST_NODES:
        raise NetworkError(f"{path}: node index {int(edges.max())} is beyond the {MAX_EDGE_LIST_NODES:,} nodes an "
                           "edge list may have (nodes are numbered 0, 1, 2, ...)")
    n = int(edges.max()) + 1 if n_nodes is None else int(n_nodes)
    return Network(n, edges, list(inputs), list(outputs), list(grounds), g_min_s, g_max_s, f"edge list {path.name}")
