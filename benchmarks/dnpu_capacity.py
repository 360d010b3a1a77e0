"""Capacity of a DNPU: the fraction of random binary labellings of N input points it realises, under one protocol.

The capacity-style test of the DNPU literature (issue 14, item 4): place N
points in the two data electrodes' input plane, draw binary labellings of
them, train the device's control voltages on each, and count the labellings
the device realises.  Everything below is fixed and applied identically to
every labelling, every N and both devices (no per-labelling tuning):

* **Devices.** As in ``benchmarks/dnpu_gate_study.py`` (whose ``make_chip``
  and ``target_levels`` this script reuses): ``hopping`` (synthetic
  :class:`~labtrain.kinds.dnpu.model.HoppingDNPU`, seed 5, data on electrodes
  1 and 2, gain 1e8 V/A) and ``real`` (the surrogate of a real boron-doped Si
  DNPU, SkyNEt checkpoint 2019, loaded from ``--surrogate``, default
  ``../shared/data/dnpu/``; data on model inputs 3 and 4, gain 1e7 V/A).
  Ideal backend, noise-free.  If the surrogate file is absent the script says
  so in one line and runs the synthetic device only.
* **Points (nested, fixed).** Both data electrodes span [-1.2, 0.6] V on both
  devices.  N = 4: the Boolean corners (-1.2 / +0.6 V, the gate study's
  cases, in its order 00, 01, 10, 11).  N = 6 adds (-0.3, -1.2) and
  (-0.3, +0.6) V (midpoints of the two edges where A is mid-range); N = 8 adds
  (-1.2, -0.3) and (+0.6, -0.3) V -- the 3 x 3 grid on the range minus its
  centre.  (N = 5 / 7 take the first 5 / 7 of these.)
* **Labellings.** N = 4: all 16 (= the 16 gates).  Larger N: ``--k``
  distinct labellings drawn uniformly without replacement from the 2^N
  (``numpy.random.default_rng([2024, N])``; all 2^N if ``--k`` >= 2^N).  The
  constant labellings are not excluded.  Default ``--k 256``: every labelling
  of every N <= 8 is enumerated (16, 32, 64, 128, 256) -- with the exact
  gradient a step costs about 1 ms (hopping) / 0.3 ms (real), so enumeration
  fits the time budget and removes the sampling of labellings altogether;
  ``--k 40`` gives the sampled variant.
* **Targets (one rule per device, for every N and labelling).** The gate
  study's: 25th / 75th percentile of the settled output over 500 random
  control vectors (seed 12345) x the 4 corners; threshold = their midpoint.
  Never re-centred.
* **Loss and rule.** One-sided squared error about the threshold (squared
  hinge), as in the gate study, but the gradient is the **exact surrogate
  gradient** (the model's analytic Jacobian chained with the loss, noise-free
  DC outputs) instead of HGE -- for speed; the gate study measured parallel
  HGE at cosine 0.99998 (hopping) / 0.9998 (real) median against it.
  Plain SGD in normalised coordinates, ``lr = --lr0 / gap^2``, lr0 = 0.2 (the
  gate study's pilot value, not re-tuned here).
* **Restarts.** ``--restarts`` per labelling (default 8), each from control
  voltages uniform in their ranges (seeded by N, the labelling's code and the
  restart index), at most ``--iterations`` steps (default 100); early stop when
  every point is ``--stop-margin`` (0.25) x half the target gap beyond the
  threshold on its correct side.
* **Success.** After a restart a settled DC measurement of the N points puts
  every point on its correct side of the threshold.  Every restart counts: a
  labelling is *realised* if at least one of its restarts succeeds (the
  capacity), and the per-restart success rate over all restarts is reported
  beside it, and the fraction realised within the first 1, 2, 4, ... restarts
  (how far it is from saturating).  95 % Wilson score intervals (binomial)
  over the labellings; where all 2^N labellings are enumerated the interval
  covers only the randomness of the restarts' start points.

Usage::

    python benchmarks/dnpu_capacity.py [--devices hopping,real] [--n 4,5,6,7,8] [--k 256] [--restarts 8]
        [--iterations 100] [--out benchmarks/results/dnpu_capacity.md] [--json out.json]

Measured numbers and times: ``benchmarks/results/dnpu_capacity.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.training.optim import SGD
from labtrain.training.sweep import load_module
from labtrain.training.tasks import GATES

HERE = Path(__file__).resolve().parent
gate_study = load_module(HERE / "dnpu_gate_study.py")

# the gate study's 4 corners, then the nested extra points (V on data electrodes A, B)
POINTS_V = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6],
                     [-0.3, -1.2], [-0.3, 0.6], [-1.2, -0.3], [0.6, -0.3]])
LABEL_SEED = 2024
GATE_OF = {tuple(v): k for k, v in GATES.items()}


def labellings(n: int, k: int) -> np.ndarray:
    """(K, N) 0/1 labellings: all 2^N when k >= 2^N or n == 4, else k distinct codes drawn without replacement."""
    total = 2 ** n
    codes = np.arange(total) if (n == 4 or k >= total) else np.sort(
        np.random.default_rng([LABEL_SEED, n]).choice(total, size=k, replace=False))
    return ((codes[:, None] >> np.arange(n)[None, :]) & 1).astype(int)


def code_of(labels: np.ndarray) -> int:
    return int(np.sum(np.asarray(labels) << np.arange(len(labels))))


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def train_restart(chip, points: np.ndarray, labels: np.ndarray, restart: int, levels: dict, args) -> dict:
    """One restart: exact-gradient SGD on the one-sided loss; success = settled DC puts every point right."""
    spec = chip.parameter_spec
    n = len(points)
    rng = np.random.default_rng([n, code_of(labels), restart])
    chip.set_parameters(rng.uniform(spec.lower, spec.upper))
    high = labels > 0
    targets = np.where(high, levels["target_on_v"], levels["target_off_v"])
    sign = np.where(high, 1.0, -1.0)
    thr, half = levels["threshold_v"], 0.5 * levels["gap_v"]
    opt = SGD(args.lr0 / levels["gap_v"] ** 2)
    steps = 0
    for steps in range(1, args.iterations + 1):
        out = chip.measure(points).output_v[:, 0]
        if np.all(sign * (out - thr) >= args.stop_margin * half):
            break
        err = out - targets
        err = np.where(high, np.minimum(err, 0.0), np.maximum(err, 0.0))   # one-sided (squared hinge)
        jac = chip.output_jacobian(points)[:, 0, :]                         # (N, P) exact dV_out/dV_control
        opt.apply(chip, np.mean(err[:, None] * jac, axis=0))
    out = chip.measure(points).output_v[:, 0]                                 # verification: settled DC
    margin = float(np.min(sign * (out - thr)) / half)
    return {"success": bool(margin > 0), "steps": steps, "margin": margin}


def capacity(device: str, ns: list[int], args) -> dict:
    chip = gate_study.make_chip(device, args.surrogate)
    levels = gate_study.target_levels(chip, args.range_samples)
    rows = {}
    t_dev = time.perf_counter()
    for n in ns:
        t0 = time.perf_counter()
        points = POINTS_V[:n]
        labs = labellings(n, args.k)
        per_label = []
        for labels in labs:
            runs = [train_restart(chip, points, labels, r, levels, args) for r in range(args.restarts)]
            per_label.append({"labels": labels.tolist(), "code": code_of(labels),
                              "successes": sum(r["success"] for r in runs),
                              "first_success": next((i + 1 for i, r in enumerate(runs) if r["success"]), None),
                              "steps": [r["steps"] for r in runs], "margins": [r["margin"] for r in runs]})
        realised = sum(p["successes"] > 0 for p in per_label)
        ok_restarts = sum(p["successes"] for p in per_label)
        n_restarts = len(per_label) * args.restarts
        budgets = [b for b in (1, 2, 4, 8, 16, 32) if b < args.restarts] + [args.restarts]
        within = {b: sum(p["first_success"] is not None and p["first_success"] <= b for p in per_label)
                  for b in budgets}
        rows[n] = {"labellings": len(per_label), "of": 2 ** n, "realised": realised, "realised_within": within,
                   "ci95": wilson(realised, len(per_label)), "restarts_ok": ok_restarts, "restarts": n_restarts,
                   "restart_ci95": wilson(ok_restarts, n_restarts),
                   "failed": [p["labels"] for p in per_label if p["successes"] == 0],
                   "steps_total": int(sum(sum(p["steps"]) for p in per_label)),
                   "time_s": time.perf_counter() - t0, "per_labelling": per_label}
        print(f"  {device:8s} N={n}: {realised}/{len(per_label)} labellings realised, {ok_restarts}/{n_restarts} "
              f"restarts ({rows[n]['time_s']:.0f} s)", file=sys.stderr, flush=True)
    return {"levels": levels, "n": rows, "time_s": time.perf_counter() - t_dev}


def report(result: dict, devices: list[str], ns: list[int], args) -> str:
    a = args
    lines = [f"Protocol: exact surrogate gradient (analytic Jacobian, noise-free ideal backend) on the one-sided loss, "
             f"SGD lr0 {a.lr0} / gap^2, {a.restarts} restart(s) per labelling x <= {a.iterations} steps, early stop at "
             f"{a.stop_margin} x half-gap; realised = at least one restart whose settled DC puts all N points on the "
             f"correct side of the threshold; every restart counted. Labellings: N = 4 all 16; larger N "
             f"{a.k} drawn without replacement from the 2^N (rng [{LABEL_SEED}, N]; all when {a.k} >= 2^N). "
             "Points: corners (-1.2 / +0.6 V), then (-0.3, -1.2), (-0.3, +0.6), (-1.2, -0.3), (+0.6, -0.3) V. "
             "95 % Wilson intervals.", ""]
    for d in devices:
        lv = result[d]["levels"]
        lines.append(f"- {d}: targets off/on {lv['target_off_v']:+.4f} / {lv['target_on_v']:+.4f} V, threshold "
                     f"{lv['threshold_v']:+.4f} V; {result[d]['time_s']:.0f} s")
    lines += ["", "| device | N | labellings | realised | fraction [95 % CI] | restarts succeeded | per-restart rate "
              "[95 % CI] | time |", "|---|---|---|---|---|---|---|---|"]
    for d in devices:
        for n in ns:
            r = result[d]["n"][n]
            k = r["labellings"]
            lo, hi = r["ci95"]
            rlo, rhi = r["restart_ci95"]
            lines.append(f"| {d} | {n} | {k} of {r['of']} | {r['realised']}/{k} | {r['realised'] / k:.2f} "
                         f"[{lo:.2f}, {hi:.2f}] | {r['restarts_ok']}/{r['restarts']} | "
                         f"{r['restarts_ok'] / r['restarts']:.2f} [{rlo:.2f}, {rhi:.2f}] | {r['time_s']:.0f} s |")
    budgets = list(result[devices[0]]["n"][ns[0]]["realised_within"])
    lines += ["", "Realised within the first r restarts (the same runs; how far the fraction is from saturating):", "",
              "| device | N | " + " | ".join(f"r = {b}" for b in budgets) + " |",
              "|---|---|" + "---|" * len(budgets)]
    for d in devices:
        for n in ns:
            r = result[d]["n"][n]
            lines.append(f"| {d} | {n} | " + " | ".join(f"{r['realised_within'][b]}/{r['labellings']}"
                                                        for b in budgets) + " |")
    lines.append("")
    for d in devices:
        for n in ns:
            failed = result[d]["n"][n]["failed"]
            if n == 4:
                names = [GATE_OF.get(tuple(f), str(f)) for f in failed]
                lines.append(f"- {d} N=4 not realised: {', '.join(names) or 'none'}")
            else:
                txt = ", ".join("".join(map(str, f)) for f in failed)
                lines.append(f"- {d} N={n} not realised ({len(failed)}; labels of points 1..N): {txt or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gate_study.add_protocol_arguments(p)
    p.add_argument("--n", default="4,5,6,7,8", help="comma list of point counts (4..8)")
    p.add_argument("--k", type=int, default=256, help="labellings per N > 4 (all 2^N if k >= 2^N)")
    p.add_argument("--restarts", type=int, default=8, help="restarts per labelling; every one counts")
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    ns = [int(s) for s in args.n.split(",") if s.strip()]
    if any(not 4 <= n <= len(POINTS_V) for n in ns):
        p.error(f"--n must lie in 4..{len(POINTS_V)}")
    if "real" in devices and not args.surrogate.is_file():
        print(f"real-device surrogate not found at {args.surrogate}: running the synthetic device only", file=sys.stderr)
        devices.remove("real")
    if not devices:
        p.error("no device to study")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    result = {d: capacity(d, ns, args) for d in devices}
    text = report(result, devices, ns, args)
    cmd = "python benchmarks/dnpu_capacity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text += f"\nCommand: `{cmd.strip()}`; total {time.perf_counter() - t0:.0f} s.\n"
    print(text)
    if args.out:
        args.out.write_text("# DNPU capacity: fraction of binary labellings of N points realised (issue 14, item 4)\n\n"
                            + text)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "result": result},
                                        indent=1, default=float))
    return {"devices": devices, "result": result, "text": text}


if __name__ == "__main__":
    main(sys.argv[1:])
