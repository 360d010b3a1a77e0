"""Live plots: curves on growing numpy buffers, drawn with peak downsampling and clip-to-view.

Every curve keeps its samples in an :class:`~labtrain.gui.buffers.XYBuffer`
and hands pyqtgraph views of it; a plot redraws only curves that changed, at
most once per timer tick, so 10^5 points per curve stay fluid (see
``benchmarks/guilib.py``).  Axes carry units; SI prefixes are switched off
where they would lie (V^2).

Layout: every plot is a title line, the plot, and a key line below it.  Titles
and keys are Qt labels that wrap onto a second line rather than being cut, and
the key (the legend) never covers the data.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from labtrain.gui.buffers import XYBuffer

__all__ = ["configure_pyqtgraph", "LiveCurve", "LivePlot", "LossPlot", "AccuracyPlot", "OutputsPlot",
           "FidelityPlot", "ScopePlot", "COLORS", "TRAIN", "TEST", "BATCH"]

# Colour-blind-safe (Okabe-Ito / tab10-like) palette.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
          "#882255", "#44AA99", "#999933", "#AA4499"]
TRAIN, TEST, BATCH = "#0072B2", "#D55E00", "#9BB7D4"


_QUIET = ("does not support propagateSizeHints",)
_handler_installed = False


def _qt_message(mode, context, message) -> None:
    if any(q in message for q in _QUIET):
        return
    import sys

    sys.stderr.write(f"Qt: {message}\n")


def configure_pyqtgraph() -> None:
    """Light background (figures look like figures), no antialiasing (speed); silence the offscreen
    platform's harmless "propagateSizeHints" warnings."""
    global _handler_installed
    pg.setConfigOptions(background="w", foreground="#202020", antialias=False)
    if not _handler_installed:
        QtCore.qInstallMessageHandler(_qt_message)
        _handler_installed = True


def _style_plot(item: pg.PlotItem) -> None:
    # No grid by default (right-click > Plot options > Grid turns it on): pyqtgraph draws grid lines as
    # part of the axes, so every change of range repaints the whole plot area -- ~10 ms a frame.
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setTextPen("#202020")
        axis.setPen("#505050")
        # Keep the rendered axis as a pixmap: replaying its tick labels costs ~4 ms a paint otherwise,
        # and most frames leave most axes unchanged.
        axis.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _shrinkable(label: pg.LabelItem) -> None:
    """Let a pyqtgraph label be narrower than its text (it makes its text width a minimum, and a plot
    whose minimum exceeds its panel is drawn clipped)."""
    hint = QtCore.Qt.SizeHint

    def update_min() -> None:
        b = label.itemRect()
        label.setMinimumWidth(0)
        label.setMinimumHeight(b.height())
        label._sizeHint = {hint.MinimumSize: (0, b.height()), hint.PreferredSize: (b.width(), b.height()),
                           hint.MaximumSize: (-1, -1), hint.MinimumDescent: (0, 0)}
        label.updateGeometry()

    label.updateMin = update_min
    update_min()


def set_title(item: pg.PlotItem, text: str, size: str = "10pt") -> None:
    """Set a pyqtgraph plot title that never widens the layout (small in-layout plots; the live plots have a
    wrapping title label instead, see :class:`LivePlot`)."""
    if getattr(item, "_labtrain_title", None) == text:
        return
    if not hasattr(item, "_labtrain_title"):
        _shrinkable(item.titleLabel)
    item._labtrain_title = text
    item.setTitle(text, size=size)


def title_label(text: str = "") -> QtWidgets.QLabel:
    """A plot title above a plot: bold, centred, wrapping onto a second line instead of being cut."""
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    label.setContentsMargins(4, 3, 4, 0)
    label.setStyleSheet("font-weight: bold; color: #202020; background: white;")
    return label


