"""The training loop: epochs, batches, evaluation, checkpoints, pause/stop, events.

A :class:`Run` drives a chip with a gradient estimator and an optimiser over a
task.  It is seeded and reproducible: the shuffling of epoch ``e`` and the
read noise / update mask of step ``k`` are drawn from ``(seed, e)`` and
``(seed, k)``, so a run resumed from its checkpoint continues exactly as the
uninterrupted run would have.  Stop, pause and resume take effect at step
boundaries only.  Whatever happens -- completion, stop, exception, Ctrl-C --
the chip ends in its safe state and the run file records how the run ended.
An instrument fault that survives the chip's retries pauses the run (status
``paused``, the reason in the run file); ``labtrain resume`` continues it.

Events (:class:`Event`) are the one data path: the run file
(:class:`~labtrain.training.store.RunStore` is a listener), the CLI progress
bar and the GUI all subscribe to them; the loop itself never writes a file.
What the layers below log while the run trains -- every warning or error of a
``labtrain.*`` logger, and every record marked ``extra={"labtrain_event":
kind}`` (instrument retries, faults, safety ramps) -- becomes a ``log`` event
(the run file's ``/events`` table, ``labtrain show``, the GUI log); so do the
run's own pauses, resumptions, stops and failures.
A run holds its run file and chip until :meth:`Run.close` (or the end of a
``with`` block).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labtrain.chip.base import Chip
from labtrain.training.optim import Optimizer
from labtrain.instruments.ports import PortError
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.masks import UpdateMask
from labtrain.training.store import RunStore, StoreWriteError
from labtrain.training.tasks import Task, accuracy

__all__ = ["Run", "Event", "RunResult", "Listener", "run_file_path", "EVENT_ATTR"]

log = logging.getLogger(__name__)

#: Random streams of a run, each seeded by ``[seed, stream, ...]``: 3 shuffles an epoch, 4 reseeds the chip for a
#: step, 5 for an evaluation, 6 picks the train-evaluation subset, 7 augments a step's training inputs.
AUGMENT_STREAM = 7

EVENT_ATTR = "labtrain_event"
"""Log-record attribute (``logger.info(..., extra={EVENT_ATTR: kind})``) that makes a record of any level a
run event of that kind (``retry``, ``fault``, ``safe_state``, ...) -- if its logger is enabled for that level
(warnings are by default; the CLI and the GUI enable INFO)."""


@dataclass
class Event:
    """Something that happened in a run.

    ``kind`` is one of ``start step eval maps epoch checkpoint pause resume stop``; ``data``
    carries the numbers:

    - ``start``: ``total_steps``, ``resumed_from``, ``rows`` (planned rows per table: ``steps``,
      ``eval``, ``history``, ``maps``), ``maps_attrs`` (unit/doc per map name);
    - ``step``: ``loss``, ``time_s``, ``n_phases``, ``parameters`` (after the update),
      ``record_parameters`` (part of the stored history), ``output_v``, ``targets_v``, ``gradient``,
      ``inputs``;
    - ``eval``: ``step``, ``epoch``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``;
    - ``maps``: one array per map name;
    - ``checkpoint``: ``parameters``, ``optimizer_state`` (everything a resume needs);
    - ``epoch``: ``epoch``, ``epochs``;
    - ``stop``: ``status``, ``message``, ``parameters``;
    - ``log``: ``kind`` (``retry fault safe_state pause resume stop error warning ...``), ``level``
      (``INFO WARNING ERROR``), ``source`` (the logger), ``message``, ``time_s`` (Unix time): something
      logged while the run trained (see the module docstring), or the run's own pause/resume/stop.
    """

    kind: str
    step: int
    epoch: int
    data: dict[str, Any] = field(default_factory=dict)
    time_s: float = field(default_factory=time.time)


Listener = Callable[[Event], None]


@dataclass
class RunResult:
    """How a run ended, with its metrics."""

    status: str
    steps_done: int
    total_steps: int
    parameters: np.ndarray
    step_loss: list[float]
    evals: list[dict[str, float]]
    path: Path | None
    message: str = ""

    @property
    def final(self) -> dict[str, float]:
        """The last evaluation (empty if none)."""
        return self.evals[-1] if self.evals else {}


class _EventCapture(logging.Handler):
    """Collects the run events among the records of ``labtrain.*`` loggers made on one thread.

    An event is a record marked with :data:`EVENT_ATTR` or of level WARNING and above.  Records are only
    queued here (the run emits them at its next event, so a write never happens inside a logging call);
    where no other handler would show a warning, it goes to :data:`logging.lastResort` as it would have
    without this handler.
    """

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.DEBUG)
        self.thread_id = thread_id
        self.pending: collections.deque[dict[str, Any]] = collections.deque()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id or getattr(record, "labtrain_direct", False):
            return
        kind = getattr(record, EVENT_ATTR, None)
        if kind is None and record.levelno < logging.WARNING:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 -- a bad format string must not break the run
            message = str(record.msg)
        self.pending.append({"kind": str(kind or record.levelname.lower()), "level": record.levelname,
                             "source": record.name, "message": message, "time_s": record.created})
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and not self._others_handle(record):
            last.handle(record)

    def _others_handle(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self and record.levelno >= h.level for h in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False


def run_file_path(out_dir: str | Path, name: str) -> Path:
    """A new, unused run-file path ``out_dir/name-YYYYmmdd-HHMMSS[-k].h5``."""
    base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base.with_suffix(".h5"), 1
    while path.exists():
        path, k = Path(f"{base}-{k}.h5"), k + 1
    return path


class Run:
    """Train ``chip`` on ``task`` with ``estimator`` and ``optimizer``.

    Parameters
    ----------
    chip, estimator, optimizer, task
        The parts (see :mod:`labtrain.build` to make them from an experiment file).
    epochs : int
        Passes over the training set.
    batch_size : int
        Examples per step; 0 means the full training set.
    seed : int
        Seed of shuffling, masks and read noise.
    mask : UpdateMask, optional
        Partial updates.
    eval_every : int
        Evaluate every N steps (0: at the end of every epoch).
    eval_train_examples : int
        Evaluate the train loss and accuracy on a fixed subset of this many training examples, drawn once
        from the run's seed (0: all of them); the test set is always evaluated in full.
    checkpoint_every : int
        Write a resumable checkpoint every N steps (and always at the end).
    record_parameters_every : int
        Store the parameter vector every N steps (0: never).
    maps : map recorder, optional
        Spatial maps (:class:`labtrain.kinds.xy.maps.XYMapRecorder`): ``record(step)`` returns a dict of
        arrays, recorded before training and after every ``record_maps_every``-th step, stored in the
        run file and sent as ``maps`` events.
    record_maps_every : int
        Record ``maps`` every N steps (0: never).
    store : RunStore, optional
        Run file to write: subscribed as the first listener.  Without one the run keeps its
        metrics in memory only.
    listeners : list of callables
        Receive every :class:`Event`.

    Notes
    -----
    A run is a context manager: ``with prepare_run(file) as run: run.run()`` releases the run
    file and the chip at the end (:meth:`close`).
    """

    def __init__(self, chip: Chip, estimator: GradientEstimator, optimizer: Optimizer, task: Task, *,
                 epochs: int = 10, batch_size: int = 0, seed: int = 0, mask: UpdateMask | None = None,
                 eval_every: int = 0, eval_train_examples: int = 0, checkpoint_every: int = 1,
                 record_parameters_every: int = 1, maps: Any = None, record_maps_every: int = 0,
                 store: RunStore | None = None, listeners: list[Listener] | None = None) -> None:
        estimator.check(chip)
        if task.n_inputs != chip.n_inputs or task.n_outputs != chip.n_outputs:
            raise ValueError(f"task has {task.n_inputs} inputs / {task.n_outputs} outputs, chip has "
                             f"{chip.n_inputs} / {chip.n_outputs}")
        self.chip, self.estimator, self.optimizer, self.task = chip, estimator, optimizer, task
        self.epochs, self.seed = int(epochs), int(seed)
        n = len(task.x_train)
        self.batch_size = n if batch_size in (0, None) or batch_size > n else int(batch_size)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.mask = mask
        self.eval_every = int(eval_every)
        #: training examples the train loss / accuracy is evaluated on (all, or a fixed seeded subset)
        self.eval_train_index = np.arange(n) if not eval_train_examples or eval_train_examples >= n else \
            np.sort(np.random.default_rng([self.seed, 6]).choice(n, int(eval_train_examples), replace=False))
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.record_parameters_every = int(record_parameters_every)
        self.maps = maps if record_maps_every else None
        self.record_maps_every = int(record_maps_every) if maps is not None else 0
        self.store = store
        self.listeners: list[Listener] = ([store] if store is not None else []) + list(listeners or [])
        self.next_step = 0
        self.step_loss: list[float] = []
        self.evals: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._last_checkpoint = -1
        self._stop_message = ""
        self._capture: _EventCapture | None = None

    # --------------------------------------------------------------- control
    def request_stop(self, message: str = "") -> None:
        """Stop at the next step boundary (thread- and signal-safe); ``message`` is recorded with the status."""
        self._stop_message = message or self._stop_message
        self._stop.set()
        self._pause.clear()

    def request_pause(self) -> None:
        """Pause at the next step boundary; the chip waits in its safe state."""
        self._pause.set()

    def request_resume(self) -> None:
        """Continue after a pause."""
        self._pause.clear()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def emit(self, kind: str, step: int, data: dict[str, Any] | None = None) -> None:
        if kind != "log":
            self._emit_logged(step)  # what was logged since the last event comes first
        event = Event(kind, step, step // self.steps_per_epoch if self.steps_per_epoch else 0, data or {})
        for listener in self.listeners:
            listener(event)

    def _emit_logged(self, step: int) -> None:
        while self._capture is not None and self._capture.pending:
            self.emit("log", step, self._capture.pending.popleft())

    def note(self, kind: str, step: int, message: str, level: int = logging.INFO) -> None:
        """Log ``message`` (logger ``labtrain.training.run``) and send it as a ``log`` event of ``kind``."""
        self._emit_logged(step)
        log.log(level, message, extra={EVENT_ATTR: kind, "labtrain_direct": True})
        self.emit("log", step, {"kind": kind, "level": logging.getLevelName(level), "source": log.name,
                                "message": message, "time_s": time.time()})

    def planned_rows(self) -> dict[str, int]:
        """Rows the run file needs for the whole run: steps, evaluations, history rows, map recordings."""
        total = self.total_steps
        if self.eval_every:
            evals = total // self.eval_every + (1 if total % self.eval_every else 0)
        else:
            evals = self.epochs
        history = total // self.record_parameters_every if self.record_parameters_every else 0
        maps = 1 + total // self.record_maps_every if self.record_maps_every else 0
        return {"steps": total, "eval": 1 + evals, "history": history, "maps": maps}

    def close(self) -> None:
        """Release the run file (closing it, and its lease) and the chip.  Idempotent."""
        if self.store is not None:
            self.store.close()
        self.chip.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- training
    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of global step ``step`` (shuffled per epoch, augmented when the task augments;
        seeded)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, 3, epoch]).permutation(len(self.task.x_train))
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        x = self.task.training_inputs(idx, np.random.default_rng([self.seed, AUGMENT_STREAM, step]))
        return x, self.task.t_train[idx]

    def evaluate(self, step: int) -> dict[str, float]:
        """Loss and accuracy on the train set (or its subset :attr:`eval_train_index`) and the test set,
        measured on the chip."""
        self._reseed(step, 5)
        t, idx = self.task, self.eval_train_index
        tr = self.chip.measure(t.x_train[idx])
        te = self.chip.measure(t.x_test)
        loss = self.estimator.measurement_loss
        return {
            "step": step, "epoch": step // self.steps_per_epoch,
            "train_loss": loss(tr, t.t_train[idx]),
            "train_accuracy": accuracy(t, tr.output_v, None if t.y_train is None else t.y_train[idx]),
            "test_loss": loss(te, t.t_test), "test_accuracy": accuracy(t, te.output_v, t.y_test),
        }

    def record_maps(self, step: int) -> None:
        """Record the spatial maps after ``step`` (-1: before training) and send them to the listeners."""
        self.emit("maps", step, dict(self.maps.record(step)))

    def _reseed(self, step: int, stream: int) -> None:
        self.chip.reseed([self.seed, stream, step + 1])

    def _one_step(self, step: int) -> float:
        x, t = self.batch(step)
        self._reseed(step, 4)
        t0 = time.perf_counter()
        est = self.estimator.estimate(self.chip, x, t)
        mask = self.mask.at_step(step, est.gradient) if self.mask is not None else None
        params = self.optimizer.apply(self.chip, est.gradient, mask)
        elapsed = time.perf_counter() - t0
        self.step_loss.append(est.loss)
        record = bool(self.record_parameters_every) and (step + 1) % self.record_parameters_every == 0
        self.emit("step", step, {"loss": est.loss, "time_s": elapsed, "n_phases": est.n_phases, "output_v": est.output_v,
                                 "targets_v": t, "parameters": params, "record_parameters": record,
                                 "gradient": est.gradient, "inputs": x})
        if self.record_maps_every and (step + 1) % self.record_maps_every == 0:
            self.record_maps(step)
        return est.loss

    def _checkpoint(self, step: int) -> None:
        if step > self._last_checkpoint:
            self._last_checkpoint = step
            self.emit("checkpoint", step, {"parameters": self.chip.get_parameters(),
                                           "optimizer_state": self.optimizer.state_dict()})

    def _eval_due(self, step: int) -> bool:
        if self.eval_every:
            return (step + 1) % self.eval_every == 0 or step + 1 == self.total_steps
        return (step + 1) % self.steps_per_epoch == 0

    def run(self) -> RunResult:
        """Train until done or stopped.  The chip always ends in its safe state.

        An exception (other than an instrument fault, which pauses the run) is re-raised after the
        chip is safe and the listeners got the ``stop`` event with status ``failed``; a run-file write
        fault (disk full, ...) raises :class:`~labtrain.training.store.StoreWriteError`.
        """
        status, message, error = "running", "", None
        self._capture = capture = _EventCapture(threading.get_ident())
        logging.getLogger("labtrain").addHandler(capture)
        shown = warnings.showwarning

        def show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            """A Python warning shown on the run's thread (e.g. a lock-in's quadrature check) is an event too."""
            if threading.get_ident() == capture.thread_id:
                capture.pending.append({"kind": "warning", "level": "WARNING", "source": f"warnings.{category.__name__}",
                                        "message": str(message), "time_s": time.time()})
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show_warning
        try:
            try:
                self.emit("start", self.next_step, {"total_steps": self.total_steps, "resumed_from": self.next_step,
                                                    "rows": self.planned_rows(),
                                                    "maps_attrs": getattr(self.maps, "attrs", {})})
                if self.next_step > 0:
                    self.note("resume", self.next_step, f"resumed after step {self.next_step} of {self.total_steps}")
                if self.next_step == 0 and not self.evals:
                    self.evals.append(self.evaluate(-1) | {"step": -1, "epoch": -1})
                    self.emit("eval", -1, self.evals[-1])
                    if self.record_maps_every:
                        self.record_maps(-1)
                while self.next_step < self.total_steps:
                    if self._stop.is_set():
                        break
                    if self._pause.is_set():
                        self._wait_while_paused()
                        continue
                    step = self.next_step
                    self._one_step(step)
                    self.next_step = step + 1
                    if self._eval_due(step):
                        self.evals.append(self.evaluate(step))
                        self.emit("eval", step, self.evals[-1])
                    if (step + 1) % self.checkpoint_every == 0:
                        self._checkpoint(step)
                    if (step + 1) % self.steps_per_epoch == 0:
                        self.emit("epoch", step, {"epoch": step // self.steps_per_epoch, "epochs": self.epochs})
                status = "completed" if self.next_step >= self.total_steps else "stopped"
                message = "" if status == "completed" else self._stop_message
            except KeyboardInterrupt:
                status, message = "stopped", self._stop_message or "interrupted (Ctrl-C)"
            except PortError as exc:
                # An instrument kept failing after the chip's retries: pause in the safe state, resumable.
                status, message = "paused", f"instrument fault: {exc}"
            except StoreWriteError as exc:
                status, message, error = "failed", str(exc), exc
            except Exception as exc:
                status, message, error = "failed", f"{type(exc).__name__}: {exc}", exc
        finally:
            try:
                self.chip.safe_state()
                try:
                    if self.next_step > 0:
                        self._checkpoint(self.next_step - 1)
                except StoreWriteError as exc:
                    if error is None:
                        status, message, error = "failed", str(exc), exc
                self._note_end(status, message)
                self.emit("stop", self.next_step, {"status": status, "message": message,
                                                   "parameters": self.chip.get_parameters()})
            finally:
                logging.getLogger("labtrain").removeHandler(capture)
                if warnings.showwarning is show_warning:
                    warnings.showwarning = shown
                self._capture = None
        if error is not None:
            raise error
        return RunResult(status, self.next_step, self.total_steps, self.chip.get_parameters(), self.step_loss,
                         self.evals, self.store.path if self.store else None, message)

    def _note_end(self, status: str, message: str) -> None:
        """The run's end as a ``log`` event, unless it simply completed."""
        where = f"after step {self.next_step} of {self.total_steps}"
        try:
            if status == "paused":
                self.note("pause", self.next_step, f"paused {where}, chip in its safe state ({message}); resume "
                          f"continues from the last checkpoint", logging.WARNING)
            elif status == "stopped":
                self.note("stop", self.next_step, f"stopped {where}" + (f" ({message})" if message else ""))
            elif status == "failed":
                self.note("error", self.next_step, f"failed {where}: {message}", logging.ERROR)
        except StoreWriteError:
            pass  # the run file refuses writes: its final status is still attempted by the stop event

    def _wait_while_paused(self) -> None:
        self.chip.safe_state()
        self.note("pause", self.next_step, f"paused before step {self.next_step + 1} (requested); chip in its "
                  f"safe state")
        self.emit("pause", self.next_step)
        while self._pause.is_set() and not self._stop.is_set():
            time.sleep(0.02)
        if not self._stop.is_set():
            self.chip.set_parameters(self.chip.get_parameters())
            self.note("resume", self.next_step, f"resumed at step {self.next_step + 1}")
            self.emit("resume", self.next_step)

    # -------------------------------------------------------------- resume
    def restore(self, step: int, parameters: np.ndarray, optimizer_state: dict[str, np.ndarray],
                step_loss: list[float] | None = None, evals: list[dict[str, float]] | None = None) -> None:
        """Continue after completed step ``step`` with the given parameters and optimiser state.

        ``step_loss`` and ``evals``: the history so far (as read back from the run file), so that the
        result of the resumed run covers the whole run.
        """
        self.chip.set_parameters(parameters)
        self.optimizer.load_state_dict(optimizer_state)
        self.next_step = step + 1
        self._last_checkpoint = step
        self.step_loss = list(step_loss or [])
        self.evals = [dict(e) for e in (evals or [])]
