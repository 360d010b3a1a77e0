"""InstrumentDNPUChip on the DNPU twin: circuit vs model, AC vs the ideal chip, waveform safety, lock-in mode."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.chip.base import AC_TONES, CapabilityError, Tone
from labtrain.kinds.dnpu.chip import DNPU, DNPUChip, DNPUMeasurement
from labtrain.kinds.dnpu.bench import InstrumentDNPUChip
from labtrain.physics.demod import PUBLISHED_DNPU_TONES_HZ, FrequencyPlan, in_phase_noise
from labtrain.kinds.dnpu.layout import default_layout
from labtrain.instruments.ports import PortTimeout
from labtrain.instruments.safety import SafetyError
from labtrain.simulators.daq_twin import AOWrite
from labtrain.kinds.dnpu.hardware import build_dnpu_twin
from labtrain.kinds.dnpu.twin import DNPUBenchCircuit

GATE_X = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])
AMPS_V = np.array([0.03, 0.01, 0.01, 0.006, 0.006])


class TanhDNPU:
    """Stand-in DNPU model: ``I = i0 tanh(w2 . tanh(W1 v + b1) + b2)`` (smooth, nonlinear, non-monotone)."""

    def __init__(self, n_electrodes: int = 7, hidden: int = 6, i0_a: float = 60e-9, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n_electrodes = n_electrodes
        self.w1 = rng.normal(0, 1.2, (n_electrodes, hidden))
        self.b1 = rng.normal(0, 0.3, hidden)
        self.w2 = rng.normal(0, 0.8, hidden)
        self.i0_a = i0_a

    def current_a(self, electrode_v: np.ndarray) -> np.ndarray:
        return self.i0_a * np.tanh(np.tanh(np.asarray(electrode_v, float) @ self.w1 + self.b1) @ self.w2 + 0.1)

    def snapshot(self) -> dict:
        return {"model": "TanhDNPU"}


class InterruptingModel(TanhDNPU):
    """Raises KeyboardInterrupt on its ``n``-th evaluation (mid-acquisition, inside the DAQ)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.calls, self.n = 0, n

    def current_a(self, electrode_v: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return super().current_a(electrode_v)


def plan_and_tones(amps=AMPS_V):
    plan = FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, 10_000.0, 0.05)
    return plan, [Tone("control", k, f, a) for k, (f, a) in enumerate(zip(PUBLISHED_DNPU_TONES_HZ, amps))]


@pytest.fixture
def model():
    return TanhDNPU()


def sim_of(chip):
    return chip.daq.daq


def test_bench_circuit_sign_and_clipping(model):
    layout = default_layout()
    circ = DNPUBenchCircuit(model, layout)
    v = np.random.default_rng(1).uniform(layout.low_v, layout.high_v, (50, 7)).T
    i = layout.clip(model.current_a(v.T))
    np.testing.assert_allclose(circ.ai_voltages(v, {})[0], -layout.gain_ohm * i)
    big = DNPUBenchCircuit(TanhDNPU(i0_a=500e-9), layout, inverting=False)
    out = big.ai_voltages(v, {})[0]
    assert np.max(np.abs(out)) == pytest.approx(layout.gain_ohm * layout.clip_a)
    with pytest.raises(ValueError, match="electrode"):
        DNPUBenchCircuit(TanhDNPU(n_electrodes=5), layout)


