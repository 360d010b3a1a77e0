"""Sweeps: many runs of one experiment over axes of overridden keys, on Dask.

A sweep is an experiment file plus axes: ``run.seed = 0:10`` x ``learning.learning_rate = 0.01, 0.03``
gives 20 *members*, each an ordinary run with its overrides.  It is given on the command line
(``labtrain sweep EXPERIMENT --set KEY=V1,V2 ...``) or as a sweep file with a ``[sweep]`` table
(docs/sweeps.md)::

    [sweep]
    name = "lr_scan"
    experiment = "../examples/xor_resistor_cl.toml"   # relative to this file
    zip = [["learning.learning_rate", "learning.eta"]] # paired axes (one dimension)

    [sweep.set]                                        # every member
    run.epochs = 50

    [sweep.axes]                                       # the product of these
    learning.learning_rate = [0.01, 0.03]
    learning.eta = [0.1, 0.3]
    run.seed = "0:5"

Members run on a Dask cluster (:func:`open_cluster`): ``local`` (a ``LocalCluster`` of
single-threaded worker processes, one BLAS thread each), a scheduler address, ``slurm``/``pbs``
through dask-jobqueue (job resources in ``[sweep.slurm]`` / ``[sweep.pbs]``), or ``serial`` (in
this process, without Dask -- the only way for ``[backend] kind = "hardware"``: one bench, one
safety registry).

A *measurement sweep* names a Python function instead of an experiment
(``function = "study.py:member"``, relative to the sweep file) and sweeps its keyword arguments
(``args.NAME`` keys): for studies that measure (gradients at fixed parameters, ...) rather than
train.  Each member calls the function with its arguments on a worker and stores the returned dict
(numbers, strings, lists of numbers) as ``runs/<member>.json``; the manifest, resume, clusters and
the summary (:func:`~labtrain.training.sweep_summary.summary_dataset`: one variable per returned
key) work as for runs.

The sweep folder holds ``manifest.json`` (members, their overrides, status and run file;
rewritten atomically by the driver, the only process that writes it), ``runs/`` with one run
file per member, named ``<sweep>-m<index>-<date>.h5`` and carrying the sweep's name, the member's
index and every swept key as flat root attributes, and ``summary.nc``
(:mod:`labtrain.training.sweep_summary`).  A member that fails is recorded and the sweep goes
on.  :func:`run_sweep` with ``resume=True`` (``labtrain sweep --resume DIR``) skips completed
members and continues stopped or crashed ones from their last checkpoint with
:func:`~labtrain.training.launch.prepare_resume`, bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
import tomllib
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from labtrain import __version__
from labtrain.config import BASE_SCHEMA, ConfigError, experiment_from_text
from labtrain.overrides import check_overrides, flatten, format_overrides, kind_of_text, merge, nest, parse_assignment
from labtrain.schema import show, suggest

__all__ = ["SweepError", "Axis", "Member", "Sweep", "load_sweep", "sweep_from_experiment", "run_sweep",
           "open_cluster", "jobqueue_cluster", "run_member", "read_manifest", "member_run_file", "member_result_file",
           "read_member_result", "load_function", "MANIFEST",
           "CLUSTERS", "SWEEP_KEYS", "JOB_KEYS"]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "labtrain-sweep-1"
#: ``--cluster`` words; anything else is a scheduler address (``tcp://host:port`` or ``host:port``).
CLUSTERS = ("local", "serial", "slurm", "pbs")
#: Keys of a ``[sweep]`` table (sub-tables ``set``, ``axes``, ``slurm``, ``pbs`` besides).
SWEEP_KEYS = {"name": str, "description": str, "experiment": str, "function": str, "out_dir": str, "cluster": str,
              "workers": int, "zip": list}
#: The section of a measurement sweep's keys (``args.n = [100, 1000]``: the function's keyword ``n``).
ARGS = "args"
#: dask-jobqueue job options allowed in ``[sweep.slurm]`` / ``[sweep.pbs]`` (type; "strs" = list of strings).
JOB_KEYS = {"queue": str, "account": str, "cores": int, "processes": int, "memory": str, "walltime": str,
            "job_name": str, "interface": str, "scheduler_interface": str, "local_directory": str,
            "log_directory": str, "python": str, "death_timeout": float, "job_script_prologue": "strs", "job_extra_directives": "strs",
            "job_directives_skip": "strs", "worker_extra_args": "strs"}
JOB_KEYS_ONLY = {"slurm": {"job_cpu": int, "job_mem": str}, "pbs": {"resource_spec": str}}
#: Environment of worker processes: one thread per BLAS/OpenMP pool (members run side by side).
ONE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
#: Statuses after which a member is not run again.
DONE = ("completed",)
LEASE_WAIT_S = 30.0


class SweepError(ConfigError):
    """Bad sweep file, option or folder; missing optional dependency (one line, exit 2)."""


# ------------------------------------------------------------------ specification
@dataclass(frozen=True)
class Axis:
    """One dimension of a sweep: one key, or several zipped keys that move together.

    ``points[i]`` holds one value per key of ``keys``; ``name`` is the dimension's name in the
    summary (the key without its section: ``learning_rate``, ``seed``).
    """

    name: str
    keys: tuple[str, ...]
    points: tuple[tuple[Any, ...], ...]

    def to_json(self) -> dict:
        return {"name": self.name, "keys": list(self.keys), "points": [list(p) for p in self.points]}

    @classmethod
    def from_json(cls, data: Mapping) -> "Axis":
        return cls(data["name"], tuple(data["keys"]), tuple(tuple(p) for p in data["points"]))


@dataclass(frozen=True)
class Member:
    """One run of a sweep: ``values`` are its swept keys (flat), ``overrides`` everything it overrides."""

    index: int
    name: str
    values: dict[str, Any]
    overrides: dict[str, dict[str, Any]]


@dataclass
class Sweep:
    """A validated sweep: experiment text and path, fixed overrides and axes (the members' product)."""

    name: str
    experiment_path: Path
    experiment_text: str
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    axes: list[Axis] = field(default_factory=list)
    description: str = ""
    source: str = ""
    out_dir: str = "runs"
    cluster: str = "local"
    workers: int | None = None
    jobqueue: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``"file.py:callable"`` for a measurement sweep (``experiment_path``/``_text``: that file), else ""
    function: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.points) for a in self.axes)

    @property
    def swept_keys(self) -> list[str]:
        return [k for a in self.axes for k in a.keys]

    def members(self, runs_dir: Path | None = None) -> list[Member]:
        """Every member, the last axis fastest (``index`` is the row-major position in :attr:`shape`)."""
        n = math.prod(self.shape)
        width = max(3, len(str(n - 1)))
        out = []
        for index, combo in enumerate(itertools.product(*(a.points for a in self.axes))):
            values = {k: v for axis, point in zip(self.axes, combo) for k, v in zip(axis.keys, point)}
            name = f"{self.name}-m{index:0{width}d}"
            if self.function:
                out.append(Member(index, name, values, merge(self.fixed, nest(values))))
                continue
            extra = {"experiment": {"name": name}}
            if runs_dir is not None:
                extra["run"] = {"out_dir": str(runs_dir)}
            out.append(Member(index, name, values, merge(self.fixed, nest(values), extra)))
        return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _flat_table(table: Any, where: str) -> dict[str, Any]:
    """``{section: {key: v}}`` or ``{"section.key": v}`` (TOML dotted or quoted keys) -> ``{"section.key": v}``."""
    if not isinstance(table, dict):
        raise SweepError(f"{where}: expected a table of section.key = value")
    out: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            for key, v in value.items():
                if isinstance(v, dict):
                    raise SweepError(f"{where}: {name}.{key}.{next(iter(v), '')}: keys are section.key")
                out[f"{name}.{key}"] = v
        else:
            out[name] = value
    for key in out:
        if key.count(".") != 1:
            raise SweepError(f"{where}: {key!r}: expected section.key (e.g. learning.learning_rate)")
    return out


