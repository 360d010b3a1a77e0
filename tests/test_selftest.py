"""``labtrain selftest``: a healthy twin passes; each injected bench fault is detected and named; the HDF5
report carries the per-channel tables with units; every exit path leaves the bench in its safe state."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from labtrain.cli import main
from labtrain.config import load_experiment
from labtrain.instruments.ports import PortTimeout
from labtrain.instruments.selftest import (InstrumentUnreachable, Thresholds, best_matches, fit_linear,
                                           parse_limits, parse_twin_faults, read_report, row_misfit,
                                           triangle_segments)
from labtrain.kinds.resistor import selftest as resistor_selftest_module
from labtrain.kinds.resistor.selftest import resistor_selftest
from labtrain.simulators.daq_twin import LinearCircuit, SimulatedDAQ
from labtrain.simulators.pot_twin import SimulatedPotArray

ROOT = Path(__file__).resolve().parents[1]
XOR = str(ROOT / "examples" / "xor_resistor_cl.toml")

DNPU_LOCKIN = """
[chip]
type = "dnpu"
model = "hopping"
model_seed = 5
data_electrodes = [1, 2]
control_electrodes = [0, 3, 4, 5, 6]

[backend]
kind = "twin"
rate_hz = 10000.0

[instruments.lockin]
driver = "sr830"
resource = "GPIB0::8::INSTR"

[task]
name = "xor"
input_low_v = -1.2
input_high_v = 0.6
target_on_v = -0.4
target_off_v = -1.2
decoder = "nearest_target"

