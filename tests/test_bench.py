"""The training-step benchmark: well-formed rows, same gradient on both paths, a real speed-up."""

from __future__ import annotations

import numpy as np
import pytest

from steplib import (baseline_cl_gradient, format_table, growth_exponent, lattice_shape,
                            run_step_benchmark)
from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.physics.network import lattice
from labtrain.protocols.gep import CoupledLearning

KEYS = {"rows", "cols", "n_nodes", "n_edges", "batch_size", "step_s", "baseline_s", "ratio",
        "baseline_examples_timed", "gradient_rel_err"}


@pytest.mark.parametrize("target", [12, 100, 1_000, 10_000, 100_000])
def test_lattice_shape_is_square_ish_and_close(target):
    rows, cols = lattice_shape(target)
    edges = 2 * rows * cols - rows - cols
    assert cols - rows in (0, 1)
    assert abs(edges - target) <= 0.1 * target
    assert lattice(rows, cols).n_edges == edges


def test_baseline_gradient_matches_coupled_learning():
    net = lattice(5, 6, n_inputs=4, n_outputs=2)
    rng = np.random.default_rng(3)
    g = np.exp(rng.uniform(np.log(net.g_min_s), np.log(net.g_max_s)))
    x, t = rng.uniform(-1, 1, (7, 4)), rng.uniform(-0.5, 0.5, (7, 2))
    fast = CoupledLearning(0.1).estimate(IdealChip(net, g), x, t).gradient
    base = baseline_cl_gradient(net, g, x, t, eta=0.1)
    assert np.linalg.norm(base) > 0
    np.testing.assert_allclose(base, fast, rtol=1e-9, atol=1e-12 * np.abs(fast).max())


def test_quick_rows_are_well_formed_and_faster_than_baseline():
    lines = []
    rows = run_step_benchmark(batch_size=64, sizes=[(6, 7), (14, 15)], progress=lines.append, seed=1)
    assert len(rows) == 2 and lines
    for row, (r, c) in zip(rows, [(6, 7), (14, 15)]):
        assert set(row) == KEYS
        assert (row["rows"], row["cols"]) == (r, c)
        assert row["n_nodes"] == r * c and row["n_edges"] == 2 * r * c - r - c
        assert row["batch_size"] == 64
        assert row["baseline_examples_timed"] == 64  # small lattices: the whole batch is timed
        assert row["step_s"] > 0 and row["baseline_s"] > 0
        assert row["ratio"] == pytest.approx(row["baseline_s"] / row["step_s"])
        assert row["gradient_rel_err"] < 1e-8
        # 128 sparse solves against one factorisation: far more than 1x even on a busy machine.
        assert row["ratio"] > 2
    table = format_table(rows)
    assert "6x7" in table and "14x15" in table and "n_edges^" in table
    assert growth_exponent(rows) is not None


def test_quick_mode_sizes():
    rows = run_step_benchmark(batch_size=8, quick=True)
    assert [r["n_edges"] for r in rows] == [lattice(*lattice_shape(n)).n_edges for n in (100, 1_000)]
    assert all(r["gradient_rel_err"] < 1e-8 and r["ratio"] > 1 for r in rows)


def test_growth_exponent_of_a_power_law():
    rows = [{"n_edges": n, "step_s": 1e-6 * n**1.5} for n in (100, 1_000, 10_000, 100_000)]
    assert growth_exponent(rows) == pytest.approx(1.5)
    assert growth_exponent(rows[:1]) is None


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        run_step_benchmark(batch_size=0)
