"""EP and coupled learning on nonlinear resistor networks (diodes, transistor edges).

The two-phase rules need ``dE/dtheta`` of the network's energy -- on a nonlinear network the total
co-content -- at the measured drops: ``dv^2 / 2`` for a linear conductance and ``dPhi/dV_g`` for a
transistor's gate voltage (``NonlinearResistorNetwork.energy_parameter_derivative``).
"""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.config import load_experiment
from labtrain.protocols.fidelity import compare_gradients
from labtrain.protocols.gep import CoupledLearning, EquilibriumPropagation
from pathlib import Path

from cli_helpers import cli

XOR = Path(__file__).resolve().parents[1] / "examples" / "xor_diode_fp.toml"
TRANSISTOR_GRAPH = {"topology": "random", "n_nodes": 12, "n_edges": 30, "edge_kind": "transistor"}


def _setup(chip: dict | None = None, rule: str = "ep"):
    overrides = {"learning": {"rule": rule}}
    if chip:
        overrides["chip"] = dict(chip)
    setup = build_setup(load_experiment(XOR, overrides))
    return setup.chip, setup.task.x_train, setup.task.t_train


@pytest.mark.parametrize("chip", [None, TRANSISTOR_GRAPH], ids=["diode_layered", "transistor_graph"])
def test_energy_parameter_derivative_matches_finite_differences_of_the_co_content(chip):
    c, x, _ = _setup(chip)
    model = c.network_model()
    rng = np.random.default_rng(0)
    drops = rng.normal(0.0, 0.6, size=(5, model.network.n_edges))
    analytic = model.energy_parameter_derivative(drops)  # (5, P)
    edges = model.parameter_edges
    theta = model.parameters
    fd = np.empty_like(analytic)
    for p in range(len(theta)):
        h = 1e-6 * max(abs(theta[p]), 1e-3)
        up, down = theta.copy(), theta.copy()
        up[p] += h
        down[p] -= h
        phi_up = model.with_parameters(up).co_content(drops)[:, edges[p]]
        phi_down = model.with_parameters(down).co_content(drops)[:, edges[p]]
        fd[:, p] = (phi_up - phi_down) / (2 * h)
    np.testing.assert_allclose(analytic, fd, rtol=1e-5, atol=1e-9 * np.max(np.abs(fd)))


@pytest.mark.parametrize("chip", [None, TRANSISTOR_GRAPH], ids=["diode_layered", "transistor_graph"])
def test_centred_ep_is_the_exact_gradient_and_one_sided_bias_is_first_order(chip):
    c, x, t = _setup(chip)
    exact = c.reference_gradient(x, t)
    centred = compare_gradients(EquilibriumPropagation(1e-7, centred=True).estimate(c, x, t).gradient, exact)
    assert centred.relative_error < 1e-7
    errors = [compare_gradients(EquilibriumPropagation(b).estimate(c, x, t).gradient, exact).relative_error
              for b in (1e-6, 1e-7)]
    assert errors[0] / errors[1] == pytest.approx(10.0, rel=0.05)  # O(beta): a tenth of beta, a tenth of the bias


def test_cl_is_parallel_to_the_gradient_for_one_output_scaled_by_its_conductance():
    c, x, t = _setup(None, "cl")
    exact = c.reference_gradient(x, t)
    f = compare_gradients(CoupledLearning(1e-3, centred=True).estimate(c, x, t).gradient, exact)
    assert f.cosine > 0.99999
    assert 0 < f.scale < 1  # Y_out (S) times dC/dg: the output's effective conductance, well below 1 S


@pytest.mark.parametrize("rule", ["ep", "cl"])
def test_ep_and_cl_train_the_diode_xor_network(rule, tmp_path, capsys):
    rc, out, err = cli(["run", XOR, "--set", f"learning.rule={rule}", "--set", "run.epochs=120",
                        "--set", "run.eval_every=120", "--out", tmp_path, "--quiet"], capsys)
    assert rc == 0, err
    assert "accuracy 100.0%" in out
