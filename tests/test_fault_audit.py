"""Twin audit of the safety layer under driver faults struck mid-waveform.

Driver exceptions are replayed at random samples inside waveforms
(``SimulatedDAQ.inject_faults(..., when="during")``: the generation stops at a
random sample, the AO holds the sample reached, the call raises) on the
resistor bench (DC and AC-tone measurements) and the DNPU bench (DC, software
AC and sequential lock-in measurements), many seeds each.  Afterwards the
twin's own record of every sample that reached the chip -- merged, in the order
it happened, with the lock-in's amplitude record and the sine-out routing on
the DNPU bench -- must show:

* 0 samples beyond any channel limit (on the DNPU bench: DC level plus or
  minus the sine routed onto the electrode);
* 0 slew violations: no step between consecutive samples of a channel larger
  than ``max_slew_v_per_s / rate_hz`` of the write it lands in (``set_dc``
  writes: the safety layer's ``ramp_rate_hz``, each held at least
  ``1 / ramp_rate_hz``);
* every channel at its safe level at the end (and the lock-in at its minimum
  amplitude, routed nowhere).

Two controls show the audit can fail: the pre-fix driver bookkeeping (after an
abort it reports the waveform's last sample) gives unramped steps, and the
pre-fix lock-in schedule (DC changed under the routed sine) pushes electrodes
past their limits.  ``python tests/test_fault_audit.py`` prints the counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from labtrain.chip.base import ClampNudge, Tone
from labtrain.instruments.ports import PortError, PortTimeout
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.dnpu.bench import InstrumentDNPUChip
from labtrain.kinds.dnpu.hardware import build_dnpu_twin
from labtrain.kinds.resistor.bench import AcquisitionSettings, InstrumentChip
from labtrain.kinds.resistor.twin import ResistorTwin, build_resistor_twin
from labtrain.physics.demod import PUBLISHED_DNPU_TONES_HZ, FrequencyPlan
from labtrain.physics.network import lattice
from labtrain.simulators import AOWrite, SimulatedDAQ

SLEW_RTOL = 1e-9   # a ramp computed at exactly the slew limit passes
V_ATOL = 1e-12     # volts: round-off in the limit comparisons
RATE_HZ = 10_000.0
FAULT_KINDS = ("timeout", "io")
DAQ_METHODS = ("write_read", "set_dc", "set_digital")
WAVEFORM_ONLY = ("write_read",)   # the driver raises inside a waveform (acquisitions and the layer's clocked ramps)
N_SEEDS = 40       # per scenario; every seed injects faults into several calls


# ===================================================================== the audit
@dataclass
class AuditReport:
    """What one twin record shows (see the module docstring)."""

    samples: int = 0
    beyond_limit: list[tuple[str, float, float, float]] = field(default_factory=list)  # channel, V, low, high
    slew_violations: list[tuple[str, float, float]] = field(default_factory=list)     # channel, step V, allowed V
    aborted_writes: int = 0            # generations cut off mid-waveform that reached the record
    aborted_away_from_safe: int = 0    # ... leaving a channel away from its safe level (a ramp was needed)
    not_safe_at_end: list[str] = field(default_factory=list)
    max_step_over_allowed: float = 0.0
    lowest_v: float = math.inf
    highest_v: float = -math.inf

    def add(self, other: "AuditReport") -> "AuditReport":
        return AuditReport(
            self.samples + other.samples, self.beyond_limit + other.beyond_limit,
            self.slew_violations + other.slew_violations, self.aborted_writes + other.aborted_writes,
            self.aborted_away_from_safe + other.aborted_away_from_safe, self.not_safe_at_end + other.not_safe_at_end,
            max(self.max_step_over_allowed, other.max_step_over_allowed), min(self.lowest_v, other.lowest_v),
            max(self.highest_v, other.highest_v))


def audit_twin_record(daq: SafeDAQ, lockin: Any = None, router: Any = None,
                      amplitude_rate_hz: float | None = None) -> AuditReport:
    """Replay everything the DAQ twin behind ``daq`` (and the lock-in twin / its router) put on the chip.

    Every channel starts at its power-up 0 V; every AO sample is checked against the channel's limits --
    widened by the sine out's peak ``sqrt(2) * amplitude`` on the electrode it is routed onto -- and its step
    from the previous sample against ``max_slew_v_per_s / rate_hz`` of its own write.  With
    ``amplitude_rate_hz``, every change of a routed sine's peak is a step checked against
    ``max_slew_v_per_s / amplitude_rate_hz`` of that electrode.
    """
    sim = daq.daq
    assert isinstance(sim, SimulatedDAQ) and not sim.history_truncated
    limits, ramp_rate = daq.limits, daq.ramp_rate_hz
    events: list[tuple[int, str, Any]] = [(e.seq, "ao", e) for e in sim.history if isinstance(e, AOWrite)]
    if lockin is not None:
        assert not lockin.history_truncated and not router.record_truncated
        events += [(a.seq, "amplitude", a) for a in lockin.amplitude_record]
        events += [(r.seq, "route", r) for r in router.record]
    events.sort(key=lambda item: item[0])
    level = {c: 0.0 for c in sim.ao_channels}
    amplitude_v, routed = 0.0, None
    report = AuditReport()

    def check(channel: str, values: np.ndarray) -> None:
        swing = math.sqrt(2) * amplitude_v if channel == routed else 0.0
        lim = limits[channel]
        low, high = values - swing, values + swing
        report.lowest_v, report.highest_v = min(report.lowest_v, low.min()), max(report.highest_v, high.max())
        for k in np.flatnonzero((low < lim.min_v - V_ATOL) | (high > lim.max_v + V_ATOL)):
            v = low[k] if low[k] < lim.min_v - V_ATOL else high[k]
            report.beyond_limit.append((channel, float(v), lim.min_v, lim.max_v))

    for _, kind, event in events:
        if kind == "ao":
            rate = event.rate_hz if event.rate_hz is not None else ramp_rate
            for row, channel in enumerate(event.channels):
                values = np.asarray(event.values_v[row], float)
                steps = np.abs(np.diff(np.concatenate([[level[channel]], values])))
                allowed = limits[channel].max_slew_v_per_s / rate
                report.max_step_over_allowed = max(report.max_step_over_allowed, float(steps.max()) / allowed)
                for k in np.flatnonzero(steps > allowed * (1 + SLEW_RTOL) + V_ATOL):
                    report.slew_violations.append((channel, float(steps[k]), allowed))
                check(channel, values)
                report.samples += values.size
                level[channel] = float(values[-1])
            if event.aborted:
                report.aborted_writes += 1
                report.aborted_away_from_safe += any(level[c] != limits[c].safe_level_v for c in event.channels)
        elif kind == "amplitude":
            if routed is not None and amplitude_rate_hz is not None:
                step = math.sqrt(2) * abs(event.amplitude_v - amplitude_v)
                allowed = limits[routed].max_slew_v_per_s / amplitude_rate_hz
                if step > allowed * (1 + SLEW_RTOL) + V_ATOL:
                    report.slew_violations.append((f"{routed} (lock-in sine peak)", step, allowed))
            amplitude_v = event.amplitude_v
            if routed is not None:
                check(routed, np.array([level[routed]]))
        else:
            routed = event.channel
            if routed is not None:
                check(routed, np.array([level[routed]]))
    report.not_safe_at_end = [c for c in sim.ao_channels if level[c] != limits[c].safe_level_v]
    if lockin is not None and (routed is not None or amplitude_v != lockin.min_amplitude_v):
        report.not_safe_at_end.append(f"lock-in ({amplitude_v} V RMS routed to {routed})")
    return report


# ============================================================ fault replay runner
@dataclass
class Replay:
    """Totals of one scenario: calls made, calls that failed after retries, faults the twins raised."""

    calls: int = 0
    failed_calls: int = 0
    daq_faults: int = 0
    lockin_faults: int = 0


def replay_faults(sim: SimulatedDAQ, calls: list[Callable[[], Any]], rng: np.random.Generator, replay: Replay,
                  lockin: Any = None) -> None:
    """Before every call arm 1..7 DAQ faults (random kind, struck mid-call; three times in four on waveforms
    only, else on DC and digital writes too) -- and 0..2 lock-in read faults when there is a lock-in -- then
    make the call; a call that still fails after the chip's retries is counted."""
    raised_before = sim.faults_raised
    lockin_before = lockin.faults_raised if lockin is not None else 0
    for call in calls:
        methods = WAVEFORM_ONLY if rng.random() < 0.75 else DAQ_METHODS
        sim.inject_faults(int(rng.integers(1, 8)), str(rng.choice(FAULT_KINDS)), methods, when="during",
                          seed=int(rng.integers(2**31)))
        if lockin is not None:
            lockin.inject_faults(int(rng.integers(0, 3)), str(rng.choice(FAULT_KINDS)))
        replay.calls += 1
        try:
            call()
        except PortError:
            replay.failed_calls += 1
    sim.inject_faults(0)
    if lockin is not None:
        lockin.inject_faults(0)
    replay.daq_faults += sim.faults_raised - raised_before
    replay.lockin_faults += (lockin.faults_raised - lockin_before) if lockin is not None else 0


