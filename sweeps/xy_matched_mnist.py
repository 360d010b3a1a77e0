"""Table of sweeps/xy_matched_mnist.toml (= ``python sweeps/xy_matched.py --mnist FOLDER``).

The matched XY comparison has one table script for its three sweeps, sweeps/xy_matched.py; this file is its
entry point for the mnist sweep alone (every sweep file in sweeps/ has a table script of the same name).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xy_matched import main as _main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print the mnist table of the sweep folder given as the first argument (further options: sweeps/xy_matched.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python sweeps/xy_matched_mnist.py FOLDER [options of sweeps/xy_matched.py]")
    return _main(["--mnist", *args])


if __name__ == "__main__":
    raise SystemExit(main())
