"""``NonlinearResistorNetwork(fold_sources=...)``: the source edges folded into Norton equivalents give the
unfolded network's steady states, clamp currents, chord solves and gradients (to round-off)."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.kinds.nonlinear.amplified import AmplifiedNetwork, layered_node_layers
from labtrain.kinds.nonlinear.model import EdgeDropGather, NonlinearResistorNetwork, diode_network


def _pair(gain: float = 1.0):
    net, edges = diode_network((3, 4, 3, 2), complementary_inputs=True, n_bias_inputs=1)
    rng = np.random.default_rng(0)
    g = np.exp(rng.uniform(np.log(net.g_min_s[0]), np.log(net.g_max_s[0]), len(edges.indices("linear"))))
    if gain == 1.0:
        return (NonlinearResistorNetwork(net, edges, g, fold_sources=False),
                NonlinearResistorNetwork(net, edges, g, fold_sources=True))
    layer = layered_node_layers(net, (4, 3))
    return (AmplifiedNetwork(net, edges, layer, gain, g, fold_sources=False),
            AmplifiedNetwork(net, edges, layer, gain, g, fold_sources=True))


@pytest.mark.parametrize("gain", [1.0, 3.0])
def test_folded_solve_is_the_full_solve(gain):
    plain, folded = _pair(gain)
    assert plain.source_fold() is None and folded.source_fold() is not None
    # the input layer (7 inputs + ground -> 4 hidden) and the skip edges (-> 2 outputs) fold into 6 edges
    red = folded.source_fold().reduced.network
    assert red.n_edges == plain.network.n_edges - 8 * 4 - 8 * 2 + 6
    x = np.random.default_rng(1).uniform(0, 1, (5, 7))
    for kw in ({}, {"output_current_a": np.full((5, 2), 2e-5)}, {"output_clamp_v": np.full((5, 2), 0.3)}):
        a, b = plain.steady_state(x, **kw), folded.steady_state(x, **kw)
        scale = np.abs(a.edge_current_a).max()
        np.testing.assert_allclose(b.node_v, a.node_v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.edge_drop_v, a.edge_drop_v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.edge_current_a, a.edge_current_a, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(b.conductance_s, a.conductance_s, rtol=1e-9)
        if "output_clamp_v" in kw:
            np.testing.assert_allclose(b.clamp_current_a, a.clamp_current_a, rtol=0, atol=1e-12 * scale)
    t = np.full((5, 2), 0.3)
    np.testing.assert_allclose(folded.exact_gradient(x, t), plain.exact_gradient(x, t), rtol=1e-9,
                               atol=1e-12 * np.abs(plain.exact_gradient(x, t)).max())


def test_folded_chord_series_is_the_full_one():
    plain, folded = _pair()
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (3, 7))
    series = x[:, None, :] + 0.01 * np.sin(np.linspace(0, 6, 8))[None, :, None]
    start = plain.steady_state(x).node_v[:, None, :]
    a = plain.steady_state(series, start_v=start, chord=True)
    b = folded.steady_state(series, start_v=start, chord=True)
    np.testing.assert_allclose(b.node_v, a.node_v, rtol=0, atol=1e-12)


def test_auto_folds_only_large_source_layers():
    net, edges = diode_network((3, 4, 2), complementary_inputs=True, n_bias_inputs=1)
    assert NonlinearResistorNetwork(net, edges).source_fold() is None  # 48 source edges: not worth it
    big, big_edges = diode_network((200, 10, 2), complementary_inputs=True, n_bias_inputs=1)
    assert NonlinearResistorNetwork(big, big_edges).source_fold() is not None


def test_outputs_only_measure_is_chunked_and_equal():
    """An evaluation (no nudge, no edge drops) is solved in chunks: the same outputs as one solve."""
    from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
    net, edges = diode_network((3, 4, 2), complementary_inputs=True, n_bias_inputs=1)
    x = np.random.default_rng(3).uniform(0, 1, (25, 7))
    whole = NonlinearResistorChip(net, edges).measure(x).output_v
    small = NonlinearResistorChip(net, edges, max_chunk_elements=3 * net.n_edges * 4)  # 4 examples per chunk
    np.testing.assert_allclose(small.measure(x).output_v, whole, rtol=0, atol=1e-13)
    np.testing.assert_allclose(small.network_model().steady_state(x).output_v, whole, rtol=0, atol=1e-13)


@pytest.mark.parametrize("sizes,min_block", [((3, 4, 3, 2), 1), ((20, 30, 10), 256), ((5, 6, 4), 10 ** 9)])
def test_edge_drop_gather_blocks_equal_the_plain_gather(sizes, min_block):
    """Dense layer blocks by broadcasting (or none, when every run is below ``min_block``) = the gather."""
    net, _ = diode_network(sizes, complementary_inputs=True, n_bias_inputs=1)
    gather = EdgeDropGather(net.edges, min_block_edges=min_block)
    if min_block <= 256:
        assert gather.blocks and len(gather.rest) < net.n_edges
    else:
        assert not gather.blocks and len(gather.rest) == net.n_edges
    covered = sum(hi - lo for lo, hi, _, _ in gather.blocks) + len(gather.rest)
    assert covered == net.n_edges
    v = np.random.default_rng(2).normal(size=(7, net.n_nodes))
    want = v[:, net.edges[:, 0]] - v[:, net.edges[:, 1]]
    np.testing.assert_array_equal(gather.of(v), want)


def test_folded_state_evaluates_elements_only_when_read():
    _, folded = _pair()
    x = np.random.default_rng(3).uniform(0, 1, (4, 7))
    state = folded.steady_state(x)
    assert callable(state._edge_current_a)  # an EP step reads the drops only
    cur, gd = state.edge_current_a, state.conductance_s
    assert not callable(state._edge_current_a) and state.edge_current_a is cur
    want_cur, want_g, _ = folded._el.evaluate(state.edge_drop_v.T, folded.conductance_s, folded.gate_v)
    np.testing.assert_array_equal(cur, want_cur.T)
    np.testing.assert_array_equal(gd, want_g.T)


def test_fold_structure_is_reused_across_parameter_updates_and_stays_exact():
    """After an update the fold reuses its topology (no rebuild) and still equals the unfolded solve."""
    plain, folded = _pair()
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (3, 7))
    first = folded.source_fold()
    for _ in range(2):
        theta = folded.parameters * np.exp(rng.normal(0, 0.5, folded.parameters.shape))
        folded, plain = folded.with_parameters(theta), plain.with_parameters(theta)
        fold = folded.source_fold()
        assert fold.drops is first.drops and fold.reduced.network is first.reduced.network
        assert fold.reduced is not first.reduced
        a, b = plain.steady_state(x), folded.steady_state(x)
        np.testing.assert_allclose(b.node_v, a.node_v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.edge_current_a, a.edge_current_a, rtol=0,
                                   atol=1e-12 * np.abs(a.edge_current_a).max())
    assert folded.edges.indices("linear") is plain.edges.indices("linear")  # computed once per description
