"""Live-plotting Qt window for running and watching experiments (``labtrain gui [FILE]``).

Needs the ``gui`` extra (``pip install -e '.[gui]'`` in the labtrain checkout: PyQt6, pyqtgraph and tomlkit).
Importing :mod:`labtrain.gui` does not import Qt; its modules are:

=========================  ======================================================
``options``                the command-line options of ``labtrain gui`` (no Qt)
``app``                    entry point (``main(argv)``), argument checks, screenshot mode
``main_window``            the window: docks, run controls, status bar, queue drain
``worker``                 the run in a worker process (spawn); events -> a
                           ``multiprocessing`` queue, control -> a pipe (no Qt)
``plots``                  live curves (growing numpy buffers, peak downsampling,
                           clip-to-view): loss, accuracy, outputs vs targets,
                           gradient fidelity, scope; titles above, keys below
``parameter_map``          parameters on the network drawing / lattice heat map /
                           per-layer matrices / bars
``graph_layout``           drawing coordinates, per-layer matrices (numpy only)
``experiment_panel``       experiment file editor + schema form (keys of the chip
                           type and rule) + backend selector
``toml_edit``              "Write into text": style-preserving edits (tomlkit)
``run_browser``            past run files: show, overlay, snapshot, re-run, resume
``buffers``                growing numpy buffers of the live curves
=========================  ======================================================

How data flows: the run is built and trained in a worker process; its
listeners only put items on a ``multiprocessing`` queue; a ``QTimer`` in the
window drains it and refreshes the plots at most ~30 times a second.  Plots are
fed from memory, never by re-reading the run file.  The window's process never
trains: it imports the physics only to draw (a past run's network).
"""

from __future__ import annotations

from labtrain.gui.options import GUI_EXTRA, add_arguments

__all__ = ["add_arguments", "main", "GUI_EXTRA"]


def main(argv: list[str] | None = None) -> int:
    """``labtrain gui`` (imports Qt)."""
    from labtrain.gui.app import main as app_main

    return app_main(argv)
