"""LinearResistorNetwork against Kirchhoff's laws, closed forms and energy balance."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.physics.network import Network, all_to_all, lattice, layered, random_graph
from labtrain.kinds.resistor.model import LinearResistorNetwork

RTOL = 1e-9


def random_conductances(net: Network, seed: int = 0) -> np.ndarray:
    """Log-uniform over the default range 10 uS .. 1 mS (a 100x spread)."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), net.n_edges))


def dense_laplacian(net: Network, g: np.ndarray) -> np.ndarray:
    """Kirchhoff matrix built edge by edge (independent of Network.incidence)."""
    lap = np.zeros((net.n_nodes, net.n_nodes))
    for (a, b), ge in zip(net.edges, g):
        lap[a, a] += ge
        lap[b, b] += ge
        lap[a, b] -= ge
        lap[b, a] -= ge
    return lap


def kirchhoff_solve(net: Network, g: np.ndarray, x: np.ndarray, mode: str = "voltage",
                    out_current: np.ndarray | None = None) -> np.ndarray:
    """Node voltages of one example by a dense solve of KCL at every non-imposed node."""
    n = net.n_nodes
    lap = dense_laplacian(net, g)
    v = np.zeros(n)
    fixed = list(net.grounds)
    inj = np.zeros(n)
    if mode == "voltage":
        fixed += list(net.inputs)
        v[list(net.inputs)] = x
    else:
        inj[list(net.inputs)] = x
    if out_current is not None:
        inj[list(net.outputs)] += out_current
    free = np.setdiff1d(np.arange(n), fixed)
    rhs = inj[free] - lap[np.ix_(free, fixed)] @ v[fixed]
    v[free] = np.linalg.solve(lap[np.ix_(free, free)], rhs)
    return v


NETS = {
    "random12": lambda: random_graph(12, 30, seed=3, n_inputs=2, n_outputs=2),
    "lattice": lambda: lattice(4, 4, diagonals=True, n_inputs=2, n_outputs=2),
    "all_to_all": lambda: all_to_all(7, n_inputs=3, n_outputs=2),
    "layered": lambda: layered([3, 4, 2]),
    "two_grounds": lambda: random_graph(15, 32, seed=8, n_inputs=2, n_outputs=3, n_grounds=2),
}


@pytest.fixture(params=list(NETS), scope="module")
def net(request):
    return NETS[request.param]()


