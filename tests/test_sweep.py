"""``labtrain sweep``: specification, Dask execution (local cluster, scheduler address), bookkeeping,
kill-and-resume, summary, SLURM job script.  Members are 10-epoch XOR runs of a 6-oscillator XY network
(~0.07 s per epoch), so every sweep here takes seconds."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import cli

from labtrain.overrides import flatten, merge, nest
from labtrain.schema import show
from labtrain.training.store import RunStore, read_summary
from labtrain.training.sweep import (SweepError, jobqueue_cluster, load_sweep, member_run_file, prepare_folder,
                                     read_manifest, run_sweep)
from labtrain.training.sweep_summary import summary_dataset, summary_table

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
XY = ROOT / "examples" / "xor_xy_all_to_all.toml"
REGRESSION = ROOT / "examples" / "regression_analytic.toml"
TIMING = ("wall_s", "step_time_s", "run_file")

SWEEP = f"""
[sweep]
name = "xyt"
experiment = "{XY}"
workers = 2

[sweep.set]
run.epochs = 10
run.eval_every = 5

[sweep.axes]
learning.learning_rate = [0.02, 0.04]
"run.seed" = "0:2"

[sweep.slurm]
queue = "short"
account = "lab"
walltime = "02:00:00"
memory = "3GB"
job_script_prologue = ["source /opt/labtrain/.venv/bin/activate"]
scheduler_interface = "lo"
"""


def sweep_file(tmp_path: Path, text: str = SWEEP, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_same_results(a, b) -> None:
    """Two summaries with the same members and bit-identical numbers (timings and file names aside)."""
    assert a.sizes == b.sizes
    for name in a.data_vars:
        if name in TIMING:
            continue
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The test sweep file run on a local cluster of 2 worker processes: (sweep file, folder, summary)."""
    tmp = tmp_path_factory.mktemp("local")
    spec = load_sweep(sweep_file(tmp))
    folder, _ = prepare_folder(spec, tmp / "sweep")
    report = run_sweep(folder, cluster="local", workers=2, quiet=True)
    assert report.ok, report.counts
    return sweep_file(tmp), folder, summary_dataset(folder)


# ------------------------------------------------------------------ specification
def test_axes_product_zip_and_command_line(tmp_path):
    spec = load_sweep(sweep_file(tmp_path))
    assert spec.shape == (2, 2) and [a.name for a in spec.axes] == ["learning_rate", "seed"]
    members = spec.members()
    assert [m.name for m in members] == ["xyt-m000", "xyt-m001", "xyt-m002", "xyt-m003"]
    assert members[1].values == {"learning.learning_rate": 0.02, "run.seed": 1}
    assert members[2].overrides == {"run": {"epochs": 10, "eval_every": 5, "seed": 0},
                                    "learning": {"learning_rate": 0.04}, "experiment": {"name": "xyt-m002"}}
    # the command line replaces a file axis, adds one, and zips two
    spec = load_sweep(sweep_file(tmp_path), {"learning.learning_rate": [0.01, 0.02, 0.03],
                                             "learning.beta": [0.05, 0.1, 0.2]},
                      [["learning.learning_rate", "learning.beta"]])
    assert spec.shape == (3, 2) and spec.axes[0].keys == ("learning.learning_rate", "learning.beta")
    assert spec.members()[2].values == {"learning.learning_rate": 0.02, "learning.beta": 0.1, "run.seed": 0}
    # one value on the command line is the same for every member, not a dimension
    spec = load_sweep(XY, {"run.seed": [0, 1, 2], "run.epochs": [2]})
    assert spec.shape == (3,) and spec.fixed == {"run": {"epochs": 2}} and spec.name == "xor_xy_all_to_all"


