"""Instrument-layer benchmark: twin speed against real time, labtrain's overhead per hardware step.

(a) A coupled-learning training step on the instrument twin of a 4x4 lattice
(16 nodes, every node read) at 10 kS/s, built as ``backend = "twin"`` builds
it: wall time against the simulated acquisition time (target: the twin at
least 10x faster than real time), and the pure ``SimulatedDAQ.write_read``
speed.  (b) The same step on an instant fake DAQ and pot array behind the
safety layer, as on hardware, for the 16-node lattice and a 100-node random
network at batch 32 and 256: labtrain's own time per step, and its share of a
bench step whose acquisitions run at 10 kS/s.

``labtrain bench --instrument`` runs the same benchmark (``--quick`` for a
short run).

Usage::

    python benchmarks/bench_instrument.py [--quick] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from instrumentlib import format_instrument_report, run_instrument_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, twin at batch 32 only (seconds)")
    parser.add_argument("--steps", type=int, help="timed steps per configuration (default 20, quick 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the twin, the network, inputs and targets")
    parser.add_argument("--json", type=Path, help="also write the result (and machine info) to this JSON file")
    args = parser.parse_args(argv)

    result = run_instrument_benchmark(quick=args.quick, progress=print, seed=args.seed, n_steps=args.steps)
    print()
    print(format_instrument_report(result))
    if args.json is not None:
        report = dict(result, machine={"python": sys.version.split()[0], "platform": platform.platform(),
                                       "cpu_count": os.cpu_count()})
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
