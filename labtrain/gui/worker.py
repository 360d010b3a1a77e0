"""A run in a worker process, its events on a multiprocessing queue (no Qt here).

The window never builds or trains a chip itself: :class:`RunWorker` starts a
child process (``multiprocessing``, *spawn* context: a fresh interpreter,
nothing of the window's state inherited), which validates the experiment
again, builds the run (``prepare_run`` / ``prepare_resume``: the chip and its
instruments are opened in the child), runs it and closes it.  Three channels
join the two processes:

* **events** -- a :class:`multiprocessing.Queue` of :class:`Message` items,
  child to window: per step the scalars (loss, step time) always, and the
  heavy arrays (parameters, outputs, gradient, waveforms) at most
  ``max_frame_hz`` times a second (the window only ever draws the latest);
  errors (title, one line, traceback); the final
  :class:`~labtrain.training.run.RunResult` (``finished``, always the last item);
* **control** -- a :func:`multiprocessing.Pipe`, window to child: ``pause``,
  ``resume``, ``stop``.  They take effect at the next step boundary (the run
  loop's semantics).  If the window goes away (the pipe closes), the child
  stops the run the same way: chip safe, run file saved, status ``stopped``;
* **signals** -- SIGTERM asks the child for the same clean stop; SIGINT (a
  Ctrl-C in the terminal, which reaches the whole process group) is left to
  the window, which stops the run through the control pipe.

Gradient fidelity is computed in the child (:class:`FidelityProbe`): every
step's gradient estimate against the exact (adjoint) gradient of the noise-free
model **at the parameters the step measured at** (the previous step's result --
the listener keeps them), so there is no lag.  It costs one reference gradient
per step; when that would exceed ``fidelity_budget`` of the step time it is
computed on every k-th step only.

Two hooks serve diagnostics and tests (each an importable ``"module:function"``,
run in the child): ``child_init()`` before anything is built (e.g. to inject a
fault), and ``probe(run, moment)`` when the run pauses (``moment="paused"``)
and when it has ended, chip in its safe state, before the chip is closed
(``"ended"``); its return value comes back as a ``probe`` message.
"""

from __future__ import annotations

import collections
import importlib
import logging
import math
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labtrain.chip.base import REFERENCE_GRADIENT, NetworkChip

__all__ = ["Message", "RunInfo", "RunRequest", "RunWorker", "WorkerProcess", "ChildRun", "FidelityProbe",
           "MAX_SCOPE_AI"]

#: one AI trace per output node, at most this many, in the scope view
MAX_SCOPE_AI = 8
#: control commands the child understands
COMMANDS = ("pause", "resume", "stop")


@dataclass
class Message:
    """One item on the worker's queue.

    ``kind``: ``setup`` (a :class:`RunInfo`), ``event`` (a run event with scalar data),
    ``frame`` (latest arrays: parameters, outputs, targets, gradient, waveforms),
    ``maps`` (spatial maps of an XY lattice, see :mod:`labtrain.kinds.xy.maps`),
    ``fidelity`` (cosine, scaled error), ``log`` (level, text), ``error`` (title, text, details),
    ``probe`` (moment, value of the probe hook), ``finished`` (the
    :class:`~labtrain.training.run.RunResult`, or None when the run did not start or failed).
    """

    kind: str
    data: Any = None
    step: int = -1
    epoch: int = -1
    time_s: float = field(default_factory=time.time)


