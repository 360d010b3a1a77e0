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
from typing import TYPE_CHECKING, Any

import numpy as np

from labtrain.training.store import EVAL_COLUMNS, STEP_COLUMNS, RunStore, resource_error

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = ["EXPORT_FORMATS", "run_to_dataset", "load_run", "export_run", "run_units"]

EXPORT_FORMATS = ("netcdf", "csv")


_STEP_ATTRS = {"epoch": ("epoch of the training step (0-based)", "1"),
               "time_s": ("wall-clock duration of the training step", "s"),
               "loss": ("loss of the training step's batch", None),
               "n_phases": ("measurement phases the gradient estimate used", "1")}
_EVAL_ATTRS = {"epoch": ("epoch of the evaluation (0-based)", "1"),
               "train_loss": ("loss on the training set", None),
               "train_accuracy": ("accuracy on the training set (NaN for regression)", "1"),
               "test_loss": ("loss on the test set", None),
               "test_accuracy": ("accuracy on the test set (NaN for regression)", "1")}


def run_units(store: RunStore) -> dict[str, Any]:
    """The units a run file declares: ``loss``, ``output``, ``parameter`` (one unit or ``"mixed"``),
    ``parameters`` (one per parameter), ``parameter_name``, ``labels``.

    From the root attributes the chip and rule declared at creation (:class:`~labtrain.training.store.RunUnits`);
    files written before those existed fall back to what their chip snapshot names (:func:`_inferred_units`).
    """
    a = store.attrs
    n = len(store.h5["parameters/initial"])
    p = store.h5["parameters"]
    labels = [str(x) for x in p["labels"].asstr()[()]] if "labels" in p else []
    if "loss_units" in a:
        per = ([str(x) for x in p["units"].asstr()[()]] if "units" in p else [str(a["parameter_units"])] * n)
        return {"loss": str(a["loss_units"]), "output": str(a["output_units"]), "parameter": str(a["parameter_units"]),
                "parameters": per, "parameter_name": str(a["parameter_name"]), "labels": labels}
    return _inferred_units(store.snapshot, n, labels)


def _inferred_units(snap: dict, n: int, labels: list[str]) -> dict[str, Any]:
    """Units of a run file written before run files recorded them, from its chip snapshot: the parameter unit
    the snapshot names (``parameter.unit``, or the units of its ``parameter_blocks``); squared-volt losses and
    volt outputs for electrical parameters (S, V), radians for oscillator couplings (rad/s), else dimensionless."""
    chip = snap.get("chip") or {}
    declared = chip.get("parameter") or {}
    blocks = [b for b in chip.get("parameter_blocks") or [] if isinstance(b, dict) and "unit" in b]
    per = ["1"] * n
    if "unit" in declared:
        per = [str(declared["unit"])] * n
    elif blocks:
        for b in blocks:
            per[int(b["start"]):int(b["stop"])] = [str(b["unit"])] * (int(b["stop"]) - int(b["start"]))
    parameter = per[0] if len(set(per)) == 1 else "mixed"
    electrical = set(per) <= {"S", "V"}
    output = "V" if electrical else ("rad" if parameter == "rad/s" else "1")
    loss = str((snap.get("learning") or {}).get("loss_unit", "V^2" if electrical else "1"))
    return {"loss": loss, "output": output, "parameter": parameter, "parameters": per,
            "parameter_name": str(declared.get("name", "parameter")), "labels": labels}


def _attr_value(value: Any) -> Any:
    """A netCDF attribute value: numbers and strings as they are, flat lists of them as arrays, booleans as
    0/1, None as "none", anything else as JSON."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if value is None:
        return "none"
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return value
    if isinstance(value, np.ndarray):  # strings (h5py gives object arrays), nested arrays
        value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        return np.asarray(value, dtype=float if any(isinstance(v, float) for v in value) else np.int64)
    return json.dumps(value, default=str)


def _flat(prefix: str, tree: Any, out: dict[str, Any]) -> None:
    """Flatten nested mappings into ``prefix.key.subkey`` attributes."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = _attr_value(tree)