# =================================================================== resistor bench
MAX_ABS_V, SLEW_V_PER_S = 2.0, 5000.0   # 0.5 V per sample at 10 kHz: 1.8 V jumps fit in 10 settling samples


def resistor_chip(seed: int, daq_class: type[SimulatedDAQ] = SimulatedDAQ) -> tuple[InstrumentChip, ResistorTwin]:
    net = lattice(3, 3, n_inputs=2, n_outputs=1)
    twin = build_resistor_twin(net, seed=seed, daq_options={"noise_white_v": 1e-4, "max_rate_hz": 1e5})
    if daq_class is not SimulatedDAQ:
        twin.daq = daq_class(twin.circuit, seed=seed + 1, noise_white_v=1e-4, max_rate_hz=1e5)
        twin.pots.clock = lambda: twin.daq.simulated_time_s
    cfg = SafetyConfig.from_settings(MAX_ABS_V, SLEW_V_PER_S, ramp_rate_hz=RATE_HZ)
    chip = InstrumentChip(net, twin.wiring, SafeDAQ(twin.daq, cfg, register=False),
                          SafePotArray(twin.pots, cfg, register=False),
                          AcquisitionSettings(rate_hz=RATE_HZ, settle_samples=10, average_samples=10, retries=2))
    return chip, twin


