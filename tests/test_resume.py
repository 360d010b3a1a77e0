"""Crash, Ctrl-C and stop: the run file keeps every completed step and a resumed run
continues exactly as the uninterrupted run with the same seed.

The experiment uses mini-batches (shuffled per epoch), partial updates with a new
random edge subset every step and read noise on every measurement, so a resumed
run only matches if shuffling, masks and noise are all reseeded per step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labtrain.cli import main
from labtrain.training.launch import prepare_resume, prepare_run
from labtrain.training.store import RunStore, read_summary

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals", allow_module_level=True)

EXPERIMENT = """\
[experiment]
name = "iris_resume"

[chip]
topology = "random"
n_nodes = 40
n_edges = 120
graph_seed = 3
g_init = "log_uniform_random"

[backend]
read_noise_v = 0.002

[task]
name = "iris"
bias_inputs_v = [1.0]
target_on_v = 0.3
target_off_v = 0.1

[learning]
rule = "cl"
learning_rate = 0.02
update_fraction = 0.5
mask_mode = "random"

[run]
epochs = 12
batch_size = 8
seed = 5
eval_every = 30
"""
STEPS_PER_EPOCH = 14  # 105 training examples in batches of 8
TOTAL_STEPS = 12 * STEPS_PER_EPOCH
N_EDGES = 120


def _cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def _contents(path: Path) -> dict:
    with RunStore.open(path) as store:
        return {"final": store.parameters("final"), "initial": store.parameters("initial"),
                "steps": store.table("steps"), "eval": store.table("eval"),
                "history": store.parameter_history(), "attrs": store.attrs}


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("exp") / "iris_resume.toml"
    f.write_text(EXPERIMENT)
    return f


@pytest.fixture(scope="module")
def reference(experiment_file, tmp_path_factory) -> dict:
    """The uninterrupted run of the same file and seed."""
    out = tmp_path_factory.mktemp("reference")
    assert _cli(["run", experiment_file, "--out", out, "-q"]) == 0
    (path,) = out.glob("*.h5")
    ref = _contents(path)
    assert ref["attrs"]["status"] == "completed"
    assert len(ref["steps"]["step"]) == TOTAL_STEPS
    return ref


def _assert_matches_reference(path: Path, ref: dict) -> None:
    got = _contents(path)
    assert got["attrs"]["status"] == "completed"
    np.testing.assert_array_equal(got["steps"]["step"], np.arange(TOTAL_STEPS))
    np.testing.assert_array_equal(got["initial"], ref["initial"])
    np.testing.assert_array_equal(got["final"], ref["final"])
    np.testing.assert_array_equal(got["steps"]["loss"], ref["steps"]["loss"])
    np.testing.assert_array_equal(got["steps"]["epoch"], ref["steps"]["epoch"])
    for col in ("step", "train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        np.testing.assert_array_equal(got["eval"][col], ref["eval"][col], err_msg=col)
    np.testing.assert_array_equal(got["history"][0], ref["history"][0])
    np.testing.assert_array_equal(got["history"][1], ref["history"][1])


def _start(experiment_file: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labtrain", "run", str(experiment_file), "--out", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(proc: subprocess.Popen, out: Path, at_least: int, timeout_s: float = 60) -> Path:
    """Poll the run file (read-only, while the writer writes it) until ``at_least`` steps are stored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"run ended (rc {proc.returncode}) before it could be interrupted: {err}")
        files = list(out.glob("*.h5"))
        # a live reader never sees torn rows (each step is one atomic commit): no retry on errors
        if files and read_summary(files[0])["steps_done"] >= at_least:
            return files[0]
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"fewer than {at_least} steps after {timeout_s} s")


def _assert_consecutive_steps(path: Path) -> int:
    with RunStore.open(path) as store:
        steps = store.table("steps")["step"]
        checkpoint = store.latest_checkpoint()
    k = len(steps)
    np.testing.assert_array_equal(steps, np.arange(k))
    assert checkpoint is not None and checkpoint[0] >= k - 2  # at most the step in flight is not checkpointed
    return k