def test_shared_api(model):
    chip = build_dnpu_twin(model)
    lay = chip.layout
    assert chip.backend == "twin" and chip.n_inputs == 2 and chip.n_outputs == 1
    assert {AC_TONES, DNPU} <= chip.capabilities
    spec = chip.parameter_spec
    assert spec.name == "control_voltage" and spec.unit == "V"
    np.testing.assert_allclose(chip.get_parameters(), 0.5 * (lay.control_low_v + lay.control_high_v))
    took = chip.set_parameters(np.array([-5.0, 0.0, 0.1, 5.0, 0.0]))
    np.testing.assert_allclose(took, [-1.2, 0.0, 0.1, 0.6, 0.0])
    with pytest.raises(CapabilityError):
        chip.measure(GATE_X, nudge=object())
    with pytest.raises(CapabilityError):
        chip.measure(GATE_X, edge_drops=True)
    with pytest.raises(ValueError, match="range"):
        chip.measure(np.array([[0.7, 0.0]]))
    snap = chip.snapshot()
    assert snap["layout"] == lay.to_dict() and snap["daq"]["safety"]["channels"]["Dev1/ao6"]["min_v"] == -0.35
    chip.close()


def test_dc_plateaus_reproduce_model_within_noise(model):
    noise_v = 2e-4
    chip = build_dnpu_twin(model, noise_white_v=noise_v, average_samples=25, seed=3)
    ideal = DNPUChip(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 0.6, (12, 2))
    for controls in (chip.get_parameters(), rng.uniform(chip.parameter_spec.lower, chip.parameter_spec.upper)):
        chip.set_parameters(controls)
        ideal.set_parameters(controls)
        m = chip.measure(x)
        assert isinstance(m, DNPUMeasurement) and m.output_v.shape == (12, 1)
        # the reference: the model at what a 16-bit DAC on +-10 V writes (its 0.3 mV steps move a steep DNPU
        # by millivolts at the output), read through the amplifier
        dac_step = 20.0 / 2**16
        dac = lambda v: -10.0 + np.floor((v + 10.0) / dac_step + 0.5) * dac_step  # noqa: E731
        ev = dac(chip.layout.electrode_voltages(x, chip.get_parameters()))
        ref = chip.layout.clip(model.current_a(ev))[:, None] * chip.layout.gain_ohm
        assert np.max(np.abs(ref - ideal.measure(x).output_v)) > 1e-4      # the DAC steps do matter here
        lsb = 2 * 1.05 * 11.0 / 2**16
        tol = 5 * noise_v / np.sqrt(25) + lsb
        assert np.max(np.abs(m.output_v - ref)) < tol
        np.testing.assert_allclose(m.output_current_a, m.output_v / chip.layout.gain_ohm)
        assert np.ptp(ref) > 100 * tol                 # the comparison is not trivially flat
    chip.close()


def test_measure_ac_twin_equals_ideal_exactly_without_converters_and_noise(model):
    chip = build_dnpu_twin(model, noise_white_v=0.0, adc_bits=None, dac_bits=None)
    ideal = DNPUChip(model)
    plan, tones = plan_and_tones()
    a = chip.measure_ac(GATE_X, tones, plan, settle_samples=50)
    b = ideal.measure_ac(GATE_X, tones, plan, settle_samples=50)
    assert a.output.in_phase.shape == (4, 1, 5)
    np.testing.assert_allclose(a.waveforms, b.waveforms, atol=1e-12)
    np.testing.assert_allclose(a.output.in_phase, b.output.in_phase, atol=1e-12)
    np.testing.assert_allclose(a.output.dc, b.output.dc, atol=1e-12)
    chip.close()


def test_measure_ac_twin_equals_ideal_within_noise(model):
    noise_v = 1e-4
    chip = build_dnpu_twin(model, noise_white_v=noise_v, seed=5)
    ideal = DNPUChip(model)
    x = np.array([[-1.2, -1.2], [-0.3, 0.2], [0.6, 0.6]])
    plan, tones = plan_and_tones()
    a = chip.measure_ac(x, tones, plan, settle_samples=50).output
    b = ideal.measure_ac(x, tones, plan, settle_samples=50).output
    # white noise and ADC (0.35 mV LSB) give ~1e-5 V on X; the 16-bit DAC's 0.3 mV steps on the mV tones dominate
    dac_lsb = 20.0 / 2**16
    tol = 5 * in_phase_noise(noise_v, plan.window_samples) + 2 * dac_lsb * np.abs(b.in_phase / AMPS_V)
    assert np.all(np.abs(a.in_phase - b.in_phase) < tol + 1e-5)
    cos = np.sum(a.in_phase * b.in_phase) / np.linalg.norm(a.in_phase) / np.linalg.norm(b.in_phase)
    assert cos > 0.999
    chip.close()


