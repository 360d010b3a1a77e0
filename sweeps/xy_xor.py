"""Success table of the XY XOR sweep (sweeps/xy_xor.toml): which members solve XOR, by architecture.

A member succeeds when, at its final parameters, all four XOR inputs are classified correctly
(circular nearest target of the circular-mean output phase) and the mean cosine cost
``(1 - cos(phi_out - tau)) / 2`` over examples and *fresh* random starts (seeded ``[seed, 99]``, as
benchmarks/xy_xor_study.py did) is below ``--threshold``.  The chip is rebuilt from the experiment
text and overrides stored in each run file, so the table needs nothing but the sweep folder.

Usage::

    labtrain sweep sweeps/xy_xor.toml --out runs/xy_xor && python sweeps/xy_xor.py runs/xy_xor

Prints a markdown table; ``--netcdf FILE`` also writes the sweep summary with the variables
``cosine_loss``, ``all_correct`` and ``success`` added.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labtrain.build import build_setup
from labtrain.config import experiment_from_text
from labtrain.kinds.xy.model import PhaseCost
from labtrain.kinds.xy.tasks import phase_accuracy
from labtrain.training.store import RunStore
from labtrain.training.sweep import read_manifest
from labtrain.training.sweep_summary import summary_dataset


def final_check(run_file: Path) -> dict:
    """Accuracy and cosine loss of one member's final parameters on fresh random starts."""
    with RunStore.open(run_file) as store:
        source = store.source
        exp = experiment_from_text(store.experiment_text, Path(source) if source else None, store.overrides)
        params = store.parameters("final")
        seed = int(store.attrs["seed"])
    if params is None:  # stopped before its first checkpoint
        return {"accuracy": float("nan"), "cosine_loss": float("nan")}
    setup = build_setup(exp)
    try:
        chip, task = setup.chip, setup.task
        chip.set_parameters(params)
        chip.reseed([seed, 99])
        final = chip.measure(task.x_train)
        cosine = float(np.mean(PhaseCost("cosine").value(final.output_phases, task.t_train[:, None, :])))
        accuracy = phase_accuracy(task, final.output_v, task.y_train)
        spec = chip.parameter_spec
        net = setup.network
        return {"accuracy": accuracy, "cosine_loss": cosine, "n_parameters": spec.size,
                "n_nodes": net.n_nodes if net is not None else 0, "n_edges": net.n_edges if net is not None else 0}
    finally:
        chip.close()


def xor_success(folder: str | Path, threshold: float = 0.01):
    """The sweep summary with ``accuracy``, ``cosine_loss``, ``all_correct`` and ``success`` per member."""
    folder = Path(folder)
    ds = summary_dataset(folder)
    shape = tuple(ds.sizes[d] for d in ds["status"].dims)
    out = {k: np.full(shape, np.nan) for k in ("accuracy", "cosine_loss", "n_parameters", "n_nodes", "n_edges")}
    for member in read_manifest(folder)["members"]:
        if member["status"] != "completed":
            continue
        at = np.unravel_index(member["index"], shape)
        for key, value in final_check(folder / member["run_file"]).items():
            out[key][at] = value
    dims = ds["status"].dims
    for key, values in out.items():
        ds[key] = (dims, values)
    ds["all_correct"] = (dims, out["accuracy"] == 1.0)
    ds["success"] = (dims, (out["accuracy"] == 1.0) & (out["cosine_loss"] < threshold))
    ds["cosine_loss"].attrs.update(long_name="mean cosine cost on fresh random starts at the final parameters",
                                   units="1")
    ds["success"].attrs.update(long_name=f"all four correct and cosine loss < {threshold}")
    return ds


def table(ds, threshold: float) -> str:
    """One row per architecture (the first axis), over seeds."""
    arch_dim = ds["status"].dims[0]
    lines = [f"{ds.attrs.get('description', '')}; success = 4/4 correct and cosine loss < {threshold}", "",
             "| architecture | nodes | edges | params | success | 4/4 correct | median cosine loss | ms / epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for i in range(ds.sizes[arch_dim]):
        sub = ds.isel({arch_dim: i})
        done = sub["status"].values == "completed"
        n = int(done.sum())
        ok, correct = int(sub["success"].values[done].sum()), int(sub["all_correct"].values[done].sum())
        name = str(sub[arch_dim].values)
        first = np.flatnonzero(done.ravel())
        pick = (lambda v: int(np.asarray(v).ravel()[first[0]])) if n else (lambda v: 0)
        median = np.median(sub["cosine_loss"].values[done]) if n else np.nan
        ms = 1e3 * np.mean(sub["step_time_s"].values[done]) if n else np.nan
        lines.append(f"| {name} | {pick(sub['n_nodes'].values)} | {pick(sub['n_edges'].values)} | "
                     f"{pick(sub['n_parameters'].values)} | {ok}/{n} ({ok / max(n, 1):.0%}) | {correct}/{n} | "
                     f"{median:.4f} | {ms:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/xy_xor.toml")
    parser.add_argument("--threshold", type=float, default=0.01, help="success threshold on the cosine loss")
    parser.add_argument("--netcdf", type=Path, help="also write the summary with the success variables here")
    args = parser.parse_args(argv)
    ds = xor_success(args.folder, args.threshold)
    print(table(ds, args.threshold))
    if args.netcdf:
        ds.to_netcdf(args.netcdf, engine="h5netcdf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
