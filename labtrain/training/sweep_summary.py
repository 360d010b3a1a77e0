"""A sweep's results as data: an xarray Dataset with one dimension per swept axis, and its table.

:func:`summary_dataset` reads every member's run file into arrays of shape ``sweep.shape``
(``seed`` is the dimension of ``run.seed``; zipped keys share one dimension, the others as
coordinates on it):

* ``final_<metric>`` -- the last evaluation (``train_loss``, ``test_loss``, ``train_accuracy``,
  ``test_accuracy``); ``best_<metric>`` -- the lowest loss / highest accuracy over the
  evaluations after training started;
* ``curve_<metric>`` and ``eval_step`` along ``eval`` (one row per evaluation, NaN-padded),
  ``step_loss`` along ``step``;
* ``status``, ``steps_done``, ``member``, ``run_file``; ``step_time_s`` (mean time of a training step)
  and ``wall_s``.

A measurement sweep (``function = "file.py:name"``) has one variable per key its function returned
(nested dicts flattened with ``_``; lists of numbers along ``item``, NaN-padded), besides ``status``,
``member``, ``run_file``, ``message`` and ``wall_s``; ``attrs["sweep_kind"]`` is ``"function"``.

:func:`write_summary` stores it as ``summary.nc`` (netCDF-4 via h5netcdf) in the sweep folder;
:func:`summary_table` prints mean ± sample std over seeds for every other combination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from labtrain.schema import show
from labtrain.training.sweep import Axis, read_manifest

__all__ = ["summary_dataset", "summary_table", "write_summary", "member_record", "METRICS", "SEED_DIM",
           "mean_std", "format_mean_std"]

METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
SEED_DIM = "seed"
_UNITS = {"train_loss": "loss_unit", "test_loss": "loss_unit"}


def member_record(path: str | Path) -> dict[str, Any]:
    """Status, final/best metrics and curves of one run file."""
    from labtrain.training.export import run_units
    from labtrain.training.store import RunStore, read_summary

    summary = read_summary(path)
    with RunStore.open(path) as store:
        ev = store.table("eval")
        steps = store.table("steps")
        loss_unit = run_units(store)["loss"]  # what the chip's rule declared (older files: inferred)
    rec: dict[str, Any] = {"status": summary["status"], "steps_done": summary["steps_done"],
                           "eval_step": np.asarray(ev["step"], float), "step_loss": np.asarray(steps["loss"], float),
                           "step_time_s": float(np.mean(steps["time_s"])) if len(steps["time_s"]) else np.nan,
                           "loss_unit": loss_unit}
    trained = np.asarray(ev["step"]) >= 0
    for metric in METRICS:
        values = np.asarray(ev[metric], float)
        rec[f"curve_{metric}"] = values
        rec[f"final_{metric}"] = float(values[-1]) if len(values) else np.nan
        during = values[trained]
        during = during[np.isfinite(during)]
        if len(during) == 0:
            rec[f"best_{metric}"] = np.nan
        else:
            rec[f"best_{metric}"] = float(during.max() if "accuracy" in metric else during.min())
    return rec


def _coord_values(values: Sequence[Any]) -> np.ndarray:
    """Axis values as a 1-D coordinate: numbers stay numbers; lists (e.g. layer sizes) become TOML text."""
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, bool)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    return np.asarray([v if isinstance(v, str) else show(v) for v in values], dtype=object)


def _coord_names(axes: Sequence[Axis]) -> dict[str, str]:
    """Coordinate name of every swept key: the axis name for an axis's first key, the short key otherwise."""
    names: dict[str, str] = {}
    taken = {a.name for a in axes}
    for axis in axes:
        names[axis.keys[0]] = axis.name
        for key in axis.keys[1:]:
            short = key.split(".", 1)[1]
            name = short if short not in taken else key.replace(".", "_")
            taken.add(name)
            names[key] = name
    return names


