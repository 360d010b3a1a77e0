"""XY-oscillator and non-reciprocal chips from experiment files: build, run, evaluate, gradcheck, resume,
spatial maps, bad input, and the GUI's coupling / response map."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.config import chip_kinds
from labtrain.cli import main
from labtrain.config import CHIP_RULES, experiment_from_text
from labtrain.training.launch import prepare_run
from labtrain.physics.network import lattice
from labtrain.kinds.xy.model import PhaseCost
from labtrain.training.store import RunStore, read_summary
from labtrain.kinds.xy.tasks import phase_accuracy

from cli_helpers import (assert_bad_run_is_one_line_error, assert_resumed_like, cli, run_contents, run_until_killed,
                         with_lines, write)

XY_XOR = """\
[chip]
type = "xy"
topology = "lattice"
rows = 3
cols = 3
n_starts = 4
[task]
name = "xor"
[learning]
rule = "xy_ep"
beta = 0.1
cost = "log"
learning_rate = 0.025
[run]
epochs = 3
"""
NR_IRIS = """\
[chip]
type = "nonreciprocal"
hidden_layers = [5]
[task]
name = "iris"
[learning]
rule = "aep"
beta = 0.01
centred = true
learning_rate = 0.01
[run]
epochs = 2
batch_size = 32
"""


# ----------------------------------------------------------------- registry
def test_every_chip_type_is_a_registered_kind_with_its_rules():
    kinds = chip_kinds()
    assert set(kinds) == set(CHIP_RULES) >= {"resistor_network", "xy", "nonreciprocal", "nonlinear_resistor", "dnpu"}
    for kind, rules in CHIP_RULES.items():
        assert tuple(kinds[kind].rules) == rules, kind
    assert CHIP_RULES["resistor_network"][0] == "cl" and CHIP_RULES["xy"][0] == "xy_ep"


# ----------------------------------------------------------------- runs from the CLI
RUNS = {
    "xy-lattice-xy_ep": (XY_XOR, "xy_ep", 3),
    "xy-all_to_all-xy_implicit": (with_lines(XY_XOR, "chip", 'topology = "all_to_all"', "n_nodes = 5")
                                  .replace('rule = "xy_ep"', 'rule = "xy_implicit"'), "xy_implicit", 3),
    "xy-stacked_lattice-skip": (with_lines(XY_XOR, "chip", 'topology = "stacked_lattice"', "layers = 2",
                                           "skip = 2", "clamp_grounds = true"), "xy_ep", 3),
    "xy-layered-iris": (with_lines(XY_XOR.replace('"xor"', '"iris"'), "chip", 'topology = "layered"',
                                   "hidden_layers = [3]", 'bias = "field"')
                        .replace("epochs = 3", "epochs = 1\nbatch_size = 64"), "xy_ep", 2),
    "nonreciprocal-aep": (NR_IRIS, "aep", 8),
    "nonreciprocal-plain_ep": (NR_IRIS.replace('"aep"', '"plain_ep"'), "plain_ep", 8),
    "nonreciprocal-vf_ep": (NR_IRIS.replace('"aep"', '"vf_ep"'), "vf_ep", 8),
    "nonreciprocal-implicit-xor": (NR_IRIS.replace('"aep"', '"implicit"').replace('"iris"', '"xor"')
                                   .replace("batch_size = 32", "batch_size = 0"), "implicit", 2),
}


@pytest.mark.parametrize("text,rule,steps", RUNS.values(), ids=list(RUNS))
def test_new_chip_types_run_from_the_cli(text, rule, steps, tmp_path, capsys):
    f = write(tmp_path, text)
    code, out, err = cli(["run", f, "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 0, err
    assert "status      completed" in out and "V^2" not in out  # these losses are dimensionless
    (path,) = (tmp_path / "runs").glob("*.h5")
    summary = read_summary(path)
    assert summary["rule"] == rule and summary["steps_done"] == steps
    assert np.isfinite(summary["train_loss"]) and 0.0 <= summary["train_accuracy"] <= 1.0


def test_epochs_override_and_check(tmp_path, capsys):
    f = write(tmp_path, NR_IRIS)
    code, out, _ = cli(["check", f], capsys)
    assert code == 0 and "non-reciprocal rate network 4-5-3" in out and "decoder argmax" in out
    f = write(tmp_path, XY_XOR, "xy.toml")
    code, out, _ = cli(["check", f], capsys)
    assert code == 0 and "lattice 3x3: 9 nodes, 12 edges" in out and "decoder nearest_phase" in out
    code, out, err = cli(["run", f, "--epochs", "1", "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 0 and "steps       1 / 1" in out, err


def test_lattice_inset_and_basin_jump_guard_reach_the_chip_and_the_estimator():
    """``[chip] lattice_inset`` places the terminals as ``xy_lattice``; ``[learning] max_shift_rad`` arms the guard."""
    from labtrain.kinds.xy.model import stacked_lattice, xy_lattice

    exp = experiment_from_text(with_lines(XY_XOR, "chip", "rows = 5", "cols = 5", "lattice_inset = 1")
                               .replace("beta = 0.1", "beta = 0.01\nmax_shift_rad = 0.5"))
    setup = build_setup(exp)
    ref = xy_lattice(5, 5)  # inputs (1, 1) and (3, 1), output (2, 3)
    net = setup.chip.network
    assert list(net.inputs) == list(ref.inputs) == [6, 16] and list(net.outputs) == list(ref.outputs) == [13]
    assert setup.estimator.max_shift_rad == 0.5 and setup.estimator.describe()["max_shift_rad"] == 0.5
    default = build_setup(experiment_from_text(with_lines(XY_XOR, "chip", "rows = 5", "cols = 5")))
    assert list(default.chip.network.inputs) == [5, 15] and list(default.chip.network.outputs) == [14]
    assert default.estimator.max_shift_rad is None and "max_shift_rad" not in default.estimator.describe()
    stacked = build_setup(experiment_from_text(with_lines(XY_XOR, "chip", 'topology = "stacked_lattice"',
                                                          "rows = 5", "cols = 5", "lattice_inset = 1")))
    ref = stacked_lattice(5, 5, 2, inset=1)
    assert list(stacked.chip.network.inputs) == list(ref.inputs) == [6, 16]
    assert list(stacked.chip.network.outputs) == list(ref.outputs)


# ----------------------------------------------------------------- evaluation on the circle
def test_xy_evaluation_uses_the_phase_cost_and_circular_decoding():
    exp = experiment_from_text(XY_XOR)
    run = prepare_run(exp, store=False)
    ev = run.evaluate(-1)
    chip, task = run.chip, run.task
    chip.reseed([run.seed, 5, 0])  # the evaluation's stream
    meas = chip.measure(task.x_train)
    cost = PhaseCost("log", 0.1)
    expected = float(np.mean(cost.value(meas.output_phases, task.t_train[:, None, :])))
    assert ev["train_loss"] == pytest.approx(expected, rel=1e-12)
    assert ev["train_accuracy"] == phase_accuracy(task, meas.output_v, task.y_train)
    # Phases are on a circle: an output at -pi + 0.01 is 0.02 rad from a target at pi - 0.01.
    near = type(meas)(np.array([[-np.pi + 0.01]]), output_phases=np.array([[[-np.pi + 0.01]]]))
    assert run.estimator.measurement_loss(near, np.array([[np.pi - 0.01]])) < 1e-3


# ----------------------------------------------------------------- gradcheck
def test_gradcheck_xy_and_nonreciprocal(tmp_path, capsys):
    # initial bias fields: without them the 3x3 lattice relaxes to collinear (+-pi/2) states, where the
    # cost gradient vanishes exactly and a cosine means nothing
    f = write(tmp_path, with_lines(XY_XOR, "chip", "init_bias_rad_per_s = 0.5"))
    code, out, err = cli(["gradcheck", f, "--beta", "1e-4"], capsys)
    assert code == 0, err
    assert float(out.split("|exact| = ")[1].split()[0]) > 0.1
    rows = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()[3:5]}
    assert float(rows["xy_ep centred"][5]) > 0.99999  # cosine (columns: name, centred, beta, =, value, cosine)
    assert float(rows["xy_ep"][4]) > 0.999
    assert "implicit differentiation at the same free equilibria" in out
    f = write(tmp_path, NR_IRIS, "nr.toml")
    code, out, err = cli(["gradcheck", f, "--batch", "16", "--beta", "1e-4"], capsys)
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[3:6]}
    assert float(lines["aep"][5]) > 0.9999
    assert float(lines["plain_ep"][5]) < 0.99  # biased: the initial couplings are not reciprocal
    code, out, err = cli(["gradcheck", f, "--beta-s", "1e-6"], capsys)
    assert code == 2 and "--beta" in err and err.count("\n") == 1


# ----------------------------------------------------------------- bad input
BAD = {
    "cl-on-xy": (XY_XOR.replace('"xy_ep"', '"cl"'), ["[learning]", "rule = 'cl'", "type = 'xy'", "xy_ep"]),
    "aep-on-resistor": ('[learning]\nrule = "aep"\n', ["rule = 'aep'", "resistor_network"]),
    "resistor-key-on-xy": (with_lines(XY_XOR, "chip", "g_min_s = 1e-5"), ["[chip]", "g_min_s", "'xy'"]),
    "beta_s-on-xy": (with_lines(XY_XOR, "learning", "beta_s = 1e-6"), ["[learning]", "beta_s", "'xy'"]),
    "xy-key-on-resistor": ("[chip]\nn_starts = 4\n", ["[chip]", "n_starts", "resistor_network"]),
    "typo": (with_lines(XY_XOR, "chip", "n_strats = 4"), ["[chip]", "n_strats", "did you mean 'n_starts'"]),
    "bad-bias-mode": (with_lines(XY_XOR, "chip", 'bias = "vectro"'), ["bias = 'vectro'", "did you mean 'vector'"]),
    "bad-cost": (with_lines(XY_XOR, "learning", 'cost = "mse"'), ["[learning]", "cost = 'mse'", "cosine, log"]),
    "coupling-bounds": (with_lines(XY_XOR, "chip", "coupling_min_rad_per_s = 1.0", "coupling_max_rad_per_s = 1.0"),
                        ["coupling_min_rad_per_s", "coupling_max_rad_per_s"]),
    "init-coupling-pair": (with_lines(XY_XOR, "chip", "init_coupling_rad_per_s = [1.0]"),
                           ["init_coupling_rad_per_s", "[low, high]"]),
    "xy-regression": (XY_XOR.replace('"xor"', '"linear_regression"'), ["[task]", "linear_regression", "xor"]),
    "xy-decoder": (with_lines(XY_XOR, "task", 'decoder = "argmax"'), ["[task]", "decoder", "nearest_phase"]),
    "xy-twin": (with_lines(XY_XOR, "backend", 'kind = "twin"'), ["[backend]", "twin", "ideal"]),
    "stacked-on-resistor": ('[chip]\ntopology = "stacked_lattice"\n', ["[chip]", "stacked_lattice", "layered"]),
    "nr-topology": (with_lines(NR_IRIS, "chip", 'topology = "lattice"'), ["[chip]", "topology = 'lattice'",
                                                                         "layered"]),
    "nr-rows": (with_lines(NR_IRIS, "chip", "rows = 3"), ["[chip]", "rows", "nonreciprocal"]),
    "nr-volts": (with_lines(NR_IRIS, "task", "target_on_v = 0.6"), ["[task]", "target_on_v", "nonreciprocal"]),
    "nr-activation": (with_lines(NR_IRIS, "chip", 'activation = "relu"'), ["activation = 'relu'", "tanh"]),
    "maps-on-resistor": ("[run]\nrecord_maps_every = 5\n", ["[run]", "record_maps_every", "xy"]),
    "stacked-explicit-terminals": (with_lines(XY_XOR, "chip", 'topology = "stacked_lattice"', "inputs = [0, 3]"),
                                   ["[chip]", "stacked_lattice", "inputs"]),
    "inset-negative": (with_lines(XY_XOR, "chip", "lattice_inset = -1"), ["[chip]", "lattice_inset", "[0, 1000]"]),
    "inset-float": (with_lines(XY_XOR, "chip", "lattice_inset = 1.5"), ["[chip]", "lattice_inset", "int"]),
    "inset-too-large": (with_lines(XY_XOR, "chip", "lattice_inset = 2"), ["[chip]", "inset 2", "3x3"]),
    "inset-stacked-too-large": (with_lines(XY_XOR, "chip", 'topology = "stacked_lattice"', "lattice_inset = 2"),
                                ["[chip]", "inset 2", "3x3"]),
    "inset-on-all-to-all": (with_lines(XY_XOR, "chip", 'topology = "all_to_all"', "n_nodes = 5",
                                       "lattice_inset = 1"), ["[chip]", "lattice_inset", "'all_to_all'"]),
    "inset-on-resistor": ("[chip]\nlattice_inset = 1\n", ["[chip]", "lattice_inset", "resistor_network"]),
    "max-shift-negative": (with_lines(XY_XOR, "learning", "max_shift_rad = -0.5"),
                           ["[learning]", "max_shift_rad", "[0, 3.14159]"]),
    "max-shift-above-pi": (with_lines(XY_XOR, "learning", "max_shift_rad = 4.0"),
                           ["[learning]", "max_shift_rad", "[0, 3.14159]"]),
    "max-shift-on-implicit": (with_lines(XY_XOR.replace('"xy_ep"', '"xy_implicit"'), "learning",
                                         "max_shift_rad = 0.5"), ["[learning]", "max_shift_rad", "xy_implicit"]),
    "max-shift-on-nonreciprocal": (with_lines(NR_IRIS, "learning", "max_shift_rad = 0.5"),
                                   ["[learning]", "max_shift_rad", "nonreciprocal"]),
}


@pytest.mark.parametrize("text,needles", BAD.values(), ids=list(BAD))
def test_bad_combinations_are_one_line_errors(text, needles, tmp_path, capsys):
    assert_bad_run_is_one_line_error(text, needles, tmp_path, capsys)


# ----------------------------------------------------------------- resume after a kill, with maps
RESUME = """\
[experiment]
name = "xy_resume"
[chip]
type = "xy"
topology = "lattice"
rows = 2
cols = 3
n_starts = 2
relax_tol = 1e-8
[task]
name = "xor"
[learning]
rule = "xy_ep"
beta = 0.1
cost = "log"
learning_rate = 0.025
[run]
epochs = 40
batch_size = 2
seed = 3
eval_every = 40
checkpoint_every = 7
record_maps_every = 5
"""
RESUME_STEPS = 80


def _contents(path: Path) -> dict:
    with RunStore.open(path) as store:
        maps = store.maps()
    return {**run_contents(path), "maps": maps}


def test_xy_run_killed_mid_way_resumes_bit_identically_with_its_maps(tmp_path):
    f = write(tmp_path, RESUME)
    ref_run = prepare_run(experiment_from_text(RESUME, f, {"run": {"out_dir": str(tmp_path / "ref")}}))
    assert ref_run.run().status == "completed"
    ref_run.store.close()
    (ref_path,) = (tmp_path / "ref").glob("*.h5")
    ref = _contents(ref_path)
    assert len(ref["steps"]["step"]) == RESUME_STEPS

    out = tmp_path / "runs"
    path = run_until_killed(f, out, 10)
    k = read_summary(path)["steps_done"]
    assert 10 <= k < RESUME_STEPS

    assert main(["resume", str(path), "-q"]) == 0
    got = _contents(path)
    assert_resumed_like(got, ref)
    assert set(got["maps"]) == set(ref["maps"])
    for name, values in ref["maps"].items():
        np.testing.assert_array_equal(got["maps"][name], values, err_msg=f"maps/{name}")

    # the maps: before training and after every 5th step, with the documented shapes
    maps = ref["maps"]
    np.testing.assert_array_equal(maps["step"], np.r_[-1, np.arange(4, RESUME_STEPS, 5)])
    n = len(maps["step"])
    net = lattice(2, 3)
    assert maps["coupling_rad_per_s"].shape == (n, 7)  # 2x3 lattice: 4 + 3 edges
    assert maps["coupling_image_rad_per_s"].shape == (n, 3, 5)
    assert maps["response"].shape == (n, 2, 6) and maps["response_image"].shape == (n, 2, 3)
    np.testing.assert_array_equal(maps["coupling_rad_per_s"][1:], ref["history"][1][4::5, :7])
    img = maps["coupling_image_rad_per_s"][0]
    assert np.isfinite(img).sum() == 7
    for e, (a, b) in enumerate(net.edges):  # edge (r, c)-(r', c') sits at [r + r', c + c'] of the doubled grid
        (ra, ca), (rb, cb) = divmod(int(a), 3), divmod(int(b), 3)
        assert img[ra + rb, ca + cb] == maps["coupling_rad_per_s"][0, e]
    resp = maps["response"]
    assert np.all(resp >= 0)
    for k, node in enumerate(net.inputs):  # an input responds fully to itself, not to the other input
        assert np.all(resp[:, k, node] == 1.0) and np.all(resp[:, 1 - k, node] == 0.0)
        r, c = divmod(node, 3)
        np.testing.assert_array_equal(maps["response_image"][:, r, c], 0.5)
    with h5py.File(ref_path, "r") as h5:
        assert h5["maps/response"].attrs["unit"] == "rad/rad"
        assert h5["maps/coupling_rad_per_s"].attrs["unit"] == "rad/s"


def test_linear_response_matches_finite_differences():
    """``response`` is |dphi_i/dphi_in|: check it against relaxing with a slightly moved input."""
    from labtrain.kinds.xy.maps import xy_linear_response

    exp = experiment_from_text(with_lines(XY_XOR, "chip", "n_starts = 1", "clamp_grounds = true"))
    setup = build_setup(exp)
    chip = setup.chip
    model = chip.network_model()
    x = setup.task.x_train[:1]
    state = model.relax(x, 1, np.random.default_rng(0))
    resp = xy_linear_response(model, state.phases)
    h = 1e-6
    moved = model.relax(x + [h, 0.0], start=state.phases)
    fd = np.abs(moved.phases[0, 0] - state.phases[0, 0]) / h
    np.testing.assert_allclose(resp[0, model.free], fd[model.free], rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------- GUI
def test_gui_map_shows_signed_couplings_and_the_response(qtbot, tmp_path):
    pytest.importorskip("pyqtgraph")
    from labtrain.gui.parameter_map import ParameterMap
    from labtrain.kinds.xy.maps import XYMapRecorder

    exp = experiment_from_text(with_lines(XY_XOR, "chip", "rows = 5", "cols = 5"))
    setup = build_setup(exp)
    chip = setup.chip
    m = ParameterMap()
    qtbot.addWidget(m)
    m.resize(700, 520)
    spec = chip.parameter_spec
    m.configure(chip.network, spec.lower, spec.upper, spec.unit, spec.name, chip.get_parameters(),
                edge_parameters=chip.network.n_edges)
    assert m.mode == "heat map" and m.signed
    img = m._image.image
    assert img.shape == (9, 9) and np.isfinite(img).sum() == chip.network.n_edges
    lo, hi = m.colorbar.levels()
    assert lo == -hi  # signed couplings: a diverging colour map centred on 0
    assert "coupling" in m.colorbar.axis.labelText
    maps = XYMapRecorder(chip, setup.task.x_train, 0).record(-1)
    m.set_maps(maps, -1)
    assert m.view_box.isEnabled()
    m.view_box.setCurrentText("response")
    assert m.showing == "response"
    shown = m._image.image
    np.testing.assert_allclose(shown, np.log10(np.maximum(maps["response_image"][::-1], 1e-3)))
    assert "Response to the inputs" in m.title.text()
    # the pixel under each node (plot coordinates: the node's drawing position) shows that node's response
    pos = chip.network.positions
    rect = m._image.mapRectToParent(m._image.boundingRect())
    for node in (*chip.network.inputs, *chip.network.outputs, 0, 24):
        col = int((pos[node, 0] - rect.left()) / rect.width() * shown.shape[1])
        row = int((pos[node, 1] - rect.top()) / rect.height() * shown.shape[0])
        assert shown[row, col] == pytest.approx(np.log10(max(maps["response"][:, node].mean(), 1e-3)))
    m.show()
    qtbot.waitExposed(m)
    png = Path(os.environ.get("LABTRAIN_SHOT_DIR", tmp_path)) / "xy_response_map.png"
    assert m.grab().save(str(png)) and png.stat().st_size > 5000
    m.view_box.setCurrentText("couplings")
    png2 = png.with_name("xy_coupling_map.png")
    assert m.grab().save(str(png2)) and png2.stat().st_size > 5000
