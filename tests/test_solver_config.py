"""``[chip] solver`` in experiment files (issue 13): it reaches the model, CG gives the direct solver's
gradient, a bad value is a one-line error (exit 2), a missing CHOLMOD falls back with a note."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cli_helpers import cli, write
from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.linalg import spd as spd_module

RANDOM_CL = """
[chip]
topology = "random"
n_nodes = 120
n_edges = 400
graph_seed = 3
{solver}
[task]
name = "iris"
complementary_inputs = true
bias_inputs_v = [1.0]

[learning]
rule = "cl"
eta = 0.1
learning_rate = 0.05

[run]
epochs = 2
batch_size = 0
eval_every = 1
"""


def _cl_gradient(solver: str) -> np.ndarray:
    setup = build_setup(experiment_from_text(RANDOM_CL.format(solver=f'solver = "{solver}"')))
    assert setup.chip.network_model().solver == solver
    task = setup.task
    return setup.estimator.estimate(setup.chip, task.x_train, task.t_train).gradient


def test_cg_file_gives_the_direct_gradient():
    """A file with ``solver = "cg"``: the CL gradient of the whole training set matches SuperLU's."""
    g_cg, g_lu = _cl_gradient("cg"), _cl_gradient("superlu")
    cosine = float(g_cg @ g_lu / (np.linalg.norm(g_cg) * np.linalg.norm(g_lu)))
    assert cosine >= 0.999999, cosine


def test_cg_file_trains(tmp_path, capsys):
    f = write(tmp_path, RANDOM_CL.format(solver='solver = "cg"'))
    code, out, err = cli(["run", f, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("kind_lines, needles", [
    ('solver = "lu"', ("solver", "'lu'")),
    ('solver = 3', ("solver",)),
])
def test_bad_solver_exits_2(tmp_path, capsys, kind_lines, needles):
    f = write(tmp_path, RANDOM_CL.format(solver=kind_lines))
    code, out, err = cli(["check", f], capsys)
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize("text", [
    '[chip]\ntype = "xy"\nsolver = "cg"\n[task]\nname = "xor"\n',
    '[chip]\ntype = "nonlinear_resistor"\nsolver = "cg"\n[task]\nname = "xor"\n',
])
def test_cg_refused_where_newton_needs_a_factorisation(tmp_path, capsys, text):
    f = write(tmp_path, text)
    code, out, err = cli(["check", f], capsys)
    assert code == 2, (code, out, err)
    assert "solver = 'cg'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, attribute", [
    ('[chip]\ntype = "xy"\nsolver = "superlu"\nrows = 3\ncols = 3\n[task]\nname = "xor"\n', "xy"),
    ('[chip]\ntype = "nonlinear_resistor"\nsolver = "superlu"\n[task]\nname = "xor"\n', "nonlinear"),
])
def test_solver_reaches_newton_models(text, attribute):
    setup = build_setup(experiment_from_text(text))
    assert setup.chip.network_model().solver == "superlu"


def test_missing_cholmod_falls_back_with_a_note(monkeypatch, caplog):
    """``solver = "cholmod"`` without scikit-sparse: SuperLU, one warning line, no crash."""
    monkeypatch.setattr(spd_module, "cholmod_available", lambda: False)
    monkeypatch.setattr(spd_module, "_noted", set())
    with caplog.at_level(logging.WARNING, logger="labtrain"):
        g = _fallback_gradient()
    assert np.all(np.isfinite(g))
    notes = [r.getMessage() for r in caplog.records if "CHOLMOD" in r.getMessage() or "cholmod" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0], notes


def _fallback_gradient() -> np.ndarray:
    setup = build_setup(experiment_from_text(RANDOM_CL.format(solver='solver = "cholmod"')))
    assert setup.chip.network_model().solver == "superlu"
    task = setup.task
    return setup.estimator.estimate(setup.chip, task.x_train, task.t_train).gradient
