"""The nonlinear resistive chip on the bench: twin circuit, bench chip (pots, gate AOs, diodes), rules (FP with DC
activation, analytic), gradcheck, wiring and check, a safety audit under injected faults, and the example file
``xor_diode_fp.toml`` unchanged on the twin."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.chip.base import EDGE_DROPS, ClampNudge, CurrentNudge, Tone
from labtrain.config import ConfigError, load_experiment
from labtrain.instruments.ports import PortError, PortTimeout
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.nonlinear.bench import NonlinearBenchChip
from labtrain.kinds.nonlinear.hardware import nonlinear_safety_config
from labtrain.kinds.nonlinear.model import NonlinearEdges, NonlinearResistorNetwork, xor_diode_network
from labtrain.kinds.nonlinear.twin import NOMINAL_TEMPERATURE_K, build_nonlinear_twin, vary_diodes
from labtrain.kinds.nonlinear.wiring import WiringError, default_nonlinear_wiring
from labtrain.kinds.resistor.bench import AcquisitionSettings
from labtrain.physics.demod import FrequencyPlan
from labtrain.physics.network import lattice
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.protocols.fidelity import compare_gradients
from labtrain.protocols.frequency_propagation import FrequencyPropagation
from labtrain.training.launch import prepare_run
from labtrain.training.tasks import make_task

from cli_helpers import cli, with_lines, write
from test_fault_audit import Replay, audit_twin_record, replay_faults

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RATE_HZ = 2000.0
EXACT = {"noise_white_v": 0.0, "adc_bits": None, "dac_bits": None}   # a twin that is the model, to round-off


def mixed_network() -> tuple:
    """A 3x3 lattice (2 inputs, 1 output) of pots, transistors and diodes: every kind of bench element."""
    net = lattice(3, 3, n_inputs=2, n_outputs=1)
    kinds = [("linear", "transistor", "linear", "diode")[e % 4] for e in range(net.n_edges)]
    return net, NonlinearEdges.from_kinds(kinds, gate_min_v=0.6, gate_max_v=3.0)


def bench(net, edges, params=None, *, seed: int = 0, daq=None, slew: float = 1000.0, settle: int = 4,
          tolerance: float = 0.0, temperature_k: float = 0.0, output_series_ohm: float = 1e6, retries: int = 2):
    wiring = default_nonlinear_wiring(net, edges, output_series_ohm=output_series_ohm)
    twin = build_nonlinear_twin(net, edges, wiring, seed=seed, diode_tolerance=tolerance, temperature_k=temperature_k,
                                pot_options={"tolerance": 0.0}, daq_options=dict(EXACT if daq is None else daq))
    cfg = nonlinear_safety_config({"max_abs_v": 2.0, "max_slew_v_per_s": slew}, wiring, edges, RATE_HZ)
    pots = SafePotArray(twin.pots, cfg, register=False) if twin.pots is not None else None
    chip = NonlinearBenchChip(net, edges, wiring, SafeDAQ(twin.daq, cfg, register=False), pots,
                              AcquisitionSettings(rate_hz=RATE_HZ, settle_samples=settle, average_samples=6,
                                                  retries=retries), params)
    return chip, twin


def xor_batch():
    task = make_task("xor", complementary_inputs=True, bias_inputs_v=[1.0])
    return task.x_train, task.t_train


def random_parameters(net, edges, seed: int = 0) -> np.ndarray:
    nominal = NonlinearResistorNetwork(net, edges)
    rng = np.random.default_rng(seed)
    n_g = nominal.n_conductances
    return np.r_[np.exp(rng.uniform(np.log(nominal.lower[:n_g]), np.log(nominal.upper[:n_g]))),
                 rng.uniform(nominal.lower[n_g:], nominal.upper[n_g:])]


# ------------------------------------------------------------------ the twin's parts
def test_vary_diodes_spreads_forward_voltages_and_follows_temperature():
    edges = NonlinearEdges.uniform(4000, "diode")
    assert vary_diodes(edges) is edges and vary_diodes(edges, 0.0, NOMINAL_TEMPERATURE_K) is edges
    spread = vary_diodes(edges, 0.05, seed=3).params["ideality"]
    assert np.std(spread) == pytest.approx(0.05, rel=0.1) and np.mean(spread) == pytest.approx(1.0, abs=0.005)

    def forward_v(e: NonlinearEdges, current_a: float = 1e-3) -> float:
        p = e.params
        return float(p["ideality"][0] * p["thermal_voltage_v"][0] * np.log(current_a / p["saturation_current_a"][0]))

    one = NonlinearEdges.uniform(1, "diode")
    drift = (forward_v(vary_diodes(one, temperature_k=310.0)) - forward_v(one)) / (310.0 - NOMINAL_TEMPERATURE_K)
    assert -2.5e-3 < drift < -1.5e-3   # silicon: about -2 mV/K
    with pytest.raises(ValueError, match="diode tolerance"):
        vary_diodes(one, 1.5)


def test_twin_circuit_is_the_model_per_sample_and_injects_through_the_series_resistor():
    net, edges = mixed_network()
    params = random_parameters(net, edges, 1)
    chip, twin = bench(net, edges, params)
    circuit = twin.circuit
    n_in = len(net.inputs)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (7, n_in))
    gates = chip.get_parameters()[len(edges.indices("linear")):]
    ao = np.vstack([x.T, np.zeros((1, 7)), np.repeat(gates[:, None], 7, axis=1)])
    model = NonlinearResistorNetwork(net, edges, chip.get_parameters())
    np.testing.assert_allclose(circuit.node_voltages(ao, {}).T, model.steady_state(x).node_v, atol=1e-9)
    # closed switch: the current through the series resistor is what the model injects
    ao[n_in] = 0.3
    closed = {line: True for line in circuit.do_lines}
    current = circuit.output_current_a(ao, closed)[0]
    np.testing.assert_allclose(circuit.node_voltages(ao, closed).T,
                               model.steady_state(x, output_current_a=current[:, None]).node_v, atol=1e-9)
    assert np.all(np.abs(current) > 0)
    chip.close()


# ------------------------------------------------------------------ the bench chip
def test_bench_chip_measures_the_model_and_gates_go_through_the_daq():
    net, edges = mixed_network()
    chip, twin = bench(net, edges, random_parameters(net, edges, 2))
    spec = chip.parameter_spec
    assert spec.unit == "mixed" and spec.quantizer is None and EDGE_DROPS in chip.capabilities
    assert [b["name"] for b in chip.parameter_blocks()] == ["conductance", "gate_voltage"]
    n_g = len(edges.indices("linear"))
    # gates: held by the gate AOs (through set_dc), clipped to [gate_min_v, gate_max_v]
    took = chip.set_parameters(np.r_[chip.get_parameters()[:n_g], np.full(spec.size - n_g, 5.0)])
    assert np.all(took[n_g:] == 3.0)
    held = twin.daq.dc_levels_v()
    assert [held[c] for c in chip.wiring.gate_ao] == [3.0] * (spec.size - n_g)
    assert len(chip.parameter_labels()) == spec.size and chip.parameter_labels()[-1].startswith("Vg ")
    # a refused request writes nothing
    n_events = len(twin.daq.history)
    with pytest.raises(ValueError, match=r"set_parameters: Vg \d+-\d+ is nan; gate voltages must be finite"):
        chip.set_parameters(np.r_[took[:-1], np.nan])
    assert len(twin.daq.history) == n_events
    x = np.random.default_rng(1).uniform(-1, 1, (5, 2))
    model = chip.network_model()
    m = chip.measure(x, edge_drops=True)
    np.testing.assert_allclose(m.output_v, model.steady_state(x).output_v, atol=1e-9)
    # current injection: the AO at v_free + I R, exact up to Z_out / R (1e9 ohm here: the output may sit on a
    # nearly off diode or transistor, Z_out up to megaohms)
    norton, _ = bench(net, edges, chip.get_parameters(), output_series_ohm=1e9)
    shift = norton.measure(x, CurrentNudge(np.full((5, 1), 5e-10))).output_v - m.output_v
    expected = model.steady_state(x, output_current_a=np.full((5, 1), 5e-10)).output_v - m.output_v
    np.testing.assert_allclose(shift, expected, rtol=1e-2)
    norton.close()
    clamp, _ = bench(net, edges, chip.get_parameters(), output_series_ohm=0.0)   # a stiff clamp through the switch
    np.testing.assert_allclose(clamp.measure(x, ClampNudge(np.full((5, 1), 0.2))).output_v, 0.2, atol=1e-6)
    clamp.close()
    # the scope: inputs, output and gate channels; the output's AI row
    waves = chip.last_waveforms
    assert waves["ao_channels"] == list(chip.wiring.all_ao_channels()) and waves["output_ai_rows"] == [list(chip.wiring.read_nodes).index(net.outputs[0])]
    assert waves["ao_v"].shape[0] == len(waves["ao_channels"]) and np.all(waves["ao_v"][-1] == 3.0)
    chip.safe_state()   # gates ramp to 0 V; the next acquisition raises them again
    assert all(twin.daq.dc_levels_v()[c] == 0.0 for c in chip.wiring.gate_ao)
    np.testing.assert_allclose(chip.measure(x).output_v, m.output_v, atol=1e-9)
    assert [twin.daq.dc_levels_v()[c] for c in chip.wiring.gate_ao] == [3.0] * (spec.size - n_g)
    chip.close()


def test_gaps_ramp_between_windows_so_no_settling_is_needed():
    """1 V input jumps at 0.5 V per sample, no settling samples: the chip inserts ramps between the windows."""
    net, edges = xor_diode_network(4)
    chip, twin = bench(net, edges, random_parameters(net, edges), settle=0)
    x, _ = xor_batch()
    plan = FrequencyPlan.from_frequencies([80.0], RATE_HZ, 0.05)
    got = chip.measure_ac(x, [], plan, settle_samples=0)
    np.testing.assert_allclose(got.output.dc, chip.network_model().steady_state(x).output_v, atol=1e-9)
    assert chip.last_waveforms["plateau_samples"] == plan.window_samples + 1   # one ramp sample per window
    chip.close()
    report = audit_twin_record(chip.daq)
    assert report.slew_violations == [] and report.beyond_limit == [] and report.not_safe_at_end == []


# ------------------------------------------------------------------ rules on the bench
def test_fp_on_the_twin_measures_the_physical_gradient_with_unknown_parts():
    """Noise-free twin: FP equals the model's exact gradient up to the Norton source's Z_out / R; with diode
    tolerances and a warm bench it follows the physical device, the nominal model does not."""
    net, edges = xor_diode_network(4)
    x, t = xor_batch()
    params = random_parameters(net, edges)
    fp = FrequencyPropagation(1e-6, activation_hz=0.0, settle_s=0.0)
    for tolerance, temperature in ((0.0, 0.0), (0.1, 0.0), (0.0, 320.0)):
        chip, twin = bench(net, edges, params, tolerance=tolerance, temperature_k=temperature)
        est = fp.estimate(chip, x, t).gradient
        physical = NonlinearResistorNetwork(net, twin.circuit.edges, chip.get_parameters()).exact_gradient(x, t)
        vs_physical, vs_model = compare_gradients(est, physical), compare_gradients(est, chip.reference_gradient(x, t))
        assert vs_physical.cosine > 1 - 1e-6 and vs_physical.relative_error < 2e-3
        if tolerance or temperature:
            assert vs_model.cosine < 0.998 and vs_model.relative_error > 0.05
            analytic = compare_gradients(AnalyticGradient().estimate(chip, x, t).gradient, physical)
            assert analytic.relative_error > 10 * vs_physical.relative_error   # the model's, not the device's
        chip.close()


def test_fp_and_analytic_on_a_bench_with_transistor_gates():
    net, edges = mixed_network()
    chip, _ = bench(net, edges, random_parameters(net, edges, 4))
    x = np.random.default_rng(5).uniform(0, 1, (4, 2))
    t = np.full((4, 1), 0.3)
    exact = chip.reference_gradient(x, t)
    assert compare_gradients(AnalyticGradient().estimate(chip, x, t).gradient, exact).cosine > 1 - 1e-9
    fp = FrequencyPropagation(1e-6, activation_hz=0.0, settle_s=0.0)
    assert compare_gradients(fp.estimate(chip, x, t).gradient, exact).cosine > 0.9999
    chip.close()


# ------------------------------------------------------------------ safety audit
def audit_calls(chip, rng):
    n_g = len(chip.edges.indices("linear"))
    spec = chip.parameter_spec
    x = rng.uniform(-1.8, 1.8, (5, chip.n_inputs))
    plan = FrequencyPlan.from_frequencies([80.0, 160.0], RATE_HZ, 0.025)
    tones = [Tone("input", 0, 80.0, 0.1), Tone("output_current", 0, 160.0, 2e-7)]
    new = spec.lower + rng.uniform(0, 1, spec.size) * spec.span
    return [lambda: chip.measure(x), lambda: chip.measure(x, ClampNudge(rng.uniform(-1.8, 1.8, (5, 1)))),
            lambda: chip.measure(x[:3], CurrentNudge(np.full((3, 1), 3e-7))),
            lambda: chip.set_parameters(np.r_[new[:n_g], new[n_g:]]),
            lambda: chip.measure_ac(x[:3], tones, plan, settle_samples=4, edge_drops=True)]


def run_audit(n_seeds: int) -> tuple[Replay, list, list[str]]:
    """Replay faults on ``n_seeds`` mixed benches (pots, gates, diodes); then a pot fault past the retries and the
    safe state.  Returns the replay totals, one audit per bench and the gate channels' names."""
    net, edges = mixed_network()
    replay, totals = Replay(), []
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        chip, twin = bench(net, edges, random_parameters(net, edges, seed), seed=seed, slew=5000.0,
                           daq={"noise_white_v": 1e-4})
        replay_faults(twin.daq, audit_calls(chip, rng), rng, replay)
        twin.pots.inject_faults(3, "io")
        with pytest.raises(PortError):
            chip.set_parameters(chip.parameter_spec.upper)   # a pot fault past the retries
        chip.safe_state()
        totals.append(audit_twin_record(chip.daq))
        assert np.all(twin.pots.held_taps == twin.pots.n_taps - 1)   # pots at their safe (highest-R) tap
        assert chip.daq.limits[chip.wiring.gate_ao[0]].max_v == 3.0 and chip.daq.limits["Dev1/ao0"].max_v == 2.0
        chip.close()
    return replay, totals, list(chip.wiring.gate_ao)