def resistor_calls(chip: InstrumentChip, rng: np.random.Generator) -> list[Callable[[], Any]]:
    """DC batches (free and clamped) and an AC-tone batch, inputs up to +-1.8 V."""
    x = rng.uniform(-1.8, 1.8, (6, chip.n_inputs))
    clamp = ClampNudge(rng.uniform(-1.8, 1.8, (6, chip.n_outputs)))
    plan = FrequencyPlan.from_frequencies([200.0, 400.0], RATE_HZ, 0.01)
    tones = [Tone("input", 0, 200.0, 0.1), Tone("input", 1, 400.0, 0.1)]
    x_ac = rng.uniform(-1.5, 1.5, (3, chip.n_inputs))
    return [lambda: chip.measure(x), lambda: chip.measure(x, clamp),
            lambda: chip.measure_ac(x_ac, tones, plan, settle_samples=10)]


def run_resistor(seed: int, replay: Replay, daq_class: type[SimulatedDAQ] = SimulatedDAQ) -> AuditReport:
    rng = np.random.default_rng(seed)
    chip, twin = resistor_chip(seed, daq_class)
    replay_faults(twin.daq, resistor_calls(chip, rng), rng, replay)
    chip.safe_state()
    report = audit_twin_record(chip.daq)
    chip.close()
    return report


# ====================================================================== DNPU bench
class TanhDNPU:
    """A cheap smooth DNPU stand-in: ``I = i0 tanh(w2 . tanh(W1 v + b1))``."""

    n_electrodes = 7

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w1, self.b1, self.w2 = rng.normal(0, 1.2, (7, 6)), rng.normal(0, 0.3, 6), rng.normal(0, 0.8, 6)

    def current_a(self, electrode_v: np.ndarray) -> np.ndarray:
        return 60e-9 * np.tanh(np.tanh(np.asarray(electrode_v, float) @ self.w1 + self.b1) @ self.w2)


