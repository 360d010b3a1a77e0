"""Training-step benchmark: factored batched step against per-example sparse solves.

One *training step* of coupled learning on a 2-D lattice is timed end to end:
a free and a clamped measurement of a whole batch with edge drops, the
gradient, and an Adam update that changes every conductance (so the next step
must factor the network again).  The fast path is the package's own code
(:class:`~labtrain.kinds.resistor.ideal.IdealChip`,
:class:`~labtrain.protocols.gep.CoupledLearning`,
:class:`~labtrain.training.optim.Adam`): it factors the reduced Laplacian once per
update and applies the terminal response to the whole batch.

The baseline, timed in the same run, is the naive implementation of the same
step: for every example and every phase it calls
:func:`scipy.sparse.linalg.spsolve` once (no factor reuse, no
terminal-response trick), builds the node voltages, the edge drops and their
squares, and then forms the same gradient and applies the same Adam update.
On large lattices the baseline is timed on a subset of the batch and
extrapolated linearly (every example costs the same two solves); the row says
how many examples were timed.  Before anything is reported the two gradients
are compared on the timed examples: a ratio between two different
computations would mean nothing.

``labtrain bench`` and ``benchmarks/bench_step.py`` run :func:`run_step_benchmark`
and print :func:`format_table`.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.physics.network import Network, lattice
from labtrain.training.optim import Adam
from labtrain.protocols.gep import CoupledLearning

__all__ = ["run_step_benchmark", "format_table", "growth_exponent", "lattice_shape", "baseline_cl_gradient",
           "DEFAULT_EDGE_COUNTS", "QUICK_EDGE_COUNTS"]

DEFAULT_EDGE_COUNTS: tuple[int, ...] = (100, 1_000, 10_000, 100_000)  #: target edge counts, full run
QUICK_EDGE_COUNTS: tuple[int, ...] = (100, 1_000)  #: target edge counts, ``quick=True``
N_INPUTS, N_OUTPUTS = 4, 2
ETA = 0.1  #: coupled-learning clamp fraction (the experiment-file default)
LEARNING_RATE = 0.01  #: Adam learning rate (normalised units)
MAX_GRADIENT_REL_ERR = 1e-8  #: baseline and fast gradients must agree to this

_Progress = Callable[[str], None] | None


def lattice_shape(target_edges: int) -> tuple[int, int]:
    """Square-ish lattice ``(rows, cols)`` whose edge count is closest to ``target_edges``.

    A ``rows x cols`` lattice has ``2 rows cols - rows - cols`` edges; ``cols`` is
    ``rows`` or ``rows + 1``.

    Parameters
    ----------
    target_edges : int
        Wanted number of edges (>= 4).

    Returns
    -------
    tuple of int
        ``(rows, cols)``.
    """
    if target_edges < 4:
        raise ValueError(f"target_edges must be >= 4, got {target_edges}")
    best: tuple[int, int, int] | None = None
    r0 = max(2, int(math.sqrt(target_edges / 2)))
    for rows in range(max(2, r0 - 2), r0 + 3):
        for cols in (rows, rows + 1):
            err = abs(2 * rows * cols - rows - cols - target_edges)
            if best is None or err < best[0]:
                best = (err, rows, cols)
    return best[1], best[2]


def _baseline_examples(n_edges: int, batch_size: int) -> int:
    """How many examples of the batch the baseline is timed on."""
    if n_edges <= 5_000:
        return batch_size
    if n_edges <= 50_000:
        return min(batch_size, 32)
    return min(batch_size, 16)


# ------------------------------------------------------------------ baseline
class _NaiveSolver:
    """Reduced Laplacians of the free and the clamped phase, assembled once per step.

    Solves are made with :func:`scipy.sparse.linalg.spsolve`, one call per
    example and phase, so nothing of a factorisation is reused.
    """

    def __init__(self, network: Network, conductance_s: np.ndarray) -> None:
        n = network.n_nodes
        self.n_nodes = n
        self.inputs = np.asarray(network.inputs)
        self.outputs = np.asarray(network.outputs)
        inc = network.incidence().tocsr()
        self.inc_t = inc.T.tocsr()
        lap = (inc @ sp.diags(conductance_s) @ inc.T).tocsr()
        grounds = list(network.grounds)
        # Free phase: grounds and inputs imposed.  Clamped phase: outputs imposed too.
        self.free_f = _complement(n, grounds + list(self.inputs))
        self.free_c = _complement(n, grounds + list(self.inputs) + list(self.outputs))
        rows_f, rows_c = lap[self.free_f], lap[self.free_c]
        self.l_ff = rows_f[:, self.free_f].tocsc()
        self.l_fi = rows_f[:, self.inputs].tocsr()
        self.l_cc = rows_c[:, self.free_c].tocsc()
        self.l_cd = rows_c[:, np.r_[self.inputs, self.outputs]].tocsr()

    def free(self, x: np.ndarray) -> np.ndarray:
        """Node voltages of one example in the free phase."""
        v = np.zeros(self.n_nodes)
        v[self.inputs] = x
        v[self.free_f] = spla.spsolve(self.l_ff, -(self.l_fi @ x))
        return v

    def clamped(self, x: np.ndarray, clamp_v: np.ndarray) -> np.ndarray:
        """Node voltages of one example with the outputs held at ``clamp_v``."""
        v = np.zeros(self.n_nodes)
        v[self.inputs] = x
        v[self.outputs] = clamp_v
        v[self.free_c] = spla.spsolve(self.l_cc, -(self.l_cd @ np.r_[x, clamp_v]))
        return v


def _complement(n: int, fixed: Sequence[int]) -> np.ndarray:
    mask = np.ones(n, bool)
    mask[list(fixed)] = False
    return np.flatnonzero(mask)


def _baseline_sums(solver: _NaiveSolver, inputs: np.ndarray, targets_v: np.ndarray,
                   eta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge sums over the examples of the squared drops, free and clamped."""
    sum_free = np.zeros(solver.inc_t.shape[0])
    sum_clamped = np.zeros_like(sum_free)
    for x, t in zip(inputs, targets_v):
        v = solver.free(x)
        v_out = v[solver.outputs]
        w = solver.clamped(x, v_out + eta * (t - v_out))
        sum_free += (solver.inc_t @ v) ** 2
        sum_clamped += (solver.inc_t @ w) ** 2
    return sum_free, sum_clamped