def _axis_values(key: str, value: Any, where: str) -> list[Any]:
    """A file axis: a list of values or a range string ``"0:10"``."""
    if isinstance(value, str):
        _, values = parse_assignment(f"{key}={value}", many=True)
        return values
    if not isinstance(value, list) or not value:
        raise SweepError(f"{where} {key} = {show(value)}: an axis needs a non-empty list of values or a range "
                         f"\"start:stop\" (a single value belongs in [sweep.set])")
    return list(value)


def _dim_names(keys: Sequence[str]) -> dict[str, str]:
    """Dimension/coordinate name per key: the key without its section, ``section_key`` where two collide."""
    short = [k.split(".", 1)[1] for k in keys]
    return {k: (s if short.count(s) == 1 else k.replace(".", "_")) for k, s in zip(keys, short)}


def build_axes(axes: Mapping[str, list[Any]], zips: Sequence[Sequence[str]], where: str) -> list[Axis]:
    """Axes from ``{key: values}`` (in order) and zip groups (keys that move together)."""
    grouped: dict[str, tuple[str, ...]] = {}
    for group in zips:
        group = tuple(group)
        if len(group) < 2 or not all(isinstance(k, str) for k in group):
            raise SweepError(f"{where}: zip {list(group)}: expected two or more section.key names")
        for key in group:
            if key not in axes:
                raise SweepError(f"{where}: zip names {key}, which is not a swept key{suggest(key, list(axes))}; "
                                 f"swept keys: {', '.join(axes) or 'none'}")
            if key in grouped:
                raise SweepError(f"{where}: {key} is in two zip groups")
            grouped[key] = group
        lengths = {k: len(axes[k]) for k in group}
        if len(set(lengths.values())) > 1:
            raise SweepError(f"{where}: zipped keys need as many values each: "
                             + ", ".join(f"{k} has {n}" for k, n in lengths.items()))
    names = _dim_names(list(axes))
    out, seen = [], set()
    for key in axes:
        group = grouped.get(key, (key,))
        if group in seen:
            continue
        seen.add(group)
        points = tuple(zip(*(axes[k] for k in group)))
        out.append(Axis(names[group[0]], group, points))
    return out


def _check_sweep(sweep: Sweep, where: str) -> Sweep:
    """Check every axis value against the schema, then every member's experiment (cross-checks too)."""
    base_kind = kind_of_text(sweep.experiment_text, sweep.fixed)
    sweep.fixed = check_overrides(sweep.fixed, base_kind, where if where == "--set" else f"{where}: [sweep.set]")
    if not any("chip.type" in a.keys for a in sweep.axes):
        axes = []
        for axis in sweep.axes:
            points = []
            for point in axis.points:
                checked = check_overrides(nest(dict(zip(axis.keys, point))), base_kind,
                                          where if where == "--set" else f"{where}: axis")
                points.append(tuple(flatten(checked)[k] for k in axis.keys))
            axes.append(dataclasses.replace(axis, points=tuple(points)))
        sweep.axes = axes
    for member in sweep.members():
        label = f"{where}: member {member.name} ({format_overrides(nest(member.values)) or 'no swept key'})"
        try:
            check_overrides(member.overrides, kind_of_text(sweep.experiment_text, member.overrides), label)
            experiment_from_text(sweep.experiment_text, sweep.experiment_path, member.overrides)
        except ConfigError as exc:
            text = str(exc)
            raise SweepError(text if text.startswith(label) else f"{label}: {text}") from None
    return sweep


def _read_experiment(path: Path, where: str) -> str:
    if not path.is_file():
        raise SweepError(f"{where}: experiment file {path} not found")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{where}: cannot read experiment file {path}: {exc}") from None


