"""The Qt window, offscreen (pytest-qt): twin run from the window (trained in a worker process), live plots,
pause / resume / stop, browser (overlay, resume, re-run), bad experiment files, a responsive event loop,
closing mid-run, screenshots of experiments and of past run files, the form per chip type and rule."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import tomllib
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from PyQt6 import QtCore, QtWidgets  # noqa: E402

import labtrain as lt  # noqa: E402
from labtrain.config import experiment_from_text  # noqa: E402
from labtrain.gui.buffers import XYBuffer  # noqa: E402
from labtrain.gui.main_window import MainWindow  # noqa: E402
from labtrain.gui.toml_edit import set_toml_value  # noqa: E402
from labtrain.training import launch  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NO_HARDWARE = (False, "test machine: nidaqmx not installed")


@pytest.fixture
def window(qtbot, tmp_path):
    # no spare worker process at the start (each spawn costs seconds of CPU); the twin test switches it on
    win = MainWindow(hardware=NO_HARDWARE, runs_dir=tmp_path / "runs", prestart_worker=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.close()  # stops a run still going and waits for its worker process


def _visible_errors() -> list[str]:
    return [w.text() for w in QtWidgets.QApplication.topLevelWidgets()
            if isinstance(w, QtWidgets.QMessageBox) and w.isVisible()]


# ------------------------------------------------------------------ no Qt needed
def test_importing_labtrain_and_gui_does_not_import_qt():
    code = ("import sys, labtrain, labtrain.gui, labtrain.cli; labtrain.cli.build_parser(); "
            "assert 'PyQt6' not in sys.modules and 'pyqtgraph' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_buffer_grows_and_views_stay_valid():
    b = XYBuffer(16)
    b.append(0, 1.0)
    first = b.y
    b.extend(np.arange(1, 1000), np.ones(999) * 2)
    assert len(b) == 1000 and b.x[-1] == 999 and first.tolist() == [1.0]
    assert b.last == (999.0, 2.0)


def test_set_toml_value_keeps_comments_and_layout():
    text = "# my experiment\n[run]\nepochs = 200  # long\n\n[task]\nname = \"iris\"\n"
    out = set_toml_value(text, "run", "epochs", 5)
    assert "epochs = 5  # long" in out and out.startswith("# my experiment")
    out = set_toml_value(out, "run", "seed", 3)
    assert out.index("seed = 3") < out.index("[task]")
    out = set_toml_value(out, "backend", "kind", "twin")
    assert out.rstrip().endswith('[backend]\nkind = "twin"')
    assert experiment_from_text(out)["run"]["epochs"] == 5


# ------------------------------------------------------------------ the window
def _not_here(*args, **kwargs):
    raise AssertionError("the window's process built a chip")


def test_twin_run_from_window_live_plots_pause_resume_stop_browse_close(window, qtbot, tmp_path, monkeypatch):
    win = window
    assert win.open_path(EXAMPLES / "iris_cl.toml")
    hw = win.panel.backend_box.model().item(2)
    assert not hw.isEnabled() and "nidaqmx" in hw.toolTip()      # hardware greyed out, reason shown
    win.panel.backend_box.setCurrentText("twin")                  # as a user would
    win.panel.set_value("run", "epochs", 60)                      # a form change (an override)
    win.panel.set_value("run", "out_dir", str(tmp_path / "runs"))
    assert win.panel.valid, win.panel.message
    # the window's process never builds (or trains) the chip: the worker process does
    monkeypatch.setattr(launch, "build_setup", _not_here)
    win.worker_hooks = {"probe": "gui_hooks:dc_levels"}
    win.prestart_worker = True  # after a run, the next run's worker process starts (and imports) at once

    ticks = {"n": 0, "times": []}

    def tick():
        ticks["n"] += 1
        ticks["times"].append(time.perf_counter())

    heartbeat = QtCore.QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(tick)
    heartbeat.start()

    win.run_action.trigger()
    batch = win.loss_plot.curves["batch"]
    qtbot.waitUntil(lambda: len(batch) >= 3, timeout=30_000)
    assert win.info is not None and win.info.backend == "twin"
    assert win.info.pid not in (0, os.getpid()) and win.worker.pid == win.info.pid
    n = len(batch)
    qtbot.waitUntil(lambda: len(batch) > n, timeout=10_000)           # the curve grows
    qtbot.waitUntil(lambda: len(win.fidelity_plot.curves["cosine"]) > 0 and bool(win.scope._ai_items), timeout=10_000)
    assert len(win.loss_plot.curves["test"]) >= 1                      # evaluation before training
    x, y = win.outputs_plot.scatters[0].getData()
    assert len(x) == 105                                               # the whole training batch
    assert win.parameter_map.mode == "network" and win.parameter_map.values is not None
    assert all(len(i.getData()[0]) for i in win.scope._ao_items)
    cos = win.fidelity_plot.curves["cosine"].buffer.y
    assert np.all((cos > 0.5) & (cos <= 1.0))                          # CL vs exact gradient, twin noise

    # pause: status says paused, the step counter stops, the chip waits at 0 V
    win.pause_action.trigger()
    qtbot.waitUntil(lambda: win.state == "paused", timeout=10_000)
    assert "paused" in win.state_label.text()
    n_paused, step_paused = len(batch), win.step
    qtbot.wait(400)
    win.drain()
    assert len(batch) == n_paused and win.step == step_paused
    qtbot.waitUntil(lambda: any(m == "paused" for m, _ in win.probes), timeout=10_000)
    levels = dict(win.probes)["paused"]                                  # read in the worker process
    assert levels and all(v == 0.0 for v in levels.values()), levels
    assert f"step {step_paused + 1} / {win.info.total_steps}" in win.step_label.text()

    win.resume_action.trigger()
    qtbot.waitUntil(lambda: len(batch) > n_paused + 1, timeout=10_000)
    assert win.state == "running"

    with qtbot.waitSignal(win.run_finished, timeout=30_000):
        win.stop_action.trigger()
    heartbeat.stop()
    assert win.result.status == "stopped" and win.state == "stopped"
    levels = dict(win.probes)["ended"]
    assert levels and all(v == 0.0 for v in levels.values()), levels   # safe state after stop
    steps_done = win.result.steps_done
    assert 3 < steps_done < win.info.total_steps

    # the event loop kept turning while the worker trained: a 20 ms timer kept ticking between the first
    # and the last step (behaviour, not a rate: the frame rate is measured by benchmarks/bench_gui.py)
    assert ticks["n"] >= 3, ticks["n"]

    # reopen the run file in the browser: its curve appears
    path = Path(win.info.path)
    assert path.is_file() and path.parent == tmp_path / "runs"
    rows = [r["path"] for r in win.browser._rows]
    assert str(path) in rows
    win.clear_overlays()
    run = win.browser.open_run(path)
    assert run is not None and run.summary["status"] == "stopped"
    overlays = win.loss_plot.overlay_items()
    assert overlays and len(overlays[0].getData()[0]) == steps_done
    assert win.browser.snapshot_tree.topLevelItemCount() > 0           # its snapshot is shown
    assert "iris" in win.browser.experiment_view.toPlainText()

    # resume it from the browser: continues where it stopped, history pre-filled, in the spare worker process
    spare = win._spare.process.pid
    assert win.resume_run_file(str(path)) and win.worker.pid == spare
    qtbot.waitUntil(lambda: len(batch) > steps_done + 1, timeout=30_000)
    assert win.info.next_step == steps_done
    with qtbot.waitSignal(win.run_finished, timeout=30_000):
        win.stop_action.trigger()
    assert win.result.status == "stopped" and win.result.steps_done > steps_done

    # re-run with the same settings: a new run file with the same experiment and overrides
    first = win.browser.open_run(path, overlay=False)
    assert win.rerun(first)
    qtbot.waitUntil(lambda: win.info is not None and len(batch) >= 1, timeout=30_000)
    assert not _visible_errors()

    # close the window mid-run: the worker stops at a step boundary, chip safe, run file saved, status stopped
    worker = win.worker
    win.close()
    assert not worker.alive and worker.process.exitcode == 0 and worker.result.status == "stopped"
    assert dict(win.probes)["ended"] and all(v == 0.0 for v in dict(win.probes)["ended"].values())
    second = Path(worker.result.path)
    assert second != path
    with lt.RunStore.open(second) as store:
        assert store.overrides["run"]["epochs"] == 60 and store.overrides["backend"]["kind"] == "twin"
        assert store.attrs["status"] == "stopped" and len(store.table("steps")["step"]) == worker.result.steps_done
    assert win._spare is None  # a closing window starts no spare and leaves none behind


def test_bad_experiment_file_shows_the_problem_and_starts_nothing(window, qtbot, tmp_path):
    win = window
    runs = tmp_path / "runs"
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[learning]\nrule = "cl"\nbetta_s = 1e-6\n\n[run]\nout_dir = "{runs}"\n')
    win.open_path(bad)
    assert not win.panel.valid
    assert "unknown key 'betta_s'" in win.panel.status.text() and "beta_s" in win.panel.status.text()
    assert not win.run_action.isEnabled()
    assert win.start_run() is False                                   # even if called directly
    assert win.worker is None
    assert "betta_s" in win.errors[-1][1] and "bad.toml" in win.errors[-1][1]
    assert any("betta_s" in text for text in _visible_errors())      # a dialog says what is wrong
    assert "betta_s" in win.log_view.toPlainText()                   # and the log
    assert not runs.exists()

    # a problem found only when building (terminal out of range): shown, nothing written
    bad.write_text(f'[chip]\ntopology = "lattice"\nrows = 4\ncols = 4\ninputs = [99]\n\n[run]\nout_dir = "{runs}"\n')
    win.open_path(bad)
    assert win.panel.valid                                            # the schema is satisfied
    assert win.start_run()
    qtbot.waitUntil(lambda: win.worker is not None and not win.running, timeout=20_000)
    win.drain()
    assert "node 99" in win.errors[-1][1] and win.state == "failed"
    assert win.result is None and not runs.exists()
    assert win.run_action.isEnabled()                                 # ready for the next try


def test_a_failing_run_shows_a_dialog_not_a_crash(window, qtbot, tmp_path):
    win = window
    win.worker_hooks = {"child_init": "gui_hooks:fail_in_every_step"}   # every step raises, in the worker
    win.open_path(EXAMPLES / "iris_cl.toml")
    win.panel.set_value("run", "out_dir", str(tmp_path / "runs"))
    with qtbot.waitSignal(win.run_finished, timeout=30_000):
        assert win.start_run()
    assert win.state == "failed"
    assert any("simulated failure" in text for text in _visible_errors())
    assert "simulated failure" in win.log_view.toPlainText()
    with lt.RunStore.open(win.info.path) as store:
        assert store.attrs["status"] == "failed"


def test_form_changes_are_overrides_until_written_into_the_text(window, tmp_path):
    panel = window.panel
    src = tmp_path / "exp.toml"
    src.write_text((EXAMPLES / "regression_analytic.toml").read_text())
    panel.open_file(src)
    w = panel._widgets[("learning", "learning_rate")]
    w.setText("0.5")
    w.editingFinished.emit()
    assert panel.overrides() == {"learning": {"learning_rate": 0.5}}
    assert panel.experiment()["learning"]["learning_rate"] == 0.5
    w.setText("not a number")
    w.editingFinished.emit()
    assert not panel.valid and "learning_rate" in panel.message
    w.setText("0.25")
    w.editingFinished.emit()
    assert panel.valid
    comments = [line for line in src.read_text().splitlines() if line.startswith("#")]
    assert panel.save()
    saved = src.read_text()
    assert "learning_rate = 0.25" in saved and all(c in saved for c in comments)
    assert panel.overrides() == {} and lt.load_experiment(src)["learning"]["learning_rate"] == 0.25


def test_parameter_map_views(qtbot):
    from labtrain.gui.parameter_map import ParameterMap

    m = ParameterMap()
    qtbot.addWidget(m)
    lat = lt.lattice(6, 7, n_inputs=2, n_outputs=1)
    g = np.geomspace(1e-5, 1e-3, lat.n_edges)
    m.configure(lat, lat.g_min_s, lat.g_max_s, "S", "conductance", g)
    assert m.mode == "heat map"
    img = m._image.image
    assert img.shape == (11, 13) and np.isfinite(img).sum() == lat.n_edges   # one pixel per edge midpoint
    m.mode_box.setCurrentText("network")
    assert m.mode == "network" and sum(len(i.getData()[0]) for i in m._edge_items) == 2 * lat.n_edges
    rnd = lt.random_graph(30, 60, n_inputs=2, n_outputs=1, seed=1)
    m.configure(rnd, rnd.g_min_s, rnd.g_max_s, "S", "conductance", np.full(rnd.n_edges, 1e-4))
    assert m.mode == "network" and not m.mode_box.model().item(1).isEnabled()  # no heat map off a lattice
    # parameters that are not edges (e.g. DNPU electrode voltages): bars
    m.configure(None, -np.ones(7), np.ones(7), "V", "control voltage", np.linspace(-1, 1, 7))
    assert m.mode == "bars"
    m.set_parameters(np.zeros(7), step=3)
    assert "after step 4" in m.title.text()

    # layered networks: one heat map per weight matrix instead of 2,000 bars
    blocks = ({"name": "W_f[0]", "start": 0, "stop": 12, "shape": (3, 4)},
              {"name": "W_f[1]", "start": 12, "stop": 18, "shape": (2, 3)}, {"name": "b", "start": 18, "stop": 23})
    w = np.arange(23.0) - 11
    m.configure(None, -5 * np.ones(23), 5 * np.ones(23), "1", "coupling", w, blocks=blocks)
    assert m.mode == "layers" and m.mode_box.model().item(2).isEnabled()
    images = [image.image for image, _ in m._layer_images]
    assert [i.shape for i in images] == [(3, 4), (2, 3), (1, 5)]
    assert np.array_equal(images[0], w[:12].reshape(3, 4)) and np.array_equal(images[2], w[18:][None])
    m.set_parameters(2 * w, step=9)
    assert np.array_equal(m._layer_images[1][0].image, 2 * w[12:18].reshape(2, 3))
    assert m.colorbar.levels() == (-50.0, 50.0)                 # +-(largest |weight|, rounded up to 1-2-5)
    m.mode_box.setCurrentText("bars")
    assert m.mode == "bars" and m._layers is None and m.plot.isVisible()
    big = lt.layered([8, 30, 3])                                # 9 x 30 + 30 x 3 edges: matrices by default
    m.configure(big, big.g_min_s, big.g_max_s, "S", "conductance", np.geomspace(1e-5, 1e-3, big.n_edges))
    assert m.mode == "layers" and [img.image.shape for img, _ in m._layer_images] == [(30, 9), (3, 30)]
    first = m._layer_images[0]
    edge = first[1][4, 2]                                       # the edge from input node 2 to hidden node 4
    assert set(big.edges[edge]) == {2, 9 + 4}
    small = lt.layered([2, 4, 1])                               # a dozen edges: the drawing, matrices on offer
    m.configure(small, small.g_min_s, small.g_max_s, "S", "conductance", np.full(small.n_edges, 1e-4))
    assert m.mode == "network" and m.mode_box.model().item(2).isEnabled()
    # pots on some edges only (a diode network): those edges coloured, the diodes drawn as fixed elements
    pots = np.array([0, 2, 3, 7])
    m.configure(small, small.g_min_s[pots], small.g_max_s[pots], "S", "conductance", np.geomspace(1e-5, 1e-3, 4),
                edge_parameters=small.n_edges, parameter_edges=pots)
    assert m.mode == "network" and not m.mode_box.model().item(2).isEnabled()   # no per-edge matrices
    drawn = lambda: sum(0 if i.getData()[0] is None else len(i.getData()[0]) for i in m._edge_items)  # noqa: E731
    assert drawn() == 2 * len(pots)
    assert f"fixed elements ({small.n_edges - len(pots)})" in m.key.text()
    m.set_parameters(np.full(4, 1e-4), step=2)
    assert "after step 3" in m.title.text() and drawn() == 2 * len(pots)
    m.configure(small, -np.ones(4), np.ones(4), "mixed", "parameters", np.zeros(4), parameter_edges=pots)
    assert m.mode == "bars"                                     # conductances and gate voltages: bars


def test_titles_and_keys_sit_outside_the_plots(window, qtbot):
    """No legend over the data, no title cut or overlapped: titles above, keys below, the parameter map's
    header on its own line (a long title wraps rather than running into the view selector)."""
    win = window
    win.resize(1100, 700)
    lat = lt.lattice(6, 7, n_inputs=2, n_outputs=1)
    win.parameter_map.configure(lat, lat.g_min_s, lat.g_max_s, "S", "conductance", np.full(lat.n_edges, 1e-4))
    win.outputs_plot.show_batch(np.ones((50, 3)), np.ones((50, 3)), 1234)
    qtbot.wait(50)
    for plot in (win.loss_plot, win.accuracy_plot, win.outputs_plot):
        view, title, key = plot.view.geometry(), plot.title.geometry(), plot.key.geometry()
        assert title.bottom() < view.top() and key.top() > view.bottom(), plot.title.text()
        assert plot.title.heightForWidth(plot.title.width()) <= plot.title.height()    # the whole title shows
    assert "1235" in win.outputs_plot.title.text()
    assert set(win.loss_plot.key_names()) >= {"batch (train step)", "train set", "test set"}
    pm = win.parameter_map
    assert pm.title.geometry().bottom() < pm.glw.geometry().top()
    assert not pm.title.geometry().intersects(pm.mode_box.geometry())
    assert pm.title.heightForWidth(pm.title.width()) <= pm.title.height()
    assert "inputs (2)" in pm.key.text() and "outputs (1)" in pm.key.text()


def test_screenshot_of_an_experiment_and_of_a_past_run_file(qapp, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "shot.png"
    rc = lt_cli_main(["gui", "--screenshot", str(png), str(EXAMPLES / "iris_cl.toml"), "--backend", "twin",
                      "--steps", "4", "--size", "1200x800", "--out", str(tmp_path / "runs")])
    assert rc == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    runs = list((tmp_path / "runs").glob("*.h5"))
    assert len(runs) == 1
    assert not multiprocessing.active_children()  # the worker process has exited
    capsys.readouterr()

    # a past run file: shown as it ended, nothing run (no worker process, no new run file)
    shot = tmp_path / "past.png"
    assert lt_cli_main(["gui", "--screenshot", str(shot), str(runs[0])]) == 0
    out, err = capsys.readouterr()
    assert "nothing was run" in out and "4 of" in out and not err, (out, err)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(shot.read_bytes()) > 20_000
    assert list((tmp_path / "runs").glob("*.h5")) == runs and not multiprocessing.active_children()

    # arguments are checked before anything runs: one line, exit 2, nothing written
    for argv, says in (([str(tmp_path), str(runs[0])], "is a folder"),
                       ([str(tmp_path / "x.png"), str(runs[0]), "--steps", "3"], "--steps does not apply"),
                       ([str(tmp_path / "x.png"), str(tmp_path / "nothere.toml")], "no such file"),
                       ([str(tmp_path / "x.jpg"), str(EXAMPLES / "iris_cl.toml")], "*.png"),
                       ([str(tmp_path / "no" / "x.png"), str(EXAMPLES / "iris_cl.toml")], "does not exist"),
                       ([str(tmp_path / "x.png"), str(png)], "expected an experiment file")):
        assert lt_cli_main(["gui", "--screenshot", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists() and list((tmp_path / "runs").glob("*.h5")) == runs


def lt_cli_main(argv):
    from labtrain.cli import main

    return main(argv)


def test_plot_refresh_benchmark_measures_a_rate(qapp):
    """The benchmark behind benchmarks/bench_gui.py runs and reports a rate (its value is the benchmark's job:
    a test never asserts wall-clock speed)."""
    from guilib import plot_refresh_fps

    fps = plot_refresh_fps(n_points=10_000, n_curves=2, frames=3)
    assert isinstance(fps, float) and math.isfinite(fps)  # frames per second of a run that drew frames


def test_gui_command_without_qt_says_what_to_install():
    code = ("import sys; sys.modules['PyQt6'] = None; from labtrain.cli import main; "
            "sys.exit(main(['gui', 'examples/iris_cl.toml']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=EXAMPLES.parent)
    assert r.returncode == 2
    assert "pip install -e '.[gui]' in the labtrain checkout" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["dnpu", "nonreciprocal"])
def test_fidelity_probe_compares_each_step_with_the_exact_gradient_at_its_parameters(kind):
    """The live fidelity plot works beyond resistor networks: the exact gradient at the parameters the
    step measured at (before its update), so an exact estimate has cosine 1 and a wrong one does not."""
    from labtrain.gui.worker import FidelityProbe

    rng = np.random.default_rng(0)
    if kind == "dnpu":
        from labtrain.kinds.dnpu.chip import DNPUChip
        from labtrain.protocols.homodyne import dnpu_exact_gradient
        from labtrain.kinds.dnpu.model import HoppingDNPU

        chip = DNPUChip(HoppingDNPU())
        x = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])
        t = np.array([[-1.2], [-0.4], [-0.4], [-1.2]])
        exact_fn = dnpu_exact_gradient
    else:
        from labtrain.kinds.nonreciprocal.chip import NonReciprocalChip

        chip = NonReciprocalChip((4, 5, 2), seed=1)
        x, t = rng.uniform(0, 1, (6, 4)), rng.uniform(0, 1, (6, 2))
        exact_fn = lambda c, xx, tt: c.exact_gradient(xx, tt)  # noqa: E731
    probe = FidelityProbe(chip, budget=1e9)
    assert probe.available, probe.reason
    probe.reset()
    exact = exact_fn(chip, x, t)
    moved = chip.set_parameters(chip.get_parameters() - 0.05 * np.sign(exact) * chip.parameter_spec.span)
    cos, _ = probe.on_step({"parameters": moved, "gradient": exact, "inputs": x, "targets_v": t})
    assert cos == pytest.approx(1.0, abs=1e-9)
    wrong = rng.normal(size=exact.shape)
    cos, _ = probe.on_step({"parameters": moved, "gradient": wrong, "inputs": x, "targets_v": t})
    assert cos < 0.9


def test_form_shows_the_keys_of_the_chip_type_and_rule(qtbot, tmp_path):
    from labtrain.config import SCHEMA, chip_kinds, kind_rules
    from labtrain.gui.experiment_panel import ExperimentPanel

    # every rule tag names a rule of a kind the key applies to (a typo would hide a key for good)
    for section, fields in SCHEMA.items():
        for key, spec in fields.items():
            if spec.rules:
                kinds = spec.types or tuple(chip_kinds())
                known = {r for k in kinds for r in kind_rules(k)}
                assert set(spec.rules) <= known, (section, key, spec.rules, known)

    panel = ExperimentPanel(hardware=NO_HARDWARE)
    qtbot.addWidget(panel)
    panel.open_file(EXAMPLES / "iris_cl.toml")                       # resistor network, rule cl
    learning = panel.shown_keys("learning")
    assert "eta" in learning and "learning_rate" in learning
    assert not {"gamma_a_per_v", "fp_mode", "window_s", "beta_s", "amplitudes_v", "beta"} & set(learning)
    assert "hidden_layers" in panel.shown_keys("chip") and "model" not in panel.shown_keys("chip")
    rule_box = panel._widgets[("learning", "rule")]
    assert [rule_box.itemText(i) for i in range(rule_box.count())][1:] == ["cl", "analytic", "ep", "cl_clocked",
                                                                           "fp"]
    rule_box.setCurrentText("fp")                                     # as a user would: an override
    assert panel.overrides() == {"learning": {"rule": "fp"}} and panel.valid, panel.message
    learning = panel.shown_keys("learning")
    assert {"gamma_a_per_v", "fp_mode", "window_s"} <= set(learning) and "eta" in learning  # eta: in the file
    assert not panel._labels[("learning", "eta")].isEnabled()         # ... greyed: fp does not read it
    rule_box.setCurrentText("ep")
    assert "beta_s" in panel.shown_keys("learning") and "gamma_a_per_v" not in panel.shown_keys("learning")

    panel.open_file(EXAMPLES / "dnpu_xor_hge.toml")
    assert {"amplitudes_v", "hge_mode", "window_s"} <= set(panel.shown_keys("learning"))
    assert "eta" not in panel.shown_keys("learning") and "hidden_layers" not in panel.shown_keys("chip")
    panel.open_file(EXAMPLES / "xor_xy_lattice.toml")
    assert {"beta", "cost"} <= set(panel.shown_keys("learning"))
    panel.set_value("learning", "rule", "xy_implicit")                # the file sets beta: shown, greyed
    assert not panel.valid and "max_shift_rad" in panel.message       # (the xy_ep guard: the file says why)
    assert panel._labels[("learning", "cost")].isEnabled() and not panel._labels[("learning", "beta")].isEnabled()


def test_write_into_text_keeps_a_multiline_array_and_dotted_keys_valid(qtbot, tmp_path):
    from labtrain.gui.experiment_panel import ExperimentPanel

    panel = ExperimentPanel(hardware=NO_HARDWARE)
    qtbot.addWidget(panel)
    src = tmp_path / "dnpu.toml"
    text = ('# hand-written\nchip.type = "dnpu"\n\n[learning]\nrule = "hge"\namplitudes_v = [\n    0.02,  # c0\n'
            '    0.03,\n    0.03,\n    0.03,\n    0.03,\n]\n\n[run]\nepochs = 2  # short\n')
    src.write_text(text)
    assert panel.open_file(src) and panel.valid, panel.message
    panel.set_value("learning", "amplitudes_v", [0.04, 0.04, 0.04, 0.04, 0.04])
    panel.set_value("chip", "model_seed", 7)
    panel.set_value("run", "epochs", 3)
    assert panel.write_overrides_into_text() and panel.valid, panel.message
    out = panel.editor.toPlainText()
    assert out.startswith('# hand-written\nchip.type = "dnpu"\nchip.model_seed = 7\n')
    assert "amplitudes_v = [\n    0.04,\n" in out and "epochs = 3  # short" in out
    data = tomllib.loads(out)
    assert data["learning"]["amplitudes_v"] == [0.04] * 5 and data["chip"] == {"type": "dnpu", "model_seed": 7}
    assert panel.overrides() == {}


def test_browser_opens_a_sweep_folder_members_with_overrides_and_overlays_an_axis(window, tmp_path):
    """A `labtrain sweep` folder: one row per member with its swept values and overrides; "Overlay axis"
    draws the members that differ from the selected one only along the chosen axis, labelled by value."""
    from labtrain.training.sweep import load_sweep, prepare_folder, run_sweep

    axes = {"learning.learning_rate": [0.02, 0.04], "run.seed": [0, 1], "run.epochs": [3], "run.eval_every": [1]}
    folder, _ = prepare_folder(load_sweep(EXAMPLES / "xor_xy_all_to_all.toml", axes), tmp_path / "sw")
    assert run_sweep(folder, cluster="serial", quiet=True).ok
    win = window
    win.browser.set_directory(folder)
    headers = [win.browser.table.horizontalHeaderItem(j).text() for j in range(win.browser.table.columnCount())]
    assert headers[:3] == ["member", "learning_rate", "seed"] and headers[-1] == "overrides"
    rows = win.browser._rows
    assert [r["member"] for r in rows] == [f"xor_xy_all_to_all-m00{i}" for i in range(4)]
    assert all(r["status"] == "completed" and Path(r["path"]).is_file() for r in rows)
    cell = lambda i, name: win.browser.table.item(i, headers.index(name)).text()  # noqa: E731
    assert [cell(i, "learning_rate") for i in range(4)] == ["0.02", "0.02", "0.04", "0.04"]
    assert cell(3, "overrides") == "learning.learning_rate=0.04 run.epochs=3 run.eval_every=1 run.seed=1"
    assert not win.browser.axis_box.isHidden() and win.browser.axis_box.count() == 2

    win.clear_overlays()
    win.browser.table.selectRow(1)                       # learning_rate 0.02, seed 1
    shown = win.browser.overlay_axis("learning_rate")
    assert [r.path.name.split("-")[1] for r in shown] == ["m001", "m003"]  # seed 1 at both rates
    assert [r.label.split()[-1] for r in shown] == ["learning_rate=0.02", "learning_rate=0.04"]
    names = win.loss_plot.key_names()
    assert any("learning_rate=0.04: test" in n for n in names) and len(win.accuracy_plot.overlay_items()) == 2
    assert len(win.browser.overlay_axis("seed")) == 2    # the same rate, both seeds

    # a sweep folder that has not run: members listed as pending, nothing to overlay
    pending, _ = prepare_folder(load_sweep(EXAMPLES / "xor_xy_all_to_all.toml", {"run.seed": [0, 1]}), tmp_path / "p")
    win.browser.set_directory(pending)
    assert [r["status"] for r in win.browser._rows] == ["pending", "pending"]
    assert win.browser.overlay_axis("seed") == [] and not win.browser.axis_button.isEnabled()
    win.browser.set_directory(tmp_path / "runs")        # an ordinary folder again: the plain columns
    assert win.browser.axis_box.isHidden() and win.browser.table.horizontalHeaderItem(0).text() == "name"
