"""The main window: experiment and run-browser docks, live plots, run controls, status bar, log.

The run lives in a :class:`~labtrain.gui.worker.RunWorker` *process*: this
process only draws.  A QTimer drains the worker's queue (at most ~15 ms of
work per tick, so a flood of events never freezes the window) and redraws only
what changed.  Run / Pause / Resume / Stop go to the worker through its control
pipe and map onto the run loop's step-boundary semantics: pause and stop take
effect when the step in flight ends, and the chip waits (pause) or ends (stop)
in its safe state.  Closing the window mid-run stops the run the same way and
waits for the worker to save and exit.
"""

from __future__ import annotations

import html
import math
import queue
import time
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from labtrain.config import ConfigError
from labtrain.gui.experiment_panel import ExperimentPanel
from labtrain.gui.parameter_map import ParameterMap
from labtrain.gui.plots import COLORS, AccuracyPlot, FidelityPlot, LossPlot, OutputsPlot, ScopePlot, configure_pyqtgraph
from labtrain.gui.run_browser import PastRun, RunBrowser, describe_past_run
from labtrain.gui.worker import RunInfo, RunWorker, WorkerProcess

__all__ = ["MainWindow"]

_STATE_COLORS = {"idle": "#606060", "starting": "#a06000", "running": "#107010", "pausing": "#a06000",
                 "paused": "#a06000", "stopping": "#a06000", "completed": "#0050a0", "stopped": "#606060",
                 "failed": "#b00000", "crashed": "#b00000"}