def dnpu_chip(seed: int, max_slew_v_per_s: float = 200.0) -> InstrumentDNPUChip:
    return build_dnpu_twin(TanhDNPU(seed), lockin=True, seed=seed, rate_hz=RATE_HZ, noise_white_v=1e-4,
                           lockin_time_constant_s=0.01, lockin_settle_time_constants=5.0,
                           max_slew_v_per_s=max_slew_v_per_s)


def lockin_request(chip: InstrumentDNPUChip, rng: np.random.Generator, n_b: int = 4):
    """Inputs spread over the data range and, per example, the largest tone amplitudes that keep DC +- peak
    inside each electrode's range (a sine left routed while the next example's DC moves would leave it) and
    the sine's slope ``2 pi f peak`` within the slew limit."""
    lay = chip.layout
    lo, hi = np.asarray(lay.low_v), np.asarray(lay.high_v)
    data = list(lay.data_electrodes)
    x = rng.uniform(lo[data] + 0.05, hi[data] - 0.05, (n_b, len(data)))
    dc = lay.electrode_voltages(x, np.broadcast_to(chip.get_parameters(), (n_b, len(chip.get_parameters()))))
    freqs = PUBLISHED_DNPU_TONES_HZ[:2]
    targets = [("control", 0, lay.control_electrodes[0]), ("input", 0, data[0])]  # the input's tone last
    tones = []
    for f, (terminal, index, el) in zip(freqs, targets):
        margin = np.minimum(dc[:, el] - lo[el], hi[el] - dc[:, el])
        max_peak = 0.9 * chip.daq.limits[chip.electrode_ao[el]].max_slew_v_per_s / (2 * np.pi * f)
        tones.append(Tone(terminal, index, f, np.clip(0.9 * margin, 0.006, max_peak)))
    return x, tones, FrequencyPlan.from_frequencies(freqs, RATE_HZ, 0.05)


def dnpu_calls(chip: InstrumentDNPUChip, rng: np.random.Generator) -> list[Callable[[], Any]]:
    lay = chip.layout
    chip.set_parameters(rng.uniform(lay.control_low_v + 0.05, lay.control_high_v - 0.05))
    data = list(lay.data_electrodes)
    x = rng.uniform(np.asarray(lay.low_v)[data], np.asarray(lay.high_v)[data], (5, len(data)))
    plan = FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, RATE_HZ, 0.05)
    soft_tones = [Tone("control", k, f, 0.02) for k, f in enumerate(PUBLISHED_DNPU_TONES_HZ)]
    x_lock, lock_tones, lock_plan = lockin_request(chip, rng)
    return [lambda: chip.measure(x), lambda: chip.measure_ac(x[:3], soft_tones, plan, settle_samples=20),
            lambda: chip.measure_ac(x_lock, lock_tones, lock_plan, demodulator="lockin")]


def run_dnpu(seed: int, replay: Replay) -> AuditReport:
    rng = np.random.default_rng(1000 + seed)
    chip = dnpu_chip(seed)
    raw_lockin = chip.lockin.lockin
    replay_faults(chip.daq.daq, dnpu_calls(chip, rng), rng, replay, raw_lockin)
    chip.safe_state()
    report = audit_twin_record(chip.daq, raw_lockin, chip.lockin_router, amplitude_rate_hz=RATE_HZ)
    chip.close()
    return report


# ======================================================================== the tests
def assert_clean(report: AuditReport, replay: Replay) -> None:
    assert report.beyond_limit == [], f"{len(report.beyond_limit)} samples past a limit, first {report.beyond_limit[0]}"
    assert report.slew_violations == [], (f"{len(report.slew_violations)} unramped steps, first "
                                          f"{report.slew_violations[0]}")
    assert report.not_safe_at_end == []
    # the replay did what it claims: many faults, many generations cut off away from the safe level
    assert replay.daq_faults >= 4 * N_SEEDS and report.aborted_away_from_safe >= N_SEEDS
    assert replay.calls > replay.failed_calls > 0  # some calls recovered by retrying, some gave up


def test_resistor_bench_twin_audit_under_mid_waveform_faults():
    replay, total = Replay(), AuditReport()
    for seed in range(N_SEEDS):
        total = total.add(run_resistor(seed, replay))
    assert_clean(total, replay)
    assert total.highest_v > 1.5 and total.lowest_v < -1.5  # the waveforms did swing far from the safe level


