"""``labtrain`` command line: run, resume, check, runs, show, export, gradcheck, sweep, characterize, devices, gui.

``labtrain sweep`` runs an experiment over axes of overridden keys on Dask (:mod:`labtrain.training.sweep`);
``--set section.key=value`` overrides one key for run, check and gradcheck.

``labtrain selftest`` checks a bench before the first run (the chip kind's
:attr:`~labtrain.kinds.ChipKind.selftest`): exit 0 every check passed, 1 a
check failed, 3 an instrument did not answer.

``labtrain characterize`` samples a DNPU (twin, ideal model or hardware) with
incommensurate triangle waves and fits a surrogate twin to it
(:mod:`labtrain.kinds.dnpu.characterize`); ``[chip] model = "surrogate"`` with
``surrogate_path`` then trains on it.

Exit codes: 0 success; 1 a run failed; 2 bad input (experiment file, run file or
argument -- one line on stderr, nothing run); 3 a run paused by an instrument
fault (safe state, saved, resumable); 4 a resource fault (disk full, file-size
limit, I/O error) writing a file -- the run stopped in the safe state, its file
readable up to its last good step; 130 a run stopped by Ctrl-C, 143 by SIGTERM
(saved and resumable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import numbers
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

# Start-up cost: this module imports nothing heavy (no numpy, scipy, h5py, xarray, dask, Qt) so that
# `labtrain --help` and argument errors answer at once; every command imports what it needs
# (tests/test_startup.py checks this).
from labtrain import __version__
from labtrain.kinds import BACKENDS
from labtrain.schema import ConfigError

if TYPE_CHECKING:
    import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_FAULT, EXIT_STOPPED = 0, 1, 2, 3, 130
EXIT_RESOURCE, EXIT_TERMINATED = 4, 143


class UsageError(ValueError):
    """Bad command-line input that is neither an experiment nor a run-file problem."""


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (exit 2), like every other bad input.

    ``populate(parser)``, if given, adds the parser's arguments the first time it parses or prints its
    help: a subcommand whose options live in a heavy module (``characterize``) costs nothing to
    ``labtrain --help`` or to any other command.
    """

    def __init__(self, *args: Any, populate: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populate(self) -> "_Parser":
        """Add the deferred arguments now (idempotent)."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
        return self

    def parse_known_args(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        self.populate()
        return super().parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        self.populate()
        return super().format_usage()

    def format_help(self) -> str:
        self.populate()
        return super().format_help()

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- helpers
def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, numbers.Integral):  # counts and seeds as integers, never 1.661e+04
        return str(int(value))
    return format(value, spec) if isinstance(value, numbers.Real) else str(value)


def _pct(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


class _Progress:
    """tqdm progress bar fed by run events."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.last_eval: dict[str, float] = {}

    def __call__(self, event) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if event.kind == "start":
            total = event.data["total_steps"]
            self.bar = tqdm(total=total, initial=event.data["resumed_from"], unit="step", dynamic_ncols=True,
                            file=sys.stderr)
        elif event.kind == "step" and self.bar is not None:
            self.bar.update(1)
            post = {"loss": f"{event.data['loss']:.3g}"}
            if "test_accuracy" in self.last_eval and not math.isnan(self.last_eval["test_accuracy"]):
                post["test_acc"] = f"{100 * self.last_eval['test_accuracy']:.0f}%"
            self.bar.set_postfix(post, refresh=False)
        elif event.kind == "eval":
            self.last_eval = event.data
        elif event.kind == "stop" and self.bar is not None:
            self.bar.close()


class _StderrLog(logging.Handler):
    """The command's log on stderr: warnings and errors of every ``labtrain`` logger, and the records marked
    as run events (instrument retries, safety ramps, pauses; ``extra={"labtrain_event": ...}``), one line
    each, written around a live progress bar."""

    def __init__(self, command: str) -> None:
        super().__init__(logging.INFO)
        self.command = command

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if getattr(record, "labtrain_direct", False):  # the run's own resume/stop/failure: the command says it
            return getattr(record, "labtrain_event", "") == "pause"
        return record.levelno >= logging.WARNING or hasattr(record, "labtrain_event")

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{self.command}: {level}{record.getMessage()}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None:  # clears and redraws a progress bar around the line
                tqdm.tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


@contextlib.contextmanager
def _log_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """Show the ``labtrain`` loggers' warnings and events on stderr while a command runs (the GUI has its own
    log); the logger's handlers and level are restored afterwards."""
    logger = logging.getLogger("labtrain")
    if args.command == "gui" or any(isinstance(h, _StderrLog) for h in logger.handlers):
        yield
        return
    handler, level = _StderrLog(f"labtrain {args.command}"), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _loss_unit(estimator) -> str:
    """`` V^2`` after a loss in volts squared; nothing after a dimensionless one."""
    unit = estimator.loss_unit
    return "" if unit in ("", "1") else f" {unit}"


def _train(run, quiet: bool) -> int:
    """Run with Ctrl-C and SIGTERM mapped to a stop at the next step boundary; print the summary."""
    from labtrain.training.store import StoreWriteError

    first = {"hit": None}

    def on_signal(signum, frame):
        if first["hit"] is not None:
            raise KeyboardInterrupt
        first["hit"] = signum
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        run.request_stop(f"stopped by {name}")
        print(f"\nstopping at the next step boundary ({name} again to interrupt the step)", file=sys.stderr)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run.run()
    except StoreWriteError as exc:
        path = run.store.path if run.store is not None else None
        print(f"labtrain: error: {exc}; stopped after step {run.next_step} with the chip in its safe state; the run "
              f"file keeps every step up to its last checkpoint" + (f"; resume with: labtrain resume {path}" if path
                                                                     else ""), file=sys.stderr)
        return EXIT_RESOURCE
    except Exception as exc:  # a bug: the run has put the chip in its safe state and recorded "failed"
        if run.store is not None:
            exc.labtrain_run_file = run.store.path  # type: ignore[attr-defined]  # named by main's bug report
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if run.store is not None:
            run.store.close()
    final = result.final
    unit = _loss_unit(run.estimator)
    print(f"status      {result.status}" + (f" ({result.message})" if result.message else ""))
    print(f"steps       {result.steps_done} / {result.total_steps}")
    if final:
        when = int(final["step"])
        if when != result.steps_done - 1:
            label = "before training" if when < 0 else f"after step {when + 1}"
            print(f"last evaluation {label}; last step's batch loss "
                  f"{_fmt(result.step_loss[-1]) if result.step_loss else '-'}{unit}")
        n_eval, n_train = len(run.eval_train_index), len(run.task.x_train)
        subset = f"   (on {n_eval} of {n_train} training examples)" if n_eval < n_train else ""
        print(f"train loss  {_fmt(final['train_loss'])}{unit}   accuracy {_pct(final['train_accuracy'])}{subset}")
        print(f"test loss   {_fmt(final['test_loss'])}{unit}   accuracy {_pct(final['test_accuracy'])}")
    if result.path is not None:
        print(f"run file    {result.path}")
        if result.status != "completed":
            print(f"resume with: labtrain resume {result.path}")
    if result.status == "completed":
        return EXIT_OK
    if result.status == "paused":
        return EXIT_FAULT
    if result.status == "stopped":
        return EXIT_TERMINATED if first["hit"] == signal.SIGTERM else EXIT_STOPPED
    return EXIT_FAILED


# ---------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from labtrain.training.launch import overrides_from_cli, prepare_run

    progress = _Progress(args.quiet)
    overrides = _with_sets(args, overrides_from_cli(args.backend, args.epochs, args.seed, args.out))
    run = prepare_run(args.file, overrides, listeners=[progress])
    if not args.quiet:
        print(f"run file    {run.store.path}", file=sys.stderr)
    return _train(run, args.quiet)


def cmd_resume(args: argparse.Namespace) -> int:
    from labtrain.training.launch import prepare_resume

    run = prepare_resume(args.run, listeners=[_Progress(args.quiet)], epochs=args.epochs)
    print(f"resuming {args.run} at step {run.next_step} of {run.total_steps}", file=sys.stderr)
    return _train(run, args.quiet)


def _nodes(nodes, shown: int = 12) -> str:
    """Node indices for one line: all of a short list, else the first and last few and the count."""
    nodes = [int(n) for n in nodes]
    if len(nodes) <= shown:
        return str(nodes)
    return f"[{', '.join(map(str, nodes[:6]))}, ..., {', '.join(map(str, nodes[-3:]))}] ({len(nodes)} nodes)"


def cmd_check(args: argparse.Namespace) -> int:
    from labtrain.build import build_setup, check_bench
    from labtrain.config import load_experiment
    from labtrain.training.launch import check_out_dir, overrides_from_cli
    from labtrain.training.run import Run

    exp = load_experiment(args.file, _with_sets(args, overrides_from_cli(args.backend, args.epochs, args.seed, args.out)))
    check_out_dir(exp)  # run would refuse it before building anything
    bench = check_bench(exp)
    if bench is not None:
        return _print_bench_check(args, exp, *bench)
    setup = build_setup(exp)
    try:
        r = exp["run"]
        run = Run(setup.chip, setup.estimator, setup.optimizer, setup.task, epochs=r["epochs"],
                  batch_size=r["batch_size"], seed=r["seed"])
        net, task = setup.network, setup.task
        print(f"{args.file}: OK")
        if net is not None:
            print(f"  chip      {net.name}: {net.n_nodes} nodes, {net.n_edges} edges, inputs {_nodes(net.inputs)}, "
                  f"outputs {_nodes(net.outputs)}, grounds {_nodes(net.grounds)}; backend {exp['backend']['kind']}")
        else:
            snap = setup.chip.snapshot()
            sizes = "-".join(map(str, snap.get("topology", {}).get("layer_sizes", [])))
            spec = setup.chip.parameter_spec
            print(f"  chip      {snap.get('chip', exp['chip']['type'])} {sizes}: {spec.size} "
                  f"parameters ({spec.name}, {spec.unit}); backend {exp['backend']['kind']}")
        shift = f"; training images shifted by up to {task.info['max_shift_px']} px" if task.augment else ""
        print(f"  task      {task.name}: {len(task.x_train)} train / {len(task.x_test)} test examples, "
              f"decoder {task.decoder}{shift}")
        print(f"  learning  {setup.estimator.describe()} with {setup.optimizer.name}")
        print(f"  run       {r['epochs']} epochs x {run.steps_per_epoch} steps of {run.batch_size} examples "
              f"= {run.total_steps} steps; run files in {r['out_dir']}/")
    finally:
        setup.chip.close()
    return EXIT_OK


def _print_bench_check(args: argparse.Namespace, exp, task, net, identities: dict, wiring: dict) -> int:
    print(f"{args.file}: OK (backend {exp['backend']['kind']}; no voltage applied, no pot moved)")
    if net is not None:
        print(f"  chip      {net.name}: {net.n_nodes} nodes, {net.n_edges} edges")
    print(f"  task      {task.name}: {len(task.x_train)} train / {len(task.x_test)} test examples")
    print("  wiring    " + "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                                     for k, v in wiring.items()))
    for name, identity in identities.items():
        print(f"  {name:<9} {identity}")
    return EXIT_OK


def _with_sets(args: argparse.Namespace, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``overrides`` (from the dedicated options) plus the ``--set section.key=value`` options, checked against
    the schema of the file's ``[chip] type``; a key given both ways is refused."""
    from labtrain.overrides import check_overrides, flatten, kind_of_file, kind_of_text, merge, parse_sets

    sets = parse_sets(getattr(args, "set", None))
    if not sets:
        return overrides
    both = sorted(set(flatten(sets)) & set(flatten(overrides)))
    if both:
        raise UsageError(f"--set {both[0]}=... and the option for the same key are both given; use one")
    if str(args.file).endswith(".h5"):
        from labtrain.training.store import RunStore

        with RunStore.open(args.file) as store:
            kind = kind_of_text(store.experiment_text, merge(store.overrides, sets))
    else:
        kind = kind_of_file(args.file, sets)
    return merge(check_overrides(sets, kind), overrides)


def cmd_sweep(args: argparse.Namespace) -> int:
    """``labtrain sweep``: run a sweep (new or ``--resume``d), list it (``--dry-run``) or print its ``--summary``."""
    from labtrain.overrides import parse_axes
    from labtrain.training import sweep as sw

    given = [name for name, value in (("FILE", args.file), ("--resume", args.resume), ("--summary", args.summary))
             if value is not None]
    if len(given) != 1:
        raise UsageError("give one of FILE (a sweep or experiment file), --resume DIR or --summary DIR"
                         + (f"; got {' and '.join(given)}" if given else ""))
    if args.summary is not None:
        if args.set or args.zip or args.dry_run:
            raise UsageError("--summary DIR takes no --set, --zip or --dry-run")
        return _print_sweep_summary(Path(args.summary), args.json)
    if args.resume is not None:
        if args.set or args.zip or args.out or args.dry_run:
            raise UsageError("--resume DIR continues the sweep as it was defined: no --set, --zip, --out or "
                             "--dry-run")
        folder = Path(args.resume)
        cluster, workers, jobqueue = args.cluster or "local", args.workers, {}
        source = sw.read_manifest(folder).get("source", "")
        if source and Path(source).is_file() and sw.is_sweep_file(source):
            try:
                spec = sw.load_sweep(source)
                cluster, workers, jobqueue = args.cluster or spec.cluster, args.workers or spec.workers, spec.jobqueue
            except ConfigError:
                pass  # the sweep file changed since: the manifest defines the sweep; options from the command line
    else:
        zips = [[k.strip() for k in z.split(",")] for z in args.zip or []]
        spec = sw.load_sweep(args.file, parse_axes(args.set), zips)
        if args.dry_run:
            print(sw.describe_members(spec))
            return EXIT_OK
        cluster, workers, jobqueue = args.cluster or spec.cluster, args.workers or spec.workers, spec.jobqueue
        sw.check_cluster(spec, cluster)
        if args.out:
            _check_folder_target(Path(args.out), "--out")
        folder, _ = sw.prepare_folder(spec, Path(args.out) if args.out else None)
        print(f"sweep folder {folder}", file=sys.stderr)
    report = sw.run_sweep(folder, cluster=cluster, workers=workers, jobqueue=jobqueue, quiet=args.quiet,
                          force=args.force)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
    print(f"sweep {folder}: {counts}", file=sys.stderr)
    if report.counts.get("completed"):
        _print_sweep_summary(folder, False)
    if not report.ok:
        print(f"continue with: labtrain sweep --resume {folder}", file=sys.stderr)
    if report.interrupted:
        return EXIT_TERMINATED if report.interrupted == "SIGTERM" else EXIT_STOPPED
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_sweep_summary(folder: Path, as_json: bool) -> int:
    from labtrain.training.sweep import read_sweep_results
    from labtrain.training.sweep_summary import summary_dataset, summary_table, write_summary

    if as_json:
        manifest = read_sweep_results(folder)
        print(json.dumps(_json_clean(manifest["members"]), indent=1, default=_json_value))
        return EXIT_OK
    path = write_summary(folder)
    ds = summary_dataset(folder)
    print(summary_table(ds))
    print(f"summary dataset {path}", file=sys.stderr)
    return EXIT_OK


def _json_clean(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``null`` (strict JSON) and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):  # a numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_value(value: Any) -> Any:
    return str(value)


def cmd_devices(args: argparse.Namespace) -> int:
    from labtrain.drivers.discovery import format_devices, list_devices

    print(format_installed())
    print()
    print(format_devices(list_devices()))
    return EXIT_OK


def _describe_entry(obj: Any) -> str:
    """One line about a registered kind, plugin rule or driver."""
    from labtrain.instruments.drivers import DriverSpec
    from labtrain.kinds import ChipKind, RulePlugin

    if isinstance(obj, ChipKind):
        return f"{obj.summary} (rules: {', '.join(obj.rules)}; backends: {', '.join(obj.backends)})"
    if isinstance(obj, RulePlugin):
        return f"rule for {', '.join(obj.kinds)}"
    if isinstance(obj, DriverSpec):
        return obj.description
    return f"not a labtrain object: {type(obj).__name__}"


def format_installed() -> str:
    """Chip kinds, learning rules and instrument drivers installed (built-in and plugins), one line each;
    plugins that fail to load are listed with the reason."""
    from labtrain import registry

    lines = []
    for group, title in (("labtrain.kinds", "chip kinds"), ("labtrain.rules", "plugin rules"),
                         ("labtrain.drivers", "instrument drivers")):
        entries = registry.entries(group)
        lines.append(f"{title} ({len(entries)}):")
        loaded = registry.load_all(group)
        broken = registry.broken(group)
        for name, entry in entries.items():
            origin = "" if entry.source == "labtrain" else f" [plugin {entry.source}]"
            if name in broken:
                lines.append(f"  {name:<20} BROKEN: {broken[name]}{origin}")
                continue
            text = _describe_entry(loaded[name])
            lines.append(f"  {name:<20} {text}{origin}")
        if not entries:
            lines.append("  none")
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:
    from labtrain.training.store import list_runs

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such folder")
    rows = list_runs(directory)
    if args.json:
        print(json.dumps(_json_clean(rows), indent=1, default=_json_value))
        return EXIT_OK
    if not rows:
        print(f"no run files in {directory}")
        return EXIT_OK
    print(_table([[r["name"], r["created"], r["rule"], r["backend"], f"{r['steps_done']}/{r['total_steps']}",
                   _fmt(r["test_loss"]), _pct(r["test_accuracy"]), r["status"], _overrides_cell(r), r["path"]]
                  for r in rows],
                 ["name", "date", "rule", "backend", "steps", "test loss", "test acc", "status", "overrides", "file"]))
    for r in rows:
        if r["status"] == "unreadable":
            print(f"unreadable: {r['message']}", file=sys.stderr)
    return EXIT_OK


def _overrides_cell(row: dict) -> str:
    """A run's overrides as ``section.key=value`` (leaving out a sweep member's own name and folder)."""
    from labtrain.overrides import format_overrides

    skip = ("experiment.name", "run.out_dir") if row.get("sweep") else ()
    return format_overrides(row.get("overrides") or {}, skip) or "-"


def cmd_repair(args: argparse.Namespace) -> int:
    from labtrain.training.store import repair_run

    print(repair_run(args.run, force=args.force))
    return EXIT_OK


SHOW_EVENTS = 30
"""``labtrain show`` lists at most this many events (the first and last half); ``--full`` lists all."""


def cmd_show(args: argparse.Namespace) -> int:
    """``labtrain show RUN``: a concise summary (status, kind and rule, steps, final and best metrics,
    provenance, events); ``--full`` adds every event, the experiment file, overrides and the snapshot."""
    from labtrain.training.store import RunStore, read_summary

    summary = read_summary(args.run)
    with RunStore.open(args.run) as store:
        print(_show_summary(summary, store.attrs, store.snapshot, store.table("eval"), store.events(),
                            full=args.full, n_train=store.task.get("n_train")))
        if args.full:
            print("\nexperiment file:\n" + store.experiment_text.rstrip())
            if store.overrides:
                print(f"overrides: {json.dumps(store.overrides)}")
            print("\nsnapshot:\n" + json.dumps(store.snapshot, indent=2, sort_keys=True))
    return EXIT_OK


def _show_summary(summary: dict, attrs: dict, snapshot: dict, evals: dict, events: dict, full: bool,
                  n_train: int | None = None) -> str:
    """The lines of ``labtrain show``: ``summary`` from ``read_summary``, the rest from the run file."""
    import time

    import numpy as np

    lines: list[str] = []

    def row(key: str, text: str) -> None:
        lines.append(f"{key:<11} {text}")

    unit = attrs.get("loss_units", "")
    unit = "" if unit in ("", "1") else f" {unit}"
    exp = snapshot.get("experiment", {})
    chip = snapshot.get("chip", {})
    row("run", f"{summary['name']}  {summary['path']}")
    row("status", summary["status"] + (f" ({summary['message']})" if summary.get("message") else ""))
    kind = exp.get("chip", {}).get("type") or chip.get("chip") or "-"
    describe = chip.get("chip")
    row("kind", f"{kind}" + (f" ({describe})" if describe and describe != kind else "") +
        f"; backend {summary['backend']}; rule {summary['rule']}")
    epochs = snapshot.get("run", {}).get("epochs")
    done, total = int(summary["steps_done"]), int(summary["total_steps"])
    text = f"{done} / {total}"
    if isinstance(epochs, int) and epochs > 0 and total % epochs == 0 and total:
        per = total // epochs
        text += f" ({done // per} of {epochs} epochs done, {per} step{'s' if per != 1 else ''} each)"
    row("steps", text)
    steps = np.asarray(evals.get("step", []))
    if len(steps):
        last = {k: float(v[-1]) for k, v in evals.items()}
        when = "before training" if last["step"] < 0 else f"after step {int(last['step']) + 1}"
        n_eval = int(snapshot.get("run", {}).get("eval_train_examples", 0) or 0)
        subset = f" (on {n_eval} training examples)" if n_eval and (n_train is None or n_eval < n_train) else ""
        row("final", f"train loss {_fmt(last['train_loss'])}{unit}, accuracy {_pct(last['train_accuracy'])}"
                     f"{subset}; "
                     f"test loss {_fmt(last['test_loss'])}{unit}, accuracy {_pct(last['test_accuracy'])} ({when})")
        best = []
        for key, pick, show in (("test_loss", np.nanargmin, lambda v: f"{_fmt(v)}{unit}"),
                                ("test_accuracy", np.nanargmax, _pct)):
            values = np.asarray(evals[key], float)
            if np.isfinite(values).any():
                i = int(pick(values))
                at = "before training" if steps[i] < 0 else f"after step {int(steps[i]) + 1}"
                best.append(f"test {key.split('_')[1]} {show(float(values[i]))} ({at})")
        if best:
            row("best", "; ".join(best))
    prov = [f"labtrain {attrs.get('labtrain_version', '?')}"]
    if attrs.get("git_revision"):
        dirty = str(attrs.get("git_dirty", "")).lower() in ("yes", "true", "1")
        prov.append(f"git {str(attrs['git_revision'])[:12]}" + (" (dirty)" if dirty else ""))
    if attrs.get("python_version"):
        prov.append(f"Python {attrs['python_version']}")
    if attrs.get("hostname"):
        prov.append(f"host {attrs['hostname']}")
    prov += [f"created {attrs.get('created', '?')}", f"seed {_fmt(attrs.get('seed'))}"]
    row("provenance", ", ".join(prov))
    instruments = [f"{k[len('instrument_'):]}: {v}" for k, v in sorted(attrs.items()) if k.startswith("instrument_")]
    if instruments:
        row("instruments", "; ".join(instruments))
    if summary.get("sweep"):
        row("sweep", str(summary["sweep"]))
    overrides = _overrides_cell(summary)
    if overrides != "-":
        row("overrides", overrides)
    n = len(events["step"])
    if not n:
        row("events", "none (no instrument faults, retries, pauses or warnings recorded)")
    else:
        kinds: dict[str, int] = {}
        for k in events["kind"]:
            kinds[str(k)] = kinds.get(str(k), 0) + 1
        row("events", f"{n}: " + ", ".join(f"{c} {k}" for k, c in sorted(kinds.items(), key=lambda kc: -kc[1])))
        shown = list(range(n)) if full or n <= SHOW_EVENTS else \
            list(range(SHOW_EVENTS // 2)) + [-1] + list(range(n - SHOW_EVENTS // 2, n))
        for i in shown:
            if i < 0:
                lines.append(f"  ... {n - 2 * (SHOW_EVENTS // 2)} more (labtrain show --full {summary['path']})")
                continue
            step = int(events["step"][i])
            where = "start" if step < 0 else f"step {step + 1}"
            clock = time.strftime("%H:%M:%S", time.localtime(float(events["time_s"][i])))
            lines.append(f"  {clock} {where:>10}  {events['level'][i]:<7} {events['kind'][i]:<10} "
                         f"{events['message'][i]}")
    if summary["status"] not in ("completed", "unreadable"):
        lines.append(f"resume with: labtrain resume {summary['path']}")
    if not full:
        lines.append(f"experiment file, overrides and snapshot: labtrain show --full {summary['path']}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from labtrain.training.export import export_run
    from labtrain.training.store import RunStore

    RunStore.open(args.run).close()  # a clean StoreError for a bad file
    _check_export_targets(Path(args.run), args.format, args.output, args.force)
    for path in export_run(args.run, args.format, args.output):
        print(path)
    return EXIT_OK


def _check_folder_target(folder: Path, option: str) -> None:
    """``folder`` is a folder, or can be created: its nearest existing parent is a writable folder."""
    from labtrain.training.launch import folder_problem

    problem = folder_problem(folder)
    if problem:
        raise UsageError(f"{option} {folder}: {problem}")


def _check_export_targets(run: Path, fmt: str, output: str | None, force: bool) -> None:
    """Refuse, before anything is written, an export into a missing folder or onto a folder, the run file
    itself or (without ``--force``) an existing file."""
    if fmt == "netcdf":
        targets = [Path(output) if output else run.with_suffix(".nc")]
    else:
        stem = Path(output) if output else run.with_suffix("")
        targets = [Path(f"{stem}-{name}.csv") for name in ("steps", "eval", "parameters")]
    for target in targets:
        folder = target.parent
        if not folder.is_dir():
            raise UsageError(f"{target}: folder {folder} " + ("is a file" if folder.exists() or any(
                p.is_file() for p in folder.parents) else "does not exist") + "; create it first or choose another "
                "-o/--output")
        if target.is_dir():
            raise UsageError(f"{target}: is a folder; give a file name with -o/--output")
        if target.exists() and target.resolve() == run.resolve():
            raise UsageError(f"{target}: is the run file itself; choose another -o/--output")
        if target.exists() and not force:
            raise UsageError(f"{target}: exists; use --force to overwrite it or choose another -o/--output")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{target}: folder {folder} is not writable")


def _gradcheck_setup(path: str, overrides: dict):
    """Setup and parameters for gradcheck: an experiment file, or a run file (at its latest checkpoint)."""
    from labtrain.build import build_setup
    from labtrain.config import load_experiment
    from labtrain.training.launch import experiment_of_run
    from labtrain.training.store import RunStore, StoreError

    if str(path).endswith(".h5"):
        with RunStore.open(path) as store:
            merged = store.overrides
            for section, values in overrides.items():
                merged.setdefault(section, {}).update(values)
            text, source = store.experiment_text, store.source
            cp = store.latest_checkpoint()
        setup = build_setup(experiment_of_run(path, text, source, merged))
        if cp is not None:
            size = setup.chip.parameter_spec.size
            if len(cp[1]) != size:
                setup.chip.close()
                raise StoreError(f"{path}: its checkpoint has {len(cp[1])} parameters, the chip built with these "
                                 f"settings {size} (--set must not change the chip's shape)")
            setup.chip.set_parameters(cp[1])
        return setup, f"at the checkpoint after step {cp[0]}" if cp else "at the initial parameters"
    return build_setup(load_experiment(path, overrides)), "at the initial parameters"


def cmd_gradcheck(args: argparse.Namespace) -> int:
    setup, where = _gradcheck_setup(args.file, _with_sets(args, {}))
    kind, chip, task = setup.kind, setup.chip, setup.task
    given = {name: value for name, value in (("beta", args.beta), ("beta_s", args.beta_s), ("eta", args.eta))
             if value is not None}
    refused = [name for name in given if name not in kind.gradcheck_options]
    if not refused:  # the options go through the schema ranges of the file's keys
        from labtrain.config import schema_for
        from labtrain.schema import check_value

        fields = schema_for(kind.name)["learning"]
        try:
            for name, value in given.items():
                if name in fields:
                    check_value(f"--{name.replace('_', '-')}: [learning]", name, value, fields[name])
        except ConfigError:
            chip.close()
            raise
    if kind.gradcheck is None or refused:
        chip.close()
        if kind.gradcheck is None:
            raise UsageError(f"[chip] type = {kind.name!r} has no gradcheck")
        takes = ", ".join("--" + o.replace("_", "-") for o in kind.gradcheck_options) or "no option"
        raise UsageError(f"--{refused[0].replace('_', '-')} does not apply to [chip] type = {kind.name!r}; it takes "
                         f"{takes} (the rule's other settings come from the experiment file)")
    try:
        x, t, n = _gradcheck_batch(args, task)
        report = kind.gradcheck(setup, x, t, args.seed, given)
        print(f"gradient fidelity {where}, batch of {n} training examples, {report.intro}")
        print(_table(report.rows, ["estimator", "setting", "cosine", "rel. error", "scale", "err. after scale",
                                   "phases", "note"]))
        print(report.note)
    finally:
        chip.close()
    return EXIT_OK


def _gradcheck_batch(args: argparse.Namespace, task) -> tuple[np.ndarray, np.ndarray, int]:
    import numpy as np

    n = len(task.x_train) if args.batch in (0, None) else min(args.batch, len(task.x_train))
    idx = np.random.default_rng(args.seed).choice(len(task.x_train), n, replace=False)
    return task.x_train[idx], task.t_train[idx], n


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        import pyqtgraph  # noqa: F401
        import tomlkit  # noqa: F401
        from PyQt6 import QtWidgets  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the GUI needs PyQt6, pyqtgraph and tomlkit ({exc}): pip install -e '.[gui]' in the "
                         f"labtrain checkout") from None
    from labtrain.gui.app import run_from_args

    return run_from_args(args)


def cmd_selftest(args: argparse.Namespace) -> int:
    """``labtrain selftest``: the chip kind's bench bring-up check; a table, an HDF5 report, exit 0/1/3."""
    import datetime as dt

    from labtrain.build import kind_of
    from labtrain.config import load_experiment
    from labtrain.instruments.selftest import InstrumentUnreachable, parse_limits, parse_twin_faults
    from labtrain.training.launch import overrides_from_cli

    try:
        thresholds = parse_limits(args.limit)
        faults = parse_twin_faults(args.twin_fault)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    exp = load_experiment(args.file, _with_sets(args, overrides_from_cli(backend=args.backend)))
    backend = exp["backend"]["kind"]
    if backend not in ("twin", "hardware"):
        raise UsageError(f"[backend] kind = {backend!r}: selftest checks a bench; use --backend twin or hardware")
    if faults and backend != "twin":
        raise UsageError(f"--twin-fault applies to --backend twin, not {backend}")
    kind = kind_of(exp)
    if kind.selftest is None:
        raise UsageError(f"[chip] type = {kind.name!r} has no selftest")
    if args.report:  # refused before the bench is touched, not after the self-test
        report_path = Path(args.report)
        if report_path.is_dir():
            raise UsageError(f"--report {report_path}: is a folder; give a file name")
        _check_folder_target(report_path.parent, "--report")
    try:
        report = kind.selftest(exp, {"thresholds": thresholds, "twin_faults": faults})
    except InstrumentUnreachable as exc:
        print(f"labtrain selftest: error: {exc}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:  # the procedure's finally has brought the bench to its safe state
        print("labtrain selftest: stopped by Ctrl-C; the bench was brought to its safe state", file=sys.stderr)
        return EXIT_STOPPED
    print(report.text())
    if args.report:
        path = Path(args.report)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(exp["run"]["out_dir"]) / f"selftest-{exp.name}-{backend}-{stamp}.h5"
    try:
        print(f"report      {report.write_hdf5(path)}")
    except OSError as exc:
        print(f"labtrain selftest: error: cannot write the report {path}: {exc}", file=sys.stderr)
        return EXIT_RESOURCE
    return report.exit_code


def cmd_characterize(args: argparse.Namespace) -> int:
    from labtrain.kinds.dnpu.characterize import characterize_cli

    return characterize_cli(args)


# ---------------------------------------------------------------- parser
def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The ``labtrain`` argument parser.  ``lazy``: options of subcommands whose modules are heavy are
    added only when that subcommand is parsed or its help printed (the console script); by default
    every option is there (for documentation and tests that walk the parser)."""
    p = _Parser(prog="labtrain", description="Train physical learning machines on a chip or "
                "its simulated twin.")
    p.add_argument("--version", action="version", version=f"labtrain {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="train from an experiment file")
    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("--backend", choices=BACKENDS, help="override [backend] kind")
    r.add_argument("--epochs", type=_positive_int, help="override [run] epochs")
    r.add_argument("--seed", type=_nonnegative_int, help="override [run] seed")
    r.add_argument("--out", help="override [run] out_dir (folder for the run file)")
    _add_set(r)
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    r = sub.add_parser("resume", help="continue a stopped or crashed run from its run file")
    r.add_argument("run", help="run file (.h5)")
    r.add_argument("--epochs", type=_positive_int, help="new total number of epochs")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_resume)

    r = sub.add_parser("check", help="validate an experiment file (and build its network and task) without running")
    r.add_argument("file")
    r.add_argument("--backend", choices=BACKENDS, help="override [backend] kind")
    r.add_argument("--epochs", type=_positive_int, help="override [run] epochs (as run takes it)")
    r.add_argument("--seed", type=_nonnegative_int, help="override [run] seed (as run takes it)")
    r.add_argument("--out", help="override [run] out_dir (as run takes it; checked, nothing written)")
    _add_set(r)
    r.set_defaults(func=cmd_check)

    r = sub.add_parser("devices", help="list VISA resources, NI devices and serial ports")
    r.set_defaults(func=cmd_devices)

    r = sub.add_parser("runs", help="list run files")
    r.add_argument("dir", nargs="?", default="runs", help="folder to search (default: runs)")
    r.add_argument("--json", action="store_true", help="every run's summary (with its overrides) as JSON")
    r.set_defaults(func=cmd_runs)

    r = sub.add_parser("repair", help="truncate a damaged run file to its last consistent state (and convert "
                       "files of the previous format)")
    r.add_argument("run", help="run file (.h5)")
    r.add_argument("--force", action="store_true", help="take over a lease held by a process on another host "
                   "(only when you know it is gone)")
    r.set_defaults(func=cmd_repair)

    r = sub.add_parser("show", help="print a run's summary: status, kind, rule, steps, final and best metrics, "
                       "provenance, instrument faults and other events (--full: also the experiment file and the "
                       "whole snapshot)")
    r.add_argument("run")
    r.add_argument("--full", action="store_true", help="every event, the experiment file, overrides and the whole "
                   "snapshot")
    r.set_defaults(func=cmd_show)

    r = sub.add_parser("export", help="export a run to netCDF or CSV")
    r.add_argument("run")
    r.add_argument("--format", choices=("netcdf", "csv"), default="netcdf")
    r.add_argument("-o", "--output", help="output file (netcdf) or path stem (csv); default: next to the run")
    r.add_argument("--force", action="store_true", help="overwrite existing output files")
    r.set_defaults(func=cmd_export)

    r = sub.add_parser("gradcheck", help="compare every supported gradient estimator with the exact gradient")
    r.add_argument("file", help="experiment file, or a run file (.h5: uses its latest checkpoint)")
    r.add_argument("--beta-s", type=_positive_float, help="EP nudge (S); default: the file's beta_s")
    r.add_argument("--eta", type=_positive_float, help="CL clamp fraction; default: the file's eta")
    r.add_argument("--beta", type=_positive_float,
                   help="xy / nonreciprocal nudge (dimensionless); default: the file's beta")
    r.add_argument("--batch", type=_nonnegative_int, default=0, help="examples (0 = whole training set)")
    r.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the batch choice and read noise")
    _add_set(r)
    r.set_defaults(func=cmd_gradcheck)

    r = sub.add_parser("sweep", help="run an experiment over axes of overridden keys (seeds x learning rates x "
                       "...) on Dask; resume a sweep; print its summary", description="Run a sweep: a sweep file "
                       "([sweep] table, docs/sweeps.md) or an experiment file with --set axes.  The sweep folder "
                       "holds manifest.json, runs/ (one run file per member) and summary.nc.")
    r.add_argument("file", nargs="?", help="sweep file ([sweep] table) or experiment file")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=V[,V...]",
                   help="an axis: values separated by commas, or an integer range start:stop[:step] (stop "
                        "excluded); one value: the same for every member (repeatable)")
    r.add_argument("--zip", action="append", metavar="KEY,KEY[,...]",
                   help="swept keys that move together (one dimension) instead of their product (repeatable)")
    r.add_argument("--cluster", metavar="WHERE", help="local (default: a local Dask cluster), serial (this "
                   "process, no Dask; the only choice for hardware), slurm or pbs (dask-jobqueue, job options in "
                   "[sweep.slurm]/[sweep.pbs]), or a Dask scheduler address host:port")
    r.add_argument("--workers", type=_positive_int, help="worker processes (local; default: one per core) or "
                   "jobs (slurm/pbs)")
    r.add_argument("--out", help="sweep folder (default: [sweep] out_dir/name, runs/<name> for an experiment file)")
    r.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR: completed members are skipped, "
                   "stopped or crashed ones continue from their last checkpoint")
    r.add_argument("--summary", metavar="DIR", help="print the sweep's table (mean +- std over seeds) and write "
                   "DIR/summary.nc")
    r.add_argument("--json", action="store_true", help="with --summary: every member as JSON")
    r.add_argument("--dry-run", action="store_true", help="check every member and list them; run nothing")
    r.add_argument("--force", action="store_true", help="with --resume: take over a sweep whose driver is "
                   "recorded on another host (only when you know it is gone)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_sweep)

    r = sub.add_parser("selftest", help="bench bring-up check: every AO ramped and read back on the wired AI "
                       "channels, pots stepped, a lock-in tone; a pass/fail table and an HDF5 report",
                       description="Bench self-test within the file's safety limits (docs/hardware.md, 'Bench "
                       "self-test').  Exit codes: 0 every check passed, 1 a check failed (the table says which), "
                       "2 bad input, 3 an instrument did not answer, 130 stopped by Ctrl-C (bench in its safe state).")
    r.add_argument("file", help="experiment file (TOML)")
    r.add_argument("--backend", choices=("twin", "hardware"), help="override [backend] kind")
    r.add_argument("--report", metavar="PATH", help="HDF5 report (default: [run] out_dir/selftest-<name>-"
                   "<backend>-<time>.h5)")
    r.add_argument("--limit", action="append", metavar="NAME=VALUE", help="a pass/fail threshold, e.g. "
                   "noise_max_v=0.002 (repeatable; names in docs/hardware.md)")
    r.add_argument("--twin-fault", action="append", metavar="FAULT[=ARG]", help="twin only: inject a bench fault "
                   "to see how it is reported: dead_ai=CH, swap_ai=CH1,CH2, dead_ao=CH, stuck_pot=N, no_lockin "
                   "(repeatable)")
    _add_set(r)
    r.set_defaults(func=cmd_selftest)

    r = sub.add_parser("characterize", help="sample a DNPU with incommensurate triangle waves and fit a surrogate "
                       "twin (an HDF5 file for [chip] model = \"surrogate\")", populate=_characterize_arguments)
    if not lazy:
        r.populate()
    r.set_defaults(func=cmd_characterize)

    from labtrain.gui import add_arguments as add_gui_arguments

    r = sub.add_parser("gui", help="live-plotting window: edit, run, pause, stop and browse experiments")
    add_gui_arguments(r)
    r.set_defaults(func=cmd_gui)
    return p


def _characterize_arguments(parser: argparse.ArgumentParser) -> None:
    from labtrain.kinds.dnpu.characterize import add_characterize_arguments

    add_characterize_arguments(parser)


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one key of the experiment file, e.g. learning.learning_rate=0.03 "
                             "(TOML value; checked like the file; repeatable)")


def _number(kind, check, what):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
_nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")


def _bug_report(exc: BaseException) -> str:
    """``Type: first line of the message (at file:line in function)``, at the innermost labtrain frame."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}labtrain{os.sep}" in f.filename] or frames
    where = ""
    if ours:
        f = ours[-1]
        name = f.filename.split(f"{os.sep}labtrain{os.sep}", 1)[-1]
        where = f" (at labtrain/{name}:{f.lineno} in {f.name})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    run_file = getattr(exc, "labtrain_run_file", None)
    after = f"; the chip is in its safe state, run file {run_file} (status failed)" if run_file else ""
    return f"{type(exc).__name__}{': ' + text[:300] if text else ''}{where}{after}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labtrain`` console script.

    Ctrl-C before a run's own handler is in place (while the command imports its modules, builds the
    chip, opens files) prints one line and exits 130 -- no traceback.
    """
    command = "labtrain"
    try:
        args = build_parser(lazy=True).parse_args(argv)
        command = f"labtrain {args.command}"
        try:
            with _log_to_stderr(args):
                return args.func(args)
        except Exception as exc:
            # The run store's errors are classified without importing it here (h5py): a StoreError can
            # only come from a command that imported labtrain.training.store.
            store = sys.modules.get("labtrain.training.store")
            if store is not None and isinstance(exc, store.StoreWriteError):  # a resource fault, not bad input
                print(f"{command}: error: {exc}", file=sys.stderr)
                return EXIT_RESOURCE
            if isinstance(exc, (ConfigError, UsageError)) or (store is not None and isinstance(exc, store.StoreError)):
                print(f"{command}: error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            if isinstance(exc, BrokenPipeError):  # e.g. `labtrain show RUN | head`: stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_OK
            if os.environ.get("LABTRAIN_DEBUG"):
                raise
            # Anything else is a bug: one line (what and where) instead of a traceback; every command closes its
            # chip (safe state) and run file in its own finally blocks before the exception reaches here.
            print(f"{command}: internal error: {_bug_report(exc)}; please report this bug (LABTRAIN_DEBUG=1 shows "
                  "the traceback)", file=sys.stderr)
            return EXIT_FAILED
    except KeyboardInterrupt:  # a terminal shows "^C" without a newline: start the one line below it
        print(f"{chr(10) if sys.stderr.isatty() else ''}{command}: stopped by Ctrl-C", file=sys.stderr)
        return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
