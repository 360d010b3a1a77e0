"""Run files and exports declare the units the chip and rule declare, for every kind (issue 16, item 1).

Each case trains one epoch on a small example with the ideal backend, exports the run to netCDF and reads
it back with xarray: every variable has ``units`` and ``long_name``; the loss, parameter and output units are
the ones the chip (``output_unit``, ``parameter_units()``) and the rule (``loss_unit``) declare; every
dimension has a coordinate variable; settings are flat attributes; XY maps are exported.
"""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from labtrain.training.export import export_run, load_run, run_to_dataset  # noqa: E402
from labtrain.training.launch import prepare_run  # noqa: E402
from labtrain.training.store import RunStore, RunUnits  # noqa: E402

RESISTOR = """
[experiment]
name = "u_resistor"
[chip]
topology = "lattice"
rows = 3
cols = 3
[task]
name = "xor"
bias_inputs_v = [1.0]
[learning]
rule = "cl"
learning_rate = 0.05
"""

DIODE = """
[experiment]
name = "u_diode"
[chip]
type = "nonlinear_resistor"
topology = "layered"
hidden_layers = [2]
[task]
name = "xor"
bias_inputs_v = [1.0]
[learning]
rule = "analytic"
learning_rate = 0.05
"""

TRANSISTOR = """
[experiment]
name = "u_transistor"
[chip]
type = "nonlinear_resistor"
topology = "lattice"
rows = 3
cols = 3
edge_kind = "transistor"
[task]
name = "xor"
bias_inputs_v = [1.0]
[learning]
rule = "analytic"
learning_rate = 0.05
"""

DNPU = """
[experiment]
name = "u_dnpu"
[chip]
type = "dnpu"
model = "hopping"
model_seed = 5
electrode_low_v = [-1.2, -1.2, -1.2, -1.2, -1.2, -1.2, -0.35]
electrode_high_v = [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.15]
data_electrodes = [1, 2]
control_electrodes = [0, 3, 4, 5, 6]
gain_ohm = 1e8
clip_a = 110e-9
[task]
name = "xor"
input_low_v = -1.2
input_high_v = 0.6
target_on_v = -0.4
target_off_v = -1.2
decoder = "nearest_target"
[learning]
rule = "hge"
hge_mode = "parallel"
amplitudes_v = [0.03, 0.01, 0.01, 0.005, 0.005]
window_s = 0.05
settle_s = 0.005
learning_rate = 0.05
"""

XY = """
[experiment]
name = "u_xy"
[chip]
type = "xy"
topology = "lattice"
rows = 3
cols = 3
bias = "vector"
n_starts = 2
[task]
name = "xor"
[learning]
rule = "xy_ep"
beta = 0.1
learning_rate = 0.01
[run]
record_maps_every = 1
"""

NONRECIPROCAL = """
[experiment]
name = "u_nonreciprocal"
[chip]
type = "nonreciprocal"
hidden_layers = [3]
[task]
name = "xor"
[learning]
rule = "aep"
beta = 0.01
learning_rate = 0.01
"""

CASES = {"resistor": RESISTOR, "diode": DIODE, "transistor": TRANSISTOR, "dnpu": DNPU, "xy": XY,
         "nonreciprocal": NONRECIPROCAL}
