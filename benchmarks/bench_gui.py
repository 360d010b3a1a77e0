"""Live-plot refresh rate with up to 10^5 points per curve (offscreen; target >= 20 fps).

    python benchmarks/bench_gui.py [--frames N]

Each frame appends a point to each of 4 curves and renders the plot (a real
paint into a pixmap).  Baseline, in the same run: the same plot with
downsampling and clip-to-view off.
"""

import argparse

from guilib import run_gui_benchmark


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--curves", type=int, default=4)
    args = p.parse_args()
    rows = run_gui_benchmark(n_curves=args.curves, frames=args.frames)
    print(f"{'points/curve':>12}  {'curves':>6}  {'fps':>7}  {'baseline fps':>12}  {'ratio':>6}")
    for r in rows:
        print(f"{r['n_points']:>12,}  {r['n_curves']:>6}  {r['fps']:>7.1f}  {r['fps_baseline']:>12.1f}  "
              f"{r['ratio']:>5.1f}x")


if __name__ == "__main__":
    main()