def key_label() -> QtWidgets.QLabel:
    """A legend line below a plot (wraps; never over the data)."""
    label = QtWidgets.QLabel()
    label.setWordWrap(True)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    label.setContentsMargins(6, 0, 6, 2)
    label.setStyleSheet("background: white; font-size: 8pt;")
    return label


_GLYPH = {None: "", "o": "&#9679;", "s": "&#9632;", "t": "&#9660;", "t1": "&#9650;", "d": "&#9670;", "+": "+"}


def key_entry(name: str, color: str, *, line: str = "solid", symbol: str | None = None) -> str:
    """HTML of one key entry: a short line (solid / dash / none) with the symbol on it, then the name."""
    mark = {"solid": "&#9473;", "dash": "&#9476;", "none": ""}[line]
    glyph = _GLYPH.get(symbol, "&#9679;")
    sample = f"{mark}{glyph}{mark}" if mark else glyph
    return f"<span style='color:{color}'>{sample}</span>&nbsp;{html.escape(name)}"


class LiveCurve:
    """One curve fed by appends; :meth:`refresh` hands the plot the new data if any.

    Past ``DENSE`` points a curve drops its symbols and draws with a 1-px pen
    (wide pens and thousands of symbols are what makes Qt's raster engine slow).
    """

    DENSE = 300

    def __init__(self, item: pg.PlotDataItem, capacity: int = 1024, log_y: bool = False) -> None:
        self.item = item
        #: on a log-y plot the buffer holds log10(y), computed once per point (pyqtgraph would redo the
        #: whole array every frame), and the item itself is left in linear mode
        self.log_y = log_y
        if log_y:
            item.setLogMode(False, False)
        self.buffer = XYBuffer(capacity)
        self.dirty = False
        self._dense = False
        self._style = (QtGui.QPen(item.opts["pen"]), item.opts.get("symbol"))
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)

    def append(self, x: float, y: float) -> None:
        self.buffer.append(x, math.log10(max(y, 1e-300)) if self.log_y else y)
        self.dirty = True

    def extend(self, x, y) -> None:
        y = np.asarray(y, float)
        self.buffer.extend(x, np.log10(np.maximum(y, 1e-300)) if self.log_y else y)
        self.dirty = True

    @property
    def y(self) -> np.ndarray:
        """The values as appended (not log10)."""
        return 10.0 ** self.buffer.y if self.log_y else self.buffer.y

    def clear(self) -> None:
        self.buffer.clear()
        self.item.setData([], [])
        self.dirty = False
        if self._dense:
            self._dense = False
            self.item.setPen(self._style[0])
            self.item.setSymbol(self._style[1])

    def refresh(self) -> bool:
        if not self.dirty:
            return False
        if not self._dense and len(self.buffer) > self.DENSE:
            self._dense = True
            pen = QtGui.QPen(self.item.opts["pen"])
            if pen.widthF() > 1:
                pen.setWidthF(1.0)
                self.item.setPen(pen)
            if self.item.opts.get("symbol") is not None:
                self.item.setSymbol(None)
        self.item.setData(self.buffer.x, self.buffer.y, skipFiniteCheck=True)
        self.dirty = False
        return True

    def __len__(self) -> int:
        return len(self.buffer)


