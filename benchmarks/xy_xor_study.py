"""XOR on XY oscillator networks: success fraction and time per epoch by architecture.

Trains the XOR gate (inputs and targets encoded as +/-pi/2 phases, see
:func:`labtrain.kinds.xy.tasks.phase_task`) with XY equilibrium propagation (beta =
0.01, log cost eps 0.1, basin-jump guard 0.5 rad) and Adam (normalised lr
0.0075 = 0.03 rad/s per step), 400 full-batch epochs, 16 random starts
(``--n-starts``; the architecture table below used 8), on

* a 5x5 lattice with nearest-neighbour couplings and the terminals two
  columns apart (``xy_lattice(5, 5)``: inputs at (row, col) = (1, 1) and
  (3, 1), output at (2, 3)),
* with ``--arch "lattice 5x5 edge terminals"``: the same lattice with the
  inputs on the left edge and the output on the right edge (``lattice(5, 5)``),
* an all-to-all network of N = 6 oscillators (``all_to_all(6)``),
* a dense layered 2-4-1 network (``layered([2, 4, 1])``),

each over ``--seeds`` seeds (the seed sets the initial couplings and biases,
the random initial phases and the run's shuffling).  A run succeeds when all
four inputs are classified correctly (circular nearest target of the
circular-mean output phase) and the mean cosine cost over examples and fresh
random starts, ``(1 - cos(phi_out - tau)) / 2``, is below ``--threshold``
(0.01, i.e. a typical output error under ~0.2 rad).  Time per epoch is the
training step (free + nudged relaxation of the 4 examples x ``--n-starts``
starts, estimate, Adam update) as timed by the run loop; evaluation excluded.

labtrain's Adam works in normalised coordinates: with the default coupling
and bias ranges of [-2, 2] rad/s (span 4), ``--lr 0.0075`` is a step of 0.03
rad/s and ``--lr 0.025`` one of 0.1 rad/s (the literature's "Adam lr 0.1").

Usage::

    python benchmarks/xy_xor_study.py [--seeds 10] [--json out.json]
    python benchmarks/xy_xor_study.py --estimator exact          # implicit-differentiation gradient
    python benchmarks/xy_xor_study.py --beta 0.1 --lr 0.025 --max-shift 0 --epochs 300 --n-starts 8   # old settings
    python benchmarks/xy_xor_study.py --arch "lattice 5x5" --epochs 800 --lr-halflife 200   # step-size decay

Why the 5x5 lattice failed (0/10 before) -- four causes, each measured:

1. Terminal placement.  Edge terminals (4 columns apart): trained with the
   *exact* gradient (so no estimator error), 0/4 seeds reach loss < 0.02 in
   150 or 400 steps; the output is pinned at phase 0 or pi for every input
   (cosine loss 0.5, log loss 0.647 = the constant-output saddle) within ~30
   steps.  Terminals 2 columns apart (inset 1): 3/4 reach loss < 0.02.  At
   initialisation the circular-mean output depends more on the input there
   (mean |z(x) - <z>| 0.62 against 0.41; all-to-all 0.84).
2. EP bias at beta = 0.1 with the log cost (curvature up to 1/eps = 10): on
   the lattice the EP estimate has cosine 0.07-0.82 with the exact gradient
   (seeds 0-2 at initialisation; centred EP 0.17-0.92; all-to-all N=6: 0.997)
   -- the lattice's soft modes let the nudge move the state far.  beta = 0.01:
   0.985-0.999 (and the cosine cost at beta = 0.1: 0.985-1.000, but it trains
   worse: all-to-all 0/3 at 0.1 rad/s).
3. Basin jumps in the nudged phase.  At beta = 0.01 a few starts per run sit
   next to a saddle-node bifurcation and move 1.5-3 rad under the nudge
   (instead of ~0.012 rad): gradient spikes of norm 10-40 inflate Adam's
   second moment and training stalls -- 0/10 successes, 9/10 runs stuck at 3
   of 4 correct.  The guard (``XYEquilibriumPropagation(max_shift_rad=0.5)``)
   drops such starts from the average.
4. Step size.  At 0.1 rad/s per step the exact-gradient lattice runs reach
   loss < 0.02 and lose it again (train loss back at 0.40-0.56 after 300
   steps, ferromagnetic init); 0.03 rad/s keeps them.
   With 1 + 4 fixed but the exact gradient instead of EP: 5/10 succeed, 9/10
   classify all four inputs (slower convergence within 400 steps).

Not the cause (4 seeds each, exact gradient): relaxation (0 unconverged
starts in every run), coupling init (ferromagnetic [0, 1] / [0.5, 1.5] or
small [-0.1, 0.1]: no better), biases on the hidden oscillators only (no
better).

Measured (2-core machine shared with 2-3 other jobs, so ms/epoch are upper
bounds; 10 seeds, defaults except ``--n-starts 8``; the lattice with 16
starts: 8/10, below)::

    | architecture          | success     | 4/4 correct | median cos loss | ms / epoch |
    | lattice 5x5           | 6/10 (60 %) | 9/10        | 0.0017          | 159        |
    | all-to-all N=6        | 6/10 (60 %) | 6/10        | 0.0002          | 26         |
    | layered 2-4-1         | 10/10       | 10/10       | 0.0000          | 42         |

Raising the lattice's success fraction (lattice 5x5 only, 10 seeds, EP as
above, 8 starts unless stated; step-size decay ``--lr-halflife`` = :class:`labtrain.training.optim.Adam`'s
``lr_halflife_steps``, ``[learning] lr_halflife_steps`` in experiment files)::

    | lattice 5x5 variant                          | success | 4/4 correct | median cos loss | ms / epoch |
    | --n-starts 8 (400 epochs, constant step)     | 6/10    | 9/10        | 0.0017          | 159        |
    | --lr-halflife 100 (400 epochs, final lr/16)  | 5/10    | 8/10        | 0.0088          | 142        |
    | --epochs 800 --lr-halflife 200 (final lr/16) | 6/10    | 10/10       | 0.0002          | 121        |
    | --n-starts 16 (400 epochs, constant step)    | 8/10    | 10/10       | 0.0000          | 168        |

Sixteen random starts per example (in training and in the final check) is
the best recipe and the study's default since: 8/10 succeed, all 10
classify all four inputs (the two failures, seeds 1 and 2, keep cosine
loss 0.20 and 0.12); 168 ms/epoch against 159 with 8 starts (batched
relaxation; the machine's load differed between the runs).  Presumably more
starts sample the minority basins the gradient has to remove.  The step-size decays do
not beat 8 starts at a constant step beyond seed noise.  Decay
at half-life 100 steps freezes two seeds on the 2-of-4 / 3-of-4 plateau
(seeds 8, 9; at the constant step seed 0 leaves that plateau between steps
100 and 125); 800 epochs with half-life 200 gets every seed to 4/4 correct,
but 4 of 10 keep a cosine loss of 0.026-0.12 on fresh starts (seeds 1, 3, 6,
9): of the 32 random starts (4 inputs x 8) about 1-4 relax far from the
target (one start at the wrong target alone costs 1/32 = 0.031 > the 0.01
threshold).  The remaining failures look like minority basins of the
multistable lattice rather than an unconverged optimiser: the step loss of a
constant-step run (examples/xor_xy_lattice.toml, seed 0) jumps between ~1e-6
and 0.01-0.04 after step 300, and seed 0 fails at the defaults (cosine loss
0.042) but succeeds with either decay.  Not tried for lack of
time: the cosine cost at small beta; all-to-all and layered with 16 starts.

Before (edge terminals, beta 0.1, lr 0.1 rad/s, no guard, 300 epochs):
lattice 0/10 (55 ms/epoch), all-to-all 9/10 (18 ms/epoch), layered 9/10
(22 ms/epoch) -- the dense networks do better at those faster settings.

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.kinds.xy.chip import XYChip
from labtrain.physics.network import all_to_all, lattice, layered
from labtrain.training.optim import Adam
from labtrain.kinds.xy.rules import XYEquilibriumPropagation, XYImplicitGradient
from labtrain.training.run import Run
from labtrain.kinds.xy.model import PhaseCost, xy_lattice
from labtrain.kinds.xy.tasks import phase_accuracy, phase_task

ARCHITECTURES = {
    "lattice 5x5": lambda: xy_lattice(5, 5),
    "lattice 5x5 edge terminals": lambda: lattice(5, 5),
    "all-to-all N=6": lambda: all_to_all(6),
    "layered 2-4-1": lambda: layered([2, 4, 1]),
}
#: Run by default (the edge-terminal lattice only with ``--arch``).
DEFAULT_ARCHITECTURES = ("lattice 5x5", "all-to-all N=6", "layered 2-4-1")


def train_one(arch: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one network on XOR; return its final metrics and timing."""
    task = phase_task("xor")
    chip = XYChip(ARCHITECTURES[arch](), n_starts=args.n_starts, init_seed=seed, seed=seed,
                  init_coupling=tuple(args.init_coupling), init_bias=(-args.init_bias, args.init_bias),
                  bias_on=args.bias_on, bias=args.bias, bias_bounds=(-args.bias_bound, args.bias_bound),
                  coupling_bounds=(-args.coupling_bound, args.coupling_bound))
    if args.estimator == "ep":
        estimator = XYEquilibriumPropagation(args.beta, centred=args.centred, cost=args.cost, eps=args.eps,
                                             max_shift_rad=args.max_shift if args.max_shift > 0 else None)
    else:
        estimator = XYImplicitGradient(args.cost, eps=args.eps)
    step_s: list[float] = []

    def listen(event) -> None:
        if event.kind == "step":
            step_s.append(event.data["time_s"])

    t0 = time.perf_counter()
    result = Run(chip, estimator, Adam(args.lr, lr_halflife_steps=args.lr_halflife), task, epochs=args.epochs, seed=seed, eval_every=args.epochs,
                 listeners=[listen]).run()
    wall = time.perf_counter() - t0
    chip.reseed([seed, 99])
    final = chip.measure(task.x_train)
    cos_loss = float(np.mean(PhaseCost("cosine").value(final.output_phases, task.t_train[:, None, :])))
    acc = phase_accuracy(task, final.output_v, task.y_train)
    return {"arch": arch, "seed": seed, "status": result.status, "accuracy": acc, "cosine_loss": cos_loss,
            "train_loss": float(result.step_loss[-1]), "success": bool(acc == 1.0 and cos_loss < args.threshold),
            "ms_per_epoch": 1e3 * float(np.mean(step_s)), "wall_s": wall,
            "n_nodes": chip.network.n_nodes, "n_edges": chip.network.n_edges, "n_parameters": chip.n_parameters,
            "n_unconverged": final.n_unconverged}


