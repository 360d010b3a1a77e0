"""Tables of the MATCHED XY architecture comparison (issue 14 item 3): lattice vs all-to-all vs layered.

Reads the sweep folders of sweeps/xy_matched_xor.toml, sweeps/xy_matched_iris.toml and
sweeps/xy_matched_mnist.toml and prints one markdown table per task, with

* the trainable parameters of every architecture (couplings + bias components, counted on the chip each
  member's run file describes, and checked against :func:`xy_parameter_count`) and their mismatch to the
  lattice -- the protocol asks for counts within 10 %;
* every planned member counted: ``runs`` is completed / planned; a member that did not complete counts as a
  failure in the success fraction and is left out of the accuracy statistics (the table says how many);
* success fractions with 95 % Wilson score intervals (:func:`wilson_interval`);
* accuracies as mean ± sample std and a 95 % Student-t interval of the mean (:func:`t_interval`; shown clipped
  to [0, 100] %), and every seed's test accuracy (in seed order; ``-``: the member did not complete).

XOR success = all four inputs correct and mean cosine cost ``(1 - cos(phi - tau)) / 2`` < 0.01 over fresh
random starts (seeded ``[seed, 99]``, the chip's ``n_starts``) at the final parameters -- the criterion of
sweeps/xy_xor.py.  Iris / MNIST success = final test accuracy >= ``--iris-threshold`` / ``--mnist-threshold``
(0.9 / 0.5, fixed before the runs).

Usage::

    python sweeps/xy_matched.py --xor runs/xy_matched_xor --iris runs/xy_matched_iris \\
        --mnist runs/xy_matched_mnist --maps-png benchmarks/results/xy_matched_mnist_maps.png

``--maps-png`` (needs matplotlib) draws the final coupling and response maps of the MNIST lattice member with
the best test accuracy.  ``--references MNIST_PATH`` adds digital classifiers (logistic regression, a ReLU MLP
of the layered member's widths) fitted on the members' own inputs.  ``--match N_IN N_OUT TARGET`` prints the
all-to-all size and the hidden-layer width whose parameter counts come nearest to ``TARGET`` (how the sweep
files were sized).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054


def xy_parameter_count(topology: str, n_inputs: int, n_outputs: int, *, rows: int = 0, cols: int = 0,
                       n_nodes: int = 0, hidden_layers: Sequence[int] = (), bias: str = "vector") -> dict[str, int]:
    """Nodes, edges and trainable parameters of an XY network as labtrain builds it.

    Parameters
    ----------
    topology : str
        ``"lattice"`` (nearest neighbours, no diagonals or skips), ``"all_to_all"`` or ``"layered"``.
    n_inputs, n_outputs : int
        Input (clamped) and output oscillators.
    rows, cols : int
        Lattice size.
    n_nodes : int
        All-to-all size.
    hidden_layers : sequence of int
        Layered hidden widths; the layered builder adds one reference node to the input layer.
    bias : str
        ``"vector"`` (2 components per free oscillator), ``"field"`` (1) or ``"none"`` (0); bias fields on
        every free (non-input) oscillator, as ``[chip] bias_on = "free"``.

    Returns
    -------
    dict
        ``nodes``, ``edges``, ``free`` (non-input oscillators) and ``params`` = edges + bias components.
    """
    per_node = {"vector": 2, "field": 1, "none": 0}[bias]
    if topology == "lattice":
        nodes, edges = rows * cols, rows * (cols - 1) + (rows - 1) * cols
    elif topology == "all_to_all":
        nodes, edges = n_nodes, n_nodes * (n_nodes - 1) // 2
    elif topology == "layered":
        sizes = [n_inputs + 1, *[int(h) for h in hidden_layers], n_outputs]
        nodes, edges = sum(sizes), sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    else:
        raise ValueError(f"unknown topology {topology!r}")
    if nodes < n_inputs + n_outputs:
        raise ValueError(f"{topology}: {nodes} nodes cannot hold {n_inputs} inputs and {n_outputs} outputs")
    free = nodes - n_inputs
    return {"nodes": nodes, "edges": edges, "free": free, "params": edges + per_node * free}


def match_architectures(n_inputs: int, n_outputs: int, target: int, bias: str = "vector") -> dict[str, dict]:
    """The all-to-all size and single hidden width whose parameter counts are nearest ``target``.

    All-to-all needs ``N >= n_inputs + n_outputs + 1`` (one oscillator besides the terminals); the smallest
    such ``N`` is returned when every larger one is farther from ``target``.

    Returns
    -------
    dict
        ``{"all_to_all": {"n_nodes": N, **counts, "mismatch": rel}, "layered": {"hidden": h, ...}}`` with
        ``mismatch = params / target - 1``.
    """
    if target <= 0:
        raise ValueError("target must be positive")
    best: dict[str, dict] = {}
    lo = n_inputs + n_outputs + 1
    for n in range(lo, lo + 4 * int(math.isqrt(target)) + 8):
        c = xy_parameter_count("all_to_all", n_inputs, n_outputs, n_nodes=n, bias=bias)
        if "all_to_all" not in best or abs(c["params"] - target) < abs(best["all_to_all"]["params"] - target):
            best["all_to_all"] = {"n_nodes": n, **c}
    for h in range(1, target + 1):
        c = xy_parameter_count("layered", n_inputs, n_outputs, hidden_layers=[h], bias=bias)
        if "layered" not in best or abs(c["params"] - target) < abs(best["layered"]["params"] - target):
            best["layered"] = {"hidden": h, **c}
    for v in best.values():
        v["mismatch"] = v["params"] / target - 1.0
    return best


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (95 % for the default ``z``).

    Returns ``(nan, nan)`` for ``n = 0``.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} outside 0..n = {n}")
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std and the Student-t confidence interval of the mean of the finite ``values``.

    Returns ``(mean, std, low, high)``; std and the interval are NaN for fewer than two values.
    """
    from scipy.stats import t as student_t

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (float("nan"),) * 4
    mean = float(v.mean())
    if len(v) < 2:
        return (mean, float("nan"), float("nan"), float("nan"))
    std = float(v.std(ddof=1))
    half = float(student_t.ppf(0.5 + confidence / 2, len(v) - 1)) * std / math.sqrt(len(v))
    return (mean, std, mean - half, mean + half)


