"""Iris on XY oscillator lattices: test accuracy and time per epoch against lattice size.

Trains Iris (4 features min-max scaled to input phases in [-pi/2, pi/2], one
output oscillator per class with target +pi/2 for the class and -pi/2
otherwise, see :func:`labtrain.kinds.xy.tasks.phase_task`; 105 train / 45 test
examples) with XY equilibrium propagation (beta = 0.01, log cost eps 0.1 -- at
beta = 0.1 the log-cost EP estimate is biased on lattices, see
:mod:`labtrain.kinds.xy.rules`; basin-jump guard 0.5 rad) and
Adam (normalised lr 0.025 = 0.1 rad/s per step) in minibatches of
``--batch`` on

* square lattices :func:`labtrain.kinds.xy.model.xy_lattice` of 4x4, 5x5, 6x6
  and 8x8 oscillators (nearest-neighbour couplings; the 4 input oscillators on
  one column and the 3 outputs on another, about 2 columns apart and centred),
* an all-to-all network of N = 10 oscillators (4 inputs, 3 outputs, 2 hidden,
  1 free reference oscillator) as a baseline.

Bias fields (Cartesian, trainable) on every free oscillator, couplings
initialised uniform in [-1, 1] rad/s, ``--n-starts`` random initial states per
example.  Test accuracy decodes the circular-mean output phases by the nearest
class target on the circle.  ms per epoch is the sum of the training steps of
one epoch (free + nudged relaxations, estimate, update) as timed by the run
loop; evaluation is excluded.

Usage::

    python benchmarks/xy_iris_study.py [--seeds 2] [--epochs 8] [--json out.json]

Measured (defaults: 2 seeds, 8 epochs -- short runs, chosen so the whole
study takes ~2 minutes on the shared 2-core machine; accuracies are not
converged)::

    | architecture    | nodes | edges | params | train acc     | test acc      | ms / epoch |
    | lattice 4x4     | 16    | 24    | 48     | 78.1 +/- 11.4 | 81.1 +/- 14.4 | 498        |
    | lattice 5x5     | 25    | 40    | 82     | 89.5 +/- 2.9  | 91.1 +/- 0.0  | 629        |
    | lattice 6x6     | 36    | 60    | 124    | 80.5 +/- 0.5  | 80.0 +/- 2.2  | 1076       |
    | lattice 8x8     | 64    | 112   | 232    | 91.4 +/- 3.8  | 90.0 +/- 3.3  | 2766       |
    | all-to-all N=10 | 10    | 45    | 57     | 90.5 +/- 7.6  | 91.1 +/- 2.2  | 194        |

No clear trend with lattice size at this length.  Time per epoch grows faster
than the node count: the slowest start of an 8x8 relaxation needs ~900 flow
iterations, of a 5x5 ~230.  Without the basin-jump guard (``--max-shift 0``,
1 seed, more load on the machine) the test accuracy was 48.9 % (5x5), 66.7 %
(6x6), 73.3 % (8x8), 93.3 % (4x4), 88.9 % (all-to-all).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.kinds.xy.chip import XYChip
from labtrain.physics.network import all_to_all
from labtrain.training.optim import Adam
from labtrain.kinds.xy.rules import XYEquilibriumPropagation
from labtrain.training.run import Run
from labtrain.kinds.xy.model import xy_lattice
from labtrain.kinds.xy.tasks import phase_accuracy, phase_task

ARCHITECTURES = {
    "lattice 4x4": lambda: xy_lattice(4, 4, n_inputs=4, n_outputs=3),
    "lattice 5x5": lambda: xy_lattice(5, 5, n_inputs=4, n_outputs=3),
    "lattice 6x6": lambda: xy_lattice(6, 6, n_inputs=4, n_outputs=3),
    "lattice 8x8": lambda: xy_lattice(8, 8, n_inputs=4, n_outputs=3),
    "all-to-all N=10": lambda: all_to_all(10, n_inputs=4, n_outputs=3),
}


def train_one(arch: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one network on Iris; return its final train/test accuracy and timing."""
    task = phase_task("iris", seed=seed)
    chip = XYChip(ARCHITECTURES[arch](), n_starts=args.n_starts, init_seed=seed, seed=seed)
    estimator = XYEquilibriumPropagation(args.beta, cost=args.cost, eps=0.1,
                                         max_shift_rad=args.max_shift if args.max_shift > 0 else None)
    step_s: list[float] = []

    def listen(event) -> None:
        if event.kind == "step":
            step_s.append(event.data["time_s"])

    run = Run(chip, estimator, Adam(args.lr), task, epochs=args.epochs, batch_size=args.batch, seed=seed,
              eval_every=10 ** 9, listeners=[listen])
    t0 = time.perf_counter()
    result = run.run()
    wall = time.perf_counter() - t0
    chip.reseed([seed, 99])
    test = chip.measure(task.x_test)
    train = chip.measure(task.x_train)
    return {"arch": arch, "seed": seed, "status": result.status,
            "train_accuracy": phase_accuracy(task, train.output_v, task.y_train),
            "test_accuracy": phase_accuracy(task, test.output_v, task.y_test),
            "final_train_loss": float(np.mean(result.step_loss[-run.steps_per_epoch:])),
            "ms_per_epoch": 1e3 * float(np.sum(step_s)) / args.epochs, "wall_s": wall,
            "n_nodes": chip.network.n_nodes, "n_edges": chip.network.n_edges, "n_parameters": chip.n_parameters,
            "n_unconverged": test.n_unconverged + train.n_unconverged}


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"Iris, XY EP beta={args.beta} (max shift {args.max_shift} rad), {args.cost} cost, Adam lr={args.lr}, {args.epochs} epochs of "
             f"batch {args.batch}, {args.n_starts} random starts, {args.seeds} seeds (mean +/- std)", "",
             "| architecture | nodes | edges | params | train acc | test acc | ms / epoch | wall s / run |",
             "|---|---|---|---|---|---|---|---|"]
    for arch in ARCHITECTURES:
        rs = [r for r in rows if r["arch"] == arch]
        if not rs:
            continue
        tr = 100 * np.array([r["train_accuracy"] for r in rs])
        te = 100 * np.array([r["test_accuracy"] for r in rs])
        lines.append(f"| {arch} | {rs[0]['n_nodes']} | {rs[0]['n_edges']} | {rs[0]['n_parameters']} | "
                     f"{tr.mean():.1f} +/- {tr.std():.1f} % | {te.mean():.1f} +/- {te.std():.1f} % | "
                     f"{np.mean([r['ms_per_epoch'] for r in rs]):.0f} | {np.mean([r['wall_s'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per architecture (default 2)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    parser.add_argument("--cost", choices=("cosine", "log"), default="log", help="output cost (default log)")
    parser.add_argument("--batch", type=int, default=15, help="minibatch size (default 15: 7 steps per epoch)")
    parser.add_argument("--lr", type=float, default=0.025, help="Adam lr, normalised (default 0.025 = 0.1 rad/s)")
    parser.add_argument("--beta", type=float, default=0.01, help="EP nudge strength (default 0.01)")
    parser.add_argument("--max-shift", type=float, default=0.5,
                        help="EP basin-jump guard in rad, 0: off (default 0.5; see labtrain.kinds.xy.rules)")
    parser.add_argument("--n-starts", type=int, default=4, help="random initial states per example (default 4)")
    parser.add_argument("--arch", action="append", choices=list(ARCHITECTURES),
                        help="only these architectures (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every run's metrics to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    for arch in args.arch or list(ARCHITECTURES):
        for seed in range(args.seeds):
            row = train_one(arch, seed, args)
            rows.append(row)
            print(f"{arch:16s} seed {seed}: train {row['train_accuracy']:.3f}  test {row['test_accuracy']:.3f}  "
                  f"{row['ms_per_epoch']:.0f} ms/epoch  {row['wall_s']:.1f} s", file=sys.stderr, flush=True)
    print(table(rows, args))
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
