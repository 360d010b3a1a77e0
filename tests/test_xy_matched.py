"""The matched XY architecture comparison (sweeps/xy_matched*.toml, sweeps/xy_matched.py; issue 14 item 3):
parameter counting and matching, the Wilson and t intervals on known values, the tables on a tiny real sweep
folder (a member that did not complete still counts), and the MNIST task of the xy kind on a fabricated
IDX folder."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.config import load_experiment
from labtrain.kinds.xy.tasks import phase_accuracy, phase_task

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
LATTICE = ROOT / "examples" / "xor_xy_lattice.toml"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "sweeps" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def xm():
    return _module("xy_matched")


def test_wilson_interval_on_known_values(xm):
    """Wilson score intervals (z = 1.96) as tabulated, e.g. Newcombe (1998) / Agresti & Coull (1998)."""
    for (k, n), (lo, hi) in {(0, 10): (0.0, 0.2775), (10, 10): (0.7225, 1.0), (8, 10): (0.4902, 0.9433),
                             (5, 10): (0.2366, 0.7634), (1, 5): (0.0362, 0.6245)}.items():
        got = xm.wilson_interval(k, n)
        assert got == pytest.approx((lo, hi), abs=1e-4), (k, n, got)
    assert all(math.isnan(v) for v in xm.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        xm.wilson_interval(3, 2)


def test_t_interval_on_known_values(xm):
    """Mean 3, sample std sqrt(2.5), t_{0.975, 4} = 2.776445: half width 1.963243."""
    mean, std, lo, hi = xm.t_interval([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert (mean, std) == pytest.approx((3.0, math.sqrt(2.5)))
    assert (lo, hi) == pytest.approx((3.0 - 1.963243, 3.0 + 1.963243), abs=1e-6)
    assert math.isnan(xm.t_interval([0.5])[1])


@pytest.mark.parametrize("task, chip", [
    ({"name": "xor"}, {"topology": "lattice", "rows": 5, "cols": 5, "lattice_inset": 1}),
    ({"name": "xor"}, {"topology": "all_to_all", "n_nodes": 12, "lattice_inset": 0}),
    ({"name": "xor"}, {"topology": "layered", "hidden_layers": [14], "lattice_inset": 0}),
    ({"name": "iris"}, {"topology": "layered", "hidden_layers": [3, 2], "lattice_inset": 0, "bias": "field"}),
    ({"name": "iris"}, {"topology": "lattice", "rows": 3, "cols": 4, "lattice_inset": 0, "bias": "none"}),
])
def test_parameter_count_is_what_the_chip_trains(xm, task, chip):
    setup = build_setup(load_experiment(LATTICE, {"task": task, "chip": chip}))
    try:
        net = setup.network
        c = setup.experiment["chip"]
        got = xm.xy_parameter_count(c["topology"], len(net.inputs), len(net.outputs), rows=c["rows"], cols=c["cols"],
                                    n_nodes=c["n_nodes"], hidden_layers=c["hidden_layers"], bias=c["bias"])
        assert (got["nodes"], got["edges"], got["params"]) == (net.n_nodes, net.n_edges,
                                                               setup.chip.parameter_spec.size)
    finally:
        setup.chip.close()


def test_matching_picks_the_sweep_files_sizes(xm):
    """XOR (2 in, 1 out) at the 5x5 lattice's 86 and Iris (4, 3) at its 82: the sizes the sweep files use."""
    xor = xm.match_architectures(2, 1, 86)
    assert (xor["all_to_all"]["n_nodes"], xor["all_to_all"]["params"]) == (12, 86)
    assert (xor["layered"]["hidden"], xor["layered"]["params"]) == (14, 88)
    iris = xm.match_architectures(4, 3, 82)
    assert (iris["all_to_all"]["n_nodes"], iris["layered"]["hidden"], iris["layered"]["params"]) == (12, 7, 78)
    mnist = xm.match_architectures(16, 10, 348)
    assert mnist["all_to_all"]["n_nodes"] == 27 and abs(mnist["all_to_all"]["mismatch"]) < 0.1


