"""A run in a worker thread, its events on a queue (no Qt here).

:class:`RunWorker` builds the run (``prepare_run`` / ``prepare_resume``: the
chip is opened in the worker thread, so a slow instrument never freezes the
window), runs it and closes it.  Its listener runs in the run thread and does
nothing but put :class:`Message` items on :attr:`RunWorker.queue`; the window
drains that queue from a timer.  Per step it sends the scalars (loss, step time)
always, and the heavy arrays (parameters, outputs, gradient, waveforms) at most
``max_frame_hz`` times a second -- the window only ever draws the latest.

Gradient fidelity: when the chip has a network model, the listener compares
every step's gradient estimate with the exact (adjoint) gradient of the
noise-free model **at the parameters the step measured at** (the previous
step's result -- the listener keeps them), so there is no lag.  It costs one
factorisation per step, in the run thread; when that would exceed
``fidelity_budget`` of the step time, it is computed on every k-th step only.

Stop, pause and resume go to :class:`labtrain.training.run.Run` and take effect at the
next step boundary; whatever happens, the run loop leaves the chip in its safe
state, and the worker closes the chip and the run file when the run ends.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labtrain.chip.base import REFERENCE_GRADIENT

__all__ = ["Message", "RunInfo", "RunWorker", "FidelityProbe"]

#: one AI trace per output node, at most this many, in the scope view
MAX_SCOPE_AI = 8


@dataclass
class Message:
    """One item on the worker's queue.

    ``kind``: ``setup`` (a :class:`RunInfo`), ``event`` (a run event with scalar data),
    ``frame`` (latest arrays: parameters, outputs, targets, gradient, waveforms),
    ``maps`` (spatial maps of an XY lattice, see :mod:`labtrain.kinds.xy.maps`),
    ``fidelity`` (step, cosine, scaled error), ``log`` (level, text), ``error`` (title, text, details),
    ``finished`` (the :class:`~labtrain.training.run.RunResult` or None).
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


class _QueueLogHandler(logging.Handler):
    def __init__(self, q: queue.Queue) -> None:
        super().__init__(logging.INFO)
        self.q = q

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.q.put(Message("log", (record.levelname, self.format(record))))
        except Exception:  # pragma: no cover
            pass