def summary_dataset(folder: str | Path):
    """The sweep in ``folder`` as an :class:`xarray.Dataset` (members without a run file: NaN, status
    ``pending``)."""
    import xarray as xr

    from labtrain.training.store import StoreError

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("function"):
        return _function_dataset(folder, manifest)
    axes = [Axis.from_json(a) for a in manifest["axes"]]
    shape = tuple(len(a.points) for a in axes)
    dims = tuple(a.name for a in axes)
    members = manifest["members"]
    records: list[dict[str, Any] | None] = []
    for member in members:
        rec = None
        if member.get("run_file"):
            try:
                rec = member_record(folder / member["run_file"])
            except (StoreError, OSError, KeyError, ValueError):
                rec = None
        records.append(rec)
    n_eval = max([len(r["eval_step"]) for r in records if r] or [0])
    n_step = max([len(r["step_loss"]) for r in records if r] or [0])

    def grid(fill, dtype, extra: tuple[int, ...] = ()) -> np.ndarray:
        return np.full(shape + extra, fill, dtype=dtype)

    scalars = {f"{kind}_{m}": grid(np.nan, float) for kind in ("final", "best") for m in METRICS}
    scalars |= {"step_time_s": grid(np.nan, float), "wall_s": grid(np.nan, float)}
    curves = {f"curve_{m}": grid(np.nan, float, (n_eval,)) for m in METRICS}
    curves["eval_step"] = grid(np.nan, float, (n_eval,))
    step_loss = grid(np.nan, float, (n_step,))
    steps_done = grid(0, np.int64)
    text = {k: grid("", object) for k in ("status", "member", "run_file", "message")}
    unit = ""
    for member, rec in zip(members, records):
        at = np.unravel_index(member["index"], shape) if shape else ()
        text["member"][at] = member["name"]
        text["run_file"][at] = member.get("run_file") or ""
        text["message"][at] = member.get("message") or ""
        text["status"][at] = rec["status"] if rec else member.get("status", "pending")
        if member.get("wall_s") is not None:
            scalars["wall_s"][at] = float(member["wall_s"])
        if rec is None:
            continue
        unit = unit or rec["loss_unit"]
        steps_done[at] = rec["steps_done"]
        for name in scalars:
            if name in rec:
                scalars[name][at] = rec[name]
        for name in curves:
            values = rec[name]
            curves[name][at + (slice(0, len(values)),)] = values
        step_loss[at + (slice(0, len(rec["step_loss"])),)] = rec["step_loss"]
    data_vars: dict[str, Any] = {}
    for name, values in scalars.items():
        data_vars[name] = (dims, values, _attrs(name, unit))
    for name, values in curves.items():
        data_vars[name] = (dims + ("eval",), values, _attrs(name, unit))
    data_vars["step_loss"] = (dims + ("step",), step_loss, _attrs("step_loss", unit))
    data_vars["steps_done"] = (dims, steps_done, {"long_name": "training steps done"})
    for name, values in text.items():
        data_vars[name] = (dims, values.astype(str) if values.size else values.astype(str))
    coords: dict[str, Any] = {}
    names = _coord_names(axes)
    for axis in axes:
        for i, key in enumerate(axis.keys):
            coords[names[key]] = (axis.name, _coord_values([p[i] for p in axis.points]),
                                  {"key": key, "long_name": f"[{key.split('.')[0]}] {key.split('.')[1]}"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"title": f"labtrain sweep {manifest['name']}", "sweep": manifest["name"],
                     "description": manifest.get("description", ""), "experiment": manifest["experiment"]["path"],
                     "created": manifest.get("created", ""), "labtrain_version": manifest.get("labtrain_version", ""),
                     "swept_keys": " ".join(k for a in axes for k in a.keys),
                     "fixed_overrides": " ".join(f"{k}={show(v)}" for s, kv in manifest["fixed"].items()
                                                 for k, v in ((f"{s}.{k}", v) for k, v in kv.items())),
                     "Conventions": "CF-1.8"})
    return ds