# ------------------------------------------------------------------------------------------------ members
def member_rows(folder: Path) -> list[dict[str, Any]]:
    """One dict per planned member: architecture values, seed, status, run file, final metrics, step time."""
    from labtrain.training.sweep import read_manifest
    from labtrain.training.sweep_summary import member_record

    rows = []
    for m in read_manifest(folder)["members"]:
        chip = m["overrides"]["chip"]
        row: dict[str, Any] = {
            "name": m["name"], "status": m["status"], "seed": int(m["overrides"]["run"]["seed"]),
            "topology": chip["topology"], "rows": chip.get("rows", 0), "cols": chip.get("cols", 0),
            "n_nodes": chip.get("n_nodes", 0), "hidden_layers": list(chip.get("hidden_layers", [])),
            "run_file": (folder / m["run_file"]) if m.get("run_file") else None, "wall_s": m.get("wall_s"),
        }
        row["arch"] = architecture_label(row)
        if row["run_file"] is not None and row["run_file"].is_file():
            rec = member_record(row["run_file"])
            row.update({k: rec[k] for k in ("steps_done", "step_time_s", "final_train_accuracy",
                                               "final_test_accuracy")})
        rows.append(row)
    return rows


def architecture_label(row: dict[str, Any]) -> str:
    """``lattice 5x5``, ``all-to-all N=12`` or ``layered [14]`` (hidden widths; terminals from the task)."""
    if row["topology"] == "lattice":
        return f"lattice {row['rows']}x{row['cols']}"
    if row["topology"] == "all_to_all":
        return f"all-to-all N={row['n_nodes']}"
    return "layered " + "-".join(["in"] + [str(h) for h in row["hidden_layers"]] + ["out"])