class RunWorker:
    """Build and run one experiment (or resume one run file) in a thread.

    Parameters
    ----------
    experiment : labtrain.config.Experiment, optional
        A validated experiment (its overrides are stored in the run file).
    resume_path : path, optional
        Instead: continue this run file (``prepare_resume``).
    stop_after_steps : int, optional
        Request a stop once this many steps (counted from 0 of the run) are done.
    max_frame_hz : float
        Most frames of arrays per second put on the queue.
    fidelity : bool
        Compute gradient fidelity when the chip allows it.
    """

    def __init__(self, experiment=None, *, resume_path: str | Path | None = None,
                 stop_after_steps: int | None = None, max_frame_hz: float = 20.0, fidelity: bool = True,
                 store: bool = True) -> None:
        if (experiment is None) == (resume_path is None):
            raise ValueError("give an experiment or a resume_path")
        self.experiment, self.resume_path = experiment, resume_path
        self.stop_after_steps = stop_after_steps
        self.min_frame_s = 1.0 / max_frame_hz if max_frame_hz > 0 else 0.0
        self.want_fidelity, self.use_store = fidelity, store
        self.queue: queue.Queue[Message] = queue.Queue()
        self.run = None
        self.result = None
        self.info: RunInfo | None = None
        self._thread: threading.Thread | None = None
        self._stop_early = threading.Event()
        self._pause_early = threading.Event()
        self._probe: FidelityProbe | None = None
        self._pending: dict | None = None
        self._last_frame = 0.0
        self._log_handler = _QueueLogHandler(self.queue)

    # ------------------------------------------------------------ control
    def start(self) -> None:
        # Not a daemon: if the window closes mid-run, the interpreter waits for the run to reach its
        # step boundary, stop and leave the chip in its safe state.
        self._thread = threading.Thread(target=self._main, name="labtrain-run", daemon=False)
        self._thread.start()

    def pause(self) -> None:
        if self.run is not None:
            self.run.request_pause()
        else:
            self._pause_early.set()

    def resume(self) -> None:
        self._pause_early.clear()
        if self.run is not None:
            self.run.request_resume()

    def stop(self) -> None:
        self._stop_early.set()
        if self.run is not None:
            self.run.request_stop()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive

    # ------------------------------------------------------------ thread
    def _put(self, kind: str, data: Any = None, step: int = -1, epoch: int = -1) -> None:
        self.queue.put(Message(kind, data, step, epoch))

    def _main(self) -> None:
        from labtrain.config import ConfigError
        from labtrain.training.launch import prepare_resume, prepare_run
        from labtrain.training.store import StoreError

        logger = logging.getLogger("labtrain")
        logger.addHandler(self._log_handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        run = None
        try:
            try:
                if self.resume_path is not None:
                    self._put("log", ("INFO", f"opening {self.resume_path} to resume"))
                    run = prepare_resume(self.resume_path, listeners=[self._listener])
                else:
                    exp = self.experiment
                    self._put("log", ("INFO", f"building {exp.name}: backend {exp['backend']['kind']}, "
                                              f"rule {exp['learning']['rule']}"))
                    run = prepare_run(exp, listeners=[self._listener], store=self.use_store)
            except (ConfigError, StoreError) as exc:
                self._put("error", ("Cannot start the run", str(exc), ""))
                return
            except Exception as exc:
                self._put("error", ("Cannot start the run", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                return
            self.run = run
            if run.chip.on_fault is None:
                run.chip.on_fault = lambda line: self._put("log", ("WARNING", f"instrument fault (retried): {line}"))
            if self.want_fidelity:
                self._probe = FidelityProbe(run.chip)
            self.info = self._describe(run)
            self._put("setup", self.info)
            if self._stop_early.is_set():
                run.request_stop()
            if self._pause_early.is_set():
                run.request_pause()
            try:
                self.result = run.run()
            except Exception as exc:  # the run loop already put the chip in its safe state and saved
                self._put("error", ("The run failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        finally:
            if run is not None:
                for what, close in (("run file", run.store.close if run.store is not None else None),
                                    ("chip", run.chip.close)):
                    if close is None:
                        continue
                    try:
                        close()
                    except Exception as exc:
                        self._put("log", ("ERROR", f"closing the {what}: {type(exc).__name__}: {exc}"))
            logger.removeHandler(self._log_handler)
            self._put("finished", self.result)

    def _describe(self, run) -> RunInfo:
        chip, spec = run.chip, run.chip.parameter_spec
        exp = self.experiment
        if run.store is not None:
            text, overrides = run.store.experiment_text, run.store.overrides
            name, backend, rule = (run.store.attrs[k] for k in ("name", "backend", "rule"))
        else:
            text, overrides = exp.text, exp.overrides
            name, backend, rule = exp.name, exp["backend"]["kind"], exp["learning"]["rule"]
        net = chip.network
        return RunInfo(
            name=name, path=run.store.path if run.store is not None else None, backend=backend, rule=rule,
            total_steps=run.total_steps, steps_per_epoch=run.steps_per_epoch, epochs=run.epochs,
            next_step=run.next_step, network=net, parameter_name=spec.name, parameter_unit=spec.unit,
            lower=np.array(spec.lower, float), upper=np.array(spec.upper, float),
            initial_parameters=np.array(chip.get_parameters(), float), capabilities=frozenset(chip.capabilities),
            decoder=run.task.decoder, n_outputs=chip.n_outputs,
            output_nodes=tuple(net.outputs) if net is not None else (),
            fidelity="" if self._probe is not None and self._probe.available else
            (self._probe.reason if self._probe is not None else "switched off"),
            experiment_text=text, overrides=overrides, history_loss=np.array(run.step_loss, float),
            history_evals=[dict(e) for e in run.evals], edge_parameters=net.n_edges if net is not None else 0,
            parameter_labels=tuple(chip.parameter_labels()),
            loss_unit=run.estimator.loss_unit,
            output_unit="" if chip.output_unit == "1" else chip.output_unit)

    # ------------------------------------------------------------ listener (run thread)
    def _listener(self, event) -> None:
        kind, data = event.kind, event.data
        if kind == "step":
            self._put("event", {"kind": "step", "loss": float(data["loss"]), "time_s": float(data["time_s"])},
                      event.step, event.epoch)
            if self._probe is not None:
                fid = self._probe.on_step(data)
                if fid is not None:
                    self._put("fidelity", fid, event.step, event.epoch)
            self._pending = {"step": event.step, "parameters": data["parameters"], "output_v": data["output_v"],
                             "targets_v": data["targets_v"], "gradient": data.get("gradient")}
            waves = self.run.chip.last_waveforms if self.run is not None else None
            now = time.perf_counter()
            if now - self._last_frame >= self.min_frame_s:
                if waves is not None:
                    self._pending["waveforms"] = self._scope_copy(waves)
                self._flush_frame(now)
            if self.stop_after_steps is not None and event.step + 1 >= self.stop_after_steps and self.run is not None:
                self.run.request_stop()
            return
        if kind == "maps":  # spatial maps (xy lattices): arrays, drawn by the parameter map
            self._put("maps", {k: np.array(v, copy=True) for k, v in data.items()}, event.step, event.epoch)
            return
        if kind in ("start", "resume") and self._probe is not None:
            self._probe.reset()
        if kind in ("pause", "stop"):
            self._flush_frame(time.perf_counter())
        clean = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in data.items()
                 if not isinstance(v, np.ndarray)}
        clean["kind"] = kind
        self._put("event", clean, event.step, event.epoch)

    def _flush_frame(self, now: float) -> None:
        if self._pending is None:
            return
        frame = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in self._pending.items()}
        self._pending = None
        self._last_frame = now
        self._put("frame", frame, frame["step"])

    def _scope_copy(self, waves: dict) -> dict:
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

