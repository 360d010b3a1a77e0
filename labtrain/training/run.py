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

Events (:class:`Event`) go to every listener: the run file, the CLI progress
bar and the GUI.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labtrain.chip.base import Chip
from labtrain.training.optim import Optimizer
from labtrain.instruments.ports import PortError
from labtrain.protocols.base import GradientEstimator
from labtrain.protocols.masks import UpdateMask
from labtrain.training.store import RunStore
from labtrain.training.tasks import Task, accuracy

__all__ = ["Run", "Event", "RunResult", "Listener", "run_file_path"]


@dataclass
class Event:
    """Something that happened in a run.

    ``kind`` is one of ``start step eval maps epoch checkpoint pause resume stop``; ``data``
    carries the numbers (``loss``, ``train_accuracy``, ``status``, ...).
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
        Run file to write; without one the run keeps its metrics in memory only.
    listeners : list of callables
        Receive every :class:`Event`.
    """

    def __init__(self, chip: Chip, estimator: GradientEstimator, optimizer: Optimizer, task: Task, *,
                 epochs: int = 10, batch_size: int = 0, seed: int = 0, mask: UpdateMask | None = None,
                 eval_every: int = 0, checkpoint_every: int = 1, record_parameters_every: int = 1,
                 maps: Any = None, record_maps_every: int = 0,
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
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.record_parameters_every = int(record_parameters_every)
        self.maps = maps if record_maps_every else None
        self.record_maps_every = int(record_maps_every) if maps is not None else 0
        self.store = store
        self.listeners: list[Listener] = list(listeners or [])
        self.next_step = 0
        self.step_loss: list[float] = []
        self.evals: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._last_checkpoint = -1

    # --------------------------------------------------------------- control
    def request_stop(self) -> None:
        """Stop at the next step boundary (thread- and signal-safe)."""
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
        event = Event(kind, step, step // self.steps_per_epoch if self.steps_per_epoch else 0, data or {})
        for listener in self.listeners:
            listener(event)

    # ------------------------------------------------------------- training
    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of global step ``step`` (shuffled per epoch, seeded)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, 3, epoch]).permutation(len(self.task.x_train))
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        return self.task.x_train[idx], self.task.t_train[idx]

    def evaluate(self, step: int) -> dict[str, float]:
        """Loss and accuracy on the train and test sets, measured on the chip."""
        self._reseed(step, 5)
        t = self.task
        tr = self.chip.measure(t.x_train)
        te = self.chip.measure(t.x_test)
        loss = self.estimator.measurement_loss
        return {
            "step": step, "epoch": step // self.steps_per_epoch,
            "train_loss": loss(tr, t.t_train), "train_accuracy": accuracy(t, tr.output_v, t.y_train),
            "test_loss": loss(te, t.t_test), "test_accuracy": accuracy(t, te.output_v, t.y_test),
        }

    def record_maps(self, step: int) -> None:
        """Record the spatial maps after ``step`` (-1: before training) to the run file and listeners."""
        maps = self.maps.record(step)
        if self.store is not None:
            self.store.append_maps(step, maps, getattr(self.maps, "attrs", {}))
        self.emit("maps", step, dict(maps))

    def _reseed(self, step: int, stream: int) -> None:
        reseed = getattr(self.chip, "reseed", None)
        if reseed is not None:
            reseed([self.seed, stream, step + 1])

    def _one_step(self, step: int) -> float:
        x, t = self.batch(step)
        self._reseed(step, 4)
        t0 = time.perf_counter()
        est = self.estimator.estimate(self.chip, x, t)
        mask = self.mask.at_step(step) if self.mask is not None else None
        params = self.optimizer.apply(self.chip, est.gradient, mask)
        elapsed = time.perf_counter() - t0
        self.step_loss.append(est.loss)
        if self.store is not None:
            record = self.record_parameters_every and (step + 1) % self.record_parameters_every == 0
            self.store.append_step({"step": step, "epoch": step // self.steps_per_epoch, "time_s": elapsed,
                                    "loss": est.loss, "n_phases": est.n_phases}, params if record else None)
        self.emit("step", step, {"loss": est.loss, "time_s": elapsed, "output_v": est.output_v, "targets_v": t,
                                 "parameters": params, "gradient": est.gradient, "inputs": x})
        if self.record_maps_every and (step + 1) % self.record_maps_every == 0:
            self.record_maps(step)
        return est.loss

    def _checkpoint(self, step: int) -> None:
        if self.store is not None and step > self._last_checkpoint:
            self.store.write_checkpoint(step, self.chip.get_parameters(), self.optimizer.state_dict())
            self._last_checkpoint = step
            self.emit("checkpoint", step)

    def _eval_due(self, step: int) -> bool:
        if self.eval_every:
            return (step + 1) % self.eval_every == 0 or step + 1 == self.total_steps
        return (step + 1) % self.steps_per_epoch == 0

    def run(self) -> RunResult:
        """Train until done or stopped.  The chip always ends in its safe state."""
        status, message = "running", ""
        if self.store is not None:
            self.store.set_status("running")
        self.emit("start", self.next_step, {"total_steps": self.total_steps, "resumed_from": self.next_step})
        if self.next_step == 0 and not self.evals:
            self.evals.append(self.evaluate(-1) | {"step": -1, "epoch": -1})
            if self.store is not None:
                self.store.append_eval(self.evals[-1])
            self.emit("eval", -1, self.evals[-1])
            if self.record_maps_every:
                self.record_maps(-1)
        try:
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
                    if self.store is not None:
                        self.store.append_eval(self.evals[-1])
                    self.emit("eval", step, self.evals[-1])
                if (step + 1) % self.checkpoint_every == 0:
                    self._checkpoint(step)
                if (step + 1) % self.steps_per_epoch == 0:
                    self.emit("epoch", step, {"epoch": step // self.steps_per_epoch,
                                              "epochs": self.epochs})
            status = "completed" if self.next_step >= self.total_steps else "stopped"
        except KeyboardInterrupt:
            status, message = "stopped", "interrupted (Ctrl-C)"
        except PortError as exc:
            # An instrument kept failing after the chip's retries: pause in the safe state, resumable.
            status, message = "paused", f"instrument fault: {exc}"
        except Exception as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.chip.safe_state()
            if self.next_step > 0:
                self._checkpoint(self.next_step - 1)
            if self.store is not None:
                if status == "completed":
                    self.store.write_final(self.chip.get_parameters())
                self.store.set_status(status, message)
            self.emit("stop", self.next_step, {"status": status, "message": message})
        return RunResult(status, self.next_step, self.total_steps, self.chip.get_parameters(), self.step_loss,
                         self.evals, self.store.path if self.store else None, message)

    def _wait_while_paused(self) -> None:
        self.chip.safe_state()
        self.emit("pause", self.next_step)
        if self.store is not None:
            self.store.set_status("paused")
        while self._pause.is_set() and not self._stop.is_set():
            time.sleep(0.02)
        if self.store is not None:
            self.store.set_status("running")
        if not self._stop.is_set():
            self.chip.set_parameters(self.chip.get_parameters())
            self.emit("resume", self.next_step)

    # -------------------------------------------------------------- resume
    def restore(self, step: int, parameters: np.ndarray, optimizer_state: dict[str, np.ndarray]) -> None:
        """Continue after completed step ``step`` with the given parameters and optimiser state."""
        self.chip.set_parameters(parameters)
        self.optimizer.load_state_dict(optimizer_state)
        self.next_step = step + 1
        self._last_checkpoint = step
        if self.store is not None:
            self.store.truncate_after(step)
            steps = self.store.table("steps")
            self.step_loss = list(steps["loss"])
            ev = self.store.table("eval")
            self.evals = [{k: ev[k][i] for k in ev} for i in range(len(ev["step"]))]
