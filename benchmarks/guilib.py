"""Refresh-rate benchmark of the live plots (``python benchmarks/bench_gui.py``).

Every frame appends one point to every curve, hands the curves to pyqtgraph
and renders the whole plot into a pixmap (``QWidget.grab``: a real paint, also
offscreen).  ``plot_refresh_fps(fast=False)`` is the baseline measured in the
same run: the same curves with downsampling and clip-to-view switched off,
i.e. every point drawn every frame (how a plain ``PlotDataItem`` behaves).
"""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["plot_refresh_fps", "run_gui_benchmark"]


def _app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["labtrain-bench"])


def plot_refresh_fps(n_points: int = 100_000, n_curves: int = 4, frames: int = 60, *, fast: bool = True,
                     size: tuple[int, int] = (800, 500), log_y: bool = True, seed: int = 0) -> float:
    """Frames per second of a loss plot with ``n_curves`` curves of ``n_points`` points each."""
    app = _app()
    from labtrain.gui.plots import COLORS, LivePlot, configure_pyqtgraph

    configure_pyqtgraph()
    plot = LivePlot("benchmark", "steps completed", None, "loss (V²)", None, log_y=log_y, si_prefix_y=False)
    rng = np.random.default_rng(seed)
    x = np.arange(n_points, dtype=float)
    curves = []
    for k in range(n_curves):
        y = np.exp(-x / n_points * 3 + np.cumsum(rng.normal(0, 0.01, n_points)))  # a falling, noisy loss
        c = plot.add_curve(f"c{k}", f"curve {k}", COLORS[k % len(COLORS)])
        c.extend(x, y)
        if not fast:
            c.item.setDownsampling(ds=1, auto=False)
            c.item.setClipToView(False)
        curves.append(c)
    plot.resize(*size)
    plot.show()
    app.processEvents()
    plot.refresh()
    plot.repaint()  # warm-up: first paint, font caches
    app.processEvents()
    t0 = time.perf_counter()
    for i in range(frames):
        for c in curves:
            last = c.buffer.last
            c.append(last[0] + 1, last[1] * float(np.exp(rng.normal(0, 0.01))))
        plot.refresh()
        plot.repaint()  # a real, synchronous paint of the visible widget (offscreen: into its backing store)
        app.processEvents()
    elapsed = time.perf_counter() - t0
    plot.close()
    plot.deleteLater()
    app.processEvents()
    return frames / elapsed


def run_gui_benchmark(sizes=(1_000, 10_000, 100_000), n_curves: int = 4, frames: int = 60,
                      baseline_frames: int = 10) -> list[dict]:
    """fps with and without downsampling/clip-to-view, per curve length."""
    rows = []
    for n in sizes:
        fast = plot_refresh_fps(n, n_curves, frames, fast=True)
        slow = plot_refresh_fps(n, n_curves, baseline_frames, fast=False)
        rows.append({"n_points": n, "n_curves": n_curves, "fps": fast, "fps_baseline": slow, "ratio": fast / slow})
    return rows