def test_sigkill_mid_training_then_resume(experiment_file, reference, tmp_path, capsys):
    out = tmp_path / "runs"
    proc = _start(experiment_file, out)
    path = _wait_for_steps(proc, out, at_least=12)
    # frozen mid-run (a fast machine would otherwise finish the 168 steps while the checks below run; SIGSTOP
    # can land inside a write, like the SIGKILL after it)
    os.kill(proc.pid, signal.SIGSTOP)
    # while it runs: listed as running, and it cannot be resumed a second time
    assert read_summary(path)["status"] == "running"
    capsys.readouterr()
    assert _cli(["runs", out]) == 0
    (row,) = capsys.readouterr().out.splitlines()[2:]
    assert row.split()[-1] == str(path) and "running" in row.split()
    capsys.readouterr()
    assert _cli(["resume", path, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another process" in err and str(path) in err
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    summary = read_summary(path)
    assert summary["status"] == "crashed"  # "running" in the file, but its process is gone
    k = _assert_consecutive_steps(path)
    assert 12 <= k < TOTAL_STEPS
    assert summary["steps_done"] == k
    with RunStore.open(path) as store:  # every stored step is the real one
        np.testing.assert_array_equal(store.table("steps")["loss"], reference["steps"]["loss"][:k])

    p = subprocess.run([sys.executable, "-m", "labtrain", "resume", str(path), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"resuming {path} at step" in p.stderr
    assert "status      completed" in p.stdout
    _assert_matches_reference(path, reference)
    assert read_summary(path)["status"] == "completed"


def test_ctrl_c_stops_then_resume(experiment_file, reference, tmp_path):
    out = tmp_path / "runs"
    proc = _start(experiment_file, out)
    path = _wait_for_steps(proc, out, at_least=12)
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopping at the next step boundary" in stderr
    assert "status      stopped" in stdout
    assert f"resume with: labtrain resume {path}" in stdout
    assert "Traceback" not in stderr

    summary = read_summary(path)
    assert summary["status"] == "stopped"
    k = _assert_consecutive_steps(path)
    assert 12 <= k < TOTAL_STEPS
    with RunStore.open(path) as store:
        assert store.latest_checkpoint()[0] == k - 1  # a clean stop checkpoints the last step

    assert _cli(["resume", path, "-q"]) == 0
    _assert_matches_reference(path, reference)


def test_request_stop_in_process_then_prepare_resume(experiment_file, reference, tmp_path):
    stop_after = 20  # mid-epoch 1 and between evaluations
    holder = {}
    seen = []

    def listener(event):
        if event.kind == "step":
            seen.append(event.step)
            if event.step == stop_after - 1:
                holder["run"].request_stop()

    run = prepare_run(experiment_file, {"run": {"out_dir": str(tmp_path / "runs")}}, listeners=[listener])
    holder["run"] = run
    assert run.total_steps == TOTAL_STEPS
    result = run.run()
    run.store.close()
    assert result.status == "stopped"
    assert result.steps_done == stop_after
    assert seen == list(range(stop_after))
    path = result.path
    assert read_summary(path)["status"] == "stopped"
    assert _assert_consecutive_steps(path) == stop_after

    kinds = []
    resumed = prepare_resume(path, listeners=[lambda e: kinds.append((e.kind, e.step))])
    assert resumed.next_step == stop_after
    np.testing.assert_array_equal(resumed.step_loss, reference["steps"]["loss"][:stop_after])
    result = resumed.run()
    resumed.store.close()
    assert result.status == "completed"
    assert kinds[0] == ("start", stop_after)
    assert [s for kind, s in kinds if kind == "step"] == list(range(stop_after, TOTAL_STEPS))
    np.testing.assert_array_equal(result.parameters, reference["final"])
    np.testing.assert_array_equal(result.step_loss, reference["steps"]["loss"])
    _assert_matches_reference(path, reference)


def test_partial_random_updates_took_effect(reference):
    """The mask really is a new half of the edges each step (so resuming must reseed it)."""
    hist_step, hist = reference["history"]
    np.testing.assert_array_equal(hist_step, np.arange(TOTAL_STEPS))
    prev = np.vstack([reference["initial"], hist[:-1]])
    changed = hist != prev
    assert changed.shape == (TOTAL_STEPS, N_EDGES)
    assert np.all(changed.sum(axis=1) <= N_EDGES // 2)
    assert changed[0].sum() == N_EDGES // 2  # all selected edges move at first (none starts at a bound)
    assert np.any(changed[1] & ~changed[0])  # a different subset the next step


def test_read_noise_is_per_step(experiment_file, tmp_path):
    """Read noise really is on (and reseedable): same seed, same noise; another seed, other noise."""
    run = prepare_run(experiment_file, {"run": {"epochs": 1}}, store=False)
    chip = run.chip
    x, _ = run.batch(0)
    chip.reseed([5, 4, 3])
    a = chip.measure(x).output_v
    chip.reseed([5, 4, 3])
    b = chip.measure(x).output_v
    chip.reseed([5, 4, 4])
    c = chip.measure(x).output_v
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c, rtol=0, atol=1e-6)
    chip.close()


def test_resume_after_kill_before_first_checkpoint(experiment_file, reference, tmp_path):
    """A run file with no completed step (killed right after creation) resumes from the start."""
    run = prepare_run(experiment_file, {"run": {"out_dir": str(tmp_path / "runs")}})
    path = run.store.path
    run.store.close()  # the process "died" before its first step: status still "running"
    run.chip.close()
    with RunStore.open(path) as store:
        assert store.latest_checkpoint() is None
        assert store.attrs["status"] == "running"
    resumed = prepare_resume(path)
    assert resumed.next_step == 0
    assert resumed.run().status == "completed"
    resumed.store.close()
    _assert_matches_reference(path, reference)