def _var(dims: Any, values: Any, long_name: str, units: str | None) -> tuple:
    attrs = {"long_name": long_name}
    if units is not None:
        attrs["units"] = units
    return (dims, values, attrs)


def run_to_dataset(path: str | Path) -> "xr.Dataset":
    """The run as a CF-style :class:`xarray.Dataset` (also what :func:`load_run` and ``labtrain export`` give).

    Dimensions, each with a coordinate variable: ``step`` (training steps; the step numbers), ``eval``
    (evaluations; index, with ``eval_step``: the step after which it was made, -1 before training),
    ``record`` (rows of the parameter history, with ``parameter_history_step``), ``parameter`` (the
    trainable parameters, with ``parameter_label`` where the chip names them and ``parameter_units``),
    for spatial maps ``map_frame`` (with ``map_step``) plus the maps' own dimensions (``edge``,
    ``input``, ``node``, ...), and ``event`` (instrument faults, retries, pauses, safety actions; with
    ``event_time``) where the run recorded any.  Every variable has ``units`` (UDUNITS: ``"1"``
    dimensionless, ``"V^2"``, ``"S"``, ``"rad/s"``, ...) from the units the chip and rule declared, and
    ``long_name``.

    Attributes: every root attribute of the run file (name, rule, backend, seed, status, provenance,
    swept keys) and every experiment-file setting flattened as ``<section>.<key>`` (e.g.
    ``learning.learning_rate``), plus ``experiment`` (the file's text) and ``snapshot`` (JSON).
    """
    import xarray as xr

    with RunStore.open(path) as store:
        steps, ev = store.table("steps"), store.table("eval")
        hist_step, hist = store.parameter_history()
        initial, final = store.h5["parameters/initial"][:], store.parameters("final")
        maps = store.maps()
        events = store.events() if hasattr(store, "events") else {}
        map_attrs = {k: dict(ds.attrs) for k, ds in store.h5["maps"].items()} if "maps" in store.h5 else {}
        units = run_units(store)
        root = dict(store.attrs)
        snapshot = store.snapshot
        experiment_text = store.experiment_text
    loss_u = units["loss"]
    per = units["parameters"]
    param_u = units["parameter"] if units["parameter"] != "mixed" else None
    pname = units["parameter_name"].replace("_", " ")
    data: dict[str, tuple] = {}
    for k, v in steps.items():
        if k != "step":
            long_name, u = _STEP_ATTRS.get(k, (k, "1"))
            data[f"step_{k}"] = _var("step", v, long_name, u or loss_u)
    for k, v in ev.items():
        if k != "step":
            long_name, u = _EVAL_ATTRS.get(k, (k, "1"))
            data[f"eval_{k}"] = _var("eval", v, long_name, u or loss_u)
    data["parameters_initial"] = _var("parameter", initial, f"{pname} before training", param_u)
    if final is not None:
        data["parameters_final"] = _var("parameter", final, f"{pname} at the end of the completed run", param_u)
    data["parameter_history"] = _var(("record", "parameter"), hist, f"{pname} after the step of each record",
                                     param_u)
    coords: dict[str, tuple] = {
        "step": _var("step", steps["step"], "training step (0-based)", "1"),
        "eval": _var("eval", np.arange(len(ev["step"])), "evaluation index", "1"),
        "eval_step": _var("eval", ev["step"], "step after which the evaluation was made (-1: before training)", "1"),
        "record": _var("record", np.arange(len(hist_step)), "parameter-history record index", "1"),
        "parameter_history_step": _var("record", hist_step, "step after which the record was taken", "1"),
        "parameter": _var("parameter", np.arange(len(initial)), "parameter index", "1"),
        "parameter_units": _var("parameter", np.array(per, dtype=object), "unit of each parameter", None),
    }
    if units["labels"]:
        coords["parameter_label"] = _var("parameter", np.array(units["labels"], dtype=object),
                                         "name of each parameter", None)
    if maps:
        n_frames = len(maps["step"])
        coords["map_frame"] = _var("map_frame", np.arange(n_frames), "map recording index", "1")
        coords["map_step"] = _var("map_frame", maps["step"], "step after which the maps were taken "
                                  "(-1: before training)", "1")
        for name, values in maps.items():
            if name == "step":
                continue
            a = map_attrs.get(name, {})
            dims = [str(d) for d in np.atleast_1d(a["dims"])] if "dims" in a else \
                [f"{name}_dim{i}" for i in range(values.ndim - 1)]
            for d, size in zip(dims, values.shape[1:]):
                if d in coords and len(coords[d][1]) != size:
                    raise ValueError(f"map {name!r}: dimension {d!r} has {size} entries, another map "
                                     f"{len(coords[d][1])}")
                coords.setdefault(d, _var(d, np.arange(size), f"{d.replace('_', ' ')} index", "1"))
            data[f"map_{name}"] = _var(("map_frame", *dims), values, str(a.get("doc", name)),
                                       str(a.get("unit", a.get("units", "1"))))
    if len(events.get("step", ())):
        coords["event"] = _var("event", np.arange(len(events["step"])), "event index", "1")
        stamp = np.round(np.asarray(events["time_s"], float) * 1e9).astype("datetime64[ns]")
        coords["event_time"] = ("event", stamp, {"long_name": "when the event happened (UTC)"})
        data["event_step"] = _var("event", events["step"], "step during which it happened (-1: before training)",
                                  "1")
        for key, long_name in (("level", "logging level"), ("kind", "event kind (fault, retry, pause, safety, "
                                                                        "resume, stop, warning, ...)"),
                               ("source", "logger that reported it"), ("message", "what happened")):
            if key in events:
                data[f"event_{key}"] = _var("event", np.array([str(v) for v in events[key]], dtype=object),
                                            long_name, None)
    attrs: dict[str, Any] = {"Conventions": "CF-1.10",
                             "title": f"labtrain run {root.get('name', '')}",
                             "source": f"labtrain {root.get('labtrain_version', '')}",
                             "history": f"{root.get('created', '')} run; exported from {Path(path).name}"}
    _flat("", {k: v for k, v in (snapshot.get("experiment") or {}).items()}, attrs)
    attrs |= {k: _attr_value(v) for k, v in root.items()}
    attrs["experiment"] = experiment_text
    attrs["snapshot"] = json.dumps(snapshot, default=str)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def load_run(path: str | Path) -> "xr.Dataset":
    """Read a run file (``.h5``, any supported format version) or an exported ``.nc`` as an
    :class:`xarray.Dataset` with named dimensions, coordinates, units and flat settings
    (see :func:`run_to_dataset`).  The data are in memory; nothing stays open.

    Example::

        ds = labtrain.load_run("runs/and_gate-20261207-101500.h5")
        ds.step_loss.plot()                      # loss against step, units on the axis
        ds.attrs["learning.learning_rate"]
    """
    import xarray as xr

    path = Path(path)
    if path.suffix == ".nc":
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    return run_to_dataset(path)


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


def _csv_column(i: int, unit: str) -> str:
    """Column name of parameter ``i``: ``g3_s`` (conductance), ``p3_v``, ``p3_rad_per_s``, ``p3`` (dimensionless)."""
    if unit == "S":
        return f"g{i}_s"
    slug = unit.lower().replace("/", "_per_").replace("^", "").replace(" ", "_")
    return f"p{i}" if unit in ("1", "") else f"p{i}_{slug}"


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
        initial, final = store.h5["parameters/initial"][:], store.parameters("final")
        per_unit = run_units(store)["parameters"]
    for name, table in tables.items():
        target = Path(f"{stem}-{name}.csv")
        _write_atomic(target, _csv_bytes(list(table), zip(*[col.tolist() for col in table.values()])))
        written.append(target)
    rows = [["initial", -1, *initial.tolist()]]
    rows += [["history", s, *row.tolist()] for s, row in zip(hist_step.tolist(), hist)]
    if final is not None:
        rows.append(["final", "", *final.tolist()])
    target = Path(f"{stem}-parameters.csv")
    _write_atomic(target, _csv_bytes(["row", "step", *[_csv_column(i, u) for i, u in enumerate(per_unit)]], rows))
    written.append(target)
    return written
