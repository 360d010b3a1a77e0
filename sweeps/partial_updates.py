"""Tables of the partial-updates sweep (sweeps/partial_updates.toml): test accuracy and train loss by fraction
of edges updated and subset choice ([learning] mask_mode), one table per network size, mean +- std over the
seeds the sweep ran; then, for the fixed subsets (fixed, near_output), what the frozen edges leave: how many
edges learn, the share of the output nodes' edges that learn and the share of nodes none of whose edges learn;
the share of edges that join two driven nodes (inputs, bias input, ground: no gradient ever reaches them); and,
from the run files' parameter history, the share of edges updated at least once during the run, by mode.

Usage::

    labtrain sweep sweeps/partial_updates.toml --out runs/partial_updates && python sweeps/partial_updates.py runs/partial_updates
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from labtrain.build import kind_of
from labtrain.config import load_experiment
from labtrain.overrides import flatten
from labtrain.protocols.masks import MASK_MODES, UpdateMask, output_distance_hops
from labtrain.training.store import RunStore
from labtrain.training.sweep import read_manifest
from labtrain.training.sweep_summary import summary_dataset

#: axes of the study and their value when the sweep did not vary them (the example's)
AXES = (("learning.update_fraction", "update_fraction", 1.0), ("learning.mask_mode", "mask_mode", "fixed"),
        ("chip.n_nodes", "n_nodes", 300), ("run.seed", "seed", 0))
#: subset choices whose subset is fixed for the whole run (their frozen edges are the same at every step)
FIXED_SUBSETS = ("fixed", "near_output")


def cell(values: np.ndarray, done: np.ndarray, percent: bool) -> str:
    """``mean +- std`` of the completed, finite ``values`` (std over seeds, ddof 0; the mean alone for one)."""
    v = np.asarray(values, float)[np.asarray(done)]
    v = v[np.isfinite(v)] * (100 if percent else 1)
    if len(v) == 0:
        return "-"
    if percent:
        return f"{v.mean():.1f} %" if len(v) == 1 else f"{v.mean():.1f} ± {v.std():.1f} %"
    return f"{v.mean():.4f}" if len(v) == 1 else f"{v.mean():.4f} ± {v.std():.4f}"


def complete_axes(ds: xr.Dataset, fixed: dict[str, Any]) -> xr.Dataset:
    """Put back, with length 1, an axis fixed on the command line (``--set learning.mask_mode=random``) or
    not swept at all (the network size, the seed)."""
    for key, dim, default in AXES:
        if dim not in ds.dims:
            ds = ds.expand_dims({dim: [fixed.get(key, default)]})
    if "n_edges" not in ds.coords:  # the size fixed: its edge count too (the example's 1500 where not given)
        ds = ds.assign_coords(n_edges=("n_nodes", [fixed.get("chip.n_edges", 1500)] * ds.sizes["n_nodes"]))
    return ds


def size_title(ds: xr.Dataset, k: int) -> str:
    """``300 nodes / 1500 edges, seeds 0, 1, 2`` for the ``k``-th network size."""
    n_nodes = int(ds["n_nodes"].values[k])
    edges = f" / {int(ds['n_edges'].values[k])} edges"
    seeds = ", ".join(str(int(s)) for s in ds["seed"].values)
    what = "mean ± std over seeds" if ds.sizes["seed"] > 1 else "seed"
    return f"{n_nodes} nodes{edges}, {what} {seeds}"


def table(ds: xr.Dataset, k: int, loss: bool = True) -> str:
    """Markdown table of the ``k``-th network size: a row per fraction, test accuracy (and train loss) per mode."""
    modes = [str(m) for m in ds["mask_mode"].values]
    unit = ds["final_train_loss"].attrs.get("units", "1")
    loss_name = "train loss" if unit in ("", "1") else f"train loss ({unit})"
    whats = ("test acc.", loss_name) if loss else ("test acc.",)
    header = ["edges updated"] + [f"{mode} subset: {what}" for mode in modes for what in whats]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, fraction in enumerate(ds["update_fraction"].values):
        cells = [f"{100 * float(fraction):.0f} %"]
        for j in range(len(modes)):
            sub = ds.isel(update_fraction=i, mask_mode=j, n_nodes=k)
            done = sub["status"].values == "completed"
            cells.append(cell(sub["final_test_accuracy"].values, done, True))
            if loss:
                cells.append(cell(sub["final_train_loss"].values, done, False))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def driven_edge_share(network: Any) -> float:
    """Share of ``network``'s edges whose two ends are both driven (inputs or grounds): their drop is set by the
    inputs alone, so no output depends on their conductance and their gradient is 0."""
    driven = np.isin(network.edges, list(network.inputs) + list(network.grounds))
    return float(driven.all(axis=1).mean())


def frozen_statistics(folder: Path) -> list[dict[str, Any]]:
    """For every member with a fixed subset (``fixed``, ``near_output``) and a fraction below 1: its network
    size, fraction and mode, the number of edges that learn, the share of the output nodes' edges that learn
    and the share of all nodes none of whose edges learn (the mask is rebuilt from the member's experiment;
    nothing is trained)."""
    manifest = read_manifest(folder)
    path = manifest["experiment"]["path"]
    networks: dict[tuple, Any] = {}
    rows = []
    for member in manifest["members"]:
        exp = load_experiment(path, member["overrides"])
        lr, chip = exp["learning"], exp["chip"]
        if lr["mask_mode"] not in FIXED_SUBSETS or lr["update_fraction"] >= 1:
            continue
        key = (chip["n_nodes"], chip["n_edges"], chip["graph_seed"])
        if key not in networks:
            kind = kind_of(exp)
            networks[key] = kind.network(exp, kind.task(exp))
        net = networks[key]
        hops = output_distance_hops(net) if lr["mask_mode"] == "near_output" else None
        learns = UpdateMask(net.n_edges, lr["update_fraction"], lr["mask_mode"], exp["run"]["seed"],
                            distance_hops=hops).at_step(0)
        ends = net.edges
        node_learns = np.zeros(net.n_nodes, bool)
        node_learns[ends[learns].ravel()] = True
        at_output = np.isin(ends, list(net.outputs)).any(axis=1)
        rows.append({"n_nodes": net.n_nodes, "fraction": float(lr["update_fraction"]), "mode": lr["mask_mode"],
                     "edges_learning": int(learns.sum()), "driven_edges": driven_edge_share(net),
                     "output_edges_learning": float(learns[at_output].mean()),
                     "nodes_frozen": float(1.0 - node_learns.mean())})
    return rows


def statistics_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`frozen_statistics`, means over seeds."""
    header = ["nodes", "edges updated", "subset", "edges learning", "output nodes' edges learning",
              "nodes with every edge frozen"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups = sorted({(r["n_nodes"], -r["fraction"], FIXED_SUBSETS.index(r["mode"])) for r in rows})
    for n_nodes, minus_fraction, m in groups:
        sel = [r for r in rows if (r["n_nodes"], -r["fraction"], r["mode"]) == (n_nodes, minus_fraction,
                                                                                FIXED_SUBSETS[m])]
        lines.append(f"| {n_nodes} | {-100 * minus_fraction:.0f} % | {FIXED_SUBSETS[m]} | "
                     f"{np.mean([r['edges_learning'] for r in sel]):.0f} | "
                     f"{100 * np.mean([r['output_edges_learning'] for r in sel]):.0f} % | "
                     f"{100 * np.mean([r['nodes_frozen'] for r in sel]):.1f} % |")
    return "\n".join(lines)


def updated_statistics(folder: Path) -> list[dict[str, Any]]:
    """For every completed member with a fraction below 1 whose run file recorded the parameters at every step:
    its network size, fraction and mode, and the share of the edges that changed at least once during the run."""
    manifest = read_manifest(folder)
    rows = []
    for member in manifest["members"]:
        values = member["values"]
        fraction = float(values.get("learning.update_fraction", manifest["fixed"].get("learning", {}).get(
            "update_fraction", 1.0)))
        if member["status"] != "completed" or fraction >= 1 or not member.get("run_file"):
            continue
        with RunStore.open(folder / member["run_file"]) as store:
            initial = store.parameters("initial")
            steps, history = store.parameter_history()
        if initial is None or len(steps) == 0 or not np.array_equal(steps, np.arange(len(steps))):
            continue  # parameters not recorded at every step
        changed = (history != np.vstack([initial, history[:-1]])).any(axis=0)
        fixed = flatten(manifest["fixed"])
        rows.append({"n_nodes": int(values.get("chip.n_nodes", fixed.get("chip.n_nodes", 300))),
                     "fraction": fraction,
                     "mode": str(values.get("learning.mask_mode", fixed.get("learning.mask_mode", "fixed"))),
                     "ever_updated": float(changed.mean())})
    return rows


def updated_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`updated_statistics`: a row per size and fraction, a column per mode (means)."""
    modes = [m for m in MASK_MODES if any(r["mode"] == m for r in rows)]
    lines = ["| nodes | edges updated per step | " + " | ".join(modes) + " |", "|" + "---|" * (2 + len(modes))]
    for n_nodes, minus_fraction in sorted({(r["n_nodes"], -r["fraction"]) for r in rows}):
        cells = [str(n_nodes), f"{-100 * minus_fraction:.0f} %"]
        for mode in modes:
            v = [r["ever_updated"] for r in rows if (r["n_nodes"], -r["fraction"], r["mode"]) ==
                 (n_nodes, minus_fraction, mode)]
            cells.append(f"{100 * np.mean(v):.0f} %" if v else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/partial_updates.toml")
    parser.add_argument("--no-loss", action="store_true", help="test accuracy only (no train-loss columns)")
    parser.add_argument("--no-statistics", action="store_true",
                        help="leave out the table of what the fixed subsets freeze")
    args = parser.parse_args(argv)
    ds = complete_axes(summary_dataset(args.folder), flatten(read_manifest(args.folder)["fixed"]))
    print(ds.attrs.get("description", ""))
    for k in range(ds.sizes["n_nodes"]):
        print()
        print(size_title(ds, k))
        print()
        print(table(ds, k, loss=not args.no_loss))
    rows = [] if args.no_statistics else frozen_statistics(args.folder)
    if rows:
        print()
        print("What a fixed subset freezes (mean over seeds)")
        print()
        print(statistics_table(rows))
        print()
        for n_nodes in sorted({r["n_nodes"] for r in rows}):
            share = np.mean([r["driven_edges"] for r in rows if r["n_nodes"] == n_nodes])
            print(f"{n_nodes} nodes: {100 * share:.1f} % of the edges join two driven nodes (no gradient reaches them)")
    updated = [] if args.no_statistics else updated_statistics(args.folder)
    if updated:
        print()
        print("Edges updated at least once during the run (share of all edges, mean over seeds)")
        print()
        print(updated_table(updated))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
