"""Training-step benchmark on 2-D lattices from ~1e2 to ~1e5 edges.

Times one coupled-learning training step (free + clamped measurement of the
batch with edge drops, gradient, Adam update that forces a refactorisation)
against a baseline measured in the same run: one ``scipy.sparse.linalg.spsolve``
per example per phase, no factor reuse.  Prints the ratio per size and how the
step time grows with the number of edges.  The baseline and the fast step are
checked to produce the same gradient before anything is reported.

``labtrain bench`` runs the same benchmark (``labtrain bench --quick`` for the
small sizes only).

Usage::

    python benchmarks/bench_step.py [--batch 256] [--quick] [--json out.json]

Targets (project issue): ratio >= 50x at batch 256; the ~1e5-edge step <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from steplib import format_table, growth_exponent, run_step_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--quick", action="store_true", help="only the ~1e2 and ~1e3 edge lattices")
    parser.add_argument("--seed", type=int, default=0, help="seed of conductances, inputs and targets")
    parser.add_argument("--json", type=Path, help="also write the rows (and machine info) to this JSON file")
    args = parser.parse_args(argv)

    rows = run_step_benchmark(batch_size=args.batch, quick=args.quick, progress=print, seed=args.seed)
    print()
    print(format_table(rows))
    if args.json is not None:
        report = {
            "rows": rows,
            "step_growth_exponent": growth_exponent(rows, "step_s"),
            "baseline_growth_exponent": growth_exponent(rows, "baseline_s"),
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "cpu_count": os.cpu_count()},
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
