"""Experiment panel: open / edit / save an experiment file, a form generated from the schema, the backend.

The TOML text is the experiment; the form shows the keys of
:data:`labtrain.config.SCHEMA` that apply to the chosen ``[chip] type`` and
``[learning] rule`` (``Field.types`` / ``Field.rules``; a key the file sets
that the rule does not read is shown greyed), each at its effective value
(tooltips: meaning, allowed range, default).  Editing the form does not
rewrite the text: the changes are *overrides* on top of it -- stored in the
run file exactly like the CLI's ``--epochs`` -- until "Write into text" (or
Save) puts them into the file with :mod:`labtrain.gui.toml_edit` (only the
changed values change; comments and layout stay).  The text is validated as
you type; the first problem is shown in one line, as the CLI would print it.

The backend selector offers ideal / twin / hardware; hardware is greyed out,
with the reason, when the NI-DAQmx Python package or driver is missing or no
NI device is connected.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from PyQt6 import QtCore, QtGui, QtWidgets

from labtrain import registry
from labtrain.config import (SCHEMA, SECTION_DOCS, ConfigError, Experiment, chip_kind, chip_kinds,
                             experiment_from_text, kind_rules)
from labtrain.gui.toml_edit import TomlEditError, set_toml_values, toml_value

__all__ = ["ExperimentPanel", "hardware_status"]

BACKENDS = ("ideal", "twin", "hardware")
_SECTION_ORDER = ("experiment", "chip", "backend", "wiring", "task", "learning", "run")


def hardware_status() -> tuple[bool, str]:
    """(usable, reason): whether the hardware backend can be chosen (NI-DAQmx package, driver, a device)."""
    try:
        from labtrain.drivers.discovery import list_devices

        ni = list_devices(sections=("ni",))["ni"]
    except Exception as exc:  # pragma: no cover - list_devices never raises, but be safe
        return False, f"device discovery failed: {exc}"
    if ni["status"] != "ok":
        return False, ni["message"]
    if not ni["devices"]:
        return False, f"no NI-DAQmx device found ({ni['message']})"
    names = ", ".join(d["name"] for d in ni["devices"])
    return True, f"NI devices: {names}"


def _parse_toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


class ExperimentPanel(QtWidgets.QWidget):
    """Editor, schema form and backend selector for one experiment."""

    #: emitted after every validation: (ok, message)
    validated = QtCore.pyqtSignal(bool, str)
    #: a file was opened or saved: its path
    file_changed = QtCore.pyqtSignal(str)

    def __init__(self, parent=None, hardware: tuple[bool, str] | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self._overrides: dict[str, dict[str, Any]] = {}
        self._widgets: dict[tuple[str, str], QtWidgets.QWidget] = {}
        self._labels: dict[tuple[str, str], QtWidgets.QLabel] = {}
        self._tips: dict[tuple[str, str], str] = {}
        #: (section, key) -> rules that read it: Field.rules, and a plugin rule's own keys for that rule only
        self._rule_tags: dict[tuple[str, str], tuple[str, ...] | None] = {
            (section, key): spec.rules for section, fields in SCHEMA.items() for key, spec in fields.items()}
        for name, plugin in registry.load_all("labtrain.rules").items():
            for section, fields in plugin.schema.items():
                for key, spec in fields.items():
                    self._rule_tags[(section, key)] = spec.rules or (name,)
        self.shown: dict[str, list[str]] = {}  # keys the form shows now, per section
        self._syncing = False
        self._saved_text = ""
        self.hardware_ok, self.hardware_reason = hardware if hardware is not None else hardware_status()
        self.valid, self.message = False, "no experiment file"

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        # file row
        row = QtWidgets.QHBoxLayout()
        self.file_label = QtWidgets.QLabel("<i>no file</i>")
        self.file_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label.setWordWrap(True)
        row.addWidget(self.file_label, 1)
        style = self.style()
        self.open_button = QtWidgets.QToolButton(text="Open…", toolTip="Open an experiment file (TOML)")
        self.open_button.setIcon(style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_DialogOpenButton))
        self.save_button = QtWidgets.QToolButton(text="Save", toolTip="Save the text (form changes written in)")
        self.save_button.setIcon(style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_DialogSaveButton))
        self.save_as_button = QtWidgets.QToolButton(text="Save as…", toolTip="Save under a new name")
        for b in (self.open_button, self.save_button, self.save_as_button):
            b.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            row.addWidget(b)
        self.open_button.clicked.connect(self._ask_open)
        self.save_button.clicked.connect(lambda: self.save())
        self.save_as_button.clicked.connect(self._ask_save_as)
        layout.addLayout(row)

        # backend row
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("<b>Backend</b>"))
        self.backend_box = QtWidgets.QComboBox()
        self.backend_box.addItems(BACKENDS)
        self.backend_box.setToolTip("ideal: physics model (exact, fastest); twin: simulated instruments on the "
                                    "bench's code path; hardware: the real chip")
        item = self.backend_box.model().item(2)
        if not self.hardware_ok:
            item.setEnabled(False)
            item.setToolTip(f"hardware unavailable: {self.hardware_reason}")
        self.backend_box.currentTextChanged.connect(self._backend_chosen)
        row.addWidget(self.backend_box)
        self.backend_note = QtWidgets.QLabel()
        self.backend_note.setWordWrap(True)
        self.backend_note.setStyleSheet("color: #707070;")
        self.backend_note.setText(("hardware: " if self.hardware_ok else "hardware unavailable: ")
                                  + self.hardware_reason)
        row.addWidget(self.backend_note, 1)
        layout.addLayout(row)

        # overrides row
        row = QtWidgets.QHBoxLayout()
        self.override_label = QtWidgets.QLabel()
        self.override_label.setStyleSheet("color: #0050a0;")
        self.write_button = QtWidgets.QPushButton("Write into text")
        self.write_button.setToolTip("Put the form changes into the TOML text (comments are kept)")
        self.discard_button = QtWidgets.QPushButton("Discard")
        self.discard_button.setToolTip("Forget the form changes")
        self.write_button.clicked.connect(self.write_overrides_into_text)
        self.discard_button.clicked.connect(self.discard_overrides)
        row.addWidget(self.override_label, 1)
        row.addWidget(self.write_button)
        row.addWidget(self.discard_button)
        layout.addLayout(row)

        # tabs: form / text
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self._build_form(), "Form")
        self.editor = QtWidgets.QPlainTextEdit()
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(9)
        self.editor.setFont(font)
        self.editor.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setPlaceholderText("[experiment]\nname = \"...\"\n\n[chip]\n...")
        self.editor.textChanged.connect(self._text_edited)
        self.tabs.addTab(self.editor, "TOML")
        layout.addWidget(self.tabs, 1)

        # validation line
        self.status = QtWidgets.QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)

        self._debounce = QtCore.QTimer(self, singleShot=True, interval=400)
        self._debounce.timeout.connect(self.revalidate)
        self._update_override_row()
        self.revalidate()

    # ------------------------------------------------------------ form
    def _build_form(self) -> QtWidgets.QWidget:
        box = QtWidgets.QToolBox()
        for section in _SECTION_ORDER:
            fields = SCHEMA[section]
            page = QtWidgets.QWidget()
            form = QtWidgets.QFormLayout(page)
            form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setContentsMargins(4, 4, 4, 4)
            form.setVerticalSpacing(3)
            for key, spec in fields.items():
                tip = f"[{section}] {key}: {spec.doc}\n"
                if spec.choices or spec.low is not None or spec.high is not None:
                    tip += f"allowed: {spec.allowed()}\n"
                tip += f"default: {toml_value(spec.default)}"
                choices = spec.choices
                if (section, key) == ("chip", "type"):
                    choices = tuple(chip_kinds())
                elif (section, key) == ("learning", "rule"):  # refilled with the chip type's rules
                    choices = ("",) + tuple(dict.fromkeys(r for k in chip_kinds() for r in kind_rules(k)))
                if choices:
                    w = QtWidgets.QComboBox()
                    w.addItems([c if c else "(default)" for c in choices])
                    w.currentTextChanged.connect(lambda _t, s=section, k=key: self._form_edited(s, k))
                elif spec.kind == "bool":
                    w = QtWidgets.QCheckBox()
                    w.toggled.connect(lambda _v, s=section, k=key: self._form_edited(s, k))
                else:
                    w = QtWidgets.QLineEdit()
                    w.editingFinished.connect(lambda s=section, k=key: self._form_edited(s, k))
                    if spec.kind in ("ints", "floats", "strs"):
                        w.setPlaceholderText("[a, b, ...]")
                rules = self._rule_tags.get((section, key))
                if rules:
                    tip += f"\nread by rule{'s' if len(rules) > 1 else ''} {', '.join(rules)}"
                self._tips[(section, key)] = tip
                w.setToolTip(tip)
                label = QtWidgets.QLabel(key)
                label.setToolTip(tip)
                form.addRow(label, w)
                self._widgets[(section, key)] = w
                self._labels[(section, key)] = label
            scroll = QtWidgets.QScrollArea()
            scroll.setWidget(page)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            box.addItem(scroll, f"[{section}] — {SECTION_DOCS[section]}")
        box.setCurrentIndex(_SECTION_ORDER.index("learning"))
        self.form_box = box
        return box

    def _widget_value(self, section: str, key: str) -> Any:
        spec, w = SCHEMA[section][key], self._widgets[(section, key)]
        if isinstance(w, QtWidgets.QComboBox):
            text = w.currentText()
            return "" if text == "(default)" else text
        if isinstance(w, QtWidgets.QCheckBox):
            return w.isChecked()
        text = w.text().strip()
        if spec.kind == "str":
            return text
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"form: [{section}] {key} = {text!r}: not a valid {spec.kind} "
                              f"(write it as in the TOML file, e.g. {toml_value(spec.default)})") from None

    def _set_widget(self, section: str, key: str, value: Any) -> None:
        w = self._widgets[(section, key)]
        spec = SCHEMA[section][key]
        if isinstance(w, QtWidgets.QComboBox):
            text = value if value else "(default)"
            if w.findText(str(text)) < 0:
                w.addItem(str(text))
            w.setCurrentText(str(text))
        elif isinstance(w, QtWidgets.QCheckBox):
            w.setChecked(bool(value))
        else:
            w.setText(str(value) if spec.kind == "str" else toml_value(value))
        w.setStyleSheet("")

    def _file_sections(self) -> dict:
        return _parse_toml(self.editor.toPlainText())

    def _form_edited(self, section: str, key: str) -> None:
        if self._syncing:
            return
        try:
            value = self._widget_value(section, key)
        except ConfigError as exc:
            self._widgets[(section, key)].setStyleSheet("background: #ffd8d8;")
            self._show_status(False, str(exc))
            return
        self.set_value(section, key, value)

    def set_value(self, section: str, key: str, value: Any) -> None:
        """Override ``[section] key`` (as the form does); the same value as the file removes the override."""
        if section not in SCHEMA or key not in SCHEMA[section]:
            raise KeyError(f"[{section}] {key} is not an experiment-file key")
        file_value = self._file_sections().get(section, {}).get(key, SCHEMA[section][key].default)
        if value == file_value:
            self._overrides.get(section, {}).pop(key, None)
            if section in self._overrides and not self._overrides[section]:
                del self._overrides[section]
        else:
            self._overrides.setdefault(section, {})[key] = value
        self._update_override_row()
        self.revalidate()

    def overrides(self) -> dict[str, dict[str, Any]]:
        return {s: dict(v) for s, v in self._overrides.items()}

    def discard_overrides(self) -> None:
        self._overrides.clear()
        self._update_override_row()
        self.revalidate()

    def write_overrides_into_text(self) -> bool:
        """Put the form changes into the TOML text (only those values change); False (and the reason in the
        status line) when the text cannot be edited (not valid TOML)."""
        try:
            text = set_toml_values(self.editor.toPlainText(), self._overrides)
        except TomlEditError as exc:
            self._show_status(False, f"cannot write the form changes into the text: {exc}")
            return False
        self._overrides.clear()
        self._set_text(text)
        self._update_override_row()
        self.revalidate()
        return True

    def _update_override_row(self) -> None:
        n = sum(len(v) for v in self._overrides.values())
        shown = ", ".join(f"{k} = {toml_value(v)}" for s in self._overrides.values() for k, v in s.items())
        self.override_label.setText(f"{n} form change{'s' if n != 1 else ''} on top of the file: {shown}" if n
                                    else "")
        for w in (self.override_label, self.write_button, self.discard_button):
            w.setVisible(bool(n))
        for (section, key), label in self._labels.items():
            on = key in self._overrides.get(section, {})
            label.setText(f"<b>{key} *</b>" if on else key)
            label.setStyleSheet("color: #0050a0;" if on else "")

    def _backend_chosen(self, kind: str) -> None:
        if not self._syncing:
            self.set_value("backend", "kind", kind)

    # ------------------------------------------------------------ text and files
    def _set_text(self, text: str) -> None:
        self._syncing = True
        try:
            self.editor.setPlainText(text)
        finally:
            self._syncing = False

    def _text_edited(self) -> None:
        if not self._syncing:
            self._debounce.start()
        self._update_file_label()

    def _update_file_label(self) -> None:
        name = str(self.path) if self.path else "<i>unsaved experiment</i>"
        dirty = self.editor.toPlainText() != self._saved_text
        self.file_label.setText(f"<b>{name}</b>{' (modified)' if dirty else ''}")

    def load_text(self, text: str, path: str | Path | None = None, overrides: dict | None = None) -> None:
        """Show ``text`` (from ``path``, for errors and relative paths) with ``overrides`` on top."""
        self.path = Path(path) if path else None
        self._overrides = {s: dict(v) for s, v in (overrides or {}).items()}
        self._saved_text = text if path else ""
        self._set_text(text)
        self._update_file_label()
        self._update_override_row()
        self.revalidate()

    def open_file(self, path: str | Path) -> bool:
        """Load an experiment file; False (and the reason in the status line) if it cannot be read."""
        path = Path(path)
        if not path.is_file():
            self._show_status(False, f"{path}: experiment file not found")
            return False
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            self._show_status(False, f"{path}: cannot read: {exc}")
            return False
        self.load_text(text, path)
        self.file_changed.emit(str(path))
        return True

    def save(self, path: str | Path | None = None) -> bool:
        """Write the text (with the form changes written in) to ``path`` or the current file."""
        if self._overrides and not self.write_overrides_into_text():
            return False
        target = Path(path) if path else self.path
        if target is None:
            return self._ask_save_as()
        try:
            target.write_text(self.editor.toPlainText())
        except OSError as exc:
            QtWidgets.QMessageBox.critical(self, "Cannot save", f"{target}: {exc}")
            return False
        self.path, self._saved_text = target, self.editor.toPlainText()
        self._update_file_label()
        self.revalidate()
        self.file_changed.emit(str(target))
        return True

    def _ask_open(self) -> None:
        start = str(self.path.parent) if self.path else str(Path.cwd())
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open experiment file", start,
                                                        "Experiment files (*.toml);;All files (*)")
        if name:
            self.open_file(name)

    def _ask_save_as(self) -> bool:
        start = str(self.path) if self.path else str(Path.cwd() / "experiment.toml")
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save experiment file", start,
                                                        "Experiment files (*.toml)")
        return self.save(name) if name else False

    # ------------------------------------------------------------ validation
    def experiment(self) -> Experiment:
        """The validated experiment (text + form changes); raises :class:`ConfigError` naming the problem."""
        text = self.editor.toPlainText()
        if not text.strip():
            raise ConfigError("no experiment: open an experiment file or write one in the TOML tab")
        return experiment_from_text(text, self.path, self.overrides())

    def revalidate(self) -> bool:
        try:
            exp = self.experiment()
        except ConfigError as exc:
            self._show_status(False, str(exc))
            data = self._file_sections()
            if data:
                self._show_values({s: {k: self._overrides.get(s, {}).get(k, data.get(s, {}).get(k, spec.default))
                                       for k, spec in f.items()} for s, f in SCHEMA.items()})
            return False
        self._show_values(exp.sections)
        s = exp.sections
        kind = chip_kind(s["chip"]["type"])
        net = kind.describe(s) if kind.describe is not None else f"{kind.name} chip"
        self._show_status(True, f"valid: {s['learning']['rule']} on a {net}, task {s['task']['name']}, "
                                f"{s['run']['epochs']} epochs, backend {s['backend']['kind']}")
        return True

    def _show_values(self, sections: dict) -> None:
        self._syncing = True
        try:
            for (section, key) in self._widgets:
                if key in sections.get(section, {}):
                    self._set_widget(section, key, sections[section][key])
            kind = sections.get("backend", {}).get("kind", "ideal")
            if kind in BACKENDS:
                self.backend_box.setCurrentText(kind)
            self._filter_form(sections)
        finally:
            self._syncing = False

    def _filter_form(self, sections: dict) -> None:
        """Show the keys of the chip type and rule: the others would be errors in the file (type) or are
        never read (rule); a key the file or the form sets that the rule does not read stays, greyed."""
        chip_type = sections.get("chip", {}).get("type") or registry.DEFAULT_KIND
        try:
            kind = chip_kind(chip_type)
        except Exception:  # an unknown type: the status line says so; show every key meanwhile
            kind = None
        rule = sections.get("learning", {}).get("rule") or (kind.default_rule if kind is not None else "")
        if kind is not None:
            self._fill_rules(chip_type)
        given = self._file_sections()
        self.shown = {}
        for (section, key), w in self._widgets.items():
            types = SCHEMA[section][key].types
            rules = self._rule_tags.get((section, key))
            fits_type = kind is None or types is None or chip_type in types
            read = rules is None or rule in rules
            written = key in given.get(section, {}) or key in self._overrides.get(section, {})
            shown = fits_type and (read or written)
            label = self._labels[(section, key)]
            w.setVisible(shown)
            label.setVisible(shown)
            label.setEnabled(read)
            label.setToolTip(self._tips[(section, key)] if read else
                             f"rule {rule} does not read this key (it is in the file)\n\n{self._tips[(section, key)]}")
            if shown:
                self.shown.setdefault(section, []).append(key)

    def _fill_rules(self, chip_type: str) -> None:
        """The rule selector lists the chip type's rules (the first is the default)."""
        box = self._widgets[("learning", "rule")]
        rules = ["(default)"] + list(kind_rules(chip_type))
        if [box.itemText(i) for i in range(box.count())] == rules:
            return
        current = box.currentText()
        box.blockSignals(True)
        box.clear()
        box.addItems(rules)
        if current not in rules:
            box.addItem(current)  # a rule the type does not take: kept visible, the status line says why
        box.setCurrentText(current)
        box.blockSignals(False)

    def shown_keys(self, section: str) -> list[str]:
        """The keys of ``[section]`` the form shows now."""
        return list(self.shown.get(section, []))

    def _show_status(self, ok: bool, message: str) -> None:
        self.valid, self.message = ok, message
        color = "#106010" if ok else "#b00000"
        mark = "✔" if ok else "✘"
        self.status.setText(f"<span style='color:{color}'>{mark} {_html(message)}</span>")
        self.validated.emit(ok, message)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
