"""Optimisers in normalised coordinates, bounds, checkpoints, tap steps and masks (labtrain.training.optim)."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.physics.network import random_graph
from labtrain.training.optim import OPTIMIZERS, SGD, Adam, Momentum, TapStep, make_optimizer


@pytest.fixture(scope="module")
def net():
    return random_graph(10, 20, seed=2)


def quadratic(target_x: np.ndarray, chip: IdealChip):
    """Loss 1/2 |x - x*|^2 in normalised coordinates x = (g - lower) / span, and dC/dg in V^2/S style units."""
    spec = chip.parameter_spec

    def loss_and_grad():
        x = (chip.get_parameters() - spec.lower) / spec.span
        return 0.5 * np.sum((x - target_x) ** 2), (x - target_x) / spec.span

    return loss_and_grad


def make_opt(name: str):
    return {"sgd": lambda: SGD(0.2), "momentum": lambda: Momentum(0.05, 0.9), "adam": lambda: Adam(0.05)}[name]()


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_continuous_optimisers_reduce_a_quadratic(net, name):
    chip = IdealChip(net)
    target = np.random.default_rng(0).uniform(0.05, 0.95, net.n_edges)
    f = quadratic(target, chip)
    opt = make_opt(name)
    loss0, _ = f()
    losses = []
    for _ in range(150):
        _, grad = f()
        opt.apply(chip, grad)
        losses.append(f()[0])
    assert losses[-1] < 1e-3 * loss0
    assert opt.steps == 150
    np.testing.assert_allclose((chip.get_parameters() - net.g_min_s) / (net.g_max_s - net.g_min_s), target,
                               atol=0.02)


def test_sgd_step_is_exact_in_normalised_coordinates(net):
    chip = IdealChip(net)
    spec = chip.parameter_spec
    g0 = chip.get_parameters()
    grad = np.random.default_rng(1).normal(size=net.n_edges) / spec.span  # O(1) normalised gradient
    took = SGD(0.01).apply(chip, grad)
    x0 = (g0 - spec.lower) / spec.span
    np.testing.assert_allclose(took, spec.lower + np.clip(x0 - 0.01 * grad * spec.span, 0, 1) * spec.span,
                               rtol=1e-12)
    # lr is a fraction of each parameter's range, whatever its units
    moved = np.abs(took - g0) / spec.span
    np.testing.assert_allclose(moved, 0.01 * np.abs(grad * spec.span), rtol=1e-9)


def test_adam_first_step_moves_lr_of_range(net):
    chip = IdealChip(net)
    spec = chip.parameter_spec
    g0 = chip.get_parameters()
    grad = np.random.default_rng(2).normal(size=net.n_edges) * 1e3  # any scale
    took = Adam(0.03).apply(chip, grad)
    np.testing.assert_allclose((took - g0) / spec.span, -0.03 * np.sign(grad), rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_parameters_stay_within_bounds(net, name):
    chip = IdealChip(net, pot_steps=0)
    rng = np.random.default_rng(3)
    target = np.where(rng.random(net.n_edges) < 0.5, -0.8, 1.9)  # optimum outside the box
    f = quadratic(target, chip)
    opt = make_opt(name)
    for _ in range(60):
        took = opt.apply(chip, f()[1] * 10)
        assert np.all(took >= net.g_min_s) and np.all(took <= net.g_max_s)
        assert np.all(opt.shadow >= 0) and np.all(opt.shadow <= 1)
    # it ends pinned at the bound nearest the optimum
    np.testing.assert_allclose(chip.get_parameters(), np.where(target > 1, net.g_max_s, net.g_min_s), rtol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_state_dict_round_trip_continues_identically(net, name):
    target = np.random.default_rng(4).uniform(0, 1, net.n_edges)
    chip_a = IdealChip(net)
    f_a = quadratic(target, chip_a)
    opt_a = make_opt(name)
    for _ in range(7):
        opt_a.apply(chip_a, f_a()[1])
    # checkpoint: plain arrays, as the store writes them
    state = {k: np.array(v) for k, v in opt_a.state_dict().items()}
    if name != "sgd":
        assert len(state) > 2  # momentum / moment estimates are part of the state
    chip_b = IdealChip(net, chip_a.get_parameters())
    opt_b = make_opt(name)
    opt_b.load_state_dict(state)
    f_b = quadratic(target, chip_b)
    fresh_chip = IdealChip(net, chip_a.get_parameters())
    fresh = make_opt(name)
    f_fresh = quadratic(target, fresh_chip)
    for _ in range(7):
        ta = opt_a.apply(chip_a, f_a()[1])
        tb = opt_b.apply(chip_b, f_b()[1])
        np.testing.assert_array_equal(ta, tb)
        fresh.apply(fresh_chip, f_fresh()[1])
    assert opt_b.steps == opt_a.steps == 14
    if name != "sgd":  # without its state an optimiser with memory continues differently
        assert not np.allclose(fresh_chip.get_parameters(), chip_a.get_parameters(), rtol=1e-9, atol=0)


def test_state_dict_before_first_step(net):
    opt = Adam(0.1)
    state = opt.state_dict()
    assert set(state) == {"steps"}
    other = Adam(0.1)
    other.load_state_dict(state)
    assert other.shadow is None and other.m is None and other.steps == 0


def test_shadow_accumulates_sub_tap_updates(net):
    # on a pot chip, updates smaller than one tap must add up instead of being rounded away
    chip = IdealChip(net, pot_steps=16)
    spec = chip.parameter_spec
    g0 = chip.get_parameters()
    grad = -np.ones(net.n_edges) / spec.span * 1e-3  # push every conductance up, 0.1 % of range per step
    opt = SGD(1.0)
    first = opt.apply(chip, grad)
    np.testing.assert_array_equal(first, g0)  # one step is far below a tap
    for _ in range(400):
        took = opt.apply(chip, grad)
    assert np.all(took > g0)  # 40 % of the range later, the taps did move


# ---------------------------------------------------------------- TapStep
def test_tap_step_moves_one_tap_against_the_gradient(net):
    n_taps = 32
    chip = IdealChip(net, pot_steps=n_taps)
    q = chip.parameter_spec.quantizer
    span = chip.parameter_spec.span
    rng = np.random.default_rng(5)
    chip.set_parameters(q.to_conductance(rng.integers(2, n_taps - 2, net.n_edges)))
    norm_grad = rng.normal(size=net.n_edges)
    norm_grad[:3] = [0.05, -0.09, 0.0]  # inside the dead band
    opt = TapStep(deadband=0.1)
    taps0 = q.to_taps(chip.get_parameters())
    g0 = chip.get_parameters()
    took = opt.apply(chip, norm_grad / span)
    taps1 = q.to_taps(took)
    active = np.abs(norm_grad) > 0.1
    # positive gradient -> lower conductance -> higher resistance -> one tap up
    np.testing.assert_array_equal(taps1 - taps0, np.where(active, np.sign(norm_grad), 0).astype(int))
    np.testing.assert_array_equal(took[~active], g0[~active])
    assert np.all(took[active & (norm_grad > 0)] < g0[active & (norm_grad > 0)])
    assert opt.steps == 1


def test_tap_step_without_deadband_and_continuous_chip(net):
    chip = IdealChip(net)
    g0 = chip.get_parameters()
    grad = np.r_[np.ones(10), -np.ones(10)] * 1e-9
    took = TapStep().apply(chip, grad)
    np.testing.assert_allclose(took - g0, -np.sign(grad) * chip.parameter_spec.span / 256, rtol=1e-9)


# ------------------------------------------------------------------- masks
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "tap_step"])
@pytest.mark.parametrize("pot_steps", [0, 64])
def test_masked_update_leaves_masked_out_edges_unchanged(name, pot_steps):
    # exactly unchanged: the lower + x * span round trip must not nudge masked-out edges by an ulp
    net = random_graph(30, 120, seed=1)
    g0 = np.exp(np.random.default_rng(6).uniform(np.log(1e-5), np.log(1e-3), net.n_edges))
    chip = IdealChip(net, g0, pot_steps=pot_steps)
    opt = make_optimizer(name, learning_rate=0.05)
    rng = np.random.default_rng(7)
    moved = 0
    for step in range(6):
        mask = rng.random(net.n_edges) < 0.3
        before = chip.get_parameters()
        grad = rng.normal(size=net.n_edges) / chip.parameter_spec.span
        took = opt.apply(chip, grad, mask)
        np.testing.assert_array_equal(took[~mask], before[~mask])
        changed = took[mask] != before[mask]
        if pot_steps == 0:  # every selected edge moves unless it is pinned at a bound
            pinned = (before[mask] == net.g_min_s[mask]) | (before[mask] == net.g_max_s[mask])
            assert np.all(changed | pinned)
        moved += np.count_nonzero(changed)
    assert moved > 0  # selected edges do move (pot taps are coarse near high conductance)


def test_make_optimizer():
    assert OPTIMIZERS == ("sgd", "momentum", "adam", "tap_step")
    assert isinstance(make_optimizer("sgd", 0.1), SGD) and make_optimizer("sgd", 0.1).lr == 0.1
    mom = make_optimizer("momentum", 0.1, momentum=0.5)
    assert isinstance(mom, Momentum) and mom.momentum == 0.5
    assert isinstance(make_optimizer("adam", 0.1), Adam)
    tap = make_optimizer("tap_step", 0.1, deadband=0.2)
    assert isinstance(tap, TapStep) and tap.deadband == 0.2
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", 0.1)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_lr_halflife_halves_the_step_every_halflife_steps(net, name):
    """Step t uses lr * 2**(-(t - 1) / halflife): SGD moves exactly that; state round trip keeps the schedule."""
    opt = make_optimizer(name, 0.01, lr_halflife_steps=4)
    assert opt.lr_halflife_steps == 4 and opt.current_lr == 0.01
    chip = IdealChip(net)
    spec = chip.parameter_spec
    grad = np.full(net.n_edges, 1e-3) / spec.span
    lrs = []
    for _ in range(9):
        before = chip.get_parameters()
        opt.apply(chip, grad)
        lrs.append(opt.current_lr)
        if name == "sgd":
            np.testing.assert_allclose((before - chip.get_parameters()) / spec.span, lrs[-1] * 1e-3, rtol=1e-9)
    np.testing.assert_allclose(lrs, 0.01 * 2.0 ** (-np.arange(9) / 4), rtol=1e-12)
    other = make_optimizer(name, 0.01, lr_halflife_steps=4)
    other.load_state_dict(opt.state_dict())
    assert other.current_lr == opt.current_lr == pytest.approx(0.01 / 4)
    assert make_optimizer(name, 0.01).current_lr == 0.01  # 0 = constant
    with pytest.raises(ValueError, match="lr_halflife_steps"):
        make_optimizer(name, 0.01, lr_halflife_steps=-1)


def test_learning_rate_is_the_name_in_python_as_in_files_and_lr_is_a_deprecated_alias():
    assert Adam(learning_rate=0.1).learning_rate == 0.1 and SGD(0.2).learning_rate == 0.2
    with pytest.warns(DeprecationWarning, match="learning_rate"):
        opt = Momentum(lr=0.3)
    assert opt.learning_rate == 0.3 and opt.lr == 0.3
    with pytest.raises(TypeError, match="not both"):
        Adam(0.1, lr=0.1)
    with pytest.raises(TypeError, match="missing learning_rate"):
        SGD()
