"""Nonlinear resistive networks: element physics, the batched Newton solve, the exact gradient, the chip."""

import json

import numpy as np
import pytest

from labtrain.chip.base import AC_TONES, CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, ClampNudge, \
    CurrentNudge, Tone
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.physics.demod import plan_tones
from labtrain.physics.network import Network, lattice, random_graph
from labtrain.training.optim import Adam
from labtrain.protocols.fidelity import finite_difference_gradient
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.nonlinear.model import (EDGE_KINDS, NonlinearEdges, NonlinearResistorNetwork,
                                                    SteadyStateError, THERMAL_VOLTAGE_V, diode_network,
                                                    xor_diode_network)
from labtrain.training.tasks import accuracy, make_task


def random_model(kinds, seed, *, nodes=12, edges=24, n_outputs=2, **kw):
    net = random_graph(nodes, edges, seed=seed, n_inputs=3, n_outputs=n_outputs)
    rng = np.random.default_rng(seed)
    e = NonlinearEdges.from_kinds(rng.choice(kinds, net.n_edges), **kw)
    model = NonlinearResistorNetwork(net, e)
    lo, hi = model.lower, model.upper
    theta = lo + rng.uniform(0.1, 0.9, len(lo)) * (hi - lo)
    return model.with_parameters(theta), rng


def chain3():
    """input 0 -- edge 0 -- output 1 -- edge 1 -- ground 2"""
    return Network(3, [(0, 1), (1, 2)], [0], [1], [2], 1e-5, 1e-3)


def kcl_residual(model, state, injected=None):
    """Net current leaving every node through the edges, minus injected current, at free nodes."""
    net = model.network
    leaving = (net.incidence() @ state.edge_current_a.reshape(-1, net.n_edges).T).T
    if injected is not None:
        leaving[:, list(net.outputs)] -= injected
    fixed = list(net.inputs) + list(net.grounds)
    free = np.setdiff1d(np.arange(net.n_nodes), fixed)
    return leaving[:, free]


# ------------------------------------------------------------------ elements
def test_diode_iv_shockley_series_resistance_and_rectification():
    net = chain3()
    e = NonlinearEdges.from_kinds(["diode", "linear"])
    model = NonlinearResistorNetwork(net, e, [1e-3])
    dv = np.array([[0.3, 0.0], [-0.5, 0.0], [0.6, 0.0]])
    cur, gd = model.edge_characteristics(dv)
    shockley = 1e-12 * np.expm1(dv[:, 0] / THERMAL_VOLTAGE_V)
    np.testing.assert_allclose(cur[:, 0], shockley, rtol=1e-12)
    np.testing.assert_allclose(gd[:, 0], 1e-12 * np.exp(dv[:, 0] / THERMAL_VOLTAGE_V) / THERMAL_VOLTAGE_V, rtol=1e-12)
    # Rectification: forward drive conducts (output follows input minus ~0.5 V), reverse drive blocks.
    out = model.steady_state(np.array([[2.0], [-2.0]])).output_v[:, 0]
    assert 1.2 < out[0] < 1.6
    assert out[1] == pytest.approx(-1e-12 / 1e-3, rel=1e-6)  # only the saturation current: -1 pA x 1 kOhm
    # Series resistance: the closed form satisfies dv = i R_s + n V_T log(1 + i / I_s).
    es = NonlinearEdges.from_kinds(["diode", "linear"], series_ohm=50.0, ideality=1.8)
    ms = NonlinearResistorNetwork(net, es, [1e-3])
    v = np.linspace(-0.25, 3, 27)
    i = ms.edge_characteristics(np.c_[v, np.zeros_like(v)])[0][:, 0]
    np.testing.assert_allclose(i * 50.0 + 1.8 * THERMAL_VOLTAGE_V * np.log1p(i / 1e-12), v, atol=1e-9)
    assert ms.edge_characteristics(np.array([[-3.0, 0.0]]))[0][0, 0] == pytest.approx(-1e-12, rel=1e-9)
    assert abs(i[-1] - (3.0 - 0.9) / 50.0) < 0.01  # large forward drive: limited by R_s


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_conductance_and_co_content_are_derivatives(kind):
    net = chain3()
    e = NonlinearEdges.from_kinds([kind, "linear"], series_ohm=20.0 if kind == "diode" else 0.0)
    model = NonlinearResistorNetwork(net, e)
    v = np.linspace(-1.5, 1.5, 61) + 0.0123
    h = 1e-6
    dv = np.c_[v, np.zeros_like(v)]
    cur, gd = model.edge_characteristics(dv)
    cp = model.edge_characteristics(dv + [h, 0])[0][:, 0]
    cm = model.edge_characteristics(dv - [h, 0])[0][:, 0]
    np.testing.assert_allclose(gd[:, 0], (cp - cm) / (2 * h), rtol=1e-5, atol=1e-12)
    phi_p = model.co_content(dv + [h, 0])[:, 0]
    phi_m = model.co_content(dv - [h, 0])[:, 0]
    np.testing.assert_allclose(cur[:, 0], (phi_p - phi_m) / (2 * h), rtol=1e-5, atol=1e-12)
    assert np.all(gd[:, 0] > 0) and np.all(np.diff(cur[:, 0]) >= 0)  # monotone
    if kind in ("linear", "transistor"):
        np.testing.assert_allclose(cur[::-1, 0], -model.edge_characteristics(-dv[::-1])[0][:, 0], rtol=1e-12)
    if kind in ("diode", "ideal_diode"):
        assert cur[-1, 0] > 1e3 * abs(cur[0, 0])  # conducts one way