def test_safety_audit_under_mid_waveform_faults():
    """Driver faults struck mid-waveform (acquisitions, gate ramps, switch writes): 0 samples past a limit
    (inputs/outputs +-2 V, gates [0, 3] V), 0 unramped steps, every channel safe at the end."""
    replay, totals, _ = run_audit(12)
    assert sum(len(r.beyond_limit) for r in totals) == 0
    assert sum(len(r.slew_violations) for r in totals) == 0
    assert all(r.not_safe_at_end == [] for r in totals)
    assert replay.daq_faults >= 40 and sum(r.aborted_away_from_safe for r in totals) >= 12
    assert replay.calls > replay.failed_calls > 0
    assert max(r.highest_v for r in totals) > 2.0   # gates above the signal limit, inside their own


def test_keyboard_interrupt_mid_acquisition_leaves_gates_and_inputs_at_zero():
    net, edges = mixed_network()
    chip, twin = bench(net, edges, random_parameters(net, edges))
    original, calls = twin.daq.write_read, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    twin.daq.write_read = interrupted
    with pytest.raises(KeyboardInterrupt):
        chip.measure(np.full((2, 2), 1.5))
    assert len(calls) > 1   # the safety layer's ramp to the safe level
    assert all(v == 0.0 for v in twin.daq.dc_levels_v().values())
    twin.daq.inject_faults(3, "timeout", ("write_read",))
    with pytest.raises(PortTimeout, match="failed 3 times"):
        chip.measure(np.full((2, 2), 0.5))
    assert len(chip.fault_log) == 3
    chip.close()


