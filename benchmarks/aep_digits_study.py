"""Asymmetric EP vs plain EP vs vector-field EP on sklearn digits (docs/algorithms.md, section 8).

One-hidden-layer non-reciprocal rate network (``hopfield`` dynamics,
``smooth_hard_sigmoid``), inputs = the 8x8 digit images scaled to [0, 1],
10 outputs with one-hot targets 1 / 0, argmax decoding, loss
``mean 1/2 |s_out - t|^2``.  Three architectures / initialisations:

* ``feedforward`` -- no backward couplings at all (``W_b`` absent): the extreme
  non-reciprocal case;
* ``symmetric``   -- trainable ``W_b`` initialised to ``W_f^T`` (reciprocal at
  the start: ``J`` symmetric, EP exact for the tied coupling);
* ``asymmetric``  -- trainable ``W_b`` drawn independently of ``W_f``.

Every rule trains with centred nudges ``+-beta`` and Adam (normalised
coordinates, ``lr`` per unit of the +-5 parameter range) on mini-batches through
:class:`labtrain.training.run.Run`; test accuracy is measured after epoch 1 and after the
last epoch, over several seeds (seed = initialisation and shuffling).  Before
training, each rule's gradient is compared with the exact (implicit
differentiation) gradient on one batch.

Run::

    .venv/bin/python benchmarks/aep_digits_study.py                # 3 seeds, 20 epochs (~10 min on 2 busy cores)
    .venv/bin/python benchmarks/aep_digits_study.py --quick        # 1 seed, 3 epochs, smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labtrain.kinds.nonreciprocal.chip import NonReciprocalChip
from labtrain.training.optim import Adam
from labtrain.protocols.fidelity import compare_gradients
from labtrain.kinds.nonreciprocal.rules import make_nonreciprocal_rule, nonreciprocal_exact_gradient
from labtrain.training.run import Run
from labtrain.training.tasks import make_task

CONFIGS = {"feedforward": dict(backward=False, init="asymmetric"),
           "symmetric": dict(backward=True, init="symmetric"),
           "asymmetric": dict(backward=True, init="asymmetric")}
RULE_LABEL = {"aep": "AEP", "dyadic_ep": "dyadic EP", "plain_ep": "EP", "vf_ep": "VF",
              "implicit": "exact (implicit diff.)"}


class FirstAndLastEval(Run):
    """A Run that evaluates only after the first and the last epoch (evaluation dominates otherwise)."""

    def _eval_due(self, step: int) -> bool:
        return step + 1 in (self.steps_per_epoch, self.total_steps)


def make_chip(args, config: str, seed: int) -> NonReciprocalChip:
    return NonReciprocalChip((64, args.hidden, 10), seed=seed, init_scale=args.init_scale, **CONFIGS[config])


def train(args, task, config: str, rule: str, seed: int) -> dict:
    chip = make_chip(args, config, seed)
    step_s: list[float] = []
    run = FirstAndLastEval(chip, make_nonreciprocal_rule(rule, args.beta), Adam(args.lr), task, epochs=args.epochs,
                           batch_size=args.batch_size, seed=seed,
                           listeners=[lambda e: step_s.append(e.data["time_s"]) if e.kind == "step" else None])
    t0 = time.perf_counter()
    result = run.run()
    wall = time.perf_counter() - t0
    evals = [e for e in result.evals if e["step"] >= 0]
    return {"acc1": evals[0]["test_accuracy"], "acc": evals[-1]["test_accuracy"],
            "train_acc": evals[-1]["train_accuracy"], "loss": evals[-1]["train_loss"],
            "epoch_s": sum(step_s) / args.epochs, "wall_s": wall,
            "unconverged": chip.stats["unconverged_examples"], "relaxations": chip.stats["relaxations"]}


def fidelity_table(args, task) -> list[str]:
    x, t = task.x_train[:64], task.t_train[:64]
    lines = ["| network at init | AEP cosine | dyadic EP cosine | EP cosine | VF cosine | EP vs tied-coupling gradient |",
             "|---|---|---|---|---|---|"]
    for config in CONFIGS:
        chip = make_chip(args, config, 0)
        exact = nonreciprocal_exact_gradient(chip, x, t)
        tied = nonreciprocal_exact_gradient(chip, x, t, tied=True)
        cos = {r: compare_gradients(make_nonreciprocal_rule(r, args.beta).estimate(chip, x, t).gradient, exact).cosine
               for r in ("aep", "dyadic_ep", "plain_ep", "vf_ep")}
        ep_tied = compare_gradients(make_nonreciprocal_rule("plain_ep", args.beta).estimate(chip, x, t).gradient,
                                    tied).cosine
        lines.append(f"| {config} | {cos['aep']:.5f} | {cos['dyadic_ep']:.5f} | {cos['plain_ep']:.4f} | "
                     f"{cos['vf_ep']:.4f} | {ep_tied:.4f} |")
    return lines


def fmt(values: list[float], pct: bool = True) -> str:
    v = np.asarray(values) * (100 if pct else 1)
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f} ({v.min():.1f}–{v.max():.1f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--init-scale", type=float, default=1.0)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--rules", nargs="+", default=["aep", "plain_ep", "vf_ep"], choices=list(RULE_LABEL))
    p.add_argument("--quick", action="store_true", help="1 seed, 3 epochs")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.epochs = [0], 3
    task = make_task("digits", seed=0, target_on_v=1.0, target_off_v=0.0)
    t_start = time.perf_counter()
    print(f"sklearn digits: {len(task.x_train)} train / {len(task.x_test)} test, network 64-{args.hidden}-10 "
          f"(hopfield dynamics, smooth hard sigmoid), beta={args.beta} centred, Adam lr={args.lr}, "
          f"batch {args.batch_size}, {args.epochs} epochs, seeds {args.seeds}\n")
    print("Gradient fidelity at initialisation (seed 0, 64 training examples, cosine with the exact gradient):\n")
    print("\n".join(fidelity_table(args, task)) + "\n", flush=True)
    rows = ["| network | rule | test acc. after 1 epoch (%) | test acc. after "
            f"{args.epochs} epochs (%) | train acc. (%) | train loss | s / epoch | unconverged |",
            "|---|---|---|---|---|---|---|---|"]
    for config in args.configs:
        for rule in args.rules:
            res = [train(args, task, config, rule, seed) for seed in args.seeds]
            rows.append(f"| {config} | {RULE_LABEL[rule]} | {fmt([r['acc1'] for r in res])} | "
                        f"{fmt([r['acc'] for r in res])} | {fmt([r['train_acc'] for r in res])} | "
                        f"{np.mean([r['loss'] for r in res]):.4f} | {np.mean([r['epoch_s'] for r in res]):.2f} | "
                        f"{sum(r['unconverged'] for r in res)} / {sum(r['relaxations'] for r in res)} relax. |")
            print(rows[-1], flush=True)
    print("\nTest accuracy: mean ± sample std (min–max) over seeds.  s / epoch: estimator + optimiser time of the "
          "training steps (evaluation excluded).  unconverged: examples whose relaxation did not reach "
          "|ds/dt| < 1e-10, out of all batch relaxations.\n")
    print("\n".join(rows))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