def test_transistor_triode_saturation_and_gate_slope():
    net = chain3()
    e = NonlinearEdges.from_kinds(["transistor", "linear"], smoothing_v=0.0, off_s=0.0, gain_a_per_v2=2e-3,
                                  threshold_v=0.5)
    model = NonlinearResistorNetwork(net, e, [1e-3, 1.5])  # conductance, then gate voltage: V_ov = 1 V
    cur = model.edge_characteristics(np.array([[0.4, 0], [-0.4, 0], [2.0, 0]]))[0][:, 0]
    np.testing.assert_allclose(cur, [2e-3 * (0.4 - 0.08), -2e-3 * (0.4 - 0.08), 1e-3], rtol=1e-12)
    assert model.parameter_edges.tolist() == [1, 0]
    slope = model.current_parameter_derivative(np.array([[0.4, 0.3], [2.0, 0.3]]))
    np.testing.assert_allclose(slope, [[0.3, 2e-3 * 0.4], [0.3, 2e-3 * 1.0]], rtol=1e-12)


def test_bad_edge_descriptions():
    with pytest.raises(ValueError, match="unknown kind 'resistor'"):
        NonlinearEdges.from_kinds(["linear", "resistor"])
    with pytest.raises(ValueError, match="edge 1 \\(diode\\): saturation_current_a"):
        NonlinearEdges.from_kinds(["linear", "diode"], saturation_current_a=-1.0)
    with pytest.raises(ValueError, match="unknown edge parameter 'series_ohms'"):
        NonlinearEdges.from_kinds(["diode"], series_ohms=1.0)
    net = lattice(3, 3)
    with pytest.raises(ValueError, match="edge description has 2 edges"):
        NonlinearResistorNetwork(net, ["linear", "diode"])