def baseline_cl_gradient(network: Network, conductance_s: np.ndarray, inputs: np.ndarray,
                         targets_v: np.ndarray, eta: float = ETA) -> np.ndarray:
    """Coupled-learning gradient by per-example sparse solves (the benchmark's baseline).

    Parameters
    ----------
    network : Network
        Topology and terminals (inputs are voltage sources).
    conductance_s : ndarray, shape (n_edges,)
        Edge conductances in siemens.
    inputs : ndarray, shape (B, n_inputs)
        Input voltages.
    targets_v : ndarray, shape (B, n_outputs)
        Target output voltages.
    eta : float
        Clamp fraction: outputs held at ``v_O + eta (t - v_O)``.

    Returns
    -------
    ndarray, shape (n_edges,)
        ``(1 / 2 eta) mean_b [dv_C^2 - dv_F^2]``, the same estimate as
        :class:`~labtrain.protocols.gep.CoupledLearning`.
    """
    solver = _NaiveSolver(network, np.asarray(conductance_s, float))
    inputs, targets_v = np.atleast_2d(inputs), np.atleast_2d(targets_v)
    sum_free, sum_clamped = _baseline_sums(solver, inputs, targets_v, eta)
    return 0.5 * (sum_clamped - sum_free) / len(inputs) / eta


# ------------------------------------------------------------------- runner
def _say(progress: _Progress, text: str) -> None:
    if progress is not None:
        progress(text)


def _sizes(sizes: Iterable[int | tuple[int, int]] | None, quick: bool) -> list[tuple[int, int]]:
    if sizes is None:
        sizes = QUICK_EDGE_COUNTS if quick else DEFAULT_EDGE_COUNTS
    shapes = []
    for size in sizes:
        if isinstance(size, (tuple, list)):
            rows, cols = (int(v) for v in size)
        else:
            rows, cols = lattice_shape(int(size))
        shapes.append((rows, cols))
    return shapes


