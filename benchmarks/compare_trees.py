"""Rerun every example experiment file in two checkouts of labtrain and compare the results bit for bit.

Used to prove that a restructuring changed no number: for each ``examples/*.toml`` it trains a few epochs
in each tree (a subprocess with that tree on ``PYTHONPATH``, no run file) and compares the per-step losses
and the final parameters.

    python benchmarks/compare_trees.py OLD_TREE NEW_TREE [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, numpy as np
import labtrain as lt
path, epochs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = lt.prepare_run(path, {"run": {"epochs": epochs, "out_dir": out}})
try:
    res = run.run()
finally:
    getattr(run, "close", lambda: None)()
np.savez(out + "/result.npz", loss=np.asarray(run.step_loss, float), params=run.chip.get_parameters())
"""


def run_in(tree: Path, example: Path, epochs: int) -> dict[str, np.ndarray] | str:
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run([sys.executable, "-c", CHILD, str(example), str(epochs), out], cwd=out,
                           env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                                "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            return (p.stderr.strip().splitlines() or ["failed"])[-1]
        with np.load(Path(out) / "result.npz") as f:
            return {k: f[k] for k in f.files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = []
    for example in sorted((args.new / "examples").glob("*.toml")):
        a = run_in(args.old, args.old / "examples" / example.name, args.epochs)
        b = run_in(args.new, example, args.epochs)
        if isinstance(a, str) or isinstance(b, str):
            rows.append({"example": example.name, "result": f"error: old {a if isinstance(a, str) else 'ok'}; "
                                                             f"new {b if isinstance(b, str) else 'ok'}"})
            print(f"{example.name:<28} {rows[-1]['result']}", flush=True)
            continue
        same = all(np.array_equal(a[k], b[k]) for k in ("loss", "params"))
        rel = max(float(np.max(np.abs(a[k] - b[k]) / np.maximum(np.abs(a[k]), 1e-300))) for k in ("loss", "params"))
        rows.append({"example": example.name, "steps": int(len(a["loss"])),
                     "result": "bit-identical" if same else f"max rel. difference {rel:.2e}"})
        print(f"{example.name:<28} {rows[-1]['result']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