def network_counts(run_file: Path) -> dict[str, Any]:
    """Nodes, edges, parameters (built chip), terminals and epochs of one member; checks the closed form."""
    from labtrain.build import build_setup
    from labtrain.config import experiment_from_text
    from labtrain.training.store import RunStore

    with RunStore.open(run_file) as store:
        source = store.source
        exp = experiment_from_text(store.experiment_text, Path(source) if source else None, store.overrides)
    setup = build_setup(exp)
    try:
        net, c = setup.network, exp["chip"]
        out = {"nodes": net.n_nodes, "edges": net.n_edges, "params": int(setup.chip.parameter_spec.size),
               "n_inputs": len(net.inputs), "n_outputs": len(net.outputs), "epochs": int(exp["run"]["epochs"]),
               "n_train": len(setup.task.x_train), "inputs": [int(i) for i in net.inputs],
               "outputs": [int(i) for i in net.outputs]}
        closed = xy_parameter_count(c["topology"], out["n_inputs"], out["n_outputs"], rows=c["rows"],
                                    cols=c["cols"], n_nodes=c["n_nodes"], hidden_layers=c["hidden_layers"],
                                    bias=c["bias"])
        if (closed["nodes"], closed["edges"], closed["params"]) != (out["nodes"], out["edges"], out["params"]):
            raise RuntimeError(f"{run_file}: built {out} but xy_parameter_count gives {closed}")
        return out
    finally:
        setup.chip.close()