class LivePlot(QtWidgets.QWidget):
    """A plot with a title line, labelled axes, live curves and a key line (the legend) below the data."""

    def __init__(self, title: str, x_label: str, x_units: str | None, y_label: str, y_units: str | None, *,
                 log_y: bool = False, si_prefix_y: bool = True, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.title = title_label(title)
        self.view = pg.PlotWidget()
        self.key = key_label()
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.key)
        self.plot_item: pg.PlotItem = self.view.getPlotItem()
        self.plot_item.setLabel("bottom", x_label, units=x_units)
        self.plot_item.setLabel("left", y_label, units=y_units)
        if not si_prefix_y:
            self.plot_item.getAxis("left").enableAutoSIPrefix(False)
        _style_plot(self.plot_item)
        self.log_y = log_y
        if log_y:
            self.plot_item.setLogMode(y=True)
            # curves hand pyqtgraph log10 data themselves; the menu's log toggles would log them twice
            for check in (self.plot_item.ctrl.logXCheck, self.plot_item.ctrl.logYCheck):
                check.setEnabled(False)
        self.curves: dict[str, LiveCurve] = {}
        #: key entries (name, HTML) by item, in the order added
        self._entries: dict[int, tuple[str, str]] = {}
        self._overlays: dict[str, list[pg.PlotDataItem]] = {}
        self._note = pg.TextItem("", color="#707070", anchor=(0.5, 0.5))
        self._note.setZValue(100)
        self.plot_item.getViewBox().addItem(self._note, ignoreBounds=True)
        self.plot_item.getViewBox().sigRangeChanged.connect(self._place_note)

    def set_title(self, text: str) -> None:
        if self.title.text() != text:
            self.title.setText(text)

    # --------------------------------------------------- key (legend below the plot)
    def add_key(self, item: object, name: str, color: str, *, line: str = "solid",
                symbol: str | None = None) -> None:
        """List ``item`` in the key: its line (solid / dash / none) and symbol in ``color``, then ``name``."""
        self._entries[id(item)] = (name, key_entry(name, color, line=line, symbol=symbol))
        self._update_key()

    def remove_key(self, item: object) -> None:
        self._entries.pop(id(item), None)
        self._update_key()

    def _update_key(self) -> None:
        self.key.setText(" &nbsp; ".join(entry for _, entry in self._entries.values()))
        self.key.setVisible(bool(self._entries))

    def key_names(self) -> list[str]:
        """The names in the key, in order."""
        return [name for name, _ in self._entries.values()]

    def add_curve(self, key: str, name: str, color: str, width: float = 1.0, symbol: str | None = None,
                  style: QtCore.Qt.PenStyle = QtCore.Qt.PenStyle.SolidLine, symbol_size: int = 5) -> LiveCurve:
        pen = pg.mkPen(color, width=width, style=style)
        kw = {}
        if symbol:
            kw = {"symbol": symbol, "symbolSize": symbol_size, "symbolBrush": color, "symbolPen": None}
        item = self.plot_item.plot([], [], pen=pen, **kw)
        line = "dash" if style == QtCore.Qt.PenStyle.DashLine else "solid"
        self.add_key(item, name, color, line=line, symbol=symbol)
        curve = LiveCurve(item, log_y=self.log_y)
        self.curves[key] = curve
        return curve

    def refresh(self) -> bool:
        changed = False
        for curve in self.curves.values():
            changed |= curve.refresh()
        return changed

    def clear_curves(self) -> None:
        for curve in self.curves.values():
            curve.clear()

    # --------------------------------------------------- overlays (past runs)
    def add_overlay(self, key: str, x: np.ndarray, y: np.ndarray, name: str, color: str) -> None:
        pen = pg.mkPen(color, width=1, style=QtCore.Qt.PenStyle.DashLine)
        y = np.asarray(y, float)
        item = self.plot_item.plot(np.asarray(x, float), y, pen=pen)
        self.add_key(item, name, color, line="dash")
        if self.log_y:
            item.setLogMode(False, False)
            item.setData(np.asarray(x, float), np.log10(np.maximum(y, 1e-300)))
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)
        self._overlays.setdefault(key, []).append(item)

    def remove_overlays(self, key: str | None = None) -> None:
        keys = list(self._overlays) if key is None else [key]
        for k in keys:
            for item in self._overlays.pop(k, []):
                self.plot_item.removeItem(item)
                self.remove_key(item)

    def overlay_items(self) -> list[pg.PlotDataItem]:
        return [item for items in self._overlays.values() for item in items]

    # --------------------------------------------------- note in the middle
    def set_note(self, text: str) -> None:
        """A grey message in the middle of the plot (empty: none)."""
        self._note.setText(text)
        self._place_note()

    def _place_note(self, *args) -> None:
        if not self._note.toPlainText():
            return
        (x0, x1), (y0, y1) = self.plot_item.getViewBox().viewRange()
        self._note.setPos((x0 + x1) / 2, (y0 + y1) / 2)