def _experiment_name(text: str, path: Path) -> str:
    try:
        name = tomllib.loads(text).get("experiment", {}).get("name", "")
    except (tomllib.TOMLDecodeError, AttributeError):
        name = ""
    return name if isinstance(name, str) and name else path.stem


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SweepError(f"{where}: name = {show(name)}: expected letters, digits and _ . + - (a file name)")
    return name


def is_sweep_file(path: str | Path) -> bool:
    """True when ``path`` is TOML with a ``[sweep]`` table (else it is taken as an experiment file)."""
    try:
        return isinstance(tomllib.loads(Path(path).read_text()).get("sweep"), dict)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def load_sweep(path: str | Path, cli_axes: Mapping[str, list[Any]] | None = None,
               cli_zip: Sequence[Sequence[str]] = ()) -> Sweep:
    """A sweep file (``[sweep]`` table) or an experiment file, with ``--set`` axes and ``--zip`` groups.

    Command-line keys replace the file's axis of the same key; a command-line key with one value
    is a fixed override, not a dimension.  Raises :class:`SweepError` (one line, naming the file
    and the key) for anything a member would reject.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise SweepError(f"{path}: sweep or experiment file not found")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    cli_axes = dict(cli_axes or {})
    cli_fixed = {k: v[0] for k, v in cli_axes.items() if len(v) == 1}
    cli_axes = {k: v for k, v in cli_axes.items() if len(v) > 1}
    if "sweep" not in data:  # an experiment file swept from the command line
        text = path.read_text()
        axes = build_axes(cli_axes, cli_zip, "--zip")
        sweep = Sweep(name=_check_name(_experiment_name(text, path), where), experiment_path=path.resolve(),
                      experiment_text=text, fixed=nest(cli_fixed), axes=axes, source=where)
        run = data.get("run", {})
        out_dir = run.get("out_dir", "runs") if isinstance(run, dict) else "runs"
        sweep.out_dir = out_dir if isinstance(out_dir, str) else "runs"
        return _check_sweep(sweep, "--set")
    table = data["sweep"]
    others = [s for s in data if s != "sweep"]
    if others:
        raise SweepError(f"{where}: a sweep file holds only [sweep] (and its sub-tables); found [{others[0]}]: "
                         "put the experiment in its own file and name it with experiment = \"...\"")
    if not isinstance(table, dict):
        raise SweepError(f"{where}: [sweep] must be a table")
    sub = {"set", "axes", "slurm", "pbs"}
    for key, value in table.items():
        if key in sub:
            continue
        if key not in SWEEP_KEYS:
            raise SweepError(f"{where}: [sweep] unknown key {key!r}{suggest(key, list(SWEEP_KEYS) + list(sub))}; "
                             f"allowed: {', '.join(SWEEP_KEYS)}, and the tables set, axes, slurm, pbs")
        want = SWEEP_KEYS[key]
        if not isinstance(value, want) or isinstance(value, bool):
            raise SweepError(f"{where}: [sweep] {key} = {show(value)}: expected a {want.__name__}")
    function = ""
    if "experiment" in table and "function" in table:
        raise SweepError(f"{where}: [sweep] names an experiment and a function: give one")
    if "function" in table:
        exp_path, function = _function_target(path, table["function"], f"{where}: [sweep] function")
        text = exp_path.read_text()
    elif "experiment" not in table:
        raise SweepError(f"{where}: [sweep] needs experiment = \"path/to/experiment.toml\" (relative to this file), "
                         "or function = \"file.py:name\" for a measurement sweep")
    else:
        exp_path = (path.parent / Path(table["experiment"]).expanduser()).resolve()
        text = _read_experiment(exp_path, f"{where}: [sweep] experiment")
    fixed = _flat_table(table.get("set", {}), f"{where}: [sweep.set]")
    file_axes = {k: _axis_values(k, v, f"{where}: [sweep.axes]")
                 for k, v in _flat_table(table.get("axes", {}), f"{where}: [sweep.axes]").items()}
    for key in cli_axes:
        fixed.pop(key, None)
    # a command-line axis takes the place of the file's axis of the same key; new ones come last
    file_axes = {k: cli_axes.get(k, v) for k, v in file_axes.items() if k not in cli_fixed}
    zips = [list(g) for g in table.get("zip", [])] if all(isinstance(g, list) for g in table.get("zip", [])) \
        else None
    if zips is None:
        raise SweepError(f"{where}: [sweep] zip = {show(table['zip'])}: expected a list of lists of section.key "
                         "names, e.g. [[\"learning.learning_rate\", \"learning.beta\"]]")
    # a zip group one of whose keys the command line fixes to one value no longer moves
    zips = [g for g in zips if not any(k in cli_fixed for k in g)] + [list(g) for g in cli_zip]
    axes = build_axes(file_axes | cli_axes, zips, f"{where}: [sweep] zip")
    workers = table.get("workers")
    if workers is not None and workers < 1:
        raise SweepError(f"{where}: [sweep] workers = {workers}: expected an integer >= 1")
    cluster = table.get("cluster", "local")
    jobqueue = {kind: _check_job_options(kind, table[kind], f"{where}: [sweep.{kind}]")
                for kind in ("slurm", "pbs") if kind in table}
    sweep = Sweep(name=_check_name(table.get("name", path.stem), f"{where}: [sweep]"), experiment_path=exp_path,
                  experiment_text=text, fixed=nest(fixed | cli_fixed), axes=axes,
                  description=table.get("description", ""), source=str(path.resolve()),
                  out_dir=table.get("out_dir", "runs"), cluster=cluster, workers=workers, jobqueue=jobqueue,
                  function=function)
    return _check_function_sweep(sweep, where) if function else _check_sweep(sweep, where)


def _function_target(path: Path, spec: str, where: str) -> tuple[Path, str]:
    """``"file.py:name"`` of a measurement sweep -> (the file, resolved against the sweep file; name)."""
    file, sep, name = spec.rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise SweepError(f"{where} = {show(spec)}: expected \"file.py:function_name\" (relative to the sweep file)")
    target = (path.parent / Path(file).expanduser()).resolve()
    if not target.is_file():
        raise SweepError(f"{where} = {show(spec)}: {target} not found")
    return target, name


_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {}
_MODULES: dict[str, Any] = {}


def load_module(file: str | Path) -> Any:
    """The Python file ``file`` as a module (imported once per process; a sweep file's function or a study
    script it reuses)."""
    import importlib.util

    path = str(Path(file).resolve())
    if path not in _MODULES:
        module_name = f"labtrain_sweep_{Path(file).stem}_{abs(hash(path)) % 10 ** 8}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SweepError(f"{file}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(module_name, None)
            raise
        _MODULES[path] = module
    return _MODULES[path]


def load_function(file: str | Path, name: str) -> Callable[..., Any]:
    """The callable ``name`` of the Python file ``file`` (imported once per process)."""
    key = (str(Path(file).resolve()), name)
    if key not in _FUNCTIONS:
        module = load_module(file)
        fn = getattr(module, name, None)
        if not callable(fn):
            raise SweepError(f"{file}: has no function {name!r}")
        _FUNCTIONS[key] = fn
    return _FUNCTIONS[key]


def _check_function_sweep(sweep: Sweep, where: str) -> Sweep:
    """A measurement sweep: every key is ``args.NAME`` and ``NAME`` a keyword of the function."""
    import inspect

    try:
        fn = load_function(sweep.experiment_path, sweep.function)
    except SweepError:
        raise
    except Exception as exc:
        raise SweepError(f"{where}: function {sweep.function} of {sweep.experiment_path}: cannot import "
                         f"({_one_line(exc)})") from None
    params = inspect.signature(fn).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in list(flatten(sweep.fixed)) + sweep.swept_keys:
        section, _, arg = key.partition(".")
        if section != ARGS:
            raise SweepError(f"{where}: {key}: a measurement sweep's keys are {ARGS}.NAME (keyword NAME of "
                             f"{sweep.function})")
        if not open_ended and arg not in params:
            raise SweepError(f"{where}: {key}: {sweep.function} has no keyword {arg!r}"
                             f"{suggest(arg, list(params))}; it takes {', '.join(params) or 'none'}")
    return sweep


def sweep_from_experiment(path: str | Path, axes: Mapping[str, list[Any]],
                          zips: Sequence[Sequence[str]] = ()) -> Sweep:
    """The sweep of an experiment file over ``axes`` (``{key: values}``); see :func:`load_sweep`."""
    return load_sweep(path, axes, zips)


def _check_job_options(kind: str, table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise SweepError(f"{where}: expected a table of dask-jobqueue job options")
    allowed = JOB_KEYS | JOB_KEYS_ONLY[kind]
    for key, value in table.items():
        want = allowed.get(key)
        if want is None:
            raise SweepError(f"{where}: unknown key {key!r}{suggest(key, list(allowed))}; allowed: "
                             f"{', '.join(allowed)}")
        if want == "strs":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, want) and not isinstance(value, bool)
        if not ok or (want is int and value < 1):
            what = "a list of strings" if want == "strs" else ("an integer >= 1" if want is int else
                                                               f"a {want.__name__}")
            raise SweepError(f"{where}: {key} = {show(value)}: expected {what}")
    return dict(table)


# ------------------------------------------------------------------ sweep folder
def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a sibling file, flush it to disk and rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _plain(value: Any) -> Any:
    """A value fit for JSON and HDF5 attributes (numpy scalars to Python)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return value.item()
    return value