def test_waveforms_start_end_at_zero_respect_slew_and_ranges(model):
    slew = 200.0
    chip = build_dnpu_twin(model, max_slew_v_per_s=slew)
    sim = sim_of(chip)
    plan, tones = plan_and_tones()
    chip.measure(GATE_X)
    chip.measure_ac(GATE_X, tones, plan, settle_samples=20)
    lay = chip.layout
    assert sim.n_acquisitions >= 2
    for k, ch in enumerate(chip.electrode_ao):
        t, v = sim.ao_record(ch)
        assert v[0] == 0.0 and v[-1] == 0.0
        assert v.min() >= lay.low_v[k] - 1e-12 and v.max() <= lay.high_v[k] + 1e-12
        for event in sim.history:
            if isinstance(event, AOWrite) and event.kind == "waveform" and ch in event.channels:
                row = event.values_v[event.channels.index(ch)]
                assert row[0] == pytest.approx(0.0, abs=slew / event.rate_hz) and row[-1] == 0.0
                assert np.max(np.abs(np.diff(row))) * event.rate_hz <= slew * (1 + 1e-9)
    assert all(abs(v) < 1e-12 for v in sim.dc_levels_v().values())
    # the scope view: the last acquisition's plateau layout
    w = chip.last_waveforms
    assert w["ao_v"].shape[1] == w["ai_v"].shape[1] == 4 * w["plateau_samples"]
    assert w["plateau_samples"] - w["settle_samples"] == plan.window_samples
    chip.close()


def test_out_of_range_control_or_amplitude_raises_before_anything_is_written(model):
    chip = build_dnpu_twin(model, lockin=True)
    sim = sim_of(chip)
    plan, tones = plan_and_tones()
    # control 4 (electrode 6, range [-0.35, 0.15]) at its top: a 6 mV tone crosses it
    chip.set_parameters(np.array([0.0, 0.0, 0.0, 0.0, 0.15]))
    before = (len(sim.history), sim.n_acquisitions, chip.lockin.amplitude_v)
    for demodulator in ("software", "lockin"):
        with pytest.raises(ValueError, match="range") as info:
            chip.measure_ac(GATE_X, tones, plan, demodulator=demodulator)
        assert "\n" not in str(info.value)
    big = [Tone("control", 0, PUBLISHED_DNPU_TONES_HZ[0], 1.0)]
    chip.set_parameters(np.zeros(5))
    with pytest.raises(ValueError, match="range"):
        chip.measure_ac(GATE_X, big, FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ[:1], 1e4, 0.05))
    with pytest.raises(ValueError, match="range"):
        chip.measure(np.array([[-1.3, 0.0]]))
    with pytest.raises(ValueError, match="range"):
        chip.acquire_electrodes(np.full((7, 10), 0.5))          # electrode 6 above 0.15 V
    # the safety layer itself refuses a slew violation (a tone too fast for the limit), nothing sent
    fast = [Tone("control", 0, 4000.0, 0.3)]
    with pytest.raises(SafetyError):
        chip.measure_ac(GATE_X[:1], fast, FrequencyPlan.from_frequencies([4000.0], 1e4, 0.05))
    assert (len(sim.history), sim.n_acquisitions, chip.lockin.amplitude_v) == before
    chip.close()