class LossPlot(LivePlot):
    """Loss vs steps: per-step batch loss and train/test evaluations (log scale, V^2)."""

    def __init__(self, parent=None) -> None:
        super().__init__("Loss", "steps completed", None, "loss (V²)", None, log_y=True,
                         si_prefix_y=False, parent=parent)
        self.add_curve("batch", "batch (train step)", BATCH, width=1)
        self.add_curve("train", "train set", TRAIN, width=2, symbol="o")
        self.add_curve("test", "test set", TEST, width=2, symbol="s")
        self.setToolTip("Batch loss of every training step, and the loss on the whole train and test sets at "
                        "every evaluation; x = steps completed (0 = before training).\n"
                        "Voltage outputs: loss = ½⟨‖v − t‖²⟩ (V²), the mean over the examples.")

    def set_unit(self, unit: str) -> None:
        """The run's loss unit: ``V^2`` (squared error of output voltages) or ``1`` (dimensionless cost)."""
        if unit == "V^2":
            self.plot_item.setLabel("left", "loss (V²)")
        else:
            self.plot_item.setLabel("left", "loss (dimensionless)" if unit in ("", "1") else f"loss ({unit})")


class AccuracyPlot(LivePlot):
    """Classification accuracy (%) at evaluations."""

    def __init__(self, parent=None) -> None:
        super().__init__("Accuracy", "steps completed", None, "accuracy (%)", None, si_prefix_y=False, parent=parent)
        self.add_curve("train", "train set", TRAIN, width=2, symbol="o")
        self.add_curve("test", "test set", TEST, width=2, symbol="s")
        self.plot_item.setYRange(0, 100, padding=0.02)
        self.plot_item.getViewBox().enableAutoRange(axis="y", enable=False)


class FidelityPlot(LivePlot):
    """Cosine between the gradient estimate and the exact gradient, per step."""

    def __init__(self, parent=None) -> None:
        super().__init__("Gradient fidelity", "step", None, "cos(estimate, exact)", None, si_prefix_y=False,
                         parent=parent)
        self.add_curve("cosine", "cosine", "#009E73")
        self.remove_key(self.curves["cosine"].item)  # one curve: the axis says what it is
        # an exact estimator gives 1 +- 1e-16: never zoom in below a span of 0.02
        self.plot_item.getViewBox().setLimits(minYRange=0.02)
        self.plot_item.addItem(pg.InfiniteLine(pos=1.0, angle=0, pen=pg.mkPen("#909090", style=QtCore.Qt.PenStyle.DotLine)))
        self.setToolTip("Cosine between each step's gradient estimate and the exact (adjoint) gradient of the "
                        "noise-free network model at the same parameters and batch; 1 = same direction.\n"
                        "Computed in the worker process; on big networks only every k-th step (kept under "
                        "25 % of the step time).")