def _bench_one(rows: int, cols: int, batch_size: int, quick: bool, seed: int,
               progress: _Progress) -> dict:
    network = lattice(rows, cols, n_inputs=N_INPUTS, n_outputs=N_OUTPUTS)
    m = network.n_edges
    rng = np.random.default_rng(seed)
    g0 = np.exp(rng.uniform(np.log(network.g_min_s), np.log(network.g_max_s)))
    inputs = rng.uniform(-1.0, 1.0, (batch_size, N_INPUTS))
    targets_v = rng.uniform(-0.5, 0.5, (batch_size, N_OUTPUTS))
    rule = CoupledLearning(ETA)
    n_timed = _baseline_examples(m, batch_size)

    # --- baseline, timed on the first n_timed examples, at conductances g0.
    _say(progress, f"lattice {rows}x{cols} ({m} edges): baseline, {n_timed} of {batch_size} examples ...")
    base_chip, base_opt = IdealChip(network, g0), Adam(LEARNING_RATE)
    x_sub, t_sub = inputs[:n_timed], targets_v[:n_timed]
    repeats = 1 if m > 5_000 else 3
    fixed_s, loop_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        solver = _NaiveSolver(network, base_chip.get_parameters())
        t1 = time.perf_counter()
        sum_free, sum_clamped = _baseline_sums(solver, x_sub, t_sub, ETA)
        t2 = time.perf_counter()
        grad_base = 0.5 * (sum_clamped - sum_free) / n_timed / ETA
        base_opt.apply(base_chip, grad_base)
        t3 = time.perf_counter()
        base_chip.set_parameters(g0)
        base_opt = Adam(LEARNING_RATE)
        fixed_s.append((t1 - t0) + (t3 - t2))
        loop_s.append(t2 - t1)
    # Fixed costs (assembly, update) are counted once; only the solves scale with the batch.
    baseline_s = statistics.median(fixed_s) + statistics.median(loop_s) * batch_size / n_timed

    # --- the same gradient from the fast path, on the same examples and conductances.
    chip = IdealChip(network, g0)
    grad_fast_sub = rule.estimate(chip, x_sub, t_sub).gradient
    rel_err = float(np.linalg.norm(grad_fast_sub - grad_base) / np.linalg.norm(grad_base))
    if not rel_err < MAX_GRADIENT_REL_ERR:
        raise RuntimeError(f"lattice {rows}x{cols}: baseline and fast gradients differ "
                           f"(relative error {rel_err:.3g}); the benchmark would compare different computations")

    # --- fast path: full training steps on the whole batch.
    _say(progress, f"lattice {rows}x{cols} ({m} edges): training step, batch {batch_size} ...")
    chip = IdealChip(network, g0)
    optimizer = Adam(LEARNING_RATE)
    n_steps = 3 if quick else 5
    times = []
    for k in range(n_steps + 1):  # step 0 is a warm-up
        before = chip.get_parameters()
        t0 = time.perf_counter()
        estimate = rule.estimate(chip, inputs, targets_v)
        optimizer.apply(chip, estimate.gradient)
        elapsed = time.perf_counter() - t0
        if np.array_equal(before, chip.get_parameters()):
            raise RuntimeError("the Adam update left the conductances unchanged; the step would not refactor")
        if k:
            times.append(elapsed)
    step_s = statistics.median(times)
    row = {
        "rows": rows,
        "cols": cols,
        "n_nodes": network.n_nodes,
        "n_edges": m,
        "batch_size": batch_size,
        "step_s": step_s,
        "baseline_s": baseline_s,
        "ratio": baseline_s / step_s,
        "baseline_examples_timed": n_timed,
        "gradient_rel_err": rel_err,
    }
    _say(progress, f"lattice {rows}x{cols}: step {step_s * 1e3:.3g} ms, baseline {baseline_s:.3g} s, "
                   f"ratio {row['ratio']:.0f}x, gradient rel. err. {rel_err:.1e}")
    return row


