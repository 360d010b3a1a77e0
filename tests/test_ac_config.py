"""The AC learning machines from experiment files: nonlinear_resistor + fp, resistor_network + fp, dnpu + hge
(ideal, twin, surrogate): CLI runs, bad combinations, gradcheck, kill + resume bit-identical, the GUI's map."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.config import chip_kinds
from labtrain.cli import main
from labtrain.config import CHIP_RULES, experiment_from_text
from labtrain.training.launch import prepare_run
from labtrain.training.store import RunStore, read_summary

from cli_helpers import (assert_bad_run_is_one_line_error, assert_resumed_like, cli, run_contents, run_until_killed,
                         with_lines, write)

DIODE_XOR = """\
[chip]
type = "nonlinear_resistor"
hidden_layers = [3]
g_init = "log_uniform_random"
[backend]
rate_hz = 2000.0
[task]
name = "xor"
complementary_inputs = true
bias_inputs_v = [1.0]
decoder = "nearest_target"
[learning]
rule = "fp"
settle_s = 0.0
learning_rate = 0.05
[run]
epochs = 2
"""
RESISTOR_FP = """\
[chip]
rows = 3
cols = 3
[wiring]
output_series_ohm = 1e5
[task]
name = "linear_regression"
n_samples = 8
n_features = 2
test_fraction = 0.5
[learning]
rule = "fp"
gamma_a_per_v = 1e-5
settle_s = 0.002
[run]
epochs = 2
"""
DNPU_XOR = """\
[chip]
type = "dnpu"
[task]
name = "xor"
input_low_v = -1.2
input_high_v = 0.6
target_on_v = -0.5
target_off_v = -1.5
decoder = "nearest_target"
[learning]
rule = "hge"
optimizer = "adam"
learning_rate = 0.05
[run]
epochs = 2
"""


def test_builders_match_the_rules_of_the_new_types():
    assert set(chip_kinds()) == set(CHIP_RULES)
    assert CHIP_RULES["nonlinear_resistor"][0] == "fp" and CHIP_RULES["dnpu"] == ("hge",)
    assert "fp" in CHIP_RULES["resistor_network"]


@pytest.fixture(scope="module")
def surrogate_file(tmp_path_factory) -> Path:
    """A small surrogate of the default twin, through ``labtrain characterize`` (a few seconds)."""
    path = tmp_path_factory.mktemp("surrogate") / "dnpu.h5"
    assert main(["characterize", "--backend", "ideal", "--duration-s", "1", "--hidden", "24,24", "--max-iter", "30",
                 "--model-seed", "5", "--out", str(path)]) == 0
    return path


# ----------------------------------------------------------------- runs from the CLI
RUNS = {
    "nonlinear-layered-fp": (DIODE_XOR, "fp", "ideal"),
    "nonlinear-lattice-transistor-analytic": (
        with_lines(DIODE_XOR, "chip", 'topology = "lattice"', "rows = 3", "cols = 3", 'edge_kind = "transistor"')
        .replace("hidden_layers = [3]\n", "").replace('rule = "fp"', 'rule = "analytic"')
        .replace("settle_s = 0.0\n", ""), "analytic", "ideal"),
    "resistor-fp-ideal": (RESISTOR_FP, "fp", "ideal"),
    "resistor-fp-twin": (RESISTOR_FP, "fp", "twin"),
    "dnpu-hge-ideal": (DNPU_XOR, "hge", "ideal"),
    "dnpu-hge-twin-sequential": (with_lines(DNPU_XOR, "learning", 'hge_mode = "sequential"'),
                                 "hge", "twin"),
    "dnpu-fd": (with_lines(DNPU_XOR, "learning", 'hge_mode = "finite_difference"', "fd_step_v = 0.005"),
                "hge", "ideal"),
}


@pytest.mark.parametrize("text,rule,backend", RUNS.values(), ids=list(RUNS))
def test_new_types_and_rules_run_from_the_cli(text, rule, backend, tmp_path, capsys):
    f = write(tmp_path, text)
    code, out, err = cli(["run", f, "--backend", backend, "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 0, err
    assert "status      completed" in out and "V^2" in out
    (path,) = (tmp_path / "runs").glob("*.h5")
    summary = read_summary(path)
    assert summary["rule"] == rule and summary["backend"] == backend and summary["steps_done"] >= 2
    assert np.isfinite(summary["train_loss"])


def test_dnpu_on_a_surrogate_twin_and_check(surrogate_file, tmp_path, capsys):
    rel = os.path.relpath(surrogate_file, tmp_path)
    f = write(tmp_path, with_lines(DNPU_XOR, "chip", 'model = "surrogate"', f'surrogate_path = "{rel}"'))
    code, out, err = cli(["check", f], capsys)
    assert code == 0 and "5 parameters (control_voltage, V)" in out, err
    code, out, err = cli(["run", f, "--out", tmp_path / "runs", "-q"], capsys)
    assert code == 0, err
    (path,) = (tmp_path / "runs").glob("*.h5")
    with RunStore.open(path) as store:
        assert "surrogate" in str(store.snapshot["chip"]).lower()


# ----------------------------------------------------------------- bad input
BAD = {
    "hge-on-resistor": ('[learning]\nrule = "hge"\n', ["rule = 'hge'", "resistor_network", "fp"]),
    "fp-on-dnpu": (DNPU_XOR.replace('"hge"', '"fp"'), ["rule = 'fp'", "'dnpu'", "hge"]),
    "dnpu-topology": (with_lines(DNPU_XOR, "chip", 'topology = "lattice"'), ["[chip]", "topology", "'dnpu'"]),
    "hge-key-on-resistor": ("[learning]\namplitudes_v = [0.01]\n", ["[learning]", "amplitudes_v",
                                                                     "resistor_network"]),
    "amplitude-half-range": (with_lines(DNPU_XOR, "learning", "amplitudes_v = [0.3]"),
                             ["[learning]", "amplitudes_v = [0.3]", "half its range"]),
    "amplitude-count": (with_lines(DNPU_XOR, "learning", "amplitudes_v = [0.01, 0.01]"),
                        ["amplitudes_v", "one per control electrode (5)"]),
    "tones-off-grid": (with_lines(DNPU_XOR, "learning", "tones_hz = [200.0, 360.0, 525.0, 760.0, 920.0]"),
                       ["[learning]", "tones_hz", "525", "grid 20 Hz"]),
    "tones-colliding": (with_lines(DNPU_XOR, "learning", "tones_hz = [40.0, 80.0, 120.0, 160.0, 200.0]"),
                        ["[learning]", "tones_hz", "collide"]),
    "surrogate-missing-path": (with_lines(DNPU_XOR, "chip", 'model = "surrogate"'), ["model = 'surrogate'",
                                                                                    "surrogate_path"]),
    "surrogate-file-absent": (with_lines(DNPU_XOR, "chip", 'model = "surrogate"', 'surrogate_path = "no.h5"'),
                              ["[chip]", "surrogate_path = 'no.h5'", "does not exist"]),
    "surrogate-with-ranges": (with_lines(DNPU_XOR, "chip", 'model = "surrogate"', 'surrogate_path = "s.h5"',
                                         "gain_ohm = 1e9"), ["gain_ohm", "surrogate file sets"]),
    "dnpu-inputs-out-of-range": (DNPU_XOR.replace("input_high_v = 0.6", "input_high_v = 1.0"),
                                 ["[task]", "input_high_v = 1.0", "[-1.2, 0.6] V"]),
    "dnpu-electrode-lists": (with_lines(DNPU_XOR, "chip", "electrode_low_v = [-1.2, -1.2]"),
                             ["electrode_low_v", "electrode_high_v", "same electrodes"]),
    "dnpu-range-above-abort": (with_lines(DNPU_XOR, "chip", "electrode_high_v = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 1.7]"),
                               ["[chip]", "abort level"]),
    "dnpu-regression-outputs": (DNPU_XOR.replace('"xor"', '"iris"'), ["[task]", "iris"]),
    "dnpu-hardware-no-driver": (with_lines(DNPU_XOR, "backend", 'kind = "hardware"'),
                                ["[backend]", "hardware", "optional driver", "pip install -e '.[hardware]'"]),
    "fp-outputs-only-twin": (with_lines(RESISTOR_FP, "wiring", 'read = "outputs"')
                             .replace("[learning]", "[backend]\nkind = \"twin\"\n[learning]"),
                             ["[learning]", "rule = 'fp'", "edge_drops"]),
    "fp-ac-activation-on-nonlinear": (with_lines(DIODE_XOR, "learning", 'fp_activation = "ac"'),
                                      ["[learning]", "fp_activation = 'ac'", "nonlinear", "'dc'"]),
    "fp-one-tone": (with_lines(RESISTOR_FP, "learning", "activation_hz = 100.0"),
                    ["[learning]", "activation_hz = 100.0", "both tones or neither"]),
    "fp-dc-with-activation-tone": (with_lines(DIODE_XOR, "learning", "activation_hz = 100.0", "error_hz = 80.0"),
                                   ["activation_hz", "fp_activation = 'dc'"]),
    "fp-off-grid": (with_lines(RESISTOR_FP, "learning", "activation_hz = 120.0", "error_hz = 175.0"),
                    ["[learning]", "activation_hz / error_hz", "175"]),
    "fp-shortcut-on-twin": (with_lines(RESISTOR_FP, "learning", 'fp_mode = "frequency_domain"')
                            .replace("[learning]", "[backend]\nkind = \"twin\"\n[learning]"),
                            ["fp_mode = 'frequency_domain'", "time_domain"]),
    "nonlinear-gate-range": (with_lines(DIODE_XOR, "chip", "gate_min_v = 2.0", "gate_max_v = 1.0"),
                             ["gate_min_v", "gate_max_v"]),
    "input_mode-on-nonlinear": (with_lines(DIODE_XOR, "chip", 'input_mode = "current"'), ["[chip]", "input_mode",
                                                                                        "'nonlinear_resistor'"]),
}


@pytest.mark.parametrize("text,needles", BAD.values(), ids=list(BAD))
def test_bad_combinations_are_one_line_errors(text, needles, tmp_path, capsys):
    assert_bad_run_is_one_line_error(text, needles, tmp_path, capsys)


def test_characterize_cli_errors_are_one_line(tmp_path, capsys):
    code, out, err = cli(["characterize", "--duration-s", "0", "--out", tmp_path / "s.h5"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--duration-s" in err
    code, out, err = cli(["characterize", "--out", tmp_path / "missing" / "s.h5"], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, out, err = cli(["characterize", "--backend", "magic", "--out", tmp_path / "s.h5"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--backend" in err


# ----------------------------------------------------------------- gradcheck
def _rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip() or line.startswith("cosine"):
            break
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        rows.setdefault(cells[0], []).append(cells)
    return rows


def test_gradcheck_fp_on_nonlinear_and_linear_networks(tmp_path, capsys):
    f = write(tmp_path, DIODE_XOR)
    code, out, err = cli(["gradcheck", f], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert float(rows["analytic"][0][1]) > 0.999999
    fp = rows["fp (time_domain, dc activation)"]
    cosines = [float(r[2]) for r in fp]  # gamma x 10, x 1, x 0.1
    assert len(fp) == 3 and min(cosines) > 0.999 and "80 Hz" in fp[0][-1]
    errors = [float(r[3]) for r in fp]
    assert errors[2] < errors[0]  # the bias shrinks with gamma
    f = write(tmp_path, RESISTOR_FP, "lin.toml")
    code, out, err = cli(["gradcheck", f], capsys)
    assert code == 0, err
    (row,) = _rows(out)["fp (time_domain, ac activation)"]
    assert float(row[2]) > 0.999999 and float(row[3]) < 1e-5  # exact on a linear network (noise-free)


def test_gradcheck_hge_against_fd_and_exact(tmp_path, capsys):
    f = write(tmp_path, DNPU_XOR)
    code, out, err = cli(["gradcheck", f], capsys)
    assert code == 0, err
    assert "analytic Jacobian of the noise-free model" in out
    rows = _rows(out)
    assert float(rows["hge parallel"][0][2]) > 0.999 and float(rows["hge parallel"][0][3]) < 0.05
    assert float(rows["hge sequential"][0][2]) > 0.999
    assert float(rows["hge finite_difference"][0][2]) > 0.999
    assert "1 acquisition(s)" in rows["hge parallel"][0][-1]
    code, out, err = cli(["gradcheck", f, "--beta", "0.1"], capsys)
    assert code == 2 and err.count("\n") == 1


# ----------------------------------------------------------------- resume after a kill
RESUME = with_lines(DNPU_XOR, "run", "epochs = 30", "seed = 3", "eval_every = 10", "checkpoint_every = 4") \
    .replace("[learning]", "[experiment]\nname = \"dnpu_resume\"\n[learning]") \
    .replace("epochs = 2\n", "")
RESUME_STEPS = 30


def test_dnpu_hge_run_killed_mid_way_resumes_bit_identically(tmp_path):
    """Read noise on every sample (reseeded per step by the run loop): the resumed run must still match."""
    from threadpoolctl import threadpool_limits

    text = with_lines(RESUME, "backend", "read_noise_a = 5e-11")
    f = write(tmp_path, text)
    ref_run = prepare_run(experiment_from_text(text, f, {"run": {"out_dir": str(tmp_path / "ref")}}))
    with threadpool_limits(1):  # tiny batched solves: BLAS threads only slow them down
        assert ref_run.run().status == "completed"
    ref_run.store.close()
    (ref_path,) = (tmp_path / "ref").glob("*.h5")
    ref = run_contents(ref_path)
    assert len(ref["steps"]["step"]) == RESUME_STEPS

    out = tmp_path / "runs"
    path = run_until_killed(f, out, 6, env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    k = read_summary(path)["steps_done"]
    assert 6 <= k < RESUME_STEPS

    with threadpool_limits(1):
        assert main(["resume", str(path), "-q"]) == 0
    got = run_contents(path)
    assert_resumed_like(got, ref)


# ----------------------------------------------------------------- GUI
def test_gui_parameter_map_shows_dnpu_controls_as_bars(qtbot, tmp_path):
    pytest.importorskip("pyqtgraph")
    from labtrain.gui.parameter_map import ParameterMap

    setup = build_setup(experiment_from_text(DNPU_XOR))
    chip = setup.chip
    spec = chip.parameter_spec
    m = ParameterMap()
    qtbot.addWidget(m)
    m.resize(600, 400)
    labels = tuple(chip.parameter_labels())
    assert labels == ("e0", "e3", "e4", "e5", "e6")
    m.configure(None, spec.lower, spec.upper, spec.unit, spec.name, chip.get_parameters(), labels=labels)
    assert m.mode == "bars" and m.labels == labels
    ranges = [i for i in m.plot.items if isinstance(i, type(m._bars)) and i is not m._bars]
    assert len(ranges) == 1  # the dashed boxes of the allowed ranges
    np.testing.assert_allclose(ranges[0].opts["y0"], spec.lower)
    m.set_parameters(np.array([0.5, -1.1, 0.0, 0.2, 0.1]), 3)
    m.show()
    qtbot.waitExposed(m)
    png = Path(os.environ.get("LABTRAIN_SHOT_DIR", tmp_path)) / "dnpu_parameter_bars.png"
    assert m.grab().save(str(png)) and png.stat().st_size > 3000
