"""Sweep scaling benchmark: the same sweep on a local Dask cluster of 1 and of 2 worker processes.

Runs ``--members`` short members (seeds of one experiment, default: the 5x5 XY oscillator lattice
of examples/xor_xy_lattice.toml for ``--epochs`` epochs, no maps -- single-threaded NumPy, ~1 s
each) with :func:`labtrain.training.sweep.run_sweep` on ``--cluster local`` with 1 worker, then
with 2 (``--repeats`` times, alternating), and reports each wall time -- cluster start-up, worker
imports, every member and the manifest included -- and the ratio of the two measured side by side.
The two sweeps' summaries are checked to be identical (same members, same numbers) before any
time is reported.

Usage::

    python benchmarks/bench_sweep.py [--members 16] [--epochs 8] [--repeats 2] [--json out.json]

Target (issue 15): 2 workers >= 1.7x faster than 1 on a 2-core machine that is not otherwise busy
(the load average is printed before and after each pair; a busy machine lowers the ratio).
Exits 1 when a ratio is below ``--target``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labtrain.training.sweep import load_sweep, prepare_folder, run_sweep
from labtrain.training.sweep_summary import summary_dataset

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("wall_s", "step_time_s")


def timed_sweep(experiment: Path, members: int, epochs: int, workers: int, out: Path) -> tuple[float, object]:
    """Wall time of one sweep (cluster start to the last manifest write) and its summary dataset."""
    spec = load_sweep(experiment, {"run.seed": list(range(members)), "run.epochs": [epochs],
                                   "run.record_maps_every": [0], "run.eval_every": [0]})
    folder, _ = prepare_folder(spec, out)
    t0 = time.perf_counter()
    report = run_sweep(folder, cluster="local", workers=workers, quiet=True)
    wall = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"sweep with {workers} worker(s) did not complete: {report.counts}")
    return wall, summary_dataset(folder)


def same_results(a, b) -> bool:
    """Every data variable but the timings identical (NaN equal to NaN)."""
    for name in a.data_vars:
        if name in TIMING or name in ("run_file", "member"):
            continue
        x, y = a[name].values, b[name].values
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=ROOT / "examples" / "xor_xy_lattice.toml")
    parser.add_argument("--members", type=int, default=16, help="members (seeds 0..N-1; default 16)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per member (default 8)")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of (1 worker, 2 workers) sweeps (default 2)")
    parser.add_argument("--target", type=float, default=1.7, help="required ratio (default 1.7)")
    parser.add_argument("--json", type=Path, help="also write the rows (and machine info) to this JSON file")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for rep in range(args.repeats):
            load_before = os.getloadavg()[0]
            t1, ds1 = timed_sweep(args.experiment, args.members, args.epochs, 1, Path(tmp) / f"w1-{rep}")
            t2, ds2 = timed_sweep(args.experiment, args.members, args.epochs, 2, Path(tmp) / f"w2-{rep}")
            if not same_results(ds1, ds2):
                print("the 1-worker and 2-worker sweeps differ: no timing reported", file=sys.stderr)
                return 1
            member_s = float(np.nansum(ds1["wall_s"].values)) / args.members
            rows.append({"repeat": rep + 1, "members": args.members, "epochs": args.epochs, "t_1_worker_s": t1,
                         "t_2_workers_s": t2, "ratio": t1 / t2, "member_s": member_s,
                         "load_before": load_before, "load_after": os.getloadavg()[0]})
            print(f"pair {rep + 1}: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s, ratio {t1 / t2:.2f} "
                  f"(member {member_s:.2f} s; load {load_before:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nSweep of {args.members} members ({args.experiment.name}, {args.epochs} epochs, seeds 0-"
          f"{args.members - 1}) on a local Dask cluster, {os.cpu_count()} cores; wall time from cluster start "
          "to the last member recorded\n")
    print("| pair | 1 worker (s) | 2 workers (s) | ratio | s / member | load avg before |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['repeat']} | {r['t_1_worker_s']:.1f} | {r['t_2_workers_s']:.1f} | {r['ratio']:.2f} | "
              f"{r['member_s']:.2f} | {r['load_before']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "rows": rows},
                                        indent=1))
    low = [r for r in rows if r["ratio"] < args.target]
    if low:
        print(f"\nratio below the target {args.target}: " + ", ".join(f"pair {r['repeat']} {r['ratio']:.2f}"
                                                               for r in low), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
