"""XY evaluation relaxes every example from fixed seeded starts; learning rules keep fresh random starts.

A multistable XY network's prediction depends on the initial phases.  With random starts per measurement the
same example could score differently in the train and the test set of one evaluation (a gate's test set *is*
its train set) and differently at two evaluations of unchanged parameters.  docs/algorithms.md, section 7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.kinds.xy.chip import XYChip
from labtrain.kinds.xy.rules import XYEquilibriumPropagation
from labtrain.physics.network import all_to_all
from labtrain.training.run import Run

HALF_PI = np.pi / 2
XOR_X = HALF_PI * np.array([[-1, -1], [-1, 1], [1, -1], [1, 1.0]])
XOR_T = HALF_PI * np.array([[-1], [1], [1], [-1.0]])
ROOT = Path(__file__).resolve().parents[1]


def chip(**kw) -> XYChip:
    return XYChip(all_to_all(6), n_starts=6, init_bias=(-1.0, 1.0), init_seed=4, seed=0, **kw)


def test_fixed_starts_per_example_whatever_the_batch_or_generator():
    c = chip(evaluation_seed=7)
    c.reseed(1)
    a = c.measure(XOR_X)
    c.reseed(2)
    b = c.measure(np.vstack([XOR_X, XOR_X[::-1]]))          # a train and a (reversed) test set in one batch
    np.testing.assert_array_equal(a.phases, b.phases[:4])
    np.testing.assert_array_equal(a.phases, b.phases[4:][::-1])
    # the free oscillators' starts: one generator per example, fixed by the seed and the input phases
    s = c.evaluation_starts(XOR_X)[:, :, [2, 3, 4]]
    np.testing.assert_array_equal(s, c.evaluation_starts(XOR_X)[:, :, [2, 3, 4]])
    np.testing.assert_array_equal(s[1:3], c.evaluation_starts(XOR_X[1:3])[:, :, [2, 3, 4]])
    assert len(np.unique(s)) == s.size                       # different between examples and between starts
    assert not np.allclose(s, chip(evaluation_seed=8).evaluation_starts(XOR_X)[:, :, [2, 3, 4]])


def test_random_starts_without_an_evaluation_seed_and_for_the_rules():
    plain = chip()
    plain.reseed(1)
    first = plain.measure(XOR_X).phases
    plain.reseed(1)
    np.testing.assert_array_equal(plain.measure_free(XOR_X).phases, first)   # measure() = measure_free() here
    # the learning rule draws fresh random starts: the same estimate with and without fixed evaluation starts
    rule = XYEquilibriumPropagation(0.05)
    est = {}
    for name, c in (("plain", chip()), ("fixed", chip(evaluation_seed=7))):
        c.reseed([3, 4])
        est[name] = rule.estimate(c, XOR_X, XOR_T).gradient
    np.testing.assert_array_equal(est["plain"], est["fixed"])
    with pytest.raises(ValueError, match="no evaluation_seed"):
        plain.evaluation_starts(XOR_X)


def test_run_evaluation_of_a_gate_gives_identical_train_and_test_numbers(tmp_path):
    text = (ROOT / "examples" / "xor_xy_all_to_all.toml").read_text()
    text = text.replace("epochs = 300", "epochs = 3").replace("eval_every = 25", "eval_every = 1")
    setup = build_setup(experiment_from_text(text, tmp_path / "xor.toml"))
    assert setup.chip.evaluation_seed == 0 and setup.task.test_is_train
    spec = setup.chip.parameter_spec
    setup.chip.set_parameters(np.random.default_rng(5).uniform(spec.lower, spec.upper))   # a multistable point
    run = Run(setup.chip, setup.estimator, setup.optimizer, setup.task, epochs=3, batch_size=0, seed=0)
    evals = [run.evaluate(step) for step in (-1, 0, 5)]
    for ev in evals:
        assert ev["train_loss"] == ev["test_loss"] and ev["train_accuracy"] == ev["test_accuracy"]
    # unchanged parameters: the same numbers at every evaluation (the starts do not follow the step)
    assert len({ev["train_loss"] for ev in evals}) == 1
    # with random starts per measurement this point scores differently on identical data
    setup.chip.evaluation_seed = None
    ev = run.evaluate(-1)
    assert abs(ev["train_loss"] - ev["test_loss"]) > 1e-3
