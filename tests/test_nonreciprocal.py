"""Non-reciprocal rate network: relaxation, exact gradient, and EP for non-conservative systems."""

import json

import numpy as np
import pytest

from labtrain.chip import CapabilityError, CurrentNudge
from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.kinds.nonreciprocal.chip import NonReciprocalChip
from labtrain.physics.network import layered
from labtrain.training.optim import Adam
from labtrain.protocols.fidelity import compare_gradients
from labtrain.kinds.nonreciprocal.rules import (AsymmetricEP, DyadicEP, ImplicitGradient, PlainEP, VectorFieldEP,
                                                 make_nonreciprocal_rule, nonreciprocal_exact_gradient,
                                                 nonreciprocal_fidelity)
from labtrain.training.run import Run
from labtrain.kinds.nonreciprocal.model import (AffineForce, LayeredTopology, NonReciprocalNetwork,
                                               RelaxationError)
from labtrain.training.tasks import Task

CASES = [  # (dynamics, backward, init)
    ("hopfield", True, "asymmetric"),
    ("hopfield", True, "symmetric"),
    ("hopfield", False, "asymmetric"),
    ("leaky", True, "asymmetric"),
]


def _net(dynamics="hopfield", backward=True, init="asymmetric", sizes=(3, 4, 2), seed=1, tol=1e-13):
    topo = LayeredTopology(sizes, backward=backward, dynamics=dynamics)
    theta = topo.initial_parameters(seed, init, scale=1.5)
    theta[topo.block("b").slice] = np.random.default_rng(seed + 10).normal(0, 0.5, topo.n_units)
    return NonReciprocalNetwork(topo, theta, tol=tol)


def _batch(n_in, n_out, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, n_in)), rng.uniform(0, 1, (n, n_out))


def _chip(init="asymmetric", backward=True, dynamics="hopfield", sizes=(8, 10, 3)):
    return NonReciprocalChip(sizes, backward=backward, init=init, init_scale=1.5, seed=3, dynamics=dynamics)


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize("dynamics,backward,init", CASES)
def test_relaxation_reaches_a_fixed_point(dynamics, backward, init):
    net = _net(dynamics, backward, init)
    x, t = _batch(3, 2)
    rel = net.relax(x, strict=True)
    assert rel.all_converged
    assert np.max(np.abs(net.force(x, rel.states))) < 1e-12
    # a learning phase (nudge + antisymmetric feedback) also settles, from the free state
    a2 = 2 * net.antisymmetric_part(x, rel.states)
    feedback = AffineForce(a2, np.matmul(a2, rel.states[..., None])[..., 0])  # -2A (s - s0)
    force = AffineForce.output_nudge(net.topology, t, 0.1) + feedback
    nudged = net.relax(x, start=rel.states, extra_force=force, strict=True)
    assert np.max(np.abs(net.force(x, nudged.states, force))) < 1e-12
    # the fixed point is stable (the device would reach it)
    assert np.all(np.linalg.eigvals(net.jacobian(x, rel.states)).real < 0)


def test_reciprocal_hopfield_network_has_symmetric_jacobian_and_feedforward_is_triangular():
    x, _ = _batch(3, 2)
    sym = _net("hopfield", True, "symmetric")
    J = sym.jacobian(x, sym.relax(x).states)
    np.testing.assert_allclose(J, J.transpose(0, 2, 1), atol=1e-14)
    ff = _net("hopfield", False)
    J = ff.jacobian(x, ff.relax(x).states)
    hid, out = ff.topology.layer_slices
    assert np.all(J[:, hid, out] == 0) and np.abs(J[:, out, hid]).max() > 0


def test_pure_euler_relaxation_agrees_with_newton_polish():
    net = _net()
    x, _ = _batch(3, 2)
    euler = NonReciprocalNetwork(net.topology, net.parameters, tol=1e-11, newton_from=0).relax(x, strict=True)
    np.testing.assert_allclose(euler.states, net.relax(x).states, atol=1e-9)
    assert euler.newton_steps == 0 and euler.euler_steps > 10


