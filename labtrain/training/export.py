"""Export a run file to netCDF (via xarray) or CSV, for analysis outside labtrain.

Every export is built in memory and written to a sibling file that is renamed
into place, so a full disk or a file-size limit leaves no half-written export
(:class:`~labtrain.training.store.StoreWriteError`, ``labtrain export`` exit 4).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from labtrain.training.store import EVAL_COLUMNS, STEP_COLUMNS, RunStore, resource_error

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


def _write_atomic(target: Path, data: bytes) -> None:
    """``target`` holds ``data`` completely or is left as it was (resource faults: StoreWriteError)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.writing-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise resource_error(exc, target, "the export") from None


def _csv_bytes(header: list, rows) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def export_run(path: str | Path, fmt: str, out: str | Path | None = None) -> list[Path]:
    """Write ``path`` as netCDF (one ``.nc``) or CSV (``-steps.csv``, ``-eval.csv``, ``-parameters.csv``).

    Returns the files written.
    """
    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "netcdf":
        target = Path(out) if out else path.with_suffix(".nc")
        _write_atomic(target, bytes(run_to_dataset(path).to_netcdf(engine="h5netcdf")))
        return [target]
    stem = Path(out) if out else path.with_suffix("")
    written = []
    with RunStore.open(path) as store:
        tables = {"steps": _ordered(store.table("steps"), STEP_COLUMNS),
                  "eval": _ordered(store.table("eval"), EVAL_COLUMNS)}
        hist_step, hist = store.parameter_history()
        params = {"initial": store.parameters("initial"), "final": store.parameters("final")}
    for name, table in tables.items():
        target = Path(f"{stem}-{name}.csv")
        _write_atomic(target, _csv_bytes(list(table), zip(*[col.tolist() for col in table.values()])))
        written.append(target)
    rows = [["initial", -1, *params["initial"].tolist()]]
    rows += [["history", s, *row.tolist()] for s, row in zip(hist_step.tolist(), hist)]
    if params["final"] is not None:
        rows.append(["final", "", *params["final"].tolist()])
    target = Path(f"{stem}-parameters.csv")
    _write_atomic(target, _csv_bytes(["row", "step", *[f"g{i}_s" for i in range(len(params["initial"]))]], rows))
    written.append(target)
    return written