def test_out_of_limit_levels_are_refused_before_anything_is_sent():
    net, edges = mixed_network()
    chip, twin = bench(net, edges)
    n_events = len(twin.daq.history)
    with pytest.raises(SafetyError, match=r"measure: input 1 on Dev1/ao1: example 0 is 2.5 V, above max_v = 2 V"):
        chip.measure(np.array([[0.0, 2.5]]))
    with pytest.raises(SafetyError, match=r"output 0 \(current nudge x output_series_ohm\) on Dev1/ao2"):
        chip.measure(np.zeros((1, 2)), CurrentNudge(np.array([[5e-6]])))
    assert len(twin.daq.history) == n_events
    chip.close()
    # a safety layer that does not allow the gate range: the chip refuses to start, nothing is sent
    tight = SafeDAQ(twin.daq, SafetyConfig.from_settings(2.0, 1000.0, ramp_rate_hz=RATE_HZ), register=False)
    n_events = len(twin.daq.history)
    with pytest.raises(SafetyError, match=r"gate range: gate of edge 1 \(1-2\) on Dev1/ao3: gate_max_v is 3 V, "
                                          r"above max_v = 2 V"):
        NonlinearBenchChip(net, edges, chip.wiring, tight, chip.pots)
    assert len(twin.daq.history) == n_events


