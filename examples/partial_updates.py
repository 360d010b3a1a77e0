"""Partial updates: how accuracy degrades when only a fraction of the edges learn.

On hardware, updating every edge may be too slow or too costly; the analytic
rule (docs/algorithms.md, section 1) can update just a subset.  This script trains
the digits benchmark (examples/digits_cl.toml, with the exact gradient) while
updating 100 %, 50 %, 25 % and 10 % of the edges -- a fixed random subset, or
a new random subset every step -- and prints the degradation table.

Run:  python examples/partial_updates.py [--epochs N] [--mode fixed|random]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labtrain.config import load_experiment
from labtrain.training.launch import prepare_run

EXPERIMENT = Path(__file__).with_name("digits_cl.toml")
FRACTIONS = (1.0, 0.5, 0.25, 0.1)


def degradation_table(epochs: int = 300, mode: str = "fixed", fractions=FRACTIONS) -> list[dict]:
    """Train once per update fraction; return final train/test loss and accuracy per fraction."""
    rows = []
    for fraction in fractions:
        overrides = {"learning": {"rule": "analytic", "update_fraction": fraction, "mask_mode": mode},
                     "run": {"epochs": epochs, "eval_every": 0}}
        t0 = time.perf_counter()
        result = prepare_run(load_experiment(EXPERIMENT, overrides), store=False).run()
        rows.append({"fraction": fraction, **{k: result.final[k] for k in
                                              ("train_loss", "test_loss", "train_accuracy", "test_accuracy")},
                     "time_s": time.perf_counter() - t0})
    return rows


def format_rows(rows: list[dict], mode: str) -> str:
    lines = [f"edges updated ({mode} subset) | train loss (V^2) | test accuracy | train accuracy | time",
             "---|---|---|---|---"]
    for r in rows:
        lines.append(f"{100 * r['fraction']:.0f} % | {r['train_loss']:.4f} | {100 * r['test_accuracy']:.1f} % | "
                     f"{100 * r['train_accuracy']:.1f} % | {r['time_s']:.1f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--mode", choices=("fixed", "random"), default="fixed")
    args = parser.parse_args()
    print(format_rows(degradation_table(args.epochs, args.mode), args.mode))


if __name__ == "__main__":
    main()
