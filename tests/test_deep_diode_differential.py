"""``[chip] differential_outputs``: every output of a layered diode network read between two output nodes.

Checked against quantities computed here from the single-ended network: the pair differences of its output
nodes, central finite differences of the loss on those differences, the floating nudge (equal and opposite
currents), and the refusals (clamp, tones, rules, backends, topologies).
"""

from __future__ import annotations

import numpy as np
import pytest

from labtrain import cli
from labtrain.chip.base import CapabilityError, ClampNudge, CurrentNudge
from labtrain.kinds.nonlinear.amplified import layered_node_layers
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.kinds.nonlinear.model import diode_network
from labtrain.physics.demod import FrequencyPlan
from labtrain.chip.base import Tone
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.gep import EquilibriumPropagation

HIDDEN = (5,)
K = 2  # task outputs; the network has 2K output nodes


def _chip(gain: float = 1.0, differential: bool = True) -> NonlinearResistorChip:
    net, edges = diode_network((3, *HIDDEN, 2 * K), complementary_inputs=True, n_bias_inputs=2,
                               skip_inputs=False)
    rng = np.random.default_rng(5)
    n_g = len(edges.indices("linear"))
    g_s = np.exp(rng.uniform(np.log(net.g_min_s[0]), np.log(net.g_max_s[0]), n_g))
    layer = layered_node_layers(net, HIDDEN) if gain != 1.0 else None
    return NonlinearResistorChip(net, edges, g_s, layer_gain=gain, node_layer=layer,
                                 differential_outputs=differential)


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, (n, 3))
    return np.c_[x, -x, np.full(n, 2.0), np.full(n, -2.0)]


def _targets(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).choice([-0.3, 0.3], (n, K))


