"""Run browser: the run files of a folder; overlay their curves, show their snapshot, re-run or resume.

A *sweep folder* (``labtrain sweep``: a ``manifest.json`` next to ``runs/``) is shown as its members,
one row each with its swept values (one column per axis), status and metrics; "Overlay axis" draws
the members that differ from the selected one only along the chosen axis, labelled by their value.

A past run is read once when it is opened (read-only, without HDF5's file
lock, so a run still being written by another process can be looked at);
nothing is re-read per frame.  :func:`describe_past_run` gives the window what
it needs to show a past run as it showed it live (its network drawn with the
final parameters): the network and the parameter layout come from building
the run's experiment as an *ideal* chip (no instrument is opened, nothing is
trained, no file is written).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.gui.worker import RunInfo
from labtrain.training.store import RunStore, StoreError, list_runs, read_summary

__all__ = ["RunBrowser", "PastRun", "load_run", "describe_past_run", "is_sweep_folder", "sweep_rows",
           "members_along"]

_COLUMNS = ("name", "date", "rule", "backend", "steps", "test loss", "test acc.", "status", "overrides")
_SWEEP_COLUMNS = ("member", "steps", "test loss", "test acc.", "status", "overrides")  # axes after "member"


@dataclass
class PastRun:
    """Everything the window shows of a run file (read once)."""

    path: Path
    summary: dict[str, Any]
    step: np.ndarray
    loss: np.ndarray
    eval: dict[str, np.ndarray]
    snapshot: dict
    experiment_text: str
    overrides: dict
    source: str
    final_parameters: np.ndarray | None
    task: dict[str, Any]
    #: shown instead of the creation date in the label (a sweep member overlaid along an axis: "lr=0.01")
    tag: str = ""
    #: the run's events (instrument retries and faults, safety ramps, pauses, warnings): RunStore.events() columns
    events: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.summary['name']} {self.tag or self.summary['created'][5:16]}"


def load_run(path: str | Path) -> PastRun:
    """Read a run file (raises :class:`~labtrain.training.store.StoreError` for a file that is not one)."""
    path = Path(path)
    summary = read_summary(path)
    with RunStore.open(path) as store:
        steps = store.table("steps")
        params = store.parameters("final")
        if params is None:
            cp = store.latest_checkpoint()
            params = cp[1] if cp is not None else store.parameters("initial")
        return PastRun(path, summary, steps["step"], steps["loss"], store.table("eval"), store.snapshot,
                       store.experiment_text, store.overrides, store.source, params, dict(store.task),
                       events=store.events())


def describe_past_run(run: PastRun) -> tuple[RunInfo, str]:
    """A :class:`RunInfo` for showing a past run, and "" or why its drawing is approximate.

    The run's experiment (its text and overrides) is built on the *ideal* backend to learn the
    network and the parameters' names, units, bounds and blocks; nothing is trained and no
    instrument is touched.  If it no longer builds (a file it names has moved, ...), the
    parameters are shown as bars between their smallest and largest values.
    """
    s, chip_snap = run.summary, run.snapshot.get("chip", {})
    params = run.final_parameters if run.final_parameters is not None else np.zeros(0)
    evals = [{k: (float(v[i]) if k not in ("step", "epoch") else int(v[i])) for k, v in run.eval.items()}
             for i in range(len(run.eval.get("step", [])))]
    overrides = {sec: dict(v) for sec, v in run.overrides.items()}
    overrides.setdefault("backend", {})["kind"] = "ideal"
    note, setup = "", None
    try:
        exp = experiment_from_text(run.experiment_text, Path(run.source) if run.source else None, overrides)
        setup = build_setup(exp)
    except Exception as exc:  # the drawing falls back to bars; the run itself is still shown
        note = f"its experiment no longer builds ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    try:
        if setup is not None:
            chip, net, task = setup.chip, setup.network, setup.task
            spec = chip.parameter_spec
            lower, upper = np.array(spec.lower, float), np.array(spec.upper, float)
            name, unit = spec.name, spec.unit
            blocks = tuple({"name": str(b["name"]), "start": int(b["start"]), "stop": int(b["stop"]),
                            "shape": tuple(int(n) for n in b.get("shape", (int(b["stop"]) - int(b["start"]),)))}
                           for b in chip.parameter_blocks())
            labels, n_outputs = tuple(chip.parameter_labels()), chip.n_outputs
            output_unit = "" if chip.output_unit == "1" else chip.output_unit
            loss_unit, decoder = setup.estimator.loss_unit, task.decoder
            n_train, batch = len(task.x_train), setup.experiment["run"]["batch_size"]
            batch = n_train if not batch or batch > n_train else batch
            steps_per_epoch, epochs = math.ceil(n_train / batch), setup.experiment["run"]["epochs"]
        else:
            net, blocks, labels = None, (), ()
            param = chip_snap.get("parameter", {})
            name, unit = param.get("name", "parameter"), param.get("unit", "")
            lo, hi = (float(params.min()), float(params.max())) if len(params) else (0.0, 1.0)
            lower, upper = np.full(len(params), lo), np.full(len(params), hi if hi > lo else lo + 1.0)
            n_outputs = int(run.task.get("n_outputs", 1))
            output_unit, loss_unit = "V", "V^2"
            decoder = str(run.task.get("decoder", ""))
            steps_per_epoch, epochs = 1, 1
    finally:
        if setup is not None:
            setup.chip.close()
    if len(params) != len(lower):  # the experiment builds a different chip now: draw what the file holds
        note = note or f"the file holds {len(params)} parameters, its experiment builds {len(lower)}"
        net, blocks, labels = None, (), ()
        lo, hi = (float(params.min()), float(params.max())) if len(params) else (0.0, 1.0)
        lower, upper = np.full(len(params), lo), np.full(len(params), hi if hi > lo else lo + 1.0)
    return RunInfo(
        name=s["name"], path=run.path, backend=s["backend"], rule=s["rule"], total_steps=s["total_steps"],
        steps_per_epoch=steps_per_epoch, epochs=epochs, next_step=s["steps_done"], network=net,
        parameter_name=name, parameter_unit=unit, lower=lower, upper=upper, initial_parameters=params,
        capabilities=frozenset(chip_snap.get("capabilities", ())), decoder=decoder, n_outputs=n_outputs,
        output_nodes=tuple(net.outputs) if net is not None else (),
        fidelity="not stored in the run file", experiment_text=run.experiment_text, overrides=run.overrides,
        history_loss=np.asarray(run.loss, float), history_evals=evals,
        edge_parameters=net.n_edges if net is not None else 0, parameter_labels=labels, loss_unit=loss_unit,
        output_unit=output_unit, parameter_blocks=blocks, pid=0), note


def is_sweep_folder(path: str | Path) -> bool:
    """A ``labtrain sweep`` folder (it holds ``manifest.json``)."""
    return (Path(path) / "manifest.json").is_file()


def sweep_rows(folder: str | Path) -> tuple[list[dict], list[dict]]:
    """The axes of the sweep in ``folder`` and one row per member, in member order.

    A row is the member's run-file summary (``read_summary``; for a member without a readable run
    file: its manifest status, no metrics, ``path`` empty) plus ``member`` (its name), ``index``,
    ``values`` (swept key -> value) and ``axis_labels`` (axis name -> its value(s) as text).
    """
    from labtrain.schema import show
    from labtrain.training.sweep import read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    axes = [dict(a) for a in manifest["axes"]]
    rows = []
    for member in manifest["members"]:
        row: dict[str, Any] = {"path": "", "name": member["name"], "created": "", "rule": "", "backend": "",
                               "status": member.get("status", "pending"), "message": member.get("message") or "",
                               "steps_done": 0, "total_steps": 0, "test_loss": math.nan, "test_accuracy": math.nan,
                               "overrides": member.get("overrides") or {}}
        if member.get("run_file") and manifest.get("function"):  # a measurement sweep: a JSON result, no curves
            row["message"] = row["message"] or f"measurement result: {member['run_file']}"
        elif member.get("run_file"):
            try:
                row.update(read_summary(folder / member["run_file"]))
            except (StoreError, OSError, KeyError, ValueError) as exc:
                row["message"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        values = dict(member.get("values") or {})
        labels = {a["name"]: " / ".join(show(values.get(k)) for k in a["keys"]) for a in axes}
        rows.append(row | {"member": member["name"], "index": member["index"], "values": values,
                           "axis_labels": labels})
    return axes, rows


def members_along(rows: list[dict], axes: list[dict], axis: str, reference: dict) -> list[dict]:
    """The rows that equal ``reference`` on every axis but ``axis`` (``reference`` included), in axis order."""
    keys = next(a["keys"] for a in axes if a["name"] == axis)
    fixed = {k: v for k, v in reference["values"].items() if k not in keys}
    return [r for r in rows if all(r["values"].get(k) == v for k, v in fixed.items())]


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


class RunBrowser(QtWidgets.QWidget):
    """Table of run files with overlay / snapshot / re-run / resume actions."""

    overlay_requested = QtCore.pyqtSignal(object)      # PastRun
    clear_overlays_requested = QtCore.pyqtSignal()
    rerun_requested = QtCore.pyqtSignal(object)        # PastRun
    resume_requested = QtCore.pyqtSignal(str)          # path
    error = QtCore.pyqtSignal(str, str)                # title, message

    def __init__(self, directory: str | Path = "runs", parent=None) -> None:
        super().__init__(parent)
        self.directory = Path(directory)
        self.loaded: dict[str, PastRun] = {}
        self.exclude: set[str] = set()  # the run this window is writing
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Folder"))
        self.dir_edit = QtWidgets.QLineEdit(str(self.directory))
        self.dir_edit.editingFinished.connect(lambda: self.set_directory(self.dir_edit.text()))
        row.addWidget(self.dir_edit, 1)
        browse = QtWidgets.QToolButton(text="…", toolTip="Choose the folder of run files")
        browse.clicked.connect(self._ask_directory)
        refresh = QtWidgets.QToolButton(toolTip="Re-read the folder")
        refresh.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_BrowserReload))
        refresh.clicked.connect(self.refresh)
        row.addWidget(browse)
        row.addWidget(refresh)
        layout.addLayout(row)

        self.table = QtWidgets.QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemDoubleClicked.connect(lambda *_: self.overlay_selected())
        layout.addWidget(self.table, 2)

        row = QtWidgets.QHBoxLayout()
        self.open_button = QtWidgets.QPushButton("Open file…")
        self.open_button.setToolTip("Open a run file (.h5) anywhere and overlay it")
        self.overlay_button = QtWidgets.QPushButton("Overlay")
        self.overlay_button.setToolTip("Draw the selected runs' loss and accuracy on the live plots (dashed)")
        self.clear_button = QtWidgets.QPushButton("Clear overlays")
        self.axis_box = QtWidgets.QComboBox()
        self.axis_box.setToolTip("Sweep folder: the axis to overlay")
        self.axis_button = QtWidgets.QPushButton("Overlay axis")
        self.axis_button.setToolTip("Sweep folder: overlay the members that differ from the selected one only "
                                    "along the chosen axis (labelled by their value)")
        self.rerun_button = QtWidgets.QPushButton("Re-run")
        self.rerun_button.setToolTip("Load the run's experiment text and overrides into the experiment panel and "
                                     "start a new run with the same settings")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.resume_button.setToolTip("Continue a stopped, paused or crashed run from its last checkpoint")
        for b in (self.open_button, self.overlay_button, self.clear_button, self.axis_box, self.axis_button,
                  self.rerun_button, self.resume_button):
            row.addWidget(b)
        self.axis_button.clicked.connect(lambda: self.overlay_axis())
        self.open_button.clicked.connect(self._ask_open)
        self.overlay_button.clicked.connect(self.overlay_selected)
        self.clear_button.clicked.connect(self.clear_overlays_requested.emit)
        self.rerun_button.clicked.connect(self._rerun)
        self.resume_button.clicked.connect(self._resume)
        layout.addLayout(row)

        self.details = QtWidgets.QTabWidget()
        self.snapshot_tree = QtWidgets.QTreeWidget()
        self.snapshot_tree.setHeaderLabels(["key", "value"])
        self.snapshot_tree.setColumnWidth(0, 200)
        self.summary_view = QtWidgets.QPlainTextEdit(readOnly=True)
        self.experiment_view = QtWidgets.QPlainTextEdit(readOnly=True)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(9)
        for w in (self.summary_view, self.experiment_view):
            w.setFont(font)
        self.details.addTab(self.summary_view, "Summary")
        self.details.addTab(self.snapshot_tree, "Snapshot")
        self.details.addTab(self.experiment_view, "Experiment")
        layout.addWidget(self.details, 3)
        self._rows: list[dict] = []
        self.sweep_axes: list[dict] = []  # non-empty while the folder is a sweep folder
        self._selection_changed()

    # ------------------------------------------------------------ folder
    def set_directory(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.dir_edit.setText(str(self.directory))
        self.refresh()

    def _ask_directory(self) -> None:
        name = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder of run files", str(self.directory))
        if name:
            self.set_directory(name)

    def refresh(self) -> None:
        self.sweep_axes = []
        columns = _COLUMNS
        if is_sweep_folder(self.directory):
            try:
                self.sweep_axes, rows = sweep_rows(self.directory)
            except Exception as exc:  # a damaged manifest: list the run files as a plain folder
                self.error.emit("Cannot read the sweep manifest", f"{self.directory}: {exc}")
                self.sweep_axes, rows = [], []
            if self.sweep_axes:
                names = [a["name"] for a in self.sweep_axes]
                columns = _SWEEP_COLUMNS[:1] + tuple(names) + _SWEEP_COLUMNS[1:]
        if not self.sweep_axes:
            rows = list_runs(self.directory) if self.directory.is_dir() else []
        rows = [r for r in rows if not r["path"] or str(Path(r["path"]).resolve()) not in self.exclude]
        self._rows = rows
        self.axis_box.clear()
        self.axis_box.addItems([a["name"] for a in self.sweep_axes])
        for w in (self.axis_box, self.axis_button):
            w.setVisible(bool(self.sweep_axes))
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            acc = r["test_accuracy"]
            metrics = [f"{r['steps_done']}/{r['total_steps']}", _fmt(r["test_loss"]),
                       "–" if math.isnan(acc) else f"{100 * acc:.1f} %", r["status"]]
            overrides = _overrides_text(r)
            if self.sweep_axes:
                cells = [r["member"], *(r["axis_labels"][a["name"]] for a in self.sweep_axes), *metrics, overrides]
                tip = r["path"] or "no run file yet"
            else:
                cells = [r["name"], r["created"], r["rule"], r["backend"], *metrics, overrides]
                tip = r["path"]
            for j, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(str(text))
                item.setToolTip(tip + (f"\n{r['message']}" if r.get("message") else ""))
                if j == len(cells) - 2 and text in ("failed", "crashed"):
                    item.setForeground(QtGui.QBrush(QtGui.QColor("#b00000")))
                self.table.setItem(i, j, item)
        self._selection_changed()

    # ------------------------------------------------------------ selection and actions
    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self._rows[r]["path"] for r in rows if r < len(self._rows) and self._rows[r]["path"]]

    def overlay_axis(self, axis: str | None = None) -> list[PastRun]:
        """Sweep folder: overlay the members that differ from the selected one (or the first member) only
        along ``axis`` (default: the one chosen in the box), each labelled ``axis=value``; returns them."""
        if not self.sweep_axes or not self._rows:
            return []
        axis = axis or self.axis_box.currentText()
        selected = sorted({i.row() for i in self.table.selectedIndexes()})
        reference = self._rows[selected[0]] if selected else self._rows[0]
        shown = []
        for r in members_along(self._rows, self.sweep_axes, axis, reference):
            if not r["path"]:
                continue
            run = self.open_run(r["path"], overlay=False)
            if run is not None:
                tagged = dataclasses.replace(run, tag=f"{axis}={r['axis_labels'][axis]}")
                self.overlay_requested.emit(tagged)
                shown.append(tagged)
        return shown

    def select_path(self, path: str | Path) -> None:
        target = str(Path(path).resolve())
        for i, r in enumerate(self._rows):
            if str(Path(r["path"]).resolve()) == target:
                self.table.selectRow(i)
                return

    def _selection_changed(self) -> None:
        paths = self.selected_paths()
        one = len(paths) == 1
        self.overlay_button.setEnabled(bool(paths))
        self.axis_button.setEnabled(bool(self.sweep_axes) and any(r["path"] for r in self._rows))
        self.rerun_button.setEnabled(one)
        status = self._rows[self.table.currentRow()]["status"] if one and self.table.currentRow() >= 0 else ""
        self.resume_button.setEnabled(one and status in ("stopped", "paused", "crashed", "failed"))
        if one:
            run = self.open_run(paths[0], overlay=False)
            if run is not None:
                self.show_details(run)

    def open_run(self, path: str | Path, overlay: bool = True) -> PastRun | None:
        """Read a run file (cached); overlay its curves if asked.  Errors go to :attr:`error`."""
        key = str(Path(path).resolve())
        run = self.loaded.get(key)
        if run is None:
            try:
                run = load_run(path)
            except (StoreError, OSError, KeyError) as exc:
                self.error.emit("Cannot open run file", str(exc))
                return None
            self.loaded[key] = run
        if overlay:
            self.show_details(run)
            self.overlay_requested.emit(run)
        return run

    def overlay_selected(self) -> None:
        for path in self.selected_paths():
            self.open_run(path, overlay=True)

    def _ask_open(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open run file", str(self.directory),
                                                        "Run files (*.h5);;All files (*)")
        if name:
            self.open_run(name, overlay=True)

    def _rerun(self) -> None:
        paths = self.selected_paths()
        if paths:
            run = self.open_run(paths[0], overlay=False)
            if run is not None:
                self.rerun_requested.emit(run)

    def _resume(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.loaded.pop(str(Path(paths[0]).resolve()), None)
            self.resume_requested.emit(paths[0])

    def forget(self, path: str | Path) -> None:
        """Drop a cached run (it has changed on disk)."""
        self.loaded.pop(str(Path(path).resolve()), None)

    # ------------------------------------------------------------ details
    def show_details(self, run: PastRun) -> None:
        s = run.summary
        lines = [f"{k:<17} {v:.4g}" if isinstance(v, float) else f"{k:<17} {v}" for k, v in s.items()]
        if run.overrides and "overrides" not in s:
            lines.append(f"overrides         {json.dumps(run.overrides)}")
        ev = run.events
        n = len(ev.get("step", ()))
        lines.append(f"events            {n if n else 'none'}")
        for i in range(n):  # instrument retries and faults, safety ramps, pauses, warnings
            where = "start" if int(ev["step"][i]) < 0 else f"step {int(ev['step'][i]) + 1}"
            lines.append(f"  {where:>10}  {ev['level'][i]:<7} {ev['kind'][i]:<10} {ev['message'][i]}")
        self.summary_view.setPlainText("\n".join(lines))
        self.experiment_view.setPlainText(run.experiment_text)
        self.snapshot_tree.clear()
        self._fill(self.snapshot_tree.invisibleRootItem(), run.snapshot)
        for i in range(self.snapshot_tree.topLevelItemCount()):
            self.snapshot_tree.topLevelItem(i).setExpanded(True)

    def _fill(self, parent: QtWidgets.QTreeWidgetItem, value: Any, depth: int = 0) -> None:
        if isinstance(value, dict):
            for k in sorted(value):
                v = value[k]
                if isinstance(v, (dict, list)) and not _is_short_list(v):
                    item = QtWidgets.QTreeWidgetItem(parent, [str(k), _brief(v)])
                    self._fill(item, v, depth + 1)
                else:
                    QtWidgets.QTreeWidgetItem(parent, [str(k), json.dumps(v)])
        elif isinstance(value, list):
            for i, v in enumerate(value[:200]):
                if isinstance(v, (dict, list)) and not _is_short_list(v):
                    item = QtWidgets.QTreeWidgetItem(parent, [f"[{i}]", _brief(v)])
                    self._fill(item, v, depth + 1)
                else:
                    QtWidgets.QTreeWidgetItem(parent, [f"[{i}]", json.dumps(v)])
            if len(value) > 200:
                QtWidgets.QTreeWidgetItem(parent, ["…", f"{len(value) - 200} more"])


def _overrides_text(row: dict) -> str:
    """A run's overrides as ``section.key=value`` (a sweep member's own name and folder left out), as
    ``labtrain runs`` shows them."""
    from labtrain.overrides import format_overrides

    skip = ("experiment.name", "run.out_dir") if row.get("sweep") or row.get("member") else ()
    return format_overrides(row.get("overrides") or {}, skip) or "-"


def _is_short_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= 8 and all(not isinstance(x, (dict, list)) for x in v)


def _brief(v: Any) -> str:
    if isinstance(v, dict):
        return f"{{{len(v)} keys}}"
    if all(isinstance(x, (int, float)) for x in v) and v:
        return f"[{len(v)} values, {min(v):.4g} … {max(v):.4g}]"
    return f"[{len(v)} items]"
