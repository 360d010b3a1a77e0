"""Guard of the DNPU gate claim: parallel HGE + the documented recipe realises representative gates.

Runs ``examples/dnpu_gates.py``'s own recipe (targets at the start point's
mean +- 0.3 V, one-sided loss, SGD lr 0.1 normalised, best of <= 4 restarts x
<= 100 iterations) on the ideal chip with the default device ``HoppingDNPU()``;
each gate must pass the settled-measurement verification.  Also checks the
one-sided loss of :class:`HomodyneGradient` against the exact gradient.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labtrain.kinds.dnpu.chip import DNPUChip
from labtrain.protocols.homodyne import HomodyneGradient
from labtrain.kinds.dnpu.model import HoppingDNPU
from labtrain.training.tasks import make_task

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dnpu_gates.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("dnpu_gates_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    return HoppingDNPU()


@pytest.mark.parametrize("gate", ["and", "xor", "nand"])
def test_hge_recipe_realises_gate_on_ideal_chip(example, model, gate):
    args = argparse.Namespace(backend="ideal", iterations=100, restarts=4, lr=0.1, margin=0.3, stop_margin=0.25,
                              seed=0)
    r = example.train_gate(gate, args, model)
    assert r["realised"], r
    # the verification is a settled measurement: every case on the correct side of the threshold
    y = np.array(make_task(gate).y_train)
    out = np.array(r["output_v"])
    assert np.all((out > r["threshold_v"]) == (y > 0))
    assert r["iterations"] <= 4 * 100


def test_one_sided_loss_gradient_matches_exact(model):
    chip = DNPUChip(model)
    task = make_task("xor", input_low_v=-1.2, input_high_v=0.6)
    out = chip.measure(task.x_train).output_v
    thr = float(np.mean(out))
    targets = np.where(task.y_train[:, None] > 0, thr + 0.3, thr - 0.3)
    est = HomodyneGradient(loss="one_sided", threshold_v=thr)
    g = est.estimate(chip, task.x_train, targets)
    err = est.output_error(out, targets)
    exact = np.mean(err[..., None] * chip.output_jacobian(task.x_train), axis=(0, 1))
    cos = g.gradient @ exact / (np.linalg.norm(g.gradient) * np.linalg.norm(exact))
    assert cos > 0.999
    assert np.linalg.norm(g.gradient - exact) < 0.02 * np.linalg.norm(exact)
    # beyond-target outputs on the correct side contribute nothing
    far = np.where(task.y_train[:, None] > 0, thr + 5.0, thr - 5.0)
    assert np.allclose(est.output_error(far, targets), 0.0)
    with pytest.raises(ValueError, match="threshold_v"):
        HomodyneGradient(loss="one_sided")
    with pytest.raises(ValueError, match="loss"):
        HomodyneGradient(loss="hinge")