def test_keyboard_interrupt_mid_acquisition_ends_at_zero():
    model = InterruptingModel(n=-1)
    chip = build_dnpu_twin(model)
    sim = sim_of(chip)
    plan, tones = plan_and_tones()
    model.n = model.calls + 2
    chip.measure(GATE_X)                                      # one evaluation
    with pytest.raises(KeyboardInterrupt):
        chip.measure_ac(GATE_X, tones, plan)                   # the next raises inside write_read
    assert model.calls == model.n
    assert all(v == 0.0 for v in sim.dc_levels_v().values())
    for ch in chip.electrode_ao:
        assert sim.ao_record(ch)[1][-1] == 0.0
    chip.close()


def test_faults_are_retried_then_raised(model):
    chip = build_dnpu_twin(model, retries=2)
    sim = sim_of(chip)
    sim.inject_faults(2, "timeout", methods=("write_read",))
    out = chip.measure(GATE_X).output_v
    assert len(chip.fault_log) == 2 and out.shape == (4, 1)
    sim.inject_faults(3, "timeout", methods=("write_read",))
    with pytest.raises(PortTimeout, match="failed 3 times"):
        chip.measure(GATE_X)
    assert all(v == 0.0 for v in sim.dc_levels_v().values())
    chip.close()


def test_reseed_reproduces_twin_noise(model):
    chip = build_dnpu_twin(model, noise_white_v=1e-3)
    chip.reseed(7)
    a = chip.measure(GATE_X).output_v
    chip.reseed(7)
    b = chip.measure(GATE_X).output_v
    c = chip.measure(GATE_X).output_v
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    chip.close()


def test_lockin_sequential_agrees_with_software_demodulation(model):
    chip = build_dnpu_twin(model, lockin=True, noise_white_v=0.0, adc_bits=None, dac_bits=None,
                           lockin_time_constant_s=0.03)
    x = np.array([[-1.2, -1.2], [-0.3, 0.2], [0.6, 0.6]])
    plan, tones = plan_and_tones()
    soft = chip.measure_ac(x, tones, plan, settle_samples=50).output
    # one tone at a time in software too: the lock-in applies one tone at a time
    single = np.stack([chip.measure_ac(x, [t], plan).output.in_phase[:, 0, k] for k, t in enumerate(tones)], axis=1)
    t0 = sim_of(chip).simulated_time_s
    lock = chip.measure_ac(x, tones, plan, demodulator="lockin")
    assert lock.output.in_phase.shape == (3, 1, 5) and lock.output.dc.shape == (3, 1)
    np.testing.assert_allclose(lock.output.in_phase[:, 0], single, rtol=0, atol=2e-3 * np.max(np.abs(single)))
    np.testing.assert_allclose(lock.output.in_phase, soft.in_phase, rtol=0.05, atol=0.02 * np.abs(soft.in_phase).max())
    assert np.max(np.abs(lock.output.quadrature)) < 2e-3 * np.max(np.abs(single))
    # DC: read without tones; the software window's mean carries the tones' rectification (second order in a)
    np.testing.assert_allclose(lock.output.dc, chip.measure(x).output_v, atol=1e-9)
    np.testing.assert_allclose(lock.output.dc, soft.dc, atol=1e-3)
    # sequential: 3 examples x 5 tones x 10 time constants of settling on the twin clock
    assert sim_of(chip).simulated_time_s - t0 >= 15 * 10 * 0.03
    # it ends safe: sine out disconnected at its minimum, electrodes at 0 V
    assert chip.lockin_router.channel is None and chip.lockin.amplitude_v == pytest.approx(0.004)
    assert all(v == 0.0 for v in sim_of(chip).dc_levels_v().values())
    with pytest.raises(ValueError, match="one tone per plan frequency"):
        chip.measure_ac(x, tones[:3], plan, demodulator="lockin")
    chip.close()


def test_chip_without_lockin_refuses_lockin_mode(model):
    chip = build_dnpu_twin(model)
    plan, tones = plan_and_tones()
    with pytest.raises(CapabilityError, match="lock-in"):
        chip.measure_ac(GATE_X, tones, plan, demodulator="lockin")
    with pytest.raises(ValueError, match="demodulator"):
        InstrumentDNPUChip(chip.daq, demodulator="lockin")
    chip.close()