def xor_final_check(run_file: Path) -> dict[str, float]:
    """Accuracy and cosine loss of a member's final parameters on fresh random starts (seeded ``[seed, 99]``):
    the check of sweeps/xy_xor.py."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from xy_xor import final_check

    got = final_check(run_file)
    return {"accuracy": got["accuracy"], "cosine_loss": got["cosine_loss"]}


def _groups(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    order: list[str] = []
    for r in rows:
        if r["arch"] not in order:
            order.append(r["arch"])
    return [(a, [r for r in rows if r["arch"] == a]) for a in order]


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.1f}"


def _fraction(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} [{_pct(lo)}, {_pct(hi)}] %" if n else "-"


def _sizes(group: list[dict[str, Any]]) -> dict[str, Any] | None:
    for r in group:
        if r["run_file"] is not None and r["run_file"].is_file():
            return network_counts(r["run_file"])
    return None


def _ms_per_epoch(group: list[dict[str, Any]], size: dict[str, Any] | None) -> float:
    done = [r for r in group if r["status"] == "completed" and np.isfinite(r.get("step_time_s", np.nan))]
    if not done or size is None:
        return float("nan")
    return 1e3 * float(np.mean([r["step_time_s"] * r["steps_done"] / size["epochs"] for r in done]))


def _ms(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.0f}"


def _size_cells(size: dict[str, Any] | None, reference: int | None) -> str:
    if size is None:
        return "- | - | - | -"
    same = reference is None or size["params"] == reference
    delta = "0" if same else f"{100 * (size['params'] / reference - 1):+.1f} %"
    return f"{size['nodes']} | {size['edges']} | {size['params']} | {delta}"


def xor_table(folder: Path, threshold: float = 0.01) -> str:
    """Markdown table of the XOR sweep: success (Wilson), 4/4 correct, median cosine loss, ms / epoch."""
    rows = member_rows(folder)
    lines = ["| architecture | nodes | edges | params | vs lattice | runs | success [95 % Wilson] | 4/4 correct "
             "[95 % Wilson] | median cosine loss | ms / epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    reference = None
    for arch, group in _groups(rows):
        size = _sizes(group)
        if reference is None and size is not None:
            reference = size["params"]
        checks = [xor_final_check(r["run_file"]) if r["status"] == "completed" else None for r in group]
        n = len(group)
        done = [c for c in checks if c is not None]
        correct = sum(c["accuracy"] == 1.0 for c in done)
        ok = sum(c["accuracy"] == 1.0 and c["cosine_loss"] < threshold for c in done)
        median = float(np.median([c["cosine_loss"] for c in done])) if done else float("nan")
        lines.append(f"| {arch} | {_size_cells(size, reference)} | {len(done)}/{n} | {_fraction(ok, n)} | "
                     f"{_fraction(correct, n)} | {median:.4f} | {_ms(_ms_per_epoch(group, size))} |")
    return "\n".join(lines)


def accuracy_table(folder: Path, threshold: float) -> str:
    """Markdown table of a classification sweep: train / test accuracy (mean ± std, 95 % t), success (Wilson)."""
    rows = member_rows(folder)
    lines = ["| architecture | nodes | edges | params | vs lattice | runs | train acc (%) | test acc (%) | "
             f"test acc 95 % t-interval (%) | test acc >= {100 * threshold:.0f} % [95 % Wilson] | "
             "test acc per seed (%) | ms / epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    reference = None
    for arch, group in _groups(rows):
        size = _sizes(group)
        if reference is None and size is not None:
            reference = size["params"]
        done = [r for r in group if r["status"] == "completed"]
        train = [r["final_train_accuracy"] for r in done]
        test = [r["final_test_accuracy"] for r in done]
        m_tr, s_tr, _, _ = t_interval(train)
        m_te, s_te, lo, hi = t_interval(test)
        ok = sum(np.isfinite(a) and a >= threshold for a in test)
        lines.append(f"| {arch} | {_size_cells(size, reference)} | {len(done)}/{len(group)} | "
                     f"{_pct(m_tr)} ± {_pct(s_tr)} | {_pct(m_te)} ± {_pct(s_te)} | "
                     f"[{_pct(max(lo, 0.0))}, {_pct(min(hi, 1.0))}] | {_fraction(ok, len(group))} | "
                     f"{' / '.join(_pct(r.get('final_test_accuracy', np.nan)) for r in group)} | "
                     f"{_ms(_ms_per_epoch(group, size))} |")
    return "\n".join(lines)


def curve_table(folder: Path) -> str:
    """Markdown table of test accuracy at every evaluation step, per architecture: mean ± sample std over the
    members that reached that evaluation (``n``), and every seed's value (``-``: not reached)."""
    from labtrain.training.store import RunStore
    from labtrain.training.sweep import member_run_file

    rows = member_rows(folder)
    lines = ["| architecture | after step | epochs | n | test acc (%) | test acc per seed (%) |",
             "|---|---|---|---|---|---|"]
    for arch, group in _groups(rows):
        curves = []
        for r in group:
            ev: dict[str, np.ndarray] = {}
            path = r["run_file"] or member_run_file(folder / "runs", r["name"])  # a running member's curve so far
            if path is not None and path.is_file():
                with RunStore.open(path) as store:
                    ev = store.table("eval")
            curves.append({int(k): (float(a), int(e)) for k, a, e in
                           zip(ev.get("step", []), ev.get("test_accuracy", []), ev.get("epoch", []))})
        for step in sorted({k for c in curves for k in c}):
            got = [c[step][0] for c in curves if step in c]
            epoch = next(c[step][1] for c in curves if step in c)
            mean, std, _, _ = t_interval(got)
            per_seed = " / ".join(_pct(c[step][0]) if step in c else "-" for c in curves)
            after = "before training" if step < 0 else str(step + 1)
            lines.append(f"| {arch} | {after} | {epoch + 1 if step >= 0 else 0} | {len(got)} | {_pct(mean)} ± {_pct(std)} | "
                         f"{per_seed} |")
    return "\n".join(lines)


def best_member(folder: Path, topology: str = "lattice") -> dict[str, Any] | None:
    """The completed member of ``topology`` with the highest final test accuracy (lowest seed on ties)."""
    done = [r for r in member_rows(folder) if r["status"] == "completed" and r["topology"] == topology
            and np.isfinite(r.get("final_test_accuracy", np.nan))]
    return max(done, key=lambda r: (r["final_test_accuracy"], -r["seed"])) if done else None