@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_matches_dense_kirchhoff_solve(net, mode):
    g = random_conductances(net, 1)
    model = LinearResistorNetwork(net, g, input_mode=mode)
    rng = np.random.default_rng(2)
    scale = 1.0 if mode == "voltage" else 1e-4  # volts or amperes
    x = rng.uniform(-1, 1, (4, len(net.inputs))) * scale
    cur = rng.uniform(-1, 1, (4, len(net.outputs))) * 1e-4
    for state, currents in ((model.steady_state(x), None), (model.steady_state(x, output_current_a=cur), cur)):
        ref = np.array([kirchhoff_solve(net, g, x[b], mode, None if currents is None else currents[b])
                        for b in range(4)])
        np.testing.assert_allclose(state.node_v, ref, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(state.output_v, ref[:, list(net.outputs)], rtol=RTOL, atol=1e-12)
        drops = ref[:, net.edges[:, 0]] - ref[:, net.edges[:, 1]]
        np.testing.assert_allclose(state.edge_drops.values, drops, rtol=RTOL, atol=1e-12)
        assert np.all(state.node_v[:, list(net.grounds)] == 0.0)
        if mode == "voltage":
            np.testing.assert_allclose(state.node_v[:, list(net.inputs)], x, rtol=1e-14)


def test_kcl_residual_is_zero_at_free_nodes(net):
    g = random_conductances(net, 4)
    model = LinearResistorNetwork(net, g)
    cur = np.full((3, len(net.outputs)), 2e-5)
    state = model.steady_state(np.random.default_rng(0).normal(size=(3, len(net.inputs))), output_current_a=cur)
    net_current = state.node_v @ dense_laplacian(net, g)  # current leaving each node into the resistors
    hidden = net.hidden
    scale = np.abs(net_current).max()
    assert np.abs(net_current[:, hidden]).max() <= 1e-10 * scale
    np.testing.assert_allclose(net_current[:, list(net.outputs)], cur, rtol=1e-9)
    # the sources and grounds together absorb exactly what is injected: total current is zero
    assert np.abs(net_current.sum(axis=1)).max() <= 1e-10 * scale


# ------------------------------------------------------------ closed forms
def series_divider(g1: float, g2: float) -> Network:
    # input 0 --g1-- output 1 --g2-- ground 2
    return Network(3, [[0, 1], [1, 2]], [0], [1], [2], 1e-9, 1.0)


@pytest.mark.parametrize("g1,g2", [(1e-3, 1e-3), (1e-4, 3e-4), (7e-5, 2e-6)])
def test_series_voltage_divider(g1, g2):
    model = LinearResistorNetwork(series_divider(g1, g2), np.array([g1, g2]))
    v_in = np.array([[1.0], [-0.3], [2.5]])
    state = model.steady_state(v_in)
    np.testing.assert_allclose(state.output_v, g1 / (g1 + g2) * v_in, rtol=1e-12)
    # drops: V g2/(g1+g2) across the first resistor, V g1/(g1+g2) across the second
    np.testing.assert_allclose(state.edge_drops.values, v_in * np.array([g2, g1]) / (g1 + g2), rtol=1e-12)
    # power = V^2 * series conductance
    np.testing.assert_allclose(model.power_w(state), v_in[:, 0] ** 2 * g1 * g2 / (g1 + g2), rtol=1e-12)


def test_parallel_divider():
    # two resistors in parallel from input to output, one output to ground
    g1, g2, g3 = 2e-4, 5e-4, 1e-4
    net = Network(3, [[0, 1], [0, 1], [1, 2]], [0], [1], [2], 1e-9, 1.0)
    model = LinearResistorNetwork(net, np.array([g1, g2, g3]))
    out = model.steady_state([[1.5]]).output_v
    np.testing.assert_allclose(out, [[1.5 * (g1 + g2) / (g1 + g2 + g3)]], rtol=1e-12)


def test_current_source_input_closed_form():
    g1, g2 = 2e-4, 6e-4
    model = LinearResistorNetwork(series_divider(g1, g2), np.array([g1, g2]), input_mode="current")
    i_in = np.array([[1e-4], [-3e-5]])
    state = model.steady_state(i_in)
    # the whole current flows through both resistors to ground
    np.testing.assert_allclose(state.output_v, i_in / g2, rtol=1e-12)
    np.testing.assert_allclose(state.node_v[:, 0], i_in[:, 0] * (1 / g1 + 1 / g2), rtol=1e-12)


def test_output_current_injection_closed_form():
    g1, g2 = 2e-4, 6e-4
    model = LinearResistorNetwork(series_divider(g1, g2), np.array([g1, g2]))
    # input held at 0 V (shorted source): the output sees g1 || g2 to ground
    state = model.steady_state([[0.0]], output_current_a=[[1e-4]])
    np.testing.assert_allclose(state.output_v, [[1e-4 / (g1 + g2)]], rtol=1e-12)
    # in current mode the (open) input floats: only g2 carries the current
    model_c = LinearResistorNetwork(series_divider(g1, g2), np.array([g1, g2]), input_mode="current")
    state_c = model_c.steady_state([[0.0]], output_current_a=[[1e-4]])
    np.testing.assert_allclose(state_c.output_v, [[1e-4 / g2]], rtol=1e-12)
    np.testing.assert_allclose(state_c.node_v[0, 0], 1e-4 / g2, rtol=1e-12)


# ------------------------------------------------------------------- clamp
@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_output_clamp(net, mode):
    g = random_conductances(net, 5)
    model = LinearResistorNetwork(net, g, input_mode=mode)
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (5, len(net.inputs))) * (1.0 if mode == "voltage" else 1e-4)
    clamp = rng.uniform(-0.5, 0.5, (5, len(net.outputs)))
    state = model.steady_state(x, output_clamp_v=clamp)
    np.testing.assert_allclose(state.output_v, clamp, rtol=1e-9, atol=1e-12)
    # KCL: the clamp supplies exactly the net current leaving each output node into the resistors
    kcl = state.node_v @ dense_laplacian(net, g)
    np.testing.assert_allclose(state.clamp_current_a, kcl[:, list(net.outputs)], rtol=1e-8, atol=1e-15)
    # and the clamped state is the free solve with that current injected
    ref = np.array([kirchhoff_solve(net, g, x[b], mode, state.clamp_current_a[b]) for b in range(5)])
    np.testing.assert_allclose(state.node_v, ref, rtol=1e-8, atol=1e-12)
    # clamping at the free output voltages needs no current
    free = model.steady_state(x)
    same = model.steady_state(x, output_clamp_v=free.output_v)
    assert np.abs(same.clamp_current_a).max() <= 1e-12 * np.abs(state.clamp_current_a).max()
    assert free.clamp_current_a is None


def test_clamp_closed_form_divider():
    g1, g2 = 2e-4, 6e-4
    model = LinearResistorNetwork(series_divider(g1, g2), np.array([g1, g2]))
    state = model.steady_state([[1.0]], output_clamp_v=[[0.1]])
    # current leaving the output: 0.1 g2 into ground minus (1 - 0.1) g1 arriving from the input
    np.testing.assert_allclose(state.clamp_current_a, [[0.1 * g2 - 0.9 * g1]], rtol=1e-12)


def test_clamp_and_current_are_exclusive():
    model = LinearResistorNetwork(series_divider(1e-4, 1e-4), np.array([1e-4, 1e-4]))
    with pytest.raises(ValueError, match="not both"):
        model.steady_state([[1.0]], output_current_a=[[0.0]], output_clamp_v=[[0.0]])