def test_dnpu_bench_twin_audit_under_mid_waveform_and_lockin_faults():
    replay, total = Replay(), AuditReport()
    for seed in range(N_SEEDS):
        total = total.add(run_dnpu(seed, replay))
    assert_clean(total, replay)
    assert replay.lockin_faults > 0


class StaleDAQ(SimulatedDAQ):
    """The pre-fix driver bookkeeping: after an aborted generation it reports the waveform's last sample."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reported: dict[str, float] = {}

    def write_read(self, ao_channels, ao_v, ai_channels, rate_hz, timeout_s=10.0):
        try:
            return super().write_read(ao_channels, ao_v, ai_channels, rate_hz, timeout_s)
        except PortError:
            self._reported.update({c: float(ao_v[i, -1]) for i, c in enumerate(ao_channels)})
            raise

    def set_dc(self, levels_v):
        super().set_dc(levels_v)
        for c in levels_v:
            self._reported.pop(c, None)

    def dc_levels_v(self):
        return {**super().dc_levels_v(), **self._reported}


def test_audit_finds_the_unramped_steps_of_a_driver_that_reports_the_last_sample():
    replay, total = Replay(), AuditReport()
    for seed in range(4):
        total = total.add(run_resistor(seed, replay, StaleDAQ))
    assert len(total.slew_violations) > 0
    assert max(step for _, step, _ in total.slew_violations) > 1.0  # volts, straight from mid-waveform to 0 V


def old_lockin_schedule(chip: InstrumentDNPUChip, x: np.ndarray, tones: list[Tone]) -> None:
    """The pre-fix sequential loop: the next example's DC set while the previous example's sine is still routed."""
    lay, lockin, route = chip.layout, chip.lockin, chip.lockin_router
    n_b = len(x)
    dc = lay.electrode_voltages(x, np.broadcast_to(chip.get_parameters(), (n_b, len(chip.get_parameters()))))
    for b in range(n_b):
        chip.daq.set_dc(dict(zip(chip.electrode_ao, dc[b].tolist())))
        for tone in tones:
            el = (lay.data_electrodes if tone.terminal == "input" else lay.control_electrodes)[tone.index]
            lockin.amplitude_v = lockin.min_amplitude_v
            route(chip.electrode_ao[el])
            lockin.frequency_hz = tone.frequency_hz
            lockin.amplitude_v = float(np.broadcast_to(tone.amplitude, (n_b,))[b]) / math.sqrt(2)
            lockin.read_xy()
    chip.safe_state()


def lockin_schedules() -> tuple[AuditReport, AuditReport]:
    """The same lock-in batch through the chip's schedule and through the pre-fix one: both twin audits.

    Input 0 goes mid-range (-0.3 V), to one edge (-1.15 V), to the other (0.55 V) and back; its tone in each
    example is 90 % of that example's margin (0.81 V peak at -0.3 V; at 360 Hz its slope is 1.8 kV/s, so the
    electrodes get a 2.5 kV/s slew limit: the lock-in's amplitude then moves in steps of up to 0.25 V)."""
    chip = dnpu_chip(0, max_slew_v_per_s=2500.0)
    lay = chip.layout
    chip.set_parameters(0.5 * (lay.control_low_v + lay.control_high_v))
    x = np.array([[-0.3, -0.3], [-1.15, 0.55], [0.55, -1.15], [-0.3, -0.3]])
    _, tones, plan = lockin_request(chip, np.random.default_rng(0))
    el = lay.data_electrodes[0]
    margin = np.minimum(x[:, 0] - lay.low_v[el], lay.high_v[el] - x[:, 0])
    tones[1] = Tone("input", 0, tones[1].frequency_hz, 0.9 * margin)
    chip.measure_ac(x, tones, plan, demodulator="lockin")
    fixed = audit_twin_record(chip.daq, chip.lockin.lockin, chip.lockin_router, amplitude_rate_hz=RATE_HZ)
    old_lockin_schedule(chip, x, tones)
    old = audit_twin_record(chip.daq, chip.lockin.lockin, chip.lockin_router, amplitude_rate_hz=RATE_HZ)
    chip.close()
    return fixed, old