class OutputsPlot(LivePlot):
    """Measured outputs vs targets for the current batch, one colour per output, with the ideal y = x."""

    MAX_POINTS = 4000

    def __init__(self, parent=None) -> None:
        super().__init__("Outputs vs targets", "target", "V", "measured output", "V", parent=parent)
        self.identity = self.plot_item.plot([], [], pen=pg.mkPen("#808080", width=1, style=QtCore.Qt.PenStyle.DashLine))
        self.add_key(self.identity, "ideal (output = target)", "#808080", line="dash")
        self.scatters: list[pg.ScatterPlotItem] = []
        self.plot_item.getViewBox().setDefaultPadding(0.06)

    def set_unit(self, unit: str) -> None:
        """Unit of outputs and targets: ``V``, ``rad`` (phases) or ``""`` (dimensionless states)."""
        what = {"rad": ("target phase", "output phase")}.get(unit, ("target", "measured output"))
        units = unit if unit == "V" else None
        suffix = f" ({unit})" if unit and units is None else ""
        self.plot_item.setLabel("bottom", what[0] + suffix, units=units)
        self.plot_item.setLabel("left", what[1] + suffix, units=units)

    def set_outputs(self, labels: list[str]) -> None:
        for s in self.scatters:
            self.plot_item.removeItem(s)
            self.remove_key(s)
        self.scatters = []
        for k, label in enumerate(labels):
            color = QtGui.QColor(COLORS[k % len(COLORS)])
            color.setAlpha(170)
            s = pg.ScatterPlotItem([], [], size=6, pen=None, brush=pg.mkBrush(color))
            self.plot_item.addItem(s)
            self.add_key(s, label, COLORS[k % len(COLORS)], line="none", symbol="o")
            self.scatters.append(s)

    def show_batch(self, output_v: np.ndarray, targets_v: np.ndarray, step: int) -> None:
        out, tgt = np.atleast_2d(output_v), np.atleast_2d(targets_v)
        n = min(len(out), self.MAX_POINTS)
        if len(self.scatters) != out.shape[1]:
            self.set_outputs([f"output {k}" for k in range(out.shape[1])])
        for k, s in enumerate(self.scatters):
            s.setData(tgt[:n, k], out[:n, k])
        lo = float(min(out[:n].min(), tgt[:n].min()))
        hi = float(max(out[:n].max(), tgt[:n].max()))
        pad = 0.05 * (hi - lo or 1.0)
        self.identity.setData([lo - pad, hi + pad], [lo - pad, hi + pad])
        self.set_title(f"Outputs vs targets (step {step + 1}, {len(out)} examples)")

    def clear_batch(self) -> None:
        for s in self.scatters:
            s.setData([], [])
        self.identity.setData([], [])


