"""Summarise labtrain run files of benchmarks/deep_diode_mnist.toml: test accuracy after every epoch, mean +- std
over seeds per rule, and the wall time of the training steps per epoch.

Usage::

    python benchmarks/deep_diode_summary.py RUN_FILE_OR_FOLDER...
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run(path: Path) -> dict:
    """Rule, seed, per-epoch test/train accuracy (%) and seconds of training steps per epoch of one run file."""
    with h5py.File(path, "r") as f:
        rule, seed = _text(f.attrs.get("rule", "?")), _text(f.attrs.get("seed", "?"))
        steps, evals = f["steps"][:], f["eval"][:]
    evals = evals[evals["step"] >= 0]
    done = np.unique(steps["epoch"])
    return {"file": path.name, "rule": rule, "seed": seed,
            "test": [100 * float(a) for a in evals["test_accuracy"]],
            "train": [100 * float(a) for a in evals["train_accuracy"]],
            "step_s_per_epoch": [float(steps["time_s"][steps["epoch"] == e].sum()) for e in done]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run files (.h5) or folders holding them")
    args = parser.parse_args(argv)
    files = [q for p in map(Path, args.runs) for q in (sorted(p.rglob("*.h5")) if p.is_dir() else [p])]
    runs = [read_run(p) for p in files]
    print("| rule | seed | test accuracy after epoch 1, 2, ... (%) | train accuracy, last epoch (%) | "
          "s of training steps per epoch |")
    print("|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['rule']} | {r['seed']} | {', '.join(f'{a:.1f}' for a in r['test'])} | "
              f"{r['train'][-1]:.1f} | {', '.join(f'{s:.0f}' for s in r['step_s_per_epoch'])} |")
    by = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for epoch, a in enumerate(r["test"], 1):
            by[r["rule"]][epoch].append(a)
    print()
    for rule, per in by.items():
        for epoch, accs in sorted(per.items()):
            std = f" +- {np.std(accs, ddof=1):.1f}" if len(accs) > 1 else ""
            print(f"{rule}: after {epoch} epoch(s), {len(accs)} seed(s): test {np.mean(accs):.1f}{std} % "
                  f"(min {min(accs):.1f}, max {max(accs):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
