"""Run events: instrument retries, faults, safety ramps and pauses are logged, kept in the run file's
``/events`` table, printed by the CLI while the run trains and listed by ``labtrain show``."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from labtrain import cli
from labtrain.training import launch
from labtrain.training.store import EVENT_ROWS, RunStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _faulty_prepare_run(monkeypatch):
    """``prepare_run`` whose twin DAQ times out twice at the start (then recovers) and never answers again
    from the third step on."""
    original = launch.prepare_run

    def prepare(*args, **kwargs):
        run = original(*args, **kwargs)
        daq = run.chip.daq.daq
        daq.inject_faults(2, "timeout", methods=("write_read",))

        def break_at_step_two(event):
            if event.kind == "step" and event.step == 1:
                daq.inject_faults(1000, "io", methods=("write_read",))

        run.listeners.append(break_at_step_two)
        return run

    monkeypatch.setattr(launch, "prepare_run", prepare)


def test_faults_retries_and_pause_in_run_file_cli_and_show(tmp_path, monkeypatch, capsys):
    _faulty_prepare_run(monkeypatch)
    code = cli.main(["run", str(EXAMPLES / "iris_cl.toml"), "--backend", "twin", "--epochs", "4", "--out",
                     str(tmp_path), "--set", "backend.retries=2", "--set", "chip.n_nodes=30", "--set",
                     "chip.n_edges=80", "-q"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_FAULT, err
    # printed while the run trained: every retry, the fault that gave up, the pause
    retries = [line for line in err.splitlines() if "instrument fault (retrying" in line]
    assert len(retries) == 4 and all(line.startswith("labtrain run: warning: ") for line in retries)
    assert sum("instrument fault (giving up)" in line for line in err.splitlines()) == 1
    assert any(line.startswith("labtrain run: warning: paused after step 2 of 4") for line in err.splitlines())
    path = next(tmp_path.glob("*.h5"))

    # the run file: one row per retry, the fault, each safety ramp and the pause, in order
    with RunStore.open(path) as store:
        ev = store.events()
    kinds = list(ev["kind"])
    assert kinds.count("retry") == 4 and kinds.count("fault") == 1 and kinds.count("pause") == 1
    assert kinds.count("safe_state") == 5  # the safety layer ramped the AO down after every failed call
    assert kinds[-1] == "pause" and kinds.index("fault") < kinds.index("pause")
    assert list(ev["step"][:4]) == [-1] * 4  # the first two timeouts hit the evaluation before training
    assert set(ev["step"][4:]) == {2}  # the rest: the third step (index 2), which never completed
    assert all(lvl == "WARNING" for lvl in ev["level"])
    assert ev["source"][kinds.index("retry")] == "labtrain.instruments.retry"
    assert "PortTimeout" in ev["message"][1] and "attempt 1 of 3" in ev["message"][1]
    assert np.all(np.diff(ev["time_s"]) >= 0)

    # labtrain show: concise, and every retry and the pause listed
    assert cli.main(["show", str(path)]) == 0
    shown = capsys.readouterr().out
    lines = shown.splitlines()
    assert lines[1].startswith("status      paused (instrument fault:")
    assert "events      11: 5 safe_state, 4 retry, 1 fault, 1 pause" in shown
    assert sum("retry      instrument fault (retrying" in line for line in lines) == 4
    assert sum(" pause      paused after step 2 of 4" in line for line in lines) == 1
    assert "snapshot" not in shown.split("experiment file, overrides and snapshot:")[0]
    assert len(lines) < 40

    # resuming adds its own event; a clean resume logs no fault
    monkeypatch.undo()
    assert cli.main(["resume", str(path), "-q"]) == 0
    capsys.readouterr()
    with RunStore.open(path) as store:
        ev = store.events()
        assert store.attrs["status"] == "completed"
    assert list(ev["kind"][-2:]) == ["pause", "resume"] and len(ev["kind"]) == 12


def test_show_is_concise_and_full_has_everything(tmp_path, capsys):
    assert cli.main(["run", str(EXAMPLES / "iris_cl.toml"), "--epochs", "2", "--out", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    path = next(tmp_path.glob("*.h5"))
    assert cli.main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "e+0" not in out  # integers as integers
    fields = dict(line.split(None, 1) for line in out.splitlines() if line[:1].isalpha() and " " in line)
    assert fields["status"] == "completed"
    assert fields["steps"].startswith("2 / 2 (2 of 2 epochs done")
    assert fields["events"].startswith("none")
    assert "train loss" in fields["final"] and "test loss" in fields["best"]
    assert fields["provenance"].startswith("labtrain ") and "seed 0" in fields["provenance"]
    assert "[chip]" not in out and len(out.splitlines()) < 20
    assert cli.main(["show", "--full", str(path)]) == 0
    full = capsys.readouterr().out
    assert full.startswith(out.rsplit("\nexperiment file, overrides", 1)[0])
    assert "\nexperiment file:\n" in full and "\nsnapshot:\n" in full


def test_events_table_grows_and_survives_rewrite(tmp_path):
    from labtrain.training.store import EVENT_DTYPE

    store = RunStore.create(tmp_path / "r.h5", name="r", experiment_text="", overrides={}, source="", snapshot={},
                            task={}, rule="cl", backend="ideal", seed=0, total_steps=2,
                            initial_parameters=np.zeros(3))
    for i in range(EVENT_ROWS + 5):
        store.append_event({"time_s": 1.0 + i, "step": i, "level": "WARNING", "kind": "retry",
                            "source": "test", "message": f"event {i} " + "\u00b5" * 300})
    store.close()
    with RunStore.open(tmp_path / "r.h5") as s:
        ev = s.events()
        assert len(ev["step"]) == EVENT_ROWS + 5 and list(ev["step"][-2:]) == [EVENT_ROWS + 3, EVENT_ROWS + 4]
        assert ev["message"][7].startswith("event 7 \u00b5")  # cut to the column at a character boundary
        assert len(ev["message"][7].encode()) <= EVENT_DTYPE["message"].itemsize
        assert s.h5["events"].shape[0] >= EVENT_ROWS + 5


def test_file_without_events_table_reads_and_gains_one(tmp_path):
    """A run file written before /events existed: no events; the first event lays the table out."""
    path = tmp_path / "old.h5"
    RunStore.create(path, name="old", experiment_text="", overrides={}, source="", snapshot={}, task={}, rule="cl",
                    backend="ideal", seed=0, total_steps=2, initial_parameters=np.zeros(3)).close()
    with h5py.File(path, "r+", locking=False) as f:
        del f["events"]
    with RunStore.open(path) as s:
        assert len(s.events()["step"]) == 0
    with RunStore.open(path, "r+") as s:
        s.append_event({"time_s": 5.0, "step": 0, "level": "INFO", "kind": "resume", "source": "t", "message": "m"})
    with RunStore.open(path) as s:
        assert list(s.events()["kind"]) == ["resume"]


def test_warnings_of_library_loggers_become_events_only_on_the_run_thread(tmp_path, caplog):
    """Warnings, and records marked as events (at a level the logger is enabled for: the CLI and the GUI
    enable INFO), logged on the run's thread while it trains."""
    import threading

    caplog.set_level(logging.INFO, logger="labtrain")

    from labtrain.config import load_experiment

    exp = load_experiment(EXAMPLES / "iris_cl.toml", {"run": {"epochs": 1, "out_dir": str(tmp_path)}})
    run = launch.prepare_run(exp)
    logger = logging.getLogger("labtrain.instruments.test")

    def listener(event):
        if event.kind == "step":
            logger.warning("something odd on the run thread")
            logger.info("routine, not an event")
            logger.info("marked", extra={"labtrain_event": "note"})
            t = threading.Thread(target=logger.warning, args=("another thread",))
            t.start()
            t.join()

    run.listeners.append(listener)
    with run:
        run.run()
        ev = run.store.events()
    assert list(ev["message"]) == ["something odd on the run thread", "marked"]
    assert list(ev["kind"]) == ["warning", "note"]
    assert not any(isinstance(h, logging.Handler) and type(h).__name__ == "_EventCapture"
                   for h in logging.getLogger("labtrain").handlers)


