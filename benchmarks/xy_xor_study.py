"""XOR on XY oscillator networks: success fraction and time per epoch by architecture.

Trains the XOR gate (inputs and targets encoded as +/-pi/2 phases, see
:func:`labtrain.xy_tasks.phase_task`) with XY equilibrium propagation (beta =
0.1) and Adam (lr 0.1, labtrain's normalised coordinates: 0.1 of each
parameter's range per unit step) on

* a 5x5 lattice with nearest-neighbour couplings (``lattice(5, 5)``),
* an all-to-all network of N = 6 oscillators (``all_to_all(6)``),
* a dense layered 2-4-1 network (``layered([2, 4, 1])``),

each over ``--seeds`` seeds (the seed sets the initial couplings and biases,
the random initial phases and the run's shuffling).  A run succeeds when all
four inputs are classified correctly (circular nearest target of the
circular-mean output phase) and the mean cosine cost over examples and random
starts, ``(1 - cos(phi_out - tau)) / 2``, is below ``--threshold`` (0.01, i.e.
a typical output error under ~0.2 rad).  Time per epoch is the training step
(free + nudged relaxation of the 4 examples x ``--n-starts`` starts, estimate,
Adam update) as timed by the run loop; evaluation is excluded.

labtrain's Adam works in normalised coordinates: with the default coupling
and bias ranges of [-2, 2] rad/s (span 4), ``--lr 0.025`` is a step of 0.1
rad/s, i.e. the literature's "Adam lr 0.1" in raw coupling units.

Usage::

    python benchmarks/xy_xor_study.py [--seeds 10] [--epochs 150] [--json out.json]
    python benchmarks/xy_xor_study.py --lr 0.025 --epochs 300      # raw-unit lr 0.1

Measured (2-core shared machine, 10 seeds, EP beta 0.1, log cost eps 0.1, 8 starts):

* lr 0.1, 150 epochs: lattice 5x5 0/10 (44 ms/epoch), all-to-all N=6 6/10
  (15 ms/epoch), layered 2-4-1 5/10 (18 ms/epoch);
* lr 0.025, 300 epochs: lattice 0/10 (55 ms/epoch), all-to-all 9/10
  (18 ms/epoch), layered 9/10 (22 ms/epoch).

The lattice runs end input-independent (cosine loss 0.5): the output gets
pinned by growing bias fields / frustrated neighbours within ~30 steps and the
gradient vanishes there (a constant output has cosine loss exactly 0.5 for
any phase).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.chip.xy import XYChip
from labtrain.network import all_to_all, lattice, layered
from labtrain.optim import Adam
from labtrain.protocols.xy_ep import XYEquilibriumPropagation, XYImplicitGradient
from labtrain.run import Run
from labtrain.simulators.xy import PhaseCost
from labtrain.xy_tasks import phase_accuracy, phase_task

ARCHITECTURES = {
    "lattice 5x5": lambda: lattice(5, 5),
    "all-to-all N=6": lambda: all_to_all(6),
    "layered 2-4-1": lambda: layered([2, 4, 1]),
}


def train_one(arch: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one network on XOR; return its final metrics and timing."""
    task = phase_task("xor")
    chip = XYChip(ARCHITECTURES[arch](), n_starts=args.n_starts, init_seed=seed, seed=seed,
                  init_coupling=tuple(args.init_coupling), init_bias=(-args.init_bias, args.init_bias),
                  bias_on=args.bias_on, bias=args.bias, bias_bounds=(-args.bias_bound, args.bias_bound),
                  coupling_bounds=(-args.coupling_bound, args.coupling_bound))
    if args.estimator == "ep":
        estimator = XYEquilibriumPropagation(args.beta, centred=args.centred, cost=args.cost, eps=args.eps)
    else:
        estimator = XYImplicitGradient(args.cost, eps=args.eps)
    step_s: list[float] = []

    def listen(event) -> None:
        if event.kind == "step":
            step_s.append(event.data["time_s"])

    t0 = time.perf_counter()
    result = Run(chip, estimator, Adam(args.lr), task, epochs=args.epochs, seed=seed, eval_every=args.epochs,
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
    rule = f"XY EP beta={args.beta}{' centred' if args.centred else ''}" if args.estimator == "ep" else "exact gradient"
    lines = [f"XOR, {rule}, cost={cost}, "
             f"Adam lr={args.lr}, {args.epochs} epochs, {args.n_starts} random starts, "
             f"success = 4/4 correct and cosine loss < {args.threshold}", "",
             "| architecture | nodes | edges | params | success | median cosine loss | ms / epoch | wall s / run |",
             "|---|---|---|---|---|---|---|---|"]
    for arch in ARCHITECTURES:
        rs = [r for r in rows if r["arch"] == arch]
        if not rs:
            continue
        ok = sum(r["success"] for r in rs)
        lines.append(f"| {arch} | {rs[0]['n_nodes']} | {rs[0]['n_edges']} | {rs[0]['n_parameters']} | "
                     f"{ok}/{len(rs)} ({ok / len(rs):.0%}) | {np.median([r['cosine_loss'] for r in rs]):.4f} | "
                     f"{np.mean([r['ms_per_epoch'] for r in rs]):.1f} | {np.mean([r['wall_s'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per architecture (default 10)")
    parser.add_argument("--epochs", type=int, default=150, help="epochs (= full-batch steps) per run (default 150)")
    parser.add_argument("--lr", type=float, default=0.1, help="Adam learning rate, normalised (default 0.1)")
    parser.add_argument("--beta", type=float, default=0.1, help="EP nudge strength (default 0.1)")
    parser.add_argument("--centred", action="store_true", help="centred EP (+/- beta)")
    parser.add_argument("--cost", choices=("cosine", "log"), default="log", help="output cost (default log)")
    parser.add_argument("--eps", type=float, default=0.1, help="eps of the log cost (default 0.1)")
    parser.add_argument("--estimator", choices=("ep", "exact"), default="ep",
                        help="XY EP or the exact implicit-differentiation gradient (default ep)")
    parser.add_argument("--n-starts", type=int, default=8, help="random initial states per example (default 8)")
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
    for arch in args.arch or list(ARCHITECTURES):
        for seed in range(args.seeds):
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