def test_unconverged_relaxation_is_flagged():
    net = _net()
    short = NonReciprocalNetwork(net.topology, net.parameters, max_steps=2, newton_from=0)
    x, _ = _batch(3, 2)
    rel = short.relax(x)
    assert not rel.converged.any()
    with pytest.raises(RelaxationError, match="did not reach"):
        short.relax(x, strict=True)


def test_strong_rotation_still_relaxes():
    # leaky tanh pair with a strong antisymmetric coupling: Euler at dt=0.5 would blow up, the step adapts
    topo = LayeredTopology((1, 1, 1), dynamics="leaky", activation="tanh")
    net = NonReciprocalNetwork(topo, topo.pack({"W_f[0]": [[1.0]], "W_f[1]": [[5.0]], "W_b[1]": [[-5.0]],
                                                "b": [0.1, 0.2]}))
    assert net.relax(np.array([[0.3]]), strict=True).all_converged


def test_batched_relaxation_and_gradient_equal_the_per_example_loop():
    net = _net(sizes=(3, 5, 4, 2))
    x, t = _batch(3, 2, n=7)
    batch = net.relax(x).states
    looped = np.vstack([net.relax(x[i:i + 1]).states for i in range(len(x))])
    np.testing.assert_allclose(batch, looped, atol=1e-12)
    g = net.exact_gradient(x, t)
    g_loop = np.mean([net.exact_gradient(x[i:i + 1], t[i:i + 1]) for i in range(len(x))], axis=0)
    np.testing.assert_allclose(g, g_loop, rtol=1e-9, atol=1e-13)


def test_layer_schur_solve_equals_dense_solve():
    net = _net(sizes=(5, 12, 6, 3))
    x, t = _batch(5, 3)
    s0 = net.relax(x).states
    a2 = 2 * net.antisymmetric_part(x, s0)
    aep = AffineForce.output_nudge(net.topology, t, 0.1) + AffineForce(a2, None)
    dense = AffineForce(np.random.default_rng(0).normal(0, 0.1, (net.topology.n_units,) * 2), None)
    rhs = np.random.default_rng(1).normal(size=s0.shape)
    for J in (net.jacobian(x, s0), net.jacobian(x, s0).transpose(0, 2, 1), net.jacobian(x, s0, aep),
              net.jacobian(x, s0, dense)):
        np.testing.assert_allclose(net.solve(J, rhs), np.linalg.solve(J, rhs[..., None])[..., 0], atol=1e-11)


@pytest.mark.parametrize("dynamics,backward,init", CASES)
def test_exact_gradient_matches_central_finite_differences(dynamics, backward, init):
    net = _net(dynamics, backward, init)
    x, t = _batch(3, 2, n=5)
    topo, theta = net.topology, net.parameters

    def loss(th):
        m = NonReciprocalNetwork(topo, th, tol=1e-13)
        return m.loss(m.relax(x, strict=True).states, t)

    h = 1e-6
    fd = np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(topo.n_params)])
    g = net.exact_gradient(x, t)
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) <= 1e-5


def test_parameter_layout_round_trips():
    topo = LayeredTopology((4, 3, 2, 2), backward=True)
    theta = np.arange(topo.n_params, dtype=float)
    assert np.array_equal(topo.pack(topo.unpack(theta)), theta)
    names = [b.name for b in topo.blocks]
    assert names == ["W_f[0]", "W_f[1]", "W_f[2]", "W_b[1]", "W_b[2]", "b"]
    assert topo.n_params == 3 * 4 + 2 * 3 + 2 * 2 + 3 * 2 + 2 * 2 + 7
    W, U, b = topo.assemble(theta)
    hid1, hid2, out = topo.layer_slices
    np.testing.assert_array_equal(W[hid2, hid1], topo.unpack(theta)["W_f[1]"])
    np.testing.assert_array_equal(W[hid1, hid2], topo.unpack(theta)["W_b[1]"])
    assert np.all(W[hid1, out] == 0) and np.all(U[hid2] == 0)
    ff = LayeredTopology((4, 3, 2), backward=False)
    assert [b.name for b in ff.blocks] == ["W_f[0]", "W_f[1]", "b"]


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("dynamics,backward", [("hopfield", True), ("hopfield", False), ("leaky", True)])
def test_aep_matches_the_exact_gradient_on_non_reciprocal_networks(dynamics, backward):
    chip = _chip("asymmetric", backward, dynamics)
    x, t = _batch(8, 3, n=16)
    exact = nonreciprocal_exact_gradient(chip, x, t)
    fid = compare_gradients(AsymmetricEP(1e-3).estimate(chip, x, t).gradient, exact)
    assert fid.cosine >= 0.999 and fid.relative_error < 1e-3
    # one-sided AEP is also consistent, with a larger O(beta) bias
    assert nonreciprocal_fidelity(chip, AsymmetricEP(1e-3, centred=False), x, t).cosine >= 0.999