def write_manifest(folder: Path, manifest: dict) -> None:
    """Replace ``folder/manifest.json`` atomically (a kill leaves the old or the new one, never half)."""
    _atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1, default=_plain))


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a sweep folder (raises :class:`SweepError` naming the folder)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SweepError(f"{folder}: no such sweep folder")
    if not path.is_file():
        raise SweepError(f"{folder}: not a sweep folder (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepError(f"{path}: unreadable sweep manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("members"),
                                                                                           list):
        raise SweepError(f"{path}: not a labtrain sweep manifest (format {MANIFEST_FORMAT})")
    return data


def sweep_of_manifest(manifest: dict) -> Sweep:
    """The :class:`Sweep` a manifest was written for (experiment text as it was when the sweep started)."""
    return Sweep(name=manifest["name"], experiment_path=Path(manifest["experiment"]["path"]),
                 experiment_text=manifest["experiment"]["text"], fixed=manifest["fixed"],
                 axes=[Axis.from_json(a) for a in manifest["axes"]], description=manifest.get("description", ""),
                 source=manifest.get("source", ""), function=manifest.get("function", ""))


def new_manifest(sweep: Sweep, folder: Path) -> dict:
    members = sweep.members(folder / "runs")
    return {"format": MANIFEST_FORMAT, "name": sweep.name, "description": sweep.description,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), "labtrain_version": __version__, "source": sweep.source,
            "experiment": {"path": str(sweep.experiment_path), "text": sweep.experiment_text},
            "function": sweep.function, "fixed": sweep.fixed, "axes": [a.to_json() for a in sweep.axes], "shape": list(sweep.shape),
            "members": [{"index": m.index, "name": m.name, "values": m.values, "overrides": m.overrides,
                         "status": "pending", "run_file": None, "message": "", "started": None, "finished": None,
                         "wall_s": None, "attempts": 0, "resumed_from": None} for m in members]}


def member_run_file(runs_dir: Path, name: str) -> Path | None:
    """The run file of member ``name`` in ``runs_dir`` (``name-<date>.h5``; the newest if several)."""
    found = sorted(runs_dir.glob(f"{glob_escape(name)}-*.h5"))
    found = [p for p in found if re.fullmatch(re.escape(name) + r"-\d{8}-\d{6}(-\d+)?\.h5", p.name)]
    return found[-1] if found else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _member_attrs(sweep_name: str, member: Mapping) -> dict[str, Any]:
    """Flat run-file attributes: the sweep, the member's index and every swept key (lists as TOML text
    unless all numbers)."""
    attrs: dict[str, Any] = {"sweep": sweep_name, "sweep_member": int(member["index"])}
    for key, value in member["values"].items():
        if isinstance(value, list) and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in value):
            value = show(value)
        attrs[key] = value
    return attrs