def run_step_benchmark(batch_size: int = 256, quick: bool = False, progress: _Progress = None,
                       sizes: Iterable[int | tuple[int, int]] | None = None, seed: int = 0) -> list[dict]:
    """Time one coupled-learning training step against per-example sparse solves.

    Parameters
    ----------
    batch_size : int
        Examples per step (the issue's target is stated at 256).
    quick : bool
        Only the ~1e2 and ~1e3 edge lattices, fewer repeats (seconds).
    progress : callable, optional
        Called with a status line before and after every size.
    sizes : iterable, optional
        Lattices to time: target edge counts (int, the lattice is the closest
        square-ish one, see :func:`lattice_shape`) or explicit ``(rows, cols)``.
        Default ~1e2, 1e3, 1e4, 1e5 edges (quick: ~1e2, 1e3).
    seed : int
        Seed of the conductances, inputs and targets.

    Returns
    -------
    list of dict
        One row per lattice with keys ``rows, cols, n_nodes, n_edges,
        batch_size``, ``step_s`` (median fast step, seconds), ``baseline_s``
        (baseline step extrapolated to the whole batch, seconds), ``ratio``
        (``baseline_s / step_s``), ``baseline_examples_timed`` and
        ``gradient_rel_err`` (baseline vs fast gradient on the timed examples).

    Raises
    ------
    RuntimeError
        If the baseline and the fast path disagree (relative error >= 1e-8).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [_bench_one(rows, cols, int(batch_size), quick, seed, progress)
            for rows, cols in _sizes(sizes, quick)]


def growth_exponent(rows: Sequence[dict], key: str = "step_s", min_edges: int = 1_000) -> float | None:
    """Slope of ``log(row[key])`` against ``log(n_edges)``.

    Rows with fewer than ``min_edges`` edges are left out (their time is
    dominated by fixed overheads) unless that leaves fewer than two sizes.
    Returns ``None`` with fewer than two distinct sizes.
    """
    use = [r for r in rows if r["n_edges"] >= min_edges]
    if len({r["n_edges"] for r in use}) < 2:
        use = list(rows)
    if len({r["n_edges"] for r in use}) < 2:
        return None
    x = np.log([r["n_edges"] for r in use])
    y = np.log([r[key] for r in use])
    return float(np.polyfit(x, y, 1)[0])


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`run_step_benchmark` rows and the cost growth with size.

    Parameters
    ----------
    rows : sequence of dict
        Rows from :func:`run_step_benchmark`.

    Returns
    -------
    str
        The table, then lines like ``step time grows as n_edges^1.1`` (a log-log
        fit over the sizes with >= 1e3 edges) and the exponent between the two
        largest sizes.
    """
    header = ("lattice", "nodes", "edges", "batch", "step (ms)", "baseline (s)", "ratio", "timed", "grad rel err")
    body = []
    for r in rows:
        body.append((f"{r['rows']}x{r['cols']}", str(r["n_nodes"]), str(r["n_edges"]), str(r["batch_size"]),
                     f"{r['step_s'] * 1e3:.3g}", f"{r['baseline_s']:.3g}", f"{r['ratio']:.0f}x",
                     f"{r['baseline_examples_timed']}/{r['batch_size']}", f"{r['gradient_rel_err']:.1e}"))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    lines.append("step = free + clamped measurement of the batch, CL gradient, Adam update (refactors next step); "
                 "median of repeats.")
    lines.append("baseline = one scipy spsolve per example per phase, same gradient and update; "
                 "'timed' examples, extrapolated linearly to the batch.")
    fast, slow = growth_exponent(rows, "step_s"), growth_exponent(rows, "baseline_s")
    if fast is not None:
        sizes = [r["n_edges"] for r in rows if r["n_edges"] >= 1_000]
        span = "sizes >= 1e3 edges" if len(set(sizes)) >= 2 else "all sizes"
        lines.append(f"step time grows as n_edges^{fast:.2f}; baseline as n_edges^{slow:.2f} "
                     f"(log-log fit over {span})")
        top = sorted(rows, key=lambda r: r["n_edges"])[-2:]
        if len(rows) > 2 and top[0]["n_edges"] < top[1]["n_edges"]:
            local = growth_exponent(top, "step_s", min_edges=0)
            lines.append(f"between the two largest lattices the step grows as n_edges^{local:.2f} "
                         "(sparse factorisation dominates there)")
    return "\n".join(lines)
