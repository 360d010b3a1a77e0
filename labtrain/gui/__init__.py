"""Live-plotting Qt window for running and watching experiments (``labtrain gui [FILE]``).

Needs the ``gui`` extra (``pip install 'labtrain[gui]'``: PyQt6 and pyqtgraph).
Importing :mod:`labtrain.gui` does not import Qt; the Qt modules are:

=========================  ======================================================
``app``                    entry point (``main(argv)``), screenshot mode
``main_window``            the window: docks, run controls, status bar, queue drain
``worker``                 the run in a worker thread; events -> ``queue.Queue`` (no Qt)
``plots``                  live curves (growing numpy buffers, peak downsampling,
                           clip-to-view): loss, accuracy, outputs vs targets,
                           gradient fidelity, scope
``parameter_map``          conductances on the network drawing / lattice heat map /
                           per-parameter bars
``experiment_panel``       experiment file editor + schema form + backend selector
``run_browser``            past run files: overlay, snapshot, re-run, resume
``bench``                  plot refresh-rate benchmark
=========================  ======================================================

How data flows: the run's listeners run in the run thread and only put items on
a :class:`queue.Queue`; a ``QTimer`` in the GUI thread drains it and refreshes
the plots at most ~30 times a second.  Plots are fed from memory, never by
re-reading the run file.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main", "GUI_EXTRA"]

GUI_EXTRA = "pip install 'labtrain[gui]'"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``labtrain gui`` (shared by the CLI and :func:`labtrain.gui.app.main`)."""
    parser.add_argument("file", nargs="?", help="experiment file (TOML) or run file (.h5) to open")
    parser.add_argument("--backend", choices=("ideal", "twin", "hardware"), help="override [backend] kind")
    parser.add_argument("--epochs", type=int, help="override [run] epochs")
    parser.add_argument("--out", help="override [run] out_dir (folder for run files)")
    parser.add_argument("--run", action="store_true", help="start the run as soon as the window opens")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="stop the run after N steps (with --screenshot: N steps before the picture; default 20)")
    parser.add_argument("--screenshot", metavar="PATH",
                        help="run FILE for --steps steps without showing a window, save a PNG of the window, exit")
    parser.add_argument("--size", default="1600x1000", help="window size WxH for --screenshot (default 1600x1000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``labtrain gui`` (imports Qt)."""
    from labtrain.gui.app import main as app_main

    return app_main(argv)
