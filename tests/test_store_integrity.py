"""Run-file integrity: a kill at every write resumes bit-identically; resource faults stop cleanly; the lease;
SIGTERM; repair; the previous format; live readers; the store as a run-event listener.

The crash loop forks a child per case that runs a 6-step experiment (mini-batches, random partial updates,
read noise, checkpoints every 2 steps) and SIGKILLs itself at its N-th write to the run file -- before the
write, or after writing half of it (a torn write) -- for every N the run makes, file creation included.
The parent then resumes the file and compares it with the uninterrupted run, bit for bit.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import cli
from labtrain.config import experiment_from_text
from labtrain.training import store as store_mod
from labtrain.training.launch import prepare_resume, prepare_run
from labtrain.training.run import Run
from labtrain.training.store import (FORMAT, LeaseError, RunStore, StoreError, StoreWriteError, list_runs,
                                     read_summary, repair_run)

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("fork, POSIX signals and resource limits", allow_module_level=True)

TINY = """\
[experiment]
name = "tiny"

[chip]
topology = "lattice"
rows = 3
cols = 3

[backend]
read_noise_v = 0.002

[task]
name = "and"
bias_inputs_v = [1.0]

[learning]
rule = "cl"
learning_rate = 0.05
update_fraction = 0.5
mask_mode = "random"

[run]
epochs = 3
batch_size = 2
seed = 3
checkpoint_every = 2
"""
TOTAL_STEPS = 6


@pytest.fixture(autouse=True)
def _fast_lease(monkeypatch):
    """Lease compare-and-set without its settle wait (tests of the race set it back)."""
    monkeypatch.setattr(store_mod, "LEASE_SETTLE_S", 0.0)


def _experiment(out: Path, text: str = TINY, **run: object):
    overrides = {"run": {"out_dir": str(out), **run}}
    return experiment_from_text(text, None, overrides)


def _contents(path: Path) -> dict:
    with RunStore.open(path) as s:
        return {"final": s.parameters("final"), "steps": s.table("steps"), "eval": s.table("eval"),
                "history": s.parameter_history(), "checkpoint": s.latest_checkpoint(), "status": s.attrs["status"],
                "total_steps": s.attrs["total_steps"]}


def _assert_identical(got: dict, ref: dict, context: str = "") -> None:
    assert got["status"] == "completed", context
    np.testing.assert_array_equal(got["final"], ref["final"], err_msg=context)
    for group in ("steps", "eval"):
        for col, values in ref[group].items():
            if col != "time_s":
                np.testing.assert_array_equal(got[group][col], values, err_msg=f"{context} {group}/{col}")
    np.testing.assert_array_equal(got["history"][0], ref["history"][0], err_msg=context)
    np.testing.assert_array_equal(got["history"][1], ref["history"][1], err_msg=context)
    assert got["checkpoint"][0] == TOTAL_STEPS - 1, context
    np.testing.assert_array_equal(got["checkpoint"][1], ref["final"], err_msg=context)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run, and how many writes it makes (file creation included)."""
    out = tmp_path_factory.mktemp("reference")
    writes = []
    previous = store_mod.set_write_hook(lambda i, what, fd, off, data: writes.append((what, len(data))))
    try:
        with prepare_run(_experiment(out)) as run:
            result = run.run()
    finally:
        store_mod.set_write_hook(previous)
    assert result.status == "completed" and result.steps_done == TOTAL_STEPS
    ref = _contents(result.path)
    ref["writes"] = writes
    return ref