# ------------------------------------------------------------------ solve
def test_linear_edges_match_linear_resistor_network():
    net = lattice(5, 5, n_outputs=2)
    rng = np.random.default_rng(1)
    g = np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), net.n_edges))
    ref = LinearResistorNetwork(net, g)
    model = NonlinearResistorNetwork(net, "linear", g)
    x = rng.uniform(-1, 1, (6, 2))
    cur = rng.uniform(-1e-4, 1e-4, (6, 2))
    clamp = rng.uniform(-1, 1, (6, 2))
    for kw in ({}, {"output_current_a": cur}, {"output_clamp_v": clamp}):
        a, b = model.steady_state(x, **kw), ref.steady_state(x, **kw)
        np.testing.assert_allclose(a.node_v, b.node_v, rtol=0, atol=1e-10)
        np.testing.assert_allclose(a.edge_drop_v, b.edge_drops.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.steady_state(x, output_clamp_v=clamp).clamp_current_a,
                               ref.steady_state(x, output_clamp_v=clamp).clamp_current_a, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_kcl_holds_for_mixed_networks(seed):
    model, rng = random_model(EDGE_KINDS, seed)
    x = rng.uniform(-2, 2, (8, 3))
    inj = rng.uniform(-1e-3, 1e-3, (8, 2))
    for state, injected in ((model.steady_state(x), None),
                            (model.steady_state(x, output_current_a=inj), inj)):
        assert np.abs(kcl_residual(model, state, injected)).max() < 1e-13
        assert state.max_residual_a < 1e-13
    clamp = model.steady_state(x, output_clamp_v=np.array([0.3, -0.2]))
    np.testing.assert_allclose(clamp.output_v, np.broadcast_to([0.3, -0.2], (8, 2)))
    # the clamp current is what the outputs need: inject it and the free network lands on the clamp
    again = model.steady_state(x, output_current_a=clamp.clamp_current_a)
    np.testing.assert_allclose(again.output_v, clamp.output_v, atol=1e-9)


def test_newton_converges_from_bad_starts_and_large_voltages():
    net, e = xor_diode_network(4)
    model = NonlinearResistorNetwork(net, e)
    rng = np.random.default_rng(2)
    x = rng.uniform(-50, 50, (16, len(net.inputs)))  # +-50 V on silicon diodes
    ref = model.steady_state(x)
    assert np.abs(kcl_residual(model, ref)).max() < 1e-9 * np.abs(ref.edge_current_a).max()
    wild = model.steady_state(x, start_v=rng.uniform(-1e3, 1e3, (16, net.n_nodes)))
    np.testing.assert_allclose(wild.node_v, ref.node_v, atol=1e-9)
    # exponential diodes alone (no series resistance): starts 100 V away still converge
    chain = Network(4, [(0, 1), (1, 2), (2, 3)], [0], [2], [3], 1e-5, 1e-3)
    m2 = NonlinearResistorNetwork(chain, NonlinearEdges.from_kinds(["diode", "diode", "linear"]), [1e-4])
    s = m2.steady_state(np.array([[5.0], [-5.0]]), start_v=np.array([0, 100.0, -100.0, 0]))
    assert np.abs(kcl_residual(m2, s)).max() < 1e-12


def test_failures_are_reported_clearly():
    net, e = xor_diode_network(4)
    model = NonlinearResistorNetwork(net, e, max_iter=1)
    with pytest.raises(SteadyStateError, match=r"did not converge for \d+ of 4 problems in 1 iterations "
                                               r"\(max KCL residual .* A at node \d+"):
        model.steady_state(np.full((4, 5), 0.9))
    # current pushed into a node whose edges all block (ideal diodes, no leakage): Newton cannot move
    chain = chain3()
    m2 = NonlinearResistorNetwork(chain, NonlinearEdges.from_kinds(["ideal_diode", "ideal_diode"], off_s=0.0,
                                                                    smoothing_v=0.0))
    with pytest.raises(SteadyStateError, match="singular Jacobian"):
        m2.steady_state(np.array([[-1.0]]), output_current_a=[[1e-3]])
    with pytest.raises(ValueError, match="inputs must end in 5 input voltages"):
        model.steady_state(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="inputs contain NaN"):
        model.steady_state(np.full((1, 5), np.nan))
    with pytest.raises(ValueError, match="not both"):
        model.steady_state(np.zeros((1, 5)), output_current_a=[[0.0]], output_clamp_v=[[0.0]])


def test_batched_any_leading_shape_equals_per_example_and_sparse_equals_dense():
    model, rng = random_model(EDGE_KINDS, 3, nodes=30, edges=60)
    x = rng.uniform(-1, 1, (3, 7, 3))
    cur = rng.uniform(-1e-4, 1e-4, (3, 7, 2))
    batch = model.steady_state(x, output_current_a=cur)
    assert batch.node_v.shape == (3, 7, 30) and batch.output_v.shape == (3, 7, 2)
    for b in range(3):
        for t in (0, 6):
            one = model.steady_state(x[b, t], output_current_a=cur[b, t])
            np.testing.assert_allclose(batch.node_v[b, t], one.node_v, atol=1e-11)
    # chord Newton from one start per series (what measure_ac uses) lands on the same states
    start = model.steady_state(x[:, :1], output_current_a=cur[:, :1]).node_v
    for scale in (1e-3, 1.0):  # small excursions: chord throughout; large: falls back to Newton
        xs = x[:, :1] + scale * (x - x[:, :1])
        ref = model.steady_state(xs, output_current_a=cur)
        chord = model.steady_state(xs, output_current_a=cur, start_v=start, chord=True)
        np.testing.assert_allclose(chord.node_v, ref.node_v, atol=1e-11)
    with pytest.raises(ValueError, match=r"chord=True needs start_v of shape \(3, 1, 30\)"):
        model.steady_state(x, start_v=start[:, 0], chord=True)
    sparse = NonlinearResistorNetwork(model.network, model.edges, model.parameters, dense_max_nodes=0,
                                      max_chunk_elements=1000)  # sparse LU, many chunks
    np.testing.assert_allclose(sparse.steady_state(x, output_current_a=cur).node_v, batch.node_v, atol=1e-11)


def test_monotone_networks_are_monotone_in_their_inputs():
    """No monotone network computes XOR from x alone: every node is non-decreasing in every input."""
    net, e = diode_network((2, 5, 1), complementary_inputs=False, n_bias_inputs=1)
    rng = np.random.default_rng(4)
    for seed in range(3):
        model = NonlinearResistorNetwork(net, e, np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), len(
            NonlinearResistorNetwork(net, e).parameters))))
        grid = np.linspace(-1, 1, 21)
        for k in range(2):
            x = np.zeros((21, 3))
            x[:, 1 - k] = rng.uniform(-1, 1)
            x[:, 2] = 1.0
            x[:, k] = grid
            assert np.all(np.diff(model.steady_state(x).node_v, axis=0) >= -1e-12)