def test_audit_finds_the_excursions_of_the_old_lockin_schedule_and_the_new_one_has_none():
    fixed, old = lockin_schedules()
    assert fixed.beyond_limit == [] and fixed.slew_violations == [] and fixed.not_safe_at_end == []
    assert fixed.lowest_v < -1.19 and fixed.highest_v > 0.59  # the sine did reach close to both edges
    assert len(old.beyond_limit) > 0 and old.lowest_v < -1.9  # -1.15 V DC under the 0.81 V peak sine
    assert any("lock-in sine peak" in v[0] for v in old.slew_violations)  # it also jumped the amplitude


def test_lockin_schedule_is_checked_across_transitions_before_anything_is_sent():
    chip = dnpu_chip(1)
    lay = chip.layout
    chip.set_parameters(0.5 * (lay.control_low_v + lay.control_high_v))
    x = np.array([[-0.3, -0.3], [-1.15, 0.5]])
    _, tones, plan = lockin_request(chip, np.random.default_rng(1), n_b=2)
    tones[1] = Tone("input", 0, tones[1].frequency_hz, np.array([0.05, 0.1]))  # 0.1 V peak at -1.15 V: -1.25 V
    sim, li = chip.daq.daq, chip.lockin.lockin
    before = (len(sim.history), len(li.amplitude_record), len(chip.lockin_router.record))
    with pytest.raises(ValueError, match=r"input 0 \(electrode \w+\) on Dev1/ao1: example 1, tone 1 \(DC - 0.1 V "
                                         r"lock-in sine peak\) is -1.25 V, below min_v = -1.2 V \(allowed range "
                                         r"\[-1.2, 0.6\] V\); nothing was sent") as info:
        chip.measure_ac(x, tones, plan, demodulator="lockin")
    assert "\n" not in str(info.value)
    assert (len(sim.history), len(li.amplitude_record), len(chip.lockin_router.record)) == before
    chip.close()


# ------------------------------------------------------------- explicit port contracts
def test_chips_take_only_ports_behind_the_safety_layer():
    chip, twin = resistor_chip(0)
    with pytest.raises(TypeError, match=r"daq must be a DAQ port behind the safety layer \(labtrain.instruments."
                                        r"safety.SafeDAQ\), got SimulatedDAQ"):
        InstrumentChip(chip.network, twin.wiring, twin.daq, chip.pots)
    with pytest.raises(TypeError, match="pots must be a PotArray port behind the safety layer"):
        InstrumentChip(chip.network, twin.wiring, chip.daq, twin.pots)
    chip.close()
    dnpu = dnpu_chip(0)
    with pytest.raises(TypeError, match="daq must be a DAQ port behind the safety layer"):
        InstrumentDNPUChip(dnpu.daq.daq)
    with pytest.raises(TypeError, match="lockin must be a LockIn port behind the safety layer"):
        InstrumentDNPUChip(dnpu.daq, lockin=dnpu.lockin.lockin, lockin_router=dnpu.lockin_router)
    dnpu.close()


# ------------------------------------------------------------- named value checks
@pytest.mark.parametrize("make_request, message", [
    (lambda c: c.measure(np.array([[0.1, np.nan]] * 3)),
     r"measure: input 1 on Dev1/ao1: example 0 is nan, not a finite voltage \(allowed range \[-2, 2\] V\)"),
    (lambda c: c.measure(np.array([[0.1, 0.2], [0.3, np.inf]])),
     r"measure: input 1 on Dev1/ao1: example 1 is inf, not a finite voltage"),
    (lambda c: c.measure(np.array([[0.1, 0.2], [7.5, 0.0]])),
     r"measure: input 0 on Dev1/ao0: example 1 is 7.5 V, above max_v = 2 V \(allowed range \[-2, 2\] V\)"),
    (lambda c: c.measure(np.zeros((2, 2)), ClampNudge(np.array([[0.0], [-3.0]]))),
     r"measure: output 0 \(clamp\) on Dev1/ao2: example 1 is -3 V, below min_v = -2 V"),
    (lambda c: c.measure_ac(np.array([[0.1, np.nan]]), [], FrequencyPlan.from_frequencies([200.0], RATE_HZ, 0.01)),
     r"measure_ac: input 1 on Dev1/ao1: example 0 is nan, not a finite voltage"),
    (lambda c: c.measure_ac(np.array([[1.95, 0.0]]), [Tone("input", 0, 200.0, 0.1)],
                            FrequencyPlan.from_frequencies([200.0], RATE_HZ, 0.01)),
     r"measure_ac: input 0 on Dev1/ao0: example 0 \(highest sample\) is 2\.04\d* V, above max_v = 2 V"),
])
def test_resistor_bench_names_bad_values_before_any_shaping(make_request, message):
    chip, twin = resistor_chip(0)
    n_events = len(twin.daq.history)
    with pytest.raises(SafetyError, match=message) as info:
        make_request(chip)
    assert "\n" not in str(info.value)
    assert len(twin.daq.history) == n_events  # nothing was sent
    with pytest.raises(ValueError, match=r"conductance of edge 2 is nan S"):
        chip.set_parameters(np.where(np.arange(chip.network.n_edges) == 2, np.nan, 1e-3))
    chip.close()


