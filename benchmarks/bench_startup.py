"""Start-up time of the ``labtrain`` command: ``labtrain --help`` against ``python -c pass``.

    python benchmarks/bench_startup.py [--repeat N] [--command "labtrain run --help"]

Runs each command N times (fresh processes, alternating, after one warm-up run of each) and prints the
median and the fastest wall time of each and the ratio of the medians.  Target from issue 16:
``labtrain --help`` in under 0.5 s.  Also lists which heavy modules (scipy.signal, scipy.stats, h5py,
xarray, dask, Qt, numpy) ``import labtrain.cli`` pulls in -- none is the design (imports are lazy; see
``python -X importtime -c "import labtrain.cli"`` for the breakdown).

Runs on the machine it is given; numbers are only comparable within one session.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("numpy", "scipy", "scipy.signal", "scipy.stats", "h5py", "xarray", "dask", "PyQt6", "pyqtgraph", "tqdm")


def _labtrain() -> list[str]:
    exe = Path(sys.executable).with_name("labtrain")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "labtrain"]


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def heavy_modules() -> list[str]:
    code = f"import sys, labtrain.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=21, help="runs of each command (default 21)")
    p.add_argument("--command", help="labtrain command to time instead of 'labtrain --help' (shell words)")
    args = p.parse_args()
    cmd = _labtrain() + (shlex.split(args.command)[1:] if args.command else ["--help"])
    base = [sys.executable, "-c", "pass"]
    _time(cmd), _time(base)  # warm the file cache
    t_cmd, t_base = [], []
    for _ in range(args.repeat):
        t_cmd.append(_time(cmd))
        t_base.append(_time(base))
    m_cmd, m_base = statistics.median(t_cmd), statistics.median(t_base)
    label = args.command or "labtrain --help"
    print(f"{args.repeat} runs each, median (fastest):")
    print(f"  {label:<24} {1e3 * m_cmd:7.0f} ms ({1e3 * min(t_cmd):.0f} ms)")
    print(f"  {'python -c pass':<24} {1e3 * m_base:7.0f} ms ({1e3 * min(t_base):.0f} ms)")
    print(f"  ratio {m_cmd / m_base:.1f}x; target: {label} < 500 ms -> {'met' if m_cmd < 0.5 else 'NOT met'}")
    heavy = heavy_modules()
    print(f"heavy modules imported by `import labtrain.cli`: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