def table(rows: list[dict], args: argparse.Namespace) -> str:
    cost = f"{args.cost} (eps={args.eps})" if args.cost == "log" else args.cost
    rule = f"XY EP beta={args.beta}{' centred' if args.centred else ''}, max shift {args.max_shift} rad" if args.estimator == "ep" else "exact gradient"
    lines = [f"XOR, {rule}, cost={cost}, "
             f"Adam lr={args.lr}"
             f"{f' (half-life {args.lr_halflife:g} steps)' if args.lr_halflife else ''}, {args.epochs} epochs, {args.n_starts} random starts, "
             f"success = 4/4 correct and cosine loss < {args.threshold}", "",
             "| architecture | nodes | edges | params | success | 4/4 correct | median cosine loss | ms / epoch "
             "| wall s / run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arch in ARCHITECTURES:
        rs = [r for r in rows if r["arch"] == arch]
        if not rs:
            continue
        ok = sum(r["success"] for r in rs)
        lines.append(f"| {arch} | {rs[0]['n_nodes']} | {rs[0]['n_edges']} | {rs[0]['n_parameters']} | "
                     f"{ok}/{len(rs)} ({ok / len(rs):.0%}) | {sum(r['accuracy'] == 1.0 for r in rs)}/{len(rs)} | "
                     f"{np.median([r['cosine_loss'] for r in rs]):.4f} | "
                     f"{np.mean([r['ms_per_epoch'] for r in rs]):.1f} | {np.mean([r['wall_s'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per architecture (default 10)")
    parser.add_argument("--epochs", type=int, default=400, help="epochs (= full-batch steps) per run (default 400)")
    parser.add_argument("--lr", type=float, default=0.0075,
                        help="Adam learning rate, normalised (default 0.0075 = 0.03 rad/s per step)")
    parser.add_argument("--lr-halflife", type=float, default=0.0,
                        help="Adam step-size half-life in steps (0 = constant; default 0)")
    parser.add_argument("--beta", type=float, default=0.01, help="EP nudge strength (default 0.01)")
    parser.add_argument("--centred", action="store_true", help="centred EP (+/- beta)")
    parser.add_argument("--max-shift", type=float, default=0.5,
                        help="EP basin-jump guard: drop starts whose nudged state moved more than this (rad); "
                             "0 keeps all (default 0.5)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--cost", choices=("cosine", "log"), default="log", help="output cost (default log)")
    parser.add_argument("--eps", type=float, default=0.1, help="eps of the log cost (default 0.1)")
    parser.add_argument("--estimator", choices=("ep", "exact"), default="ep",
                        help="XY EP or the exact implicit-differentiation gradient (default ep)")
    parser.add_argument("--n-starts", type=int, default=16,
                        help="random initial states per example (default 16; the architecture table above used 8)")
    parser.add_argument("--init-coupling", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="initial couplings uniform in [LOW, HIGH] (default -1 1)")
    parser.add_argument("--init-bias", type=float, default=0.0,
                        help="initial bias components uniform in [-x, x] (default 0)")
    parser.add_argument("--bias", choices=("none", "field", "vector"), default="vector",
                        help="trainable bias fields (default vector: both components)")
    parser.add_argument("--bias-bound", type=float, default=2.0, help="bias components in [-x, x] rad/s (default 2)")
    parser.add_argument("--coupling-bound", type=float, default=2.0, help="couplings in [-x, x] rad/s (default 2)")
    parser.add_argument("--bias-on", choices=("free", "hidden"), default="free", help="which oscillators have biases")
    parser.add_argument("--threshold", type=float, default=0.01, help="success threshold on the cosine loss")
    parser.add_argument("--arch", action="append", choices=list(ARCHITECTURES),
                        help="only these architectures (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every run's metrics to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    for arch in args.arch or list(DEFAULT_ARCHITECTURES):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = train_one(arch, seed, args)
            rows.append(row)
            print(f"{arch:16s} seed {seed:2d}: acc {row['accuracy']:.2f}  cosine loss {row['cosine_loss']:.4f}  "
                  f"{'ok  ' if row['success'] else 'fail'}  {row['ms_per_epoch']:.1f} ms/epoch", file=sys.stderr,
                  flush=True)
    print(table(rows, args))
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
