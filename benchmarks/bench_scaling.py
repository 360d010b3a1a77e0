"""Scaling benchmark of the solver layer (:mod:`labtrain.linalg`): step time and memory against size.

Three parts, each against peers measured in the same run, with log-log growth
exponents (slope of time against edges) per method:

1. **Linear resistor networks, one coupled-learning step at batch 256**
   (factor or CG operator, terminal response, free and clamped phases of the
   whole batch, gradient from the factored edge drops, conductance update) on
   lattices, random graphs of mean degree 4 and 10 and layered networks of
   about 10^2 .. 10^6 edges.  Methods: ``auto`` (what the package picks;
   the chosen method is shown), ``cholmod`` (numeric refactorisation, cached
   symbolic analysis), ``cg`` (Jacobi/AMG-preconditioned, warm-started),
   ``superlu`` (the pre-solver-layer path) and the peer ``splu-all-rhs``:
   SciPy's ``factorized`` of the free and of the clamped ``L_FF``, solved for
   all 256 right-hand sides.  The gradient of every method is compared with
   the direct solve's (cosine).  A method whose last step took longer than
   ``--max-step-s`` / 10 is not run at the next (10x larger) size.
2. **XY lattice relaxation** (64 random starts): the sparse batched
   ``L D L^T`` Newton against today's dense ``eigh`` path (the same model
   with ``dense_max_nodes`` above the lattice), with the largest phase
   difference between their equilibria.
3. **Nonlinear diode networks** (lattice + one diode per hidden node to
   ground): a chord-Newton acquisition of 4 examples x ``--samples`` samples
   with 10 mV tones from each example's DC point (what ``measure_ac`` does),
   batched CHOLMOD against the block-diagonal SuperLU, and one
   frequency-propagation step through the ideal chip (``auto`` solver).

Every (network, method) runs in a forked child so that its peak resident
memory (``ru_maxrss``, whole process: ~0.1-0.2 GB of it is the interpreter
and libraries) is its own.  BLAS is limited to one thread (threadpoolctl):
on a busy 2-core machine OpenBLAS threads that wait for each other make small
dense products up to 100x slower, which would flatter the sparse paths.

Usage::

    python benchmarks/bench_scaling.py                 # default sizes, a few minutes
    python benchmarks/bench_scaling.py --quick         # seconds: the smallest sizes
    python benchmarks/bench_scaling.py --max-edges 1000000 --max-step-s 60

writes ``benchmarks/results/scaling.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.xy.model import XYModel, xy_lattice
from labtrain.linalg import cholmod_available, pyamg_available
from labtrain.physics.network import Network, lattice, layered, random_graph
from labtrain.protocols.frequency_propagation import FrequencyPropagation

BATCH = 256
N_IN, N_OUT = 4, 2
ETA = 0.1
RESULTS = Path(__file__).resolve().parent / "results"
LINEAR_METHODS = ("auto", "cholmod", "cg", "superlu", "splu-all-rhs")


# ------------------------------------------------------------------ helpers
def growth_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(time) against log(size) over points with size >= 1e3 (None if < 2)."""
    pts = [(s, t) for s, t in points if s >= 1e3 and t and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def in_child(fn: Callable[[], dict]) -> dict:
    """Run ``fn`` in a forked child; its result plus ``peak_rss_mb`` (or ``error``)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()

    def target() -> None:
        try:
            with threadpool_limits(1):
                out = fn()
        except Exception as exc:  # reported in the table, not raised: one failing peer must not stop the run
            out = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(out)

    proc = ctx.Process(target=target)
    proc.start()
    try:
        out = queue.get()
    finally:
        proc.join()
    return out


def log_uniform(n: int, seed: int) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).uniform(np.log(1e-5), np.log(1e-3), n))


# ------------------------------------------------------------------ 1. linear networks
def linear_network(kind: str, target_edges: int) -> Network:
    """A network of about ``target_edges`` edges with 4 inputs, 2 outputs, 1 ground."""
    if kind == "lattice":
        rows = max(3, int(round((1 + math.sqrt(1 + 2 * target_edges)) / 2)))  # 2 r^2 - 2 r ~ target
        return lattice(rows, rows, n_inputs=N_IN, n_outputs=N_OUT)
    if kind == "random4":
        return random_graph(max(8, target_edges // 2), target_edges, seed=1, n_inputs=N_IN, n_outputs=N_OUT)
    if kind == "random10":
        return random_graph(max(8, target_edges // 5), target_edges, seed=1, n_inputs=N_IN, n_outputs=N_OUT)
    if kind == "layered":
        # [4, w, w, w, 2]: edges (4 + 1) w + 2 w^2 + 2 w
        w = max(2, int(round((-7 + math.sqrt(49 + 8 * target_edges)) / 4)))
        net = layered([N_IN, w, w, w, N_OUT])
        return net
    raise ValueError(kind)


def cl_gradient(model: LinearResistorNetwork, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    free = model.steady_state(x)
    clamped = model.steady_state(x, output_clamp_v=free.output_v + ETA * (t - free.output_v))
    return 0.5 * (clamped.edge_drops.mean_square() - free.edge_drops.mean_square()) / ETA


class SpluAllRhs:
    """Peer: SciPy ``factorized`` (SuperLU, COLAMD) of the free and the clamped ``L_FF``, all B right-hand sides."""

    def __init__(self, network: Network) -> None:
        self.net = network
        self.inc = network.incidence().tocsr()
        n = network.n_nodes
        fixed = list(network.grounds) + list(network.inputs)
        self.free = np.setdiff1d(np.arange(n), fixed)
        self.free_c = np.setdiff1d(self.free, list(network.outputs))

    def _solve(self, lap: sp.csr_matrix, free: np.ndarray, fixed_idx: list[int], fixed_v: np.ndarray) -> np.ndarray:
        solve = spla.factorized(lap[free][:, free].tocsc())
        rhs = -(lap[free][:, fixed_idx] @ fixed_v)  # (n_free, B)
        v = np.zeros((self.net.n_nodes, fixed_v.shape[1]))
        v[fixed_idx] = fixed_v
        v[free] = solve(rhs)
        return v

    def gradient(self, g: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        net = self.net
        lap = (self.inc @ sp.diags(g) @ self.inc.T).tocsr()
        ins, outs = list(net.inputs), list(net.outputs)
        v_free = self._solve(lap, self.free, ins, x.T)
        out_v = v_free[outs]
        clamp = out_v + ETA * (t.T - out_v)
        v_cl = self._solve(lap, self.free_c, ins + outs, np.vstack([x.T, clamp]))
        d_free = self.inc.T @ v_free
        d_cl = self.inc.T @ v_cl
        return 0.5 * (np.mean(d_cl**2, axis=1) - np.mean(d_free**2, axis=1)) / ETA


def linear_case(kind: str, target: int, method: str, n_steps: int) -> dict:
    """Time ``n_steps`` CL steps (after one warm-up) of one method; gradient at the first conductances."""
    net = linear_network(kind, target)
    rng = np.random.default_rng(0)
    g = log_uniform(net.n_edges, 2)
    x, t = rng.uniform(-1, 1, (BATCH, N_IN)), rng.uniform(-0.5, 0.5, (BATCH, N_OUT))
    peer = SpluAllRhs(net) if method == "splu-all-rhs" else None
    times, first_grad, chosen, iters = [], None, method, None
    for k in range(n_steps + 1):
        t0 = time.perf_counter()
        if peer is not None:
            grad = peer.gradient(g, x, t)
        else:
            model = LinearResistorNetwork(net, g, solver=method)
            chosen = model.solver
            grad = cl_gradient(model, x, t)
            if model.solver == "cg":
                iters = model._factor.last_result.iterations
        # update: every conductance moves by up to 1 % (so the next step must refactor)
        g = net.clip(g * np.exp(-0.01 * grad / (np.abs(grad).max() + 1e-300)))
        elapsed = time.perf_counter() - t0
        if k == 0:
            first_grad, first_s = grad, elapsed
        else:
            times.append(elapsed)
    return {"kind": kind, "n_nodes": net.n_nodes, "n_edges": net.n_edges, "method": method, "chosen": chosen,
            "first_step_s": first_s, "step_s": statistics.median(times), "cg_iterations": iters,
            "gradient": first_grad}


def run_linear(kinds: list[str], sizes: list[int], methods: list[str], max_step_s: float, n_steps: int,
               log: Callable[[str], None]) -> list[dict]:
    rows = []
    for kind in kinds:
        stopped: dict[str, str] = {}
        for target in sizes:
            ref_grad, ref_name = None, None
            results = {}
            for method in methods:
                if method in stopped:
                    results[method] = {"skipped": stopped[method]}
                    continue
                if method == "cholmod" and not cholmod_available():
                    results[method] = {"skipped": "scikit-sparse not installed"}
                    continue
                if method == "splu-all-rhs" and target * BATCH * 8 * 4 > 6e9:
                    results[method] = {"skipped": "dense B x m edge drops > 6 GB"}
                    continue
                res = in_child(lambda: linear_case(kind, target, method, n_steps))
                results[method] = res
                if "error" in res:
                    log(f"  {kind} {target}: {method}: {res['error']}")
                    stopped[method] = "failed at a smaller size"
                    continue
                later = [s for s in sizes if s > target]
                if later:
                    # direct factors of random graphs grow about quadratically, everything else about linearly
                    power = 2.0 if method in ("cholmod", "superlu", "splu-all-rhs") and kind != "lattice" else 1.3
                    grow = (later[0] / target) ** power
                    if max(res["step_s"], res["first_step_s"] / 3) * grow > max_step_s:
                        stopped[method] = f"> {max_step_s:g} s per step predicted"
                if ref_grad is None and res["chosen"] in ("cholmod", "superlu"):
                    ref_grad, ref_name = res["gradient"], res["chosen"]
                log(f"  {kind:8s} {res['n_edges']:>8d} edges  {method:13s} ({res['chosen']:8s}) "
                    f"step {res['step_s']:.3g} s, first {res['first_step_s']:.3g} s, {res['peak_rss_mb']:.0f} MB")
            for method, res in results.items():
                row = {"kind": kind, "target_edges": target, "method": method}
                row.update({k: v for k, v in res.items() if k != "gradient"})
                if ref_grad is not None and "gradient" in res:
                    gr = res["gradient"]
                    row["cosine_vs_direct"] = float(gr @ ref_grad / (np.linalg.norm(gr) * np.linalg.norm(ref_grad)))
                    row["rel_err_vs_direct"] = float(np.linalg.norm(gr - ref_grad) / np.linalg.norm(ref_grad))
                    row["direct_reference"] = ref_name
                rows.append(row)
    return rows


def reference_case(n_edges: int, solver: str) -> dict:
    """auto's CL gradient (and its step time and memory) against a direct solve (``solver``) on random4."""
    net = linear_network("random4", n_edges)
    rng = np.random.default_rng(0)
    g = log_uniform(net.n_edges, 2)
    x, t = rng.uniform(-1, 1, (BATCH, N_IN)), rng.uniform(-0.5, 0.5, (BATCH, N_OUT))
    t0 = time.perf_counter()
    model = LinearResistorNetwork(net, g, solver="auto")
    grad = cl_gradient(model, x, t)
    auto_s = time.perf_counter() - t0
    auto_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    direct = LinearResistorNetwork(net, g, solver=solver)
    ref = cl_gradient(direct, x, t)
    direct_s = time.perf_counter() - t0
    lu = getattr(direct._factor, "lu", None)
    return {"n_nodes": net.n_nodes, "n_edges": net.n_edges, "chosen": model.solver, "auto_step_s": auto_s,
            "auto_peak_rss_mb": auto_rss, "direct_s": direct_s, "direct_solver": direct.solver,
            "direct_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "factor_nnz": int(lu.L.nnz + lu.U.nnz) if lu is not None else int(direct._factor.factor.L().nnz),
            "cosine": float(grad @ ref / (np.linalg.norm(grad) * np.linalg.norm(ref))),
            "rel_err": float(np.linalg.norm(grad - ref) / np.linalg.norm(ref))}


# ------------------------------------------------------------------ 2. XY relaxation
def xy_case(size: int, starts: int, dense: bool) -> dict:
    net = xy_lattice(size, size)
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, net.n_edges)
    h, psi = rng.uniform(0, 0.3, net.n_nodes), rng.uniform(-np.pi, np.pi, net.n_nodes)
    model = XYModel(net, w, h, psi, **({"dense_max_nodes": 10**9} if dense else {}))
    x = rng.uniform(-np.pi, np.pi, (1, 2))
    t0 = time.perf_counter()
    state = model.relax(x, starts, seed=1)
    return {"size": size, "n_nodes": net.n_nodes, "n_edges": net.n_edges, "starts": starts,
            "method": "dense eigh" if dense else "sparse LDL^T", "relax_s": time.perf_counter() - t0,
            "iterations": state.iterations, "unconverged": state.n_unconverged, "unstable": state.n_unstable,
            "phases": state.phases}


