"""The ``labtrain`` console script: the command-line interface behind a Ctrl-C guard that imports nothing.

The script generated from ``[project.scripts]`` imports its entry point before calling it.  Pointing it at
:mod:`labtrain.cli` would leave the ~80 ms of that module's imports outside any handler: Ctrl-C there ended the
command with a traceback.  This module imports only the standard library's :mod:`sys`, so an interrupt while
:mod:`labtrain.cli` loads prints the same one line as one during a command and exits 130.  What remains outside
is the interpreter's own start-up (``site``, a few tens of ms).
"""

from __future__ import annotations

import sys
from typing import Sequence

#: exit status of a command stopped by Ctrl-C (128 + SIGINT), as :data:`labtrain.cli.EXIT_STOPPED`
EXIT_STOPPED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run :func:`labtrain.cli.main`; Ctrl-C while it is imported is one line and exit 130."""
    try:
        from labtrain.cli import main as cli_main
    except KeyboardInterrupt:
        print(f"{chr(10) if sys.stderr.isatty() else ''}labtrain: stopped by Ctrl-C", file=sys.stderr)
        return EXIT_STOPPED
    return cli_main(argv)
