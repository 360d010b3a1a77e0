"""``array_backend = "jax"`` (issue 13): the non-reciprocal relaxation on JAX gives NumPy's fixed points.

NumPy is the reference; JAX runs the same algorithm compiled, in float64 on the CPU here.  Every comparison is
to 1e-10 (they agree to ~1e-15, with the same Euler and Newton step counts).  Skipped without JAX.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cli_helpers import cli, write
from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.kinds.nonreciprocal.model import AffineForce, LayeredTopology, NonReciprocalNetwork
from labtrain.linalg import backend

needs_jax = pytest.mark.skipif(not backend.jax_available(), reason="JAX is not installed (pip install -e '.[accel]')")
ATOL = 1e-10

CASES = [((4, 16, 3), "hopfield", "smooth_hard_sigmoid", 13),
         ((4, 32, 16, 3), "leaky", "tanh", 8),
         ((6, 12, 2), "hopfield", "sigmoid", 5)]


def _pair(sizes, dynamics, act, **kw):
    topo = LayeredTopology(sizes, True, dynamics, act)
    theta = topo.initial_parameters(1, "asymmetric", 1.0)
    return (topo, NonReciprocalNetwork(topo, theta, **kw),
            NonReciprocalNetwork(topo, theta, array_backend="jax", **kw))


@needs_jax
@pytest.mark.parametrize("sizes, dynamics, act, batch", CASES)
def test_free_and_nudged_fixed_points_agree(sizes, dynamics, act, batch):
    topo, ref, acc = _pair(sizes, dynamics, act)
    assert acc.array_backend == "jax"
    rng = np.random.default_rng(0)
    x, t = rng.uniform(0, 1, (batch, sizes[0])), rng.uniform(0, 1, (batch, sizes[-1]))
    a, b = ref.relax(x), acc.relax(x)
    assert a.all_converged and b.all_converged
    np.testing.assert_allclose(b.states, a.states, rtol=0, atol=ATOL)
    assert (b.euler_steps, b.newton_steps) == (a.euler_steps, a.newton_steps)
    assert b.info["array_backend"] == "jax"
    # learning phase: output nudge (one (n, n) matrix, per-example offsets), Newton first from the free state
    nudge = AffineForce.output_nudge(topo, t, 0.5)
    pa = ref.relax(x, start=a.states, extra_force=nudge)
    pb = acc.relax(x, start=a.states, extra_force=nudge)
    np.testing.assert_allclose(pb.states, pa.states, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(pb.converged, pa.converged)


@needs_jax
def test_per_example_force_and_pure_euler_agree():
    """A (B, n, n) extra force (AEP's -2A(s - s0)) and newton_from = 0 (Euler all the way to tol)."""
    topo, ref, acc = _pair((3, 10, 2), "leaky", "tanh", newton_from=0.0, tol=1e-9, max_steps=20000)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (6, 3))
    free = ref.relax(x)
    A = ref.antisymmetric_part(x, free.states)
    force = AffineForce(2 * A, 2 * np.einsum("bij,bj->bi", A, free.states))
    a = ref.relax(x, start=free.states, extra_force=force)
    b = acc.relax(x, start=free.states, extra_force=force)
    assert a.newton_steps == b.newton_steps == 0
    np.testing.assert_allclose(b.states, a.states, rtol=0, atol=ATOL)
    assert b.euler_steps == a.euler_steps


@needs_jax
def test_exact_gradient_agrees():
    topo, ref, acc = _pair((4, 16, 3), "hopfield", "smooth_hard_sigmoid")
    rng = np.random.default_rng(2)
    x, t = rng.uniform(0, 1, (10, 4)), rng.uniform(0, 1, (10, 3))
    np.testing.assert_allclose(acc.exact_gradient(x, t), ref.exact_gradient(x, t), rtol=0, atol=ATOL)


FILE = """
[chip]
type = "nonreciprocal"
hidden_layers = [8]
{line}
[task]
name = "xor"

[learning]
rule = "aep"
beta = 0.05

[run]
epochs = 2
batch_size = 0
eval_every = 1
"""


@needs_jax
def test_file_with_jax_gives_numpy_gradient(tmp_path, capsys):
    grads = {}
    for name in ("numpy", "jax"):
        setup = build_setup(experiment_from_text(FILE.format(line=f'array_backend = "{name}"')))
        assert setup.chip.network_model().array_backend == name
        grads[name] = setup.estimator.estimate(setup.chip, setup.task.x_train, setup.task.t_train).gradient
    np.testing.assert_allclose(grads["jax"], grads["numpy"], rtol=0, atol=ATOL)
    f = write(tmp_path, FILE.format(line='array_backend = "jax"'))
    code, out, err = cli(["run", f, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 0, err


def test_bad_array_backend_exits_2(tmp_path, capsys):
    f = write(tmp_path, FILE.format(line='array_backend = "torch"'))
    code, out, err = cli(["check", f], capsys)
    assert code == 2, (code, out, err)
    assert "array_backend" in err and len(err.strip().splitlines()) == 1


def test_missing_jax_falls_back_with_a_note(monkeypatch, caplog):
    monkeypatch.setattr(backend, "jax_available", lambda: False)
    monkeypatch.setattr(backend, "_noted", set())
    with caplog.at_level(logging.WARNING, logger="labtrain"):
        setup = build_setup(experiment_from_text(FILE.format(line='array_backend = "jax"')))
        setup2 = build_setup(experiment_from_text(FILE.format(line='array_backend = "jax"')))
    assert setup.chip.network_model().array_backend == "numpy"
    assert setup2.chip.network_model().array_backend == "numpy"
    notes = [r.getMessage() for r in caplog.records if "JAX" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0], notes


def test_unknown_backend_keyword():
    topo = LayeredTopology((2, 4, 1), True, "hopfield", "sigmoid")
    with pytest.raises(ValueError, match="array_backend must be one of"):
        NonReciprocalNetwork(topo, topo.initial_parameters(0), array_backend="cupy")