def test_tables_of_a_tiny_xor_and_iris_sweep_count_every_member(xm, tmp_path, capsys):
    """sweeps/xy_matched_xor.toml and _iris.toml cut to one seed of 2 epochs / 1 epoch with 2 starts; a member
    marked failed afterwards stays in the denominator."""
    from labtrain.training.sweep import load_sweep, prepare_folder, run_sweep

    small = {"run.seed": [0], "chip.n_starts": [2]}
    xor = load_sweep(ROOT / "sweeps" / "xy_matched_xor.toml", {**small, "run.epochs": [2]})
    folder, _ = prepare_folder(xor, tmp_path / "xor")
    assert run_sweep(folder, cluster="serial", quiet=True).ok
    lines = xm.xor_table(folder).splitlines()
    assert len(lines) == 5 and lines[0].startswith("| architecture | nodes | edges | params | vs lattice | runs |")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [c[:6] for c in cells] == [["lattice 5x5", "25", "40", "86", "0", "1/1"],
                                      ["all-to-all N=12", "12", "66", "86", "0", "1/1"],
                                      ["layered in-14-out", "18", "56", "88", "+2.3 %", "1/1"]]
    for c in cells:  # after 2 epochs nothing solves XOR: 0/1 with the Wilson interval of 0/1
        assert c[6] in ("0/1 [0.0, 79.3] %", "1/1 [20.7, 100.0] %")

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["members"][1]["status"] = "failed"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    row = xm.xor_table(folder).splitlines()[3]
    assert row.startswith("| all-to-all N=12 | 12 | 66 | 86 | 0 | 0/1 | 0/1 [0.0, 79.3] % | 0/1 [0.0, 79.3] % |")

    iris = load_sweep(ROOT / "sweeps" / "xy_matched_iris.toml", {**small, "run.epochs": [1]})
    folder, _ = prepare_folder(iris, tmp_path / "iris")
    assert run_sweep(folder, cluster="serial", quiet=True).ok
    assert xm.main(["--iris", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| architecture |") and "test acc >= 90 %" in out[2] and len(out) == 7
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out[4:]]
    assert [r[3] for r in rows] == ["82", "82", "78"] and [r[4] for r in rows] == ["0", "0", "-4.9 %"]
    for r in rows:  # one seed: a mean, no std or t-interval; the per-seed column is that mean
        assert r[5] == "1/1" and r[7].endswith("± -") and r[8] == "[-, -]" and r[10] == r[7].split()[0]
        assert 0.0 <= float(r[7].split()[0]) <= 100.0
    # learning curves: every evaluation of every member, the last one the final table's test accuracy
    curve = [[c.strip() for c in line.strip("|").split("|")] for line in xm.curve_table(folder).splitlines()[2:]]
    for r in rows:
        mine = [c for c in curve if c[0] == r[0]]
        assert mine[0][1] == "before training" and mine[0][2] == "0" and mine[0][3] == "1"
        assert mine[-1][1] != "before training" and mine[-1][5] == r[10]


def _idx(path: Path, array: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


def test_the_xy_kind_takes_mnist_10k_with_ten_phase_outputs(tmp_path):
    """A fabricated t10k folder of 60 images: the 80/20 MNIST-10k split, 7x7 pooling to 16 input phases,
    10 outputs with +-pi/2 targets, n_train keeping the first images, and the circular decoder = argmax sin."""
    rng = np.random.default_rng(0)
    labels = np.arange(60, dtype=np.uint8) % 10
    images = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    task = phase_task("mnist", mnist_path=str(tmp_path), downsample=7, n_train=20, decoder="nearest_phase")
    assert task.x_train.shape == (20, 16) and task.x_test.shape == (12, 16) and task.n_outputs == 10
    assert np.abs(task.x_train).max() <= np.pi / 2 + 1e-12 and task.info["mnist_split"] == "mnist-10k"
    assert set(np.unique(task.t_train)) == {-np.pi / 2, np.pi / 2}
    np.testing.assert_array_equal(np.argmax(task.t_train, axis=1), task.y_train)
    phases = rng.uniform(-np.pi, np.pi, (len(task.y_test), 10))
    expected = np.mean(np.argmax(np.sin(phases), axis=1) == task.y_test)
    assert phase_accuracy(task, phases, task.y_test) == pytest.approx(expected)

    exp = load_experiment(LATTICE, {"task": {"name": "mnist", "mnist_path": str(tmp_path), "downsample": 7,
                                             "n_train": 20},
                                    "chip": {"rows": 10, "cols": 10, "lattice_inset": 0}})
    setup = build_setup(exp)
    try:
        assert len(setup.network.inputs) == 16 and len(setup.network.outputs) == 10
        assert setup.chip.parameter_spec.size == 348 and len(setup.task.x_train) == 20
    finally:
        setup.chip.close()
