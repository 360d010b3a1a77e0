"""``labtrain gui [FILE]``: the window, and a screenshot mode that needs no display.

``labtrain gui --screenshot out.png examples/iris_cl.toml --backend twin --steps 30``
runs the experiment for 30 steps (in a worker process) in an offscreen window,
saves a PNG of it and exits (0; 2 for bad arguments or a bad experiment file;
1 if the run failed).  ``labtrain gui --screenshot out.png runs/x.h5`` shows
that run file as it ended -- curves, final parameters, status -- without
running anything.

Every argument is checked before a window is made or anything runs: a
screenshot path that is a folder, a missing file, a file that is neither an
experiment (.toml) nor a run file (.h5), an experiment that does not validate,
options that do not apply to a run file -- each is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from labtrain.config import ConfigError, load_experiment
from labtrain.gui.options import add_arguments
from labtrain.gui.main_window import MainWindow
from labtrain.training.launch import overrides_from_cli
from labtrain.training.store import StoreError, read_summary

__all__ = ["main", "run_from_args", "take_screenshot", "application", "check_arguments", "GuiArguments",
           "ArgumentError"]


class ArgumentError(ValueError):
    """A ``labtrain gui`` argument that cannot work; the message is one line."""


@dataclass
class GuiArguments:
    """The checked arguments of ``labtrain gui``."""

    file: Path | None
    kind: str  # "experiment", "run file" or "" (no file)
    overrides: dict = field(default_factory=dict)
    screenshot: Path | None = None
    size: tuple[int, int] = (1600, 1000)
    steps: int | None = None
    run: bool = False


def application() -> QtWidgets.QApplication:
    """The running QApplication, or a new one (Fusion style: looks the same on every platform)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("labtrain")
        app.setStyle("Fusion")
    return app  # type: ignore[return-value]