# ------------------------------------------------------------------ gradient
def fd_gradient(model, x, t, rel=1e-5):
    return finite_difference_gradient(lambda p: model.with_parameters(p).loss(x, t), model.parameters, rel,
                                      floor=1e-6)


@pytest.mark.parametrize("kinds", [("linear",), ("linear", "diode"), ("linear", "ideal_diode"),
                                   ("transistor",), ("linear", "transistor"), EDGE_KINDS])
@pytest.mark.parametrize("seed", [10, 11])
def test_exact_gradient_matches_finite_differences(kinds, seed):
    model, rng = random_model(kinds, seed, nodes=9, edges=16)
    x = rng.uniform(-1.5, 1.5, (5, 3))
    t = rng.uniform(-0.5, 0.5, (5, 2))
    g = model.exact_gradient(x, t)
    fd = fd_gradient(model, x, t)
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-6


def test_series_diode_network_gradient_matches_finite_differences():
    net, e = xor_diode_network(3, series_ohm=100.0, parallel_s=1e-9)
    rng = np.random.default_rng(5)
    model = NonlinearResistorNetwork(net, e)
    model = model.with_parameters(np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), model.n_parameters)))
    task = make_task("xor", complementary_inputs=True, bias_inputs_v=(1.0,))
    g = model.exact_gradient(task.x_train, task.t_train)
    fd = fd_gradient(model, task.x_train, task.t_train)
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-6


def test_xor_diode_network_learns_xor():
    task = make_task("xor", complementary_inputs=True, bias_inputs_v=(1.0,))
    net, e = xor_diode_network(4)
    chip = NonlinearResistorChip(net, e)
    spec = chip.parameter_spec
    rng = np.random.default_rng(0)
    chip.set_parameters(np.exp(rng.uniform(np.log(spec.lower), np.log(spec.upper))))
    assert accuracy(task, chip.measure(task.x_train).output_v, task.y_train) < 1.0
    opt = Adam(learning_rate=0.05)
    for _ in range(250):
        opt.apply(chip, chip.exact_gradient(task.x_train, task.t_train))
    out = chip.measure(task.x_train).output_v
    assert accuracy(task, out, task.y_train) == 1.0
    assert 0.5 * np.mean((out - task.t_train) ** 2) < 0.01


