"""GUI frame rates, offscreen (target: >= 30 fps for the window during a run, >= 20 fps for a plot).

    python benchmarks/bench_gui.py [--seconds S] [--hogs N] [--plots] [--frames N]

1. The whole window while a fast twin run (examples/iris_cl.toml on the twin backend) trains and N
   busy-loop processes (a CPU hog, default 1) spin beside it: frames per second of the event loop (ticks
   of the window's 60 Hz timer, each taking the run's messages and redrawing what changed; 60 at most),
   the median / 95th-percentile / longest frame interval, paints of the plots per second, and the run's
   steps per second.  Peer in the same session: the same window with the run in a thread of its own
   process (the design before the worker process).
2. ``--plots``: the loss plot with 10^3..10^5 points per curve, appending and repainting every frame;
   peer: downsampling and clip-to-view off.

Runs on the machine it is given; numbers are only comparable within one session.
"""

from __future__ import annotations

import argparse
import os

from guilib import run_gui_benchmark, window_fps_during_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measurement per design (s)")
    p.add_argument("--hogs", type=int, default=1, help="busy-loop processes beside the run")
    p.add_argument("--plots", action="store_true", help="also the plot refresh benchmark")
    p.add_argument("--frames", type=int, default=60, help="frames per plot size (--plots)")
    p.add_argument("--curves", type=int, default=4)
    args = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    print(f"window during a twin run (examples/iris_cl.toml), {args.hogs} CPU hog(s), {os.cpu_count()} cores, "
          f"{args.seconds:g} s each")
    print(f"{'run in':>16}  {'fps':>6}  {'median ms':>9}  {'p95 ms':>7}  {'max ms':>7}  {'paints/s':>8}  "
          f"{'run steps/s':>11}")
    rows = {}
    for design in ("process", "thread"):
        r = window_fps_during_run(design, seconds=args.seconds, hogs=args.hogs)
        rows[design] = r
        label = "worker process" if design == "process" else "thread (peer)"
        print(f"{label:>16}  {r['fps']:>6.1f}  {r['median_ms']:>9.1f}  {r['p95_ms']:>7.1f}  {r['max_ms']:>7.0f}  "
              f"{r['paints_per_s']:>8.1f}  {r['steps_per_s']:>11.1f}")
    print(f"ratio (process / thread): {rows['process']['fps'] / rows['thread']['fps']:.2f}x fps, "
          f"{rows['process']['steps_per_s'] / max(rows['thread']['steps_per_s'], 1e-9):.2f}x run steps/s")
    if args.plots:
        print()
        bench = run_gui_benchmark(n_curves=args.curves, frames=args.frames)
        print(f"{'points/curve':>12}  {'curves':>6}  {'fps':>7}  {'baseline fps':>12}  {'ratio':>6}")
        for r in bench:
            print(f"{r['n_points']:>12,}  {r['n_curves']:>6}  {r['fps']:>7.1f}  {r['fps_baseline']:>12.1f}  "
                  f"{r['ratio']:>5.1f}x")


if __name__ == "__main__":
    main()