def test_digital_line_router_closes_one_relay_at_a_time(model):
    from labtrain.kinds.dnpu.bench import DigitalLineRouter
    from labtrain.instruments.safety import SafeDAQ
    from labtrain.simulators.daq_twin import SimulatedDAQ
    from labtrain.kinds.dnpu.hardware import dnpu_safety_config
    from labtrain.kinds.dnpu.layout import default_electrode_ao

    lay = default_layout()
    ao = default_electrode_ao(7)
    lines = {c: f"Dev1/port0/line{k}" for k, c in enumerate(ao)}
    sim = SimulatedDAQ(DNPUBenchCircuit(model, lay), do_lines=tuple(lines.values()))
    daq = SafeDAQ(sim, dnpu_safety_config(lay, ao, max_slew_v_per_s=200.0, ramp_rate_hz=1e4), register=False)
    router = DigitalLineRouter(daq, lines)
    router(ao[3])
    assert [k for k, v in sim.digital_states().items() if v] == ["Dev1/port0/line3"]
    router(ao[5])
    assert [k for k, v in sim.digital_states().items() if v] == ["Dev1/port0/line5"]
    with pytest.raises(ValueError, match="no lock-in relay"):
        router("Dev1/ao9")
    daq.safe_state()
    assert not any(sim.digital_states().values())
    with pytest.raises(ValueError, match="not a digital line"):
        DigitalLineRouter(daq, {ao[0]: "Dev1/port1/line0"})
    daq.close()


def test_homodyne_sequential_through_the_lockin_matches_parallel_software(model):
    from labtrain.protocols.homodyne import HomodyneGradient

    amps = (0.03, 0.01, 0.01, 0.006, 0.006)
    targets = np.array([[-1.5], [-0.5], [-0.5], [-1.5]])
    lock_chip = build_dnpu_twin(model, lockin=True, demodulator="lockin", noise_white_v=1e-4, seed=2)
    ideal = DNPUChip(model)
    seq = HomodyneGradient(amplitudes_v=amps, tones_hz=PUBLISHED_DNPU_TONES_HZ, mode="sequential")
    par = HomodyneGradient(amplitudes_v=amps, tones_hz=PUBLISHED_DNPU_TONES_HZ, mode="parallel")
    g_lock = seq.estimate(lock_chip, GATE_X, targets)
    g_soft = par.estimate(ideal, GATE_X, targets)
    assert g_lock.n_phases == 5
    cos = g_lock.gradient @ g_soft.gradient / np.linalg.norm(g_lock.gradient) / np.linalg.norm(g_soft.gradient)
    assert cos > 0.999
    np.testing.assert_allclose(g_lock.gradient, g_soft.gradient, rtol=0.05, atol=0.01 * np.abs(g_soft.gradient).max())
    lock_chip.close()


def _lockin_twin(chip):
    inner = chip.lockin
    while not hasattr(inner, "amplitude_record"):
        inner = inner.wrapped
    return inner


