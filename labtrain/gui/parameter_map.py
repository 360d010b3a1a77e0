"""The chip's trainable parameters, drawn where they live.

* ``network``  -- graph chips: every edge drawn with colour and width by its
  conductance (log scale, fixed to the chip's bounds so colours compare over
  time); terminals marked (inputs, outputs, grounds).  A chip with parameters
  on some edges only (``parameter_edges``: a diode network's pots) colours
  those edges and draws the fixed elements thin and grey.  Edges are binned into
  a few colour levels, one ``connect="pairs"`` curve per level, so a redraw
  is a handful of calls whatever the number of edges.
* ``heat map`` -- lattices: each edge's conductance painted at its midpoint
  on a doubled grid (node sites empty), terminals on top.
* ``layers``   -- layered networks: one heat map per weight matrix (rows: the
  units driven, columns: the units driving them), biases as strips below.
  The matrices come from the chip's declared parameter blocks
  (``Chip.parameter_blocks``, e.g. a non-reciprocal rate network's ``W_f[l]``)
  or, for a layered graph, from its edges grouped by pair of layers.  Two
  thousand weights as bars are a solid blob; as matrices they show structure.
  Signed weights use a colour scale of +-(largest |weight| so far).
* ``bars``     -- one bar per parameter (DNPU control electrodes, or any chip
  without a network drawing), each drawn inside a dashed box spanning its
  allowed range (conductances: points on a log axis between the bounds);
  the bars are named by ``labels`` when the chip names its parameters.

The title (what is drawn, after which step, its range) sits on its own line
above the drawing; the key (terminal symbols) and the view selectors below it,
outside the data.

Signed edge parameters (XY couplings in rad/s: > 0 ferromagnetic, < 0
antiferromagnetic) use a diverging colour map centred on 0.  Chips whose
parameter vector starts with one value per edge and goes on with others (XY
bias fields) draw the edge part on the graph views and everything as bars.
Spatial maps recorded by the run (:mod:`labtrain.kinds.xy.maps`, :meth:`set_maps`)
add a *show* choice on the lattice heat map: the couplings, or the response of
every oscillator to the inputs, ``|dphi_i/dphi_in|`` on a log colour scale.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from labtrain.gui.graph_layout import block_grids, is_layered, layer_blocks, network_positions
from labtrain.gui.plots import set_title

__all__ = ["ParameterMap", "MODES"]

MODES = ("network", "heat map", "layers", "bars")
SHOW = ("couplings", "response")
N_LEVELS = 24
#: response colour scale: log10 of |dphi_i/dphi_in| from 1e-3 (and below) to 1
RESPONSE_LOG_RANGE = (-3.0, 0.0)
_PREFIXED_UNITS = ("S", "V", "A", "ohm", "Ω", "Hz", "s", "F", "W")
_ROLE_STYLE = {  # role: (symbol, size, colour, legend, glyph in the key)
    "inputs": ("t2", 13, "#E69F00", "inputs", "&#9654;"),
    "outputs": ("s", 11, "#CC79A7", "outputs", "&#9632;"),
    "grounds": ("t", 12, "#000000", "ground", "&#9660;"),
}
#: a layered graph with more edges than this opens on the per-layer matrices rather than the drawing
LAYERS_ABOVE_EDGES = 200


def _si(value: float, unit: str) -> str:
    if unit in ("", "1"):  # dimensionless
        return f"{value:.3g}"
    if unit not in _PREFIXED_UNITS:  # rad/s, dimensionless, ...: no SI prefix ("500 mrad/s" reads badly)
        return f"{value:.3g} {unit}".rstrip()
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    exp3 = int(math.floor(math.log10(abs(value)) / 3))
    exp3 = max(-5, min(4, exp3))
    prefix = {-5: "f", -4: "p", -3: "n", -2: "µ", -1: "m", 0: "", 1: "k", 2: "M", 3: "G", 4: "T"}[exp3]
    return f"{value / 10 ** (3 * exp3):.3g} {prefix}{unit}"


def _nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``x``."""
    k = math.floor(math.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**k >= x * (1 - 1e-12):
            return m * 10.0**k
    return 10.0 ** (k + 1)


class ParameterMap(QtWidgets.QWidget):
    """Network drawing / lattice heat map / bars of the chip's parameters."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.title = QtWidgets.QLabel("<b>Parameters</b> — no run yet")
        self.title.setWordWrap(True)  # a long title takes two lines; it is never cut or overlapped
        self.title.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.title.setContentsMargins(4, 2, 4, 0)
        self.title.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        layout.addWidget(self.title)
        self.mode_box = QtWidgets.QComboBox()
        self.mode_box.addItems(MODES)
        self.mode_box.setToolTip("network: edges coloured and sized by conductance; heat map: lattices; "
                                 "layers: one matrix per layer of a layered network; bars: one bar per parameter")
        self.mode_box.currentTextChanged.connect(self._mode_changed)
        self.view_box = QtWidgets.QComboBox()
        self.view_box.addItems(SHOW)
        self.view_box.setToolTip("heat map of an XY lattice: the couplings, or the response of every oscillator to "
                                 "the inputs |dphi_i/dphi_in| (linear response at the free equilibria, mean over "
                                 "inputs, examples and random starts; recorded every [run] record_maps_every steps)")
        self.view_box.setEnabled(False)
        self.view_box.currentTextChanged.connect(self._show_changed)
        self.glw = pg.GraphicsLayoutWidget()
        layout.addWidget(self.glw, 1)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        self.key = QtWidgets.QLabel()
        self.key.setWordWrap(True)
        self.key.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.key.setStyleSheet("font-size: 8pt;")
        row.addWidget(self.key, 1)
        row.addWidget(QtWidgets.QLabel("view"))
        row.addWidget(self.mode_box)
        row.addWidget(QtWidgets.QLabel("show"))
        row.addWidget(self.view_box)
        layout.addLayout(row)
        self.plot = self.glw.addPlot(row=0, col=0)
        self.cmap = self._seq_cmap = pg.colormap.get("viridis")
        self._div_cmap = pg.colormap.get("CET-D1")  # blue - white - red
        self._resp_cmap = pg.colormap.get("inferno")
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=self.cmap, interactive=False, width=14)
        self.colorbar.axis.setWidth(78)  # room for "100 µS" (pyqtgraph fixes it at 45 px)
        self.glw.addItem(self.colorbar, row=0, col=1)
        self.network = None
        self.blocks: tuple = ()
        self._grids: list[tuple[str, np.ndarray]] = []
        self._layers: pg.GraphicsLayout | None = None
        self._layer_images: list[tuple[pg.ImageItem, np.ndarray]] = []
        self._layer_span = 0.0
        self.values: np.ndarray | None = None
        self.mode = "bars"
        self._lo = self._hi = 1.0
        self.unit, self.name = "", "parameter"
        self._edge_items: list[pg.PlotDataItem] = []
        self._image: pg.ImageItem | None = None
        self._bars: pg.BarGraphItem | pg.PlotDataItem | None = None
        self._positions: np.ndarray | None = None
        self._step = -1
        self.n_edge_values = 0
        self.signed = False
        self.showing = "couplings"
        self.maps: dict | None = None
        self._maps_step = -1
        self._p_lower = self._p_upper = np.zeros(0)
        self.labels: tuple[str, ...] = ()
        self._edge_of: np.ndarray | None = None  # edge of each drawn parameter when not every edge has one
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")

    # ------------------------------------------------------------ setup
    def configure(self, network, lower: np.ndarray, upper: np.ndarray, unit: str, name: str,
                  values: np.ndarray, edge_parameters: int | None = None, labels=(), blocks=(),
                  parameter_edges=()) -> None:
        """A new chip: pick the default view and draw ``values``.

        ``edge_parameters``: how many leading parameters are one value per
        edge (default: all of them); only those are drawn on the graph views.
        ``blocks``: the chip's parameter blocks (``Chip.parameter_blocks``);
        weight matrices among them enable the ``layers`` view.
        ``parameter_edges``: the edge of every parameter when the chip has
        parameters on some edges only, all of one unit (the network view
        draws the other edges as fixed elements).
        """
        self.network = network
        self.blocks = tuple(blocks or ())
        self.unit, self.name = unit, name
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        self._p_lower, self._p_upper = lower.copy(), upper.copy()
        self.labels = tuple(str(x) for x in labels) if labels is not None and len(labels) == len(lower) else ()
        n = len(lower)
        m = n if edge_parameters is None else int(edge_parameters)
        edge_of = np.asarray(parameter_edges if parameter_edges is not None else (), np.int64)
        some_edges = bool(network is not None and 0 < len(edge_of) == n < len(network.edges) and unit != "mixed"
                          and len(np.unique(edge_of)) == n and 0 <= edge_of.min() and edge_of.max() < len(network.edges))
        self._edge_of = edge_of if some_edges else None
        m = n if some_edges else m
        self.n_edge_values = m
        self._bar_lo, self._bar_hi = float(lower.min()), float(upper.max())
        lower, upper = (lower[:m], upper[:m]) if m else (lower, upper)
        self.log = unit == "S" and np.all(lower > 0)
        self.signed = not self.log and float(lower.min()) < 0 < float(upper.max())
        self._lo, self._hi = float(lower.min()), float(upper.max())
        if self.signed:
            self._hi = max(abs(self._lo), abs(self._hi))
            self._lo = -self._hi
        if self._hi <= self._lo:
            self._hi = self._lo + 1.0
        self._positions = None
        self.maps, self._maps_step = None, -1
        self.view_box.blockSignals(True)
        self.view_box.setCurrentText("couplings")
        self.view_box.setEnabled(False)
        self.view_box.blockSignals(False)
        self.showing = "couplings"
        graph_ok = network is not None and 0 < m <= n and (m == len(network.edges) or some_edges)
        self._grids = []
        if any(len(b.get("shape") or ()) == 2 for b in self.blocks):
            self._grids = block_grids(self.blocks)
        elif graph_ok and not some_edges and is_layered(network):
            self._grids = layer_blocks(network)
        self._layer_span = 0.0
        enabled = {"bars": True, "network": graph_ok, "heat map": graph_ok and not some_edges and self._is_lattice(),
                   "layers": bool(self._grids)}
        model = self.mode_box.model()
        for i, mode in enumerate(MODES):
            model.item(i).setEnabled(enabled[mode])
        if self._grids and (not graph_ok or len(network.edges) > LAYERS_ABOVE_EDGES):
            default = "layers"
        elif not graph_ok:
            default = "bars"
        elif self._is_lattice() and not some_edges:
            default = "heat map"
        else:
            default = "network"
        self.values = np.asarray(values, float)
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentText(default)
        self.mode_box.blockSignals(False)
        self._build(default)

    def _is_lattice(self) -> bool:
        net = self.network
        return (net is not None and net.positions is not None and str(net.name).startswith("lattice")
                and np.allclose(net.positions, np.round(net.positions)))

    def _mode_changed(self, mode: str) -> None:
        if self.values is not None:
            self._build(mode)

    def _show_changed(self, what: str) -> None:
        self.showing = what
        if self.values is not None:
            self._build(self.mode)

    def set_maps(self, maps: dict, step: int = -1) -> None:
        """The latest spatial maps of the run (``response_image`` enables the response view on lattices)."""
        self.maps, self._maps_step = maps, step
        self.view_box.setEnabled(self.mode == "heat map" and "response_image" in maps)
        if self.showing == "response" and self.mode == "heat map":
            self._draw_response()

    @property
    def _edge_name(self) -> str:
        return self.name.split("+")[0]

    def _clear_plot(self) -> None:
        self.plot.clear()
        self._edge_items, self._image, self._bars = [], None, None
        self._use_layers(False)
        self.key.setText("")

    def _use_layers(self, on: bool) -> None:
        """Swap the single plot for a grid of per-layer plots (and back)."""
        ci = self.glw.ci
        if on and self._layers is None:
            ci.removeItem(self.plot)
            self.plot.hide()
            self._layers = ci.addLayout(row=0, col=0)
        elif not on and self._layers is not None:
            ci.removeItem(self._layers)
            if self._layers.scene() is not None:
                self._layers.scene().removeItem(self._layers)
            self._layers = None
            self._layer_images = []
            ci.addItem(self.plot, row=0, col=0)
            self.plot.show()

    def _colorbar_ticks(self) -> None:
        axis = self.colorbar.axis
        response = self.showing == "response" and self.mode == "heat map"
        self.cmap = self._resp_cmap if response else self._div_cmap if self.signed else self._seq_cmap
        self.colorbar.setColorMap(self.cmap)
        if response:
            lo, hi = RESPONSE_LOG_RANGE
            self.colorbar.setLevels((lo, hi))
            major = [(float(d), f"{10.0 ** d:g}") for d in range(int(lo), int(hi) + 1)]
            axis.setTicks([major, []])
            axis.setLabel("response |∂φ/∂φ_in| (rad/rad, log)")
            return
        if self.log:
            lo, hi = math.log10(self._lo), math.log10(self._hi)
            self.colorbar.setLevels((lo, hi))
            decades = range(math.ceil(lo - 0.02), math.floor(hi + 0.02) + 1)
            major = [(min(max(float(d), lo), hi), _si(10.0**d, "S")) for d in decades]  # 9.9 uS drawn at the end
            for end, value in ((lo, self._lo), (hi, self._hi)):  # label the ends unless a decade is there
                if all(abs(end - d) > 0.2 for d, _ in major):
                    major.append((end, _si(value, "S")))
            minor = [(d + math.log10(k), "") for d in range(math.floor(lo), math.ceil(hi) + 1) for k in range(2, 10)
                     if lo <= d + math.log10(k) <= hi]
            axis.setTicks([major, minor])
            axis.setLabel("conductance (log scale)")
        else:
            span = self._layer_span if self.mode == "layers" and self.signed and self._layer_span else None
            self.colorbar.setLevels((-span, span) if span else (self._lo, self._hi))
            axis.setTicks(None)
            name = self._edge_name if self.mode != "bars" else self.name
            if self.unit in _PREFIXED_UNITS:
                axis.setLabel(name, units=self.unit)
            else:
                axis.setLabel(f"{name} ({self.unit})" if self.unit not in ("", "1") else name)

    def _norm(self, values: np.ndarray) -> np.ndarray:
        if self.log:
            v = np.log10(np.maximum(values, 1e-300))
            lo, hi = math.log10(self._lo), math.log10(self._hi)
        else:
            v, lo, hi = values, self._lo, self._hi
        return np.clip((v - lo) / (hi - lo), 0.0, 1.0)

    def _build(self, mode: str) -> None:
        self._clear_plot()
        self.mode = mode
        self._colorbar_ticks()
        vb = self.plot.getViewBox()
        if mode == "layers":
            self._build_layers()
            self.set_parameters(self.values, self._step)
            self.view_box.setEnabled(False)
            return
        if mode == "bars":
            self.plot.showAxis("left")
            self.plot.showAxis("bottom")
            self.plot.setLabel("bottom", "parameter index")
            if self.unit in _PREFIXED_UNITS:
                self.plot.setLabel("left", self.name, units=self.unit)
            else:
                self.plot.setLabel("left", f"{self.name} ({self.unit})", units=None)
            vb.setAspectLocked(False)
            n = len(self.values)
            self.plot.setLogMode(y=self.log)
            if self.log:  # conductances span decades: points on a log axis, with the allowed range
                self.plot.getAxis("left").enableAutoSIPrefix(False)
                self.plot.setLabel("left", f"{self.name} (S, log scale)", units=None)
                self._bars = pg.ScatterPlotItem(size=5, pen=None)
                for bound in (self._lo, self._hi):
                    self.plot.addItem(pg.InfiniteLine(pos=math.log10(bound), angle=0, pen=pg.mkPen(
                        "#909090", style=QtCore.Qt.PenStyle.DotLine)))
            elif n <= 400:
                # the allowed range of every parameter: a dashed box behind its bar
                lo, hi = self._p_lower[:n], self._p_upper[:n]
                ranges = pg.BarGraphItem(x=np.arange(n), y0=lo, height=hi - lo, width=0.9, brush=None,
                                         pen=pg.mkPen("#707070", style=QtCore.Qt.PenStyle.DashLine))
                self.plot.addItem(ranges)
                self.plot.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen("#404040")))
                self._bars = pg.BarGraphItem(x=np.arange(n), height=self.values, width=0.6, brush="#0072B2", pen=None)
            else:
                self._bars = pg.PlotDataItem(np.arange(n), self.values, pen=pg.mkPen("#0072B2"))
                self._bars.setDownsampling(auto=True, method="peak")
                self._bars.setClipToView(True)
            self.plot.addItem(self._bars)
            bottom = self.plot.getAxis("bottom")
            if self.labels:
                bottom.setTicks([list(enumerate(self.labels)), []])
                self.plot.setLabel("bottom", "electrode (dashed: allowed range)" if self.unit == "V"
                                   else "parameter (dashed: allowed range)")
            else:
                bottom.setTicks(None)
        else:
            self.plot.setLogMode(y=False)
            self.plot.hideAxis("left")
            self.plot.hideAxis("bottom")
            vb.setAspectLocked(True)
            if self._positions is None:
                self._positions = network_positions(self.network)
            if mode == "network":
                self._build_network()
            else:
                self._build_heatmap()
            self._add_terminals()
        self.set_parameters(self.values, self._step)
        self.view_box.setEnabled(mode == "heat map" and self.maps is not None and "response_image" in self.maps)
        vb.autoRange(padding=0.04)

    def _build_layers(self) -> None:
        """One image per weight matrix (top row of the grid), biases and other vectors as strips below."""
        self._use_layers(True)
        lay = self._layers
        lay.setSpacing(4)
        mats = [(t, g) for t, g in self._grids if g.shape[0] > 1]
        strips = [(t, g) for t, g in self._grids if g.shape[0] == 1]
        lut = self.cmap.getLookupTable(nPts=256)
        self._layer_images = []
        for k, (title, grid) in enumerate(mats + strips):
            strip = grid.shape[0] == 1
            p = lay.addPlot(row=1 if strip and mats else 0, col=0 if strip else k, colspan=max(1, len(mats)) if strip
                            else 1)
            set_title(p, title, size="8pt")
            for side in ("left", "bottom"):
                p.hideAxis(side)
            p.setMenuEnabled(False)
            vb = p.getViewBox()
            vb.invertY(True)  # row 0 (the first unit) at the top
            vb.setMouseEnabled(False, False)
            if strip:
                p.setMaximumHeight(46)
            image = pg.ImageItem(axisOrder="row-major")
            image.setLookupTable(lut)
            p.addItem(image)
            vb.setRange(xRange=(0, grid.shape[1]), yRange=(0, grid.shape[0]), padding=0.0)
            image.setToolTip(f"{title}: rows = units driven, columns = units driving them" if not strip else title)
            self._layer_images.append((image, grid))
        self.key.setText("matrix rows: driven units · columns: driving units")

    def _build_network(self) -> None:
        pos = self._positions
        e = self.network.edges
        if self._edge_of is not None:  # parameters on some edges only: the others are fixed elements, thin grey
            fixed = e[np.setdiff1d(np.arange(len(e)), self._edge_of)]
            seg = np.stack([pos[fixed[:, 0]], pos[fixed[:, 1]]], axis=1)
            item = pg.PlotDataItem(seg[:, :, 0].ravel(), seg[:, :, 1].ravel(), pen=pg.mkPen("#A0A0A0", width=1),
                                   connect="pairs")
            item.setZValue(-1)
            self.plot.addItem(item)
            e = e[self._edge_of]
        self._seg = np.stack([pos[e[:, 0]], pos[e[:, 1]]], axis=1)  # (m, 2 ends, xy)
        for level in range(N_LEVELS):
            u = (level + 0.5) / N_LEVELS
            color = self.cmap.map(u, mode="qcolor")
            strength = abs(2 * u - 1) if self.signed else u  # signed couplings: width by |W|
            width = 0.5 + 2.5 * strength if len(e) <= 5000 else 1.0
            item = pg.PlotDataItem([], [], pen=pg.mkPen(color, width=width), connect="pairs")
            item.setZValue(level)
            self.plot.addItem(item)
            self._edge_items.append(item)

    def _build_heatmap(self) -> None:
        pos = np.round(self._positions).astype(np.int64)
        e = self.network.edges
        d = np.abs(pos[e[:, 0]] - pos[e[:, 1]])
        self._hm_edges = np.flatnonzero((d.max(axis=1) <= 1))  # nearest neighbours and diagonals
        xmin, ymin = pos.min(axis=0)
        self._hm_shape = (2 * (pos[:, 1].max() - ymin) + 1, 2 * (pos[:, 0].max() - xmin) + 1)
        mid = pos[e[self._hm_edges, 0]] + pos[e[self._hm_edges, 1]] - 2 * np.array([xmin, ymin])
        self._hm_flat = mid[:, 1] * self._hm_shape[1] + mid[:, 0]
        self._hm_count = np.bincount(self._hm_flat, minlength=self._hm_shape[0] * self._hm_shape[1])
        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setLookupTable(self.cmap.getLookupTable(nPts=256))
        h, w = self._hm_shape
        self._hm_rect = QtCore.QRectF(xmin - 0.25, ymin - 0.25, w / 2, h / 2)
        self.plot.addItem(self._image)

    def _add_terminals(self) -> None:
        net, pos = self.network, self._positions
        roles = set(net.inputs) | set(net.outputs) | set(net.grounds)
        hidden = np.array([i for i in range(net.n_nodes) if i not in roles], np.int64)
        if 0 < len(hidden) <= 5000:
            size = 4 if self.mode == "network" else 3
            s = pg.ScatterPlotItem(pos[hidden, 0], pos[hidden, 1], size=size, pen=None, brush="#808080")
            s.setZValue(N_LEVELS + 1)
            self.plot.addItem(s)
        key = []
        for role, (symbol, size, color, label, glyph) in _ROLE_STYLE.items():
            idx = list(getattr(net, role))
            if not idx:
                continue
            s = pg.ScatterPlotItem(pos[idx, 0], pos[idx, 1], symbol=symbol, size=size,
                                   pen=pg.mkPen("#ffffff", width=1), brush=color)
            s.setZValue(N_LEVELS + 2)
            self.plot.addItem(s)
            key.append(f"<span style='color:{color}'>{glyph}</span>&nbsp;{label} ({len(idx)})")
        if 0 < len(hidden) <= 5000:
            key.append(f"<span style='color:#808080'>&#9679;</span>&nbsp;other nodes ({len(hidden)})")
        if self._edge_of is not None and self.mode == "network":
            n_fixed = len(net.edges) - len(self._edge_of)
            key.append(f"<span style='color:#A0A0A0'>&#9472;</span>&nbsp;fixed elements ({n_fixed})")
        self.key.setText(" &nbsp; ".join(key))

    # ------------------------------------------------------------ update
    def set_parameters(self, values: np.ndarray, step: int = -1) -> None:
        values = np.asarray(values, float)
        self.values, self._step = values, step
        if self.mode == "bars" and self._bars is not None:
            if isinstance(self._bars, pg.ScatterPlotItem):
                u = self._norm(values)
                lut = self.cmap.getLookupTable(nPts=256, alpha=False)
                rgb = lut[np.minimum((u * 255).astype(int), 255)]
                self._bars.setData(np.arange(len(values)), np.log10(np.maximum(values, 1e-300)),
                                   brush=[pg.mkBrush(*c) for c in rgb])
            elif isinstance(self._bars, pg.BarGraphItem):
                u = self._norm(values)
                brushes = [pg.mkBrush(self.cmap.map(float(x), mode="qcolor")) for x in u]
                self._bars.setOpts(height=values, brushes=brushes)
            else:
                self._bars.setData(np.arange(len(values)), values)
        edge_values = values[:self.n_edge_values] if self.n_edge_values else values
        if self.mode == "bars":
            pass
        elif self.mode == "layers":
            self._draw_layers(values)
        elif self.mode == "network" and self._edge_items:
            level = np.minimum((self._norm(edge_values) * N_LEVELS).astype(np.int64), N_LEVELS - 1)
            order = np.argsort(level, kind="stable")
            bounds = np.searchsorted(level[order], np.arange(N_LEVELS + 1))
            for k, item in enumerate(self._edge_items):
                idx = order[bounds[k]:bounds[k + 1]]
                seg = self._seg[idx]
                item.setData(seg[:, :, 0].ravel(), seg[:, :, 1].ravel())
        elif self.mode == "heat map" and self._image is not None and self.showing == "response":
            self._draw_response()
        elif self.mode == "heat map" and self._image is not None:
            v = np.log10(np.maximum(edge_values, 1e-300)) if self.log else edge_values
            total = np.bincount(self._hm_flat, weights=v[self._hm_edges], minlength=self._hm_count.size)
            img = np.full(self._hm_count.size, np.nan)
            has = self._hm_count > 0
            img[has] = total[has] / self._hm_count[has]
            lo, hi = (math.log10(self._lo), math.log10(self._hi)) if self.log else (self._lo, self._hi)
            self._image.setImage(img.reshape(self._hm_shape), levels=(lo, hi), autoLevels=False)
            self._image.setRect(self._hm_rect)
        if self.mode == "heat map" and self.showing == "response":
            return  # the title is the response's (_draw_response)
        shown = values if self.mode in ("bars", "layers") else edge_values
        name = self.name if self.mode in ("bars", "layers") else self._edge_name
        vmin, vmax = float(shown.min()), float(shown.max())
        when = "initial" if step < 0 else f"after step {step + 1}"
        what = "Conductances" if self.unit == "S" else \
            (name.replace("_", " ").capitalize() + ("s" if self.mode != "bars" else ""))
        self.title.setText(f"<b>{what}</b> {when}: {_si(vmin, self.unit)} … {_si(vmax, self.unit)}")
        self.title.setToolTip(f"{len(shown)} {name} values ({self.unit}), {when}")

    def _draw_layers(self, values: np.ndarray) -> None:
        if self.log:
            shown, levels = np.log10(np.maximum(values, 1e-300)), (math.log10(self._lo), math.log10(self._hi))
        elif self.signed:
            span = float(np.max(np.abs(values))) if len(values) else 0.0
            if span > self._layer_span or span < 0.25 * self._layer_span:  # grow at once, shrink only by 4x
                self._layer_span = _nice_ceil(span) if span > 0 else 1.0
                self._colorbar_ticks()
            shown, levels = values, (-self._layer_span, self._layer_span)
        else:
            shown, levels = values, (self._lo, self._hi)
        for image, grid in self._layer_images:
            img = np.where(grid >= 0, shown[np.maximum(grid, 0)], np.nan)
            image.setImage(img, levels=levels, autoLevels=False)
            image.setRect(QtCore.QRectF(0, 0, grid.shape[1], grid.shape[0]))  # one unit per cell

    def _draw_response(self) -> None:
        """The response map (log10 |dphi/dphi_in|, mean over inputs) on the node grid."""
        if self._image is None or self.maps is None or "response_image" not in self.maps:
            return
        img = np.asarray(self.maps["response_image"], float)[::-1]  # stored top row first; the plot's y is up
        lo, hi = RESPONSE_LOG_RANGE
        shown = np.log10(np.maximum(img, 10.0 ** lo))
        shown[~np.isfinite(img)] = np.nan
        self._image.setLookupTable(self._resp_cmap.getLookupTable(nPts=256))
        self._image.setImage(shown, levels=(lo, hi), autoLevels=False)
        pos = np.round(self._positions)
        (xmin, ymin), (xmax, ymax) = pos.min(axis=0), pos.max(axis=0)
        self._image.setRect(QtCore.QRectF(xmin - 0.5, ymin - 0.5, xmax - xmin + 1, ymax - ymin + 1))
        when = "initial" if self._maps_step < 0 else f"after step {self._maps_step + 1}"
        out = [float(np.nanmean(img.ravel()[self._node_flat(o)])) for o in self.network.outputs]
        self.title.setText(f"<b>Response to the inputs</b> {when}: at the output{'s' if len(out) > 1 else ''} "
                           + ", ".join(f"{v:.2g}" for v in out) + " rad/rad")
        self.title.setToolTip("|dphi_i/dphi_in| of every oscillator, mean over the inputs, probe examples and "
                              "random starts (linear response at the free equilibria)")

    def _node_flat(self, node: int) -> int:
        """Index of ``node`` in the flattened (top-row-first) response image."""
        pos = np.round(self._positions).astype(np.int64)
        xmin, ymax = pos[:, 0].min(), pos[:, 1].max()
        cols = pos[:, 0].max() - xmin + 1
        return int((ymax - pos[node, 1]) * cols + (pos[node, 0] - xmin))
