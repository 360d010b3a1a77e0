"""InstrumentChip over the instrument twin: the Chip contract (shared with the ideal chip),
training on ideal vs twin, faults (retry, pause, resume) and safety during runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import labtrain as lt
from labtrain.build import build_setup
from labtrain.chip.base import ClampNudge, CurrentNudge
from labtrain.config import load_experiment
from labtrain.kinds.resistor.hardware import build_instrument_chip
from labtrain.training.launch import prepare_resume, prepare_run
from labtrain.instruments.ports import PortTimeout
from labtrain.protocols import compare_gradients, exact_gradient
from labtrain.training.store import RunStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_ABS_V, MAX_SLEW = 2.0, 1000.0


def twin_backend(wiring=None, **over):
    exp = lt.load_experiment(EXAMPLES / "iris_cl.toml", {"backend": {"kind": "twin", **over},
                                                         "wiring": dict(wiring or {})})
    return exp["backend"], exp["wiring"]


def make_chip(kind: str, net: lt.Network, seed: int = 0, wiring=None, **over):
    if kind == "ideal":
        return lt.IdealChip(net)
    backend, wiring = twin_backend(wiring, **over)
    return build_instrument_chip(backend, wiring, net, None, seed)


@pytest.fixture(params=["ideal", "twin"])
def chip(request):
    net = lt.lattice(4, 4, n_inputs=3, n_outputs=2)
    c = make_chip(request.param, net)
    yield c
    c.close()


def raw_daq(chip):
    return chip.daq.daq


# ------------------------------------------------------------------ contract
def test_contract_parameters(chip):
    spec = chip.parameter_spec
    assert spec.unit == "S" and spec.size == chip.network.n_edges
    took = chip.set_parameters(np.full(spec.size, 1.0))  # far above the bounds
    assert np.all(took <= spec.upper * (1 + 1e-12)) and np.all(took >= spec.lower * (1 - 1e-12))
    np.testing.assert_array_equal(took, chip.get_parameters())
    mid = np.sqrt(spec.lower * spec.upper)
    took = chip.set_parameters(mid)
    np.testing.assert_allclose(took, mid, rtol=0.1)  # what the device took: close, maybe quantised


def test_contract_measure_matches_network_model(chip):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (7, chip.n_inputs))
    m = chip.measure(x, edge_drops=True)
    assert m.output_v.shape == (7, chip.n_outputs)
    model = chip.network_model().steady_state(x)
    # ideal: exact; twin: pot tolerance 0 here, 16-bit ADC + 0.1 mV noise averaged over 10 samples
    np.testing.assert_allclose(m.output_v, model.output_v, atol=2e-3)
    drops = m.edge_drops.dense_values() if hasattr(m.edge_drops, "dense_values") else None
    np.testing.assert_allclose(m.edge_drops.mean_square(), model.edge_drops.mean_square(), atol=2e-3)
    if drops is not None:
        assert drops.shape == (7, chip.network.n_edges)


def test_contract_clamp_nudge_holds_outputs(chip):
    x = np.array([[0.2, 0.8, 1.0], [0.9, 0.1, 1.0]])
    clamp = np.array([[0.3, 0.5], [0.6, 0.2]])
    m = chip.measure(x, ClampNudge(clamp))
    np.testing.assert_allclose(m.output_v, clamp, atol=2e-3)


@pytest.mark.parametrize("kind", ["ideal", "twin"])
def test_contract_current_nudge_moves_outputs_by_output_impedance(kind):
    """EP's nudge.  On the bench it is an AO behind a large series resistor (here 1 MOhm = 1/beta for
    beta = 1 uS): the injected current is right to within Z_out / R_series."""
    net = lt.lattice(4, 4, n_inputs=3, n_outputs=2)
    chip = make_chip(kind, net, wiring={"output_series_ohm": 1e6})
    try:
        x = np.array([[0.2, 0.8, 1.0]])
        free = chip.measure(x).output_v
        current = np.array([[1e-6, -1e-6]])
        nudged = chip.measure(x, CurrentNudge(current)).output_v
        expected = chip.network_model().steady_state(x, output_current_a=current).output_v
        shift, expected_shift = nudged - free, expected - free
        assert np.all(np.abs(expected_shift) > 3e-3)
        # twin: the nudge is exact up to Z_out / R_series (~1e-2 here) plus an ADC step (0.3 mV)
        np.testing.assert_allclose(shift, expected_shift, rtol=0.02 if kind == "twin" else 1e-9,
                                   atol=5e-4 if kind == "twin" else 0)
    finally:
        chip.close()


def test_contract_step_parameters_one_tap(chip):
    before = chip.get_parameters()
    up = chip.step_parameters(np.ones(chip.network.n_edges))
    assert np.all(up >= before)
    assert np.any(up > before)


def test_contract_snapshot_and_safe_state(chip):
    snap = chip.snapshot()
    json.dumps(snap)
    assert snap["backend"] == chip.backend and "network" in snap
    chip.measure(np.array([[0.5, 0.5, 1.0]]))
    chip.safe_state()
    if chip.backend == "twin":
        daq = raw_daq(chip)
        assert all(abs(v) < 1e-12 for v in daq.dc_levels_v().values())
        assert not any(daq.digital_states().values())
        # measuring again after the safe state re-applies the taps
        m = chip.measure(np.array([[0.5, 0.5, 1.0]]))
        np.testing.assert_allclose(m.output_v, chip.network_model().steady_state([[0.5, 0.5, 1.0]]).output_v,
                                   atol=2e-3)


def test_contract_analytic_gradient_close_to_exact(chip):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (16, chip.n_inputs))
    t = rng.uniform(0.2, 0.4, (16, chip.n_outputs))
    est = lt.AnalyticGradient().estimate(chip, x, t).gradient
    f = compare_gradients(est, exact_gradient(chip, x, t))
    assert f.cosine > 0.999


# --------------------------------------------------------- twin specifics
def test_twin_pots_hold_the_believed_taps_and_history_is_safe():
    net = lt.lattice(3, 3, n_inputs=2, n_outputs=1)
    chip = make_chip("twin", net)
    try:
        g = chip.set_parameters(np.geomspace(2e-5, 9e-4, net.n_edges))
        twin_pots = chip.pots.pots
        np.testing.assert_array_equal(twin_pots.held_taps[list(chip.wiring.pot_channels)], chip.get_taps())
        np.testing.assert_allclose(chip.parameter_spec.quantizer.to_conductance(chip.get_taps()), g)
        x = np.random.default_rng(2).uniform(0, 1, (20, 2))
        chip.measure(x, ClampNudge(np.full((20, 1), 0.4)), edge_drops=True)
    finally:
        chip.close()
    for ch, s in raw_daq(chip).ao_summary().items():
        assert -MAX_ABS_V <= s["min_v"] and s["max_v"] <= MAX_ABS_V, ch
        assert s["max_slew_v_per_s"] <= MAX_SLEW * (1 + 1e-6), ch
    for ch in raw_daq(chip).ao_channels:
        t, v = raw_daq(chip).ao_record(ch)
        assert abs(v[-1]) < 1e-12  # every output ends at the safe level


def test_settle_samples_too_short_for_slew_is_a_clear_error():
    net = lt.lattice(3, 3, n_inputs=2, n_outputs=1)
    backend, wiring = twin_backend()
    # an experiment file with these settings is refused before any chip exists (tests/test_hostile_inputs.py);
    # the chip keeps its own check for settings that reach it another way
    chip = build_instrument_chip({**backend, "settle_samples": 2, "max_slew_v_per_s": 100.0}, wiring, net, None, 0)
    try:
        with pytest.raises(ValueError, match="settle_samples"):
            chip.measure(np.array([[0.0, 0.0], [1.0, 1.0]]))
        assert raw_daq(chip).ao_summary()["Dev1/ao0"]["max_v"] == 0.0  # nothing was written
    finally:
        chip.close()


def test_limit_violation_reaches_nothing():
    net = lt.lattice(3, 3, n_inputs=2, n_outputs=1)
    chip = make_chip("twin", net, max_abs_v=1.0)
    try:
        with pytest.raises(ValueError, match="ao0|ao1"):
            chip.measure(np.array([[0.5, 1.5]]))
        assert max(s["max_v"] for s in raw_daq(chip).ao_summary().values()) == 0.0
    finally:
        chip.close()


# ----------------------------------------------------------- training
@pytest.mark.parametrize("example, metric, tolerance", [
    ("iris_cl.toml", "test_accuracy", 0.03),
    ("regression_analytic.toml", "train_loss", None),
])
def test_same_file_trains_on_ideal_and_twin(example, metric, tolerance):
    results = {}
    for kind in ("ideal", "twin"):
        run = prepare_run(load_experiment(EXAMPLES / example, {"backend": {"kind": kind}}), store=False)
        results[kind] = run.run().final
    if tolerance is not None:
        assert results["ideal"][metric] >= 0.8
        assert abs(results["twin"][metric] - results["ideal"][metric]) <= tolerance
    else:
        assert results["twin"][metric] < 1.5 * results["ideal"][metric] + 2e-5
        assert results["twin"][metric] < 1e-3


# ----------------------------------------------------------- faults
def fault_run(tmp_path, epochs=3):
    exp = load_experiment(EXAMPLES / "iris_cl.toml",
                          {"backend": {"kind": "twin", "retries": 2}, "run": {"epochs": epochs, "out_dir": str(tmp_path)},
                           "chip": {"n_nodes": 30, "n_edges": 80}})
    return prepare_run(exp)


def test_port_that_times_out_twice_then_recovers_completes_the_run(tmp_path):
    run = fault_run(tmp_path)
    raw_daq(run.chip).inject_faults(2, "timeout", methods=("write_read",))
    result = run.run()
    run.store.close()
    assert result.status == "completed"
    assert sum("TimeoutError" in line or "PortTimeout" in line for line in run.chip.fault_log) == 2


def test_port_that_never_recovers_pauses_the_run_and_resume_continues(tmp_path):
    events = []
    run = fault_run(tmp_path, epochs=4)
    run.listeners.append(events.append)
    daq = raw_daq(run.chip)

    def break_after_two_steps(event):
        if event.kind == "step" and event.step == 1:
            daq.inject_faults(1000, "io", methods=("write_read",))

    run.listeners.append(break_after_two_steps)
    result = run.run()
    path = run.store.path
    run.store.close()
    assert result.status == "paused" and "instrument fault" in result.message
    assert result.steps_done == 2
    # safe state: every AO back at 0 V, switches open
    assert all(abs(v) < 1e-12 for v in daq.dc_levels_v().values())
    with RunStore.open(path) as store:
        assert store.attrs["status"] == "paused"
        assert "PortIOError" in store.attrs["message"] or "failed 3 times" in store.attrs["message"]
        assert list(store.table("steps")["step"]) == [0, 1]
    run.chip.close()
    resumed = prepare_resume(path)
    final = resumed.run()
    resumed.store.close()
    resumed.chip.close()
    assert final.status == "completed" and final.steps_done == resumed.total_steps


def test_keyboard_interrupt_mid_acquisition_leaves_chip_safe(tmp_path):
    run = fault_run(tmp_path)
    daq = raw_daq(run.chip)
    calls = {"n": 0}
    original = daq.write_read

    def interrupted(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return original(*a, **kw)

    daq.write_read = interrupted
    result = run.run()
    run.store.close()
    assert result.status == "stopped"
    for ch, s in daq.ao_summary().items():
        assert s["max_slew_v_per_s"] <= MAX_SLEW * (1 + 1e-6) and s["max_v"] <= MAX_ABS_V
        assert abs(daq.dc_levels_v()[ch]) < 1e-12
    with RunStore.open(run.store.path) as store:
        assert store.attrs["status"] == "stopped"


def test_twin_snapshot_in_run_file(tmp_path):
    run = fault_run(tmp_path, epochs=1)
    run.run()
    run.store.close()
    run.chip.close()
    with RunStore.open(run.store.path) as store:
        snap = store.snapshot["chip"]
    assert snap["backend"] == "twin"
    limits = snap["daq"]["safety"]["channels"]
    assert limits and all(c["max_slew_v_per_s"] == MAX_SLEW and c["max_v"] == MAX_ABS_V for c in limits.values())
    assert snap["pots"]["n_taps"] == 1024 and snap["wiring"]["read_nodes"]
    assert snap["acquisition"]["rate_hz"] == 10_000.0


def test_outputs_only_wiring_supports_analytic_not_ep():
    exp = load_experiment(EXAMPLES / "regression_analytic.toml",
                          {"backend": {"kind": "twin"}, "wiring": {"read": "outputs"}})
    setup = build_setup(exp)
    try:
        assert "edge_drops" not in setup.chip.capabilities
        with pytest.raises(lt.CapabilityError):
            lt.EquilibriumPropagation(1e-6).check(setup.chip)
        lt.AnalyticGradient().check(setup.chip)
    finally:
        setup.chip.close()


def test_twin_run_stopped_and_resumed_matches_uninterrupted(tmp_path):
    """The run loop reseeds the twin's noise per step, so a dry run resumes bit for bit."""
    full = fault_run(tmp_path / "a", epochs=4)
    expected = full.run().parameters
    full.store.close()
    full.chip.close()
    run = fault_run(tmp_path / "b", epochs=4)
    run.listeners.append(lambda e: run.request_stop() if e.kind == "step" and e.step == 1 else None)
    assert run.run().status == "stopped"
    run.store.close()
    run.chip.close()
    resumed = prepare_resume(run.store.path)
    got = resumed.run().parameters
    resumed.store.close()
    resumed.chip.close()
    np.testing.assert_array_equal(got, expected)


def test_cli_check_twin_identifies_instruments_without_applying_voltage(capsys, monkeypatch):
    from labtrain import cli
    from labtrain.simulators import daq_twin

    written = []
    original = daq_twin.SimulatedDAQ.write_read
    monkeypatch.setattr(daq_twin.SimulatedDAQ, "write_read", lambda *a, **k: written.append(1) or original(*a, **k))
    code = cli.main(["check", str(EXAMPLES / "iris_cl.toml"), "--backend", "twin"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no voltage applied" in out and "SimulatedDAQ" in out and "SimulatedPotArray" in out
    assert written == []


def test_cli_devices_never_fails(capsys):
    from labtrain import cli

    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "VISA" in out and "NI-DAQmx" in out and "Serial" in out
