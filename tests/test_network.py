"""Network builders, role validation, incidence matrix and bounds (labtrain.physics.network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from labtrain.physics.network import (DEFAULT_G_MAX_S, DEFAULT_G_MIN_S, Network, NetworkError, all_to_all,
                              from_edge_list, lattice, layered, random_graph)


def edge_set(net: Network) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in net.edges.tolist()}


def assert_valid_terminals(net: Network) -> None:
    roles = [set(net.inputs), set(net.outputs), set(net.grounds)]
    assert sum(map(len, roles)) == len(set().union(*roles)), "roles overlap"
    assert len(net.inputs) == len(roles[0]) and len(net.outputs) == len(roles[1])
    for r in roles:
        assert all(0 <= i < net.n_nodes for i in r)


def n_components(net: Network) -> int:
    return connected_components(net.adjacency(), directed=False)[0]


# ----------------------------------------------------------------- lattice
def test_lattice_nearest_neighbour_edges():
    net = lattice(3, 4)
    assert net.n_nodes == 12
    # rows*(cols-1) horizontal + (rows-1)*cols vertical
    assert net.n_edges == 3 * 3 + 2 * 4
    expected = set()
    for r in range(3):
        for c in range(4):
            k = r * 4 + c
            if c + 1 < 4:
                expected.add((k, k + 1))
            if r + 1 < 3:
                expected.add((k, k + 4))
    assert edge_set(net) == expected
    assert len(edge_set(net)) == net.n_edges  # no duplicate edges
    assert_valid_terminals(net)
    # inputs on the left column, outputs on the right column
    assert all(i % 4 == 0 for i in net.inputs)
    assert all(o % 4 == 3 for o in net.outputs)
    assert net.positions.shape == (12, 2)


def test_lattice_diagonals_add_both_diagonals():
    plain, diag = lattice(3, 3), lattice(3, 3, diagonals=True)
    extra = edge_set(diag) - edge_set(plain)
    assert len(extra) == 2 * 2 * 2  # (rows-1)*(cols-1) cells, two diagonals each
    assert edge_set(plain) <= edge_set(diag)
    for a, b in extra:
        (ra, ca), (rb, cb) = divmod(a, 3), divmod(b, 3)
        assert abs(ra - rb) == 1 and abs(ca - cb) == 1


def test_lattice_skip_links():
    plain, skip = lattice(4, 5), lattice(4, 5, skip=2)
    extra = edge_set(skip) - edge_set(plain)
    assert len(extra) == 4 * (5 - 2) + (4 - 2) * 5
    for a, b in extra:
        (ra, ca), (rb, cb) = divmod(a, 5), divmod(b, 5)
        assert (ra == rb and abs(ca - cb) == 2) or (ca == cb and abs(ra - rb) == 2)
    # skip=1 would duplicate nearest neighbours: it adds nothing
    assert edge_set(lattice(4, 5, skip=1)) == edge_set(plain)
    assert len(edge_set(skip)) == skip.n_edges


@pytest.mark.parametrize("rows,cols,n_in,n_out", [(3, 3, 2, 1), (4, 4, 3, 3), (5, 5, 4, 2), (2, 6, 2, 2)])
def test_lattice_default_terminals_are_distinct(rows, cols, n_in, n_out):
    # regression: terminals spread along a column used to collide (3x3 with 2 inputs failed)
    net = lattice(rows, cols, n_inputs=n_in, n_outputs=n_out)
    assert len(net.inputs) == n_in and len(net.outputs) == n_out
    assert_valid_terminals(net)


def test_lattice_explicit_terminals_and_bounds():
    net = lattice(3, 3, inputs=[0, 3], outputs=[8], grounds=[7], g_min_s=2e-5, g_max_s=5e-4)
    assert net.inputs == (0, 3) and net.outputs == (8,) and net.grounds == (7,)
    assert np.all(net.g_min_s == 2e-5) and np.all(net.g_max_s == 5e-4)
    assert net.g_min_s.shape == (net.n_edges,)


def test_lattice_too_small_rejected():
    with pytest.raises(NetworkError):
        lattice(1, 1)


# -------------------------------------------------------------- all-to-all
def test_all_to_all_is_complete():
    net = all_to_all(6, n_inputs=2, n_outputs=2)
    assert net.n_edges == 15
    assert edge_set(net) == {(i, j) for i in range(6) for j in range(i + 1, 6)}
    assert net.inputs == (0, 1) and net.outputs == (2, 3) and net.grounds == (5,)
    assert list(net.hidden) == [4]


# ------------------------------------------------------------------ layered
def test_layered_structure():
    net = layered([3, 4, 2])
    # first layer has one extra node (the grounded bias terminal)
    assert net.n_nodes == 3 + 1 + 4 + 2
    assert net.n_edges == (3 + 1) * 4 + 4 * 2
    assert net.inputs == (0, 1, 2)
    assert net.grounds == (3,)
    assert net.outputs == (8, 9)
    layer = np.r_[[0] * 4, [1] * 4, [2] * 2]
    # every edge joins consecutive layers; every pair of consecutive layers is dense
    assert np.all(layer[net.edges[:, 1]] - layer[net.edges[:, 0]] == 1)
    assert edge_set(net) == {(a, b) for a in range(4) for b in range(4, 8)} | {
        (a, b) for a in range(4, 8) for b in range(8, 10)}
    assert_valid_terminals(net)


@pytest.mark.parametrize("sizes", [[3], [2, 0, 1], []])
def test_layered_bad_sizes(sizes):
    with pytest.raises(NetworkError):
        layered(sizes)


# ------------------------------------------------------------ random graph
def test_random_graph_connected_simple_and_seeded():
    net = random_graph(12, 30, seed=4, n_inputs=2, n_outputs=2)
    assert net.n_nodes == 12 and net.n_edges == 30
    assert len(edge_set(net)) == 30  # no duplicate edges
    assert np.all(net.edges[:, 0] != net.edges[:, 1])
    assert n_components(net) == 1
    assert_valid_terminals(net)
    again = random_graph(12, 30, seed=4, n_inputs=2, n_outputs=2)
    assert np.array_equal(again.edges, net.edges) and again.inputs == net.inputs
    other = random_graph(12, 30, seed=5, n_inputs=2, n_outputs=2)
    assert edge_set(other) != edge_set(net)


def test_random_graph_tree_and_complete_extremes():
    tree = random_graph(10, 9, seed=1)
    assert n_components(tree) == 1 and tree.n_edges == 9
    full = random_graph(6, 15, seed=1)
    assert edge_set(full) == {(i, j) for i in range(6) for j in range(i + 1, 6)}


@pytest.mark.parametrize("n_edges", [5, 29])
def test_random_graph_bad_edge_count(n_edges):
    with pytest.raises(NetworkError):
        random_graph(7 if n_edges == 29 else 10, n_edges)


# --------------------------------------------------------- from edge list
def test_from_edge_list(tmp_path):
    f = tmp_path / "chip.edges"
    f.write_text("# tail head\n0 1\n1,2   # comma works too\n\n2 3\n3 0\n1 3\n")
    net = from_edge_list(f, inputs=[0], outputs=[2], grounds=[3])
    assert net.n_nodes == 4 and net.n_edges == 5
    assert net.edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 0], [1, 3]]
    assert net.name == "edge list chip.edges"
    wider = from_edge_list(f, inputs=[0], outputs=[2], grounds=[3, 4], n_nodes=5)
    # node 4 has no edge but is itself a ground: allowed
    assert wider.n_nodes == 5


@pytest.mark.parametrize("text,match", [
    ("0 1\n1 x\n", "expected two node indices"),
    ("0 1\n2\n", "expected two node indices"),
    ("# only a comment\n\n", "no edges"),
    ("0 1\n1 2\n2 2\n", "itself"),
    ("0 1\n1 2\n1 -2\n", "outside"),
    ("0 1\n3 4\n", "no path to ground"),
])
def test_from_edge_list_bad_file(tmp_path, text, match):
    f = tmp_path / "bad.edges"
    f.write_text(text)
    with pytest.raises(NetworkError, match=match):
        from_edge_list(f, inputs=[0], outputs=[1], grounds=[2], n_nodes=5)


def test_from_edge_list_error_names_line(tmp_path):
    f = tmp_path / "bad.edges"
    f.write_text("0 1\n1 2\nthree four\n")
    with pytest.raises(NetworkError, match=r"bad\.edges:3"):
        from_edge_list(f, inputs=[0], outputs=[1], grounds=[2])


def test_from_edge_list_missing_file(tmp_path):
    with pytest.raises(NetworkError, match="does not exist"):
        from_edge_list(tmp_path / "nope.txt", inputs=[0], outputs=[1], grounds=[2])


# --------------------------------------------------------- role validation
PATH4 = [[0, 1], [1, 2], [2, 3]]


def make(edges=PATH4, n=4, inputs=(0,), outputs=(2,), grounds=(3,), **kw):
    return Network(n, edges, inputs, outputs, grounds, kw.pop("g_min_s", 1e-5), kw.pop("g_max_s", 1e-3), **kw)


def test_valid_minimal_network():
    net = make()
    assert list(net.hidden) == [1]
    assert net.describe()["n_edges"] == 3


@pytest.mark.parametrize("kw,match", [
    (dict(inputs=(0,), outputs=(0,)), "both inputs and outputs"),
    (dict(inputs=(0,), grounds=(0,)), "both inputs and grounds"),
    (dict(outputs=(3,), grounds=(3,)), "both outputs and grounds"),
    (dict(inputs=(0, 0)), "twice"),
    (dict(outputs=(4,)), "outside"),
    (dict(grounds=(-1,)), "outside"),
    (dict(outputs=()), "output"),
    (dict(inputs=()), "input"),
    (dict(grounds=()), "ground"),
    (dict(edges=[[0, 1], [1, 4]]), "outside"),
    (dict(edges=[[0, 1], [2, 2], [2, 3]]), "itself"),
    (dict(edges=np.zeros((0, 2))), "edge"),
    (dict(n=1, edges=[[0, 0]]), "2 nodes"),
    (dict(g_min_s=0.0), "bounds"),
    (dict(g_min_s=1e-3, g_max_s=1e-4), "bounds"),
])
def test_role_and_structure_validation(kw, match):
    with pytest.raises(NetworkError, match=match):
        make(**kw)


def test_disconnected_from_ground_rejected():
    # nodes 0-1 form an island; the ground sits on the other island 2-3
    with pytest.raises(NetworkError, match="no path to ground"):
        make(edges=[[0, 1], [2, 3]], inputs=(0,), outputs=(1,), grounds=(3,))
    # an isolated hidden node is floating too
    with pytest.raises(NetworkError, match="no path to ground"):
        make(n=5)
    # two islands that each have a ground are fine
    net = make(edges=[[0, 1], [2, 3]], inputs=(0,), outputs=(2,), grounds=(1, 3))
    assert net.n_edges == 2


def test_network_error_is_value_error():
    assert issubclass(NetworkError, ValueError)


# ------------------------------------------------------- incidence & clip
@pytest.mark.parametrize("net", [lattice(3, 4, diagonals=True), random_graph(12, 30, seed=2), layered([2, 3, 1])],
                         ids=["lattice", "random", "layered"])
def test_incidence_matrix(net):
    b = net.incidence().toarray()
    assert b.shape == (net.n_nodes, net.n_edges)
    # one +1 at the tail, one -1 at the head of every edge, nothing else
    assert np.all(b[net.edges[:, 0], np.arange(net.n_edges)] == 1.0)
    assert np.all(b[net.edges[:, 1], np.arange(net.n_edges)] == -1.0)
    assert np.all(np.count_nonzero(b, axis=0) == 2)
    assert np.allclose(b.sum(axis=0), 0.0)
    # B^T v gives the drops v_tail - v_head
    v = np.random.default_rng(0).normal(size=net.n_nodes)
    assert np.allclose(b.T @ v, v[net.edges[:, 0]] - v[net.edges[:, 1]])
    # B B^T is the unit-conductance Laplacian: degrees on the diagonal
    lap = b @ b.T
    deg = np.bincount(net.edges.ravel(), minlength=net.n_nodes)
    assert np.array_equal(np.diag(lap), deg)
    a = net.adjacency().toarray()
    assert np.array_equal(a, a.T) and np.array_equal(lap, np.diag(deg) - a)


def test_clip_to_per_edge_bounds():
    net = Network(3, [[0, 1], [1, 2]], [0], [1], [2], g_min_s=[1e-5, 2e-5], g_max_s=[1e-4, 5e-4])
    g = net.clip(np.array([1e-7, 1.0]))
    assert g.tolist() == [1e-5, 5e-4]
    inside = np.array([3e-5, 1e-4])
    assert np.array_equal(net.clip(inside), inside)


def test_default_bounds_and_describe_is_json():
    net = all_to_all(np.int64(5))  # numpy integer sizes must not leak into the snapshot
    assert np.all(net.g_min_s == DEFAULT_G_MIN_S) and np.all(net.g_max_s == DEFAULT_G_MAX_S)
    d = json.loads(json.dumps(net.describe()))
    assert d["n_nodes"] == 5 and d["n_edges"] == 10 and d["inputs"] == [0, 1]
