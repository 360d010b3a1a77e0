"""Instrument-layer benchmark: twin speed against real time, and labtrain's own overhead per bench step.

Two questions, both about one coupled-learning training step on an
:class:`~labtrain.kinds.resistor.bench.InstrumentChip` at 10 kS/s (a free and a
clamped acquisition of the whole batch with edge drops, the CL gradient, an
Adam update that sets new pot taps):

**(a) Is the twin faster than the bench it simulates?**  A 4x4 lattice (16
nodes, every node read) is built on the instrument twin exactly as
``backend = "twin"`` builds it (:func:`~labtrain.kinds.resistor.hardware.build_instrument_chip`
with the experiment-file defaults: 16-bit converters, 0.1 mV white noise,
safety layer at 2 V / 1000 V/s).  The wall time of a training step is
compared with the time the acquisitions would take on the bench:

* ``acquired_s`` -- the growth of ``chip.acquired_time_s``: the samples the
  chip asked for (``n_phases x batch x plateau / rate``), without the safety
  layer's ramps in and out of every waveform;
* ``clock_s`` -- the growth of the twin DAQ's simulated clock
  (``SimulatedDAQ.simulated_time_s``), which includes those ramps.

``ratio = acquired_s / wall_s`` is the conservative figure (target >= 10x);
``ratio_clock = clock_s / wall_s`` counts the ramps too.  The pure acquisition
speed of the twin (:func:`twin_speed_ratio`:
``SimulatedDAQ.write_read`` alone, 1 s of random waveforms) is reported
beside it.

**(b) How much of a bench step is labtrain's own work?**  The chip is built as
on hardware (``SafeDAQ`` / ``SafePotArray`` around the ports, the same
wiring, settings and pot calibration as
:func:`~labtrain.kinds.resistor.hardware.open_hardware_ports`) but the ports are
:class:`FakeDAQ` and :class:`FakePotArray`: they accept every waveform and tap
vector, keep the levels and taps they were given and answer at once (the DAQ
reads 0 V).  The step's wall time, less the time spent inside the fake
ports, is labtrain's overhead: waveform building and slew shaping, safety
checks and ramps, averaging and edge drops, the gradient, the optimiser and
the pot-tap computation.  It is compared with the acquisition time the same
step takes on a real DAQ at the same sample clock: every AO sample the fake
DAQ received (plateaus *and* ramps) divided by the rate.  Not included there:
the DAQ driver's per-task set-up and the pot bus writes, which are the
instruments' time, not labtrain's.

``labtrain bench --instrument`` and ``benchmarks/bench_instrument.py`` run
:func:`run_instrument_benchmark` and print :func:`format_instrument_report`.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np

from steplib import ETA, LEARNING_RATE
from labtrain.kinds.resistor.bench import InstrumentChip
from labtrain.config import parse_experiment
from labtrain.kinds.resistor.hardware import acquisition_settings, build_instrument_chip, build_wiring, safety_config
from labtrain.physics.network import Network, lattice, random_graph
from labtrain.training.optim import Adam
from labtrain.instruments.ports import DAQ, Acquisition, PotArray, PotCalibration
from labtrain.protocols.gep import CoupledLearning
from labtrain.instruments.safety import SafeDAQ, SafePotArray
from labtrain.kinds.resistor.twin import build_resistor_twin

__all__ = ["run_instrument_benchmark", "format_instrument_report", "FakeDAQ", "FakePotArray",
           "build_fake_chip", "build_twin_chip", "overhead_networks", "RATE_HZ", "TWIN_TARGET_RATIO"]

RATE_HZ = 10_000.0  #: sample clock of every configuration (the issue's 10 kS/s)
TWIN_TARGET_RATIO = 10.0  #: the twin must run at least this much faster than real time
N_INPUTS, N_OUTPUTS = 4, 2
TWIN_SHAPE = (4, 4)  #: the 16-node lattice of part (a)
RANDOM_NODES, RANDOM_EDGES = 100, 200  #: the ~100-node random network of part (b)

_Progress = Callable[[str], None] | None


# ------------------------------------------------------------ fake ports
class FakeDAQ(DAQ):
    """A DAQ that answers at once: accepts every waveform, keeps the levels, reads 0 V.

    It implements :class:`labtrain.instruments.ports.DAQ` faithfully enough for the safety
    layer (``dc_levels_v`` follows every waveform's last sample and every
    ``set_dc``) and counts what it was sent, so a benchmark can check that
    the waveforms really reached it and how many samples a real DAQ would
    have clocked out.

    Parameters
    ----------
    ao_channels, ai_channels, do_lines : sequence of str
        The device's channels.
    ao_range_v, ai_range_v : (float, float)
        Converter ranges (volts).
    max_rate_hz : float
        Highest sample clock accepted.

    Attributes
    ----------
    n_write_read : int
        ``write_read`` calls received.
    ao_samples : int
        AO samples per channel received over all ``write_read`` calls (ramps included).
    ai_values : int
        AI values returned (channels x samples).
    n_set_dc, n_set_digital : int
        ``set_dc`` and ``set_digital`` calls received.
    last_shape : tuple of int
        ``(n_ao, n_samples, n_ai)`` of the last ``write_read``.
    last_ao_v : ndarray or None
        The last waveform received (the caller's array, not a copy).
    busy_s : float
        Wall time spent inside this object's methods (subtracted from a step
        to leave labtrain's own time).
    """

    def __init__(self, ao_channels: Sequence[str], ai_channels: Sequence[str], do_lines: Sequence[str] = (), *,
                 ao_range_v: tuple[float, float] = (-10.0, 10.0), ai_range_v: tuple[float, float] = (-10.0, 10.0),
                 max_rate_hz: float = 1e5) -> None:
        self.ao_channels = tuple(ao_channels)
        self.ai_channels = tuple(ai_channels)
        self.do_lines = tuple(do_lines)
        self.ao_range_v = (float(ao_range_v[0]), float(ao_range_v[1]))
        self.ai_range_v = (float(ai_range_v[0]), float(ai_range_v[1]))
        self.max_rate_hz = float(max_rate_hz)
        self._dc = {c: 0.0 for c in self.ao_channels}
        self._digital = {line: False for line in self.do_lines}
        self._clock = 0.0
        self.reset_counts()

    def reset_counts(self) -> None:
        """Zero every counter (levels and digital states are kept)."""
        self.n_write_read = 0
        self.ao_samples = 0
        self.ai_values = 0
        self.n_set_dc = 0
        self.n_set_digital = 0
        self.last_shape: tuple[int, int, int] = (0, 0, 0)
        self.last_ao_v: np.ndarray | None = None
        self.busy_s = 0.0

    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        t0 = time.perf_counter()
        n = int(ao_v.shape[1])
        for i, c in enumerate(ao_channels):
            self._dc[c] = float(ao_v[i, -1])
        ai = tuple(ai_channels)
        out = np.full((len(ai), n), 0.0)  # written, like a driver's read buffer (np.zeros would be lazy)
        start = self._clock
        self._clock += n / rate_hz
        self.n_write_read += 1
        self.ao_samples += n
        self.ai_values += out.size
        self.last_shape = (int(ao_v.shape[0]), n, len(ai))
        self.last_ao_v = ao_v
        self.busy_s += time.perf_counter() - t0
        return Acquisition(out, float(rate_hz), start, ai)

    def set_dc(self, levels_v: dict[str, float]) -> None:
        t0 = time.perf_counter()
        self._dc.update({c: float(v) for c, v in levels_v.items()})
        self.n_set_dc += 1
        self.busy_s += time.perf_counter() - t0

    def dc_levels_v(self) -> dict[str, float]:
        return dict(self._dc)

    def set_digital(self, states: dict[str, bool]) -> None:
        t0 = time.perf_counter()
        self._digital.update({line: bool(v) for line, v in states.items()})
        self.n_set_digital += 1
        self.busy_s += time.perf_counter() - t0

    def digital_states(self) -> dict[str, bool]:
        return dict(self._digital)

    def identify(self) -> str:
        return (f"labtrain FakeDAQ ({len(self.ao_channels)} AO, {len(self.ai_channels)} AI, "
                f"{len(self.do_lines)} DO; instant, reads 0 V)")


class FakePotArray(PotArray):
    """A potentiometer array that answers at once and holds whatever taps it is given.

    Parameters
    ----------
    calibration : PotCalibration
        The tap table the chip is told about (``n_channels`` and ``n_taps`` come from it).

    Attributes
    ----------
    n_set_taps : int
        ``set_taps`` calls received.
    busy_s : float
        Wall time spent inside ``set_taps`` / ``get_taps``.
    """

    def __init__(self, calibration: PotCalibration) -> None:
        self.calibration = calibration
        self.n_channels = calibration.n_channels
        self.n_taps = calibration.n_taps
        self._taps = np.full(self.n_channels, self.n_taps - 1, np.int64)
        self.reset_counts()

    def reset_counts(self) -> None:
        """Zero the counters (the taps are kept)."""
        self.n_set_taps = 0
        self.busy_s = 0.0

    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        self._taps = np.array(taps, np.int64)
        self.n_set_taps += 1
        self.busy_s += time.perf_counter() - t0
        return self._taps.copy()

    def get_taps(self) -> np.ndarray:
        return self._taps.copy()

    def identify(self) -> str:
        return f"labtrain FakePotArray ({self.n_channels} channels, {self.n_taps} taps; instant)"


# ------------------------------------------------------------- builders
def _sections(kind: str, rate_hz: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """``[backend]`` and ``[wiring]`` with the experiment-file defaults (every node read)."""
    sections = parse_experiment({"backend": {"kind": kind, "rate_hz": float(rate_hz)}}, "<bench_instrument>")
    return sections["backend"], sections["wiring"]


def build_twin_chip(network: Network, rate_hz: float = RATE_HZ, seed: int = 0) -> InstrumentChip:
    """The chip ``backend = "twin"`` builds for ``network`` with every other setting at its default.

    Parameters
    ----------
    network : Network
        The chip's network.
    rate_hz : float
        DAQ sample clock.
    seed : int
        Seed of the twin (pot tolerances, noise).

    Returns
    -------
    InstrumentChip
        Over ``SafeDAQ(SimulatedDAQ)`` and ``SafePotArray(SimulatedPotArray)``; close it when done.
    """
    backend, wiring = _sections("twin", rate_hz)
    return build_instrument_chip(backend, wiring, network, None, seed)


def build_fake_chip(network: Network, rate_hz: float = RATE_HZ) -> tuple[InstrumentChip, FakeDAQ, FakePotArray]:
    """The chip ``backend = "hardware"`` builds, with :class:`FakeDAQ` / :class:`FakePotArray` as the instruments.

    Wiring, acquisition settings, safety limits and the nominal pot calibration
    are the experiment-file defaults, assembled by the same functions as on
    hardware; both fake ports are wrapped by the safety layer.

    Parameters
    ----------
    network : Network
        The chip's network.
    rate_hz : float
        DAQ sample clock.

    Returns
    -------
    (InstrumentChip, FakeDAQ, FakePotArray)
        The chip and the raw fake ports (for their counters); close the chip when done.
    """
    backend, wiring_section = _sections("hardware", rate_hz)
    wiring = build_wiring(backend, wiring_section, network)
    settings = acquisition_settings(backend)
    config = safety_config(backend, settings.rate_hz)
    ai = backend["ai_max_abs_v"]
    daq = FakeDAQ(wiring.ao_channels(), wiring.node_ai, wiring.output_switch_do, ai_range_v=(-ai, ai),
                  max_rate_hz=max(1e5, settings.rate_hz))
    calibration = PotCalibration.nominal(max(wiring.pot_channels) + 1, backend["pot_taps"],
                                         backend["pot_r_total_ohm"], backend["pot_r_wiper_ohm"],
                                         backend["pot_r_end_ohm"])
    pots = FakePotArray(calibration)
    safe_daq, safe_pots = SafeDAQ(daq, config), SafePotArray(pots, config)
    try:
        chip = InstrumentChip(network, wiring, safe_daq, safe_pots, settings, None, backend="fake")
    except Exception:
        safe_daq.close()
        safe_pots.close()
        raise
    return chip, daq, pots


def overhead_networks(seed: int = 0) -> list[Network]:
    """The networks of part (b): the 16-node lattice and a 100-node / 200-edge random network."""
    return [lattice(*TWIN_SHAPE, n_inputs=N_INPUTS, n_outputs=N_OUTPUTS),
            random_graph(RANDOM_NODES, RANDOM_EDGES, seed=seed, n_inputs=N_INPUTS, n_outputs=N_OUTPUTS)]


# ---------------------------------------------------------------- timing
def _say(progress: _Progress, text: str) -> None:
    if progress is not None:
        progress(text)


def _workload(batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in the default input range [0, 1] V, targets between the default off / on levels [0.2, 0.6] V."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (batch_size, N_INPUTS)), rng.uniform(0.2, 0.6, (batch_size, N_OUTPUTS))


def _steps(chip: InstrumentChip, inputs: np.ndarray, targets_v: np.ndarray, n_steps: int,
           probe: Callable[[], dict[str, float]]) -> tuple[list[float], list[dict[str, float]], int]:
    """Run ``n_steps`` timed CL steps after one warm-up step.

    Returns the wall time of each step, the change of every ``probe()`` value
    over each step and the number of measurement phases per step.
    """
    rule, optimizer = CoupledLearning(ETA), Adam(LEARNING_RATE)
    walls: list[float] = []
    deltas: list[dict[str, float]] = []
    phases = 0
    for k in range(n_steps + 1):  # step 0 warms caches and is not counted
        before = probe()
        t0 = time.perf_counter()
        estimate = rule.estimate(chip, inputs, targets_v)
        optimizer.apply(chip, estimate.gradient)
        wall = time.perf_counter() - t0
        after = probe()
        phases = estimate.n_phases
        if k:
            walls.append(wall)
            deltas.append({key: after[key] - before[key] for key in after})
    return walls, deltas, phases


def _median(deltas: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(d[key] for d in deltas))


def _twin_row(batch_size: int, n_steps: int, seed: int, progress: _Progress) -> dict:
    network = lattice(*TWIN_SHAPE, n_inputs=N_INPUTS, n_outputs=N_OUTPUTS)
    chip = build_twin_chip(network, RATE_HZ, seed)
    raw = chip.daq.daq
    try:
        _say(progress, f"twin: {TWIN_SHAPE[0]}x{TWIN_SHAPE[1]} lattice, batch {batch_size}, {n_steps} steps ...")
        inputs, targets_v = _workload(batch_size, seed)
        walls, deltas, phases = _steps(chip, inputs, targets_v, n_steps, lambda: {
            "acquired_s": chip.acquired_time_s, "clock_s": raw.simulated_time_s,
            "factorisations": float(raw.circuit.n_factorisations)})
    finally:
        chip.close()
    wall = statistics.median(walls)
    acquired, clock = _median(deltas, "acquired_s"), _median(deltas, "clock_s")
    s = chip.settings
    row = {
        "network": network.name, "n_nodes": network.n_nodes, "n_edges": network.n_edges,
        "batch_size": batch_size, "rate_hz": s.rate_hz, "plateau_samples": s.plateau_samples,
        "n_phases": phases, "steps_timed": len(walls),
        "wall_s": wall, "acquired_s": acquired, "clock_s": clock,
        "ratio": acquired / wall, "ratio_clock": clock / wall,
        "factorisations_per_step": _median(deltas, "factorisations"),
    }
    _say(progress, f"twin batch {batch_size}: {acquired * 1e3:.1f} ms acquired ({clock * 1e3:.1f} ms on the twin "
                   f"clock) in {wall * 1e3:.2f} ms wall -> {row['ratio']:.0f}x ({row['ratio_clock']:.0f}x)")
    return row


def _overhead_row(network: Network, batch_size: int, n_steps: int, seed: int, progress: _Progress) -> dict:
    chip, daq, pots = build_fake_chip(network, RATE_HZ)
    try:
        _say(progress, f"overhead: {network.name}, batch {batch_size}, {n_steps} steps ...")
        inputs, targets_v = _workload(batch_size, seed)
        walls, deltas, phases = _steps(chip, inputs, targets_v, n_steps, lambda: {
            "busy_s": daq.busy_s + pots.busy_s, "write_read": float(daq.n_write_read),
            "ao_samples": float(daq.ao_samples), "ai_values": float(daq.ai_values),
            "set_taps": float(pots.n_set_taps), "set_digital": float(daq.n_set_digital)})
        shape = daq.last_shape
    finally:
        chip.close()
    s = chip.settings
    own = [w - d["busy_s"] for w, d in zip(walls, deltas)]
    overhead = float(statistics.median(own))
    requested = phases * batch_size * s.plateau_samples
    ao_samples = _median(deltas, "ao_samples")
    hw_acq = ao_samples / s.rate_hz
    row = {
        "network": network.name, "n_nodes": network.n_nodes, "n_edges": network.n_edges,
        "batch_size": batch_size, "rate_hz": s.rate_hz, "plateau_samples": s.plateau_samples,
        "n_phases": phases, "steps_timed": len(walls),
        "overhead_s": overhead, "wall_s": float(statistics.median(walls)),
        "fake_ports_s": _median(deltas, "busy_s"),
        "requested_samples": requested, "ao_samples": ao_samples, "ramp_samples": ao_samples - requested,
        "hardware_acquisition_s": hw_acq,
        "overhead_fraction_of_acquisition": overhead / hw_acq,
        "overhead_share_of_step": overhead / (overhead + hw_acq),
        "write_read_per_step": _median(deltas, "write_read"),
        "set_digital_per_step": _median(deltas, "set_digital"),
        "set_taps_per_step": _median(deltas, "set_taps"),
        "ai_values_per_step": _median(deltas, "ai_values"),
        "last_write_shape": shape,
    }
    _say(progress, f"overhead {network.name}, batch {batch_size}: {overhead * 1e3:.2f} ms per step against "
                   f"{hw_acq * 1e3:.1f} ms of acquisition -> {row['overhead_share_of_step']:.1%} of a bench step")
    return row


def run_instrument_benchmark(quick: bool = False, progress: _Progress = None, seed: int = 0,
                             batch_sizes: Sequence[int] = (32, 256), twin_batch_sizes: Sequence[int] | None = None,
                             n_steps: int | None = None) -> dict:
    """Time the twin against real time and labtrain's own overhead per hardware step (see the module docstring).

    Parameters
    ----------
    quick : bool
        Fewer steps, a shorter pure-acquisition run, the twin at batch 32 only (seconds).
    progress : callable, optional
        Called with a status line before and after every configuration.
    seed : int
        Seed of the twin, the random network, the inputs and the targets.
    batch_sizes : sequence of int
        Batches of part (b) (each on both networks).
    twin_batch_sizes : sequence of int, optional
        Batches of part (a); default ``(32,)`` quick, ``(32, 256)`` otherwise.
    n_steps : int, optional
        Timed steps per configuration (after one warm-up step); default 3 quick, 20 otherwise.

    Returns
    -------
    dict
        ``"twin"``: one row per twin batch with ``wall_s`` (median step),
        ``acquired_s`` / ``clock_s`` (simulated time per step without / with
        the safety ramps), ``ratio`` / ``ratio_clock`` (those over ``wall_s``),
        ``n_phases``, ``factorisations_per_step`` and the configuration;
        ``"twin_acquisition"``: :func:`twin_speed_ratio`'s
        result (``ratio``, ``wall_s``, ``simulated_s``, ...);
        ``"overhead"``: one row per (network, batch) with ``overhead_s``
        (median step wall time less the fake ports' own time),
        ``hardware_acquisition_s`` (AO samples the DAQ received per step,
        ramps included, over the rate), ``overhead_fraction_of_acquisition``,
        ``overhead_share_of_step`` (``overhead / (overhead + acquisition)``),
        ``requested_samples`` / ``ao_samples`` / ``ramp_samples`` per step,
        call counts per step and ``last_write_shape`` ``(n_ao, n_samples, n_ai)``;
        ``"target_ratio"``, ``"meets_target"`` (every twin ``ratio`` >= target),
        ``"quick"``.
    """
    if n_steps is None:
        n_steps = 3 if quick else 20
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if twin_batch_sizes is None:
        twin_batch_sizes = (32,) if quick else (32, 256)
    for b in list(batch_sizes) + list(twin_batch_sizes):
        if int(b) < 1:
            raise ValueError(f"batch sizes must be >= 1, got {b}")

    twin = [_twin_row(int(b), n_steps, seed, progress) for b in twin_batch_sizes]
    duration = 0.2 if quick else 1.0
    _say(progress, f"twin acquisition alone: {duration:g} s of random waveforms at {RATE_HZ:g} Hz ...")
    pure = twin_speed_ratio(*TWIN_SHAPE, rate_hz=RATE_HZ, duration_s=duration, repeats=2 if quick else 5, seed=seed)
    _say(progress, f"twin acquisition alone: {pure['ratio']:.0f}x faster than real time")
    overhead = [_overhead_row(net, int(b), n_steps, seed, progress)
                for net in overhead_networks(seed) for b in batch_sizes]
    return {
        "twin": twin,
        "twin_acquisition": pure,
        "overhead": overhead,
        "target_ratio": TWIN_TARGET_RATIO,
        "meets_target": all(r["ratio"] >= TWIN_TARGET_RATIO for r in twin),
        "quick": bool(quick),
    }


# ---------------------------------------------------------------- report
def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return lines


def format_instrument_report(result: dict) -> str:
    """Plain-text report of :func:`run_instrument_benchmark`.

    Parameters
    ----------
    result : dict
        What :func:`run_instrument_benchmark` returned.

    Returns
    -------
    str
        The twin table (with the target verdict), the pure-acquisition ratio
        and the overhead table, each with a line saying what was timed.
    """
    lines = [f"(a) twin vs real time: CL training step on the instrument twin at "
             f"{result['twin'][0]['rate_hz'] / 1e3:g} kS/s" if result["twin"] else "(a) twin vs real time"]
    body = [(r["network"], str(r["n_nodes"]), str(r["batch_size"]), f"{r['wall_s'] * 1e3:.2f}",
             f"{r['acquired_s'] * 1e3:.1f}", f"{r['clock_s'] * 1e3:.1f}", f"{r['ratio']:.0f}x",
             f"{r['ratio_clock']:.0f}x") for r in result["twin"]]
    lines += _table(("network", "nodes", "batch", "wall (ms)", "acquired (ms)", "twin clock (ms)", "ratio",
                     "ratio (clock)"), body)
    target = result["target_ratio"]
    verdict = "met" if result["meets_target"] else "NOT met"
    lines.append(f"acquired = samples the chip asked for (phases x batch x plateau / rate); twin clock adds the "
                 f"safety ramps. Target ratio >= {target:g}x: {verdict}.")
    pure = result["twin_acquisition"]
    lines.append(f"twin acquisition alone (SimulatedDAQ.write_read, {pure['n_ao']} AO / {pure['n_ai']} AI, "
                 f"{pure['n_samples']} samples, new taps each time): {pure['simulated_s']:.3g} s simulated in "
                 f"{pure['wall_s'] * 1e3:.2f} ms -> {pure['ratio']:.0f}x")
    lines.append("")
    lines.append("(b) labtrain overhead per hardware step (SafeDAQ/SafePotArray over instant fake instruments)")
    body = [(r["network"], str(r["n_nodes"]), str(r["n_edges"]), str(r["batch_size"]),
             f"{r['overhead_s'] * 1e3:.2f}", f"{r['hardware_acquisition_s'] * 1e3:.1f}",
             f"{r['overhead_fraction_of_acquisition']:.1%}", f"{r['overhead_share_of_step']:.1%}",
             f"{int(r['ramp_samples'])}") for r in result["overhead"]]
    lines += _table(("network", "nodes", "edges", "batch", "overhead (ms)", "acquisition (ms)", "overhead/acq",
                     "share of step", "ramp samples"), body)
    lines.append("overhead = median step wall time less the fake ports' own time (waveforms, safety checks and "
                 "ramps, averaging, gradient, Adam, pot taps); acquisition = every AO sample a real DAQ would clock "
                 "out for the step (plateaus + safety ramps) / rate; share = overhead / (overhead + acquisition). "
                 "Driver task set-up and pot bus writes are not counted.")
    return "\n".join(lines)


def twin_speed_ratio(rows: int = 4, cols: int = 4, rate_hz: float = 1e4, duration_s: float = 1.0,
                     repeats: int = 5, change_taps: bool = True, seed: int = 0) -> dict[str, float]:
    """How much faster than real time the resistor-network twin acquires.

    Builds a ``rows x cols`` lattice chip (every node read, default wiring) on a
    :class:`SimulatedDAQ` with 16-bit converters, white and 1/f noise and an RC
    response, then times ``write_read`` of ``duration_s`` of random waveforms on
    every AO channel, reading every AI channel, at ``rate_hz``.  With
    ``change_taps`` every acquisition follows a new pot setting, so each one
    pays for a refactorisation (as in training).  Returns the best of
    ``repeats``: ``{"ratio": simulated_s / wall_s, "wall_s", "simulated_s",
    "n_nodes", "n_ai", "n_ao", "n_samples"}``.
    """
    network = lattice(rows, cols)
    twin = build_resistor_twin(network, seed=seed, daq_options=dict(
        noise_white_v=1e-4, noise_1f_v=1e-4, rc_time_s=1e-4, max_rate_hz=max(rate_hz, 1e5),
        record_history=False))
    daq, pots = twin.daq, twin.pots
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    ao = list(daq.ao_channels)
    ai = list(daq.ai_channels)
    best = np.inf
    for _ in range(repeats + 1):   # the first run warms caches and is not counted
        if change_taps:
            pots.set_taps(rng.integers(0, pots.n_taps, pots.n_channels))
        wave = rng.uniform(-1.0, 1.0, (len(ao), n))
        start = time.perf_counter()
        daq.write_read(ao, wave, ai, rate_hz, timeout_s=10 * duration_s + 10)
        wall = time.perf_counter() - start
        if _ > 0:
            best = min(best, wall)
    simulated = n / rate_hz
    return {"ratio": simulated / best, "wall_s": best, "simulated_s": simulated, "n_nodes": network.n_nodes,
            "n_ai": len(ai), "n_ao": len(ao), "n_samples": n}
