"""Table of sweeps/aep_mnist.toml (AEP / dyadic EP / EP / VF on MNIST-10k): the table script of the
non-reciprocal rule sweeps, sweeps/aep_digits.py, applied to the MNIST sweep folder.

Usage::

    labtrain sweep sweeps/aep_mnist.toml --set task.mnist_path=PATH --out runs/aep_mnist --workers 1
    python sweeps/aep_mnist.py runs/aep_mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aep_digits import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
