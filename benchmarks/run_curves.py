"""Learning curves of several run files of one experiment (e.g. seeds): test and train accuracy at every
evaluation, mean +- sample std over the files, and the time of the training steps per epoch.

Reads the run files through labtrain's run-file reader (committed rows only, so it also works on runs that
are still going or were stopped); files are grouped by rule.

Usage::

    python benchmarks/run_curves.py RUN_FILE_OR_FOLDER... [--every N]

e.g. ``python benchmarks/run_curves.py runs/aep_long`` after
``labtrain run benchmarks/aep_mnist.toml --set task.mnist_path=PATH --seed S --out runs/aep_long`` (S = 0, 1, 2).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def read_curve(path: Path) -> dict:
    """Rule, seed, evaluations (step, epoch, test/train accuracy in %) and training-step seconds per epoch."""
    from labtrain.training.store import RunStore, read_summary

    summary = read_summary(path)
    with RunStore.open(path) as store:
        ev, steps = store.table("eval"), store.table("steps")
    step = np.asarray(ev["step"], int)
    epochs = np.asarray(steps["epoch"], int)
    times = np.asarray(steps["time_s"], float)
    per_epoch = {int(e): float(times[epochs == e].sum()) for e in np.unique(epochs)}
    complete = [per_epoch[e] for e in sorted(per_epoch) if np.sum(epochs == e) == np.max(np.bincount(epochs))]
    return {"file": Path(path).name, "rule": summary["rule"], "seed": summary["seed"], "status": summary["status"],
            "steps_done": summary["steps_done"], "total_steps": summary["total_steps"],
            "eval_step": step, "test": 100 * np.asarray(ev["test_accuracy"], float),
            "train": 100 * np.asarray(ev["train_accuracy"], float), "epoch_s": complete}


def spread(values: list[float]) -> str:
    """``mean ± sample std (n)`` of the values (one value: itself)."""
    v = np.asarray(values, float)
    if len(v) == 1:
        return f"{v[0]:.1f} (1)"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f} ({len(v)})"


def table(curves: list[dict], steps_per_epoch: int, every: int = 1) -> list[str]:
    """One row per evaluation step that any file reached: epoch, each file's test accuracy, mean ± std."""
    curves = sorted(curves, key=lambda c: int(c["seed"]))
    header = ["after step", "epochs"] + [f"seed {c['seed']} test (%)" for c in curves] + ["test mean ± std (n)",
                                                                                         "train mean ± std (n)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    all_steps = sorted({int(s) for c in curves for s in c["eval_step"] if s >= 0})
    for k, step in enumerate(all_steps):
        if k % every and k != len(all_steps) - 1:
            continue
        cells = [str(step + 1), f"{(step + 1) / steps_per_epoch:g}"]
        test, train = [], []
        for c in curves:
            at = np.flatnonzero(c["eval_step"] == step)
            if len(at):
                cells.append(f"{c['test'][at[-1]]:.2f}")
                test.append(c["test"][at[-1]])
                train.append(c["train"][at[-1]])
            else:
                cells.append("-")
        cells += [spread(test), spread(train)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run files (.h5) or folders holding them")
    parser.add_argument("--every", type=int, default=1, help="print every N-th evaluation (and the last)")
    args = parser.parse_args(argv)
    files = [f for p in args.runs for f in (sorted(p.glob("*.h5")) if p.is_dir() else [p])]
    if not files:
        raise SystemExit("run_curves: no run files (.h5) in " + ", ".join(map(str, args.runs)))
    groups: dict[str, list[dict]] = defaultdict(list)
    from labtrain.training.store import StoreError

    for f in files:
        try:
            curve = read_curve(f)
        except (StoreError, OSError) as exc:
            raise SystemExit(f"run_curves: {exc}") from None
        groups[curve["rule"]].append(curve)
    for rule, curves in groups.items():
        steps_per_epoch = _steps_per_epoch(files[0])
        print(f"rule {rule}: {len(curves)} run(s); " + "; ".join(
            f"seed {c['seed']} {c['status']} at step {c['steps_done']}/{c['total_steps']}" for c in curves))
        print()
        print("\n".join(table(curves, steps_per_epoch, args.every)))
        epoch_s = [s for c in curves for s in c["epoch_s"]]
        if epoch_s:
            print(f"\ntraining steps per epoch: median {np.median(epoch_s):.0f} s (min {min(epoch_s):.0f}, "
                  f"max {max(epoch_s):.0f}) over {len(epoch_s)} complete epochs (evaluations excluded)\n")
    return 0


def _steps_per_epoch(path: Path) -> int:
    """Training steps per epoch of a run file (its step table's largest epoch count)."""
    from labtrain.training.store import RunStore

    with RunStore.open(path) as store:
        epochs = np.asarray(store.table("steps")["epoch"], int)
    return int(np.max(np.bincount(epochs))) if len(epochs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