def maps_png(folder: Path, png: Path, dpi: int = 90) -> str:
    """Draw the final coupling and response maps of the best lattice member of ``folder`` into ``png``.

    Returns a one-line description of what was drawn.
    """
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("xy_matched: --maps-png needs matplotlib (pip install -e '.[plots]')") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from labtrain.training.store import RunStore

    best = best_member(folder)
    if best is None:
        raise SystemExit(f"{folder}: no completed lattice member")
    with RunStore.open(best["run_file"]) as store:
        maps = store.maps()
    if not maps or "coupling_image_rad_per_s" not in maps:
        raise SystemExit(f"{best['run_file']}: no lattice maps recorded ([run] record_maps_every = 0)")
    size = network_counts(best["run_file"])
    k = -1
    step = int(maps["step"][k])
    coupling = maps["coupling_image_rad_per_s"][k]
    response = maps["response_image"][k]
    rows, cols = response.shape
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.9))
    vmax = float(np.nanmax(np.abs(coupling)))
    im = axes[0].imshow(coupling, cmap="RdBu_r", vmin=-vmax, vmax=vmax, extent=(-0.25, cols - 0.75, rows - 0.75, -0.25))
    axes[0].set_title("coupling $W_e$ (rad/s) on the edges")
    fig.colorbar(im, ax=axes[0], shrink=0.85)
    pos = np.where(response > 0, response, np.nan)
    im2 = axes[1].imshow(pos, cmap="viridis", norm=LogNorm(vmin=max(float(np.nanmin(pos)), 1e-4), vmax=1.0))
    axes[1].set_title(r"response $|\partial\phi_i/\partial\phi_{in}|$, mean over inputs")
    fig.colorbar(im2, ax=axes[1], shrink=0.85)
    # terminals of the built network (lattice node r * cols + c sits at image row r, column c)
    r_in, c_in = np.divmod(np.asarray(size["inputs"]), cols)
    r_out, c_out = np.divmod(np.asarray(size["outputs"]), cols)
    for ax in axes:
        ax.scatter(c_in, r_in, marker="s", s=22, facecolors="none", edgecolors="k", linewidths=0.8,
                   label="input")
        ax.scatter(c_out, r_out, marker="o", s=26, facecolors="none", edgecolors="m", linewidths=0.9,
                   label="output")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"MNIST-10k, lattice {rows}x{cols}, seed {best['seed']} (best lattice: test "
                 f"{100 * best['final_test_accuracy']:.1f} %), after step {step + 1}", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    at_outputs = [float(np.mean(maps["response_image"][f][r_out, c_out])) for f in (0, k)]
    return (f"{png}: lattice {rows}x{cols} seed {best['seed']}, test accuracy "
            f"{100 * best['final_test_accuracy']:.1f} %, maps after step {step + 1}; the outputs' mean response "
            f"to an input {at_outputs[0]:.2g} after step {int(maps['step'][0]) + 1} (0 = before training), "
            f"{at_outputs[1]:.2g} after step {step + 1}")