def run_xy(sizes: list[int], starts: int, dense_max: int, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for size in sizes:
        got = {}
        for dense in (False, True):
            if dense and size > dense_max:
                continue
            res = in_child(lambda: xy_case(size, starts, dense))
            if "error" in res:
                log(f"  XY {size}x{size}: {res['error']}")
                continue
            got[dense] = res
            log(f"  XY {size}x{size} {res['method']:12s} {res['relax_s']:.3g} s ({res['iterations']} iterations)")
        if True in got and False in got:
            diff = np.angle(np.exp(1j * (got[True]["phases"] - got[False]["phases"])))
            got[False]["max_phase_diff_rad"] = float(np.abs(diff).max())
            got[False]["speedup"] = got[True]["relax_s"] / got[False]["relax_s"]
        for res in got.values():
            rows.append({k: v for k, v in res.items() if k != "phases"})
    return rows


# ------------------------------------------------------------------ 3. nonlinear networks
def diode_lattice(size: int) -> tuple[Network, NonlinearEdges]:
    base = lattice(size, size)
    hidden = base.hidden
    edges = np.vstack([base.edges, np.c_[hidden, np.full(len(hidden), base.grounds[0])]])
    net = Network(base.n_nodes, edges, base.inputs, base.outputs, base.grounds, 1e-5, 1e-3,
                  f"lattice {size}x{size} + diodes")
    return net, NonlinearEdges.from_kinds(["linear"] * base.n_edges + ["diode"] * len(hidden))


def nonlinear_case(size: int, solver: str, n_samples: int, fp: bool) -> dict:
    net, edges = diode_lattice(size)
    rng = np.random.default_rng(0)
    theta = log_uniform(net.n_edges - len(net.hidden), 3)
    model = NonlinearResistorNetwork(net, edges, theta, solver=solver)
    x = rng.uniform(0.0, 1.0, (4, 2))
    t0 = time.perf_counter()
    dc = model.steady_state(x)
    t1 = time.perf_counter()
    phase = 2 * np.pi * np.arange(n_samples) / 50
    samples = x[:, None, :] + 0.01 * np.stack([np.sin(phase), np.cos(phase)], axis=1)[None]
    chord = model.steady_state(samples, start_v=dc.node_v[:, None, :], chord=True)
    t2 = time.perf_counter()
    out = {"size": size, "n_nodes": net.n_nodes, "n_edges": net.n_edges, "solver": solver,
           "dc_s": t1 - t0, "acquisition_s": t2 - t1, "samples": f"4x{n_samples}",
           "newton_iterations": chord.iterations, "output_v": chord.output_v}
    if fp:
        chip = NonlinearResistorChip(net, edges, theta, rate_hz=2000.0)
        t3 = time.perf_counter()
        est = FrequencyPropagation(1e-6, activation_hz=0.0, settle_s=0.0).estimate(chip, x, rng.uniform(0, 1, (4, 1)))
        out["fp_step_s"] = time.perf_counter() - t3
        out["fp_window_samples"] = int(round(0.05 * 2000.0))
        assert np.all(np.isfinite(est.gradient))
    return out


def run_nonlinear(sizes: list[int], n_samples: int, superlu_max: int, log: Callable[[str], None]) -> list[dict]:
    rows = []
    ours = "cholmod" if cholmod_available() else "superlu"
    for size in sizes:
        got = {}
        for solver in dict.fromkeys((ours, "superlu")):
            if solver == "superlu" and ours != "superlu" and size > superlu_max:
                continue
            res = in_child(lambda: nonlinear_case(size, solver, n_samples, fp=solver == ours))
            if "error" in res:
                log(f"  diode lattice {size}x{size} {solver}: {res['error']}")
                continue
            got[solver] = res
            log(f"  diode lattice {size}x{size} ({res['n_edges']} edges) {solver:8s} DC {res['dc_s']:.3g} s, "
                f"acquisition {res['acquisition_s']:.3g} s" +
                (f", FP step {res['fp_step_s']:.3g} s" if "fp_step_s" in res else ""))
        if ours in got and "superlu" in got and ours != "superlu":
            got[ours]["speedup"] = got["superlu"]["acquisition_s"] / got[ours]["acquisition_s"]
            got[ours]["max_output_diff_v"] = float(np.abs(got[ours]["output_v"] - got["superlu"]["output_v"]).max())
        for res in got.values():
            rows.append({k: v for k, v in res.items() if k != "output_v"})
    return rows


# ------------------------------------------------------------------ report
def _fmt(v, spec=".3g") -> str:
    return "—" if v is None else format(v, spec)


def markdown(linear: list[dict], xy: list[dict], nonlinear: list[dict], meta: dict,
             reference: dict | None = None) -> str:
    lines = [f"# Scaling benchmark ({meta['date']})", "",
             f"Regenerate: `{meta['command']}`", "",
             f"Machine: {meta['machine']}; BLAS limited to 1 thread; CHOLMOD: {meta['cholmod']}, "
             f"pyamg: {meta['pyamg']}.  Times are wall-clock on a machine shared with other jobs: "
             "compare methods within a row (same run), not across runs.", ""]
    lines += ["## 1. Linear networks: one coupled-learning step, batch 256", "",
              "| network | nodes | edges | method (chosen) | step s | first step s | peak RSS MB | CG its | "
              "cosine vs direct | rel. err vs direct |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in linear:
        if "skipped" in r or "error" in r:
            lines.append(f"| {r['kind']} | | ~{r['target_edges']} | {r['method']} | "
                         f"{'skipped: ' + r['skipped'] if 'skipped' in r else 'error: ' + r['error']} | | | | | |")
            continue
        cos = r.get("cosine_vs_direct")
        lines.append(f"| {r['kind']} | {r['n_nodes']} | {r['n_edges']} | {r['method']} ({r['chosen']}) | "
                     f"{r['step_s']:.3g} | {r['first_step_s']:.3g} | {r['peak_rss_mb']:.0f} | "
                     f"{_fmt(r.get('cg_iterations'), 'd')} | {'—' if cos is None else f'{cos:.12f}'} | "
                     f"{_fmt(r.get('rel_err_vs_direct'), '.1e')} |")
    lines += ["", "Growth exponents (log-log slope of step time against edges, sizes >= 10^3):", "",
              "| network | " + " | ".join(LINEAR_METHODS) + " |", "|---|" + "---|" * len(LINEAR_METHODS)]
    for kind in dict.fromkeys(r["kind"] for r in linear):
        cells = []
        for method in LINEAR_METHODS:
            pts = [(r["n_edges"], r["step_s"]) for r in linear
                   if r["kind"] == kind and r["method"] == method and "step_s" in r]
            cells.append(_fmt(growth_exponent(pts), ".2f"))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "Headline ratios at >= 10^4 edges (fastest other method / auto, same size, same run):", ""]
    for kind in dict.fromkeys(r["kind"] for r in linear):
        sizes = sorted({r["target_edges"] for r in linear if r["kind"] == kind and r["target_edges"] >= 10_000})
        for size in sizes:
            here = {r["method"]: r for r in linear if r["kind"] == kind and r["target_edges"] == size and "step_s" in r}
            if "auto" not in here:
                continue
            peers = {m: r["step_s"] for m, r in here.items() if m not in ("auto", here["auto"]["chosen"])}
            if peers:
                best = min(peers, key=peers.get)
                lines.append(f"- {kind} {here['auto']['n_edges']} edges: auto ({here['auto']['chosen']}) "
                             f"{here['auto']['step_s']:.3g} s; strongest other method {best} {peers[best]:.3g} s "
                             f"(x{peers[best] / here['auto']['step_s']:.2f}); splu-all-rhs "
                             f"{_fmt(here.get('splu-all-rhs', {}).get('step_s'))} s")
    if reference and "error" not in reference:
        r = reference
        lines += ["", f"Direct reference on random (mean degree 4) {r['n_nodes']} nodes / {r['n_edges']} edges, "
                      f"batch 256: auto ({r['chosen']}) step {r['auto_step_s']:.3g} s, peak RSS "
                      f"{r['auto_peak_rss_mb']:.0f} MB; direct {r['direct_solver']} {r['direct_s']:.3g} s (ordering, "
                      f"factorisation, solves; peak RSS {r['direct_peak_rss_mb']:.0f} MB, factor "
                      f"{r['factor_nnz'] / 1e6:.1f} M entries); gradient cosine "
                      f"{r['cosine']:.12f}, relative error {r['rel_err']:.1e}."]
    lines += ["", "## 2. XY lattice relaxation", "",
              "| lattice | nodes | starts | method | relax s | iterations | unconverged | unstable | "
              "speed-up vs dense | max phase diff (rad) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in xy:
        lines.append(f"| {r['size']}x{r['size']} | {r['n_nodes']} | {r['starts']} | {r['method']} | "
                     f"{r['relax_s']:.3g} | {r['iterations']} | {r['unconverged']} | {r['unstable']} | "
                     f"{_fmt(r.get('speedup'), '.2f')} | {_fmt(r.get('max_phase_diff_rad'), '.1e')} |")
    pts_s = [(r["n_edges"], r["relax_s"]) for r in xy if r["method"] == "sparse LDL^T"]
    pts_d = [(r["n_edges"], r["relax_s"]) for r in xy if r["method"] == "dense eigh"]
    lines += ["", f"Growth exponents: sparse {_fmt(growth_exponent(pts_s), '.2f')}, "
                  f"dense {_fmt(growth_exponent(pts_d), '.2f')}.", ""]
    lines += ["## 3. Nonlinear diode lattices", "",
              "| network | nodes | edges | solver | DC solve s (4 examples) | chord acquisition s | samples | "
              "speed-up vs SuperLU | max output diff V | FP step s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in nonlinear:
        lines.append(f"| lattice {r['size']}x{r['size']} + diodes | {r['n_nodes']} | {r['n_edges']} | {r['solver']} | "
                     f"{r['dc_s']:.3g} | {r['acquisition_s']:.3g} | {r['samples']} | {_fmt(r.get('speedup'), '.2f')} | "
                     f"{_fmt(r.get('max_output_diff_v'), '.1e')} | {_fmt(r.get('fp_step_s'))} |")
    for solver in dict.fromkeys(r["solver"] for r in nonlinear):
        pts = [(r["n_edges"], r["acquisition_s"]) for r in nonlinear if r["solver"] == solver]
        lines.append(f"\nGrowth exponent of the acquisition, {solver}: {_fmt(growth_exponent(pts), '.2f')}.")
    lines.append("\nFP step: FrequencyPropagation (DC activation, 50 ms window at 2 kHz, 4 examples) through "
                 "NonlinearResistorChip with the default solver.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest sizes only (seconds)")
    ap.add_argument("--max-edges", type=float, default=1e5, help="largest linear network (default 1e5)")
    ap.add_argument("--max-step-s", type=float, default=20.0, help="stop a method once a step would exceed this")
    ap.add_argument("--reference-edges", type=int, default=0,
                    help="also compare auto's CL gradient on the random (mean degree 4) network of this many edges "
                         "with a direct solve, however long that takes (e.g. 100000)")
    ap.add_argument("--reference-solver", default="superlu", choices=("superlu", "cholmod"),
                    help="direct solver of the reference (SuperLU's MMD factor was the faster one on random graphs "
                         "here)")
    ap.add_argument("--steps", type=int, default=2, help="timed CL steps per case (after one warm-up)")
    ap.add_argument("--kinds", default="lattice,random4,random10,layered")
    ap.add_argument("--xy-sizes", default="10,20,30")
    ap.add_argument("--xy-starts", type=int, default=64)
    ap.add_argument("--xy-dense-max", type=int, default=20, help="largest lattice side for the dense XY peer")
    ap.add_argument("--nl-sizes", default="10,20,40,60")
    ap.add_argument("--nl-samples", type=int, default=1000)
    ap.add_argument("--nl-superlu-max", type=int, default=40)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: linear,xy,nonlinear")
    ap.add_argument("--out", type=Path, default=RESULTS / "scaling.md")
    args = ap.parse_args(argv)
    sizes = [s for s in (100, 1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000) if s <= args.max_edges]
    xy_sizes = [int(s) for s in args.xy_sizes.split(",") if s]
    nl_sizes = [int(s) for s in args.nl_sizes.split(",") if s]
    if args.quick:
        sizes, xy_sizes, nl_sizes = sizes[:2], xy_sizes[:1], nl_sizes[:1]
    skip = set(args.skip.split(",")) - {""}

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    linear = [] if "linear" in skip else run_linear(args.kinds.split(","), sizes, list(LINEAR_METHODS),
                                                    args.max_step_s, args.steps, log)
    xy = [] if "xy" in skip else run_xy(xy_sizes, args.xy_starts, args.xy_dense_max, log)
    nonlinear = [] if "nonlinear" in skip else run_nonlinear(nl_sizes, args.nl_samples, args.nl_superlu_max, log)
    reference = None
    if args.reference_edges:
        reference = in_child(lambda: reference_case(args.reference_edges, args.reference_solver))
        log(f"  reference: {reference}")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "cholmod": cholmod_available(), "pyamg": pyamg_available(),
            "command": "python benchmarks/bench_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = markdown(linear, xy, nonlinear, meta, reference)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "linear": linear, "xy": xy,
                                                         "nonlinear": nonlinear, "reference": reference},
                                                        indent=1, default=float))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