def test_dnpu_bench_names_bad_values_before_any_shaping():
    chip = dnpu_chip(0)
    sim = chip.daq.daq
    n_events = len(sim.history)
    cases = [
        (lambda: chip.measure(np.array([[0.0, 0.0], [np.nan, 0.0]])),
         r"measure: input 0 \(electrode \w+\) on Dev1/ao1: example 1 is nan, not a finite voltage \(allowed range "
         r"\[-1.2, 0.6\] V\)"),
        (lambda: chip.measure(np.array([[0.0, 0.9]])),
         r"measure: input 1 \(electrode \w+\) on Dev1/ao2: example 0 is 0.9 V, above max_v = 0.6 V"),
        (lambda: chip.measure_ac(np.array([[0.0, -np.inf]]), [], FrequencyPlan.from_frequencies([200.0], RATE_HZ,
                                                                                              0.05)),
         r"measure_ac: input 1 \(electrode \w+\) on Dev1/ao2: example 0 is -inf, not a finite voltage"),
    ]
    for request, message in cases:
        with pytest.raises(SafetyError, match=message) as info:
            request()
        assert "\n" not in str(info.value)
    assert len(sim.history) == n_events
    chip.close()


# ------------------------------------------------------------ the NI driver itself
def test_nidaq_reports_the_sample_it_reached_and_the_safety_layer_ramps_from_there(monkeypatch, caplog):
    from test_drivers import FakeNI  # the nidaqmx fake of the driver tests (tests/ is on sys.path)
    from labtrain.drivers.nidaq import NIDAQ

    class AbortingNI(FakeNI):
        """Each armed failure strikes ``times[what]`` calls (default once), then the call works; a stopped AO
        task says how many samples it generated (``generated``; ``None``: it cannot tell)."""

        generated: int | None = None
        times: dict[str, int] = {}

        def _maybe_fail(self, what):
            if what in self.fail:
                code, left = self.fail[what], self.times.get(what, 1) - 1
                if left > 0:
                    self.times[what] = left
                else:
                    self.fail.pop(what)
                    self.times.pop(what, None)
                raise self.errors.DaqError(f"fake failure in {what}", code)

        def modules(self):
            mods = super().modules()
            fake, base = self, mods["nidaqmx"].Task

            class Task(base):
                def stop(self):
                    fake.log.append(("stop", self.id))
                    if fake.generated is not None:
                        self.out_stream.total_samp_per_chan_generated = fake.generated

            mods["nidaqmx"].Task = Task
            return mods

    ni = AbortingNI().install(monkeypatch)
    daq = NIDAQ("Dev1", ao_channels=["ao0"], ai_channels=["ai0"], max_rate_hz=1e5)
    wave = np.linspace(0.0, 1.9, 20)[None, :]
    for generated, held in ((7, wave[0, 6]), (0, 0.0), (50, wave[0, -1])):
        ni.generated, ni.fail = generated, {"read_many_sample": -200284}
        with pytest.raises(PortTimeout):
            daq.write_read(["ao0"], wave, ["ai0"], 1e3)
        assert daq.dc_levels_v()["Dev1/ao0"] == held
        assert ("stop", ni.calls("start")[-2][1]) in ni.log  # the AO generation was stopped before asking
        daq.set_dc({"ao0": 0.0})
    ni.generated, ni.fail = None, {"read_many_sample": -50103}  # the count cannot be read: unknown
    with pytest.raises(PortError):
        daq.write_read(["ao0"], wave, ["ai0"], 1e3)
    assert math.isnan(daq.dc_levels_v()["Dev1/ao0"])
    daq.set_dc({"ao0": 0.0})

    # behind the safety layer: the recovery ramp starts one step from the sample reached (1 V), not at 0 V
    cfg = SafetyConfig.from_settings(2.0, 100.0, ramp_rate_hz=1e3)  # 0.1 V per sample
    safe = SafeDAQ(daq, cfg, register=False)
    plateau = np.full((1, 30), 1.0)
    ni.generated, ni.fail = 15, {"read_many_sample": -200284}     # sample 14: the ramp up reached 1.0 V
    ni.log.clear()
    with pytest.raises(PortTimeout):
        safe.write_read(["Dev1/ao0"], plateau, ["Dev1/ai0"], 1e3)
    ramp = [c for c in ni.log if c[0] == "write_many"][-1]
    assert ramp[2] == (1, 10)                                       # 1.0 V -> 0 V in ten 0.1 V steps
    assert daq.dc_levels_v()["Dev1/ao0"] == 0.0
    # a level the driver cannot tell is stepped (the only move left), logged as an error, and blocks waveforms
    ni.generated, ni.fail = None, {"read_many_sample": -50103, "write_one_sample": -50103}
    ni.times = {"write_one_sample": 2}                              # the step and its stepped retry both fail
    with caplog.at_level(logging.ERROR, logger="labtrain.instruments.safety"):
        with pytest.raises(PortError):
            safe.write_read(["Dev1/ao0"], plateau, ["Dev1/ai0"], 1e3)
    assert "unknown level after an aborted generation" in caplog.text
    assert math.isnan(daq.dc_levels_v()["Dev1/ao0"])
    with pytest.raises(SafetyError, match="Dev1/ao0: the level it holds is unknown"):
        safe.write_read(["Dev1/ao0"], plateau, ["Dev1/ai0"], 1e3)
    safe.safe_state()
    assert daq.dc_levels_v()["Dev1/ao0"] == 0.0
    safe.close()