def _single_ended_loss(chip: NonlinearResistorChip, params: np.ndarray, x: np.ndarray, t: np.ndarray) -> float:
    """``mean_b 1/2 ||v(o+) - v(o-) - t||^2`` from the single-ended network's output nodes."""
    inner = chip.network_model().model.with_parameters(params)
    v = inner.steady_state(x).output_v                    # (B, 2K) node voltages
    y = v[:, :K] - v[:, K:]
    return float(0.5 * np.mean(np.sum((y - t) ** 2, axis=1)))


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_outputs_are_the_pair_differences_of_the_single_ended_network(gain):
    chip, plain = _chip(gain), _chip(gain, differential=False)
    x = _inputs(6)
    assert chip.n_outputs == K and plain.n_outputs == 2 * K
    v = plain.measure(x).output_v
    np.testing.assert_allclose(chip.measure(x).output_v, v[:, :K] - v[:, K:], rtol=0, atol=1e-12)
    # the chunked outputs-only path of an evaluation gives the same differences
    chip.max_chunk_elements = 3 * chip.network.n_edges * 2      # two examples per chunk
    np.testing.assert_allclose(chip.measure(x).output_v, v[:, :K] - v[:, K:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_nudge_is_a_floating_current_source_across_each_pair(gain):
    chip, plain = _chip(gain), _chip(gain, differential=False)
    x = _inputs(4)
    i_a = np.random.default_rng(2).normal(0.0, 1e-6, (4, K))
    got = chip.measure(x, CurrentNudge(i_a), edge_drops=True)
    ref = plain.measure(x, CurrentNudge(np.c_[i_a, -i_a]), edge_drops=True)   # +I into o+, -I into o-
    np.testing.assert_allclose(got.output_v, ref.output_v[:, :K] - ref.output_v[:, K:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.edge_drops.values, ref.edge_drops.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_exact_gradient_matches_finite_differences_and_centred_ep_matches_it(gain):
    chip = _chip(gain)
    x, t = _inputs(5), _targets(5)
    exact = chip.reference_gradient(x, t)
    p = chip.get_parameters()
    rng = np.random.default_rng(4)
    for k in rng.choice(len(p), 12, replace=False):
        h = 1e-4 * p[k]
        up, down = p.copy(), p.copy()
        up[k] += h
        down[k] -= h
        fd = (_single_ended_loss(chip, up, x, t) - _single_ended_loss(chip, down, x, t)) / (2 * h)
        assert fd == pytest.approx(exact[k], rel=1e-5, abs=1e-9 * np.abs(exact).max())
    ep = EquilibriumPropagation(1e-7, centred=True).estimate(chip, x, t)
    np.testing.assert_allclose(ep.gradient, exact, rtol=0, atol=1e-4 * np.abs(exact).max())
    assert ep.loss == pytest.approx(_single_ended_loss(chip, p, x, t), rel=1e-12)
    analytic = AnalyticGradient().estimate(chip, x, t)
    np.testing.assert_allclose(analytic.gradient, exact, rtol=1e-10, atol=1e-14)


def test_clamp_and_tones_are_refused_and_not_offered():
    chip = _chip()
    x = _inputs(2)
    assert "clamp_nudge" not in chip.capabilities and "ac_tones" not in chip.capabilities
    with pytest.raises(CapabilityError, match="floating voltage source"):
        chip.measure(x, ClampNudge(np.zeros((2, K))))
    plan = FrequencyPlan(rate_hz=1000.0, window_samples=100, bins=(1,))
    with pytest.raises(CapabilityError, match="differential readout"):
        chip.measure_ac(x, [Tone("input", 0, 10.0, 0.01)], plan)
    with pytest.raises(ValueError, match="even number"):
        net, edges = diode_network((3, 4, 3), complementary_inputs=True)
        NonlinearResistorChip(net, edges, differential_outputs=True)
    assert chip.snapshot()["readout"] == "differential pairs"
    assert chip.network_model().describe()["readout"]["n_outputs"] == K


EXPERIMENT = """
[chip]
type = "nonlinear_resistor"
topology = "layered"
hidden_layers = [4]
differential_outputs = true
skip_inputs = false
g_init = "log_uniform_random"
[task]
name = "xor"
complementary_inputs = true
input_low_v = -1.0
input_high_v = 1.0
bias_inputs_v = [1.0, -1.0]
target_on_v = 0.2
target_off_v = -0.2
[learning]
rule = "ep"
centred = true
optimizer = "adam"
learning_rate = 0.03
[run]
epochs = 2
batch_size = 4
"""


@pytest.mark.parametrize("override, what", [
    ('learning.rule="cl"', "with rule 'cl'"),
    ('learning.rule="fp"', "with rule 'fp'"),
    ('backend.kind="twin"', "ideal backend only"),
    ('chip.topology="lattice"', "needs topology = 'layered'"),
])
def test_check_refuses_what_is_not_modelled_in_one_line(tmp_path, capsys, override, what):
    path = tmp_path / "diff.toml"
    path.write_text(EXPERIMENT)
    assert cli.main(["check", str(path), "--set", override]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differential_outputs" in err[0] and what in err[0]


def test_a_run_trains_and_records_the_readout(tmp_path, capsys):
    path = tmp_path / "diff.toml"
    path.write_text(EXPERIMENT)
    assert cli.main(["check", str(path)]) == cli.EXIT_OK
    assert "outputs read as 1 differential pair:" in capsys.readouterr().out   # xor: one output
    assert cli.main(["run", str(path), "--out", str(tmp_path / "runs"), "-q"]) == cli.EXIT_OK
    from labtrain.training.store import RunStore, list_runs

    (summary,) = list_runs(tmp_path / "runs")
    assert summary["status"] == "completed"
    # Iris (3 outputs = 3 pairs, 6 hidden nodes): the readout trains (97.8 % test after 30 epochs at seed 0)
    iris = tmp_path / "iris.toml"
    iris.write_text(EXPERIMENT.replace('name = "xor"', 'name = "iris"').replace("hidden_layers = [4]",
                    "hidden_layers = [6]").replace("epochs = 2", "epochs = 30").replace("batch_size = 4",
                    "batch_size = 16").replace("[1.0, -1.0]", "[2.0, -2.0]").replace("-1.0", "-2.0")
                    .replace("= 1.0", "= 2.0").replace("0.2", "0.3"))
    assert cli.main(["run", str(iris), "--out", str(tmp_path / "iris"), "-q"]) == cli.EXIT_OK
    (trained,) = list_runs(tmp_path / "iris")
    assert trained["test_accuracy"] >= 0.9, trained
    with RunStore.open(summary["path"]) as store:
        snapshot = store.snapshot
    assert snapshot["chip"]["readout"] == "differential pairs"
