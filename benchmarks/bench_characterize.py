"""Surrogate fitting: the former fitter (scikit-learn ``MLPRegressor``) against the numpy Adam fitter.

    python benchmarks/bench_characterize.py [--duration-s 2] [--seeds 0,1,2] [--old-tanh] [--skip-old]
                                            [--out benchmarks/results/characterize.md]

Records one twin characterisation (``HoppingDNPU()``, 10 kHz, the CLI's defaults, seed 0) and fits
5 x 90 MLPs to that same recording, in this one process, one after the other:

* ``sklearn relu`` -- the former ``labtrain characterize`` fit: ``MLPRegressor`` (Adam, batch 256,
  lr 1e-3, early stopping on 10 %, 10 epochs' patience, ReLU), ``fit_surrogate(..., engine="sklearn")``;
* ``numpy relu`` -- the numpy fitter with the same settings and activation (the per-epoch speed-up);
* ``numpy tanh`` -- the new default (``labtrain characterize`` now), one row per seed;
* with ``--old-tanh``: ``sklearn tanh`` too (the same activation on the former fitter; minutes).

Prints wall and CPU seconds, epochs, seconds per epoch, test RMSE (last 10 % of the recording, in
percent of the output range) and the ratios old / new measured in this run.  Runs on the machine it is
given (2 shared cores here); numbers are comparable within one run only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _row(name: str, data, engine: str, activation: str, seed: int) -> dict:
    from labtrain.kinds.dnpu.characterize import fit_surrogate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning
        t0, c0 = time.perf_counter(), time.process_time()
        s = fit_surrogate(data, (90,) * 5, activation=activation, engine=engine, seed=seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    p = s.provenance
    row = {"fitter": name, "seed": seed, "wall_s": wall, "cpu_s": cpu, "epochs": p["fit"]["n_iter"],
           "s_per_epoch": wall / p["fit"]["n_iter"], "rmse_percent": p["test_rmse_percent_of_range"],
           "rmse_na": 1e9 * p["test_rmse_a"]}
    print(f"  {name:<13} seed {seed}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, {row['epochs']:3d} epochs "
          f"({row['s_per_epoch']:.3f} s/epoch), test RMSE {row['rmse_na']:.3g} nA = {row['rmse_percent']:.2f} %",
          flush=True)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=2.0, help="recording length (default 2 s at 10 kHz)")
    p.add_argument("--seeds", default="0,1,2", help="fit seeds of the new default (numpy tanh)")
    p.add_argument("--old-tanh", action="store_true", help="also fit tanh with the former fitter (minutes)")
    p.add_argument("--skip-old", action="store_true", help="leave out the former fitter")
    p.add_argument("--out", default="", help="also write the table as markdown to this file")
    args = p.parse_args(argv)

    from labtrain.kinds.dnpu.characterize import characterize
    from labtrain.kinds.dnpu.hardware import build_dnpu_twin
    from labtrain.kinds.dnpu.model import HoppingDNPU

    t0 = time.perf_counter()
    chip = build_dnpu_twin(HoppingDNPU(), rate_hz=10_000.0, seed=0)
    data = characterize(chip, duration_s=args.duration_s, seed=0)
    chip.close()
    print(f"recording: {data.n_samples} samples ({data.duration_s:g} s at {data.rate_hz:g} Hz, twin) in "
          f"{time.perf_counter() - t0:.1f} s; output range {1e9 * np.ptp(data.current_a):.1f} nA", flush=True)
    rows = []
    if not args.skip_old:
        rows.append(_row("sklearn relu", data, "sklearn", "relu", 0))
        if args.old_tanh:
            rows.append(_row("sklearn tanh", data, "sklearn", "tanh", 0))
    rows.append(_row("numpy relu", data, "numpy", "relu", 0))
    for seed in (int(s) for s in args.seeds.split(",") if s.strip()):
        rows.append(_row("numpy tanh", data, "numpy", "tanh", seed))

    def first(name: str) -> dict | None:
        return next((r for r in rows if r["fitter"] == name), None)

    old, new_relu, new = first("sklearn relu"), first("numpy relu"), first("numpy tanh")
    tanh_rows = [r for r in rows if r["fitter"] == "numpy tanh"]
    lines = []
    seeds_rmse = ", ".join(f"{r['rmse_percent']:.2f}" for r in tanh_rows)
    if old is not None:
        lines.append(f"former default (sklearn relu) / new default (numpy tanh, seed 0): wall "
                     f"{old['wall_s'] / new['wall_s']:.1f}x, CPU {old['cpu_s'] / new['cpu_s']:.1f}x; test RMSE "
                     f"{old['rmse_percent']:.2f} % -> {new['rmse_percent']:.2f} % (seeds "
                     f"{seeds_rmse} %)")
        lines.append(f"same settings and activation (relu), sklearn / numpy: {old['s_per_epoch'] / new_relu['s_per_epoch']:.1f}x "
                     f"per epoch, {old['wall_s'] / new_relu['wall_s']:.1f}x wall; test RMSE {old['rmse_percent']:.2f} % "
                     f"vs {new_relu['rmse_percent']:.2f} %")
        old_tanh = first("sklearn tanh")
        if old_tanh is not None:
            lines.append(f"tanh, sklearn / numpy: {old_tanh['wall_s'] / new['wall_s']:.1f}x wall; test RMSE "
                         f"{old_tanh['rmse_percent']:.2f} % vs {new['rmse_percent']:.2f} %")
    for line in lines:
        print(line)
    if args.out:
        cmd = "python benchmarks/bench_characterize.py " + " ".join(argv if argv is not None else sys.argv[1:])
        md = [f"# Surrogate fitting: former vs new fitter ({datetime.now(timezone.utc):%Y-%m-%d})", "",
              f"Regenerate: `{cmd.strip()}`", "",
              f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), Python "
              f"{platform.python_version()}, numpy {np.__version__}.  Recording: twin of `HoppingDNPU()`, "
              f"{data.n_samples} samples ({data.duration_s:g} s at {data.rate_hz:g} Hz), seed 0; 5 x 90 MLP; "
              f"test = last 10 % of the recording; all fits in one process, one after the other.", "",
              "| fitter | seed | wall s | CPU s | epochs | s / epoch | test RMSE nA | test RMSE % of range |",
              "|---|---|---|---|---|---|---|---|"]
        md += [f"| {r['fitter']} | {r['seed']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['epochs']} | "
               f"{r['s_per_epoch']:.3f} | {r['rmse_na']:.3g} | {r['rmse_percent']:.2f} |" for r in rows]
        md += [""] + [f"- {line}" for line in lines]
        Path(args.out).write_text("\n".join(md) + "\n")
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