# ------------------------------------------------------------------ experiment files
def test_example_runs_unchanged_on_the_twin_and_solves_xor():
    exp = load_experiment(EXAMPLES / "xor_diode_fp.toml", {"backend": {"kind": "twin"}, "run": {"epochs": 100}})
    assert exp["wiring"]["output_series_ohm"] == 1e6   # fp on a bench: 1 / gamma, a Norton source
    run = prepare_run(exp, store=False)
    assert isinstance(run.chip, NonlinearBenchChip) and run.chip.backend == "twin"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run.run()
    run.chip.close()
    # FP's quadrature check compares against the noise floor: read noise at gamma = 1e-6 is no phase shift
    assert not [str(w.message) for w in caught if "quadrature" in str(w.message)]
    assert result.final["train_accuracy"] == 1.0 and result.final["train_loss"] < 0.015
    assert [e["train_accuracy"] for e in run.evals][-2:] == [1.0, 1.0]
    assert run.chip.acquired_time_s > 2 * 100 * 4 * 0.05   # two acquisitions of 4 windows of 50 ms per step


def test_check_on_twin_and_hardware_applies_no_voltage(tmp_path, capsys, monkeypatch):
    from labtrain.simulators import daq_twin

    written = []
    original = daq_twin.SimulatedDAQ.write_read
    monkeypatch.setattr(daq_twin.SimulatedDAQ, "write_read", lambda *a, **k: written.append(1) or original(*a, **k))
    f = EXAMPLES / "xor_diode_fp.toml"
    code, out, err = cli(["check", f, "--backend", "twin"], capsys)
    assert code == 0, err
    assert "no voltage applied" in out and "gate_ao" in out and "SimulatedDAQ" in out and written == []
    code, out, err = cli(["check", f, "--backend", "hardware"], capsys)   # no NI driver here: one line
    assert code == 2 and err.count("\n") == 1 and "[backend]" in err


