"""Start a run from an experiment file, or resume one from its run file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from labtrain.build import Setup, build_setup
from labtrain.config import ConfigError, Experiment, experiment_from_text, load_experiment
from labtrain.training.run import Listener, Run, run_file_path
from labtrain.training.store import RunStore, RunUnits, StoreError

__all__ = ["prepare_run", "prepare_resume", "open_run", "overrides_from_cli", "experiment_of_run", "check_out_dir"]

log = logging.getLogger(__name__)


def overrides_from_cli(backend: str | None = None, epochs: int | None = None, seed: int | None = None,
                       out: str | None = None) -> dict[str, dict[str, Any]]:
    """Experiment-file overrides from the ``--backend/--epochs/--seed/--out`` options."""
    o: dict[str, dict[str, Any]] = {}
    if backend is not None:
        o.setdefault("backend", {})["kind"] = backend
    if epochs is not None:
        o.setdefault("run", {})["epochs"] = epochs
    if seed is not None:
        o.setdefault("run", {})["seed"] = seed
    if out is not None:
        o.setdefault("run", {})["out_dir"] = out
    return o


def _make_run(setup: Setup, store: RunStore | None, listeners: list[Listener]) -> Run:
    r = setup.experiment["run"]
    return Run(setup.chip, setup.estimator, setup.optimizer, setup.task, epochs=r["epochs"],
               batch_size=r["batch_size"], seed=r["seed"], mask=setup.mask, eval_every=r["eval_every"],
               eval_train_examples=r.get("eval_train_examples", 0),
               checkpoint_every=r["checkpoint_every"], record_parameters_every=r["record_parameters_every"],
               maps=setup.maps, record_maps_every=r.get("record_maps_every", 0), store=store, listeners=listeners)


def _snapshot(setup: Setup) -> dict:
    exp = setup.experiment
    return {"chip": setup.chip.snapshot(), "learning": setup.estimator.describe() | {
        "optimizer": setup.optimizer.name, **{k: exp["learning"][k] for k in
                                              ("learning_rate", "update_fraction", "mask_mode")}},
            "run": dict(exp["run"]), "experiment": exp.sections}


def check_out_dir(exp: Experiment) -> Path:
    """``[run] out_dir`` can take a new run file: an existing writable folder, or a path whose nearest
    existing parent is one (created when the run starts).  Creates nothing; raises :class:`ConfigError`."""
    out_dir = exp["run"]["out_dir"]
    where = f"{exp.path or '<experiment>'}: [run] out_dir = {out_dir!r}"
    if not str(out_dir).strip():
        raise ConfigError(f"{where}: empty; give the folder for run files")
    folder = Path(out_dir).expanduser()
    problem = folder_problem(folder)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return folder


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (``None`` when they can): its nearest existing parent is a file,
    or a folder that is not writable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"folder {existing} is not writable"
    return None


def _make_out_dir(exp: Experiment) -> None:
    folder = check_out_dir(exp)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{exp.path or '<experiment>'}: [run] out_dir = {exp['run']['out_dir']!r}: cannot create "
                          f"the folder ({exc.strerror})") from None


def prepare_run(experiment: str | Path | Experiment, overrides: dict | None = None,
                listeners: list[Listener] | None = None, store: bool = True,
                attrs: dict[str, Any] | None = None) -> Run:
    """Validate, build and create the run file; the returned :class:`Run` is ready to ``run()``.

    ``attrs``: extra flat root attributes of the run file (a sweep member's sweep, index and swept
    keys; see :meth:`RunStore.create`).

    The run file (owned by this process until the run ends or :meth:`Run.close`) has room for the
    whole run.  Raises :class:`ConfigError` (nothing built, no file written) on bad input and
    :class:`~labtrain.training.store.StoreWriteError` if the disk cannot hold the file (none is left).
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, overrides)
    if store:
        check_out_dir(exp)
    setup = build_setup(exp)
    run_store = None
    if store:
        try:
            _make_out_dir(exp)
        except ConfigError:
            setup.chip.close()
            raise
        probe = _make_run(setup, None, [])
        while True:
            try:
                run_store = RunStore.create(
                    run_file_path(exp["run"]["out_dir"], exp.name), name=exp.name, experiment_text=exp.text,
                    overrides=exp.overrides, source=str(exp.path.resolve()) if exp.path else "",
                    snapshot=_snapshot(setup), task=setup.task.describe(), rule=exp["learning"]["rule"],
                    backend=exp["backend"]["kind"], seed=exp["run"]["seed"], total_steps=probe.total_steps,
                    initial_parameters=setup.chip.get_parameters(), rows=probe.planned_rows(), attrs=attrs,
                    units=RunUnits.of(setup.chip, setup.estimator))
                log.info("%s: new run (%s, backend %s, rule %s, %d steps)", run_store.path, exp.name,
                         exp["backend"]["kind"], exp["learning"]["rule"], probe.total_steps)
                break
            except FileExistsError:  # another run took the name in the same second: take the next one
                if not Path(exp["run"]["out_dir"]).is_dir():
                    setup.chip.close()
                    raise ConfigError(f"{exp.path or '<experiment>'}: [run] out_dir = {exp['run']['out_dir']!r}: "
                                      "not a folder") from None
                continue
            except BaseException:
                setup.chip.close()
                raise
    return _make_run(setup, run_store, list(listeners or []))