def test_plain_ep_and_vf_are_biased_on_asymmetric_couplings_but_aep_is_not():
    chip = _chip("asymmetric")
    x, t = _batch(8, 3, n=16)
    cos = {r.name: nonreciprocal_fidelity(chip, r, x, t).cosine
           for r in (AsymmetricEP(1e-3), PlainEP(1e-3), VectorFieldEP(1e-3))}
    assert cos["aep"] >= 0.999
    assert cos["plain_ep"] < 0.9 and cos["vf_ep"] < 0.9
    # plain EP is biased against the reciprocal-coupling gradient too
    assert nonreciprocal_fidelity(chip, PlainEP(1e-3), x, t, tied=True).cosine < 0.9


def test_on_a_reciprocal_network_every_rule_is_unbiased():
    chip = _chip("symmetric")
    x, t = _batch(8, 3, n=16)
    # AEP's correction vanishes (A = 0) and VF's delta is the adjoint (J = J^T)
    assert nonreciprocal_fidelity(chip, AsymmetricEP(1e-3), x, t).cosine >= 0.9999
    assert nonreciprocal_fidelity(chip, VectorFieldEP(1e-3), x, t).cosine >= 0.9999
    # plain EP gives the gradient w.r.t. the tied (reciprocal) coupling, scale included
    fid = nonreciprocal_fidelity(chip, PlainEP(1e-3), x, t, tied=True)
    assert fid.cosine >= 0.9999 and fid.relative_error < 1e-3
    # ... and its update keeps the couplings reciprocal
    g = PlainEP(1e-3).estimate(chip, x, t).gradient
    p = chip.topology.unpack(g)
    np.testing.assert_allclose(p["W_b[1]"], p["W_f[1]"].T, atol=1e-12)


@pytest.mark.parametrize("dynamics,backward", [("hopfield", True), ("hopfield", False), ("leaky", True)])
def test_dyadic_ep_is_exact_at_any_beta_and_agrees_with_aep(dynamics, backward):
    chip = _chip("asymmetric", backward, dynamics)
    x, t = _batch(8, 3, n=16)
    exact = nonreciprocal_exact_gradient(chip, x, t)
    for beta in (1e-3, 0.5):        # the mirror is linear: no O(beta) bias even at a large nudge
        fid = nonreciprocal_fidelity(chip, DyadicEP(beta), x, t)
        assert fid.cosine >= 0.999999 and fid.relative_error < 1e-6
    one_sided = DyadicEP(0.5, centred=False).estimate(chip, x, t).gradient
    assert compare_gradients(one_sided, exact).relative_error < 1e-6
    # AEP realises the same mirror state inside the network: the two agree as beta -> 0 ...
    aep = AsymmetricEP(1e-3).estimate(chip, x, t).gradient
    assert compare_gradients(aep, DyadicEP(1e-3).estimate(chip, x, t).gradient).relative_error < 1e-3
    # ... while at beta = 0.5 AEP carries its O(beta^2) bias and dyadic EP does not
    assert nonreciprocal_fidelity(chip, AsymmetricEP(0.5), x, t).relative_error > 1e-3


def test_mirror_relaxation_solves_the_transposed_linear_system():
    chip = _chip("asymmetric")
    x, t = _batch(8, 3, n=5)
    free = chip.relax(x)
    drive = np.random.default_rng(0).normal(size=free.states.shape)
    mirror = chip.relax_mirror(x, free.states, drive)
    jt = chip.network_model().jacobian(x, free.states).transpose(0, 2, 1)
    assert mirror.converged.all()
    np.testing.assert_allclose(np.einsum("bij,bj->bi", jt, mirror.states), -drive, atol=1e-9)


