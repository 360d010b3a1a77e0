"""Table of the XY Iris sweep (sweeps/xy_iris.toml): train and test accuracy and time per epoch by network,
mean ± sample std over seeds -- the table of benchmarks/xy_iris_study.py, read from the sweep summary.

Nodes, edges and parameters are counted on the network each member's run file describes (rebuilt from
its stored experiment text and overrides; nothing is trained again); ms / epoch is the mean training
step time (free + nudged relaxations, estimate, update; evaluation excluded) times the steps per epoch.

Usage::

    labtrain sweep sweeps/xy_iris.toml --out runs/xy_iris && python sweeps/xy_iris.py runs/xy_iris
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labtrain.training.sweep import read_manifest
from labtrain.training.sweep_summary import format_mean_std, summary_dataset


def network_size(run_file: Path) -> dict:
    """Nodes, edges and trainable parameters of the member's chip (built, not trained)."""
    from labtrain.build import build_setup
    from labtrain.config import experiment_from_text
    from labtrain.training.store import RunStore

    with RunStore.open(run_file) as store:
        source = store.source
        exp = experiment_from_text(store.experiment_text, Path(source) if source else None, store.overrides)
    setup = build_setup(exp)
    try:
        net = setup.network
        return {"nodes": net.n_nodes, "edges": net.n_edges, "params": setup.chip.parameter_spec.size,
                "epochs": exp["run"]["epochs"]}
    finally:
        setup.chip.close()


def architecture(ds, i: int) -> str:
    """``lattice 5x5`` or ``all-to-all N=10`` for position ``i`` of the network axis."""
    if str(ds["topology"].values[i]) == "lattice":
        return f"lattice {int(ds['rows'].values[i])}x{int(ds['cols'].values[i])}"
    return f"{ds['topology'].values[i]} N={int(ds['n_nodes'].values[i])}".replace("all_to_all", "all-to-all")


def table(ds, folder: Path) -> str:
    net_dim = ds["status"].dims[0]
    members = {m["name"]: m for m in read_manifest(folder)["members"]}
    lines = ["| architecture | nodes | edges | params | runs | train acc (%) | test acc (%) | ms / epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for i in range(ds.sizes[net_dim]):
        sub = ds.isel({net_dim: i})
        done = np.asarray(sub["status"].values == "completed")
        size = {"nodes": "-", "edges": "-", "params": "-"}
        ms = np.nan
        if done.any():
            first = str(np.asarray(sub["member"].values)[done][0])
            size = network_size(folder / members[first]["run_file"])
            steps_per_epoch = np.asarray(sub["steps_done"].values)[done] / size["epochs"]
            ms = 1e3 * float(np.mean(np.asarray(sub["step_time_s"].values)[done] * steps_per_epoch))
        pick = lambda name: np.where(done, sub[name].values, np.nan)  # noqa: E731
        lines.append(f"| {architecture(ds, i)} | {size['nodes']} | {size['edges']} | {size['params']} | "
                     f"{int(done.sum())}/{done.size} | {format_mean_std(pick('final_train_accuracy'), True)} | "
                     f"{format_mean_std(pick('final_test_accuracy'), True)} | "
                     f"{'-' if not np.isfinite(ms) else f'{ms:.0f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/xy_iris.toml")
    args = parser.parse_args(argv)
    ds = summary_dataset(args.folder)
    print(ds.attrs.get("description", ""))
    print()
    print(table(ds, args.folder))
    print("\nAccuracy: the final evaluation, mean ± sample std over seeds.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