def test_lockin_amplitude_moves_within_the_slew_limit(model):
    """Sequential lock-in mode: the sine's amplitude is ramped onto and off an electrode in steps within the
    channel's slew limit (one step per 1 / rate_hz), and a tone whose own slope 2 pi f peak is too steep is
    refused before anything is sent."""
    plan, tones = plan_and_tones()          # steepest tone: 200 Hz at 30 mV peak, 37.7 V/s
    x = GATE_X[:2]
    ref = build_dnpu_twin(model, lockin=True, noise_white_v=0.0, adc_bits=None, dac_bits=None)
    want = ref.measure_ac(x, tones, plan, demodulator="lockin").output.in_phase
    slew = 40.0                             # V/s: 4 mV peak per step at 10 kHz, 7 steps up to 30 mV peak
    chip = build_dnpu_twin(model, lockin=True, noise_white_v=0.0, adc_bits=None, dac_bits=None,
                           max_slew_v_per_s=slew)
    twin = _lockin_twin(chip)
    n0 = len(twin.amplitude_record)
    got = chip.measure_ac(x, tones, plan, demodulator="lockin").output.in_phase
    np.testing.assert_allclose(got, want, rtol=1e-3)   # the ramps (< 1 ms) barely move the settled reading
    rec = twin.amplitude_record[n0:]
    levels = np.array([r.amplitude_v for r in rec])
    jumps_peak = np.sqrt(2) * np.abs(np.diff(levels))
    assert jumps_peak.max() <= slew / plan.rate_hz * (1 + 1e-9)
    assert np.sum(jumps_peak > 0) >= 2 * 2 * 7                      # up and down, per example, for tone 0
    assert levels.max() == pytest.approx(0.03 / np.sqrt(2))
    held_s = np.diff([r.t_s for r in rec])                 # held_s[k]: level k held before step k
    within_ramp = (jumps_peak[1:] > 0) & (jumps_peak[:-1] > 0)
    assert within_ramp.sum() >= 2 * 2 * 6
    assert np.all(held_s[1:][within_ramp] >= 1 / plan.rate_hz * (1 - 1e-9))
    # too steep for the limit: refused in one line, nothing sent
    sim = sim_of(chip)
    tight = build_dnpu_twin(model, lockin=True, max_slew_v_per_s=30.0)
    before = (len(sim_of(tight).history), len(_lockin_twin(tight).amplitude_record))
    with pytest.raises(ValueError, match="max_slew_v_per_s") as info:
        tight.measure_ac(x, tones, plan, demodulator="lockin")
    assert "\n" not in str(info.value) and "200 Hz" in str(info.value)
    assert (len(sim_of(tight).history), len(_lockin_twin(tight).amplitude_record)) == before
    for c in (chip, ref, tight):
        c.close()
    assert sim is not None


def test_lockin_fault_mid_tone_ramps_the_sine_down_before_opening_the_relay(model):
    """A lock-in reading that fails while the sine sits on an electrode at full amplitude: the exit path ramps
    the amplitude down from the level the lock-in holds, in steps within the slew limit, and only then opens
    the relay; the electrodes end at 0 V."""
    plan, tones = plan_and_tones()
    slew = 40.0                             # V/s: 4 mV peak per step at 10 kHz
    chip = build_dnpu_twin(model, lockin=True, noise_white_v=0.0, adc_bits=None, dac_bits=None,
                           max_slew_v_per_s=slew)
    twin = _lockin_twin(chip)
    routes = []
    router = chip.lockin_router
    chip.lockin_router = lambda channel: (routes.append((len(twin.amplitude_record), channel)), router(channel))[1]

    def broken_read():
        raise RuntimeError("GPIB timeout")

    chip.lockin.read_xy = broken_read
    n0 = len(twin.amplitude_record)
    with pytest.raises(RuntimeError, match="GPIB timeout"):
        chip.measure_ac(GATE_X[:1], tones, plan, demodulator="lockin")
    levels = np.array([r.amplitude_v for r in twin.amplitude_record[n0:]])
    top = int(np.argmax(levels))
    assert levels[top] == pytest.approx(0.03 / np.sqrt(2))           # the fault came at full amplitude
    down = levels[top:]
    assert np.all(np.diff(down) <= 0) and down[-1] == pytest.approx(0.004)
    assert np.sqrt(2) * np.abs(np.diff(down)).max() <= slew / plan.rate_hz * (1 + 1e-9)
    assert np.sum(np.diff(down) < 0) >= 6                             # ramped, not dropped in one write
    opened = [k for k, channel in routes if channel is None and k > n0 + top]
    assert opened and opened[0] >= n0 + len(levels) - 1               # the relay opens after the ramp
    assert router.channel is None and all(v == 0.0 for v in sim_of(chip).dc_levels_v().values())
    chip.close()