class ScopePlot(QtWidgets.QWidget):
    """The last acquisition's AO (written) and AI (read) waveforms; time in s (shown SI-prefixed, e.g. ms).

    The first view shows the first few plateaus (examples), where settling is
    visible; zoom out (right-drag, wheel, or "A" in the corner) for all of them.
    """

    FIRST_PLATEAUS = 8

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.title = title_label("Scope: last acquisition")
        layout.addWidget(self.title)
        self.glw = pg.GraphicsLayoutWidget()
        layout.addWidget(self.glw, 1)
        self.ao_key = key_label()
        self.ai_key = key_label()
        for key in (self.ao_key, self.ai_key):
            layout.addWidget(key)
        self.ao = self.glw.addPlot(row=0, col=0)
        self.ai = self.glw.addPlot(row=1, col=0)
        self.ao.setLabel("left", "AO written", units="V")
        self.ai.setLabel("left", "AI read", units="V")
        self.ai.setLabel("bottom", "time", units="s")
        self.ai.setXLink(self.ao)
        self.ao.getAxis("bottom").setStyle(showValues=False)
        for p in (self.ao, self.ai):
            _style_plot(p)
            p.getAxis("left").setWidth(60)
        self._ao_items: list[pg.PlotDataItem] = []
        self._ai_items: list[pg.PlotDataItem] = []
        self._windows = self.ai.plot([], [], pen=pg.mkPen("#000000", width=2.5), connect="pairs")
        self._windows.setZValue(10)
        self._shape: tuple | None = None
        self.note = pg.TextItem("", color="#707070", anchor=(0.5, 0.5))
        self.ai.getViewBox().addItem(self.note, ignoreBounds=True)
        self.setToolTip("Waveforms of the chip's last acquisition (the last phase of the last step): AO channels "
                        "as written (after slew shaping), AI channels of the output nodes as read.\nBlack bars: "
                        "each example's averaging window (settling samples excluded) at the value the chip used.\n"
                        "Starts zoomed on the first plateaus; right-drag or the wheel to zoom, 'A' to see all.")

    def set_unavailable(self, text: str) -> None:
        self.clear()
        self.note.setText(text)
        self.note.setPos(0.5, 0.5)
        self.ai.setXRange(0, 1, padding=0)
        self.ai.setYRange(0, 1, padding=0)
        self.ao.setYRange(0, 1, padding=0)

    def clear(self) -> None:
        for items, plot in ((self._ao_items, self.ao), (self._ai_items, self.ai)):
            for item in items:
                plot.removeItem(item)
            items.clear()
        self._windows.setData([], [])
        self.note.setText("")
        self.title.setText("Scope: last acquisition")
        self.ao_key.setText("")
        self.ai_key.setText("")
        self._shape = None

    MAX_KEY = 16

    @staticmethod
    def _key(prefix: str, labels: list[str], extra: str = "") -> str:
        if len(labels) > ScopePlot.MAX_KEY:
            return (f"<b>{prefix}</b> {len(labels)} channels, {labels[0]} … {labels[-1]} (colours repeat every "
                    f"{len(COLORS)})" + extra)
        spans = [f"<span style='color:{COLORS[k % len(COLORS)]}'>&#9632;</span>&nbsp;{lab}"
                 for k, lab in enumerate(labels)]
        return f"<b>{prefix}</b> " + " &nbsp;".join(spans) + extra

    def _curves(self, plot, items, labels) -> None:
        if len(items) == len(labels):
            return
        for item in items:
            plot.removeItem(item)
        items.clear()
        for k in range(len(labels)):
            item = plot.plot([], [], pen=pg.mkPen(COLORS[k % len(COLORS)], width=1))
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            items.append(item)

    def show_waveforms(self, w: dict) -> None:
        self.note.setText("")
        rate = float(w["rate_hz"])
        ao, ai = np.atleast_2d(w["ao_v"]), np.atleast_2d(w["ai_v"])
        ao_labels = [c.split("/")[-1] for c in w["ao_channels"]]
        ai_labels = [c.split("/")[-1] for c in w["ai_channels"]]
        self._curves(self.ao, self._ao_items, ao_labels)
        self._curves(self.ai, self._ai_items, ai_labels)
        t = np.arange(ao.shape[1]) / rate
        for item, y in zip(self._ao_items, ao):
            item.setData(t, y, skipFiniteCheck=True)
        t_ai = np.arange(ai.shape[1]) / rate
        for item, y in zip(self._ai_items, ai):
            item.setData(t_ai, y, skipFiniteCheck=True)
        p, settle = int(w["plateau_samples"]), int(w["settle_samples"])
        n_b = ai.shape[1] // p if p else 0
        if n_b and n_b <= 5000:
            win = ai[:, :n_b * p].reshape(len(ai), n_b, p)[:, :, settle:].mean(axis=2)  # (n_ai, n_b)
            t0 = (np.arange(n_b) * p + settle) / rate
            t1 = (np.arange(n_b) * p + p - 1) / rate
            xs = np.repeat(np.c_[t0, t1][None], len(ai), axis=0).reshape(-1)
            ys = np.repeat(win[..., None], 2, axis=2).reshape(-1)
            self._windows.setData(xs, ys)
        else:
            self._windows.setData([], [])
        self.title.setText(f"Scope: last acquisition ({n_b} examples at {rate / 1e3:g} kS/s)")
        self.ao_key.setText(self._key("AO", ao_labels))
        self.ai_key.setText(self._key("AI", ai_labels, " &nbsp;<b>&#9644;</b>&nbsp;averaged window"))
        shape = (ao.shape, ai.shape, rate)
        if shape != self._shape:  # a new kind of acquisition: show its first plateaus
            self._shape = shape
            for plot in (self.ao, self.ai):
                plot.enableAutoRange(axis="y")
            t_end = min(ao.shape[1], self.FIRST_PLATEAUS * p if p else ao.shape[1]) / rate
            self.ai.setXRange(0, t_end, padding=0.01)
            self.ao.setAutoVisible(y=True)
            self.ai.setAutoVisible(y=True)
