"""labtrain.linalg: block PCG, the SPD solver layer, its automatic choice and the batched LDL^T."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from labtrain.linalg import (BlockDiagonalPattern, CGDidNotConvergeError, NotPositiveDefiniteError, SPDSolver,
                             block_pcg, check_solver, cholmod_available, choose_solver, csc_assembly, graph_profile,
                             laplacian_terms, make_preconditioner)
from labtrain.linalg import spd as spd_module
from labtrain.linalg.batched import BatchedSPD
from labtrain.physics.network import lattice, random_graph

needs_cholmod = pytest.mark.skipif(not cholmod_available(), reason="scikit-sparse (CHOLMOD) is not installed")
DIRECT = ["superlu", pytest.param("cholmod", marks=needs_cholmod)]


def reduced_laplacian(net, g):
    """L_FF (CSC pattern from csc_assembly) with grounds and inputs fixed, and its pattern pieces."""
    free = np.setdiff1d(np.arange(net.n_nodes), list(net.grounds) + list(net.inputs))
    pos = np.full(net.n_nodes, -1)
    pos[free] = np.arange(len(free))
    indptr, indices, op = csc_assembly(*laplacian_terms(net.edges, pos), len(free), net.n_edges)
    return indptr, indices, op, len(free)


@pytest.fixture(scope="module")
def lap():
    net = lattice(12, 13, n_inputs=2, n_outputs=2)
    g = np.exp(np.random.default_rng(0).uniform(np.log(1e-5), np.log(1e-3), net.n_edges))
    indptr, indices, op, n = reduced_laplacian(net, g)
    data = op @ g
    return indptr, indices, n, data, sp.csc_matrix((data, indices, indptr), shape=(n, n))


def test_laplacian_assembly_matches_incidence_product():
    net = random_graph(30, 70, seed=1)
    g = np.random.default_rng(1).uniform(1, 2, net.n_edges)
    indptr, indices, op, n = reduced_laplacian(net, g)
    free = np.setdiff1d(np.arange(net.n_nodes), list(net.grounds) + list(net.inputs))
    b = net.incidence()[free]
    ref = (b @ sp.diags(g) @ b.T).toarray()
    np.testing.assert_allclose(sp.csc_matrix((op @ g, indices, indptr), shape=(n, n)).toarray(), ref, rtol=1e-14)


def test_block_pcg_matches_direct_and_meets_rtol(lap):
    _, _, n, _, a = lap
    rhs = np.random.default_rng(2).normal(size=(n, 3))
    exact = np.linalg.solve(a.toarray(), rhs)
    res = block_pcg(a.tocsr(), rhs, preconditioner=make_preconditioner(a, "jacobi"), rtol=1e-12)
    assert np.all(res.relative_residual <= 1e-12)
    true_residual = np.linalg.norm(rhs - a @ res.x, axis=0) / np.linalg.norm(rhs, axis=0)
    assert np.all(true_residual <= 1.1e-12)  # the recurrence's residual stays the true one
    np.testing.assert_allclose(res.x, exact, rtol=1e-6, atol=1e-9 * np.abs(exact).max())


def test_block_pcg_warm_start_and_zero_column(lap):
    _, _, n, _, a = lap
    rhs = np.random.default_rng(3).normal(size=(n, 2))
    rhs[:, 1] = 0.0
    cold = block_pcg(a.tocsr(), rhs, rtol=1e-10, preconditioner=make_preconditioner(a, "jacobi"))
    assert np.all(cold.x[:, 1] == 0.0)
    warm = block_pcg(a.tocsr(), rhs, x0=cold.x * (1 + 1e-6), rtol=1e-10,
                     preconditioner=make_preconditioner(a, "jacobi"))
    assert warm.iterations < 0.8 * cold.iterations
    with pytest.raises(CGDidNotConvergeError, match="did not reach rtol"):
        block_pcg(a.tocsr(), rhs, rtol=1e-14, max_iter=3)


def test_block_pcg_vector_rhs(lap):
    _, _, n, _, a = lap
    b = np.ones(n)
    x = block_pcg(a.tocsr(), b, rtol=1e-12).x
    assert x.shape == (n,)
    assert np.linalg.norm(a @ x - b) <= 1e-11 * np.linalg.norm(b)


def test_amg_preconditioner_cuts_iterations(lap):
    pytest.importorskip("pyamg")
    _, _, n, _, a = lap
    rhs = np.random.default_rng(4).normal(size=(n, 2))
    jac = block_pcg(a.tocsr(), rhs, rtol=1e-10, preconditioner=make_preconditioner(a, "jacobi"))
    amg = block_pcg(a.tocsr(), rhs, rtol=1e-10, preconditioner=make_preconditioner(a, "amg"))
    assert amg.iterations < jac.iterations
    np.testing.assert_allclose(amg.x, jac.x, rtol=1e-6, atol=1e-8 * np.abs(jac.x).max())


@pytest.mark.parametrize("method", DIRECT + ["cg"])
def test_spd_solver_refactors_new_values(lap, method):
    indptr, indices, n, data, _ = lap
    solver = SPDSolver(indptr, indices, n, solver=method, rtol=1e-13)
    assert solver.method == method
    rng = np.random.default_rng(5)
    rhs = rng.normal(size=(n, 4))
    for scale in (1.0, rng.uniform(0.5, 2.0, len(data))):  # second set: new values on the same pattern
        # a Laplacian with new conductances: scale the matrix by a positive diagonal congruence
        d = np.ones(n) if np.isscalar(scale) else rng.uniform(0.5, 2.0, n)
        a = sp.diags(d) @ sp.csc_matrix((data, indices, indptr), shape=(n, n)) @ sp.diags(d)
        a = sp.csc_matrix(a)
        a.sort_indices()
        x = solver.factor(a.data).solve(rhs)
        np.testing.assert_allclose(x, np.linalg.solve(a.toarray(), rhs), rtol=1e-8,
                                   atol=1e-10 * np.abs(x).max())


@pytest.mark.parametrize("method", DIRECT)
def test_direct_solvers_reject_singular_or_indefinite(method):
    net = lattice(4, 4)
    n = net.n_nodes
    pos = np.arange(n)  # nothing fixed: the full Laplacian is singular
    indptr, indices, op = csc_assembly(*laplacian_terms(net.edges, pos), n, net.n_edges)
    solver = SPDSolver(indptr, indices, n, solver=method)
    with pytest.raises(NotPositiveDefiniteError):
        solver.factor(op @ np.ones(net.n_edges)).solve(np.ones(n))


def test_check_solver_one_line_error():
    assert check_solver("cg") == "cg"
    with pytest.raises(ValueError, match=r"^solver must be one of .* got 'lu'$"):
        check_solver("lu")


def test_graph_profile_tells_lattices_from_random_graphs():
    lat = lattice(60, 60)
    rnd = random_graph(3600, 7200, seed=0)
    for net, low in ((lat, True), (rnd, False)):
        pos = np.arange(net.n_nodes)
        indptr, indices, _ = csc_assembly(*laplacian_terms(net.edges, pos), net.n_nodes, net.n_edges)
        prof = graph_profile(indptr, indices, net.n_nodes)
        assert prof.mesh_like is low, prof
    assert 1.5 < graph_profile(*csc_assembly(*laplacian_terms(lat.edges, np.arange(3600)), 3600,
                                              lat.n_edges)[:2], 3600).effective_dimension < 2.5


def test_auto_choice_by_size_and_growth(monkeypatch):
    direct = "cholmod" if cholmod_available() else "superlu"
    small = random_graph(500, 1000, seed=2)
    big_random = random_graph(8000, 16000, seed=2)
    big_lattice = lattice(90, 90)
    for net, want in ((small, direct), (big_random, "cg"), (big_lattice, direct)):
        pos = np.arange(net.n_nodes)
        indptr, indices, _ = csc_assembly(*laplacian_terms(net.edges, pos), net.n_nodes, net.n_edges)
        assert choose_solver(indptr, indices, net.n_nodes) == want, net.name
    # a requested optional solver that is missing falls back with one logged line
    monkeypatch.setattr(spd_module, "cholmod_available", lambda: False)
    monkeypatch.setattr(spd_module, "_noted", set())
    indptr, indices, _ = csc_assembly(*laplacian_terms(small.edges, np.arange(500)), 500, small.n_edges)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("labtrain.linalg").addHandler(handler)
    try:
        assert choose_solver(indptr, indices, 500, "cholmod") == "superlu"
        assert choose_solver(indptr, indices, 500, "auto") == "superlu"
    finally:
        logging.getLogger("labtrain.linalg").removeHandler(handler)
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "scikit-sparse" in records[0].getMessage()


def test_block_diagonal_pattern():
    a = sp.csc_matrix(np.array([[2.0, 1.0], [1.0, 3.0]]))
    pat = BlockDiagonalPattern(a.indptr, a.indices, 2)
    data = np.array([a.data, 2 * a.data])
    np.testing.assert_array_equal(pat.matrix(data).toarray(), sp.block_diag([a, 2 * a]).toarray())


@pytest.mark.parametrize("method", DIRECT)
def test_batched_ldl_solves_and_counts_negative_eigenvalues(method):
    net = lattice(6, 6)
    n, m = net.n_nodes, net.n_edges
    # Laplacian of random weights plus a random diagonal: indefinite for some blocks
    rows, cols, sign, edge = laplacian_terms(net.edges, np.arange(n))
    d = np.arange(n)
    indptr, indices, op = csc_assembly(np.r_[rows, d], np.r_[cols, d], np.r_[sign, np.ones(n)], np.r_[edge, m + d],
                                       n, m + n)
    rng = np.random.default_rng(6)
    weights = np.r_[rng.uniform(0.2, 1.0, (m, 12)), rng.uniform(-0.6, 0.8, (n, 12))]
    data = np.asarray(op @ weights).T
    batched = BatchedSPD(indptr, indices, n, solver=method, ldl=True)
    factor = batched.factor(data)
    rhs = rng.normal(size=(12, n, 2))
    x = factor.solve(rhs)
    piv = factor.pivots()
    negatives = []
    for k in range(12):
        dense = sp.csc_matrix((data[k], indices, indptr), shape=(n, n)).toarray()
        np.testing.assert_allclose(dense @ x[k], rhs[k], atol=1e-9 * np.abs(rhs[k]).max())
        negatives.append(int(np.sum(np.linalg.eigvalsh(dense) < 0)))
        assert int(np.sum(piv[k] < 0)) == negatives[-1]
    assert 0 in negatives and max(negatives) > 0  # both definite and indefinite blocks were tested
    np.testing.assert_allclose(factor.solve(rhs[:, :, 0]), x[:, :, 0], rtol=1e-12, atol=1e-14)


@needs_cholmod
def test_batched_cholesky_rejects_indefinite_blocks():
    a = sp.csc_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))
    batched = BatchedSPD(a.indptr, a.indices, 2, solver="cholmod")
    with pytest.raises(NotPositiveDefiniteError):
        batched.factor(np.array([a.data]))


def test_batched_rejects_cg():
    with pytest.raises(ValueError, match="not available for batched"):
        BatchedSPD(np.array([0, 1]), np.array([0]), 1, solver="cg")
