"""The real scale of every GEP member and what a learning rate means in each (docs/algorithms.md, section 4).

EP's estimate is ``dC/dg`` itself (V^2/S), up to an O(beta) bias.  Coupled
learning's is the gradient with the output error weighted by the outputs'
effective conductance matrix ``Y`` (S): for one output ``Y_out * dC/dg``
(units V^2), about 1e-4 of ``dC/dg`` at the default conductance scale.  The
SGD optimiser works in normalised coordinates, so a CL step is Stern et al.'s
rule with ``alpha = lr * span^2 / 2``.
"""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.resistor.problems import random_linear_problem
from labtrain.physics.network import random_graph
from labtrain.protocols import CoupledLearning, EquilibriumPropagation, compare_gradients, exact_gradient
from labtrain.training.optim import SGD, Adam


def single_output_problem(mode: str = "voltage", seed: int = 7):
    net = random_graph(12, 30, seed=3, n_inputs=2, n_outputs=1)
    g, x, t = random_linear_problem(net, mode, seed=seed)
    return net, g, x, t, IdealChip(net, g, input_mode=mode)


def output_conductance_s(model: LinearResistorNetwork, n_inputs: int) -> np.ndarray:
    """``Y = Z^-1``: ``Z`` the outputs' transfer impedance with the input sources at zero (1 A injected)."""
    n_out = model.n_outputs
    z = model.steady_state(np.zeros((n_out, n_inputs)), output_current_a=np.eye(n_out)).output_v
    return np.linalg.inv(z)


@pytest.mark.parametrize("mode", ["voltage", "current"])
def test_cl_estimate_is_output_conductance_times_exact_gradient(mode):
    net, g, x, t, chip = single_output_problem(mode)
    exact = exact_gradient(chip, x, t)
    y_out = output_conductance_s(chip.network_model(), len(net.inputs))[0, 0]
    assert 1e-6 < y_out < 1e-2                       # siemens: far from 1, so CL is not an O(1) gradient
    for eta in (1e-2, 1e-3):
        cl = CoupledLearning(eta).estimate(chip, x, t).gradient
        # every component, not only the direction: CL = Y_out dC/dg + O(eta)
        np.testing.assert_allclose(cl, y_out * exact, rtol=0, atol=5 * eta * y_out * np.abs(exact).max())
        assert compare_gradients(cl, exact).scale == pytest.approx(y_out, rel=5 * eta)
    # the O(eta) remainder shrinks with eta
    err = [np.linalg.norm(CoupledLearning(e).estimate(chip, x, t).gradient - y_out * exact) for e in (1e-2, 1e-3)]
    assert err[1] < 0.2 * err[0]


def test_ep_estimate_is_the_gradient_itself():
    net, g, x, t, chip = single_output_problem()
    exact = exact_gradient(chip, x, t)
    g_ref = float(np.exp(np.mean(np.log(g))))
    scales = {}
    for beta in (1e-4 * g_ref, 2e-4 * g_ref):
        ep = EquilibriumPropagation(beta).estimate(chip, x, t).gradient
        scales[beta] = compare_gradients(ep, exact).scale
        assert scales[beta] == pytest.approx(1.0, abs=2e-3)
    d1, d2 = (abs(s - 1.0) for s in scales.values())
    assert d2 == pytest.approx(2 * d1, rel=1e-2)     # 1 + O(beta): the deviation doubles with beta
    cen = EquilibriumPropagation(1e-4 * g_ref, centred=True).estimate(chip, x, t).gradient
    assert compare_gradients(cen, exact).scale == pytest.approx(1.0, abs=1e-8)


def test_cl_sgd_step_is_sterns_rule_with_span_squared():
    net, g, x, t, chip = single_output_problem()
    eta, lr = 1e-2, 3e-3
    spec = chip.parameter_spec
    free = chip.measure(x, edge_drops=True).edge_drops.mean_square()
    rule = CoupledLearning(eta)
    clamp = rule.nudge(chip.measure(x), t, eta)
    clamped = chip.measure(x, clamp, edge_drops=True).edge_drops.mean_square()
    est = rule.estimate(chip, x, t).gradient
    before = chip.get_parameters()
    after = SGD(lr).apply(chip, est)
    expected = (lr * spec.span**2 / (2 * eta)) * (free - clamped)   # dg = (alpha/eta)[dv_F^2 - dv_C^2]
    inside = (after > spec.lower) & (after < spec.upper)
    assert inside.all()
    np.testing.assert_allclose(after - before, expected, rtol=1e-9, atol=1e-18)
    # without the span^2 factor the step would be off by span^2 (~1e-6 at the default 10 uS .. 1 mS range)
    assert np.allclose(spec.span**2, (spec.upper - spec.lower) ** 2)
    assert 1e-7 < float(np.mean(spec.span**2)) < 1e-5


def test_one_learning_rate_per_member_units():
    """SGD: CL at lr / Y_out takes EP's step at lr.  Adam: the same first step for both, up to its eps."""
    net, g, x, t, chip = single_output_problem()
    y_out = output_conductance_s(chip.network_model(), len(net.inputs))[0, 0]
    g_ref = float(np.exp(np.mean(np.log(g))))
    ep = EquilibriumPropagation(1e-4 * g_ref).estimate(chip, x, t).gradient
    cl = CoupledLearning(1e-4).estimate(chip, x, t).gradient
    lr_ep = 1e-2
    steps = {}
    for name, grad, lr in (("ep", ep, lr_ep), ("cl", cl, lr_ep / y_out), ("cl_same_lr", cl, lr_ep)):
        c = IdealChip(net, g)
        steps[name] = SGD(lr).apply(c, grad) - g
    np.testing.assert_allclose(steps["cl"], steps["ep"], rtol=2e-3, atol=1e-3 * np.abs(steps["ep"]).max())
    ratio = np.linalg.norm(steps["cl_same_lr"]) / np.linalg.norm(steps["ep"])
    assert ratio == pytest.approx(y_out, rel=2e-3)   # the same SGD lr: CL moves ~1e-4 as far
    # Adam divides by the gradient's running RMS: a constant positive scale drops out, but only where the
    # normalised gradient is well above Adam's eps (1e-8).  CL's normalised gradients here are ~1e-9 .. 1e-5,
    # so eps damps its small components on the first step by |G| / (|G| + eps), G = span * gradient.
    for eps in (1e-20, 1e-8):
        adam = {}
        for name, grad in (("ep", ep), ("cl", cl)):
            c = IdealChip(net, g)
            adam[name] = Adam(1e-2, eps=eps).apply(c, grad) - g
        spec = IdealChip(net, g).parameter_spec
        damp = np.abs(cl * spec.span) / (np.abs(cl * spec.span) + eps)
        ep_damp = np.abs(ep * spec.span) / (np.abs(ep * spec.span) + eps)
        free = (g + adam["ep"] > spec.lower) & (g + adam["ep"] < spec.upper)   # steps not cut by a bound
        assert free.sum() >= 25
        np.testing.assert_allclose(adam["cl"][free], (adam["ep"] * damp / ep_damp)[free], rtol=1e-9, atol=1e-15)
    assert damp.min() < 0.5                         # with the default eps some CL components lose half their step