# ------------------------------------------------------------------ report numbers
def main() -> None:
    """Print the audit counts (README numbers): ``python tests/test_fault_audit.py``."""
    for name, run in (("resistor bench (DC + AC tones)", run_resistor), ("DNPU bench (DC, AC, lock-in)", run_dnpu)):
        replay, total = Replay(), AuditReport()
        for seed in range(N_SEEDS):
            total = total.add(run(seed, replay))
        print(f"{name}: {N_SEEDS} seeds, {replay.calls} calls, {replay.daq_faults} DAQ faults injected mid-call "
              f"({total.aborted_writes} generations cut off, {total.aborted_away_from_safe} away from the safe "
              f"level), {replay.lockin_faults} lock-in read faults, {replay.failed_calls} calls failed after "
              f"retries; {total.samples} AO samples audited: {len(total.beyond_limit)} past a limit, "
              f"{len(total.slew_violations)} unramped steps (largest step {total.max_step_over_allowed:.3f} x the "
              f"slew limit), {len(total.not_safe_at_end)} channels not safe at the end")
    stale, replay = AuditReport(), Replay()
    for seed in range(4):
        stale = stale.add(run_resistor(seed, replay, StaleDAQ))
    print(f"control, driver reporting the last sample after an abort: {len(stale.slew_violations)} unramped steps, "
          f"largest {max((s for _, s, _ in stale.slew_violations), default=0.0):.2f} V")
    fixed, old = lockin_schedules()
    print(f"lock-in schedule, DNPU electrodes [-1.2, 0.6] V: parked sine {len(fixed.beyond_limit)} samples past a "
          f"limit (lowest {fixed.lowest_v:.3f} V); pre-fix schedule {len(old.beyond_limit)} past a limit (lowest "
          f"{old.lowest_v:.3f} V)")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    main()