def test_gui_worker_log_shows_each_retry(tmp_path):
    """The GUI's worker process forwards what its run logs -- each retry and safety ramp -- as "log" messages
    (no Qt needed: the window only draws them)."""
    import queue
    import time

    from labtrain.config import load_experiment
    from labtrain.gui.worker import RunWorker

    exp = load_experiment(EXAMPLES / "iris_cl.toml", {"backend": {"kind": "twin", "retries": 2},
                                                       "run": {"epochs": 1, "out_dir": str(tmp_path)},
                                                       "chip": {"n_nodes": 30, "n_edges": 80}})
    worker = RunWorker(exp, fidelity=False, child_init="event_hooks:flaky_daq")
    worker.start()
    logs, deadline = [], time.monotonic() + 120
    try:
        while not worker.done and time.monotonic() < deadline:
            try:
                msg = worker.get_nowait()
            except queue.Empty:
                time.sleep(0.05)
                continue
            if msg.kind == "log":
                logs.append(msg.data)
            assert msg.kind != "error", msg.data
    finally:
        worker.join(30)
        worker.close()
    assert worker.done and worker.result.status == "completed"
    retries = [text for level, text in logs if "instrument fault (retrying" in text]
    assert len(retries) == 2 and all(level == "WARNING" for level, text in logs if text in retries)
    assert sum("ramped to their safe levels" in text for _, text in logs) == 2
    with RunStore.open(next(tmp_path.glob("*.h5"))) as store:
        assert list(store.events()["kind"]) == ["safe_state", "retry", "safe_state", "retry"]


def test_a_python_warning_shown_during_the_run_is_an_event(tmp_path):
    import warnings

    from labtrain.config import load_experiment

    exp = load_experiment(EXAMPLES / "iris_cl.toml", {"run": {"epochs": 1, "out_dir": str(tmp_path)}})
    run = launch.prepare_run(exp)
    run.listeners.append(lambda e: e.kind == "step" and warnings.warn("quadrature too high", RuntimeWarning))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        with run:
            run.run()
            ev = run.store.events()
        assert warnings.showwarning is before
    assert list(ev["kind"]) == ["warning"] and ev["source"][0] == "warnings.RuntimeWarning"
    assert ev["message"][0] == "quadrature too high"


def test_gui_run_browser_lists_a_past_runs_events(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PyQt6")
    pytest.importorskip("pyqtgraph")
    from PyQt6 import QtWidgets

    from labtrain.gui.run_browser import RunBrowser, load_run

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841 -- widgets need one

    _faulty_prepare_run(monkeypatch)
    assert cli.main(["run", str(EXAMPLES / "iris_cl.toml"), "--backend", "twin", "--epochs", "3", "--out",
                     str(tmp_path), "--set", "backend.retries=2", "--set", "chip.n_nodes=30", "--set",
                     "chip.n_edges=80", "-q"]) == cli.EXIT_FAULT
    capsys.readouterr()
    browser = RunBrowser(tmp_path)
    browser.show_details(load_run(next(tmp_path.glob("*.h5"))))
    text = browser.summary_view.toPlainText()
    assert "events            11" in text
    assert text.count("retry      instrument fault (retrying") == 4 and text.count(" pause      paused after") == 1
    browser.deleteLater()