def _hms(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class _Panel(QtWidgets.QFrame):
    """A plot in a light frame."""

    def __init__(self, widget: QtWidgets.QWidget) -> None:
        super().__init__()
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(widget)
        self.widget = widget


class MainWindow(QtWidgets.QMainWindow):
    """labtrain's live window."""

    #: emitted when a run's worker has finished (after its last queue item)
    run_finished = QtCore.pyqtSignal(object)
    #: what runs an experiment (benchmarks/guilib.py swaps in the old in-process thread as a baseline)
    worker_class: type[RunWorker] = RunWorker

    def __init__(self, *, hardware: tuple[bool, str] | None = None, runs_dir: str | Path = "runs",
                 refresh_hz: float = 30.0, frame_hz: float = 10.0, prestart_worker: bool = True) -> None:
        """``prestart_worker``: keep a worker process started and waiting (its imports take seconds), so
        that Run starts training at once."""
        super().__init__()
        configure_pyqtgraph()
        self.setWindowTitle("labtrain")
        self.worker: RunWorker | None = None
        self.prestart_worker = prestart_worker
        self._closing = False
        self._spare: WorkerProcess | None = WorkerProcess() if prestart_worker else None
        self.info: RunInfo | None = None
        self.state = "idle"
        self.step = -1
        self.epoch = -1
        self.last_loss = float("nan")
        self.last_eval: dict = {}
        self.errors: list[tuple[str, str]] = []
        #: (moment, value) of every ``probe`` message of the worker (diagnostics and tests)
        self.probes: list[tuple[str, object]] = []
        #: hooks handed to every worker process (``child_init`` / ``probe``: "module:function", see
        #: :mod:`labtrain.gui.worker`)
        self.worker_hooks: dict[str, str] = {}
        self._dialogs: list[QtWidgets.QMessageBox] = []
        self._frame: dict | None = None
        self._waveforms: dict | None = None  # the last acquisition's AO/AI waveforms shown by the scope
        self._next_draw: dict[str, float] = {}  # earliest next redraw of each view (perf_counter)
        self._views_dirty: set[str] = set()     # heavy views with a newer frame than they show
        #: redraw curves at most refresh_hz times a second, the heavier views (outputs, parameter map,
        #: scope) at most frame_hz (the run itself is in another process: drawing never slows it)
        self.curve_interval_s = 1.0 / refresh_hz
        self.frame_interval_s = 1.0 / frame_hz
        self.frame_hz = frame_hz
        self._t_start: float | None = None  # wall clock (the worker's event times)
        self._t_pause: float | None = None
        self._t_end: float | None = None
        self._paused_s = 0.0
        self._steps_at_start = 0
        self._overlay_count = 0
        self.result = None

        # ---- plots (central)
        self.loss_plot = LossPlot()
        self.accuracy_plot = AccuracyPlot()
        self.fidelity_plot = FidelityPlot()
        self.outputs_plot = OutputsPlot()
        self.parameter_map = ParameterMap()
        self.scope = ScopePlot()
        self.accuracy_plot.plot_item.setXLink(self.loss_plot.plot_item)
        self.panels: dict[str, _Panel] = {}
        top = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        for name, w, split in (("Loss", self.loss_plot, top), ("Accuracy", self.accuracy_plot, top),
                               ("Gradient fidelity", self.fidelity_plot, top),
                               ("Outputs vs targets", self.outputs_plot, bottom),
                               ("Parameter map", self.parameter_map, bottom), ("Scope", self.scope, bottom)):
            panel = _Panel(w)
            self.panels[name] = panel
            split.addWidget(panel)
        top.setSizes([460, 300, 300])
        bottom.setSizes([330, 430, 400])
        central = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        central.addWidget(top)
        central.addWidget(bottom)
        central.setSizes([450, 550])
        self.setCentralWidget(central)
        self._reset_plots()

        # ---- docks
        self.setDockNestingEnabled(True)
        self.panel = ExperimentPanel(hardware=hardware)
        self.browser = RunBrowser(runs_dir)
        self.log_view = QtWidgets.QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(5000)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(9)
        self.log_view.setFont(font)
        self.experiment_dock = self._dock("Experiment", self.panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.browser_dock = self._dock("Runs", self.browser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.experiment_dock, self.browser_dock)
        self.experiment_dock.raise_()
        self.log_dock = self._dock("Log", self.log_view, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.experiment_dock], [420], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [110], QtCore.Qt.Orientation.Vertical)

        self.panel.validated.connect(self._validated)
        self.panel.file_changed.connect(self._file_changed)
        self.browser.overlay_requested.connect(self.overlay_run)
        self.browser.clear_overlays_requested.connect(self.clear_overlays)
        self.browser.rerun_requested.connect(self.rerun)
        self.browser.resume_requested.connect(self.resume_run_file)
        self.browser.error.connect(self.show_error)

        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self._set_state("idle")
        self._validated(self.panel.valid, self.panel.message)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(1, int(1000 / max(2 * refresh_hz, 20.0))))
        self.timer.timeout.connect(self.drain)
        self.timer.start()
        self.clock = QtCore.QTimer(self)
        self.clock.setInterval(500)
        self.clock.timeout.connect(self._update_clock)
        self.clock.start()
        self.browser.refresh()
        self.log("INFO", "ready — open an experiment file, choose a backend, press Run")

    # ------------------------------------------------------------ construction
    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        style = self.style()
        sp = QtWidgets.QStyle.StandardPixmap
        tb = QtWidgets.QToolBar("Run controls", self)
        tb.setObjectName("run controls")
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.setMovable(False)
        self.addToolBar(QtCore.Qt.ToolBarArea.TopToolBarArea, tb)

        def action(text, icon, tip, slot, shortcut=None):
            a = QtGui.QAction(style.standardIcon(icon), text, self)
            a.setToolTip(tip + (f" ({shortcut})" if shortcut else ""))
            if shortcut:
                a.setShortcut(QtGui.QKeySequence(shortcut))
            a.triggered.connect(slot)
            tb.addAction(a)
            return a

        self.open_action = action("Open…", sp.SP_DialogOpenButton, "Open an experiment file (.toml) or a run "
                                  "file (.h5)", self._ask_open, "Ctrl+O")
        tb.addSeparator()
        self.run_action = action("Run", sp.SP_MediaPlay, "Build the chip and start the experiment",
                                 lambda: self.start_run(), "Ctrl+R")
        self.pause_action = action("Pause", sp.SP_MediaPause, "Pause at the next step boundary; the chip waits "
                                   "in its safe state", self.pause_run, "Ctrl+P")
        self.resume_action = action("Resume", sp.SP_MediaSeekForward, "Continue a paused run", self.resume_run,
                                    "Ctrl+E")
        self.stop_action = action("Stop", sp.SP_MediaStop, "Stop at the next step boundary: saved, resumable, "
                                  "chip in its safe state", self.stop_run, "Ctrl+.")
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" stop after "))
        self.max_steps = QtWidgets.QSpinBox()
        self.max_steps.setRange(0, 1_000_000_000)
        self.max_steps.setSpecialValueText("all steps")
        self.max_steps.setSuffix(" steps")
        self.max_steps.setToolTip("Stop the run after this many steps (saved, resumable); 'all steps': run to "
                                  "the end of the experiment")
        tb.addWidget(self.max_steps)
        tb.addSeparator()
        self.validity_label = QtWidgets.QLabel()
        tb.addWidget(self.validity_label)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(self.open_action)
        save = m.addAction("Save experiment")
        save.setShortcut(QtGui.QKeySequence("Ctrl+S"))
        save.triggered.connect(lambda: self.panel.save())
        m.addSeparator()
        export = m.addAction("Save window as PNG…")
        export.triggered.connect(self._ask_screenshot)
        m.addSeparator()
        quit_ = m.addAction("Quit")
        quit_.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
        quit_.triggered.connect(self.close)
        m = bar.addMenu("&Run")
        for a in (self.run_action, self.pause_action, self.resume_action, self.stop_action):
            m.addAction(a)
        m = bar.addMenu("&View")
        for dock in (self.experiment_dock, self.browser_dock, self.log_dock):
            m.addAction(dock.toggleViewAction())
        m.addSeparator()
        for name, panel in self.panels.items():
            a = m.addAction(name)
            a.setCheckable(True)
            a.setChecked(True)
            a.toggled.connect(panel.setVisible)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QtWidgets.QLabel()
        self.step_label = QtWidgets.QLabel()
        self.epoch_label = QtWidgets.QLabel()
        self.elapsed_label = QtWidgets.QLabel()
        self.eta_label = QtWidgets.QLabel()
        self.loss_label = QtWidgets.QLabel()
        self.file_label = QtWidgets.QLabel()
        for w in (self.state_label, self.step_label, self.epoch_label, self.elapsed_label, self.eta_label,
                  self.loss_label):
            w.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(w)
        bar.addWidget(self.file_label, 1)
        self._update_status()

    # ------------------------------------------------------------ files
    def open_path(self, path: str | Path) -> bool:
        """Open an experiment file, or a run file: shown as it ended (or, while a run goes on, overlaid on it),
        its experiment loaded into the panel.  Nothing is started."""
        path = Path(path)
        if path.suffix == ".h5":
            if self.running:
                run = self.browser.open_run(path, overlay=True)
                if run is None:
                    return False
                self.panel.load_text(run.experiment_text, run.source or None, run.overrides)
                self.browser_dock.raise_()
                return True
            return self.show_run_file(path)
        return self.panel.open_file(path)

    def show_run_file(self, path: str | Path) -> bool:
        """Show a past run as it ended: its loss and accuracy curves, its final parameters where they live
        (network, heat map, layers or bars), its status; its experiment in the panel.  Nothing is run; False
        (and a message) if the file cannot be read."""
        if self.running:
            self.show_error("A run is in progress", "Stop the current run before showing another run file.")
            return False
        folder = Path(path).parent
        if folder.resolve() != self.browser.directory.resolve():
            self.browser.set_directory(folder)  # its neighbours listed beside it
        run = self.browser.open_run(path, overlay=False)
        if run is None:
            return False
        self.browser.show_details(run)
        self.browser_dock.raise_()
        self.panel.load_text(run.experiment_text, run.source or None, run.overrides)
        info, note = describe_past_run(run)
        self.clear_overlays()
        self._reset_plots()
        self.worker, self.result = None, None
        self.step, self.epoch, self.last_loss, self.last_eval = info.next_step - 1, -1, float("nan"), {}
        self._t_start = None
        self._setup(info, live=False)
        if len(info.history_loss):
            self.last_loss = float(info.history_loss[-1])
        self.parameter_map.set_parameters(info.initial_parameters, info.next_step - 1)
        for plot, text in ((self.outputs_plot, "outputs are not stored in the run file"),
                           (self.fidelity_plot, "not stored in the run file")):
            plot.set_note(text)
        self.scope.set_unavailable("waveforms are not stored in the run file")
        status = run.summary["status"]
        self.state = status if status in _STATE_COLORS else "stopped"
        self._update_actions()
        self._update_status()
        self.file_label.setText(f"run file: {run.path} ({status}, {info.next_step} of {info.total_steps} steps)")
        self.setWindowTitle(f"labtrain — {info.name} ({info.backend}, {info.rule}) — run file, {status}")
        self.log("INFO", f"showing run file {run.path}: {status}, {info.next_step} of {info.total_steps} steps"
                         + (f"; parameters drawn as bars: {note}" if note else ""))
        self.browser.select_path(run.path)
        return True

    def _ask_open(self) -> None:
        start = str(self.panel.path.parent) if self.panel.path else str(Path.cwd())
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open experiment or run file", start,
                                                        "Experiment or run files (*.toml *.h5);;All files (*)")
        if name:
            self.open_path(name)

    def _ask_screenshot(self) -> None:
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save window as PNG", "labtrain.png", "PNG (*.png)")
        if name:
            self.grab().save(name, "PNG")

    def _file_changed(self, path: str) -> None:
        self.setWindowTitle(f"labtrain — {Path(path).name}")

    def _validated(self, ok: bool, message: str) -> None:
        self.validity_label.setText("  experiment OK" if ok else "  experiment has errors (see the Experiment panel)")
        self.validity_label.setStyleSheet(f"color: {'#107010' if ok else '#b00000'};")
        self.validity_label.setToolTip(message)
        self._update_actions()

    # ------------------------------------------------------------ run control
    @property
    def running(self) -> bool:
        """A worker has been started and its last message (``finished``) not yet handled."""
        return self.worker is not None and not self.worker.done

    def start_run(self, stop_after_steps: int | None = None) -> bool:
        """Validate the experiment and start it in a worker process; False (and a message) if it cannot start."""
        if self.running:
            self.show_error("A run is in progress", "Stop the current run before starting another.")
            return False
        try:
            exp = self.panel.experiment()
        except ConfigError as exc:
            self.show_error("The experiment file has a problem — nothing was started", str(exc))
            return False
        if exp["backend"]["kind"] == "hardware" and not self.panel.hardware_ok:
            self.show_error("Hardware backend unavailable — nothing was started", self.panel.hardware_reason)
            return False
        if stop_after_steps is None and self.max_steps.value() > 0:
            stop_after_steps = self.max_steps.value()
        self._begin(self.worker_class(exp, stop_after_steps=stop_after_steps, max_frame_hz=2 * self.frame_hz,
                              **self.worker_hooks))
        self.log("INFO", f"starting {exp.name} on the {exp['backend']['kind']} backend"
                 + (f", stopping after {stop_after_steps} steps" if stop_after_steps else ""))
        return True

    def resume_run_file(self, path: str) -> bool:
        if self.running:
            self.show_error("A run is in progress", "Stop the current run before resuming another.")
            return False
        self._begin(self.worker_class(resume_path=path, max_frame_hz=2 * self.frame_hz, **self.worker_hooks))
        self.log("INFO", f"resuming {path}")
        return True

    def rerun(self, run: PastRun) -> bool:
        """Load a past run's experiment (text + overrides) and start it again."""
        self.panel.load_text(run.experiment_text, run.source or None, run.overrides)
        self.experiment_dock.raise_()
        return self.start_run()

    def _begin(self, worker: RunWorker) -> None:
        self._reset_plots()
        self.info, self.result = None, None
        self.step, self.epoch, self.last_loss, self.last_eval = -1, -1, float("nan"), {}
        self._t_start, self._t_pause, self._t_end, self._paused_s = None, None, None, 0.0
        if self.worker is not None:
            self.worker.close()
        self.worker = worker
        self.probes = []
        self._set_state("starting")
        spare, self._spare = self._spare, None
        worker.start(spare)

    def pause_run(self) -> None:
        if self.worker is not None and self.state == "running":
            self.worker.pause()
            self._set_state("pausing")

    def resume_run(self) -> None:
        if self.worker is not None and self.state in ("paused", "pausing"):
            self.worker.resume()
            if self.state == "pausing":
                self._set_state("running")

    def stop_run(self) -> None:
        if self.running:
            self.worker.stop()
            self._set_state("stopping")
            self.log("INFO", "stopping at the next step boundary (the chip goes to its safe state)")

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_actions()
        self._update_status()

    def _update_actions(self) -> None:
        s = self.state
        busy = s in ("starting", "running", "pausing", "paused", "stopping")
        self.run_action.setEnabled(not busy and self.panel.valid)
        self.pause_action.setEnabled(s == "running")
        self.resume_action.setEnabled(s in ("paused", "pausing"))
        self.stop_action.setEnabled(s in ("starting", "running", "pausing", "paused"))
        self.panel.setEnabled(not busy)

    # ------------------------------------------------------------ queue drain (GUI thread)
    def drain(self) -> None:
        """Handle queued run messages (at most ~15 ms of work), then redraw what changed."""
        worker = self.worker
        if worker is None:
            return
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.015:
            try:
                msg = worker.get_nowait()
            except queue.Empty:
                break
            try:
                self._handle(msg)
            except Exception as exc:  # a drawing bug must not take the window (or the run) down
                self.log("ERROR", f"display error on {msg.kind}: {type(exc).__name__}: {exc}")
        self.refresh_plots(force=self.state not in ("running", "starting"))

    def _handle(self, msg) -> None:
        kind = msg.kind
        if kind == "event":
            self._handle_event(msg.data, msg.step, msg.epoch, msg.time_s)
        elif kind == "frame":
            self._frame = msg.data
            self._views_dirty |= {"outputs", "parameters"}
            if "waveforms" in msg.data:  # frames without a new acquisition keep the scope's last waveforms
                self._waveforms = msg.data["waveforms"]
                self._views_dirty.add("scope")
        elif kind == "maps":
            self.parameter_map.set_maps(msg.data, msg.step)
        elif kind == "fidelity":
            self.fidelity_plot.curves["cosine"].append(msg.step + 1, msg.data[0])
        elif kind == "probe":
            self.probes.append(tuple(msg.data))
        elif kind == "setup":
            self._setup(msg.data)
        elif kind == "log":
            self.log(*msg.data)
        elif kind == "error":
            title, text, details = msg.data
            self.show_error(title, text, details)
            if self.state in ("starting",):
                self._set_state("failed")
        elif kind == "finished":
            self._finished(msg.data)

    def _setup(self, info: RunInfo, live: bool = True) -> None:
        self.info = info
        net = info.network
        self.parameter_map.configure(net, info.lower, info.upper, info.parameter_unit, info.parameter_name,
                                     info.initial_parameters, edge_parameters=info.edge_parameters or None,
                                     labels=info.parameter_labels, blocks=info.parameter_blocks,
                                     parameter_edges=info.parameter_edges)
        self.loss_plot.set_unit(info.loss_unit)
        self.outputs_plot.set_unit(info.output_unit)
        labels = [f"output {k}" + (f" (node {n})" if n is not None else "")
                  for k, n in enumerate(list(info.output_nodes) or [None] * info.n_outputs)]
        self.outputs_plot.set_outputs(labels)
        self.fidelity_plot.set_note("" if not info.fidelity else f"not available:\n{info.fidelity}")
        if info.backend == "ideal":
            self.scope.set_unavailable("ideal backend: no instrument waveforms\n(use the twin or hardware)")
        else:
            self.scope.clear()
        if info.decoder == "regression":
            self.accuracy_plot.set_note("regression task: no accuracy\n(see the loss)")
        else:
            self.accuracy_plot.set_note("")
        if len(info.history_loss):
            x = np.arange(1, len(info.history_loss) + 1)
            self.loss_plot.curves["batch"].extend(x, info.history_loss)
            for ev in info.history_evals:
                self._add_eval(ev)
        if not live:
            return
        if info.path is not None:
            self.browser.exclude.add(str(Path(info.path).resolve()))
            folder = Path(info.path).parent
            if folder.resolve() != self.browser.directory.resolve():
                self.browser.set_directory(folder)
        self.file_label.setText(f"run file: {info.path}" if info.path else "no run file")
        self.setWindowTitle(f"labtrain — {info.name} ({info.backend}, {info.rule})")
        caps = ", ".join(sorted(info.capabilities))
        self.log("INFO", f"built {info.name}: {net.name if net is not None else 'chip'}, "
                         f"{len(info.lower)} {info.parameter_name} parameters ({info.parameter_unit}); "
                         f"capabilities {caps}; {info.total_steps} steps; run file {info.path}; trained by worker "
                         f"process {info.pid}")

    def _handle_event(self, data: dict, step: int, epoch: int, at: float | None = None) -> None:
        """One run event; ``at``: when the worker sent it (wall clock), so elapsed times are the run's own
        even when the window handles a burst of events at once."""
        kind = data["kind"]
        now = time.time() if at is None else at
        if kind == "start":
            self._t_start, self._paused_s = now, 0.0
            self._steps_at_start = int(data.get("resumed_from", 0))
            self.step = self._steps_at_start - 1
            self._set_state("running")
        elif kind == "step":
            self.step, self.epoch = step, epoch
            self.last_loss = data["loss"]
            self.loss_plot.curves["batch"].append(step + 1, data["loss"])
        elif kind == "eval":
            self._add_eval(data)
        elif kind == "epoch":
            self.epoch = int(data.get("epoch", epoch))
        elif kind == "pause":
            self._t_pause = now
            self._set_state("paused")
            self.log("INFO", f"paused before step {step + 1}; the chip waits in its safe state")
        elif kind == "resume":
            if self._t_pause is not None:
                self._paused_s += now - self._t_pause
            self._t_pause = None
            self._set_state("running")
            self.log("INFO", f"resumed at step {step + 1}")
        elif kind == "stop":
            status, message = data.get("status", "stopped"), data.get("message", "")
            if self._t_pause is not None:
                self._paused_s += now - self._t_pause
                self._t_pause = None
            self._t_end = now
            self._set_state(status if status in _STATE_COLORS else "stopped")
            self.log("INFO" if status in ("completed", "stopped") else "ERROR",
                     f"run {status} after {step} steps" + (f": {message}" if message else "")
                     + "; chip in its safe state")
            if status == "paused":  # an instrument fault: saved, resumable
                self.show_error("The run paused on an instrument fault", message +
                                "\n\nThe chip is in its safe state; the run is saved. Use Resume in the Runs "
                                "panel to continue.")

    def _add_eval(self, data: dict) -> None:
        x = int(data["step"]) + 1
        self.last_eval = data
        self.loss_plot.curves["train"].append(x, data["train_loss"])
        self.loss_plot.curves["test"].append(x, data["test_loss"])
        for key in ("train", "test"):
            acc = data.get(f"{key}_accuracy", float("nan"))
            if acc is not None and math.isfinite(acc):
                self.accuracy_plot.curves[key].append(x, 100 * acc)

    def _finished(self, result) -> None:
        self.result = result
        if self.prestart_worker and self._spare is None and self.isVisible() and not self._closing:
            self._spare = WorkerProcess()  # the next run's interpreter imports while the user looks at this one
        if self.state not in ("completed", "stopped", "failed", "paused"):
            self._set_state("failed" if result is None else result.status)
        if self.state == "paused":  # ended paused by a fault: nothing running now
            self.state = "stopped"
        self._update_actions()
        info = self.info
        if info is not None and info.path is not None:
            key = str(Path(info.path).resolve())
            self.browser.exclude.discard(key)
            self.browser.forget(info.path)
        self.browser.refresh()
        if info is not None and info.path is not None:
            self.browser.select_path(info.path)
        self.run_finished.emit(result)

    #: share of the time one view may spend redrawing: a view whose redraw takes longer is redrawn less often
    #: (a slow or busy machine gets fewer redraws, never a stalled event loop)
    DRAW_BUDGET = {"curves": 0.15, "outputs": 0.08, "parameters": 0.08, "scope": 0.08}

    def refresh_plots(self, force: bool = True) -> None:
        """Redraw what changed: the curves at most ``refresh_hz`` times a second, the heavier views (outputs,
        parameter map, scope) at most ``frame_hz`` and one of them per call, each less often when its redraw
        costs more than its share of the time (:data:`DRAW_BUDGET`); ``force``: everything now."""
        now = time.perf_counter()
        if force or now >= self._next_draw.get("curves", 0.0):
            for plot in (self.loss_plot, self.accuracy_plot, self.fidelity_plot):
                if plot.refresh() and not force:
                    plot.view.viewport().repaint()  # paint now: its cost counts against the budget
            self._drawn("curves", now, self.curve_interval_s)
        if self._frame is None or not self._views_dirty:
            return
        due = sorted((self._next_draw.get(v, 0.0), v) for v in self._views_dirty)
        for when, view in due if force else due[:1]:
            if not force and when > now:
                break
            f = self._frame
            start = time.perf_counter()
            if view == "outputs":
                self.outputs_plot.show_batch(f["output_v"], f["targets_v"], f["step"])
                shown = self.outputs_plot.view
            elif view == "parameters":
                self.parameter_map.set_parameters(f["parameters"], f["step"])
                shown = self.parameter_map.glw
            else:
                self.scope.show_waveforms(self._waveforms)
                shown = self.scope.glw
            if not force:
                shown.viewport().repaint()
            self._views_dirty.discard(view)
            self._drawn(view, start, self.frame_interval_s)

    def _drawn(self, view: str, start: float, interval_s: float) -> None:
        """Schedule ``view``'s next redraw: after ``interval_s``, or longer if it cost more than its budget."""
        end = time.perf_counter()
        self._next_draw[view] = end + max(interval_s, (end - start) / self.DRAW_BUDGET[view])

    # ------------------------------------------------------------ overlays
    def overlay_run(self, run: PastRun) -> None:
        """Past run's curves on the loss and accuracy plots (dashed), and its final parameters in the log."""
        key = str(run.path)
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.remove_overlays(key)
        color = COLORS[(2 + self._overlay_count) % len(COLORS)]
        self._overlay_count += 1
        label = run.label
        if len(run.step):
            self.loss_plot.add_overlay(key, run.step + 1, run.loss, f"{label}: batch", color)
        ev = run.eval
        if len(ev.get("step", [])):
            x = ev["step"] + 1
            self.loss_plot.add_overlay(key, x, ev["test_loss"], f"{label}: test", color)
            acc = ev["test_accuracy"]
            if np.any(np.isfinite(acc)):
                self.accuracy_plot.add_overlay(key, x, 100 * acc, f"{label}: test", color)
        self.log("INFO", f"overlaid {run.path} ({run.summary['status']}, {run.summary['steps_done']} steps)")

    def clear_overlays(self) -> None:
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.remove_overlays()

    def _reset_plots(self) -> None:
        for plot in (self.loss_plot, self.accuracy_plot, self.fidelity_plot):
            plot.clear_curves()
        self.outputs_plot.clear_batch()
        self._frame = None
        self._waveforms = None
        self._views_dirty.clear()
        self.fidelity_plot.set_note("")
        self.accuracy_plot.set_note("")
        self.scope.set_unavailable("waveforms of the last acquisition\nappear here during twin/hardware runs")

    # ------------------------------------------------------------ status bar
    def _elapsed(self) -> float | None:
        if self._t_start is None:
            return None
        end = self._t_end if self.state not in ("running", "paused", "pausing", "stopping") else None
        now = end if end is not None and end >= self._t_start else time.time()
        paused = self._paused_s + (now - self._t_pause if self._t_pause is not None else 0.0)
        return max(0.0, now - self._t_start - paused)

    def _update_clock(self) -> None:
        self._update_status()

    def _update_status(self) -> None:
        if not hasattr(self, "state_label"):
            return
        color = _STATE_COLORS.get(self.state, "#606060")
        self.state_label.setText(f"<b style='color:{color}'>● {self.state}</b>")
        info = self.info
        total = info.total_steps if info else None
        done = self.step + 1
        self.step_label.setText(f"step {max(done, 0)} / {total}" if total else "step –")
        if info:
            self.epoch_label.setText(f"epoch {max(done, 0) // max(info.steps_per_epoch, 1)} / {info.epochs}")
        else:
            self.epoch_label.setText("epoch –")
        elapsed = self._elapsed()
        self.elapsed_label.setText(f"elapsed {_hms(elapsed)}")
        eta = None
        if info and elapsed and done > self._steps_at_start and self.state in ("running", "pausing"):
            rate = (done - self._steps_at_start) / elapsed
            eta = (info.total_steps - done) / rate if rate > 0 else None
        self.eta_label.setText(f"ETA {_hms(eta)}" if eta is not None else "ETA –")
        acc = self.last_eval.get("test_accuracy") if self.last_eval else None
        acc_text = f", test acc. {100 * acc:.1f} %" if acc is not None and math.isfinite(acc) else ""
        unit = " V²" if self.info is None or self.info.loss_unit == "V^2" else ""
        self.loss_label.setText(f"loss {self.last_loss:.3g}{unit}{acc_text}" if math.isfinite(self.last_loss)
                                else "loss –")

    # ------------------------------------------------------------ messages
    def log(self, level: str, text: str) -> None:
        color = {"ERROR": "#b00000", "WARNING": "#a06000"}.get(level, "#202020")
        stamp = time.strftime("%H:%M:%S")
        self.log_view.appendHtml(f"<span style='color:{color}'>{stamp} {level:<7} {html.escape(text)}</span>")

    def show_error(self, title: str, text: str, details: str = "") -> None:
        """A non-blocking error dialog, and the same message in the log."""
        self.errors.append((title, text))
        self.log("ERROR", f"{title}: {text}")
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, title, text,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        box.finished.connect(lambda *_: self._dialogs.remove(box) if box in self._dialogs else None)
        self._dialogs.append(box)
        box.show()

    # ------------------------------------------------------------ closing
    def finish_run_before_closing(self, stop_wait_s: float = 120.0, term_wait_s: float = 30.0) -> None:
        """Stop the run at its next step boundary and wait until the worker has saved it and exited.

        The window keeps drawing meanwhile (the worker's last messages are drained: a worker whose queue is
        not read cannot exit).  A worker still busy after ``stop_wait_s`` (a step that takes longer) gets
        SIGTERM (the same clean stop, asked again); one still alive ``term_wait_s`` later is killed, and the
        run file keeps its last checkpoint.
        """
        worker = self.worker
        self.log("INFO", "window closing: stopping the run at the next step boundary")
        worker.stop()
        self._set_state("stopping")
        for wait_s, escalate in ((stop_wait_s, worker.terminate), (term_wait_s, worker.kill), (10.0, None)):
            deadline = time.monotonic() + wait_s
            while not worker.done and time.monotonic() < deadline:
                QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
                self.drain()
                worker.join(0.02)
            if worker.done or escalate is None:
                break
            self.log("WARNING", f"the run process (pid {worker.pid}) did not stop in {wait_s:g} s: "
                                f"{escalate.__name__}")
            escalate()
        worker.join(5.0)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self._closing = True
        if self.running:
            self.finish_run_before_closing()
        if self.worker is not None:  # a finished worker is exiting (its last messages flushed): reap it
            self.worker.join(5.0)
            self.worker.close()
        if self._spare is not None:
            self._spare.discard()
            self._spare = None
        self.timer.stop()
        self.clock.stop()
        for box in list(self._dialogs):
            box.close()
        super().closeEvent(event)