def check_arguments(args: argparse.Namespace) -> GuiArguments:
    """Check every argument before anything is made or run (raises :class:`ArgumentError` or
    :class:`~labtrain.config.ConfigError`, one line each)."""
    w, _, h = str(args.size).partition("x")
    try:
        size = (int(w), int(h))
    except ValueError:
        raise ArgumentError(f"--size {args.size!r}: expected WxH, e.g. 1600x1000") from None
    if min(size) < 100 or max(size) > 20000:
        raise ArgumentError(f"--size {args.size}: each side must be 100 to 20000 pixels")
    for option, value in (("--steps", args.steps), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise ArgumentError(f"{option} {value}: must be at least 1")
    overrides = overrides_from_cli(args.backend, args.epochs, None, args.out)
    file, kind = (Path(args.file), "") if args.file else (None, "")
    if file is not None:
        if file.is_dir():
            raise ArgumentError(f"{file}: is a folder; give an experiment file (.toml) or a run file (.h5)")
        if not file.is_file():
            raise ArgumentError(f"{file}: no such file")
        if file.suffix == ".h5":
            kind = "run file"
            extra = [o for o, v in (("--backend", args.backend), ("--epochs", args.epochs), ("--out", args.out),
                                    ("--steps", args.steps), ("--run", args.run or None)) if v is not None]
            if extra:
                raise ArgumentError(f"{' / '.join(extra)} do{'es' if len(extra) == 1 else ''} not apply to a run "
                                    f"file ({file} is shown as it ended); continue it with `labtrain resume {file}` "
                                    "or Resume in the Runs panel")
            try:
                read_summary(file)
            except (StoreError, OSError, KeyError) as exc:
                raise ArgumentError(f"{file}: not a readable run file: {str(exc).splitlines()[0]}") from None
        elif file.suffix == ".toml":
            kind = "experiment"
            if args.screenshot or args.run:  # it will run: it must validate (the window would show why not)
                load_experiment(file, overrides)
        else:
            raise ArgumentError(f"{file}: expected an experiment file (.toml) or a run file (.h5)")
    shot = None
    if args.screenshot:
        shot = Path(args.screenshot)
        if file is None:
            raise ArgumentError("--screenshot needs a FILE: an experiment (.toml) to run or a run file (.h5) to show")
        if shot.is_dir() or str(args.screenshot).endswith(("/", os.sep)):
            raise ArgumentError(f"--screenshot {args.screenshot}: is a folder; give the PNG's file name, e.g. "
                                f"{shot / 'labtrain.png'}")
        if shot.suffix.lower() != ".png":
            raise ArgumentError(f"--screenshot {args.screenshot}: the picture is a PNG; name it *.png")
        parent = shot.parent if str(shot.parent) else Path(".")
        if not parent.is_dir():
            raise ArgumentError(f"--screenshot {args.screenshot}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise ArgumentError(f"--screenshot {args.screenshot}: folder {parent} is not writable")
    return GuiArguments(file, kind, overrides, shot, size, args.steps, bool(args.run))


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


def _settle(app: QtWidgets.QApplication, rounds: int = 5) -> None:
    for _ in range(rounds):
        app.processEvents()


def take_screenshot(path: str | Path, file: str | Path, overrides: dict | None = None, *, steps: int = 20,
                    size: tuple[int, int] = (1600, 1000), timeout_s: float = 300.0,
                    window: MainWindow | None = None) -> tuple[Path, MainWindow]:
    """A PNG of the window showing ``file``: an experiment run for ``steps`` steps (in a worker process), or
    a run file (.h5) shown as it ended, nothing run.

    Raises :class:`ConfigError` for a bad experiment or run file (nothing runs).  Returns the PNG's path and
    the window (closed by the caller, or left to the application).
    """
    app = application()
    win = window or MainWindow(prestart_worker=False)
    win.resize(*size)
    file = Path(file)
    if file.suffix == ".h5":
        if not win.show_run_file(file):
            raise ConfigError(win.errors[-1][1] if win.errors else f"{file}: cannot show this run file")
        win.show()
    else:
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
            win.finish_run_before_closing()
        win.drain()
    win.refresh_plots()
    _settle(app)
    path = Path(path)
    if not win.grab().save(str(path), "PNG"):
        raise OSError(f"{path}: could not write the PNG")
    return path, win


def _no_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _fail(message: str) -> int:
    print(f"labtrain gui: error: {message}", file=sys.stderr)
    return 2


def run_from_args(args: argparse.Namespace) -> int:
    """``labtrain gui`` with parsed arguments: check them all, then the screenshot or the window."""
    try:
        a = check_arguments(args)
    except (ArgumentError, ConfigError) as exc:
        return _fail(str(exc))
    if a.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = application()
        try:
            path, win = take_screenshot(a.screenshot, a.file, a.overrides, steps=a.steps or 20, size=a.size)
        except ConfigError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(str(exc))
        if a.kind == "run file":
            info = win.info
            print(f"{path} (run file {a.file}: {win.state}, {info.next_step} of {info.total_steps} steps; "
                  "nothing was run)")
            status = "completed"
        else:
            status = win.result.status if win.result is not None else "failed"
            print(f"{path} ({win.step + 1} steps, run {status})")
        for title, text in win.errors:
            print(f"labtrain gui: {title}: {text}", file=sys.stderr)
        win.close()
        app.processEvents()
        return 0 if status in ("completed", "stopped") else 1
    if _no_display():
        return _fail("no display (DISPLAY/WAYLAND_DISPLAY unset); use --screenshot PATH, or QT_QPA_PLATFORM=offscreen")
    app = application()
    win = MainWindow()
    _install_excepthook(win)
    if a.file is not None:
        win.open_path(a.file)
    _apply_overrides(win, a.overrides)
    win.resize(1600, 1000)
    win.show()
    if a.run:
        QtCore.QTimer.singleShot(0, lambda: win.start_run(a.steps))
    elif a.steps:
        win.max_steps.setValue(a.steps)
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``labtrain gui [FILE] [--backend] [--screenshot PATH] [--steps N]``."""
    parser = add_arguments(argparse.ArgumentParser(prog="labtrain gui",
                                                   description="Live-plotting window for running experiments."))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