TRANSISTOR = """\
[chip]
type = "nonlinear_resistor"
topology = "lattice"
rows = 3
cols = 3
edge_kind = "transistor"
[backend]
kind = "twin"
rate_hz = 2000.0
[task]
name = "xor"
complementary_inputs = true
decoder = "nearest_target"
[learning]
rule = "analytic"
[run]
epochs = 2
"""


def test_transistor_lattice_from_a_file_and_wiring_errors(tmp_path, capsys):
    setup = build_setup(load_experiment(write(tmp_path, TRANSISTOR)))
    chip = setup.chip
    assert chip.parameter_spec.unit == "V" and chip.pots is None and len(chip.wiring.gate_ao) == 12
    assert chip.daq.limits[chip.wiring.gate_ao[0]].max_v == 3.0
    chip.close()
    twice = ", ".join(f'"Dev1/ao{k}"' for k in [0] + list(range(6, 17)))
    for extra, needle in (('gate_ao = ["Dev1/ao6"]', "gate_ao lists 1 channels for 12 transistor edges"),
                          (f"gate_ao = [{twice}]", "AO channel 'Dev1/ao0' is wired twice")):
        with pytest.raises(ConfigError, match=r"\[wiring\] " + needle):
            build_setup(load_experiment(write(tmp_path, TRANSISTOR + f"[wiring]\n{extra}\n", "bad.toml")))
    layered = (EXAMPLES / "xor_diode_fp.toml").read_text().replace('kind = "ideal"', 'kind = "twin"')
    with pytest.raises(ConfigError, match=r"\[wiring\] pot_channels lists 2 channels for 34 linear edges"):
        build_setup(load_experiment(write(tmp_path, layered + "[wiring]\npot_channels = [0, 1]\n", "pots.toml")))


