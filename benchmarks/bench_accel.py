"""Array backends of the non-reciprocal relaxation: NumPy (the reference) against JAX, same machine, same run.

For each layered network ``(n_in, hidden, n_out)`` and dynamics it relaxes one batch free, then nudged from the
free state (the two phases of an EP step), with each backend; JAX's first call (compilation) is timed apart
from the median of the repeats.  Before any ratio is reported the fixed points must agree to 1e-10.

Usage::

    python benchmarks/bench_accel.py                      # default sizes, about 2-4 minutes on 2 cores
    python benchmarks/bench_accel.py --quick              # seconds
    python benchmarks/bench_accel.py --out benchmarks/results/accel.md

Writes a Markdown table (``--out``, and a ``.json`` beside it) and prints it.

What to measure on a GPU (a CUDA ``jaxlib``: ``pip install 'jax[cuda12]'``), recorded in the output too:

* the same table with ``--device gpu`` (JAX's default device is then the GPU; NumPy stays on the CPU), at
  batch 256 and 1024 and hidden layers of 256-2048 units -- where the batched dense Newton solves
  (``B n^3``) and the ``B x n x n`` Jacobians dominate;
* compilation time apart (it is paid once per padded batch size and configuration);
* the host-device traffic: one synchronisation per Euler run and per Newton polish (not per step), so the
  per-step cost on the device is the kernel time -- check with ``jax.profiler`` that no step copies back;
* float64 throughput: the relaxation needs float64 (tolerance 1e-10); consumer GPUs are 1/32-1/64 rate in
  float64, data-centre ones (A100/H100) 1/2 -- report which card.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from labtrain.kinds.nonreciprocal.model import AffineForce, LayeredTopology, NonReciprocalNetwork
from labtrain.linalg.backend import jax_available, load_jax

GPU_NOTES = [
    "GPU run (not done here; no GPU on this machine): install a CUDA jaxlib (`pip install 'jax[cuda12]'`), run "
    "`python benchmarks/bench_accel.py --device gpu --batch 1024 --hidden 256,1024,2048`, and report the card "
    "(float64 rate: data-centre GPUs 1/2 of float32, consumer ones 1/32-1/64).",
    "Compilation is paid once per configuration and padded batch size (next power of two, at least 8): report it "
    "apart from the step time.",
    "Host-device traffic: one synchronisation per Euler run and per Newton polish, not per step; a profile "
    "(`jax.profiler.trace`) should show no per-step copies.",
    "Where the GPU should pay: hidden layers of >= 256 units at batch >= 256 (batched dense Newton solves, "
    "B n^3; B x n x n Jacobians); small networks stay latency-bound (loop overhead per Euler step).",
]


def one_case(hidden: int, dynamics: str, batch: int, repeats: int, n_in: int = 16, n_out: int = 4) -> dict:
    topo = LayeredTopology((n_in, hidden, n_out), True, dynamics, "smooth_hard_sigmoid")
    theta = topo.initial_parameters(1, "asymmetric", 1.0)
    rng = np.random.default_rng(0)
    x, t = rng.uniform(0, 1, (batch, n_in)), rng.uniform(0, 1, (batch, n_out))
    nudge = AffineForce.output_nudge(topo, t, 0.1)
    out = {"n_in": n_in, "hidden": hidden, "n_out": n_out, "n_units": topo.n_units, "dynamics": dynamics,
           "batch": batch}
    states = {}
    for name in ("numpy", "jax"):
        model = NonReciprocalNetwork(topo, theta, array_backend=name)
        times = []
        for k in range(repeats + (1 if name == "jax" else 0)):
            t0 = time.perf_counter()
            free = model.relax(x)
            plus = model.relax(x, start=free.states, extra_force=nudge)
            elapsed = time.perf_counter() - t0
            if name == "jax" and k == 0:
                out["jax_first_s"] = elapsed  # includes compilation
            else:
                times.append(elapsed)
        out[f"{name}_s"] = statistics.median(times)
        out[f"{name}_euler_steps"] = free.euler_steps + plus.euler_steps
        out[f"{name}_newton_steps"] = free.newton_steps + plus.newton_steps
        out[f"{name}_converged"] = bool(free.all_converged and plus.all_converged)
        states[name] = (free.states, plus.states)
    out["max_state_diff"] = float(max(np.abs(a - b).max() for a, b in zip(states["numpy"], states["jax"])))
    out["agree"] = out["max_state_diff"] <= 1e-10
    out["speedup"] = out["numpy_s"] / out["jax_s"] if out["agree"] else None
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Array backends of the non-reciprocal relaxation ({meta['date']})", "",
             f"Regenerate: `{meta['command']}`", "",
             f"Machine: {meta['machine']}; JAX {meta['jax']} on {meta['device']}; float64 in both.  One EP step's "
             "relaxations: free from 0, then nudged (beta 0.1) from the free state.  Wall-clock seconds, median of "
             f"{meta['repeats']} after JAX's first call (compilation, shown apart).", "",
             "| network | units | dynamics | batch | numpy s | jax s | jax first call s | numpy / jax | Euler + Newton "
             "steps | max state diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "—" if r["speedup"] is None else f"{r['speedup']:.2f}×"
        lines.append(f"| {r['n_in']}-{r['hidden']}-{r['n_out']} | {r['n_units']} | {r['dynamics']} | {r['batch']} | "
                     f"{r['numpy_s']:.3g} | {r['jax_s']:.3g} | {r['jax_first_s']:.3g} | {ratio} | "
                     f"{r['numpy_euler_steps']} + {r['numpy_newton_steps']} | {r['max_state_diff']:.1e} |")
    lines += ["", "## What to measure on a GPU", ""] + [f"- {n}" for n in GPU_NOTES]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small network (seconds)")
    ap.add_argument("--hidden", default="32,128", help="hidden-layer sizes (comma-separated)")
    ap.add_argument("--dynamics", default="hopfield,leaky")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="", help="JAX platform to use (cpu, gpu); default: JAX's default")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if not jax_available():
        print("bench_accel: JAX is not installed (pip install -e '.[accel]')", file=sys.stderr)
        return 2
    jax, _ = load_jax()
    if args.device:
        jax.config.update("jax_platforms", args.device)
    hidden = [16] if args.quick else [int(h) for h in args.hidden.split(",")]
    dynamics = ["hopfield"] if args.quick else args.dynamics.split(",")
    batch = 16 if args.quick else args.batch
    rows = []
    for dyn in dynamics:
        for h in hidden:
            r = one_case(h, dyn, batch, 1 if args.quick else args.repeats)
            rows.append(r)
            print(f"  {dyn:8s} hidden {h:5d} batch {batch}: numpy {r['numpy_s']:.3g} s, jax {r['jax_s']:.3g} s "
                  f"(first {r['jax_first_s']:.3g} s), diff {r['max_state_diff']:.1e}", flush=True)
    meta = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {_cores()} cores",
            "jax": jax.__version__, "device": str(jax.devices()[0]), "repeats": args.repeats,
            "command": "python benchmarks/bench_accel.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = markdown(rows, meta)
    print(text)
    if args.out:
        out = Path(args.out)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if not all(r["agree"] for r in rows):
        print("bench_accel: NumPy and JAX fixed points differ by more than 1e-10", file=sys.stderr)
        return 1
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
