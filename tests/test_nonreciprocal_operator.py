"""The structured Jacobian of the non-reciprocal network (``ScaledCouplings``) against dense arrays."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.kinds.nonreciprocal.chip import NonReciprocalChip
from labtrain.kinds.nonreciprocal.model import AffineForce, activation
from labtrain.kinds.nonreciprocal.operator import ScaledCouplings

B, N = 5, 9


def _random_operator(rng, dense=False):
    q1, q2 = rng.normal(size=(N, N)), rng.normal(size=(N, N))
    op = ScaledCouplings(rng.normal(size=(B, N)),
                         ((rng.normal(size=(B, N)), q1, rng.normal(size=(B, N))), (None, q2, rng.normal(size=N))),
                         rng.normal(size=(B, N, N)) if dense else None)
    ref = (op.diag[:, :, None] * np.eye(N)
           + op.terms[0][0][:, :, None] * q1 * op.terms[0][2][:, None, :]
           + q2 * op.terms[1][2][None, None, :])
    if dense:
        ref = ref + op.dense
    return op, ref


@pytest.mark.parametrize("dense", [False, True])
def test_scaled_couplings_match_their_dense_matrices(dense):
    rng = np.random.default_rng(3)
    op, ref = _random_operator(rng, dense)
    s = rng.normal(size=(B, N))
    np.testing.assert_allclose(op.dense_matrix(B), ref, atol=1e-12)
    np.testing.assert_allclose(op.matvec(s), np.einsum("bij,bj->bi", ref, s), atol=1e-12)
    np.testing.assert_allclose(op.diagonal(), np.diagonal(ref, axis1=1, axis2=2), atol=1e-12)
    np.testing.assert_allclose(op.T.dense_matrix(B), ref.transpose(0, 2, 1), atol=1e-12)
    np.testing.assert_allclose(op.block(slice(2, 6), slice(4, None), B), ref[:, 2:6, 4:], atol=1e-12)
    idx = np.array([4, 1])
    np.testing.assert_allclose(op.take(idx).dense_matrix(2), ref[idx], atol=1e-12)
    np.testing.assert_allclose((-op).dense_matrix(B), -ref, atol=1e-12)


def test_scaled_couplings_sums_with_plain_matrices():
    rng = np.random.default_rng(4)
    op, ref = _random_operator(rng)
    diag = np.diag(rng.normal(size=N))
    full = rng.normal(size=(N, N))
    per_example = rng.normal(size=(B, N, N))
    for other in (diag, full, per_example):
        got = op + other
        np.testing.assert_allclose(got.dense_matrix(B), ref + other, atol=1e-12)
        np.testing.assert_allclose((other + op).dense_matrix(B), ref + other, atol=1e-12)
        np.testing.assert_allclose((op - other).dense_matrix(B), ref - other, atol=1e-12)
    assert not (op + diag).terms[2:] and (op + diag).dense is None  # a diagonal stays in the diagonal
    other, _ = _random_operator(rng)
    np.testing.assert_allclose((op + other).dense_matrix(B), ref + other.dense_matrix(B), atol=1e-12)


def _network(backward, dynamics, layers=(12, 8, 6, 4)):
    chip = NonReciprocalChip(layers, backward=backward, dynamics=dynamics, seed=2)
    return chip, chip.network_model()


@pytest.mark.parametrize("backward,dynamics", [(False, "hopfield"), (True, "hopfield"), (True, "leaky")])
def test_jacobian_operator_is_the_jacobian(backward, dynamics):
    chip, net = _network(backward, dynamics)
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (B, 12))
    s = rng.normal(0, 0.5, (B, net.topology.n_units))
    r, d, d2 = activation(net.topology.activation, s)
    z = r @ net.W.T + net.external(x)
    g, dg = (d, d2) if dynamics == "hopfield" else (np.ones_like(s), np.zeros_like(s))
    ref = g[:, :, None] * net.W * d[:, None, :] + (dg * z - 1.0)[:, :, None] * np.eye(net.topology.n_units)
    np.testing.assert_allclose(net.jacobian(x, s), ref, atol=1e-13)
    # central finite differences of the force
    eps = 1e-6
    fd = np.stack([(net.force(x, s + eps * e) - net.force(x, s - eps * e)) / (2 * eps)
                   for e in np.eye(net.topology.n_units)], axis=2)
    np.testing.assert_allclose(net.jacobian(x, s), fd, atol=1e-7)
    two_a = net.antisymmetric_operator(x, s).dense_matrix(B)
    np.testing.assert_allclose(two_a, ref - ref.transpose(0, 2, 1), atol=1e-13)
    np.testing.assert_allclose(np.diagonal(two_a, axis1=1, axis2=2), 0.0, atol=1e-15)


@pytest.mark.parametrize("backward,dynamics", [(False, "hopfield"), (True, "hopfield"), (True, "leaky")])
def test_structured_solve_equals_dense_solve(backward, dynamics):
    """Block elimination from the structured form (free, nudged, AEP and a dense extra force) = numpy's solve."""
    chip, net = _network(backward, dynamics)
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (B, 12))
    s0 = net.relax(x, strict=True).states
    t = rng.uniform(0, 1, (B, 4))
    nudge = AffineForce.output_nudge(net.topology, t, 0.1)
    aep = nudge + chip.antisymmetric_feedback(x, s0)
    dense = AffineForce(rng.normal(0, 0.1, (net.topology.n_units,) * 2), None)
    rhs = rng.normal(size=s0.shape)
    for force in (None, nudge, aep, dense):
        op = net.jacobian_operator(x, s0, force)
        ref = net.jacobian(x, s0, force)
        for m, m_dense in ((op, ref), (op.T, ref.transpose(0, 2, 1))):
            want = np.linalg.solve(m_dense, rhs[..., None])[..., 0]
            np.testing.assert_allclose(net.solve(m, rhs), want, rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(net.solve(m_dense, rhs), want, rtol=1e-9, atol=1e-11)


def test_aep_feedback_force_is_minus_two_a_times_the_offset_from_the_free_state():
    chip, net = _network(False, "hopfield")
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (B, 12))
    s0 = net.relax(x, strict=True).states
    s = s0 + rng.normal(0, 0.1, s0.shape)
    feedback = chip.antisymmetric_feedback(x, s0)
    two_a = 2.0 * net.antisymmetric_part(x, s0)
    np.testing.assert_allclose(feedback(s), -np.einsum("bij,bj->bi", two_a, s - s0), atol=1e-13)
    np.testing.assert_allclose(feedback.take(np.array([3]))(s[3:4]), feedback(s)[3:4], atol=1e-15)