@pytest.mark.parametrize("edit, needle", [
    (("learning.learning_rate = [0.02, 0.04]", "learning.learning_rat = [0.02, 0.04]"),
     "axis learning.learning_rat: unknown key [learning] learning_rat (did you mean 'learning_rate'?)"),
    (("learning.learning_rate = [0.02, 0.04]", "learning.learning_rate = [0.02, -1.0]"),
     "axis [learning] learning_rate = -1.0: out of range"),
    (("learning.learning_rate = [0.02, 0.04]", "learning.learning_rate = 0.02"),
     "[sweep.axes] learning.learning_rate = 0.02: an axis needs a non-empty list"),
    (("workers = 2", "worker = 2"), "[sweep] unknown key 'worker' (did you mean 'workers'?)"),
    (("workers = 2", "zip = [[\"learning.learning_rate\", \"run.seed\", \"learning.beta\"]]"),
     "zip names learning.beta, which is not a swept key"),
    (("queue = \"short\"", "queues = \"short\""), "[sweep.slurm]: unknown key 'queues' (did you mean 'queue'?)"),
    (("run.eval_every = 5", "run.eval_every = 5\ntask.name = \"mnist\""), "member xyt-m000"),
])
def test_bad_sweep_files_are_one_line_errors(edit, needle, tmp_path, capsys):
    path = sweep_file(tmp_path, SWEEP.replace(*edit))
    code, out, err = cli(["sweep", path, "--out", tmp_path / "out"], capsys)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err and needle in err, err
    assert not (tmp_path / "out").exists()


def test_zipped_keys_need_as_many_values(tmp_path):
    with pytest.raises(SweepError, match="zipped keys need as many values each: run.seed has 2, learning.beta has 3"):
        load_sweep(sweep_file(tmp_path), {"learning.beta": [0.05, 0.1, 0.2]}, [["run.seed", "learning.beta"]])


