"""Backprop reference beside a physical network on MNIST-10k: the same split, the same (downsampled) images.

Trains scikit-learn's ``MLPClassifier`` (ReLU, Adam, the experiment's batch size) with the hidden layer sizes
of the experiment file on exactly the training examples labtrain's task gives it (the 8,000 / 2,000 split of
MNIST-10k, the voltages mapped back to pixel intensities in [0, 1]), and prints the test accuracy after 1 and
after N epochs, mean +- std over seeds.

Usage::

    python benchmarks/mnist_backprop_reference.py benchmarks/deep_diode_mnist.toml --mnist PATH/TO/mnist

With ``[task] shift_px`` set (or ``--set task.shift_px=N``) every epoch trains on freshly shifted copies of the
training images, drawn by the task's own augmentation (``partial_fit`` once per epoch), as the physical run does.

Measured (2026-12-07, 196-100-10 of benchmarks/deep_diode_mnist.toml, seeds 0-2): 1 epoch 88.8 +- 0.3 %,
20 epochs 95.2 +- 0.2 % test (the passive diode network by EP: 72.4 % after one epoch).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="experiment file of an MNIST task (its hidden_layers and batch_size)")
    parser.add_argument("--mnist", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a key of the experiment file, e.g. task.shift_px=1 (repeatable)")
    args = parser.parse_args(argv)

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from labtrain.build import kind_of
    from labtrain.config import load_experiment
    from labtrain.overrides import parse_sets

    overrides = parse_sets(args.set)
    overrides.setdefault("task", {})["mnist_path"] = args.mnist
    exp = load_experiment(args.experiment, overrides)
    task = kind_of(exp).task(exp)  # the chip kind's own task keys (nonreciprocal: state targets)
    low_v, high_v = exp["task"].get("input_low_v", 0.0), exp["task"].get("input_high_v", 1.0)

    def pixels(x: np.ndarray) -> np.ndarray:
        """Chip inputs -> the images as pixel intensities in [0, 1], whatever the drive."""
        if exp["task"].get("complementary_inputs"):  # the mirrored copies and bias inputs carry no new information
            x = x[:, :(x.shape[1] - len(exp["task"]["bias_inputs_v"])) // 2]
        return (x - low_v) / (high_v - low_v)

    x_train, x_test = pixels(task.x_train), pixels(task.x_test)
    hidden = tuple(exp["chip"]["hidden_layers"])
    shift = f", training images shifted by up to {task.augment.max_shift_px} px" if task.augment else ""
    print(f"backprop reference: {x_train.shape[1]}-{'-'.join(map(str, hidden))}-10 (ReLU, Adam 1e-3, batch "
          f"{exp['run']['batch_size']}), {len(x_train)} train / {len(x_test)} test{shift}")
    for epochs in (1, args.epochs):
        accuracies, cpu_s = [], []
        for seed in range(args.seeds):
            start = time.process_time()
            clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=epochs, batch_size=exp["run"]["batch_size"],
                                learning_rate_init=1e-3, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if task.augment is None:
                    clf.fit(x_train, task.y_train)
                else:  # a fresh shifted copy of the training set every epoch
                    every = np.arange(len(x_train))
                    for epoch in range(epochs):
                        shifted = pixels(task.training_inputs(every, np.random.default_rng([seed, epoch])))
                        clf.partial_fit(shifted, task.y_train, classes=np.arange(10))
            accuracies.append(100 * clf.score(x_test, task.y_test))
            cpu_s.append(time.process_time() - start)
        print(f"  {epochs:3d} epoch(s), seeds 0-{args.seeds - 1}: test accuracy {np.mean(accuracies):.1f} +- "
              f"{np.std(accuracies):.1f} %  ({np.mean(cpu_s):.1f} s CPU per seed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