def _flat_result(result: Mapping, prefix: str = "") -> dict[str, Any]:
    """A measurement result with nested dicts flattened (``{"a": {"b": 1}}`` -> ``{"a_b": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flat_result(value, f"{name}_")
        else:
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float, np.integer, np.floating)))


def _function_dataset(folder: Path, manifest: Mapping):
    """The dataset of a measurement sweep: one variable per returned key (see the module docstring)."""
    import xarray as xr

    from labtrain.training.sweep import read_member_result

    axes = [Axis.from_json(a) for a in manifest["axes"]]
    shape = tuple(len(a.points) for a in axes)
    dims = tuple(a.name for a in axes)
    members = manifest["members"]
    results: list[dict[str, Any] | None] = []
    for member in members:
        res = None
        if member.get("run_file") and member.get("status") == "completed":
            try:
                res = _flat_result(read_member_result(folder / member["run_file"])["result"])
            except (OSError, ValueError, KeyError):
                res = None
        results.append(res)
    taken = set(_coord_names(axes).values()) | {a.name for a in axes} | {"status", "member", "run_file", "message",
                                                                           "wall_s", "item"}
    for i, res in enumerate(results):  # a returned key named like a coordinate or bookkeeping: key_result
        if res is not None:
            results[i] = {(f"{k}_result" if k in taken else k): v for k, v in res.items()}
    keys: list[str] = []
    for res in results:
        keys += [k for k in (res or {}) if k not in keys]
    n_item = max([len(v) for res in results if res for v in res.values() if isinstance(v, list)] or [0])
    data_vars: dict[str, Any] = {}
    for key in keys:
        values = [res.get(key) for res in results if res is not None and key in res]
        if all(_is_number(v) and not isinstance(v, bool) for v in values):
            grid = np.full(shape, np.nan)
            var_dims = dims
        elif all(isinstance(v, bool) for v in values):
            grid = np.zeros(shape, bool)
            var_dims = dims
        elif all(isinstance(v, list) and all(_is_number(x) for x in v) for v in values):
            grid = np.full(shape + (n_item,), np.nan)
            var_dims = dims + ("item",)
        else:
            grid = np.full(shape, "", dtype=object)
            var_dims = dims
        for member, res in zip(members, results):
            if res is None or key not in res:
                continue
            at = np.unravel_index(member["index"], shape) if shape else ()
            value = res[key]
            if isinstance(value, list):
                grid[at + (slice(0, len(value)),)] = [np.nan if x is None else x for x in value]
            elif grid.dtype == object:
                grid[at] = value if isinstance(value, str) else show(value)
            else:
                grid[at] = np.nan if value is None else value
        data_vars[key] = (var_dims, grid.astype(str) if grid.dtype == object else grid)
    text = {k: np.full(shape, "", dtype=object) for k in ("status", "member", "run_file", "message")}
    wall = np.full(shape, np.nan)
    for member in members:
        at = np.unravel_index(member["index"], shape) if shape else ()
        text["status"][at] = member.get("status", "pending")
        text["member"][at] = member["name"]
        text["run_file"][at] = member.get("run_file") or ""
        text["message"][at] = member.get("message") or ""
        if member.get("wall_s") is not None:
            wall[at] = float(member["wall_s"])
    for name, values in text.items():
        data_vars[name] = (dims, values.astype(str))
    data_vars["wall_s"] = (dims, wall, _attrs("wall_s", ""))
    coords: dict[str, Any] = {}
    names = _coord_names(axes)
    for axis in axes:
        for i, key in enumerate(axis.keys):
            coords[names[key]] = (axis.name, _coord_values([p[i] for p in axis.points]), {"key": key})
    ds = xr.Dataset(data_vars, coords=coords)
    fn = manifest["function"].rpartition(":")[2]
    ds.attrs.update({"title": f"labtrain sweep {manifest['name']}", "sweep": manifest["name"], "sweep_kind": "function",
                     "description": manifest.get("description", ""), "function": f"{manifest['experiment']['path']}:{fn}",
                     "created": manifest.get("created", ""), "labtrain_version": manifest.get("labtrain_version", ""),
                     "swept_keys": " ".join(k for a in axes for k in a.keys),
                     "fixed_overrides": " ".join(f"{s}.{k}={show(v)}" for s, kv in manifest["fixed"].items()
                                                 for k, v in kv.items()),
                     "Conventions": "CF-1.8"})
    return ds


def _attrs(name: str, loss_unit: str) -> dict[str, str]:
    metric = next((m for m in METRICS if name.endswith(m)), "")
    where = ("last evaluation" if name.startswith("final") else "best evaluation after training started"
             if name.startswith("best") else "every evaluation" if name.startswith("curve") else "")
    if name == "eval_step":
        return {"long_name": "step after which each evaluation was taken (-1: before training)"}
    if name == "step_loss":
        return {"long_name": "batch loss of every training step", "units": loss_unit or "1"}
    if name == "step_time_s":
        return {"long_name": "mean time of a training step", "units": "s"}
    if name == "wall_s":
        return {"long_name": "wall time of the member's last attempt", "units": "s"}
    units = "1" if "accuracy" in metric else (loss_unit or "1")
    return {"long_name": f"{metric.replace('_', ' ')}, {where}", "units": units}


def write_summary(folder: str | Path, path: str | Path | None = None) -> Path:
    """Write the summary dataset as netCDF (default ``folder/summary.nc``, replaced atomically)."""
    import os

    folder = Path(folder)
    target = Path(path) if path is not None else folder / "summary.nc"
    ds = summary_dataset(folder)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def mean_std(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, sample standard deviation (NaN for fewer than two) and count of the finite values."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else np.nan, len(v)


def format_mean_std(values: np.ndarray, percent: bool = False) -> str:
    """``mean ± std`` (``-`` when nothing is finite; the mean alone for one value)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "-"
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, "{:.4g}")
    text = fmt.format(mean * scale)
    if n == 1:
        return text
    spread = "0" if std <= 1e-12 * abs(mean) else fmt.format(std * scale) if percent else f"{std * scale:.2g}"
    return f"{text} ± {spread}"


