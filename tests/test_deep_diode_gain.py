"""``[chip] layer_gain``: ideal bidirectional amplifiers between the node layers of a layered diode network.

Checked against physics written out independently here: Kirchhoff's current law of the amplified circuit
(solved with scipy), central finite differences of the physical loss, and the rules' expected scales.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import root

from labtrain.chip.base import ClampNudge
from labtrain.config import ConfigError, load_experiment
from labtrain.build import build_setup
from labtrain.kinds.nonlinear.amplified import AmplifiedNetwork, layered_node_layers
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.kinds.nonlinear.model import THERMAL_VOLTAGE_V, NonlinearResistorNetwork, diode_network
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation

HIDDEN = (4, 3)
I_S_A = 1e-12


def _net(diode: str = "diode"):
    net, edges = diode_network((3, *HIDDEN, 2), complementary_inputs=True, n_bias_inputs=1, diode=diode)
    layer = layered_node_layers(net, HIDDEN)
    rng = np.random.default_rng(3)
    n_g = len(edges.indices("linear"))
    g_s = np.exp(rng.uniform(np.log(net.g_min_s[0]), np.log(net.g_max_s[0]), n_g))
    return net, edges, layer, g_s


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, 3))
    return np.c_[x, 1.0 - x, np.ones(n)]


def _physical_kcl(net, layer: np.ndarray, g_s: np.ndarray, gain: float, x: np.ndarray,
                  v_free: np.ndarray) -> np.ndarray:
    """Net current (A) out of every free node of the amplified circuit, physical Shockley diodes (I_s, V_T).

    Every end ``n`` of an edge whose downstream layer is ``b`` sees ``A^(b - l_n) v_n`` forward and gets
    ``A^-(b - l_n)`` of the edge's current back.
    """
    n = net.n_nodes
    v = np.zeros(n)
    v[list(net.inputs)] = x
    free = np.setdiff1d(np.arange(n), list(net.inputs) + list(net.grounds))
    v[free] = v_free
    out = np.zeros(n)
    n_lin = len(g_s)
    for k, (t, h) in enumerate(net.edges):
        b = max(layer[t], layer[h])
        gt, gh = gain ** (b - layer[t]), gain ** (b - layer[h])
        dv = gt * v[t] - gh * v[h]
        i = g_s[k] * dv if k < n_lin else I_S_A * np.expm1(dv / THERMAL_VOLTAGE_V)
        out[t] += i / gt
        out[h] -= i / gh
    return out[free]


def test_gain_one_is_the_passive_network_bit_for_bit():
    net, edges, layer, g_s = _net()
    x = _inputs(5)
    t = np.full((5, 2), 0.3)
    plain = NonlinearResistorNetwork(net, edges, g_s)
    amp = AmplifiedNetwork(net, edges, layer, 1.0, g_s)
    a, b = plain.steady_state(x), amp.steady_state(x)
    assert np.array_equal(a.node_v, b.node_v) and np.array_equal(a.edge_drop_v, b.edge_drop_v)
    assert np.array_equal(plain.exact_gradient(x, t), amp.exact_gradient(x, t))
    assert np.array_equal(plain.energy_parameter_derivative(a.edge_drop_v),
                          amp.energy_parameter_derivative(b.edge_drop_v))


@pytest.mark.parametrize("gain", [2.0, 3.5])
def test_steady_state_satisfies_the_physical_kcl_with_amplifiers(gain):
    net, edges, layer, g_s = _net()
    x = _inputs(3, seed=1)
    state = AmplifiedNetwork(net, edges, layer, gain, g_s).steady_state(x)
    free = np.setdiff1d(np.arange(net.n_nodes), list(net.inputs) + list(net.grounds))
    rng = np.random.default_rng(8)
    for b in range(len(x)):
        # the model's state meets the physical KCL (residual against the currents' scale, ~1e-4 A) ...
        assert np.max(np.abs(_physical_kcl(net, layer, g_s, gain, x[b], state.node_v[b, free]))) < 1e-13
        # ... and scipy, started 30 mV off, finds the same physical state
        start = state.node_v[b, free] + rng.uniform(-0.03, 0.03, len(free))
        sol = root(lambda vf: _physical_kcl(net, layer, g_s, gain, x[b], vf) * 1e4, start, method="hybr",
                   options={"xtol": 1e-13})
        assert sol.success
        np.testing.assert_allclose(state.node_v[b, free], sol.x, rtol=1e-7, atol=1e-9)
    # the reported drops are the ones across the elements, after the amplifiers
    e = net.edges
    bl = np.maximum(layer[e[:, 0]], layer[e[:, 1]])
    v = state.node_v
    want = gain ** (bl - layer[e[:, 0]]) * v[:, e[:, 0]] - gain ** (bl - layer[e[:, 1]]) * v[:, e[:, 1]]
    np.testing.assert_allclose(state.edge_drop_v, want, rtol=1e-12, atol=1e-15)
    # the amplifiers change the operating point: a gain is not a passive network
    passive = NonlinearResistorNetwork(net, edges, g_s).steady_state(x)
    assert np.max(np.abs(passive.output_v - state.output_v)) > 1e-2


def test_output_current_nudge_is_physical():
    """A current injected at an output obeys the physical KCL (the network's u-units do not leak out)."""
    net, edges, layer, g_s = _net()
    gain = 2.0
    x = _inputs(1, seed=2)
    cur_a = np.array([[3e-5, -2e-5]])
    state = AmplifiedNetwork(net, edges, layer, gain, g_s).steady_state(x, output_current_a=cur_a)
    free = np.setdiff1d(np.arange(net.n_nodes), list(net.inputs) + list(net.grounds))
    resid = _physical_kcl(net, layer, g_s, gain, x[0], state.node_v[0, free])
    out_pos = np.searchsorted(free, list(net.outputs))
    inj = np.zeros(len(free))
    inj[out_pos] = cur_a[0]
    np.testing.assert_allclose(resid, inj, atol=1e-12)


def _loss(model, x, t) -> float:
    return model.loss(x, t)


@pytest.mark.parametrize("gain", [2.0, 4.0])
def test_exact_gradient_matches_finite_differences_of_the_physical_loss(gain):
    net, edges, layer, g_s = _net()
    x = _inputs(4, seed=4)
    model = AmplifiedNetwork(net, edges, layer, gain, g_s)
    t = model.steady_state(x).output_v * 0.8 + 0.05
    exact = model.exact_gradient(x, t)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(g_s), 12, replace=False)
    for p in picks:
        h = 1e-4 * g_s[p]
        up, down = g_s.copy(), g_s.copy()
        up[p] += h
        down[p] -= h
        fd = (_loss(model.with_parameters(up), x, t) - _loss(model.with_parameters(down), x, t)) / (2 * h)
        assert fd == pytest.approx(exact[p], rel=1e-4, abs=1e-6 * np.abs(exact).max())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("gain", [2.0, 4.0])
