"""Partial updates: how accuracy degrades when only a fraction of the edges learn.

On hardware, updating every edge may be too slow or too costly; the analytic
rule (docs/algorithms.md, section 1) can update just a subset.  This script trains
the digits benchmark (examples/digits_cl.toml, with the exact gradient) while
updating 100 %, 50 %, 25 % and 10 % of the edges and prints the degradation table.
Which edges learn is ``--mode`` ([learning] mask_mode): a fixed random subset
(``fixed``), a new random subset every step (``random``), the edges closest to the
outputs (``near_output``), or every step the edges with the largest |gradient|
(``largest_gradient``).  The study over all four, three network sizes and three
seeds is sweeps/partial_updates.toml.

Run:  python examples/partial_updates.py [--epochs N] [--mode MODE] [--n-nodes N --n-edges M]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labtrain.config import load_experiment
from labtrain.protocols.masks import MASK_MODES
from labtrain.training.launch import prepare_run

EXPERIMENT = Path(__file__).with_name("digits_cl.toml")
FRACTIONS = (1.0, 0.5, 0.25, 0.1)


def degradation_table(epochs: int = 300, mode: str = "fixed", fractions: tuple[float, ...] = FRACTIONS,
                      n_nodes: int | None = None, n_edges: int | None = None) -> list[dict]:
    """Train once per update fraction; return final train/test loss and accuracy per fraction.

    Parameters
    ----------
    epochs : int
        Full-batch steps.
    mode : str
        ``[learning] mask_mode`` (one of :data:`~labtrain.protocols.masks.MASK_MODES`).
    fractions : tuple of float
        Fractions of edges updated.
    n_nodes, n_edges : int, optional
        Network size (default: the example's 300 nodes / 1500 edges).
    """
    chip = {k: v for k, v in (("n_nodes", n_nodes), ("n_edges", n_edges)) if v is not None}
    rows = []
    for fraction in fractions:
        overrides = {"learning": {"rule": "analytic", "update_fraction": fraction, "mask_mode": mode},
                     "run": {"epochs": epochs, "eval_every": 0}, **({"chip": chip} if chip else {})}
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
    parser.add_argument("--mode", choices=MASK_MODES, default="fixed")
    parser.add_argument("--n-nodes", type=int, default=None, help="network nodes (default 300)")
    parser.add_argument("--n-edges", type=int, default=None, help="network edges (default 1500)")
    args = parser.parse_args()
    rows = degradation_table(args.epochs, args.mode, n_nodes=args.n_nodes, n_edges=args.n_edges)
    print(format_rows(rows, args.mode))


if __name__ == "__main__":
    main()
