"""One HDF5 file per run: settings, snapshot, metrics, parameters, checkpoints.

Layout::

    /                     attrs: format, labtrain_version, name, created, status, message,
                                 rule, backend, seed, pid, total_steps
    /experiment           the experiment file's text (attrs: overrides as JSON, source path)
    /snapshot             JSON text of the chip and settings snapshot
    /task                 JSON text of the task description
    /steps/<column>       one row per completed step (step, epoch, time_s, loss, n_phases)
    /eval/<column>        one row per evaluation (step, epoch, train_loss, train_accuracy, ...)
    /parameters/initial   parameters before training
    /parameters/history   parameters after selected steps (rows), with /parameters/history_step
    /parameters/final     parameters at the end of the run
    /maps/<name>          optional spatial maps (xy chips, [run] record_maps_every): one row per
                          recording, /maps/step the step after which it was taken (-1: before training)
    /checkpoint/slot0|1   resumable state, written alternately; attrs latest_slot names the
                          complete one (so a kill while writing leaves the other intact)

Every append is flushed, so a killed process loses at most the step in flight.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from labtrain import __version__

__all__ = ["RunStore", "StoreError", "STEP_COLUMNS", "EVAL_COLUMNS", "read_summary", "list_runs"]

FORMAT = "labtrain-run-1"
STEP_COLUMNS = ("step", "epoch", "time_s", "loss", "n_phases")
EVAL_COLUMNS = ("step", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")


class StoreError(RuntimeError):
    """A run file is missing, unreadable or not a labtrain run."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