def test_centred_ep_on_the_amplified_chip_is_the_gradient(gain):
    net, edges, layer, g_s = _net()
    chip = NonlinearResistorChip(net, edges, g_s, layer_gain=gain, node_layer=layer)
    x = _inputs(6, seed=5)
    free = chip.measure(x).output_v
    t = free + np.random.default_rng(1).normal(0, 0.05, free.shape)
    exact = chip.exact_gradient(x, t)
    est = EquilibriumPropagation(1e-7, centred=True).estimate(chip, x, t).gradient
    assert _cos(est, exact) > 0.999
    # centred EP is dC/dg itself (same scale), in every layer: the local rule refers drops to the output layer
    np.testing.assert_allclose(est, exact, rtol=1e-3, atol=1e-4 * np.abs(exact).max())
    # the passive local rule (1/2 dv^2 of the measured drop) is off by A^(2 (L - b)) in layer b: the drops must
    # be referred to the output layer
    ep = EquilibriumPropagation(1e-7)
    nudges = (ep.nudge(chip.measure(x), t, 1e-7), ep.nudge(chip.measure(x), t, -1e-7))
    drops = [chip.measure(x, n, edge_drops=True).edge_drops.values for n in nudges]
    n_g = len(g_s)
    naive = 0.5 * (drops[0][:, :n_g] ** 2 - drops[1][:, :n_g] ** 2).mean(axis=0) / 2e-7
    model = chip.network_model()
    b = model.edge_layer[chip.parameter_edges[:n_g]]
    np.testing.assert_allclose(naive * gain ** (2 * (model.n_layers - b)), exact, rtol=1e-3,
                               atol=1e-4 * np.abs(exact).max())
    first = b == 1
    assert np.all(np.abs(naive[first]) < np.abs(exact[first]) / gain ** 3)