# ------------------------------------------------------------------ one member (runs on a worker)
def run_member(task: Mapping[str, Any], on_run: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run (or continue) one member; never raises: a failure is returned as ``status = "failed"``.

    ``task``: ``name``, ``experiment_text``, ``experiment_path``, ``overrides``, ``attrs``,
    ``runs_dir`` and ``blas_threads`` (0: leave the BLAS pools alone).  An existing run file of the
    member is continued with :func:`~labtrain.training.launch.prepare_resume` (completed: returned
    as it is); otherwise a new one is created.  Returns ``status``, ``message``, ``run_file``,
    ``steps_done``, ``wall_s``, ``resumed_from``, ``host`` and ``pid``.  ``on_run`` is called with the
    :class:`~labtrain.training.run.Run` before it starts (a serial sweep keeps it for Ctrl-C).
    """
    threads = int(task.get("blas_threads", 1))
    if threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(threads)
    else:
        limits = nullcontext()
    with limits:
        return _run_member(task, on_run)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def member_result_file(runs_dir: Path, name: str) -> Path:
    """Where a measurement sweep's member ``name`` keeps its result (``runs/<name>.json``)."""
    return Path(runs_dir) / f"{name}.json"


def read_member_result(path: str | Path) -> dict[str, Any]:
    """A measurement member's result file: ``status``, ``args``, ``result`` (the function's dict), ``wall_s``."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("result"), dict):
        raise ValueError(f"{path}: not a sweep member result")
    return data


def _run_function_member(task: Mapping[str, Any]) -> dict[str, Any]:
    """Call a measurement sweep's function with the member's ``args`` and store what it returns."""
    t0 = time.perf_counter()
    out = {"status": "failed", "message": "", "run_file": None, "steps_done": 0, "resumed_from": None,
           "host": os.uname().nodename if hasattr(os, "uname") else "", "pid": os.getpid()}
    path = member_result_file(Path(task["runs_dir"]), task["name"])
    out["run_file"] = str(path)
    try:
        if path.is_file() and read_member_result(path).get("status") == "completed":
            return out | {"status": "completed", "wall_s": 0.0}
        file, _, name = task["function"].rpartition(":")
        fn = load_function(task["experiment_path"], name)
        args = dict(task["overrides"].get(ARGS, {}))
        result = fn(**args)
        if not isinstance(result, Mapping):
            raise TypeError(f"{name} returned {type(result).__name__}, expected a dict")
        wall = time.perf_counter() - t0
        record = {"status": "completed", "member": task["name"], "args": args, "wall_s": wall,
                  "result": dict(result)}
        _atomic_write(path, json.dumps(record, indent=1, default=_json_default))
        out.update(status="completed")
    except Exception as exc:  # recorded in the manifest; the sweep goes on
        out.update(status="failed", message=_one_line(exc), run_file=None)
    out["wall_s"] = time.perf_counter() - t0
    return out


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in a measurement result, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _run_member(task: Mapping[str, Any], on_run: Callable[[Any], None] | None) -> dict[str, Any]:
    if task.get("function"):
        return _run_function_member(task)
    from labtrain.training.launch import prepare_resume, prepare_run
    from labtrain.training.store import LeaseError, read_summary

    t0 = time.perf_counter()
    out = {"status": "failed", "message": "", "run_file": None, "steps_done": 0, "resumed_from": None,
           "host": os.uname().nodename if hasattr(os, "uname") else "", "pid": os.getpid()}
    runs_dir = Path(task["runs_dir"])
    run = None
    try:
        path = member_run_file(runs_dir, task["name"])
        if path is not None:
            out["run_file"] = str(path)
            summary = read_summary(path)
            if summary["status"] == "completed":
                return out | {"status": "completed", "steps_done": summary["steps_done"], "wall_s": 0.0}
            deadline = time.monotonic() + float(task.get("lease_wait_s", LEASE_WAIT_S))
            while True:  # the process of a killed sweep may take a moment to let go of the file
                try:
                    run = prepare_resume(path)
                    break
                except LeaseError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            out["resumed_from"] = run.next_step
        else:
            exp = experiment_from_text(task["experiment_text"], Path(task["experiment_path"]), task["overrides"])
            run = prepare_run(exp, attrs=dict(task.get("attrs") or {}))
            out["run_file"] = str(run.store.path)
        if on_run is not None:
            on_run(run)
        result = run.run()
        out.update(status=result.status, message=result.message, steps_done=result.steps_done)
    except Exception as exc:  # recorded in the manifest; the sweep goes on
        out.update(status="failed", message=_one_line(exc))
    finally:
        if run is not None:
            run.close()
    out["wall_s"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------ clusters
def _check_submit(cluster: str) -> None:
    """A batch-system sweep needs its submit command (the driver runs on the login node)."""
    submit = {"slurm": "sbatch", "pbs": "qsub"}[cluster]
    if shutil.which(submit) is None:
        raise SweepError(f"--cluster {cluster}: {submit} not found; run the sweep on the cluster's login node")


def _need_dask(what: str):
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SweepError(f"{what} needs dask.distributed, which is not installed: pip install -e '.[sweep]' in the "
                         "labtrain checkout (or run the members one after another with --cluster serial)") from None
    return distributed


def jobqueue_cluster(kind: str, options: Mapping[str, Any], folder: Path | None = None):
    """A dask-jobqueue ``SLURMCluster`` / ``PBSCluster`` from ``[sweep.slurm]`` / ``[sweep.pbs]`` options.

    Defaults: one core and one worker process per job (``processes = cores``: every member runs in a
    process of its own), 2 GB, one BLAS thread (exported in the job script), logs in the sweep folder.
    Starts only the (local) scheduler: no job is submitted until the cluster is scaled.  Its
    ``job_script()`` shows what would be submitted.
    """
    _need_dask(f"--cluster {kind}")
    try:
        import dask_jobqueue
    except ImportError:
        raise SweepError(f"--cluster {kind} needs dask-jobqueue, which is not installed: "
                         "pip install -e '.[sweep]' in the labtrain checkout") from None
    opts = dict(options)
    opts.setdefault("cores", 1)
    opts.setdefault("processes", opts["cores"])
    opts.setdefault("memory", "2GB")
    opts.setdefault("job_name", "labtrain-sweep")
    if folder is not None:
        opts.setdefault("log_directory", str(folder / "logs"))
    opts["job_script_prologue"] = [f"export {k}={v}" for k, v in ONE_THREAD_ENV.items()] + \
        list(opts.get("job_script_prologue", []))
    if "scheduler_interface" in opts:  # the login node's network the compute nodes reach (e.g. ib0)
        opts["scheduler_options"] = {"interface": opts.pop("scheduler_interface")}
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    try:
        return cls(silence_logs="error", **opts)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"[sweep.{kind}]: {_one_line(exc)}") from None


@dataclass
class ClusterHandle:
    """A connected Dask client, the cluster it owns (None for a scheduler address), and what it is."""

    client: Any
    cluster: Any
    description: str

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is None:
                continue
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - shutting down; nothing left to save
                pass


def open_cluster(cluster: str, workers: int | None, jobqueue: Mapping[str, Mapping] | None = None,
                 folder: Path | None = None) -> ClusterHandle:
    """Connect to the cluster ``cluster`` names (``local``, ``slurm``, ``pbs`` or a scheduler address)."""
    distributed = _need_dask(f"--cluster {cluster}")
    import dask

    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):  # one member per worker thread
        return _open_cluster(distributed, cluster, workers, jobqueue, folder)


def _open_cluster(distributed, cluster: str, workers: int | None, jobqueue: Mapping[str, Mapping] | None,
                  folder: Path | None) -> ClusterHandle:
    for name in ("distributed", "distributed.worker", "distributed.nanny", "distributed.scheduler",
                 "distributed.core", "distributed.comm", "distributed.batched"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if cluster == "local":
        n = workers or os.cpu_count() or 1
        lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=logging.ERROR, env=dict(ONE_THREAD_ENV))
        return ClusterHandle(distributed.Client(lc), lc, f"local cluster, {n} worker processes")
    if cluster in ("slurm", "pbs"):
        _check_submit(cluster)
        jc = jobqueue_cluster(cluster, (jobqueue or {}).get(cluster, {}), folder)
        jobs = workers or 1
        jc.scale(jobs=jobs)
        return ClusterHandle(distributed.Client(jc), jc, f"{cluster} cluster, {jobs} job{'s' if jobs != 1 else ''}")
    address = cluster if "://" in cluster else f"tcp://{cluster}"
    try:
        client = distributed.Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"--cluster {cluster}: no Dask scheduler answers there ({_one_line(exc)}); expected "
                         f"one of {', '.join(CLUSTERS)} or a scheduler address host:port") from None
    info = client.scheduler_info(n_workers=-1)
    threads = sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())
    return ClusterHandle(client, None, f"scheduler {address}, {threads} worker threads now")


# ------------------------------------------------------------------ the driver
@dataclass
class SweepReport:
    """How a sweep ended: the folder, and members by status."""

    folder: Path
    counts: dict[str, int]
    interrupted: str = ""
    """What stopped the sweep early (``Ctrl-C``, ``SIGTERM``), "" when it ran to the end."""

    @property
    def ok(self) -> bool:
        return not self.interrupted and set(self.counts) <= {"completed"}


class _Progress:
    """Members done/running/failed with an ETA (tqdm on stderr), fed by the driver."""

    def __init__(self, total: int, done: int, name: str, quiet: bool) -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc=name, dynamic_ncols=True, file=sys.stderr)

    def show(self, running: int, failed: int, advance: int = 0) -> None:
        if self.bar is None:
            return
        if advance:
            self.bar.update(advance)
        self.bar.set_postfix({"running": running, "failed": failed}, refresh=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Driver:
    """Keeps the manifest in step with the members' progress (the one writer of the manifest)."""

    def __init__(self, folder: Path, manifest: dict, todo: list[dict], quiet: bool) -> None:
        self.folder, self.manifest, self.todo = folder, manifest, todo
        members = manifest["members"]
        done = sum(m["status"] in DONE for m in members)
        self.failed = sum(m["status"] == "failed" for m in members if m not in todo)
        self.progress = _Progress(len(members), done, manifest["name"], quiet)
        self.running: set[int] = set()
        self.ended: set[int] = set()

    def task(self, member: dict, blas_threads: int) -> dict:
        return {"name": member["name"], "experiment_text": self.manifest["experiment"]["text"],
                "experiment_path": self.manifest["experiment"]["path"], "overrides": member["overrides"],
                "attrs": _member_attrs(self.manifest["name"], member), "runs_dir": str(self.folder / "runs"),
                "blas_threads": blas_threads, "function": self.manifest.get("function", "")}

    def started(self, member: dict) -> None:
        if member["index"] in self.running:
            return
        self.running.add(member["index"])
        member.update(status="running", started=time.strftime("%Y-%m-%d %H:%M:%S"),
                      attempts=member.get("attempts", 0) + 1)
        write_manifest(self.folder, self.manifest)
        self.progress.show(len(self.running), self.failed)

    def finished(self, member: dict, result: Mapping[str, Any]) -> None:
        self.running.discard(member["index"])
        self.ended.add(member["index"])
        member.update(status=result["status"], message=result.get("message", ""),
                      run_file=_relative(result.get("run_file"), self.folder) or member.get("run_file"),
                      finished=time.strftime("%Y-%m-%d %H:%M:%S"), wall_s=result.get("wall_s"),
                      resumed_from=result.get("resumed_from"))
        if not member.get("started"):
            member.update(started=member["finished"], attempts=member.get("attempts", 0) + 1)
        write_manifest(self.folder, self.manifest)
        if member["status"] != "completed":
            self.failed += member["status"] == "failed"
            self.progress.write(f"{member['name']}: {member['status']}"
                                + (f" ({member['message']})" if member["message"] else ""))
        self.progress.show(len(self.running), self.failed, advance=1)

    def interrupted(self, why: str) -> None:
        for member in self.todo:
            if member["status"] == "running":
                member.update(status="stopped", message=why)
        write_manifest(self.folder, self.manifest)


def _relative(path: str | None, folder: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _reconcile(folder: Path, manifest: dict) -> list[dict]:
    """Members still to run, after matching the manifest with the run files on disk (a killed driver
    may not have recorded a member that finished, or started one it never heard of)."""
    from labtrain.training.store import StoreError, read_summary

    todo = []
    if manifest.get("function"):
        for member in manifest["members"]:
            path = member_result_file(folder / "runs", member["name"])
            try:
                done = path.is_file() and read_member_result(path).get("status") == "completed"
            except (OSError, ValueError):
                done = False
            if done:
                member.update(status="completed", run_file=_relative(str(path), folder))
            elif member["status"] in DONE or member["status"] == "running":
                member.update(status="pending", message="")
            if member["status"] not in DONE:
                todo.append(member)
        return todo
    for member in manifest["members"]:
        path = member_run_file(folder / "runs", member["name"])
        if path is not None:
            member["run_file"] = _relative(str(path), folder)
            try:
                summary = read_summary(path)
            except (StoreError, OSError, KeyError, ValueError) as exc:
                member.update(status="failed", message=f"unreadable run file: {_one_line(exc)}")
                summary = None
            if summary is not None:
                member["status"] = "completed" if summary["status"] == "completed" else summary["status"]
                if member["status"] in ("crashed", "running"):
                    member["message"] = "interrupted; continues from its last checkpoint"
        elif member["status"] != "pending":
            member.update(status="pending", message="")
        if member["status"] not in DONE:
            todo.append(member)
    return todo


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (Linux: clock ticks since boot), None where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _driver_alive(record: Mapping | None) -> bool:
    """Whether the driver ``record`` (host, pid, start) may still run the sweep (another host: assumed so)."""
    if not record:
        return False
    if record.get("host") != socket.gethostname():
        return True
    pid = int(record.get("pid", -1))
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _process_start(pid)
    return record.get("start") is None or start is None or start == record["start"]


def check_cluster(sweep: Sweep, cluster: str) -> None:
    """Refuse (:class:`SweepError`) a ``--cluster`` value that is neither a word of :data:`CLUSTERS` nor a
    scheduler address, a parallel sweep with a hardware member, and a Dask cluster without Dask --
    before anything is created."""
    if cluster not in CLUSTERS and not re.match(r"^([a-z]+://)?[\w.\-\[\]:]+:\d+$", cluster):
        raise SweepError(f"--cluster {cluster}: expected one of {', '.join(CLUSTERS)} or a scheduler address "
                         "host:port")
    if cluster == "serial":
        return
    if sweep.function:  # a measurement sweep: no backend of its own
        _need_dask(f"--cluster {cluster}")
        if cluster in ("slurm", "pbs"):
            _check_submit(cluster)
        return
    backend = tomllib.loads(sweep.experiment_text).get("backend", {})
    default = backend.get("kind", BASE_SCHEMA["backend"]["kind"].default) if isinstance(backend, dict) else None
    for member in sweep.members():
        if member.overrides.get("backend", {}).get("kind", default) == "hardware":
            raise SweepError(f"member {member.name} runs on [backend] kind = 'hardware': one bench, one safety "
                             "registry -- a hardware sweep runs its members one after another: --cluster serial")
    _need_dask(f"--cluster {cluster}")
    if cluster in ("slurm", "pbs"):
        _check_submit(cluster)


def prepare_folder(sweep: Sweep, folder: Path | None) -> tuple[Path, dict]:
    """Create the sweep folder and its manifest (every member pending); refuse an existing sweep folder."""
    folder = Path(folder) if folder is not None else Path(sweep.out_dir) / sweep.name
    if (folder / MANIFEST).exists():
        raise SweepError(f"{folder}: a sweep folder already (continue it with labtrain sweep --resume {folder}, "
                         "or choose another --out)")
    if folder.exists() and any(folder.iterdir()):
        raise SweepError(f"{folder}: exists and is not empty; choose another --out")
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    manifest = new_manifest(sweep, folder.resolve())
    write_manifest(folder, manifest)
    return folder, manifest


def run_sweep(folder: str | Path, cluster: str = "local", workers: int | None = None,
              jobqueue: Mapping[str, Mapping] | None = None, quiet: bool = False, force: bool = False) -> SweepReport:
    """Run every member of the sweep in ``folder`` that is not completed (a new or a resumed sweep).

    ``cluster``: ``local`` (``workers`` processes, default: one per core), ``serial`` (in this
    process, no Dask), ``slurm``/``pbs`` (``workers`` jobs of ``jobqueue[cluster]`` options) or a
    scheduler address.  Members whose backend is ``hardware`` run only serially.  A sweep folder is
    run by one driver at a time (``force``: take over one recorded on another host, which this
    host cannot check).  Ctrl-C or SIGTERM stops the sweep (``SweepReport.interrupted`` says which):
    a serial member stops at a step boundary, members on a local cluster stop with their workers;
    either way they are resumable.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_cluster(sweep_of_manifest(manifest), cluster)
    other = manifest.get("driver")
    if _driver_alive(other) and not (force and other.get("host") != socket.gethostname()):
        remote = other.get("host") != socket.gethostname()
        raise SweepError(f"{folder}: this sweep is being run by pid {other['pid']} on {other['host']} (since "
                         f"{other['since']}); wait for it or stop it first"
                         + (", or pass --force if it is gone" if remote else ""))
    todo = _reconcile(folder, manifest)
    manifest["driver"] = _me()
    write_manifest(folder, manifest)
    driver = _Driver(folder, manifest, todo, quiet)
    interrupted = ""
    try:
        if todo:
            if cluster == "serial":
                interrupted = _serial(driver)
            else:
                interrupted = _on_dask(driver, cluster, workers, jobqueue, folder, quiet)
    finally:
        driver.progress.close()
        manifest["driver"] = None
        write_manifest(folder, manifest)
    counts: dict[str, int] = {}
    for member in manifest["members"]:
        counts[member["status"]] = counts.get(member["status"], 0) + 1
    return SweepReport(folder, counts, interrupted)


def _serial(driver: _Driver) -> str:
    """Members one after another in this process; Ctrl-C/SIGTERM stops the current one at a step boundary."""
    state = {"stop": None}

    def on_signal(signum, frame):
        if state["stop"] is not None:
            raise KeyboardInterrupt
        state["stop"] = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        _CURRENT.request_stop(f"sweep stopped by {state['stop']}")

    previous = {}
    try:
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        for member in driver.todo:
            if state["stop"]:
                break
            driver.started(member)
            result = run_member(driver.task(member, blas_threads=0), on_run=_CURRENT.attach)
            _CURRENT.run = None
            driver.finished(member, result)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _CURRENT.clear()
    if state["stop"]:
        driver.interrupted(f"sweep stopped by {state['stop']}")
    return state["stop"] or ""


class _CurrentRun:
    """The run a serial sweep is training (for Ctrl-C); listeners register it when it starts."""

    def __init__(self) -> None:
        self.run = None
        self.pending: str | None = None

    def attach(self, run: Any) -> None:
        self.run = run
        if self.pending is not None:
            run.request_stop(self.pending)

    def request_stop(self, message: str) -> None:
        self.pending = message
        if self.run is not None:
            self.run.request_stop(message)

    def clear(self) -> None:
        self.run, self.pending = None, None


_CURRENT = _CurrentRun()


class _Stop(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a Dask sweep waits (its members stop with their workers; resumable)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _raise_stop(signum, frame) -> None:
    raise _Stop("SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")


def _on_dask(driver: _Driver, cluster: str, workers: int | None, jobqueue, folder: Path, quiet: bool) -> str:
    """Members on a Dask cluster, never more in flight than the cluster has worker threads (so every
    submitted member is running, and a worker that joins later -- a SLURM job that starts -- gets the
    next one); a completed one is recorded at once."""
    distributed = _need_dask(f"--cluster {cluster}")
    handle = open_cluster(cluster, workers, jobqueue, folder)
    if not quiet:
        driver.progress.write(f"sweep {driver.manifest['name']}: {len(driver.todo)} member"
                              f"{'s' if len(driver.todo) != 1 else ''} to run on a {handle.description}")
    token = uuid.uuid4().hex[:8]
    queue = list(driver.todo)
    in_flight: dict[Any, dict] = {}
    previous = {}
    try:
        previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        while queue or in_flight:
            window = max(1, _worker_threads(handle.client))
            while queue and len(in_flight) < window:
                member = queue.pop(0)
                fut = handle.client.submit(run_member, driver.task(member, blas_threads=1), pure=False,
                                           key=f"labtrain-member-{token}-{member['index']}")
                in_flight[fut] = member
                driver.started(member)
            try:
                done = distributed.wait(list(in_flight), timeout=1.0, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for fut in done:
                member = in_flight.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the member failed, the sweep goes on
                    result = {"status": "failed", "message": _one_line(exc),
                              "run_file": member.get("run_file") and str(folder / member["run_file"])}
                fut.release()
                driver.finished(member, result)
        return ""
    except KeyboardInterrupt as exc:
        name = exc.name if isinstance(exc, _Stop) else "Ctrl-C"
        driver.interrupted(f"sweep stopped by {name}")
        return name
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        handle.close()


def _worker_threads(client: Any) -> int:
    """Worker threads the scheduler has now (0 while none has joined, or when it cannot be asked)."""
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except Exception:  # noqa: BLE001 - a scheduler that does not answer this moment: no new submission
        return 0
    return sum(int(w.get("nthreads", 1)) for w in workers.values())


def read_sweep_results(folder: str | Path) -> dict[str, Any]:
    """The manifest with each member's run-file summary (``summary``; None when it has no run file)."""
    from labtrain.training.store import StoreError, read_summary

    folder = Path(folder)
    manifest = read_manifest(folder)
    for member in manifest["members"]:
        member["summary"] = None
        if member.get("run_file"):
            try:
                member["summary"] = (read_member_result(folder / member["run_file"]) if manifest.get("function")
                                     else read_summary(folder / member["run_file"]))
            except (StoreError, OSError, ValueError):
                pass
    return manifest


def describe_members(sweep: Sweep) -> str:
    """One line per member (``--dry-run``)."""
    what = f"{sweep.function.rpartition(':')[2]}() of {sweep.experiment_path}" if sweep.function \
        else str(sweep.experiment_path)
    lines = [f"sweep {sweep.name}: {math.prod(sweep.shape)} members of {what} over "
             + (" x ".join(f"{a.name} ({len(a.points)})" for a in sweep.axes) or "no axis")]
    if sweep.fixed:
        lines.append(f"  every member: {format_overrides(sweep.fixed)}")
    for m in sweep.members():
        lines.append(f"  {m.name}  {format_overrides(nest(m.values))}")
    return "\n".join(lines)