def _forked(fn) -> int:
    """Run ``fn`` in a forked child; its wait status (the child never returns into pytest)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            fn()
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def _kill_at(n: int, torn: bool):
    """A write hook that SIGKILLs this process at its ``n``-th write from now (``torn``: half written first)."""
    base = store_mod.write_count()

    def hook(index, what, fd, offset, data):
        if index - base == n:
            if torn and data:
                os.pwrite(fd, data[:len(data) // 2], offset)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _crash(fn, n: int, torn: bool) -> int:
    def child():
        store_mod.set_write_hook(_kill_at(n, torn))
        fn()

    return _forked(child)


def _finish(path: Path) -> None:
    """What a user does after a crash: look at the file, then resume it (unless it had completed)."""
    summary = read_summary(path)  # readable whatever the kill left
    steps = _contents(path)["steps"]["step"]
    np.testing.assert_array_equal(steps, np.arange(len(steps)))  # whole rows only, in order
    assert summary["steps_done"] == len(steps)
    if summary["status"] != "completed":
        assert summary["status"] == "crashed"
        with prepare_resume(path) as run:
            assert run.run().status == "completed"


def test_kill_at_every_write_resumes_bit_identical(reference, tmp_path):
    n_writes = len(reference["writes"])
    cases = [(n, torn) for n in range(n_writes) for torn in (False, True)
             if not torn or reference["writes"][n][1] > 1]
    outcomes = {"no file (killed while creating it)": 0, "resumed": 0, "already complete": 0}
    for k, (n, torn) in enumerate(cases):
        out = tmp_path / f"case{k}"
        status = _crash(lambda: prepare_run(_experiment(out)).run(), n, torn)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, torn, status)
        files = list(out.glob("*.h5"))
        what = reference["writes"][n][0]
        if not files:
            assert what in ("create", "fsync"), (n, torn, what)
            assert list_runs(out) == [] if out.exists() else True
            outcomes["no file (killed while creating it)"] += 1
            continue
        (path,) = files
        done = read_summary(path)["status"] == "completed"
        _finish(path)
        _assert_identical(_contents(path), reference, f"kill at write {n} ({what}, torn={torn})")
        outcomes["already complete" if done else "resumed"] += 1
    assert sum(outcomes.values()) == len(cases) >= 2 * 40
    assert outcomes["resumed"] >= 60
    print(f"\n{len(cases)} kill points ({n_writes} writes, before and torn): {outcomes}")


def test_kill_while_resuming_then_resume_again(reference, tmp_path):
    """A second crash, at every write of the resume itself (lease, truncation, steps, checkpoints)."""
    first = [i for i, (what, _) in enumerate(reference["writes"]) if what == "checkpoint"][1] + 2  # mid-run
    seed_dir = tmp_path / "seed"
    assert os.WIFSIGNALED(_crash(lambda: prepare_run(_experiment(seed_dir)).run(), first, False))
    (crashed,) = seed_dir.glob("*.h5")
    image = crashed.read_bytes()
    counted = []

    def count():
        store_mod.set_write_hook(lambda i, what, fd, off, data: counted.append(i))
        with prepare_resume(crashed) as run:
            run.run()
        os.write(wfd, str(len(counted)).encode())

    rfd, wfd = os.pipe()
    assert _forked(count) == 0
    n_writes = int(os.read(rfd, 64))
    os.close(rfd)
    os.close(wfd)
    assert n_writes >= 20
    for n in range(n_writes):
        path = tmp_path / f"again{n}.h5"
        path.write_bytes(image)
        status = _crash(lambda: prepare_resume(path).run(), n, torn=n % 2 == 1)
        assert os.WIFSIGNALED(status), (n, status)
        _finish(path)
        _assert_identical(_contents(path), reference, f"resume killed at write {n}")
    print(f"\nresume killed at each of its {n_writes} writes: all resumed bit-identical")


# ------------------------------------------------------------------ resource faults
class SafeSpy:
    """Counts the chip's safe-state calls (wraps the real method)."""

    def __init__(self, chip) -> None:
        self.calls = 0
        real = chip.safe_state

        def safe_state() -> None:
            self.calls += 1
            real()

        chip.safe_state = safe_state


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "disk full"), (errno.EIO, "I/O error"),
                                          (errno.EFBIG, "file size limit reached")])