#: what each kind must declare (physics): loss, outputs, parameters
EXPECTED = {"resistor": ("V^2", "V", "S"), "diode": ("V^2", "V", "S"), "transistor": ("V^2", "V", "V"),
            "dnpu": ("V^2", "V", "V"), "xy": ("1", "rad", "rad/s"), "nonreciprocal": ("1", "1", "1")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("units")
    for name, text in CASES.items():
        path = root / f"{name}.toml"
        path.write_text(text)
        run = prepare_run(path, {"run": {"epochs": 1, "out_dir": str(root / "runs"), "batch_size": 0,
                                         "seed": 1}})
        with run:
            declared = RunUnits.of(run.chip, run.estimator)
            result = run.run()
        out[name] = (result.path, declared)
    return out


@pytest.mark.parametrize("kind", list(CASES))
def test_export_declares_the_chips_units_and_every_dimension_has_a_coordinate(runs, kind, tmp_path):
    path, declared = runs[kind]
    loss, output, parameter = EXPECTED[kind]
    assert (declared.loss, declared.output, declared.parameter) == (loss, output, parameter)
    (target,) = export_run(path, "netcdf", tmp_path / f"{kind}.nc")
    with xr.open_dataset(target, engine="h5netcdf") as ds:
        for name, var in ds.variables.items():
            assert "long_name" in var.attrs, name
            if var.dtype.kind in "iuf":
                assert "units" in var.attrs, name
        for dim in ds.dims:
            assert dim in ds.coords, f"dimension {dim} has no coordinate"
        for name in ("step_loss", "eval_train_loss", "eval_test_loss"):
            assert ds[name].attrs["units"] == declared.loss
        for name in ("parameters_initial", "parameters_final", "parameter_history"):
            assert ds[name].attrs["units"] == declared.parameter
            assert ds[name].dims[-1] == "parameter"
        assert [str(u) for u in ds["parameter_units"].values] == declared.parameters
        assert ds["step_time_s"].attrs["units"] == "s"
        assert ds["eval_test_accuracy"].attrs["units"] == "1"
        assert ds.attrs["loss_units"] == declared.loss and ds.attrs["output_units"] == declared.output
        assert ds.attrs["parameter_units"] == declared.parameter
        # settings as flat attributes, next to the JSON snapshot
        assert ds.attrs["run.epochs"] == 1 and ds.attrs["run.seed"] == 1
        assert "learning.learning_rate" in ds.attrs and ds.attrs["learning.rule"] == ds.attrs["rule"]
        # provenance
        for key in ("labtrain_version", "python_version", "hostname", "version_numpy", "version_h5py"):
            assert ds.attrs[key], key
        if declared.labels:
            assert [str(x) for x in ds["parameter_label"].values] == declared.labels
        with RunStore.open(path) as store:
            np.testing.assert_array_equal(ds["step_loss"].values, store.table("steps")["loss"])
            np.testing.assert_array_equal(ds["parameters_final"].values, store.parameters("final"))


def test_xy_maps_are_exported_with_units_and_coordinates(runs, tmp_path):
    path, _ = runs["xy"]
    ds = load_run(path)
    with RunStore.open(path) as store:
        maps = store.maps()
    assert len(maps["step"]) == 2  # before training and after the one step
    np.testing.assert_array_equal(ds["map_step"].values, maps["step"])
    for name in ("coupling_rad_per_s", "response", "coupling_image_rad_per_s", "response_image"):
        var = ds[f"map_{name}"]
        assert var.dims[0] == "map_frame"
        np.testing.assert_array_equal(var.values, maps[name])
    assert ds["map_coupling_rad_per_s"].attrs["units"] == "rad/s"
    assert ds["map_coupling_rad_per_s"].dims == ("map_frame", "edge")
    assert ds["map_response"].dims == ("map_frame", "input", "node")
    assert ds["map_response"].attrs["units"] == "rad/rad"
    for dim in ds.dims:
        assert dim in ds.coords
    # load_run of the exported file gives the same dataset
    (target,) = export_run(path, "netcdf", tmp_path / "xy.nc")
    again = load_run(target)
    xr.testing.assert_identical(again.drop_attrs(), ds.drop_attrs())


def test_dnpu_parameters_are_named_by_their_electrodes(runs):
    path, declared = runs["dnpu"]
    assert declared.labels and len(declared.labels) == 5
    ds = run_to_dataset(path)
    assert [str(x) for x in ds["parameter_label"].values] == declared.labels


def test_csv_parameter_columns_carry_the_parameter_unit(runs, tmp_path):
    import csv

    for kind, first in (("xy", "p0_rad_per_s"), ("nonreciprocal", "p0"), ("dnpu", "p0_v"), ("resistor", "g0_s")):
        path, _ = runs[kind]
        files = export_run(path, "csv", tmp_path / kind)
        with files[2].open() as fh:
            header = next(csv.reader(fh))
        assert header[2] == first, kind


def test_older_run_files_without_declared_units_fall_back_to_the_chip_snapshot(runs, tmp_path):
    """A run file written before units were recorded: export infers them from the chip snapshot."""
    import shutil

    import h5py

    path, declared = runs["xy"]
    old = tmp_path / "old.h5"
    shutil.copy(path, old)
    with h5py.File(old, "r+", locking=False) as f:  # a test-only edit of the immutable attributes
        for key in ("loss_units", "output_units", "parameter_units", "parameter_name"):
            del f.attrs[key]
    ds = run_to_dataset(old)
    assert ds["step_loss"].attrs["units"] == "1"
    assert ds["parameters_initial"].attrs["units"] == "rad/s"


def test_the_run_file_itself_opens_with_xarray_with_named_dimensions(runs):
    """netCDF-4 dimension scales in the run file: no phony_dim_*, coordinates for the parameter, history and
    map dimensions, CF units on the parameter arrays."""
    path, declared = runs["xy"]
    root = xr.open_dataset(path, engine="h5netcdf")
    assert not [d for d in root.dims if str(d).startswith("phony_dim")]
    assert root["steps"].dims == ("step_row",) and root["eval"].dims == ("eval_row",)
    root.close()
    # (one HDF5 open mode per file and process: xarray's default locking differs from labtrain's lock-free reads,
    # so read the run store before or after, not while xarray holds the file)
    with RunStore.open(path) as store:
        initial, (hist_step, _), maps = store.parameters("initial"), store.parameter_history(), store.maps()
    with xr.open_dataset(path, group="parameters", engine="h5netcdf") as p:
        assert p["history"].dims == ("history_step", "parameter")
        assert p["initial"].attrs["units"] == declared.parameter == "rad/s"
        np.testing.assert_array_equal(p["initial"].values, initial)
        np.testing.assert_array_equal(p["history_step"].values[:len(hist_step)], hist_step)
    with xr.open_dataset(path, group="maps", engine="h5netcdf") as m:
        assert m["response"].dims == ("step", "input", "node") and m["response"].attrs["units"] == "rad/rad"
        k = len(maps["step"])
        np.testing.assert_array_equal(m["coupling_rad_per_s"].values[:k], maps["coupling_rad_per_s"])
        for dim in m.dims:
            assert dim in m.coords


def test_instrument_events_are_exported_with_times(tmp_path):
    """Retries and safety actions of a twin run become an ``event`` dimension (CF time stamps, kinds, messages)."""
    if not hasattr(RunStore, "events"):
        pytest.skip("run files without /events")
    from pathlib import Path

    run = prepare_run(Path(__file__).resolve().parents[1] / "examples" / "iris_cl.toml",
                      {"run": {"epochs": 1, "out_dir": str(tmp_path)}, "backend": {"kind": "twin", "retries": 2},
                       "chip": {"n_nodes": 30, "n_edges": 80}})
    run.chip.daq.daq.inject_faults(2, "timeout", methods=("write_read",))
    with run:
        path = run.run().path
    with RunStore.open(path) as store:
        events = store.events()
    (target,) = export_run(path, "netcdf", tmp_path / "events.nc")
    with xr.open_dataset(target, engine="h5netcdf") as ds:
        assert ds.sizes["event"] == len(events["step"]) >= 2
        assert list(ds["event_kind"].values) == list(events["kind"]) and "retry" in list(events["kind"])
        assert ds["event_time"].dtype.kind == "M" and "event" in ds.coords
        np.testing.assert_array_equal(ds["event_step"].values, events["step"])
        assert ds["event_step"].attrs["units"] == "1"


def test_sweep_summaries_take_the_loss_unit_from_the_run_file(runs):
    from labtrain.training.sweep_summary import member_record

    assert member_record(runs["resistor"][0])["loss_unit"] == "V^2"
    assert member_record(runs["xy"][0])["loss_unit"] == "1"


def test_mixed_parameter_units_are_kept_per_parameter(tmp_path):
    """A chip with conductances and gate voltages (nonlinear network from Python): /parameters/units in the run
    file, a parameter_units coordinate in the export, and no single ``units`` on the parameter variables."""
    from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
    from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork
    from labtrain.physics.network import random_graph
    from labtrain.protocols import AnalyticGradient
    from labtrain.training.optim import Adam
    from labtrain.training.run import Run
    from labtrain.training.tasks import make_task

    net = random_graph(10, 20, seed=3, n_inputs=3, n_outputs=1)
    kinds = np.array(["linear", "transistor"] * 10)
    model = NonlinearResistorNetwork(net, NonlinearEdges.from_kinds(kinds))
    chip = NonlinearResistorChip(net, model.edges, 0.5 * (model.lower + model.upper))
    assert chip.parameter_spec.unit == "mixed"
    task = make_task("xor", bias_inputs_v=(1.0,))
    rule = AnalyticGradient()
    units = RunUnits.of(chip, rule)
    assert set(units.parameters) == {"S", "V"} and units.parameter == "mixed"
    store = RunStore.create(tmp_path / "mixed.h5", name="mixed", experiment_text="", overrides={}, source="",
                            snapshot={"chip": chip.snapshot()}, task=task.describe(), rule="analytic",
                            backend="ideal", seed=0, total_steps=1, initial_parameters=chip.get_parameters(),
                            units=units)
    with Run(chip, rule, Adam(learning_rate=0.01), task, epochs=1, store=store) as run:
        run.run()
    ds = load_run(tmp_path / "mixed.h5")
    assert [str(u) for u in ds["parameter_units"].values] == units.parameters
    assert "units" not in ds["parameters_final"].attrs and ds.attrs["parameter_units"] == "mixed"
    with xr.open_dataset(tmp_path / "mixed.h5", group="parameters", engine="h5netcdf") as p:
        assert p["units"].dims == ("parameter",) and "units" not in p["initial"].attrs


def test_swept_keys_are_flat_attributes_of_the_export(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(RESISTOR)
    attrs = {"sweep": "lr_scan", "sweep_index": 3, "learning.learning_rate": 0.02, "chip.hidden_layers": [4, 2],
             "task.classes": ["a", "b"]}
    with prepare_run(path, {"run": {"epochs": 1, "out_dir": str(tmp_path)}}, attrs=attrs) as run:
        result = run.run()
    (target,) = export_run(result.path, "netcdf", tmp_path / "m.nc")
    with xr.open_dataset(target, engine="h5netcdf") as ds:
        assert ds.attrs["sweep"] == "lr_scan" and ds.attrs["sweep_index"] == 3
        assert ds.attrs["learning.learning_rate"] == 0.02  # root attributes win over the flattened file
        assert list(ds.attrs["chip.hidden_layers"]) == [4, 2] and list(ds.attrs["task.classes"]) == ["a", "b"]