@dataclass
class RunInfo:
    """What the window needs to know about a run once it is built."""

    name: str
    path: Path | None
    backend: str
    rule: str
    total_steps: int
    steps_per_epoch: int
    epochs: int
    next_step: int
    network: Any
    parameter_name: str
    parameter_unit: str
    lower: np.ndarray
    upper: np.ndarray
    initial_parameters: np.ndarray
    capabilities: frozenset
    decoder: str
    n_outputs: int
    output_nodes: tuple
    fidelity: str  # "" when available, else why not
    experiment_text: str
    overrides: dict
    history_loss: np.ndarray  # resumed runs: per-step loss so far
    history_evals: list
    edge_parameters: int = 0  # leading parameters that are one value per network edge (0: none / no network)
    parameter_labels: tuple = ()  # a name per parameter for the bar view (DNPU: the control electrodes)
    loss_unit: str = "V^2"    # unit of the loss ("1": dimensionless)
    output_unit: str = "V"    # unit of outputs and targets ("rad": phases, "": dimensionless states)
    #: named parameter blocks (name, start, stop, shape) where the chip declares them (layered networks:
    #: one weight matrix per layer), drawn as one heat map each
    parameter_blocks: tuple = ()
    #: edge of every parameter where the chip has parameters on some edges only (a nonlinear network: pots on
    #: the linear edges, diodes fixed); empty: one per edge in edge order, or none
    parameter_edges: tuple = ()
    pid: int = 0              # the worker process that trains the chip


@dataclass(frozen=True)
class RunRequest:
    """What the worker process builds: an experiment (its text, file and overrides) or a run file to resume."""

    experiment_text: str | None = None
    experiment_path: str | None = None
    overrides: dict = field(default_factory=dict)
    resume_path: str | None = None
    stop_after_steps: int | None = None
    max_frame_hz: float = 20.0
    fidelity: bool = True
    store: bool = True
    child_init: str | None = None
    probe: str | None = None


class FidelityProbe:
    """Cosine between a step's gradient estimate and the exact gradient at the step's parameters."""

    def __init__(self, chip, budget: float = 0.25) -> None:
        self.chip, self.budget = chip, budget
        self.reason = ""
        self._g: np.ndarray | None = None
        self._stride, self._skipped = 1, 0
        self._exact_at = None
        if REFERENCE_GRADIENT not in chip.capabilities:
            self.reason = f"{chip.backend} chip has no reference model: no exact gradient to compare with"
            return
        self._exact_at = lambda g, x, t: chip.reference_gradient(x, t, g)

    @property
    def available(self) -> bool:
        return not self.reason

    def reset(self) -> None:
        """The chip's current parameters are those the next step measures at."""
        if self.available:
            self._g = np.array(self.chip.get_parameters(), float)

    def on_step(self, data: dict) -> tuple[float, float] | None:
        """(cosine, scaled error) for this step, or None when skipped; then remember the new parameters."""
        if not self.available:
            return None
        from labtrain.protocols.fidelity import compare_gradients

        result = None
        g, self._g = self._g, np.array(data["parameters"], float)
        self._skipped += 1
        if g is not None and self._skipped >= self._stride and "gradient" in data and "inputs" in data:
            self._skipped = 0
            t0 = time.perf_counter()
            exact = self._exact_at(g, np.asarray(data["inputs"], float), np.asarray(data["targets_v"], float))
            fid = compare_gradients(data["gradient"], exact)
            cost = time.perf_counter() - t0
            step_time = max(float(data.get("time_s", 0.0)), 1e-6)
            self._stride = max(1, math.ceil(cost / (self.budget * step_time)))
            result = (fid.cosine, fid.scaled_error)
        return result


def _hook(target: str):
    """The function named ``"module:function"``."""
    module, _, name = target.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


# ====================================================================== the window's side
class WorkerProcess:
    """A started worker interpreter (spawn) with its event queue and control pipe, waiting for one
    :class:`RunRequest`.

    Starting a fresh Python with numpy, scipy, h5py and labtrain takes seconds; the window starts the next
    worker while the user edits (``MainWindow(prestart_worker=True)``), so pressing Run starts training
    at once.  A worker process runs one request, then exits; :meth:`discard` lets an unused one exit.
    """

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue()
        receiving, self.control = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=child_main, args=(self.queue, receiving), name="labtrain-run",
                                   daemon=False)  # not a daemon: a window that exits waits for its clean stop
        self.process.start()
        receiving.close()  # the child holds the receiving end now; EOF there means the window is gone
        self.used = False  # a request has been sent

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, obj: Any) -> bool:
        """Send a request or a command; False when the process has gone."""
        self.used = True
        try:
            self.control.send(obj)
            return True
        except (BrokenPipeError, EOFError, OSError):
            return False

    def discard(self) -> None:
        """Release the channels; a worker that never got a request is ended (SIGTERM: it holds nothing)."""
        if not self.used and self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        try:
            self.control.close()
        except OSError:
            pass
        self.queue.close()