def test_write_fault_mid_run_stops_cleanly_and_resumes(reference, tmp_path, code, reason):
    seen = {"steps": 0}

    def hook(index, what, fd, offset, data):
        if what == "steps":
            seen["steps"] += 1
            if seen["steps"] == 4:  # the 4th step row: steps 0-2 are on disk, checkpoint after step 1
                raise OSError(code, os.strerror(code))

    run = prepare_run(_experiment(tmp_path))
    spy = SafeSpy(run.chip)
    previous = store_mod.set_write_hook(hook)
    try:
        with pytest.raises(StoreWriteError, match=reason) as info:
            run.run()
    finally:
        store_mod.set_write_hook(previous)
        run.close()
    assert info.value.reason == reason and str(run.store.path) in str(info.value)
    assert spy.calls >= 1
    summary = read_summary(run.store.path)
    assert summary["status"] == "failed" and summary["message"].startswith(reason)
    got = _contents(run.store.path)
    np.testing.assert_array_equal(got["steps"]["step"], [0, 1, 2])
    assert got["checkpoint"][0] == 1  # the fault also refused the closing checkpoint: the last good one stays
    with prepare_resume(run.store.path) as resumed:
        resumed.run()
    _assert_identical(_contents(run.store.path), reference)


def _limited(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def _labtrain(args, limit: int | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "labtrain", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_limited(limit) if limit else None, env=env)


def test_rlimit_fsize_on_run_and_resume(reference, tmp_path, capsys):
    exp = tmp_path / "tiny.toml"
    exp.write_text(TINY)
    out = tmp_path / "runs"
    # run: the file is laid out (and reserved) for the whole run at creation, so a limit below its size
    # refuses the run before it starts: exit 4, one line, nothing left behind
    p = _labtrain(["run", exp, "--out", out, "-q"], limit=16384)
    assert p.returncode == 4, p.stderr
    assert p.stderr.count("\n") == 1 and "file size limit reached (EFBIG)" in p.stderr and "Traceback" not in p.stderr
    assert list(out.iterdir()) == []
    # a run stopped after 3 steps, resumed under a limit that cuts into the step table at step 3
    stopper = {}
    with prepare_run(_experiment(out), listeners=[lambda e: e.kind == "step" and e.step == 2 and
                                                  stopper["run"].request_stop()]) as run:
        stopper["run"] = run
        assert run.run().status == "stopped"
        limit = run.store._layout.steps.at(3)
        path = run.store.path
    p = _labtrain(["resume", path, "-q"], limit=limit)
    assert p.returncode == 4, p.stderr
    started, error = p.stderr.splitlines()  # "resuming RUN at step 3 of 6", then one error line
    assert started.startswith("resuming") and "file size limit reached (EFBIG)" in error
    assert f"resume with: labtrain resume {path}" in error and "Traceback" not in p.stderr
    summary = read_summary(path)
    assert summary["status"] == "failed" and summary["message"].startswith("file size limit reached")
    np.testing.assert_array_equal(_contents(path)["steps"]["step"], [0, 1, 2])
    assert cli(["resume", path, "-q"], capsys)[0] == 0
    _assert_identical(_contents(path), reference)


def test_export_to_a_full_target_exits_cleanly(reference, tmp_path, capsys):
    with prepare_run(_experiment(tmp_path / "runs")) as run:
        path = run.run().path
    (tmp_path / "x").mkdir()  # export writes into an existing folder (a missing one is refused, exit 2)
    for fmt, target in (("netcdf", tmp_path / "x" / "run.nc"), ("csv", tmp_path / "x" / "run")):
        p = _labtrain(["export", path, "--format", fmt, "-o", target], limit=200)
        assert p.returncode == 4, p.stderr
        assert p.stderr.count("\n") == 1 and "file size limit reached" in p.stderr and "Traceback" not in p.stderr
        assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []
    assert cli(["export", path, "--format", "netcdf", "-o", tmp_path / "x" / "run.nc"], capsys)[0] == 0
    assert (tmp_path / "x" / "run.nc").stat().st_size > 0


def test_runs_lists_unreadable_files(reference, tmp_path, capsys):
    runs = tmp_path / "runs"
    with prepare_run(_experiment(runs)) as run:
        good = run.run().path
    (runs / "garbage.h5").write_bytes(b"not hdf5 at all")
    (runs / "cut.h5").write_bytes(good.read_bytes()[:3000])  # a copy cut short
    with h5py.File(runs / "surrogate.h5", "w") as f:  # an HDF5 file that is no run: not listed
        f["x"] = 1
    code, out, err = cli(["runs", runs], capsys)
    assert code == 0 and out.count(" unreadable ") == 2 and len(out.splitlines()) == 2 + 3
    assert err.count("unreadable: ") == 2 and "not an HDF5 file" in err
    code, out, _ = cli(["runs", runs, "--json"], capsys)
    rows = {r["path"]: r["status"] for r in json.loads(out)}
    assert rows == {str(good): "completed", str(runs / "garbage.h5"): "unreadable", str(runs / "cut.h5"): "unreadable"}


# ------------------------------------------------------------------ lease, SIGTERM
def _long_run(out: Path) -> Path:
    """A stopped run file with many steps left (a resume of it runs for a while)."""
    stopper = {}
    with prepare_run(_experiment(out, epochs=4000),
                     listeners=[lambda e: e.kind == "step" and stopper["run"].request_stop()]) as run:
        stopper["run"] = run
        run.run()
        return run.store.path


def _wait_for(predicate, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_second_resume_refused_then_sigterm_stops_cleanly(tmp_path, capsys):
    path = _long_run(tmp_path)
    env = dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE")  # as on NFS: no OS lock anywhere
    proc = subprocess.Popen([sys.executable, "-m", "labtrain", "resume", str(path), "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: read_summary(path)["steps_done"] >= 5 and RunStore.open(path).owner is not None)
        with RunStore.open(path) as s:
            assert s.owner["pid"] == proc.pid and s.owner["host"] == socket.gethostname()
        code, out, err = cli(["resume", path, "-q"], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f"in use by another process (pid {proc.pid} on {socket.gethostname()}" in err and str(path) in err
        code, _, err = cli(["repair", path], capsys)
        assert code == 2 and f"pid {proc.pid}" in err
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "stopping at the next step boundary (SIGTERM" in stderr and "Traceback" not in stderr
    assert "status      stopped (stopped by SIGTERM)" in stdout
    assert f"resume with: labtrain resume {path}" in stdout
    got = _contents(path)
    assert got["status"] == "stopped"
    k = len(got["steps"]["step"])
    np.testing.assert_array_equal(got["steps"]["step"], np.arange(k))
    assert got["checkpoint"][0] == k - 1  # a clean stop checkpoints its last step
    with RunStore.open(path) as s:
        assert s.owner is None  # released


def test_concurrent_resumes_exactly_one_wins(monkeypatch, tmp_path):
    """Lease compare-and-set without OS locks: several processes take it at the same instant."""
    monkeypatch.setattr(store_mod, "LEASE_SETTLE_S", 0.2)
    with prepare_run(_experiment(tmp_path)) as run:
        path = run.store.path
    for attempt in range(2):
        start = time.time() + 0.3
        rfd, wfd = os.pipe()

        def take():
            time.sleep(max(0.0, start - time.time()))
            try:
                store = RunStore.open(path, "r+")
            except LeaseError:
                os.write(wfd, b"-")
                return
            os.write(wfd, b"+")
            time.sleep(0.3)  # hold it while the others check
            store.close()

        pids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                try:
                    take()
                finally:
                    os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        os.close(wfd)
        results = os.read(rfd, 16)
        os.close(rfd)
        assert sorted(results) == sorted(b"+--"), (attempt, results)


def test_stale_lease_of_a_dead_process_is_taken_over(tmp_path):
    path = _long_run(tmp_path)

    def take_and_die():
        RunStore.open(path, "r+")
        os.kill(os.getpid(), signal.SIGKILL)

    assert os.WIFSIGNALED(_forked(take_and_die))
    with RunStore.open(path) as s:
        dead = s.owner
    assert dead is not None and dead["pid"] != os.getpid()
    with RunStore.open(path, "r+") as s:
        assert s.taken_over["pid"] == dead["pid"] and s.owner["pid"] == os.getpid()


def test_lease_on_another_host_refused_until_forced_repair(tmp_path, capsys):
    with prepare_run(_experiment(tmp_path)) as run:
        path = run.store.path
        run.store._commit(owner={"host": "elsewhere.example", "pid": 4242, "boot": "", "start": None,
                                 "since": "2026-01-01 00:00:00", "token": "feed"})
        run.store._owner = None  # forget it: another host's process holds the file now
    code, _, err = cli(["resume", path, "-q"], capsys)
    assert code == 2 and "pid 4242 on elsewhere.example" in err and err.count("\n") == 1
    code, _, err = cli(["repair", path], capsys)
    assert code == 2 and "--force" in err
    code, out, _ = cli(["repair", path, "--force"], capsys)
    assert code == 0 and "released" in out
    with RunStore.open(path) as s:
        assert s.owner is None


def test_run_context_manager_releases_the_file(tmp_path):
    run = prepare_run(_experiment(tmp_path, epochs=1))
    path = run.store.path
    with pytest.raises(LeaseError, match="already open for writing in this process"):
        prepare_resume(path)
    with run:
        run.run()
    assert run.store._fd is None
    with prepare_resume(path, epochs=2) as resumed:  # a notebook can go on with the same file
        assert resumed.run().status == "completed"
    assert read_summary(path)["steps_done"] == 4


# ------------------------------------------------------------------ damage, repair, previous format
def _stopped_at(out: Path, steps: int) -> Path:
    stopper = {}
    with prepare_run(_experiment(out), listeners=[lambda e: e.kind == "step" and e.step == steps - 1 and
                                                  stopper["run"].request_stop()]) as run:
        stopper["run"] = run
        run.run()
        return run.store.path


def _corrupt(path: Path, offset: int, n: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in fh.read(n)))


def test_torn_state_records_diagnosed_and_repaired(reference, tmp_path, capsys):
    path = _stopped_at(tmp_path, 3)
    with RunStore.open(path) as s:
        state = s._layout.state
    _corrupt(path, state.offset + 30, 8)
    _corrupt(path, state.offset + 4096 + 30, 8)
    code, out, err = cli(["resume", path, "-q"], capsys)
    assert code == 2 and err.count("\n") == 1 and "both state records are torn" in err
    assert f"labtrain repair {path}" in err
    code, out, err = cli(["runs", tmp_path], capsys)
    assert "unreadable" in out and "both state records" in err
    code, out, err = cli(["repair", path], capsys)
    assert code == 0 and out.count("\n") == 1 and "repaired" in out and "resumes after step 2" in out
    assert _contents(path)["status"] == "stopped"
    assert cli(["resume", path, "-q"], capsys)[0] == 0
    _assert_identical(_contents(path), reference)
    code, out, _ = cli(["repair", path], capsys)
    assert code == 0 and "nothing to repair" in out


def test_torn_checkpoints_fall_back_or_restart(reference, tmp_path, capsys):
    path = _stopped_at(tmp_path, 4)  # checkpoints after steps 1 and 3
    with RunStore.open(path) as s:
        slot = s._state["checkpoint"]["slot"]
        region = s._layout.checkpoint
    _corrupt(path, region.at(slot) + 100, 16)  # the newest: the older one (after step 1) is used
    with RunStore.open(path) as s:
        assert s.latest_checkpoint()[0] == 1 and "torn" in s.damage
    for other in set(range(region.rows)) - {slot}:  # all: one line, and repair restarts the run
        _corrupt(path, region.at(other) + 100, 16)
    code, _, err = cli(["resume", path, "-q"], capsys)
    assert code == 2 and err.count("\n") == 1 and "fails its checksum" in err and "labtrain repair" in err
    code, out, _ = cli(["repair", path], capsys)
    assert code == 0 and "a resume starts from the beginning" in out
    assert cli(["resume", path, "-q"], capsys)[0] == 0
    _assert_identical(_contents(path), reference)


def _write_v1(path: Path, source: Path) -> None:
    """The same run in the previous format (``labtrain-run-1``), as its writer left it."""
    with RunStore.open(source) as s:
        c = s.contents()
        with h5py.File(path, "w") as f:
            for k, v in s.h5.attrs.items():
                if k != "format":
                    f.attrs[k] = v
            f.attrs.update({"format": "labtrain-run-1", "status": "stopped", "message": "", "pid": 1,
                            "total_steps": s.attrs["total_steps"]})
            for name in ("experiment", "snapshot", "task"):
                s.h5.copy(s.h5[name], f, name=name)
            for group, table in (("steps", c.steps), ("eval", c.eval)):
                for col, values in table.items():
                    f.create_dataset(f"{group}/{col}", data=values, maxshape=(None,), chunks=(1024,))
            f["parameters/initial"] = s.h5["parameters/initial"][:]
            f["parameters/history"] = c.history[1]
            f["parameters/history_step"] = c.history[0]
            cp = f.create_group("checkpoint")
            cp.attrs["latest_slot"] = 1
            g = cp.create_group("slot1")
            g.attrs["step"] = c.checkpoint[0]
            g["parameters"] = c.checkpoint[1]
            for k, v in c.checkpoint[2].items():
                g[f"optimizer/{k}"] = v


def test_previous_format_read_resumed_and_repaired(reference, tmp_path, capsys):
    stopped = _stopped_at(tmp_path / "v2", 4)  # checkpoint after step 3
    v1 = tmp_path / "old.h5"
    _write_v1(v1, stopped)
    summary = read_summary(v1)  # the reader accepts the previous format
    assert summary["status"] == "stopped" and summary["steps_done"] == 4
    with RunStore.open(v1) as s:
        assert s.version == 1 and s.latest_checkpoint()[0] == 3
    assert cli(["resume", v1, "-q"], capsys)[0] == 0  # converted, then resumed
    with h5py.File(v1, "r") as f:
        assert f.attrs["format"] == FORMAT
    _assert_identical(_contents(v1), reference)
    # a previous-format file whose checkpoint HDF5 cannot read (as "bad heap free list" left them)
    broken = tmp_path / "broken.h5"
    _write_v1(broken, stopped)
    with h5py.File(broken, "r+") as f:
        f["checkpoint"].attrs["latest_slot"] = 0  # points at a slot that is not there
    code, _, err = cli(["resume", broken, "-q"], capsys)
    assert code == 2 and err.count("\n") == 1 and "labtrain repair" in err and "Traceback" not in err
    code, out, _ = cli(["repair", broken], capsys)
    assert code == 0 and "converted" in out and "unreadable checkpoint dropped" in out
    assert cli(["resume", broken, "-q"], capsys)[0] == 0
    _assert_identical(_contents(broken), reference)


# ------------------------------------------------------------------ live readers, events
def test_live_reader_never_sees_torn_rows(tmp_path):
    exp = _experiment(tmp_path, epochs=300)
    rfd, wfd = os.pipe()

    def writer():
        with prepare_run(exp) as run:
            os.write(wfd, str(run.store.path).encode())
            run.run()

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            writer()
        finally:
            os._exit(0)
    os.close(wfd)
    path = Path(os.read(rfd, 4096).decode())
    os.close(rfd)
    reads = 0
    while True:
        done = os.waitpid(pid, os.WNOHANG)[0] != 0
        with RunStore.open(path) as s:
            steps, ev = s.table("steps"), s.table("eval")
            hist_step, hist = s.parameter_history()
            assert s.damage == ""
        np.testing.assert_array_equal(steps["step"], np.arange(len(steps["step"])))
        assert all(len(v) == len(steps["step"]) for v in steps.values())
        assert len(ev["step"]) <= 1 + len(steps["step"]) // 2 + 1
        np.testing.assert_array_equal(hist_step, np.arange(len(hist_step)))
        assert hist.shape == (len(hist_step), 12) and len(hist_step) >= len(steps["step"]) - 1
        reads += 1
        if done:
            break
    assert reads >= 5 and len(steps["step"]) == 600


def test_store_is_only_a_listener(reference, tmp_path):
    """The run loop writes nothing itself: replaying a store-less run's events into a store gives the file."""
    events = []
    run = prepare_run(_experiment(tmp_path), listeners=[events.append], store=False)
    with run:
        run.run()
    assert "checkpoint" in [e.kind for e in events]
    with prepare_run(_experiment(tmp_path / "listener")) as owner:
        store = owner.store
        for event in events:
            store(event)
        path = store.path
    _assert_identical(_contents(path), reference)
    run = Run(owner.chip, owner.estimator, owner.optimizer, owner.task, store=store, listeners=[events.append])
    assert run.listeners[0] is store
