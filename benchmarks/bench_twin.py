"""Twin speed: simulated acquisition time per wall-clock second.

Times ``SimulatedDAQ.write_read`` on a resistor-network twin (default: 4x4
lattice, every node read, 16-bit converters, white + 1/f noise, RC response,
a new pot setting -- hence a refactorisation -- before every acquisition) and
prints the ratio of simulated to wall time.  Target (architecture page): the
twin runs faster than the physical time it simulates; the instrument-layer
issue asks for >= 10x at 10 kS/s on a 16-node network.

Usage::

    python benchmarks/bench_twin.py [--rows 4 --cols 4] [--rate 1e4] [--duration 1.0]
"""

from __future__ import annotations

import argparse
import json

from instrumentlib import twin_speed_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1e4, help="sample clock, Hz (default 1e4)")
    parser.add_argument("--duration", type=float, default=1.0, help="simulated seconds per acquisition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    rows = []
    for change_taps in (True, False):
        r = twin_speed_ratio(args.rows, args.cols, args.rate, args.duration, args.repeats, change_taps)
        r["change_taps"] = change_taps
        rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        what = "new taps every acquisition" if r["change_taps"] else "same taps (cached transfer)"
        print(f"{args.rows}x{args.cols} lattice, {r['n_ao']} AO / {r['n_ai']} AI, {r['n_samples']} samples at "
              f"{args.rate:g} Hz, {what}: {r['simulated_s']:.3g} s simulated in {r['wall_s'] * 1e3:.1f} ms wall "
              f"-> {r['ratio']:.0f}x faster than real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
