"""Export a run file to netCDF (via xarray) or CSV, for analysis outside labtrain."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from labtrain.training.store import EVAL_COLUMNS, STEP_COLUMNS, RunStore

__all__ = ["EXPORT_FORMATS", "run_to_dataset", "export_run"]

EXPORT_FORMATS = ("netcdf", "csv")


def run_to_dataset(path: str | Path):
    """The run as an :class:`xarray.Dataset`: per-step and per-evaluation metrics, parameters, settings.

    Dimensions: ``step`` (training steps), ``eval`` (evaluations), ``edge`` (parameters),
    ``record`` (rows of the parameter history).
    """
    import xarray as xr

    with RunStore.open(path) as store:
        steps, ev = store.table("steps"), store.table("eval")
        hist_step, hist = store.parameter_history()
        initial, final = store.parameters("initial"), store.parameters("final")
        attrs = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in store.attrs.items()}
        attrs["experiment"] = store.experiment_text
        attrs["snapshot"] = json.dumps(store.snapshot)
    ds = xr.Dataset(
        {
            **{f"step_{k}": ("step", v) for k, v in steps.items() if k != "step"},
            **{f"eval_{k}": ("eval", v) for k, v in ev.items() if k != "step"},
            "eval_step": ("eval", ev["step"]),
            "parameters_initial": ("edge", initial),
            "parameter_history": (("record", "edge"), hist),
            "parameter_history_step": ("record", hist_step),
        },
        coords={"step": steps["step"], "edge": np.arange(len(initial))},
        attrs=attrs,
    )
    if final is not None:
        ds["parameters_final"] = ("edge", final)
    ds["step_loss"].attrs["units"] = "V^2"
    ds["parameters_initial"].attrs["units"] = "S"
    return ds


def _ordered(table: dict[str, np.ndarray], columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns in their documented order (HDF5 lists them alphabetically), extra ones after."""
    return {**{c: table[c] for c in columns if c in table}, **{c: v for c, v in table.items() if c not in columns}}


def export_run(path: str | Path, fmt: str, out: str | Path | None = None) -> list[Path]:
    """Write ``path`` as netCDF (one ``.nc``) or CSV (``-steps.csv``, ``-eval.csv``, ``-parameters.csv``).

    Returns the files written.
    """
    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "netcdf":
        target = Path(out) if out else path.with_suffix(".nc")
        run_to_dataset(path).to_netcdf(target, engine="h5netcdf")
        return [target]
    stem = Path(out) if out else path.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with RunStore.open(path) as store:
        tables = {"steps": _ordered(store.table("steps"), STEP_COLUMNS),
                  "eval": _ordered(store.table("eval"), EVAL_COLUMNS)}
        hist_step, hist = store.parameter_history()
        params = {"initial": store.parameters("initial"), "final": store.parameters("final")}
    for name, table in tables.items():
        target = Path(f"{stem}-{name}.csv")
        with target.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(table))
            w.writerows(zip(*[col.tolist() for col in table.values()]))
        written.append(target)
    target = Path(f"{stem}-parameters.csv")
    with target.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "step", *[f"g{i}_s" for i in range(len(params["initial"]))]])
        w.writerow(["initial", -1, *params["initial"].tolist()])
        for s, row in zip(hist_step.tolist(), hist):
            w.writerow(["history", s, *row.tolist()])
        if params["final"] is not None:
            w.writerow(["final", "", *params["final"].tolist()])
    written.append(target)
    return written
