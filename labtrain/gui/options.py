"""Command-line options of ``labtrain gui`` (no Qt import): shared by the CLI and :func:`labtrain.gui.app.main`."""

from __future__ import annotations

import argparse

__all__ = ["GUI_EXTRA", "add_arguments"]

GUI_EXTRA = "pip install -e '.[gui]' in the labtrain checkout"


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
                        help="save a PNG of the window (PATH.png) without showing it, then exit: an experiment FILE "
                             "is run for --steps steps first; a run file (.h5) is shown as it ended, nothing run")
    parser.add_argument("--size", default="1600x1000", help="window size WxH for --screenshot (default 1600x1000)")
    return parser