def test_aep_bias_shrinks_quadratically_with_beta():
    chip = _chip("asymmetric")
    x, t = _batch(8, 3, n=16)
    err = [nonreciprocal_fidelity(chip, AsymmetricEP(b), x, t).relative_error for b in (0.04, 0.02)]
    assert 3.0 < err[0] / err[1] < 5.0


def test_examples_with_unconverged_phases_are_left_out():
    chip = NonReciprocalChip((4, 5, 2), seed=0, max_steps=1, newton_from=0)  # nothing can converge
    x, t = _batch(4, 2)
    rule = AsymmetricEP(0.01)
    est = rule.estimate(chip, x, t)
    assert np.all(est.gradient == 0) and rule.dropped_examples == len(x)
    assert chip.snapshot()["stats"]["unconverged_examples"] > 0


def test_implicit_gradient_estimator_is_exact():
    chip = _chip()
    x, t = _batch(8, 3)
    est = ImplicitGradient().estimate(chip, x, t)
    np.testing.assert_allclose(est.gradient, chip.exact_gradient(x, t), rtol=1e-10, atol=1e-14)
    assert make_nonreciprocal_rule("aep", 0.05).describe() == {"rule": "aep", "beta": 0.05, "centred": True}
    with pytest.raises(ValueError, match="unknown non-reciprocal rule"):
        make_nonreciprocal_rule("dyadic")


# --------------------------------------------------------------------- chip
def test_chip_interface():
    chip = _chip()
    spec = chip.parameter_spec
    assert spec.size == chip.topology.n_params and np.all(spec.upper == 5.0)
    took = chip.set_parameters(np.full(spec.size, 9.0))
    assert np.all(took == 5.0)
    chip.set_parameters(chip.topology.initial_parameters(0))
    x, t = _batch(8, 3)
    m = chip.measure(x)
    assert m.output_v.shape == (6, 3)
    np.testing.assert_allclose(m.output_v, chip.relax(x).output_v)
    nudged = chip.measure(x, CurrentNudge(0.1 * (t - m.output_v)))
    assert np.all(np.sign(nudged.output_v - m.output_v) == np.sign(t - m.output_v))
    json.dumps(chip.snapshot())
    assert chip.snapshot()["stats"]["unconverged_examples"] == 0
    assert [b["name"] for b in chip.parameter_blocks()] == ["W_f[0]", "W_f[1]", "W_b[1]", "b"]
    with pytest.raises(TypeError):
        chip.measure(x, edge_drops=True)


def test_large_free_measurements_relax_in_chunks_with_the_same_states():
    chip = _chip()
    x, _ = _batch(8, 3, n=11)
    whole = chip.measure(x).output_v
    chip.measure_chunk = 4  # 11 examples: chunks of 4, 4, 3
    np.testing.assert_allclose(chip.measure(x).output_v, whole, rtol=0, atol=1e-12)
    assert chip.measure(x).output_v.shape == (11, 3)


def test_rules_refuse_chips_without_state_readout():
    chip = IdealChip(layered([2, 3, 1]))
    for rule in (AsymmetricEP(0.1), PlainEP(0.1), VectorFieldEP(0.1)):
        with pytest.raises(CapabilityError, match="state_readout"):
            rule.check(chip)


# ----------------------------------------------------------------- training
def test_aep_training_reduces_the_loss():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (24, 4))
    teacher = NonReciprocalChip((4, 5, 2), seed=11, init_scale=2.0)
    t = teacher.measure(x).output_v
    task = Task("teacher", x[:16], t[:16], x[16:], t[16:])
    chip = NonReciprocalChip((4, 5, 2), seed=2, init="asymmetric")
    result = Run(chip, AsymmetricEP(0.01), Adam(0.02), task, epochs=30, batch_size=8, seed=0).run()
    assert result.status == "completed"
    assert result.evals[-1]["train_loss"] < 0.3 * result.evals[0]["train_loss"]
    assert result.evals[-1]["test_loss"] < result.evals[0]["test_loss"]
    assert chip.snapshot()["stats"]["unconverged_examples"] == 0