def test_centred_cl_is_the_conductance_weighted_adjoint_gradient():
    """CL's estimate is the adjoint gradient driven by ``Y (v_O - t)``, ``Y`` the outputs' effective conductance
    matrix (S) at the free state -- physical ``Y``, the scale of the passive network's CL."""
    net, edges, layer, g_s = _net()
    gain = 3.0
    chip = NonlinearResistorChip(net, edges, g_s, layer_gain=gain, node_layer=layer)
    model = chip.network_model()
    x = _inputs(4, seed=6)
    v_o = chip.measure(x).output_v
    t = v_o + np.random.default_rng(2).normal(0, 0.05, v_o.shape)
    est = CoupledLearning(1e-4, centred=True).estimate(chip, x, t).gradient
    eps = 1e-6
    y = np.empty((len(x), 2, 2))
    for j in range(2):
        d = np.zeros(2)
        d[j] = eps
        up = model.steady_state(x, output_clamp_v=v_o + d).clamp_current_a
        down = model.steady_state(x, output_clamp_v=v_o - d).clamp_current_a
        y[:, :, j] = (up - down) / (2 * eps)
    want = model.adjoint_gradient(x, np.einsum("bij,bj->bi", y, v_o - t))
    assert _cos(est, want) > 0.999
    np.testing.assert_allclose(est, want, rtol=1e-2, atol=1e-3 * np.abs(want).max())
    # and the clamp nudge itself is physical: a clamp at the free outputs draws no current
    assert np.max(np.abs(chip.measure(x, ClampNudge(v_o)).output_v - v_o)) == 0.0


def test_ideal_diodes_rescale_their_threshold():
    """A piecewise-linear diode at layer m behaves as threshold V_on / A^m in u: physical KCL still holds."""
    net, edges, layer, g_s = _net("ideal_diode")
    gain = 2.0
    model = AmplifiedNetwork(net, edges, layer, gain, g_s)
    x = _inputs(2, seed=7)
    state = model.steady_state(x)
    cur_phys, _ = NonlinearResistorNetwork(net, edges, g_s).edge_characteristics(state.edge_drop_v)
    np.testing.assert_allclose(state.edge_current_a, cur_phys, rtol=1e-9, atol=1e-15)
    # KCL with the amplifiers' current scaling, from the physical element currents
    e = net.edges
    bl = np.maximum(layer[e[:, 0]], layer[e[:, 1]])
    for b in range(len(x)):
        net_out = np.zeros(net.n_nodes)
        np.add.at(net_out, e[:, 0], cur_phys[b] / gain ** (bl - layer[e[:, 0]]))
        np.add.at(net_out, e[:, 1], -cur_phys[b] / gain ** (bl - layer[e[:, 1]]))
        free = np.setdiff1d(np.arange(net.n_nodes), list(net.inputs) + list(net.grounds))
        assert np.max(np.abs(net_out[free])) < 1e-12


def _write(tmp_path, chip_extra: str, rule: str = "ep") -> str:
    p = tmp_path / "exp.toml"
    p.write_text(f"""
[chip]
type = "nonlinear_resistor"
{chip_extra}
[task]
name = "xor"
complementary_inputs = true
bias_inputs_v = [1.0]
[learning]
rule = "{rule}"
[run]
epochs = 1
""")
    return str(p)


