"""Seconds per AEP training step of benchmarks/aep_mnist.toml, NumPy vs JAX relaxation, 784 or 196 inputs.

Builds the experiment (MNIST-10k split), runs ``--steps`` training steps (random batches of the file's batch
size: estimate + Adam update, as the run loop does) and a free relaxation of 500 test images, and extrapolates
one epoch (8,000 / batch steps) and the test evaluation (2,000 images).  The first step (JAX: compilation) is
reported apart from the median of the others.

Usage::

    python benchmarks/aep_mnist_step_time.py --mnist PATH/TO/mnist --backend numpy --downsample 1 --steps 15
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--experiment", default="benchmarks/aep_mnist.toml")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "jax"))
    parser.add_argument("--downsample", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args(argv)

    from labtrain.build import build_setup
    from labtrain.config import load_experiment

    exp = load_experiment(args.experiment, {"task": {"mnist_path": args.mnist, "downsample": args.downsample},
                                            "chip": {"array_backend": args.backend}})
    s = build_setup(exp)
    rng = np.random.default_rng(0)
    n, batch = len(s.task.x_train), exp["run"]["batch_size"]
    times = []
    for _ in range(args.steps):
        idx = rng.choice(n, batch, replace=False)
        start = time.perf_counter()
        est = s.estimator.estimate(s.chip, s.task.x_train[idx], s.task.t_train[idx])
        s.optimizer.apply(s.chip, est.gradient, None)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    s.chip.measure(s.task.x_test[:500])
    test_s = (time.perf_counter() - start) * len(s.task.x_test) / 500
    step = float(np.median(times[1:])) if len(times) > 1 else times[0]
    print(f"{args.backend:5s} {s.task.x_train.shape[1]}-{'-'.join(map(str, exp['chip']['hidden_layers']))}-10: "
          f"first step {times[0]:.2f} s, median of the next {len(times) - 1}: {step:.2f} s/step -> one epoch "
          f"({n // batch} steps) ~{step * n / batch / 60:.1f} min, test evaluation ~{test_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
