"""``labtrain gui [FILE]``: the window, and a screenshot mode that needs no display.

``labtrain gui --screenshot out.png examples/iris_cl.toml --backend twin --steps 30``
runs the experiment for 30 steps in an offscreen window, saves a PNG of it and
exits (0; 2 for a bad experiment file; 1 if the run failed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from labtrain.config import ConfigError
from labtrain.training.launch import overrides_from_cli
from labtrain.gui import add_arguments
from labtrain.gui.main_window import MainWindow

__all__ = ["main", "run_from_args", "take_screenshot", "application"]


def application() -> QtWidgets.QApplication:
    """The running QApplication, or a new one (Fusion style: looks the same on every platform)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("labtrain")
        app.setStyle("Fusion")
    return app  # type: ignore[return-value]


def _apply_overrides(win: MainWindow, overrides: dict) -> None:
    for section, values in overrides.items():
        for key, value in values.items():
            win.panel.set_value(section, key, value)


def _install_excepthook(win: MainWindow) -> None:
    """Unhandled exceptions in Qt callbacks: a dialog and the log, not an abort (PyQt6's default)."""

    def hook(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.__stderr__.write(text)
        try:
            win.show_error("Unexpected error", f"{exc_type.__name__}: {exc}", text)
        except Exception:  # pragma: no cover - the window itself is broken
            pass

    sys.excepthook = hook


def take_screenshot(path: str | Path, file: str | Path, overrides: dict | None = None, *, steps: int = 20,
                    size: tuple[int, int] = (1600, 1000), timeout_s: float = 300.0,
                    window: MainWindow | None = None) -> tuple[Path, MainWindow]:
    """Run ``file`` for ``steps`` steps in a window of ``size`` and save a PNG of it.

    Raises :class:`ConfigError` for a bad experiment file (nothing runs).  Returns
    the PNG's path and the window (closed by the caller, or left to the application).
    """
    app = application()
    win = window or MainWindow()
    win.resize(*size)
    if not win.open_path(file):
        raise ConfigError(win.panel.message)
    _apply_overrides(win, overrides or {})
    win.panel.experiment()  # raises ConfigError naming the problem
    win.show()
    if not win.start_run(stop_after_steps=steps):
        raise ConfigError(win.errors[-1][1] if win.errors else "the run did not start")
    deadline = time.monotonic() + timeout_s
    while win.running and time.monotonic() < deadline:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)
    if win.running:
        win.stop_run()
        while win.running:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)
    win.drain()
    win.refresh_plots()
    for _ in range(5):
        app.processEvents()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not win.grab().save(str(path), "PNG"):
        raise OSError(f"{path}: could not write the PNG")
    return path, win


def _no_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_from_args(args: argparse.Namespace) -> int:
    overrides = overrides_from_cli(args.backend, args.epochs, None, args.out)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if not args.file:
            print("labtrain gui: error: --screenshot needs an experiment FILE", file=sys.stderr)
            return 2
        w, _, h = args.size.partition("x")
        try:
            size = (int(w), int(h))
        except ValueError:
            print(f"labtrain gui: error: --size {args.size!r}: expected WxH, e.g. 1600x1000", file=sys.stderr)
            return 2
        app = application()
        try:
            path, win = take_screenshot(args.screenshot, args.file, overrides, steps=args.steps or 20, size=size)
        except ConfigError as exc:
            print(f"labtrain gui: error: {exc}", file=sys.stderr)
            return 2
        status = win.result.status if win.result is not None else "failed"
        print(f"{path} ({win.step + 1} steps, run {status})")
        for title, text in win.errors:
            print(f"labtrain gui: {title}: {text}", file=sys.stderr)
        win.close()
        app.processEvents()
        return 0 if status in ("completed", "stopped") else 1
    if _no_display():
        print("labtrain gui: error: no display (DISPLAY/WAYLAND_DISPLAY unset); use --screenshot PATH, or "
              "QT_QPA_PLATFORM=offscreen", file=sys.stderr)
        return 2
    app = application()
    win = MainWindow()
    _install_excepthook(win)
    if args.file:
        win.open_path(args.file)
    _apply_overrides(win, overrides)
    win.resize(1600, 1000)
    win.show()
    if args.run:
        QtCore.QTimer.singleShot(0, lambda: win.start_run(args.steps))
    elif args.steps:
        win.max_steps.setValue(args.steps)
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``labtrain gui [FILE] [--backend] [--screenshot PATH] [--steps N]``."""
    parser = add_arguments(argparse.ArgumentParser(prog="labtrain gui",
                                                   description="Live-plotting window for running experiments."))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