def test_dry_run_lists_members_and_creates_nothing(tmp_path, capsys):
    code, out, err = cli(["sweep", XY, "--set", "run.seed=0:3", "--set", "learning.rule=xy_ep",
                          "--dry-run", "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "3 members" in out and "xor_xy_all_to_all-m002  run.seed=2" in out and "learning.rule='xy_ep'" in out
    assert not (tmp_path / "out").exists()


def test_parallel_hardware_sweep_and_missing_dask_are_refused_before_anything_is_made(tmp_path, capsys,
                                                                                     monkeypatch):
    code, _, err = cli(["sweep", REGRESSION, "--set", "backend.kind=ideal,hardware", "--out", tmp_path / "a"],
                       capsys)
    assert code == 2 and "--cluster serial" in err and "member regression_analytic-m001" in err, err
    assert not (tmp_path / "a").exists()
    code, _, err = cli(["sweep", REGRESSION, "--set", "run.seed=0:2", "--cluster", "bogus", "--out",
                        tmp_path / "c"], capsys)
    assert code == 2 and "--cluster bogus: expected one of local, serial, slurm, pbs or a scheduler address" in err
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code, _, err = cli(["sweep", REGRESSION, "--set", "run.seed=0:2", "--cluster", "slurm", "--out",
                        tmp_path / "d"], capsys)
    assert code == 2 and "--cluster slurm: sbatch not found" in err, err
    assert not any((tmp_path / d).exists() for d in "cd")
    monkeypatch.setitem(sys.modules, "distributed", None)
    code, _, err = cli(["sweep", REGRESSION, "--set", "run.seed=0:2", "--out", tmp_path / "b"], capsys)
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[sweep]' in the labtrain checkout" in err, err
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ execution and results
def test_local_sweep_equals_its_members_run_one_by_one(local_sweep, tmp_path, capsys):
    _, folder, ds = local_sweep
    manifest = read_manifest(folder)
    assert [m["status"] for m in manifest["members"]] == ["completed"] * 4
    for member in manifest["members"]:
        path = folder / member["run_file"]
        assert path.parent == folder / "runs" and path.name.startswith(member["name"] + "-")
        with h5py.File(path, "r") as h5:  # every swept key as a flat attribute
            assert h5.attrs["sweep"] == "xyt" and h5.attrs["sweep_member"] == member["index"]
            for key, value in member["values"].items():
                assert h5.attrs[key] == value
        sets = flatten(merge(nest({"run.epochs": 10, "run.eval_every": 5}), nest(member["values"])))
        argv = ["run", XY, "--out", tmp_path / member["name"], "-q"]
        for key, value in sets.items():
            argv += ["--set", f"{key}={show(value)}"]
        code, _, err = cli(argv, capsys)
        assert code == 0, err
        (alone,) = (tmp_path / member["name"]).glob("*.h5")
        with RunStore.open(path) as a, RunStore.open(alone) as b:
            np.testing.assert_array_equal(a.table("steps")["loss"], b.table("steps")["loss"])
            for col in ("step", "train_loss", "test_loss", "train_accuracy", "test_accuracy"):
                np.testing.assert_array_equal(a.table("eval")[col], b.table("eval")[col])
            np.testing.assert_array_equal(a.parameters("final"), b.parameters("final"))
    # the seeds differ, so the members do
    assert ds["final_train_loss"].isel(learning_rate=0, seed=0) != ds["final_train_loss"].isel(learning_rate=0, seed=1)


def test_summary_dataset_netcdf_and_table(local_sweep, capsys):
    import xarray as xr

    _, folder, ds = local_sweep
    assert dict(ds.sizes) == {"learning_rate": 2, "seed": 2, "eval": 3, "step": 10}
    assert list(ds["learning_rate"].values) == [0.02, 0.04] and ds["seed"].attrs["key"] == "run.seed"
    member = read_manifest(folder)["members"][3]
    summary = read_summary(folder / member["run_file"])
    assert float(ds["final_test_loss"].isel(learning_rate=1, seed=1)) == summary["test_loss"]
    curve = ds["curve_train_loss"].isel(learning_rate=1, seed=1).values
    assert float(ds["best_train_loss"].isel(learning_rate=1, seed=1)) == np.nanmin(curve[1:])
    code, out, err = cli(["sweep", "--summary", folder], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| learning_rate | runs |") and len(lines) == 4
    assert lines[2].startswith("| 0.02 | 2/2 |") and " ± " in lines[2]
    with xr.open_dataset(folder / "summary.nc", engine="h5netcdf") as back:
        assert_same_results(back.load(), ds)
        assert back.attrs["swept_keys"] == "learning.learning_rate run.seed"
    code, out, _ = cli(["sweep", "--summary", folder, "--json"], capsys)
    members = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert code == 0 and [m["summary"]["status"] for m in members] == ["completed"] * 4
    assert summary_table(ds).splitlines()[0] == lines[0]


def test_same_sweep_file_on_a_scheduler_address(local_sweep, tmp_path, capsys):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1 (random ports), shut down afterwards."""
    from distributed import Client

    path, _, ds = local_sweep
    info = tmp_path / "scheduler.json"
    env = os.environ | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(info)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for i in range(2):
            procs.append(subprocess.Popen(dask + ["worker", "--scheduler-file", str(info), "--nthreads", "1",
                                                  "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1",
                                                  "--name", f"w{i}"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        code, out, err = cli(["sweep", path, "--cluster", address, "--out", tmp_path / "sweep", "-q"], capsys)
        assert code == 0, err
        assert_same_results(summary_dataset(tmp_path / "sweep"), ds)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_killed_driver_resumes_without_rerunning_finished_members(local_sweep, tmp_path, capsys):
    path, _, reference = local_sweep
    folder = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "labtrain", "sweep", str(path), "--workers", "2", "--out",
                             str(folder), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    def states() -> tuple[list[dict], list[dict]]:
        runs = sorted((folder / "runs").glob("*.h5")) if (folder / "runs").exists() else []
        got = [read_summary(p) for p in runs]
        done = [s for s in got if s["status"] == "completed"]
        midway = [s for s in got if s["status"] != "completed" and 2 <= s["steps_done"] <= s["total_steps"] - 4]
        return done, midway

    deadline, ready = time.monotonic() + 120, False
    while not ready and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        done, midway = states()
        if done and midway:
            # freeze the driver and its workers, then look again: on an idle machine the half-way member can
            # finish its last steps between the look above and the kill
            os.killpg(proc.pid, signal.SIGSTOP)
            done, midway = states()
            ready = bool(done and midway)
            if not ready:
                os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    assert ready, "no member finished while another was half-way"
    # the driver and its worker processes together (a killed job): orphaned workers would finish the half-way
    # member behind the test's back
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    finished = {Path(s["path"]).name: (Path(s["path"]).stat().st_mtime_ns, Path(s["path"]).stat().st_size)
                for s in done}
    manifest = read_manifest(folder)
    assert manifest["driver"] is not None  # killed before it could sign off
    code, out, err = cli(["sweep", "--resume", folder, "--workers", "1", "-q"], capsys)
    assert code == 0, err
    manifest = read_manifest(folder)
    assert [m["status"] for m in manifest["members"]] == ["completed"] * 4 and manifest["driver"] is None
    for member in manifest["members"]:
        run_file = folder / member["run_file"]
        if run_file.name in finished:  # not run again
            assert (run_file.stat().st_mtime_ns, run_file.stat().st_size) == finished[run_file.name]
        assert member_run_file(folder / "runs", member["name"]) == run_file  # one file per member
    resumed = [m for m in manifest["members"] if m["resumed_from"]]
    assert resumed and all(0 < m["resumed_from"] < 10 for m in resumed)
    assert_same_results(summary_dataset(folder), reference)


def test_a_failing_member_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    code, out, err = cli(["sweep", REGRESSION, "--set", "task.name=linear_regression,mnist", "--set",
                          "task.mnist_path=no-such-folder", "--set", "run.epochs=1", "--cluster", "serial",
                          "--out", tmp_path / "sweep"], capsys)
    assert code == 1, err
    members = read_manifest(tmp_path / "sweep")["members"]
    assert [m["status"] for m in members] == ["completed", "failed"]
    assert "no-such-folder" in members[1]["message"] and "\n" not in members[1]["message"]
    assert "regression_analytic-m001: failed" in err and "labtrain sweep --resume" in err
    assert "| linear_regression | 1/1 |" in out and "| mnist | 0/1 |" in out


def test_a_sweep_folder_is_not_reused_and_runs_lists_the_members(local_sweep, capsys):
    path, folder, _ = local_sweep
    code, _, err = cli(["sweep", path, "--out", folder], capsys)
    assert code == 2 and f"labtrain sweep --resume {folder}" in err
    code, out, _ = cli(["runs", folder], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("xyt-m003"))
    assert "learning.learning_rate=0.04 run.epochs=10 run.eval_every=5 run.seed=1" in row
    assert "run.out_dir" not in row and "experiment.name" not in row


def test_slurm_and_pbs_job_scripts_render_from_the_sweep_file(tmp_path):
    spec = load_sweep(sweep_file(tmp_path))
    cluster = jobqueue_cluster("slurm", spec.jobqueue["slurm"], tmp_path)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -t 02:00:00", "#SBATCH --mem=3G",
                 "#SBATCH --cpus-per-task=1", "export OMP_NUM_THREADS=1",
                 "source /opt/labtrain/.venv/bin/activate", f"#SBATCH -o {tmp_path}/logs/"):
        assert line in script, script
    assert "--nthreads 1" in script and "tcp://127.0.0.1:" in script
    cluster = jobqueue_cluster("pbs", {"queue": "short", "walltime": "01:00:00", "scheduler_interface": "lo"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -q short" in script and "#PBS -l walltime=01:00:00" in script and "--nthreads 1" in script


def test_labtrain_does_not_import_dask():
    code = ("import sys, labtrain, labtrain.cli; labtrain.cli.build_parser(); "
            "assert 'dask' not in sys.modules and 'distributed' not in sys.modules, 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_ctrl_c_stops_a_serial_sweep_at_a_step_boundary_and_resume_finishes_it(tmp_path, capsys):
    folder = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "labtrain", "sweep", str(REGRESSION), "--set", "run.seed=0:3",
                             "--set", "run.epochs=60", "--set", "run.checkpoint_every=5", "--cluster", "serial",
                             "--out", str(folder), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        second = member_run_file(folder / "runs", "regression_analytic-m001") if (folder / "runs").exists() else None
        if second is not None and read_summary(second)["steps_done"] >= 10:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    members = read_manifest(folder)["members"]
    assert [m["status"] for m in members] == ["completed", "stopped", "pending"]
    assert members[1]["message"] == "sweep stopped by Ctrl-C" and read_summary(second)["status"] == "stopped"
    assert f"labtrain sweep --resume {folder}" in err
    code, _, err = cli(["sweep", "--resume", folder, "--cluster", "serial", "-q"], capsys)
    assert code == 0, err
    members = read_manifest(folder)["members"]
    assert [m["status"] for m in members] == ["completed"] * 3 and members[1]["resumed_from"] >= 10
    assert [m["attempts"] for m in members] == [1, 2, 1]


# ------------------------------------------------------------------ the studies in sweeps/
def _experiment_text(sweep_file: Path) -> str:
    """The text of the experiment file a study sweep points at (``[sweep] experiment``), plus its own."""
    import tomllib

    text = sweep_file.read_text()
    experiment = tomllib.loads(text)["sweep"].get("experiment")
    return text + ((sweep_file.parent / experiment).read_text() if experiment else "")


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "sweeps").glob("*.toml")))
def test_every_study_sweep_file_checks_all_its_members(name, fake_mnist_10k):
    """Every member of every study sweep file passes the schema and builds (the --dry-run check); the MNIST
    studies take the data folder on the command line, here a fabricated one."""
    needs_mnist = 'name = "mnist"' in _experiment_text(ROOT / "sweeps" / f"{name}.toml")
    spec = load_sweep(ROOT / "sweeps" / f"{name}.toml",
                      {"task.mnist_path": [str(fake_mnist_10k)]} if needs_mnist else None)
    assert spec.name == name and len(spec.members()) >= 8
    # its table script: the file of the same name, or the one its header names (a script shared by several)
    named = re.findall(r"python (sweeps/\w+\.py)", (ROOT / "sweeps" / f"{name}.toml").read_text())
    assert (ROOT / "sweeps" / f"{name}.py").is_file() or (named and all((ROOT / n).is_file() for n in named))


def test_a_study_table_script_reads_a_tiny_run_of_its_sweep(tmp_path, capsys):
    """sweeps/partial_updates.toml cut to 2 members of 1 epoch (fraction, network size and seed fixed, two subset
    choices, on the command line): its table script lays out what the sweep ran."""
    import importlib.util

    spec = load_sweep(ROOT / "sweeps" / "partial_updates.toml",
                      {"run.epochs": [1], "learning.update_fraction": [0.5], "learning.mask_mode": ["fixed", "random"],
                       "chip.n_nodes": [300], "chip.n_edges": [1500], "run.seed": [0], "chip.graph_seed": [1]})
    folder, _ = prepare_folder(spec, tmp_path / "pu")
    assert run_sweep(folder, cluster="serial", quiet=True).ok
    module_spec = importlib.util.spec_from_file_location("partial_updates_table", ROOT / "sweeps" / "partial_updates.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert module.main([str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "300 nodes / 1500 edges, seed 0"
    assert lines[4].startswith("| edges updated | fixed subset: test acc. |") and lines[6].startswith("| 50 % | ")
    assert "| - |" not in lines[6]          # both members measured
    # what the fixed subset freezes: 750 of the 1500 edges learn
    assert lines[10].startswith("| nodes | edges updated | subset | edges learning |")
    assert lines[12].startswith("| 300 | 50 % | fixed | 750 | ")
    assert lines[14].startswith("300 nodes: ") and "join two driven nodes" in lines[14]
    # edges updated at least once in the one step: the half of the edges each mask chose, less a few at a bound
    assert lines[18] == "| nodes | edges updated per step | fixed | random |" and lines[20].startswith("| 300 | 50 % | 4")
    assert len(lines) == 21


# ------------------------------------------------------------------ measurement sweeps (function members)
MEASURE = '''
import os

def member(x, seed=0, fail_at=-1):
    if x == fail_at and not os.environ.get("LABTRAIN_TEST_FIXED"):
        raise RuntimeError(f"cannot measure at x = {x}")
    return {"y": 2.0 * x + seed, "stats": {"a": x / 10}, "curve": [float(x)] * (x + 1), "ok": x > 1, "tag": f"x{x}", "x": -x}
'''


def measurement_sweep(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "measure.py").write_text(MEASURE)
    return sweep_file(tmp_path, f'[sweep]\nname = "ms"\nfunction = "measure.py:member"\n{extra}\n'
                                "[sweep.axes]\nargs.x = [1, 2, 3]\nargs.seed = \"0:2\"\n", "ms.toml")


def test_a_measurement_sweep_calls_its_function_per_member_and_summarises_what_it_returns(tmp_path, capsys):
    path = measurement_sweep(tmp_path)
    code, out, err = cli(["sweep", path, "--cluster", "serial", "--out", tmp_path / "serial", "-q"], capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("| x | runs | y | stats_a |")
    ds = summary_dataset(tmp_path / "serial")
    assert ds.attrs["sweep_kind"] == "function" and ds["y"].dims == ("x", "seed")
    np.testing.assert_array_equal(ds["y"].values, [[2, 3], [4, 5], [6, 7]])
    np.testing.assert_array_equal(ds["stats_a"].values[:, 0], [0.1, 0.2, 0.3])
    assert ds["curve"].dims == ("x", "seed", "item") and ds.sizes["item"] == 4
    assert np.isnan(ds["curve"].values[0, 0, 2]) and ds["curve"].values[2, 1, 3] == 3.0
    assert ds["ok"].values.tolist() == [[False, False], [True, True], [True, True]] and ds["tag"].values[1, 0] == "x2"
    assert ds["x_result"].values[2, 1] == -3 and ds["x"].values.tolist() == [1, 2, 3]  # a key named like an axis
    record = json.loads((tmp_path / "serial" / "runs" / "ms-m002.json").read_text())
    assert record["args"] == {"x": 2, "seed": 0} and record["result"]["y"] == 4.0
    # the same sweep file on a local Dask cluster: the same numbers
    code, _, err = cli(["sweep", path, "--workers", "2", "--out", tmp_path / "dask", "-q"], capsys)
    assert code == 0, err
    other = summary_dataset(tmp_path / "dask")
    for name in ("y", "stats_a", "curve", "ok", "tag", "status"):
        np.testing.assert_array_equal(other[name].values, ds[name].values, err_msg=name)


def test_a_failing_measurement_is_recorded_and_resume_runs_only_what_is_missing(tmp_path, capsys, monkeypatch):
    path = measurement_sweep(tmp_path, "[sweep.set]\nargs.fail_at = 2\n")
    folder = tmp_path / "sweep"
    code, _, err = cli(["sweep", path, "--cluster", "serial", "--out", folder, "-q"], capsys)
    assert code == 1 and f"labtrain sweep --resume {folder}" in err
    members = read_manifest(folder)["members"]
    assert [m["status"] for m in members] == ["completed", "completed", "failed", "failed", "completed", "completed"]
    assert members[2]["message"] == "RuntimeError: cannot measure at x = 2"
    done = {p.name: p.stat().st_mtime_ns for p in (folder / "runs").glob("*.json")}
    assert len(done) == 4
    monkeypatch.setenv("LABTRAIN_TEST_FIXED", "1")
    code, _, err = cli(["sweep", "--resume", folder, "--cluster", "serial", "-q"], capsys)
    assert code == 0, err
    assert [m["status"] for m in read_manifest(folder)["members"]] == ["completed"] * 6
    assert all((folder / "runs" / name).stat().st_mtime_ns == t for name, t in done.items())  # not run again
    assert summary_dataset(folder)["y"].values[1].tolist() == [4.0, 5.0]


@pytest.mark.parametrize("edit, needle", [
    ('args.nope = 1', "member has no keyword 'nope'"),
    ('learning.learning_rate = 0.1', "a measurement sweep's keys are args.NAME"),
])
def test_measurement_sweep_keys_are_the_functions_keywords(edit, needle, tmp_path, capsys):
    path = measurement_sweep(tmp_path, f"[sweep.set]\n{edit}\n")
    code, _, err = cli(["sweep", path, "--dry-run"], capsys)
    assert code == 2 and needle in err, err


def test_args_keys_belong_to_measurement_sweeps_only(tmp_path, capsys):
    code, _, err = cli(["run", REGRESSION, "--set", "args.x=1"], capsys)
    assert code == 2 and "unknown section [args]" in err
    code, _, err = cli(["sweep", REGRESSION, "--set", "args.x=1,2", "--dry-run"], capsys)
    assert code == 2 and "args" in err, err