def summary_table(ds, over: str = SEED_DIM) -> str:
    """Markdown table: one row per combination of the axes other than ``over``, mean ± std over ``over``
    (completed members only)."""
    keep = [d for d in ds["status"].dims if d != over]
    done = ds["status"] == "completed"
    if ds.attrs.get("sweep_kind") == "function":  # every numeric scalar the function returned
        columns = [(name, name, False) for name, var in ds.data_vars.items()
                   if var.dims == ds["status"].dims and var.dtype.kind == "f" and name != "wall_s"]
        header = [_dim_header(ds, d) for d in keep] + ["runs", *(c[0] for c in columns), "wall s"]
        rows = []
        for at in np.ndindex(*[ds.sizes[d] for d in keep]):
            sel = dict(zip(keep, at))
            sub, ok = ds.isel(sel), done.isel(sel).values
            wall = mean_std(np.where(ok, sub["wall_s"].values, np.nan))[0]
            rows.append([*(_label(ds, d, i) for d, i in zip(keep, at)), f"{int(np.asarray(ok).sum())}/{np.asarray(ok).size}",
                         *(format_mean_std(np.where(ok, sub[var].values, np.nan)) for _, var, _ in columns),
                         "-" if not np.isfinite(wall) else f"{wall:.3g}"])
        return _markdown(header, rows)
    columns = [("final test acc (%)", "final_test_accuracy", True), ("best test acc (%)", "best_test_accuracy", True),
               ("final train acc (%)", "final_train_accuracy", True), ("final test loss", "final_test_loss", False),
               ("final train loss", "final_train_loss", False)]
    columns = [c for c in columns if bool(np.isfinite(ds[c[1]].values).any())] or columns[3:]
    header = [_dim_header(ds, d) for d in keep] + ["runs", *(c[0] for c in columns), "s / step"]
    rows = []
    shape = [ds.sizes[d] for d in keep]
    for at in np.ndindex(*shape):
        sel = dict(zip(keep, at))
        sub = ds.isel(sel)
        ok = done.isel(sel).values
        n_total = int(np.asarray(ok).size)
        labels = [_label(ds, d, i) for d, i in zip(keep, at)]
        cells = [format_mean_std(np.where(ok, sub[var].values, np.nan), pct) for _, var, pct in columns]
        step_ms = mean_std(np.where(ok, sub["step_time_s"].values, np.nan))[0]
        rows.append([*labels, f"{int(np.asarray(ok).sum())}/{n_total}", *cells,
                     "-" if not np.isfinite(step_ms) else f"{step_ms:.3g}"])
    return _markdown(header, rows)


def _dim_header(ds, dim: str) -> str:
    names = [name for name, coord in ds.coords.items() if coord.dims == (dim,)]
    return " / ".join(names) if names else dim


def _label(ds, dim: str, i: int) -> str:
    parts = []
    for name, coord in ds.coords.items():
        if coord.dims == (dim,):
            value = coord.values[i]
            if isinstance(value, (bool, np.bool_)):
                parts.append(show(bool(value)))
            else:
                parts.append(f"{value:g}" if isinstance(value, (float, np.floating)) else str(value))
    return " / ".join(parts) if parts else str(i)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