class RunStore:
    """Writer/reader of one run file.  Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, h5: h5py.File) -> None:
        self.path = path
        self.h5 = h5

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | Path, *, name: str, experiment_text: str, overrides: dict, source: str,
               snapshot: dict, task: dict, rule: str, backend: str, seed: int, total_steps: int,
               initial_parameters: np.ndarray) -> "RunStore":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        h5 = h5py.File(path, "w-")
        a = h5.attrs
        a.update({"format": FORMAT, "labtrain_version": __version__, "name": name,
                  "created": time.strftime("%Y-%m-%d %H:%M:%S"), "status": "running", "message": "",
                  "rule": rule, "backend": backend, "seed": seed, "pid": os.getpid(), "total_steps": total_steps})
        ds = h5.create_dataset("experiment", data=experiment_text)
        ds.attrs["overrides"] = _dumps(overrides)
        ds.attrs["source"] = source
        h5.create_dataset("snapshot", data=_dumps(snapshot))
        h5.create_dataset("task", data=_dumps(task))
        n_params = len(initial_parameters)
        for group, cols in (("steps", STEP_COLUMNS), ("eval", EVAL_COLUMNS)):
            g = h5.create_group(group)
            for col in cols:
                g.create_dataset(col, shape=(0,), maxshape=(None,), chunks=(1024,),
                                 dtype=np.int64 if col in ("step", "epoch", "n_phases") else np.float64)
        p = h5.create_group("parameters")
        p.create_dataset("initial", data=np.asarray(initial_parameters, float))
        p.create_dataset("history", shape=(0, n_params), maxshape=(None, n_params), dtype=np.float64,
                         chunks=(max(1, min(64, 2**20 // max(n_params, 1))), n_params))
        p.create_dataset("history_step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
        h5.create_group("checkpoint").attrs["latest_slot"] = -1
        h5.flush()
        return cls(path, h5)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "RunStore":
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"{path}: run file not found")
        # Checked first: HDF5 opening an empty file in "r+" mode silently makes it an HDF5 file.
        if not h5py.is_hdf5(path):
            raise StoreError(f"{path}: not an HDF5 file (a labtrain run file is HDF5)")
        try:
            # Readers skip HDF5's file lock so that `runs`/`show` work on a run still being written
            # (it flushes every step); writers keep it, so a live run cannot be resumed twice.
            h5 = h5py.File(path, mode, locking=False) if mode == "r" else h5py.File(path, mode)
        except OSError as exc:
            if "unable to lock file" in str(exc):
                raise StoreError(f"{path}: open for writing by another process (is that run still going?)") from None
            raise StoreError(f"{path}: cannot open as HDF5 ({exc})") from None
        if h5.attrs.get("format") != FORMAT:
            h5.close()
            raise StoreError(f"{path}: not a labtrain run file")
        return cls(path, h5)

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.flush()
            self.h5.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- writing
    @staticmethod
    def _append(ds: h5py.Dataset, value: Any) -> None:
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = value

    def append_step(self, row: dict[str, float], parameters: np.ndarray | None = None) -> None:
        """Append one completed step (``row`` has every :data:`STEP_COLUMNS` key)."""
        if parameters is not None:
            self._append(self.h5["parameters/history"], parameters)
            self._append(self.h5["parameters/history_step"], row["step"])
        for col in STEP_COLUMNS:
            self._append(self.h5["steps"][col], row[col])
        self.h5.flush()

    def append_eval(self, row: dict[str, float]) -> None:
        """Append one evaluation (``row`` has every :data:`EVAL_COLUMNS` key)."""
        for col in EVAL_COLUMNS:
            self._append(self.h5["eval"][col], row[col])
        self.h5.flush()

    def append_maps(self, step: int, maps: dict[str, np.ndarray], attrs: dict[str, dict] | None = None) -> None:
        """Append one recording of spatial maps (arrays of fixed shape per name) taken after ``step``.

        The ``/maps`` group and its datasets are created at the first call;
        ``attrs[name]`` (e.g. ``unit``, ``doc``) become dataset attributes.
        """
        if "maps" not in self.h5:
            g = self.h5.create_group("maps")
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,))
            for name, value in maps.items():
                value = np.asarray(value, float)
                ds = g.create_dataset(name, shape=(0, *value.shape), maxshape=(None, *value.shape),
                                      dtype=np.float64, chunks=(max(1, min(64, 2**20 // max(value.size, 1))),
                                                                *value.shape))
                for key, text in (attrs or {}).get(name, {}).items():
                    ds.attrs[key] = text
        g = self.h5["maps"]
        for name, value in maps.items():
            self._append(g[name], np.asarray(value, float))
        self._append(g["step"], step)
        self.h5.flush()

    def maps(self) -> dict[str, np.ndarray]:
        """Every stored map (``step`` included) as arrays; empty if the run recorded none."""
        return {k: ds[:] for k, ds in self.h5["maps"].items()} if "maps" in self.h5 else {}

    def write_checkpoint(self, step: int, parameters: np.ndarray, optimizer_state: dict[str, np.ndarray]) -> None:
        """Store resumable state after ``step``; the previous checkpoint survives until this one is complete."""
        cp = self.h5["checkpoint"]
        slot = f"slot{(int(cp.attrs['latest_slot']) + 1) % 2}"
        if slot in cp:
            del cp[slot]
        g = cp.create_group(slot)
        g.create_dataset("parameters", data=parameters)
        opt = g.create_group("optimizer")
        for key, value in optimizer_state.items():
            opt.create_dataset(key, data=value)
        g.attrs["step"] = step
        self.h5.flush()
        cp.attrs["latest_slot"] = int(slot[-1])
        self.h5.flush()

    def set_status(self, status: str, message: str = "") -> None:
        self.h5.attrs["status"] = status
        self.h5.attrs["message"] = message
        self.h5.attrs["pid"] = os.getpid()
        self.h5.flush()

    def set_attr(self, key: str, value: Any) -> None:
        self.h5.attrs[key] = value
        self.h5.flush()

    def write_final(self, parameters: np.ndarray) -> None:
        p = self.h5["parameters"]
        if "final" in p:
            del p["final"]
        p.create_dataset("final", data=np.asarray(parameters, float))
        self.h5.flush()

    def truncate_after(self, step: int) -> None:
        """Drop every row recorded after ``step`` (used when resuming from a checkpoint)."""
        for group in ("steps", "eval"):
            keep = int(np.sum(self.h5[group]["step"][:] <= step))
            for ds in self.h5[group].values():
                ds.resize(keep, axis=0)
        hs = self.h5["parameters/history_step"]
        keep = int(np.sum(hs[:] <= step))
        hs.resize(keep, axis=0)
        self.h5["parameters/history"].resize(keep, axis=0)
        if "maps" in self.h5:
            keep = int(np.sum(self.h5["maps/step"][:] <= step))
            for ds in self.h5["maps"].values():
                ds.resize(keep, axis=0)
        self.h5.flush()

    # -------------------------------------------------------------- reading
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.h5.attrs.items()}

    @property
    def experiment_text(self) -> str:
        return self.h5["experiment"].asstr()[()]

    @property
    def overrides(self) -> dict:
        return json.loads(self.h5["experiment"].attrs["overrides"])

    @property
    def source(self) -> str:
        return str(self.h5["experiment"].attrs["source"])

    @property
    def snapshot(self) -> dict:
        return json.loads(self.h5["snapshot"].asstr()[()])

    @property
    def task(self) -> dict:
        return json.loads(self.h5["task"].asstr()[()])

    def table(self, group: str) -> dict[str, np.ndarray]:
        """Columns of ``steps`` or ``eval`` as arrays."""
        return {k: ds[:] for k, ds in self.h5[group].items()}

    def parameters(self, which: str = "final") -> np.ndarray | None:
        p = self.h5["parameters"]
        return p[which][:] if which in p else None

    def parameter_history(self) -> tuple[np.ndarray, np.ndarray]:
        return self.h5["parameters/history_step"][:], self.h5["parameters/history"][:]

    def latest_checkpoint(self) -> tuple[int, np.ndarray, dict[str, np.ndarray]] | None:
        """``(step, parameters, optimizer_state)`` of the newest complete checkpoint, or None."""
        cp = self.h5["checkpoint"]
        slot = int(cp.attrs["latest_slot"])
        if slot < 0:
            return None
        g = cp[f"slot{slot}"]
        return int(g.attrs["step"]), g["parameters"][:], {k: ds[()] for k, ds in g["optimizer"].items()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_summary(path: str | Path) -> dict[str, Any]:
    """Name, date, rule, backend, status, steps done and final metrics of a run file."""
    with RunStore.open(path) as store:
        a = store.attrs
        steps = store.h5["steps/step"]
        ev = store.table("eval")
        status = a["status"]
        if status == "running" and a.get("pid") != os.getpid() and not _pid_alive(int(a.get("pid", -1))):
            status = "crashed"
        last = {k: (float(v[-1]) if len(v) else float("nan")) for k, v in ev.items()}
        return {
            "path": str(path), "name": a["name"], "created": a["created"], "rule": a["rule"],
            "backend": a["backend"], "status": status, "message": a.get("message", ""),
            "steps_done": int(steps[-1]) + 1 if len(steps) else 0, "total_steps": int(a["total_steps"]),
            "train_loss": last.get("train_loss", float("nan")), "test_loss": last.get("test_loss", float("nan")),
            "train_accuracy": last.get("train_accuracy", float("nan")),
            "test_accuracy": last.get("test_accuracy", float("nan")),
            "seed": a["seed"], "labtrain_version": a["labtrain_version"],
        }


def list_runs(directory: str | Path) -> list[dict[str, Any]]:
    """Summaries of every readable run file under ``directory`` (newest first)."""
    rows = []
    for p in sorted(Path(directory).rglob("*.h5")):
        try:
            rows.append(read_summary(p))
        except (StoreError, OSError, KeyError):
            continue
    return sorted(rows, key=lambda r: r["created"], reverse=True)