class RunWorker:
    """One experiment (or the resumption of one run file) trained in a worker process.

    Parameters
    ----------
    experiment : labtrain.config.Experiment, optional
        A validated experiment; the child validates its text, file and overrides again and stores the
        overrides in the run file.
    resume_path : path, optional
        Instead: continue this run file (``prepare_resume``).
    stop_after_steps : int, optional
        Request a stop once this many steps (counted from 0 of the run) are done.
    max_frame_hz : float
        Most frames of arrays per second put on the queue.
    fidelity : bool
        Compute gradient fidelity (in the child) when the chip allows it.
    store : bool
        Write a run file.
    child_init, probe : str, optional
        Hooks run in the child (``"module:function"``), see the module docstring.
    """

    def __init__(self, experiment=None, *, resume_path: str | Path | None = None,
                 stop_after_steps: int | None = None, max_frame_hz: float = 20.0, fidelity: bool = True,
                 store: bool = True, child_init: str | None = None, probe: str | None = None) -> None:
        if (experiment is None) == (resume_path is None):
            raise ValueError("give an experiment or a resume_path")
        self.request = RunRequest(
            experiment_text=experiment.text if experiment is not None else None,
            experiment_path=str(experiment.path) if experiment is not None and experiment.path else None,
            overrides={s: dict(v) for s, v in (experiment.overrides if experiment is not None else {}).items()},
            resume_path=str(resume_path) if resume_path is not None else None,
            stop_after_steps=stop_after_steps, max_frame_hz=max_frame_hz, fidelity=fidelity, store=store,
            child_init=child_init, probe=probe)
        self.worker_process: WorkerProcess | None = None
        self.process: mp.process.BaseProcess | None = None
        self.queue = None
        self.info: RunInfo | None = None
        self.result = None
        self.done = False               # the last message ("finished") has been taken from the queue
        self._early: list[str] = []     # commands given before the process started
        self._made_up: collections.deque[Message] = collections.deque()

    # ------------------------------------------------------------ control
    def start(self, process: WorkerProcess | None = None) -> None:
        """Hand the request to ``process`` (a pre-started worker) or to a new worker process."""
        if process is None or not process.alive:
            if process is not None:
                process.discard()
            process = WorkerProcess()
        self.worker_process, self.process, self.queue = process, process.process, process.queue
        process.send(self.request)
        for command in self._early:
            process.send(command)
        self._early.clear()

    def _send(self, command: str) -> None:
        if self.worker_process is None:
            self._early.append(command)
        else:
            self.worker_process.send(command)

    def pause(self) -> None:
        """Pause at the next step boundary; the chip waits in its safe state."""
        self._send("pause")

    def resume(self) -> None:
        """Continue a paused run."""
        self._send("resume")

    def stop(self) -> None:
        """Stop at the next step boundary: chip safe, run saved and resumable."""
        self._send("stop")

    @property
    def alive(self) -> bool:
        """The worker process is running."""
        return self.process is not None and self.process.is_alive()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the process to end (drain the queue meanwhile, or a full queue keeps it alive)."""
        if self.process is not None:
            self.process.join(timeout)
        return not self.alive

    def terminate(self) -> None:
        """SIGTERM: the child stops at the next step boundary as for ``stop`` (chip safe, run saved)."""
        if self.alive:
            self.process.terminate()

    def kill(self) -> None:
        """SIGKILL, the last resort: the run file keeps its last checkpoint (crash-consistent), the chip
        keeps whatever it held."""
        if self.alive:
            self.process.kill()

    def get_nowait(self) -> Message:
        """The next message (raises :class:`queue.Empty`).

        A worker process that died without its ``finished`` message (killed, crashed interpreter) is
        reported as an ``error`` and a ``finished`` with no result, so the window never waits forever.
        """
        if self._made_up:
            msg = self._made_up.popleft()
        elif self.done or self.queue is None:
            raise queue.Empty
        else:
            try:
                msg = self.queue.get_nowait()
            except queue.Empty:
                if self.process is None or self.process.is_alive():
                    raise
                try:  # the process has ended: whatever it wrote is in the pipe by now
                    msg = self.queue.get(timeout=0.2)
                except queue.Empty:
                    code = self.process.exitcode
                    why = f"was killed by signal {-code}" if code is not None and code < 0 else \
                        f"ended with exit status {code}"
                    self._made_up.append(Message("finished", None))
                    msg = Message("error", ("The run process ended unexpectedly",
                                            f"the worker process (pid {self.process.pid}) {why} without reporting "
                                            "how the run ended; see the run file's status in the Runs panel", ""))
        if msg.kind == "setup":
            self.info = msg.data
        elif msg.kind == "finished":
            self.result, self.done = msg.data, True
        return msg

    def close(self) -> None:
        """Release the channels (after the process has ended)."""
        if self.worker_process is not None:
            self.worker_process.discard()


# ====================================================================== the child's side
class _QueueLogHandler(logging.Handler):
    def __init__(self, put) -> None:
        super().__init__(logging.INFO)
        self.put = put

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.put("log", (record.levelname, self.format(record)))
        except Exception:  # pragma: no cover
            pass


class ChildRun:
    """The worker process: builds the run, forwards its events, obeys the control pipe."""

    def __init__(self, request: RunRequest, q, conn) -> None:
        self.request, self.q, self.conn = request, q, conn
        self.min_frame_s = 1.0 / request.max_frame_hz if request.max_frame_hz > 0 else 0.0
        self.run = None
        self.result = None
        self.probe_fn = _hook(request.probe) if request.probe else None
        self._fidelity: FidelityProbe | None = None
        self._pending: dict | None = None
        self._last_frame = 0.0
        # the control thread and SIGTERM (main thread, maybe inside a locked section) request pause/stop
        self._lock = threading.RLock()
        self._stop_early = self._pause_early = False

    def put(self, kind: str, data: Any = None, step: int = -1, epoch: int = -1) -> None:
        self.q.put(Message(kind, data, step, epoch))

    # ------------------------------------------------------------ control (its own thread)
    def control_loop(self) -> None:
        while True:
            try:
                command = self.conn.recv()
            except (EOFError, OSError):  # the window is gone: stop cleanly
                self.command("stop", "the window closed")
                return
            if command in COMMANDS:
                self.command(command)

    def command(self, command: str, message: str = "") -> None:
        with self._lock:
            run = self.run
            if command == "stop":
                self._stop_early = True
                if run is not None:
                    run.request_stop(message)
            elif command == "pause":
                self._pause_early = True
                if run is not None:
                    run.request_pause()
            elif command == "resume":
                self._pause_early = False
                if run is not None:
                    run.request_resume()

    # ------------------------------------------------------------ the run (main thread)
    def main(self) -> None:
        from labtrain.config import ConfigError, experiment_from_text
        from labtrain.training.launch import prepare_resume, prepare_run
        from labtrain.training.store import StoreError

        logger = logging.getLogger("labtrain")
        handler = _QueueLogHandler(self.put)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        threading.Thread(target=self.control_loop, name="labtrain-control", daemon=True).start()
        req, run = self.request, None
        try:
            try:
                if req.child_init:
                    _hook(req.child_init)()
                if req.resume_path is not None:
                    self.put("log", ("INFO", f"opening {req.resume_path} to resume (worker pid {os.getpid()})"))
                    run = prepare_resume(req.resume_path, listeners=[self.listener])
                    exp = None
                else:
                    path = Path(req.experiment_path) if req.experiment_path else None
                    exp = experiment_from_text(req.experiment_text or "", path, req.overrides)
                    self.put("log", ("INFO", f"building {exp.name}: backend {exp['backend']['kind']}, rule "
                                             f"{exp['learning']['rule']} (worker pid {os.getpid()})"))
                    run = prepare_run(exp, listeners=[self.listener], store=req.store)
            except (ConfigError, StoreError) as exc:
                self.put("error", ("Cannot start the run", str(exc), ""))
                return
            except Exception as exc:
                self.put("error", ("Cannot start the run", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                return
            # Instrument retries, faults, safety ramps and the run's pauses are logged (labtrain.* loggers):
            # _QueueLogHandler forwards them to the window's log as they happen.
            if req.fidelity:
                self._fidelity = FidelityProbe(run.chip)
            self.put("setup", self._describe(run, exp))
            with self._lock:
                self.run = run
                if self._stop_early:
                    run.request_stop()
                elif self._pause_early:
                    run.request_pause()
            try:
                self.result = run.run()
            except Exception as exc:  # the run loop already put the chip in its safe state and saved
                self.put("error", ("The run failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            self._probe(run, "ended")
        finally:
            if run is not None:
                for what, close in (("run file", run.store.close if run.store is not None else None),
                                    ("chip", run.chip.close)):
                    if close is None:
                        continue
                    try:
                        close()
                    except Exception as exc:
                        self.put("log", ("ERROR", f"closing the {what}: {type(exc).__name__}: {exc}"))
            logger.removeHandler(handler)
            self.put("finished", self.result)

    def _probe(self, run, moment: str) -> None:
        if self.probe_fn is None:
            return
        try:
            self.put("probe", (moment, self.probe_fn(run, moment)))
        except Exception as exc:
            self.put("probe", (moment, f"probe failed: {type(exc).__name__}: {exc}"))

    def _describe(self, run, exp) -> RunInfo:
        chip, spec = run.chip, run.chip.parameter_spec
        if run.store is not None:
            text, overrides = run.store.experiment_text, run.store.overrides
            name, backend, rule = (run.store.attrs[k] for k in ("name", "backend", "rule"))
        else:
            text, overrides = exp.text, exp.overrides
            name, backend, rule = exp.name, exp["backend"]["kind"], exp["learning"]["rule"]
        net = chip.network
        blocks = tuple({"name": str(b["name"]), "start": int(b["start"]), "stop": int(b["stop"]),
                        "shape": tuple(int(n) for n in b.get("shape", (int(b["stop"]) - int(b["start"]),)))}
                       for b in chip.parameter_blocks())
        fidelity = self._fidelity
        return RunInfo(
            name=name, path=run.store.path if run.store is not None else None, backend=backend, rule=rule,
            total_steps=run.total_steps, steps_per_epoch=run.steps_per_epoch, epochs=run.epochs,
            next_step=run.next_step, network=net, parameter_name=spec.name, parameter_unit=spec.unit,
            lower=np.array(spec.lower, float), upper=np.array(spec.upper, float),
            initial_parameters=np.array(chip.get_parameters(), float), capabilities=frozenset(chip.capabilities),
            decoder=run.task.decoder, n_outputs=chip.n_outputs,
            output_nodes=tuple(net.outputs) if net is not None else (),
            fidelity="" if fidelity is not None and fidelity.available else
            (fidelity.reason if fidelity is not None else "switched off"),
            experiment_text=text, overrides=overrides, history_loss=np.array(run.step_loss, float),
            history_evals=[dict(e) for e in run.evals], edge_parameters=net.n_edges if net is not None else 0,
            parameter_labels=tuple(chip.parameter_labels()), loss_unit=run.estimator.loss_unit,
            output_unit="" if chip.output_unit == "1" else chip.output_unit, parameter_blocks=blocks,
            parameter_edges=tuple(int(e) for e in chip.parameter_edges) if isinstance(chip, NetworkChip) else (),
            pid=os.getpid())

    # ------------------------------------------------------------ listener (run thread)
    def listener(self, event) -> None:
        kind, data = event.kind, event.data
        run = self.run
        if kind == "step":
            self.put("event", {"kind": "step", "loss": float(data["loss"]), "time_s": float(data["time_s"])},
                     event.step, event.epoch)
            if self._fidelity is not None:
                fid = self._fidelity.on_step(data)
                if fid is not None:
                    self.put("fidelity", fid, event.step, event.epoch)
            self._pending = {"step": event.step, "parameters": data["parameters"], "output_v": data["output_v"],
                             "targets_v": data["targets_v"], "gradient": data.get("gradient")}
            now = time.perf_counter()
            if now - self._last_frame >= self.min_frame_s:
                waves = run.chip.last_waveforms if run is not None else None
                if waves is not None:
                    self._pending["waveforms"] = scope_copy(waves)
                self._flush_frame(now)
            stop_after = self.request.stop_after_steps
            if stop_after is not None and event.step + 1 >= stop_after and run is not None:
                run.request_stop()
            return
        if kind == "log":  # also a log record: already on its way to the window (_QueueLogHandler)
            return
        if kind == "maps":  # spatial maps (xy lattices): arrays, drawn by the parameter map
            self.put("maps", {k: np.array(v, copy=True) for k, v in data.items()}, event.step, event.epoch)
            return
        if kind in ("start", "resume") and self._fidelity is not None:
            self._fidelity.reset()
        if kind in ("pause", "stop"):
            self._flush_frame(time.perf_counter())
        clean = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in data.items()
                 if not isinstance(v, np.ndarray)}
        clean["kind"] = kind
        self.put("event", clean, event.step, event.epoch)
        if kind == "pause" and run is not None:
            self._probe(run, "paused")

    def _flush_frame(self, now: float) -> None:
        if self._pending is None:
            return
        frame = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in self._pending.items()}
        self._pending = None
        self._last_frame = now
        self.put("frame", frame, frame["step"])


def scope_copy(waves: dict) -> dict:
    """AO channels and the AI channels of the output nodes (at most MAX_SCOPE_AI), copied."""
    ai_rows = list(range(len(waves["ai_channels"])))
    labels = list(waves.get("ai_labels", waves["ai_channels"]))
    if waves.get("output_ai_rows"):  # the chip says which AI rows read its outputs: show those first
        ai_rows = list(waves["output_ai_rows"])
    labels = [labels[r] for r in ai_rows]
    ai_rows, labels = ai_rows[:MAX_SCOPE_AI], labels[:MAX_SCOPE_AI]
    return {"rate_hz": float(waves["rate_hz"]), "ao_channels": list(waves["ao_channels"]),
            "ao_v": np.array(waves["ao_v"], float), "ai_channels": labels,
            "ai_v": np.array(np.asarray(waves["ai_v"])[ai_rows], float),
            "settle_samples": int(waves["settle_samples"]), "plateau_samples": int(waves["plateau_samples"])}


def child_main(q, conn) -> None:
    """Entry point of the worker process: import what a run needs, wait for the request, run it."""
    # Ctrl-C in the terminal reaches every process of the group: the window decides (it sends "stop").
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import labtrain.config
    import labtrain.training.launch  # noqa: F401  (the seconds a fresh interpreter needs, spent while waiting)

    labtrain.config.chip_kinds()
    try:
        request = conn.recv()
    except (EOFError, OSError):  # an unused worker: the window has gone or discarded it
        return
    if not isinstance(request, RunRequest):
        return
    child = ChildRun(request, q, conn)
    signal.signal(signal.SIGTERM, lambda *_: child.command("stop", "terminated (SIGTERM)"))
    try:
        child.main()
    finally:
        q.close()
        q.join_thread()  # every message written before the process ends