[learning]
rule = "hge"
hge_mode = "sequential"
amplitudes_v = [0.03, 0.01, 0.01, 0.01, 0.01]
"""


def _twin(**backend):
    return load_experiment(XOR, {"backend": {"kind": "twin", **backend}})


def _row(report, table, channel):
    return next(r for r in report.table(table).rows if r.channel == channel)


@pytest.fixture()
def dnpu_file(tmp_path):
    path = tmp_path / "dnpu_lockin.toml"
    path.write_text(DNPU_LOCKIN)
    return str(path)


# ------------------------------------------------------------------------------------------ the command
def test_healthy_twin_passes_and_the_report_has_the_tables_with_units(tmp_path, capsys):
    out = tmp_path / "report.h5"
    assert main(["selftest", XOR, "--backend", "twin", "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "result: PASS" in text and "FAIL" not in text
    assert "safe state: AO at their safe levels; digital lines open; pots at their safe taps" in text
    rep = read_report(out)
    assert rep["attrs"]["status"] == "pass" and rep["attrs"]["exit_code"] == 0 and rep["attrs"]["backend"] == "twin"
    ai = rep["ai"]
    assert len(ai["channel"][0]) == 25 and set(ai["status"][0]) == {"pass"}
    assert ai["offset_v"][1] == "V" and ai["noise_v"][1] == "V" and ai["gain"][1] == "1" and ai["channel"][1] == ""
    inputs = [k for k, ch in enumerate(ai["channel"][0]) if ch in ("Dev1/ai0", "Dev1/ai10", "Dev1/ai20")]
    np.testing.assert_allclose(ai["gain"][0][inputs], 1.0, atol=2e-3)           # true loopbacks
    assert np.all(ai["noise_v"][0] < 5e-4) and np.all(np.abs(ai["offset_v"][0]) < 1e-3)
    pots = rep["pots"]
    assert len(pots["channel"][0]) == 40 and set(pots["status"][0]) == {"pass"}
    assert pots["step_up_s"][1] == "S" and pots["r_eff_ohm"][1] == "ohm"
    np.testing.assert_allclose(pots["step_down_s"][0], pots["step_down_expected_s"][0], rtol=0.05)
    assert rep["ao"]["gain"][1] == "1" and rep["ao"]["amplitude_v"][1] == "V"


@pytest.mark.parametrize("fault, table, channel, words", [
    ("dead_ai=Dev1/ai7", "ai", "Dev1/ai7", "dead: no response"),
    ("swap_ai=Dev1/ai3,Dev1/ai12", "ai", "Dev1/ai3", "swapped with Dev1/ai12"),
    ("stuck_pot=17", "pots", "pot 17", "stuck: the network does not change"),
    ("dead_ao=Dev1/ao1", "ao", "Dev1/ao1", "no response on any AI channel"),
], ids=["dead-ai", "swapped-ai", "stuck-pot", "dead-ao"])
def test_each_twin_fault_is_detected_and_named(fault, table, channel, words, tmp_path, capsys):
    out = tmp_path / "report.h5"
    assert main(["selftest", XOR, "--backend", "twin", "--twin-fault", fault, "--report", str(out)]) == 1
    text = capsys.readouterr().out
    assert "result: FAIL" in text and f"{table} {channel} (" in text and words in text
    rep = read_report(out)
    k = list(rep[table]["channel"][0]).index(channel)
    assert rep[table]["status"][0][k] == "fail" and words in rep[table]["note"][0][k]
    assert rep["attrs"]["exit_code"] == 1 and fault.split("=")[0] in rep["attrs"]["twin_faults"]


def test_a_swapped_pair_names_both_channels_and_nothing_else():
    rep = resistor_selftest(_twin(), {"twin_faults": parse_twin_faults(["swap_ai=Dev1/ai3,Dev1/ai12"])})
    assert [f"{t} {r.channel}" for t, r in rep.rows("fail")] == ["ai Dev1/ai3", "ai Dev1/ai12"]
    assert _row(rep, "ai", "Dev1/ai12").note == "swapped with Dev1/ai3: reads node 3"


def test_parts_with_tolerances_pass_and_neighbouring_nodes_swapped_are_still_found():
    """20 % (1 sigma) pot tolerance: the nominal model is off by up to ~30 %, the limits follow the declared
    tolerance; two adjacent nodes whose responses differ less than that are still told apart."""
    assert resistor_selftest(_twin(pot_tolerance=0.2), {}).status == "pass"
    rep = resistor_selftest(_twin(pot_tolerance=0.2), {"twin_faults": {"swap_ai": [("Dev1/ai6", "Dev1/ai7")]}})
    assert [r.note for _, r in rep.rows("fail")] == ["swapped with Dev1/ai7: reads node 7",
                                                     "swapped with Dev1/ai6: reads node 6"]


def test_dnpu_lockin_bench_passes_and_a_missing_lockin_is_named(dnpu_file, tmp_path, capsys):
    out = tmp_path / "dnpu.h5"
    assert main(["selftest", dnpu_file, "--report", str(out)]) == 0
    assert "result: PASS" in capsys.readouterr().out
    rep = read_report(out)
    li = rep["lockin"]
    assert li["status"][0][0] == "pass" and li["phase_deg"][1] == "deg" and li["frequency_hz"][1] == "Hz"
    assert abs(li["amplitude_ratio"][0][0] - 1) < 0.02
    assert len(rep["electrodes"]["channel"][0]) == 7 and set(rep["electrodes"]["status"][0]) == {"pass"}

    assert main(["selftest", dnpu_file, "--twin-fault", "no_lockin", "--report", str(out)]) == 3
    text = capsys.readouterr().out
    assert "result: UNREACHABLE" in text and "lockin lockin (lock-in): does not answer" in text
    assert "lock-in sine out at 0.004 V RMS (its minimum)" in text
    rep = read_report(out)
    assert rep["lockin"]["status"][0][0] == "unreachable" and set(rep["electrodes"]["status"][0]) == {"pass"}


def test_dnpu_dead_amplifier_channel_is_named(dnpu_file, tmp_path, capsys):
    assert main(["selftest", dnpu_file, "--twin-fault", "dead_ai=Dev1/ai0", "--report", str(tmp_path / "r.h5")]) == 1
    text = capsys.readouterr().out
    assert "output Dev1/ai0 (amplifier output (+gain x I)): dead: no electrode moves it" in text
    assert "no control electrode moved the output: no tone to read" in text


@pytest.mark.parametrize("argv, words", [
    (["--twin-fault", "dead_ai=Dev1/ai99"], "'Dev1/ai99' is not an AI channel of the wiring"),
    (["--twin-fault", "bogus=1"], "--twin-fault bogus: unknown fault"),
    (["--limit", "noise=1"], "--limit noise: unknown limit"),
    (["--limit", "noise_max_v=-1"], "limit noise_max_v = -1.0: expected a number > 0"),
    (["--twin-fault", "no_lockin"], "a resistor_network bench has no lock-in"),
    (["--backend", "hardware", "--twin-fault", "stuck_pot=1"], "--twin-fault applies to --backend twin"),
], ids=["unknown-channel", "unknown-fault", "unknown-limit", "bad-limit", "no-lockin-here", "fault-on-hardware"])
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    argv = ["selftest", XOR, *(["--backend", "twin"] if "--backend" not in argv else []), *argv,
            "--report", str(tmp_path / "r.h5")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "r.h5").exists()


def test_ideal_backend_is_refused(capsys):
    assert main(["selftest", XOR]) == 2
    assert "use --backend twin or hardware" in capsys.readouterr().err


def test_unreachable_instrument_exits_3(monkeypatch, capsys):
    def silent(*args, **kwargs):
        raise PortTimeout("Dev1: the device did not answer")

    monkeypatch.setattr(resistor_selftest_module, "open_resistor_bench", silent)
    assert main(["selftest", XOR, "--backend", "twin"]) == 3
    err = capsys.readouterr().err
    assert "instrument not reachable: Dev1: the device did not answer" in err and err.count("\n") == 1
    with pytest.raises(InstrumentUnreachable):
        resistor_selftest(_twin(), {})


# ------------------------------------------------------------------------------------------ safe state
def _capture_twin(monkeypatch, arm):
    """Let resistor_selftest open its twin as usual, keep the raw ports, ``arm(bench)`` before it runs."""
    real = resistor_selftest_module.open_resistor_bench
    seen = {}

    def opened(*args, **kwargs):
        bench = real(*args, **kwargs)
        seen["daq"], seen["pots"] = bench["daq"], bench["pots"]
        arm(bench)
        return bench

    monkeypatch.setattr(resistor_selftest_module, "open_resistor_bench", opened)
    return seen


def _assert_safe(seen):
    daq, pots = seen["daq"], seen["pots"]
    assert all(v == 0.0 for v in daq.dc_levels_v().values())
    assert not any(daq.digital_states().values())
    assert np.all(pots.held_taps == pots.n_taps - 1)


def test_a_driver_fault_mid_waveform_ends_in_the_safe_state(monkeypatch):
    """The DAQ aborts every acquisition part-way (outputs hold where they stopped): the run's retries, then
    the instrument is named unreachable and the bench is ramped to 0 V from the level it really holds."""
    seen = _capture_twin(monkeypatch, lambda b: b["daq"].inject_faults(50, "io", ("write_read",), when="during",
                                                                       seed=3))
    rep = resistor_selftest(_twin(), {})
    assert rep.exit_code == 3
    row = _row(rep, "instruments", "daq")
    assert row.status == "unreachable" and "stopped answering (AO -> AI ramps)" in row.note
    assert any(e.aborted for e in seen["daq"].history if hasattr(e, "aborted"))
    assert rep.safe_state.startswith("AO at their safe levels; digital lines open; pots at their safe taps")
    _assert_safe(seen)


def test_an_interrupt_during_the_pot_steps_ends_in_the_safe_state(monkeypatch):
    def arm(bench):
        pots, calls = bench["pots"], {"n": 0}
        original = pots.set_taps

        def set_taps(taps):
            calls["n"] += 1
            if calls["n"] == 6:
                raise KeyboardInterrupt
            return original(taps)

        pots.set_taps = set_taps

    seen = _capture_twin(monkeypatch, arm)
    with pytest.raises(KeyboardInterrupt):
        resistor_selftest(_twin(), {})
    _assert_safe(seen)


# ------------------------------------------------------------------------------------------ generic pieces
def test_triangle_segments_stay_inside_the_amplitude_and_the_step():
    ao, which = triangle_segments(np.array([1.0, 0.5]), leg_samples=10, gap_samples=3)
    assert ao.shape == (2, 2 * 43) and ao[:, 0].tolist() == [0, 0] and ao[:, -1].tolist() == [0, 0]
    assert ao[0].max() == 1.0 and ao[0].min() == -1.0 and ao[1].max() == 0.5
    assert np.max(np.abs(np.diff(ao, axis=1))) <= 0.1 + 1e-12
    assert np.all(ao[1, which == 0] == 0) and np.all(which[:3] == -1)
    ao, _ = triangle_segments(np.array([[-0.2, 0.4]]), 4, 0)
    assert ao.min() == -0.2 and ao.max() == 0.4


def test_fit_linear_recovers_slopes_offsets_and_noise():
    rng = np.random.default_rng(0)
    drive, _ = triangle_segments(np.array([1.0, 2.0]), 200, 10)
    slope = np.array([[0.5, -0.25], [0.0, 1.0]])
    read = slope @ drive + np.array([[0.01], [-0.02]]) + rng.normal(0, 1e-3, (2, drive.shape[1]))
    fit = fit_linear(drive, read)
    np.testing.assert_allclose(fit.slope, slope, atol=1e-4)
    np.testing.assert_allclose(fit.offset_v, [0.01, -0.02], atol=1e-4)
    np.testing.assert_allclose(fit.noise_v, 1e-3, rtol=0.1)


def test_best_matches_pairs_swapped_rows():
    expected = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.1]])
    measured = expected[[0, 2, 1, 3]] * 1.01
    match = best_matches(row_misfit(measured, expected, 0.01))
    assert match.tolist() == [0, 2, 1, 3]


def test_limits_and_faults_parse_or_refuse():
    assert parse_limits(["noise_max_v=0.002", "ramp_fraction=0.25"]) == Thresholds(noise_max_v=0.002,
                                                                                  ramp_fraction=0.25)
    with pytest.raises(ValueError, match="ramp_fraction = 2.0: expected a number in"):
        parse_limits(["ramp_fraction=2"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_limits(["noise_max_v"])
    assert parse_twin_faults(["dead_ai=A", "dead_ai=B", "swap_ai=C,D", "stuck_pot=3", "no_lockin"]) == {
        "dead_ai": ["A", "B"], "swap_ai": [("C", "D")], "stuck_pot": [3], "no_lockin": [True]}
    for bad, words in (("swap_ai=C", "two different channels"), ("stuck_pot=x", "pot channel number"),
                       ("dead_ai", "needs an argument"), ("no_lockin=1", "takes no argument")):
        with pytest.raises(ValueError, match=words):
            parse_twin_faults([bad])


# ------------------------------------------------------------------------------------------ twin faults
def test_daq_twin_wiring_faults_and_healing():
    circuit = LinearCircuit.loopback({"ai0": "ao0", "ai1": "ao1"})
    daq = SimulatedDAQ(circuit, adc_bits=None, dac_bits=None)
    wave = np.array([[1.0, 2.0], [3.0, 4.0]])
    daq.set_wiring_faults(swapped_ai=[("ai0", "ai1")])
    np.testing.assert_array_equal(daq.write_read(["ao0", "ao1"], wave, ["ai0", "ai1"], 100.0).ai_v, wave[::-1])
    daq.set_wiring_faults(dead_ai=["ai1"], dead_ao=["ao0"])
    assert daq.wiring_faults == {"dead_ai": ["ai1"], "swapped_ai": [], "dead_ao": ["ao0"]}
    np.testing.assert_array_equal(daq.write_read(["ao0", "ao1"], wave, ["ai0", "ai1"], 100.0).ai_v, 0 * wave)
    assert daq.dc_levels_v() == {"ao0": 2.0, "ao1": 4.0}          # what was sent is still what it reports
    daq.set_wiring_faults()
    np.testing.assert_array_equal(daq.write_read(["ao0", "ao1"], wave, ["ai0", "ai1"], 100.0).ai_v, wave)
    for kwargs, words in (({"dead_ai": ["ai9"]}, "unknown AI channel"), ({"dead_ao": ["ao9"]}, "unknown AO"),
                          ({"dead_ai": ["ai0"], "swapped_ai": [("ai0", "ai1")]}, "named twice")):
        with pytest.raises(ValueError, match=words):
            daq.set_wiring_faults(**kwargs)


@pytest.mark.parametrize("echo", ["written", "held"])
def test_pot_twin_stuck_parts(echo):
    pots = SimulatedPotArray(3, n_taps=16, tolerance=0.0)
    pots.set_stuck([1], echo=echo)
    got = pots.set_taps(np.array([2, 3, 4]))
    assert pots.held_taps.tolist() == [2, 8, 4] and pots.stuck_channels == (1,)
    reported = [2, 3, 4] if echo == "written" else [2, 8, 4]
    assert got.tolist() == reported and pots.get_taps().tolist() == reported
    pots.set_stuck()
    assert pots.set_taps(np.array([5, 5, 5])).tolist() == [5, 5, 5] and pots.held_taps.tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="outside 0..2"):
        pots.set_stuck([3])


# ------------------------------------------------------------------------------------------ hardware path (faked)
DNPU_HARDWARE = DNPU_LOCKIN.replace('kind = "twin"', 'kind = "hardware"\ndaq_device = "Dev4"').replace(
    '[instruments.lockin]\ndriver = "sr830"\nresource = "GPIB0::8::INSTR"',
    '[instruments.daq]\ndriver = "nidaq"\nresource = "Dev4"\n\n[instruments.lockin]\ndriver = "sr830"\n'
    'resource = "GPIB0::8::INSTR"\noptions = {{ visa_library = "{lib}@sim", timeout_s = 0.3 }}')


@pytest.fixture()
def dnpu_hardware(monkeypatch, tmp_path):
    """The DNPU bench on 'hardware': a fake nidaqmx (AI reads 0.5 x ao0: only e0 "moves the output") and a
    pyvisa-sim SR830 that answers *IDN? and X/Y but not OFLT? -- the drivers' lowest layers, as in
    test_bench_file."""
    from test_drivers import SIM_YAML, FakeNI

    FakeNI().install(monkeypatch).add_device("Dev4", "PCIe-6363", n_ao=8, n_ai=8, n_do=8)
    path = tmp_path / "dnpu_hw.toml"
    path.write_text(DNPU_HARDWARE.format(lib=SIM_YAML))
    return str(path)


def test_hardware_path_names_dead_electrodes_and_a_lockin_that_stops_answering(dnpu_hardware, tmp_path, capsys):
    assert main(["selftest", dnpu_hardware, "--report", str(tmp_path / "hw.h5")]) == 3
    text = capsys.readouterr().out
    rep = read_report(tmp_path / "hw.h5")
    el = dict(zip(rep["electrodes"]["channel"][0], zip(rep["electrodes"]["status"][0], rep["electrodes"]["note"][0])))
    assert el["Dev4/ao0"] == ("pass", "continuity only: no model of this device")
    assert all(el[f"Dev4/ao{k}"][0] == "fail" and "no response at the output" in el[f"Dev4/ao{k}"][1]
               for k in range(1, 7))
    assert rep["output"]["status"][0][0] == "pass" and set(rep["instruments"]["status"][0]) == {"pass"}
    note = rep["lockin"]["note"][0][0]   # the first query the simulated SR830 leaves unanswered (SLVL? or OFLT?)
    assert rep["lockin"]["status"][0][0] == "unreachable" and re.search(r"SR830: reading \w+: timed out", note)
    assert "electrodes at their safe levels (0 V); relays open" in text


def test_hardware_lockin_that_cannot_be_opened_is_named_and_the_daq_checks_run(dnpu_hardware, monkeypatch):
    from labtrain.kinds.dnpu import selftest as dnpu_selftest_module

    real = dnpu_selftest_module.build_dnpu_hardware

    def build(*args, instruments=None, **kwargs):
        if any(e.get("port") == "lockin" for e in instruments.values()):
            raise PortTimeout("SR830 at GPIB0::8::INSTR: *IDN? timed out")
        return real(*args, instruments=instruments, **kwargs)

    monkeypatch.setattr(dnpu_selftest_module, "build_dnpu_hardware", build)
    rep = dnpu_selftest_module.dnpu_selftest(load_experiment(dnpu_hardware), {})
    assert rep.exit_code == 3
    assert _row(rep, "instruments", "lockin").note == "could not be opened: PortTimeout: SR830 at GPIB0::8::INSTR: " \
                                                        "*IDN? timed out"
    assert _row(rep, "electrodes", "Dev4/ao0").status == "pass" and "lockin" not in [t.name for t in rep.tables]