def test_config_layer_gain_builds_an_amplified_chip(tmp_path):
    setup = build_setup(load_experiment(_write(tmp_path, 'topology = "layered"\nhidden_layers = [4, 3]\n'
                                                          "layer_gain = 2.5")))
    model = setup.chip.network_model()
    assert isinstance(model, AmplifiedNetwork) and model.layer_gain == 2.5 and model.n_layers == 3
    plain = build_setup(load_experiment(_write(tmp_path, 'topology = "layered"\nhidden_layers = [4, 3]\n'
                                                          "layer_gain = 1.0"))).chip.network_model()
    assert not isinstance(plain, AmplifiedNetwork)


@pytest.mark.parametrize("extra, rule, words", [
    ('topology = "lattice"\nrows = 3\ncols = 3\nlayer_gain = 2.0', "ep", "needs topology = 'layered'"),
    ('topology = "layered"\nhidden_layers = [4]\nlayer_gain = 2.0', "fp", "not modelled"),
    ('topology = "layered"\nhidden_layers = [4]\nlayer_gain = 0.5', "ep", "layer_gain"),
    ('topology = "layered"\nhidden_layers = [4]\nlayer_gain = 2.0\n[backend]\nkind = "twin"', "ep",
     "ideal backend only"),
])
def test_config_refuses_layer_gain_elsewhere(tmp_path, extra, rule, words, capsys):
    from labtrain.cli import main
    path = _write(tmp_path, extra, rule)
    with pytest.raises(ConfigError, match=words):
        build_setup(load_experiment(path))
    assert main(["check", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layer_gain" in err


def test_gradcheck_on_an_amplified_chip(tmp_path, capsys):
    """``labtrain gradcheck``: centred EP is the exact gradient on a 2-hidden-layer amplified chip; FP is named
    as not modelled rather than reported with a wrong scale."""
    from labtrain.cli import main
    path = _write(tmp_path, 'topology = "layered"\nhidden_layers = [4, 3]\nlayer_gain = 2.0')
    text = open(path).read().replace('rule = "ep"', 'rule = "ep"\nbeta_s = 1e-7')
    open(path, "w").write(text)
    assert main(["gradcheck", path]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ep centred"))
    assert float(row.split()[5]) > 0.999999  # cosine (after "ep centred beta_s = 1e-07")
    assert "not modelled with [chip] layer_gain" in out


def test_chip_reports_the_physical_elements():
    """The snapshot names the datasheet diodes, not the rescaled copies the solver uses."""
    net, edges, layer, g_s = _net()
    chip = NonlinearResistorChip(net, edges, g_s, layer_gain=2.0, node_layer=layer)
    snap = chip.snapshot()
    assert snap["layer_gain"] == 2.0
    assert snap["edges"]["diode"]["saturation_current_a"] == I_S_A
    assert chip.network_model().describe()["edges"]["diode"]["saturation_current_a"] == I_S_A
    assert chip.network_model().describe()["amplifiers"]["n_layers"] == 3


def test_complementary_outputs_double_the_output_layer(tmp_path, capsys):
    """``[task] complementary_outputs``: the layered builder gets two outputs per class and centred EP stays the
    exact gradient; the DNPU (one output) refuses it in one line."""
    from labtrain.cli import main
    path = _write(tmp_path, 'topology = "layered"\nhidden_layers = [4]')
    text = open(path).read().replace('name = "xor"', 'name = "iris"\ncomplementary_outputs = true')
    open(path, "w").write(text.replace('rule = "ep"', 'rule = "ep"\nbeta_s = 1e-7'))
    setup = build_setup(load_experiment(path))
    assert len(setup.network.outputs) == 6 and setup.task.decoder == "nearest_target"
    assert main(["gradcheck", path]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ep centred"))
    assert float(row.split()[5]) > 0.999999
    dnpu = tmp_path / "dnpu.toml"
    dnpu.write_text('[chip]\ntype = "dnpu"\n[task]\nname = "xor"\ncomplementary_outputs = true\n')
    assert main(["check", str(dnpu)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outputs" in err
