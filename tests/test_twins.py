"""Instrument twins: DAQ (timing, noise, converters, history, faults), resistor bench circuit, pots, lock-in."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.signal import welch

from labtrain.physics.network import lattice
from labtrain.instruments.ports import PortIOError, PortTimeout
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.resistor.twin import ResistorBenchCircuit, build_resistor_twin
from labtrain.simulators import LinearCircuit, SimulatedDAQ, SimulatedLockIn, SimulatedPotArray
from instrumentlib import twin_speed_ratio
from labtrain.kinds.resistor.wiring import default_wiring

AO = ("Dev1/ao0", "Dev1/ao1")
AI = ("Dev1/ai0", "Dev1/ai1", "Dev1/ai2")


def loopback_daq(**kw) -> SimulatedDAQ:
    """ai0 <- ao0, ai1 <- ao1, ai2 unconnected."""
    circuit = LinearCircuit.loopback({"Dev1/ai0": "Dev1/ao0", "Dev1/ai1": "Dev1/ao1"})
    return SimulatedDAQ(circuit, ai_channels=AI, do_lines=("Dev1/port0/line0",), **kw)


# --------------------------------------------------------------------- DAQ
def test_step_appears_at_the_same_sample_index():
    daq = loopback_daq(adc_bits=None, dac_bits=None)
    wave = np.zeros((2, 100))
    wave[0, 37:] = 1.0
    wave[1] = np.linspace(-1, 1, 100)
    acq = daq.write_read(AO, wave, AI[:2], 1000.0)
    assert acq.ai_v.shape == (2, 100) and acq.channels == AI[:2]
    assert np.array_equal(acq.ai_v, wave)                     # sample k in, sample k out
    assert acq.ai_v[0, 36] == 0.0 and acq.ai_v[0, 37] == 1.0


def test_channel_order_follows_the_request():
    daq = loopback_daq(adc_bits=None, dac_bits=None)
    wave = np.array([[0.5] * 4, [-0.25] * 4])
    acq = daq.write_read(AO[::-1], wave, ("Dev1/ai2", "Dev1/ai0", "Dev1/ai1"), 100.0)
    assert np.allclose(acq.ai_v[:, 0], [0.0, -0.25, 0.5])     # ao1 got row 0, ao0 row 1; ai2 floats at 0


def test_read_only_acquisition_sees_the_held_levels():
    daq = loopback_daq(adc_bits=None, dac_bits=None)
    daq.set_dc({"Dev1/ao1": -0.4})
    acq = daq.write_read([], np.zeros((0, 6)), ["Dev1/ai1"], 100.0)
    assert acq.ai_v.shape == (1, 6) and np.all(acq.ai_v == -0.4)
    assert daq.simulated_time_s == pytest.approx(0.06)


def test_rc_response_is_first_order_and_continues_across_calls():
    tau, rate = 2e-3, 1e4
    daq = loopback_daq(adc_bits=None, dac_bits=None, rc_time_s=tau)
    a = np.exp(-1 / (rate * tau))
    first = daq.write_read(AO[:1], np.ones((1, 50)), AI[:1], rate).ai_v[0]
    assert np.allclose(first, 1 - a ** np.arange(1, 51), rtol=0, atol=1e-12)
    second = daq.write_read(AO[:1], np.ones((1, 50)), AI[:1], rate).ai_v[0]
    assert np.allclose(second, 1 - a ** np.arange(51, 101), rtol=0, atol=1e-12)   # no restart from 0 V
    daq.set_dc({"Dev1/ao0": 0.0})
    daq.sleep(50 * tau)                                        # nodes relax while the clock moves on
    third = daq.write_read(AO[:1], np.zeros((1, 3)), AI[:1], rate).ai_v[0]
    assert np.all(np.abs(third) < 1e-12)


def test_white_noise_rms_matches_setting():
    daq = loopback_daq(adc_bits=None, noise_white_v=2e-3, seed=3)
    acq = daq.write_read(AO, np.zeros((2, 100_000)), AI, 1e5)
    rms = acq.ai_v.std(axis=1)
    assert np.allclose(rms, 2e-3, rtol=0.02)
    assert abs(np.corrcoef(acq.ai_v[0], acq.ai_v[1])[0, 1]) < 0.02           # channels independent
    assert abs(np.corrcoef(acq.ai_v[0, :-1], acq.ai_v[0, 1:])[0, 1]) < 0.02  # samples independent


def test_one_over_f_spectrum_has_slope_minus_one():
    rate = 1e3
    daq = loopback_daq(adc_bits=None, noise_1f_v=1e-3, noise_1f_band_hz=(1e-3, rate / 2), seed=1)
    # Several acquisitions back to back: the noise must continue across calls.
    chunks = [daq.write_read(AO[:1], np.zeros((1, 2 ** 15)), AI[:1], rate, timeout_s=60).ai_v[0]
              for _ in range(8)]
    f, psd = welch(np.concatenate(chunks), fs=rate, nperseg=2 ** 14)
    band = (f >= 0.3) & (f <= 30)
    slope = np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]
    assert -1.15 < slope < -0.85
    white = loopback_daq(adc_bits=None, noise_white_v=1e-3).write_read(AO[:1], np.zeros((1, 2 ** 17)), AI[:1],
                                                                       rate, timeout_s=600).ai_v[0]
    f, psd = welch(white, fs=rate, nperseg=2 ** 14)
    assert abs(np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]) < 0.1   # the fit tells them apart


def test_one_over_f_rms_per_sample_matches_setting():
    daq = loopback_daq(adc_bits=None, noise_1f_v=1e-3, noise_1f_band_hz=(10.0, 1e4), seed=2)
    x = daq.write_read(AO[:1], np.zeros((1, 200_000)), AI[:1], 2e4).ai_v[0]
    assert x.std() == pytest.approx(1e-3, rel=0.1)


def test_adc_step_is_range_over_two_to_the_bits():
    daq = loopback_daq(adc_bits=8, dac_bits=None, ai_range_v=(-1.0, 1.0))
    ramp = np.linspace(-0.9, 0.9, 5000)[None]
    ai = daq.write_read(AO[:1], ramp, AI[:1], 1e4).ai_v[0]
    step = 2.0 / 2 ** 8
    codes = (ai + 1.0) / step
    assert np.allclose(codes, np.rint(codes), atol=1e-9)       # on the code grid
    assert np.allclose(np.unique(np.diff(np.unique(ai))), step)
    assert np.max(np.abs(ai - ramp[0])) <= step / 2 + 1e-12


def test_dac_quantises_what_the_circuit_sees():
    daq = loopback_daq(adc_bits=None, dac_bits=4, ao_range_v=(-8.0, 8.0))
    ai = daq.write_read(AO[:1], np.array([[0.3, 0.6, 1.2]]), AI[:1], 100.0).ai_v[0]
    assert np.allclose(ai, [0.0, 1.0, 1.0])                    # 1 V steps


def test_readings_clip_at_the_input_range():
    circuit = LinearCircuit(AO, AI[:1], np.array([[2.0, 0.0]]))
    daq = SimulatedDAQ(circuit, ai_range_v=(-5.0, 5.0), adc_bits=16)
    ai = daq.write_read(AO[:1], np.array([[4.0, -4.0, 1.0]]), AI[:1], 100.0).ai_v[0]
    lsb = 10.0 / 2 ** 16
    assert ai[0] == pytest.approx(5.0 - lsb) and ai[1] == -5.0 and ai[2] == pytest.approx(2.0, abs=lsb)


def test_simulated_clock_advances_by_duration():
    daq = loopback_daq(start_time_s=100.0)
    a = daq.write_read(AO, np.zeros((2, 250)), AI, 1000.0)
    b = daq.write_read(AO, np.zeros((2, 10)), AI, 50.0)
    assert a.start_time_s == 100.0 and b.start_time_s == pytest.approx(100.25)
    assert daq.simulated_time_s == pytest.approx(100.45)
    daq.sleep(1.5)
    assert daq.simulated_time_s == pytest.approx(101.95)


def test_history_records_every_sample_sent():
    daq = loopback_daq()
    rng = np.random.default_rng(0)
    w1 = rng.uniform(-1, 1, (2, 30))
    daq.write_read(AO, w1, AI, 1000.0)
    daq.set_dc({"Dev1/ao1": 0.7})
    w2 = rng.uniform(-1, 1, (1, 20))
    daq.write_read(AO[1:], w2, AI, 500.0)
    daq.set_digital({"Dev1/port0/line0": True})
    t0, v0 = daq.ao_record("Dev1/ao0")
    assert np.array_equal(v0, np.r_[0.0, w1[0]])
    assert np.allclose(t0, np.r_[0.0, np.arange(30) / 1000.0])
    t1, v1 = daq.ao_record("Dev1/ao1")
    assert np.array_equal(v1, np.r_[0.0, w1[1], 0.7, w2[0]])
    assert np.allclose(t1, np.r_[0.0, np.arange(30) / 1000.0, 0.03, 0.03 + np.arange(20) / 500.0])
    assert np.all(np.diff(t1) >= 0)
    td, sd = daq.digital_record("Dev1/port0/line0")
    assert td.tolist() == [pytest.approx(0.07)] and sd.tolist() == [True]
    summary = daq.ao_summary()["Dev1/ao1"]
    assert summary["max_v"] == pytest.approx(max(v1.max(), 0.0))
    assert summary["max_step_v"] == pytest.approx(np.abs(np.diff(v1)).max())
    assert daq.dc_levels_v() == {"Dev1/ao0": w1[0, -1], "Dev1/ao1": w2[0, -1]}


def test_history_off_keeps_summary():
    daq = loopback_daq(record_history=False)
    daq.write_read(AO[:1], np.array([[0.0, 2.0, -3.0]]), AI, 10.0)
    assert daq.history == []
    capped = loopback_daq(history_max_samples=5)
    capped.write_read(AO[:1], np.zeros((1, 4)), AI, 10.0)
    capped.write_read(AO[:1], np.zeros((1, 4)), AI, 10.0)
    assert len(capped.history) == 1 and capped.history_truncated and capped.snapshot()["history_truncated"]
    s = daq.ao_summary()["Dev1/ao0"]
    assert (s["min_v"], s["max_v"], s["max_step_v"], s["max_slew_v_per_s"]) == (-3.0, 2.0, 5.0, 50.0)


@pytest.mark.parametrize("kind, exc", [("timeout", PortTimeout), ("io", PortIOError)])
def test_fault_injection_raises_then_recovers(kind, exc):
    daq = loopback_daq()
    daq.inject_faults(2, kind=kind)
    with pytest.raises(exc):
        daq.write_read(AO, np.ones((2, 5)), AI, 100.0)
    with pytest.raises(exc):
        daq.set_dc({"Dev1/ao0": 1.0})
    assert daq.history == [] and daq.simulated_time_s == 0.0 and daq.dc_levels_v()["Dev1/ao0"] == 0.0
    acq = daq.write_read(AO, np.ones((2, 5)), AI, 100.0)        # recovered
    assert acq.ai_v[0, 0] == pytest.approx(1.0, abs=1e-3) and daq.faults_pending == 0


def test_fault_after_write_keeps_the_record():
    daq = loopback_daq()
    daq.inject_faults(1, kind="io", methods=("write_read",), when="after")
    with pytest.raises(PortIOError):
        daq.write_read(AO[:1], np.full((1, 10), 0.5), AI, 100.0)
    assert len(daq.ao_record("Dev1/ao0")[1]) == 11 and daq.simulated_time_s == pytest.approx(0.1)
    assert daq.dc_levels_v()["Dev1/ao0"] == 0.5


def test_fault_during_a_generation_holds_the_sample_reached():
    daq = loopback_daq(adc_bits=None, dac_bits=None, rc_time_s=1e-3)
    wave = np.vstack([np.linspace(0.1, 2.0, 20), np.linspace(-0.1, -2.0, 20)])
    seen = set()
    for seed in range(12):
        daq.set_dc({"Dev1/ao0": 0.0, "Dev1/ao1": 0.25})
        before_t, before_n = daq.simulated_time_s, len(daq.history)
        daq.inject_faults(1, kind="io", methods=("write_read",), when="during", seed=seed)
        with pytest.raises(PortIOError, match=r"generation aborted after \d+ of 20 samples") as info:
            daq.write_read(AO, wave, AI, 100.0)
        k = int(re.search(r"after (\d+) of", str(info.value)).group(1))
        seen.add(k)
        assert daq.simulated_time_s == pytest.approx(before_t + k / 100.0)
        if k == 0:  # the trigger never came: nothing generated, the previous levels held
            assert len(daq.history) == before_n and daq.dc_levels_v() == {"Dev1/ao0": 0.0, "Dev1/ao1": 0.25}
            continue
        event = daq.history[-1]
        assert event.aborted and np.array_equal(event.values_v, wave[:, :k])
        assert daq.dc_levels_v() == {"Dev1/ao0": wave[0, k - 1], "Dev1/ao1": wave[1, k - 1]}
        # the circuit saw the samples generated: the nodes start from where they left them
        acq = daq.write_read([], np.zeros((0, 1)), AI[:2], 1e4)
        assert acq.ai_v[1, 0] == pytest.approx(wave[1, k - 1], abs=1e-4)
    assert len(seen) > 6 and daq.faults_raised == 12  # random abort points, every fault struck


def test_fault_during_a_dc_write_is_lost_before_or_after_it_reached_the_device():
    outcomes = set()
    for seed in range(10):
        daq = loopback_daq()
        daq.inject_faults(1, kind="timeout", methods=("set_dc",), when="during", seed=seed)
        with pytest.raises(PortTimeout, match="command was lost|acknowledgement was lost") as info:
            daq.set_dc({"Dev1/ao0": 1.0})
        reached = "acknowledgement" in str(info.value)
        assert daq.dc_levels_v()["Dev1/ao0"] == (1.0 if reached else 0.0)
        assert len(daq.history) == int(reached)
        outcomes.add(reached)
    assert outcomes == {True, False}
    with pytest.raises(ValueError, match="when must be one of before, during, after"):
        loopback_daq().inject_faults(1, when="midway")


def test_records_carry_one_process_wide_order():
    daq = loopback_daq()
    lockin = SimulatedLockIn(amplitude_v=0.1)
    daq.set_dc({"Dev1/ao0": 0.5})
    lockin.amplitude_v = 0.2
    daq.set_digital({"Dev1/port0/line0": True})
    daq.write_read(AO[:1], np.zeros((1, 3)), AI, 100.0)
    seqs = [e.seq for e in daq.history]
    amp = [a.seq for a in lockin.amplitude_record]
    assert [a.amplitude_v for a in lockin.amplitude_record] == [0.1, 0.2]
    assert amp[0] < seqs[0] < amp[1] < seqs[1] < seqs[2]


def test_digital_writes_count_towards_the_history_cap():
    daq = loopback_daq(history_max_samples=3)
    for state in (True, False, True):
        daq.set_digital({"Dev1/port0/line0": state})
    assert len(daq.history) == 3 and not daq.history_truncated
    daq.set_digital({"Dev1/port0/line0": False})
    assert len(daq.history) == 3 and daq.history_truncated and daq.digital_states()["Dev1/port0/line0"] is False


@pytest.mark.parametrize("call, message", [
    (lambda d: d.write_read(["Dev1/ao9"], np.zeros((1, 3)), AI, 10.0), "unknown AO channel"),
    (lambda d: d.write_read(AO, np.zeros((1, 3)), AI, 10.0), "shape"),
    (lambda d: d.write_read(AO, np.zeros((2, 3)), ["Dev1/ai7"], 10.0), "unknown AI channel"),
    (lambda d: d.write_read(AO, np.zeros((2, 3)), AI, 2e5), "rate_hz"),
    (lambda d: d.write_read(AO, np.zeros((2, 3)), AI, 0.0), "rate_hz"),
    (lambda d: d.write_read(AO, np.full((2, 3), 10.5), AI, 10.0), "outside the output range"),
    (lambda d: d.write_read(AO, np.full((2, 3), np.nan), AI, 10.0), "non-finite"),
    (lambda d: d.write_read(["Dev1/ao0", "Dev1/ao0"], np.zeros((2, 3)), AI, 10.0), "twice"),
    (lambda d: d.write_read(AO, np.zeros((2, 100)), AI, 10.0, timeout_s=1.0), "timeout_s"),
    (lambda d: d.set_dc({"Dev1/ao0": -11.0}), "outside the output range"),
    (lambda d: d.set_digital({"Dev1/port0/line5": True}), "unknown DO channel"),
    (lambda d: d.set_digital({"Dev1/port0/line0": "yes"}), "True/False"),
])
def test_bad_requests_raise_value_error_and_send_nothing(call, message):
    daq = loopback_daq()
    with pytest.raises(ValueError, match=message):
        call(daq)
    assert daq.history == [] and daq.simulated_time_s == 0.0


def test_realtime_gaps_add_wall_time(monkeypatch):
    import labtrain.simulators.daq_twin as mod
    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    daq = loopback_daq(realtime_gaps=True)
    daq.set_dc({"Dev1/ao0": 0.1})
    now[0] += 0.25                                             # a caller's time.sleep(0.25)
    daq.set_dc({"Dev1/ao0": 0.2})
    t, v = daq.ao_record("Dev1/ao0")
    assert t.tolist() == [0.0, 0.0, 0.25] and v.tolist() == [0.0, 0.1, 0.2]


def test_daq_snapshot_is_json():
    daq = loopback_daq(noise_white_v=1e-4)
    snap = json.loads(json.dumps(daq.snapshot()))
    assert snap["adc_bits"] == 16 and snap["noise_white_v"] == 1e-4 and "SimulatedDAQ" in snap["identity"]


# ---------------------------------------------------------- resistor bench
def bench(series_ohm: float = 10.0, tolerance: float = 0.0, seed: int = 0, **pot_kw):
    net = lattice(4, 4, n_inputs=2, n_outputs=2)
    wiring = default_wiring(net, output_series_ohm=series_ohm)
    pots = SimulatedPotArray(net.n_edges, n_taps=256, r_total_ohm=1e5, r_wiper_ohm=pot_kw.pop("r_wiper_ohm", 0.0),
                             r_end_ohm=1e3, tolerance=tolerance, seed=seed, **pot_kw)
    pots.set_taps(np.random.default_rng(seed).integers(0, 256, net.n_edges))
    return net, wiring, pots, ResistorBenchCircuit(net, wiring, pots)


def test_open_switches_match_the_plain_network():
    net, wiring, pots, circuit = bench()
    g = pots.true_conductance_s()[list(wiring.pot_channels)]
    x = np.random.default_rng(1).uniform(-1, 1, (5, 2))
    out_ao = np.random.default_rng(2).uniform(-1, 1, (5, 2))
    ai = circuit.ai_voltages(np.c_[x, out_ao].T, {})
    expected = LinearResistorNetwork(net, g).steady_state(x).node_v.T
    assert np.allclose(ai, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(ai, 0)


def test_closed_switch_with_zero_series_clamps_the_output():
    net, wiring, pots, circuit = bench(series_ohm=0.0)
    closed = {line: True for line in wiring.output_switch_do}
    ao = np.array([[0.8, -0.5, 0.3, -0.2], [0.1, 0.2, -0.6, 0.9]]).T   # (4 AO, 2 samples)
    v_out = circuit.ai_voltages(ao, closed)[list(net.outputs)]
    assert np.allclose(v_out, ao[2:], atol=1e-5)
    free = circuit.ai_voltages(ao, {})[list(net.outputs)]
    assert not np.allclose(free, ao[2:], atol=1e-2)


def test_large_series_resistance_injects_current():
    r = 1e6
    net, wiring, pots, circuit = bench(series_ohm=r)
    closed = {line: True for line in wiring.output_switch_do}
    ao = np.array([[0.5, -0.4, 2.0, -3.0]]).T
    nodes = circuit.node_voltages(ao, closed)
    current = (ao[2:, 0] - nodes[list(net.outputs), 0]) / r
    assert np.allclose(circuit.output_current_a(ao, closed)[:, 0], current)
    g = pots.true_conductance_s()[list(wiring.pot_channels)]
    expected = LinearResistorNetwork(net, g).steady_state(ao[:2].T, output_current_a=current[None]).node_v[0]
    assert np.allclose(nodes[:, 0], expected, rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(current) > 1e-7)


def test_transfer_is_refactored_only_when_pots_or_switches_change():
    net, wiring, pots, circuit = bench()
    ao = np.ones((4, 3))
    circuit.ai_voltages(ao, {})
    circuit.ai_voltages(ao, {})
    assert circuit.n_factorisations == 1
    closed = {wiring.output_switch_do[0]: True}
    circuit.ai_voltages(ao, closed)
    circuit.ai_voltages(ao, {})                                # free phase again: cached
    assert circuit.n_factorisations == 2
    before = circuit.ai_voltages(ao, {})
    taps = pots.held_taps
    taps[0] = (taps[0] + 100) % 256
    pots.set_taps(taps)
    after = circuit.ai_voltages(ao, {})
    assert circuit.n_factorisations == 3 and not np.allclose(before, after)


def test_pot_tolerance_changes_truth_not_the_nominal_calibration():
    pots = SimulatedPotArray(24, n_taps=1024, r_total_ohm=1e5, r_wiper_ohm=50.0, tolerance=0.2, seed=5)
    nominal = pots.calibration
    assert np.all(nominal.r_total_ohm == 1e5) and nominal.tolerance == 0.2
    ratio = pots.true_calibration.r_total_ohm / 1e5
    assert 0.1 < ratio.std() < 0.3 and not np.allclose(ratio, 1.0)
    taps = np.full(24, 700)
    assert not np.allclose(pots.true_conductance_s(taps), nominal.conductance_s(taps), rtol=1e-3)
    assert np.allclose(pots.true_resistance_ohm(taps), 50.0 + ratio * 1e5 * 700 / 1023)
    ideal = SimulatedPotArray(24, n_taps=1024, r_total_ohm=1e5, r_wiper_ohm=50.0, tolerance=0.0)
    assert np.allclose(ideal.true_conductance_s(taps), ideal.calibration.conductance_s(taps))


def test_pot_array_validates_records_and_faults():
    clock = [0.0]
    pots = SimulatedPotArray(4, n_taps=16, clock=lambda: clock[0])
    assert pots.identify() == "labtrain SimulatedPotArray 4ch 16 taps"
    assert pots.get_taps().tolist() == [8, 8, 8, 8]           # mid-scale at power-up
    for bad in ([0, 1, 2], [0, 1, 2, 16], [0, 1, 2, -1], [0.5, 1, 2, 3], [True] * 4, ["1"] * 4):
        with pytest.raises(ValueError):
            pots.set_taps(np.array(bad))
    assert pots.history == []
    clock[0] = 2.5
    assert pots.set_taps(np.array([0.0, 1, 2, 15])).tolist() == [0, 1, 2, 15]
    t, taps = pots.taps_record()
    assert t.tolist() == [2.5] and taps.tolist() == [[0, 1, 2, 15]]
    pots.inject_faults(1, kind="io")
    with pytest.raises(PortIOError):
        pots.set_taps(np.zeros(4, int))
    assert pots.get_taps().tolist() == [0, 1, 2, 15] and len(pots.history) == 1
    snap = json.loads(json.dumps(pots.snapshot()))
    assert snap["taps"] == [0, 1, 2, 15] and snap["calibration"]["n_taps"] == 16


def test_pot_history_is_capped():
    pots = SimulatedPotArray(110, n_taps=1024, history_max_taps=110 * 50)
    rng = np.random.default_rng(0)
    for _ in range(80):
        pots.set_taps(rng.integers(0, 1024, 110))
    assert len(pots.history) == 50 and pots.history_truncated and pots.n_writes == 80
    assert pots.snapshot()["history_truncated"] and pots.taps_record()[1].shape == (50, 110)
    assert pots.get_taps().tolist() == pots.held_taps.tolist()  # the parts still take every write
    quiet = SimulatedPotArray(4, record_history=False)
    quiet.set_taps(np.zeros(4, int))
    assert quiet.history == [] and quiet.n_writes == 1
    with pytest.raises(ValueError, match="history_max_taps must be an integer >= 0"):
        SimulatedPotArray(4, history_max_taps=-1)


def test_resistor_twin_daq_reads_node_voltages():
    net = lattice(4, 4)
    twin = build_resistor_twin(net, daq_options={"adc_bits": 16})
    twin.pots.set_taps(np.random.default_rng(3).integers(0, 1024, twin.pots.n_channels))
    levels = np.array([[0.5, -0.3, 0.2]]).T.repeat(20, axis=1)
    acq = twin.daq.write_read(twin.wiring.ao_channels(), levels, twin.wiring.node_ai, 1e4)
    expected = twin.circuit.node_voltages(levels, twin.daq.digital_states())
    assert np.allclose(acq.ai_v, expected, atol=20.0 / 2 ** 16)
    assert np.ptp(expected) > 0.1
    # nominal pot range spans the network's conductance bounds
    assert np.allclose(twin.pots.calibration.g_max_s, net.g_max_s.max())
    assert np.allclose(twin.pots.calibration.g_min_s, net.g_min_s.min())
    assert twin.pots.history[-1].t_s == twin.daq.simulated_time_s - 20 / 1e4


def test_twin_runs_faster_than_real_time():
    result = twin_speed_ratio(duration_s=0.2, repeats=2)
    assert result["n_nodes"] == 16 and result["n_samples"] == 2000
    assert result["ratio"] > 2.0                               # ~60x on a laptop; loose for busy CI


# ------------------------------------------------------------------ lock-in
def test_lockin_recovers_amplitude_and_phase_in_noise():
    amp, phi, f = 0.2, np.radians(30.0), 1370.0
    rng = np.random.default_rng(0)
    sigma = 0.05
    lockin = SimulatedLockIn(lambda t: amp * np.sin(2 * np.pi * f * t + phi) + rng.normal(0, sigma, t.shape),
                             frequency_hz=f, time_constant_s=0.1)
    r = lockin.read_xy()
    # noise density sigma / sqrt(fs/2); 24 dB/oct ENBW = 5 / (64 tau)
    fs = 16 * f
    expected_std = sigma / np.sqrt(fs / 2) * np.sqrt(5 / (64 * 0.1))
    assert r.x_v == pytest.approx(amp / np.sqrt(2) * np.cos(phi), abs=6 * expected_std + 1e-6)
    assert r.y_v == pytest.approx(amp / np.sqrt(2) * np.sin(phi), abs=6 * expected_std + 1e-6)
    assert r.r_v == pytest.approx(amp / np.sqrt(2), rel=0.01) and r.theta_deg == pytest.approx(30.0, abs=1.0)


def test_lockin_noise_shrinks_with_time_constant():
    def spread(tau: float) -> float:
        lockin = SimulatedLockIn(transfer=0.1, frequency_hz=500.0, amplitude_v=1.0, time_constant_s=tau,
                                 noise_v_per_rthz=1e-3, seed=4)
        return float(np.std([lockin.read_xy().x_v for _ in range(40)]))
    short, long = spread(0.003), spread(0.1)
    assert short > 3 * long                                    # sqrt(0.1 / 0.003) = 5.8 expected
    assert long == pytest.approx(1e-3 * np.sqrt(5 / (64 * 0.1)), rel=0.4)


def test_lockin_transfer_sets_x_and_y():
    lockin = SimulatedLockIn(transfer=lambda f: 0.5 * np.exp(-1j * np.pi / 4), amplitude_v=0.2, frequency_hz=80.0,
                             time_constant_s=0.3)
    r = lockin.read_xy()
    assert r.x_v == pytest.approx(0.1 * np.cos(np.pi / 4), rel=1e-4)
    assert r.y_v == pytest.approx(-0.1 * np.sin(np.pi / 4), rel=1e-4)


def test_lockin_attached_to_the_resistor_twin():
    net = lattice(4, 4)
    twin = build_resistor_twin(net)
    ref, out = twin.wiring.input_ao[0], twin.wiring.node_ai[twin.wiring.read_nodes.index(net.outputs[0])]
    lockin = SimulatedLockIn(frequency_hz=211.0, amplitude_v=0.5, time_constant_s=0.1)
    lockin.attach(twin.daq, out, ref)
    gain = twin.circuit.transfer({})[twin.wiring.node_ai.index(out), 0]
    r = lockin.read_xy()
    assert r.x_v == pytest.approx(0.5 * gain, rel=1e-4) and abs(r.y_v) < 1e-4 * abs(r.x_v)
    assert 0 < gain < 1


def test_lockin_settings_validation_and_overload():
    lockin = SimulatedLockIn(transfer=1.0, amplitude_v=1.0, sensitivity_v=0.5, time_constant_s=0.01)
    assert "SR830" in lockin.identify()
    for name, value in (("frequency_hz", 0.0), ("frequency_hz", -5.0), ("time_constant_s", 0.0),
                        ("sensitivity_v", -1.0), ("amplitude_v", 6.0), ("amplitude_v", 0.0),
                        ("filter_slope_db", 9)):
        with pytest.raises(ValueError):
            setattr(lockin, name, value)
    lockin.time_constant_s = 0.0123                            # any positive value when not strict
    strict = SimulatedLockIn(strict=True, time_constant_s=0.3, sensitivity_v=0.05)
    with pytest.raises(ValueError, match="SR830"):
        strict.time_constant_s = 0.0123
    with pytest.raises(ValueError, match="SR830"):
        strict.sensitivity_v = 0.03
    assert lockin.read_xy().x_v == pytest.approx(1.0, rel=1e-3) and lockin.overloaded
    assert json.loads(json.dumps(lockin.snapshot()))["overloaded"] is True
    lockin.sensitivity_v = 2.0
    lockin.read_xy()
    assert not lockin.overloaded
    lockin.inject_faults(1)
    with pytest.raises(PortTimeout):
        lockin.read_xy()
    assert lockin.read_xy().x_v == pytest.approx(1.0, rel=1e-3)