def digital_references(folder: Path, mnist_path: str, seeds: int = 3) -> str:
    """Digital classifiers on exactly the inputs the MNIST sweep's members saw (its downsampled images, its
    training subset, the same 2000 test images): logistic regression, and a ReLU MLP with the layered member's
    hidden widths (Adam, its batch size and epochs).  A floor and a ceiling for the oscillator networks."""
    import json
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from labtrain.kinds.xy.tasks import phase_task

    manifest = json.loads((folder / "manifest.json").read_text())
    fixed = manifest["fixed"]
    t, r = fixed["task"], fixed.get("run", {})
    task = phase_task("mnist", mnist_path=mnist_path, downsample=int(t["downsample"]),
                      n_train=int(t.get("n_train", 60000)), n_test=int(t.get("n_test", 10000)),
                      **{k: float(t[k + "_rad"]) for k in ("input_phase", "target_phase") if k + "_rad" in t})
    hidden = tuple(next(m["values"]["chip.hidden_layers"] for m in manifest["members"]
                        if m["values"].get("chip.topology") == "layered"))
    epochs, batch = int(r.get("epochs", 1)), int(r.get("batch_size", 16))
    linear = 100 * LogisticRegression(max_iter=5000).fit(task.x_train, task.y_train).score(task.x_test, task.y_test)
    mlp = []
    for seed in range(seeds):
        clf = MLPClassifier(hidden, max_iter=epochs, batch_size=batch, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(task.x_train, task.y_train)
        mlp.append(100 * clf.score(task.x_test, task.y_test))
    return (f"digital references on the same {task.n_inputs} inputs ({len(task.x_train)} train / "
            f"{len(task.x_test)} test images): logistic regression {linear:.1f} %; ReLU MLP "
            f"{task.n_inputs}-{'-'.join(map(str, hidden))}-10 (Adam 1e-3, batch {batch}, {epochs} epochs, seeds "
            f"0-{seeds - 1}) {np.mean(mlp):.1f} ± {np.std(mlp, ddof=1):.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xor", type=Path, help="sweep folder of sweeps/xy_matched_xor.toml")
    parser.add_argument("--iris", type=Path, help="sweep folder of sweeps/xy_matched_iris.toml")
    parser.add_argument("--mnist", type=Path, help="sweep folder of sweeps/xy_matched_mnist.toml")
    parser.add_argument("--xor-threshold", type=float, default=0.01, help="XOR success: cosine loss below this")
    parser.add_argument("--iris-threshold", type=float, default=0.9, help="Iris success: test accuracy >= this")
    parser.add_argument("--mnist-threshold", type=float, default=0.5, help="MNIST success: test accuracy >= this")
    parser.add_argument("--curves", action="store_true",
                        help="with --mnist: also the test accuracy at every evaluation (learning curves)")
    parser.add_argument("--maps-png", type=Path, help="with --mnist: draw the best lattice member's maps here")
    parser.add_argument("--references", metavar="MNIST_PATH",
                        help="with --mnist: also fit logistic regression and an MLP on the members' own inputs")
    parser.add_argument("--match", type=int, nargs=3, metavar=("N_IN", "N_OUT", "TARGET"),
                        help="print the all-to-all N and hidden width nearest TARGET parameters")
    args = parser.parse_args(argv)
    if args.match:
        n_in, n_out, target = args.match
        for name, v in match_architectures(n_in, n_out, target).items():
            size = f"N = {v['n_nodes']}" if name == "all_to_all" else f"hidden [{v['hidden']}]"
            print(f"{name}: {size}: {v['edges']} edges + bias = {v['params']} params ({100 * v['mismatch']:+.1f} %)")
    blocks = []
    if args.xor:
        blocks.append(f"XOR ({args.xor}): success = 4/4 correct and cosine loss < {args.xor_threshold} on fresh "
                      f"random starts\n\n" + xor_table(args.xor, args.xor_threshold))
    if args.iris:
        blocks.append(f"Iris ({args.iris}): final evaluation, mean ± sample std over completed seeds\n\n"
                      + accuracy_table(args.iris, args.iris_threshold))
    if args.mnist:
        blocks.append(f"MNIST-10k ({args.mnist}): final evaluation, mean ± sample std over completed seeds\n\n"
                      + accuracy_table(args.mnist, args.mnist_threshold))
    if args.curves:
        if not args.mnist:
            parser.error("--curves needs --mnist")
        blocks.append(f"MNIST-10k ({args.mnist}): test accuracy at every evaluation\n\n" + curve_table(args.mnist))
    if args.references:
        if not args.mnist:
            parser.error("--references needs --mnist")
        blocks.append(digital_references(args.mnist, args.references))
    if blocks:
        print("\n\n".join(blocks))
    if args.maps_png:
        if not args.mnist:
            parser.error("--maps-png needs --mnist")
        print("\n" + maps_png(args.mnist, args.maps_png))
    if not (blocks or args.match):
        parser.error("give --xor, --iris, --mnist or --match")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
