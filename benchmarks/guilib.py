"""GUI benchmarks (``python benchmarks/bench_gui.py``).

**Window frame rate during a run** (:func:`window_fps_during_run`): the whole
window, offscreen, while a fast twin run trains and a CPU hog (a busy-loop
subprocess) spins beside it.  A frame is one tick of the window's own 60 Hz
timer: it takes the run's queued messages, redraws what changed (the window's
refresh rules) and Qt paints the changed plots in the same turn of the event
loop, so the tick rate is how often the window can show something new and
answer the user (60 at most; a tick that waits for drawing or for the
interpreter lock arrives late).  Also counted: paints of the plot views per
second.  Peer, measured in the same session: the same window with the run in a
*thread* of its own process (the design before the worker process,
:class:`ThreadRunWorker`), where the run and the drawing share one
interpreter lock.

**Plot refresh rate** (:func:`plot_refresh_fps`): every frame appends one point
to every curve, hands the curves to pyqtgraph and repaints the plot.  Peer:
the same curves with downsampling and clip-to-view switched off, i.e. every
point drawn every frame (how a plain ``PlotDataItem`` behaves).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from labtrain.gui.worker import ChildRun, RunWorker

__all__ = ["plot_refresh_fps", "run_gui_benchmark", "window_fps_during_run", "ThreadRunWorker", "cpu_hog"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


# ---------------------------------------------------------------------------------------- window during a run
def cpu_hog() -> subprocess.Popen:
    """A busy-loop Python process (kill it when done)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


class _ThreadAsProcess:
    """Just enough of :class:`multiprocessing.Process` over a thread for :class:`RunWorker`."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread, self.pid, self.exitcode = thread, os.getpid(), 0

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def terminate(self) -> None:  # a thread cannot be signalled: the control pipe's stop is all there is
        pass

    kill = terminate


class _ThreadChannel:
    """The control end of a thread worker (what :class:`WorkerProcess` is to a process)."""

    def __init__(self, send_end, thread: threading.Thread) -> None:
        self.control, self.process, self.queue = send_end, _ThreadAsProcess(thread), None
        self.alive = True

    def send(self, obj) -> bool:
        try:
            self.control.send(obj)
            return True
        except OSError:
            return False

    def discard(self) -> None:
        self.control.close()


class ThreadRunWorker(RunWorker):
    """The design before the worker process: the same run code (:class:`ChildRun`) in a thread of the
    window's process, sharing its interpreter lock with the drawing."""

    def start(self, process=None) -> None:
        if process is not None:
            process.discard()
        self.queue = queue.Queue()
        receiving, send_end = multiprocessing.Pipe(duplex=False)
        child = ChildRun(self.request, self.queue, receiving)
        thread = threading.Thread(target=child.main, name="labtrain-run", daemon=True)
        channel = _ThreadChannel(send_end, thread)
        channel.queue = self.queue
        self.worker_process, self.process = channel, channel.process
        thread.start()
        for command in self._early:
            channel.send(command)
        self._early.clear()


def window_fps_during_run(design: str = "process", *, experiment: str | Path = EXAMPLES / "iris_cl.toml",
                          backend: str = "twin", seconds: float = 10.0, hogs: int = 1,
                          size: tuple[int, int] = (1600, 1000), start_timeout_s: float = 120.0) -> dict:
    """Frames per second of the whole window while ``experiment`` trains on ``backend`` and ``hogs`` busy
    loops spin; ``design`` is ``"process"`` (the run in a worker process) or ``"thread"`` (the peer).

    Returns fps, the median / 95th-percentile / longest frame time (ms), the run's steps per second during
    the measurement and the number of frames.
    """
    app = _app()
    import pyqtgraph as pg
    from PyQt6 import QtCore

    from labtrain.gui.main_window import MainWindow

    win = MainWindow(hardware=(False, "benchmark"), prestart_worker=False)
    if design == "thread":
        win.worker_class = ThreadRunWorker
    elif design != "process":
        raise ValueError(f"design {design!r}: expected 'process' or 'thread'")
    win.resize(*size)
    win.show()
    out = tempfile.mkdtemp(prefix="labtrain-bench-gui-")
    win.open_path(experiment)
    win.panel.set_value("backend", "kind", backend)
    win.panel.set_value("run", "epochs", 100_000)
    win.panel.set_value("run", "out_dir", out)
    procs = [cpu_hog() for _ in range(hogs)]
    try:
        if not win.start_run():
            raise RuntimeError(f"the run did not start: {win.errors}")
        deadline = time.monotonic() + start_timeout_s
        while win.step < 2 and time.monotonic() < deadline:  # built and stepping
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.01)
        if win.step < 2:
            raise RuntimeError(f"the run did not start stepping in {start_timeout_s:g} s: {win.errors}")
        stamps: list[float] = []
        paints = [0]
        step0 = win.step

        class PaintCounter(QtCore.QObject):
            def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
                if event.type() == QtCore.QEvent.Type.Paint:
                    paints[0] += 1
                return False

        counter = PaintCounter()
        for view in win.findChildren(pg.GraphicsView):
            view.viewport().installEventFilter(counter)
        tick = lambda: stamps.append(time.perf_counter())  # noqa: E731
        win.timer.timeout.connect(tick)
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        t0 = time.perf_counter()
        loop.exec()
        elapsed = time.perf_counter() - t0
        win.timer.timeout.disconnect(tick)
        steps = win.step - step0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        win.close()  # stops the run, waits for the worker
        app.processEvents()
    gaps = np.diff(np.r_[t0, stamps]) * 1e3
    return {"design": design, "fps": len(stamps) / elapsed, "median_ms": float(np.median(gaps)),
            "p95_ms": float(np.percentile(gaps, 95)), "max_ms": float(gaps.max()), "frames": len(stamps),
            "paints_per_s": paints[0] / elapsed, "steps_per_s": steps / elapsed, "hogs": hogs, "seconds": elapsed}