def experiment_of_run(path: str | Path, text: str, source: str, overrides: dict) -> Experiment:
    """The experiment stored in the run file ``path`` (its text, source and overrides), validated; a
    :class:`ConfigError` names the run file (it is what was given), not the source it was made from."""
    try:
        return experiment_from_text(text, Path(source) if source else None, overrides)
    except ConfigError as exc:
        message, prefix = str(exc), f"{source or '<experiment>'}: "
        if message.startswith(prefix):
            message = message[len(prefix):]
        raise ConfigError(f"{path}: the experiment stored in the run file does not build: {message}") from None


def prepare_resume(path: str | Path, listeners: list[Listener] | None = None,
                   epochs: int | None = None) -> Run:
    """Reopen a stopped or crashed run at its latest checkpoint.

    Everything is checked before the file is touched: its status, the stored experiment (with
    ``epochs``), the setup it builds and that ``epochs`` leaves steps to do.  Then the run file's lease
    is taken (:class:`~labtrain.training.store.LeaseError` if a live process holds it; a dead
    process's lease is taken over).  ``epochs`` extends (or sets) the run's length.  Raises
    :class:`StoreError` for an unusable file and :class:`ConfigError` if its experiment no longer
    builds.
    """
    with RunStore.open(path) as peek:  # refused without writing anything
        if peek.attrs["status"] == "completed" and epochs is None:
            raise StoreError(f"{path}: run already completed (use --epochs to train longer)")
        overrides, text, source = peek.overrides, peek.experiment_text, peek.source
        checkpoint = peek.latest_checkpoint() if peek.version == 2 else None  # format 1: converted by "r+"
    if epochs is not None:
        overrides.setdefault("run", {})["epochs"] = epochs
    exp = experiment_of_run(path, text, source, overrides)
    setup = build_setup(exp)
    store = None
    try:
        done = checkpoint[0] + 1 if checkpoint is not None else 0
        probe = _make_run(setup, None, [])
        if epochs is not None and probe.total_steps <= done:
            raise StoreError(f"{path}: --epochs {epochs} is {probe.total_steps} steps, and {done} are done already; "
                             f"give more epochs to train longer")
        if checkpoint is not None and len(checkpoint[1]) != setup.chip.parameter_spec.size:
            raise StoreError(f"{path}: checkpoint has {len(checkpoint[1])} parameters, the chip "
                             f"{setup.chip.parameter_spec.size}")
        store = RunStore.open(path, "r+")
        if store.attrs["status"] == "completed" and epochs is None:
            raise StoreError(f"{path}: run already completed (use --epochs to train longer)")
        checkpoint = store.latest_checkpoint()
        run = _make_run(setup, store, list(listeners or []))
        if checkpoint is not None:
            step, params, opt_state = checkpoint
            if len(params) != setup.chip.parameter_spec.size:
                raise StoreError(f"{path}: checkpoint has {len(params)} parameters, the chip "
                                 f"{setup.chip.parameter_spec.size}")
            store.truncate_after(step)
            ev = store.table("eval")
            run.restore(step, params, opt_state, step_loss=list(store.table("steps")["loss"]),
                        evals=[{k: ev[k][i] for k in ev} for i in range(len(ev["step"]))])
        else:
            store.truncate_after(-2)
        store.set_total_steps(run.total_steps)
        log.info("%s: resuming after step %d of %d", path, run.next_step, run.total_steps)
        return run
    except BaseException:
        if store is not None:
            store.close()
        setup.chip.close()
        raise


def open_run(source: str | Path | Experiment, overrides: dict | None = None, *,
             listeners: list[Listener] | None = None, epochs: int | None = None, store: bool = True) -> Run:
    """A :class:`Run` ready to ``run()``, for notebooks and scripts; use it as a context manager.

    ``source`` is an experiment file (or :class:`~labtrain.config.Experiment`): a new run, as
    :func:`prepare_run` (``overrides`` as ``{"run": {"epochs": 1}}``; ``store=False``: no run file).  A run
    file (``.h5``) is resumed from its last checkpoint, as :func:`prepare_resume` (``epochs`` extends it).

    The run owns its run file and chip until it is closed; ``with`` closes both (and releases the run
    file's lease, so ``labtrain resume`` or :func:`load_run <labtrain.training.export.load_run>` work
    on it afterwards)::

        with labtrain.open_run("examples/xor_resistor_cl.toml", {"run": {"epochs": 5}}) as run:
            result = run.run()
        ds = labtrain.load_run(result.path)
    """
    if not isinstance(source, Experiment) and Path(source).suffix == ".h5":
        if overrides:
            raise ValueError("open_run: a run file is resumed as it was recorded; overrides apply to new runs "
                             "(epochs= extends a resumed run)")
        return prepare_resume(source, listeners=listeners, epochs=epochs)
    if epochs is not None:
        overrides = {**(overrides or {})}
        overrides["run"] = {**overrides.get("run", {}), "epochs": int(epochs)}
    if isinstance(source, Experiment) and overrides:
        raise ValueError("open_run: pass overrides with an experiment file's path, not with an Experiment")
    return prepare_run(source, overrides, listeners=listeners, store=store)