def test_gradcheck_on_the_twin(tmp_path, capsys):
    text = (EXAMPLES / "xor_diode_fp.toml").read_text().replace('kind = "ideal"', 'kind = "twin"')
    text = with_lines(text, "backend", "twin_noise_white_v = 0.0", "twin_adc_bits = 32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        code, out, err = cli(["gradcheck", write(tmp_path, text)], capsys)
    assert code == 0, err
    assert "nominal nonlinear network" in out
    rows = [line for line in out.splitlines() if line.startswith("fp ")]
    assert "refused: measure_ac: output 0 (current tones)" in rows[0]   # gamma x 10: a 6 V swing through 1 MOhm
    assert float(rows[1].split("A/V")[1].split()[0]) > 0.9999           # the file's gamma


def main() -> None:
    """Print the audit counts (README numbers): ``python tests/test_nonlinear_bench.py``."""
    logging.getLogger("labtrain.instruments.safety").setLevel(logging.CRITICAL)   # the layer's own fault notes
    n_seeds = 40
    replay, totals, gates = run_audit(n_seeds)
    print(f"nonlinear bench (pots, {len(gates)} gate AOs, diodes; DC, clamp, current nudge, AC + current tones, "
          f"gate moves): {n_seeds} seeds, {replay.calls} calls, {replay.daq_faults} DAQ faults injected mid-call "
          f"({sum(r.aborted_writes for r in totals)} generations cut off, "
          f"{sum(r.aborted_away_from_safe for r in totals)} away from the safe level), {replay.failed_calls} calls "
          f"failed after retries; {sum(r.samples for r in totals)} AO samples audited: "
          f"{sum(len(r.beyond_limit) for r in totals)} past a limit, {sum(len(r.slew_violations) for r in totals)} "
          f"unramped steps (largest step {max(r.max_step_over_allowed for r in totals):.3f} x the slew limit), "
          f"{sum(len(r.not_safe_at_end) for r in totals)} channels not safe at the end; AO range used "
          f"[{min(r.lowest_v for r in totals):.2f}, {max(r.highest_v for r in totals):.2f}] V")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
