"""The ``labtrain`` commands end to end on a small, fast experiment."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from labtrain.training.store import RunStore, read_summary

from cli_helpers import cli

# AND gate on a 3x3 lattice, mini-batches of 2 (2 steps per epoch), random initial conductances
# (so the seed changes the start point as well as the batch order).
AND_GATE = """\
[experiment]
name = "and_gate"
description = "AND on a 3x3 lattice"

[chip]
topology = "lattice"
rows = 3
cols = 3
g_init = "uniform_random"

[task]
name = "and"
bias_inputs_v = [1.0]

[learning]
rule = "cl"
learning_rate = 0.05

[run]
epochs = 3
batch_size = 2
seed = 1
eval_every = 2
"""


@pytest.fixture
def experiment(tmp_path) -> Path:
    f = tmp_path / "and_gate.toml"
    f.write_text(AND_GATE)
    return f


@pytest.fixture
def trained(tmp_path, experiment, capsys) -> tuple[Path, str, str]:
    """A completed run with --epochs 5 --seed 7 (the file says 3 and 1)."""
    out_dir = tmp_path / "runs_here"
    code, out, err = cli(["run", experiment, "--out", out_dir, "--epochs", 5, "--seed", 7, "-q"], capsys)
    assert code == 0, err
    (path,) = out_dir.glob("*.h5")
    return path, out, err


def test_run_overrides_and_summary(trained, experiment):
    path, out, err = trained
    assert path.name.startswith("and_gate-")
    assert re.search(r"^status\s+completed$", out, re.M)
    assert re.search(r"^steps\s+10 / 10$", out, re.M)  # 5 epochs x 2 steps (4 examples, batches of 2)
    assert re.search(rf"^run file\s+{re.escape(str(path))}$", out, re.M)
    assert "resume with" not in out
    assert re.search(r"^test loss\s+\S+ V\^2\s+accuracy \d+\.\d%$", out, re.M)
    with RunStore.open(path) as store:
        a = store.attrs
        assert a["seed"] == 7
        assert a["total_steps"] == 10
        assert a["status"] == "completed"
        assert store.overrides == {"run": {"epochs": 5, "seed": 7, "out_dir": str(path.parent)}}
        assert store.experiment_text == AND_GATE
        assert store.source == str(experiment.resolve())
        assert store.snapshot["run"]["seed"] == 7 and store.snapshot["run"]["epochs"] == 5
        steps = store.table("steps")
        np.testing.assert_array_equal(steps["step"], np.arange(10))
        np.testing.assert_array_equal(steps["epoch"], np.arange(10) // 2)
        assert np.all(np.isfinite(steps["loss"]))
        ev = store.table("eval")
        np.testing.assert_array_equal(ev["step"], [-1, 1, 3, 5, 7, 9])
        hist_step, hist = store.parameter_history()
        np.testing.assert_array_equal(hist_step, np.arange(10))
        final = store.parameters("final")
        np.testing.assert_array_equal(hist[-1], final)
        assert not np.array_equal(store.parameters("initial"), final)
        assert store.latest_checkpoint()[0] == 9


def test_run_progress_goes_to_stderr(tmp_path, experiment, capsys):
    code, out, err = cli(["run", experiment, "--out", tmp_path / "o", "--epochs", 1], capsys)
    assert code == 0
    (path,) = (tmp_path / "o").glob("*.h5")
    assert f"run file    {path}" in err  # announced before training starts
    assert "2/2" in err  # the tqdm bar reached the end
    assert out.startswith("status      completed\n")  # stdout has the summary only, no progress bar


def test_seed_reproducible(tmp_path, experiment, capsys):
    finals, initials = {}, {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        out_dir = tmp_path / label
        code, _, err = cli(["run", experiment, "--out", out_dir, "--seed", seed, "-q"], capsys)
        assert code == 0, err
        (path,) = out_dir.glob("*.h5")
        with RunStore.open(path) as store:
            finals[label] = store.parameters("final")
            initials[label] = store.parameters("initial")
            losses = store.table("steps")["loss"]
        if label == "a":
            losses_a = losses
        if label == "b":
            np.testing.assert_array_equal(losses, losses_a)
    np.testing.assert_array_equal(finals["a"], finals["b"])
    np.testing.assert_array_equal(initials["a"], initials["b"])
    # the seed took effect: uniform_random initial conductances are drawn from it
    assert not np.array_equal(initials["a"], initials["c"])


def test_runs_lists_the_run(trained, tmp_path, capsys):
    path, _, _ = trained
    code, out, err = cli(["runs", path.parent], capsys)
    assert code == 0, err
    header, rule, *rows = out.splitlines()
    assert header.split()[:3] == ["name", "date", "rule"]
    assert len(rows) == 1
    row = rows[0].split()
    assert row[0] == "and_gate"
    assert "cl" in row and "ideal" in row and "10/10" in row and "completed" in row
    assert row[-1] == str(path)


def test_runs_empty_folder(tmp_path, capsys):
    code, out, _ = cli(["runs", tmp_path], capsys)
    assert code == 0
    assert out.strip() == f"no run files in {tmp_path}"


def test_show(trained, capsys):
    path, _, _ = trained
    code, out, err = cli(["show", path], capsys)
    assert code == 0, err
    fields = dict(line.split(None, 1) for line in out.splitlines() if line[:1].isalpha() and " " in line)
    assert fields["run"] == f"and_gate  {path}"
    assert fields["status"] == "completed"
    assert fields["steps"].startswith("10 / 10 (5 of 5 epochs done, 2 steps each)")
    assert fields["kind"].endswith("backend ideal; rule cl")
    assert "seed 7" in fields["provenance"]
    assert "run.seed=7" in fields["overrides"]
    assert "experiment file:" not in out and "snapshot:\n" not in out  # concise: --full has them

    code, out, err = cli(["show", "--full", path], capsys)
    assert code == 0, err
    summary_part, rest = out.split("\nexperiment file:\n", 1)
    assert "status      completed" in summary_part
    experiment_text, rest = rest.split("\noverrides: ", 1)
    assert experiment_text == AND_GATE.rstrip()
    overrides, snapshot_text = rest.split("\n\nsnapshot:\n", 1)
    assert json.loads(overrides)["run"]["seed"] == 7
    snapshot = json.loads(snapshot_text)
    assert snapshot["chip"]["backend"] == "ideal"
    assert snapshot["run"]["epochs"] == 5
    assert snapshot["experiment"]["chip"]["rows"] == 3


def test_export_netcdf(trained, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    path, _, _ = trained
    target = tmp_path / "exported" / "run.nc"
    target.parent.mkdir()
    code, out, err = cli(["export", path, "--format", "netcdf", "-o", target], capsys)
    assert code == 0, err
    assert out.strip() == str(target)
    with RunStore.open(path) as store:
        steps, ev = store.table("steps"), store.table("eval")
        final, initial = store.parameters("final"), store.parameters("initial")
        hist_step, hist = store.parameter_history()
    with xr.open_dataset(target, engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["step_loss"].values, steps["loss"])
        np.testing.assert_array_equal(ds["step"].values, steps["step"])
        np.testing.assert_array_equal(ds["eval_test_loss"].values, ev["test_loss"])
        np.testing.assert_array_equal(ds["eval_step"].values, ev["step"])
        np.testing.assert_array_equal(ds["parameters_final"].values, final)
        np.testing.assert_array_equal(ds["parameters_initial"].values, initial)
        np.testing.assert_array_equal(ds["parameter_history"].values, hist)
        np.testing.assert_array_equal(ds["parameter_history_step"].values, hist_step)
        assert ds["step_loss"].attrs["units"] == "V^2"
        assert ds.attrs["seed"] == 7
        assert ds.attrs["experiment"] == AND_GATE


def test_export_netcdf_default_path(trained, capsys):
    path, _, _ = trained
    code, out, _ = cli(["export", path], capsys)
    assert code == 0
    assert out.strip() == str(path.with_suffix(".nc"))
    assert path.with_suffix(".nc").is_file()


def test_export_csv(trained, capsys):
    path, _, _ = trained
    code, out, err = cli(["export", path, "--format", "csv"], capsys)
    assert code == 0, err
    stem = path.with_suffix("")
    files = [Path(line) for line in out.split()]
    assert files == [Path(f"{stem}-steps.csv"), Path(f"{stem}-eval.csv"), Path(f"{stem}-parameters.csv")]
    with RunStore.open(path) as store:
        steps, ev = store.table("steps"), store.table("eval")
        final, initial = store.parameters("final"), store.parameters("initial")
        hist_step, hist = store.parameter_history()

    with files[0].open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "epoch", "time_s", "loss", "n_phases"]
    assert [int(r["step"]) for r in rows] == list(range(10))
    np.testing.assert_array_equal([float(r["loss"]) for r in rows], steps["loss"])  # repr round-trips exactly

    with files[1].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == ev["step"].tolist()
    np.testing.assert_array_equal([float(r["test_accuracy"]) for r in rows], ev["test_accuracy"])

    with files[2].open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["row", "step", "g0_s"] and len(header) == 2 + len(final)
    assert [r[0] for r in body] == ["initial"] + ["history"] * len(hist_step) + ["final"]
    np.testing.assert_array_equal([float(v) for v in body[0][2:]], initial)
    np.testing.assert_array_equal([float(v) for v in body[-1][2:]], final)
    np.testing.assert_array_equal([int(r[1]) for r in body[1:-1]], hist_step)


def _gradcheck_rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("estimator"))
    rows = {}
    for line in lines[start + 2:]:
        if line.startswith("cosine 1"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


def test_gradcheck_experiment_file(experiment, capsys):
    code, out, err = cli(["gradcheck", experiment], capsys)
    assert code == 0, err
    assert "at the initial parameters" in out
    assert "batch of 4 training examples" in out
    rows = _gradcheck_rows(out)
    assert {"analytic", "ep", "ep centred", "cl", "cl centred"} <= set(rows)
    analytic = rows["analytic"]
    assert analytic[1] == "1.000000"  # cosine (empty setting column collapses)
    assert float(analytic[2]) < 1e-10  # relative error
    ep = rows["ep centred"]
    assert float(ep[2]) > 0.9999 and float(ep[3]) < 1e-6


def test_gradcheck_run_file(trained, capsys):
    path, _, _ = trained
    code, out, err = cli(["gradcheck", path, "--batch", 2, "--seed", 1], capsys)
    assert code == 0, err
    assert "at the checkpoint after step 9" in out
    assert "batch of 2 training examples" in out
    analytic = _gradcheck_rows(out)["analytic"]
    assert analytic[1] == "1.000000" and float(analytic[2]) < 1e-10
    # gradcheck only reads the run file
    assert read_summary(path)["status"] == "completed"


def test_check_prints_plan(experiment, capsys):
    code, out, err = cli(["check", experiment], capsys)
    assert code == 0, err
    assert out.startswith(f"{experiment}: OK")
    assert "lattice 3x3" in out
    assert "4 train / 4 test examples" in out
    assert "3 epochs x 2 steps of 2 examples = 6 steps" in out


def test_check_takes_the_run_command_line(experiment, tmp_path, capsys):
    """``check`` accepts run's --epochs / --seed / --out, so a run's command line can be checked as it stands;
    a bad --out is refused by both with the same line, and check writes nothing."""
    out_dir = tmp_path / "new" / "runs"
    code, out, err = cli(["check", experiment, "--epochs", 5, "--seed", 3, "--out", out_dir], capsys)
    assert code == 0, err
    assert "5 epochs x 2 steps of 2 examples = 10 steps" in out and f"run files in {out_dir}/" in out
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    errors = []
    for command in ("check", "run"):
        code, out, err = cli([command, experiment, "--out", blocker / "runs", "--epochs", 1], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1, (command, err)
        errors.append(err.split("error:", 1)[1])
    assert errors[0] == errors[1] and "out_dir" in errors[0]


def test_resume_with_more_epochs(trained, capsys):
    """A completed run can be extended with --epochs; the old steps stay."""
    path, _, _ = trained
    with RunStore.open(path) as store:
        old_loss = store.table("steps")["loss"]
    code, out, err = cli(["resume", path, "--epochs", 6, "-q"], capsys)
    assert code == 0, err
    assert f"resuming {path} at step 10 of 12" in err
    with RunStore.open(path) as store:
        steps = store.table("steps")
        np.testing.assert_array_equal(steps["step"], np.arange(12))
        np.testing.assert_array_equal(steps["loss"][:10], old_loss)
        assert store.attrs["total_steps"] == 12 and store.attrs["status"] == "completed"


def test_version_and_console_script():
    script = Path(sys.executable).parent / "labtrain"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "labtrain"]
    p = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    import labtrain

    assert p.stdout.strip() == f"labtrain {labtrain.__version__}"


def test_run_file_is_plain_hdf5(trained):
    """Anyone can read a run file with h5py alone (documented layout)."""
    path, _, _ = trained
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "labtrain-run-2"
        current = max((r for r in f["state"][:] if r["magic"] == b"LTS2"), key=lambda r: r["seq"])
        state = json.loads(current["json"])
        assert state["status"] == "completed" and state["final"]
        assert f["steps"]["loss"][:state["rows"]["steps"]].shape == (10,)
        assert f["parameters/final"].shape == f["parameters/initial"].shape


def test_train_evaluation_subset_is_named_in_the_summaries(tmp_path, experiment, capsys):
    """``[run] eval_train_examples``: ``run`` and ``show`` say the train numbers are on a subset."""
    out_dir = tmp_path / "runs_sub"
    code, out, err = cli(["run", experiment, "--out", out_dir, "--set", "run.eval_train_examples=3", "-q"], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("train loss"))
    assert line.endswith("(on 3 of 4 training examples)")
    (path,) = out_dir.glob("*.h5")
    code, out, err = cli(["show", path], capsys)
    assert code == 0 and "(on 3 training examples)" in out
    code, out, err = cli(["check", experiment, "--set", "run.eval_train_examples=-1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "eval_train_examples" in err
