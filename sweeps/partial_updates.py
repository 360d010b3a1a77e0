"""Table of the partial-updates sweep (sweeps/partial_updates.toml): test accuracy and train loss by fraction
of edges updated, fixed subset against a new random subset every step -- the table of
examples/partial_updates.py, read from the sweep summary (mean over seeds where the sweep has several).

Usage::

    labtrain sweep sweeps/partial_updates.toml --out runs/partial_updates && python sweeps/partial_updates.py runs/partial_updates
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labtrain.overrides import flatten
from labtrain.training.sweep import read_manifest
from labtrain.training.sweep_summary import summary_dataset


def cell(values: np.ndarray, done: np.ndarray, percent: bool) -> str:
    v = np.asarray(values, float)[np.asarray(done)]
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "-"
    mean = v.mean() * (100 if percent else 1)
    return f"{mean:.1f} %" if percent else f"{mean:.4f}"


def complete_axes(ds, fixed: dict):
    """Put back, with length 1, an axis fixed on the command line (``--set learning.mask_mode=random``)."""
    for key, default in (("learning.update_fraction", 1.0), ("learning.mask_mode", "fixed")):
        dim = key.split(".")[1]
        if dim not in ds.dims:
            ds = ds.expand_dims({dim: [fixed.get(key, default)]})
    return ds


def table(ds) -> str:
    modes = [str(m) for m in ds["mask_mode"].values]
    unit = ds["final_train_loss"].attrs.get("units", "1")
    loss = "train loss" if unit in ("", "1") else f"train loss ({unit})"
    header = ["edges updated"] + [f"{mode} subset: {what}" for mode in modes for what in ("test acc.", loss)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, fraction in enumerate(ds["update_fraction"].values):
        cells = [f"{100 * float(fraction):.0f} %"]
        for j in range(len(modes)):
            sub = ds.isel(update_fraction=i, mask_mode=j)
            done = sub["status"].values == "completed"
            cells += [cell(sub["final_test_accuracy"].values, done, True),
                      cell(sub["final_train_loss"].values, done, False)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/partial_updates.toml")
    args = parser.parse_args(argv)
    ds = complete_axes(summary_dataset(args.folder), flatten(read_manifest(args.folder)["fixed"]))
    print(ds.attrs.get("description", ""))
    print()
    print(table(ds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