# ------------------------------------------------------- batching & linearity
def test_batch_equals_loop(net):
    g = random_conductances(net, 7)
    model = LinearResistorNetwork(net, g)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, len(net.inputs)))
    cur = rng.normal(size=(6, len(net.outputs))) * 1e-5
    clamp = rng.normal(size=(6, len(net.outputs)))
    for kw in ({}, {"output_current_a": cur}, {"output_clamp_v": clamp}):
        batch = model.steady_state(x, **kw)
        for b in range(6):
            single = model.steady_state(x[b:b + 1], **{k: v[b:b + 1] for k, v in kw.items()})
            np.testing.assert_allclose(batch.node_v[b], single.node_v[0], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(batch.edge_drops.values[b], single.edge_drops.values[0],
                                       rtol=1e-12, atol=1e-15)
    # a 1-D input vector is one example
    np.testing.assert_allclose(model.steady_state(x[0]).node_v, model.steady_state(x[:1]).node_v)


@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_superposition(net, mode):
    g = random_conductances(net, 9)
    model = LinearResistorNetwork(net, g, input_mode=mode)
    rng = np.random.default_rng(10)
    x1, x2 = rng.normal(size=(2, 3, len(net.inputs)))
    c1, c2 = rng.normal(size=(2, 3, len(net.outputs))) * 1e-5
    a, b = 0.7, -2.3
    lhs = model.steady_state(a * x1 + b * x2, output_current_a=a * c1 + b * c2).node_v
    rhs = a * model.steady_state(x1, output_current_a=c1).node_v + b * model.steady_state(x2, output_current_a=c2).node_v
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-13)
    # inputs and output currents superpose
    split = model.steady_state(x1).node_v + model.steady_state(0 * x1, output_current_a=c1).node_v
    np.testing.assert_allclose(model.steady_state(x1, output_current_a=c1).node_v, split, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------- energy / Tellegen
@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_dissipated_power_equals_input_power(net, mode):
    g = random_conductances(net, 11)
    model = LinearResistorNetwork(net, g, input_mode=mode)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4, len(net.inputs))) * (1.0 if mode == "voltage" else 1e-4)
    cur = rng.normal(size=(4, len(net.outputs))) * 1e-5
    state = model.steady_state(x, output_current_a=cur)
    v = state.node_v
    supplied = v @ dense_laplacian(net, g)  # current every source pushes into its node
    terminals = list(net.inputs) + list(net.outputs) + list(net.grounds)
    p_in = np.sum(v[:, terminals] * supplied[:, terminals], axis=1)
    p_diss = model.power_w(state)
    np.testing.assert_allclose(p_diss, p_in, rtol=1e-9)
    assert np.all(p_diss > 0)
    # Tellegen: sum_e dv_e * i_e = 0 for any two states of the same graph (here the drops of one
    # state against the branch currents g*dv of another, balanced by the terminal powers)
    other = model.steady_state(rng.normal(size=x.shape) * (1.0 if mode == "voltage" else 1e-4))
    w = other.node_v
    cross_edges = np.sum(state.edge_drops.values * (g * other.edge_drops.values), axis=1)
    cross_terms = np.sum(v[:, terminals] * (w @ dense_laplacian(net, g))[:, terminals], axis=1)
    np.testing.assert_allclose(cross_edges, cross_terms, rtol=1e-9, atol=1e-18)


def test_free_state_minimises_power():
    # Thomson's principle: any perturbation of the free-node voltages raises the dissipated power
    net = random_graph(12, 30, seed=3)
    g = random_conductances(net, 13)
    model = LinearResistorNetwork(net, g)
    v = model.steady_state([[1.0, -0.5]]).node_v[0]
    lap = dense_laplacian(net, g)
    p0 = v @ lap @ v
    np.testing.assert_allclose(p0, model.power_w(model.steady_state([[1.0, -0.5]]))[0], rtol=1e-12)
    rng = np.random.default_rng(0)
    free = np.setdiff1d(np.arange(net.n_nodes), list(net.inputs) + list(net.grounds))
    for _ in range(5):
        w = v.copy()
        w[free] += rng.normal(size=len(free)) * 1e-2
        assert w @ lap @ w > p0


# -------------------------------------------------------------- bad input
def test_constructor_validation():
    net = series_divider(1e-4, 1e-4)
    with pytest.raises(ValueError, match="input_mode"):
        LinearResistorNetwork(net, np.array([1e-4, 1e-4]), input_mode="ac")
    with pytest.raises(ValueError, match="expected 2"):
        LinearResistorNetwork(net, np.array([1e-4]))
    with pytest.raises(ValueError, match="positive"):
        LinearResistorNetwork(net, np.array([1e-4, 0.0]))
    model = LinearResistorNetwork(net, np.array([1e-4, 1e-4]))
    with pytest.raises(ValueError, match="input values"):
        model.steady_state([[1.0, 2.0]])