# ------------------------------------------------------------------ chip
def make_chip(kinds=EDGE_KINDS, model_seed=6, **kw):
    model, _ = random_model(kinds, model_seed)
    return NonlinearResistorChip(model.network, model.edges, model.parameters, **kw)


def test_chip_parameters_capabilities_snapshot():
    chip = make_chip()
    assert {CURRENT_NUDGE, CLAMP_NUDGE, EDGE_DROPS, NETWORK_MODEL, AC_TONES} <= chip.capabilities
    blocks = chip.parameter_blocks()
    assert [b["unit"] for b in blocks] == ["S", "V"] and chip.parameter_spec.unit == "mixed"
    kinds = np.array(chip.edges.kinds)
    assert all(kinds[blocks[0]["edges"]] == "linear") and all(kinds[blocks[1]["edges"]] == "transistor")
    assert blocks[0]["stop"] == blocks[1]["start"] and blocks[1]["stop"] == chip.parameter_spec.size
    took = chip.set_parameters(chip.parameter_spec.upper * 10)
    np.testing.assert_array_equal(took, chip.parameter_spec.upper)
    with pytest.raises(ValueError, match="expected"):
        chip.set_parameters(np.zeros(3))
    json.dumps(chip.snapshot())
    assert make_chip(("linear", "diode")).parameter_spec.unit == "S"


def test_chip_measure_nudges_noise_and_exact_gradient():
    chip = make_chip()
    model = chip.network_model()
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 3))
    free = chip.measure(x, edge_drops=True)
    np.testing.assert_allclose(free.output_v, model.steady_state(x).output_v)
    np.testing.assert_allclose(free.edge_drops.values, model.steady_state(x).edge_drop_v)
    nudged = chip.measure(x, CurrentNudge(np.full((4, 2), 1e-5)))
    assert np.all(nudged.output_v > free.output_v)  # positive differential resistance
    clamped = chip.measure(x, ClampNudge(np.full((4, 2), 0.1)))
    np.testing.assert_allclose(clamped.output_v, 0.1)
    t = rng.uniform(-0.5, 0.5, (4, 2))
    np.testing.assert_allclose(chip.exact_gradient(x, t), model.exact_gradient(x, t))
    noisy = make_chip(read_noise_v=1e-3, seed=3)
    noisy.reseed(5)
    a = noisy.measure(x).output_v
    noisy.reseed(5)
    np.testing.assert_array_equal(a, noisy.measure(x).output_v)
    assert 1e-4 < np.std(a - free.output_v) < 1e-2


def test_measure_ac_linear_network_equals_linear_response():
    net = lattice(4, 4, n_outputs=2)
    rng = np.random.default_rng(8)
    g = np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), net.n_edges))
    chip = NonlinearResistorChip(net, "linear", g)
    ref = LinearResistorNetwork(net, g)
    plan = plan_tones(4, 10_000.0, 0.02, mains_hz=0)
    f = plan.tones_hz
    amp_b = rng.uniform(0.5e-6, 2e-6, 3)  # per-example amplitude
    tones = [Tone("output_current", 0, f[0], 1e-6), Tone("output_current", 1, f[1], amp_b),
             Tone("input", 0, f[2], 0.01), Tone("input", 1, f[3], 0.02)]
    x = rng.uniform(-1, 1, (3, 2))
    m = chip.measure_ac(x, tones, plan, settle_samples=10, edge_drops=True)
    assert m.output.in_phase.shape == (3, 2, 4) and m.edge_drops.in_phase.shape == (3, net.n_edges, 4)
    assert m.waveforms.shape == (3, 2, 10 + plan.window_samples)
    assert m.acquisition_s == pytest.approx(3 * (10 + plan.window_samples) / 10_000.0)
    out = list(net.outputs)
    expect = np.stack([np.broadcast_to(ref.response[out, 2] * 1e-6, (3, 2)), ref.response[out, 3] * amp_b[:, None],
                       np.broadcast_to(ref.response[out, 0] * 0.01, (3, 2)),
                       np.broadcast_to(ref.response[out, 1] * 0.02, (3, 2))], axis=-1)
    np.testing.assert_allclose(m.output.in_phase, expect, rtol=1e-9, atol=1e-18)
    assert np.abs(m.output.quadrature).max() < 1e-15
    np.testing.assert_allclose(m.output.dc, ref.steady_state(x).output_v, atol=1e-12)
    edge_expect = ref.edge_response[:, 2] * 1e-6
    np.testing.assert_allclose(m.edge_drops.in_phase[:, :, 0], np.broadcast_to(edge_expect, (3, net.n_edges)),
                               rtol=1e-9, atol=1e-18)


def test_measure_ac_diode_network_gives_differential_response():
    net, e = xor_diode_network(4)
    chip = NonlinearResistorChip(net, e)
    rng = np.random.default_rng(9)
    chip.set_parameters(np.exp(rng.uniform(np.log(1e-5), np.log(1e-3), chip.parameter_spec.size)))
    model = chip.network_model()
    x = make_task("xor", complementary_inputs=True, bias_inputs_v=(1.0,)).x_train
    eps = 1e-9
    z_diff = (model.steady_state(x, output_current_a=[[eps]]).output_v
              - model.steady_state(x, output_current_a=[[-eps]]).output_v)[:, 0] / (2 * eps)
    plan = plan_tones(1, 10_000.0, 0.01, mains_hz=0)
    errors = []
    for amp in (2e-5, 1e-5):
        m = chip.measure_ac(x, [Tone("output_current", 0, plan.tones_hz[0], amp)], plan)
        errors.append(np.abs(m.output.in_phase[:, 0, 0] / amp - z_diff).max() / np.abs(z_diff).max())
    assert errors[0] < 1e-2
    assert 3.0 < errors[0] / errors[1] < 5.0  # O(amplitude^2)


def test_measure_ac_batched_equals_per_example_and_chunked():
    chip = make_chip(("linear", "diode", "transistor"))
    rng = np.random.default_rng(10)
    plan = plan_tones(2, 10_000.0, 0.01, mains_hz=0)
    x = rng.uniform(-1, 1, (4, 3))
    tones = [Tone("input", 2, plan.tones_hz[0], 0.05), Tone("output_current", 1, plan.tones_hz[1],
                                                            rng.uniform(1e-6, 1e-5, 4))]
    full = chip.measure_ac(x, tones, plan, edge_drops=True)
    small = NonlinearResistorChip(chip.network, chip.edges, chip.get_parameters(), max_chunk_elements=1)
    chunked = small.measure_ac(x, tones, plan, edge_drops=True)
    np.testing.assert_allclose(chunked.edge_drops.in_phase, full.edge_drops.in_phase, atol=1e-13)
    for b in range(4):
        one = chip.measure_ac(x[b:b + 1], [tones[0], Tone("output_current", 1, tones[1].frequency_hz,
                                                               tones[1].amplitude[b])], plan)
        np.testing.assert_allclose(one.waveforms[0], full.waveforms[b], atol=1e-12)


def test_measure_ac_bad_tones():
    chip = make_chip()
    plan = plan_tones(1, 10_000.0, 0.01, mains_hz=0)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="no 'control' terminal"):
        chip.measure_ac(x, [Tone("control", 0, plan.tones_hz[0], 0.01)], plan)
    with pytest.raises(ValueError, match="not on the plan's 100 Hz grid"):
        chip.measure_ac(x, [Tone("input", 0, 150.0, 0.01)], plan)
    with pytest.raises(ValueError, match="input index 7"):
        chip.measure_ac(x, [Tone("input", 7, plan.tones_hz[0], 0.01)], plan)
    with pytest.raises(ValueError, match=r"amplitude must be a scalar or shape \(2,\)"):
        chip.measure_ac(x, [Tone("input", 0, plan.tones_hz[0], np.ones(3))], plan)


def test_protocol_layer_exact_gradient_and_analytic_rule_use_the_nonlinear_adjoint():
    from labtrain.protocols import AnalyticGradient, compare_gradients, exact_gradient
    chip = make_chip()
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (4, 3))
    t = rng.uniform(-0.5, 0.5, (4, 2))
    g = exact_gradient(chip, x, t)
    np.testing.assert_allclose(g, chip.exact_gradient(x, t))
    est = AnalyticGradient().estimate(chip, x, t)
    assert compare_gradients(est.gradient, g).relative_error < 1e-12
