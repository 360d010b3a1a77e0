"""The instrument-layer benchmark: quick mode is well formed, the twin beats real time, the fake DAQ gets the waveforms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labtrain.instruments import safety
from instrumentlib import (RATE_HZ, FakeDAQ, build_fake_chip, format_instrument_report,
                                       overhead_networks, run_instrument_benchmark)
from labtrain.chip.base import ClampNudge
from labtrain.cli import main

TWIN_KEYS = {"network", "n_nodes", "n_edges", "batch_size", "rate_hz", "plateau_samples", "n_phases", "steps_timed",
             "wall_s", "acquired_s", "clock_s", "ratio", "ratio_clock", "factorisations_per_step"}
OVERHEAD_KEYS = {"network", "n_nodes", "n_edges", "batch_size", "rate_hz", "plateau_samples", "n_phases",
                 "steps_timed", "overhead_s", "wall_s", "fake_ports_s", "requested_samples", "ao_samples",
                 "ramp_samples", "hardware_acquisition_s", "overhead_fraction_of_acquisition",
                 "overhead_share_of_step", "write_read_per_step", "set_digital_per_step", "set_taps_per_step",
                 "ai_values_per_step", "last_write_shape"}


@pytest.fixture(scope="module")
def quick():
    lines: list[str] = []
    result = run_instrument_benchmark(quick=True, progress=lines.append, n_steps=2)
    return result, lines


def test_quick_twin_rows(quick):
    result, lines = quick
    assert lines
    assert set(result) == {"twin", "twin_acquisition", "overhead", "target_ratio", "meets_target", "quick"}
    assert result["quick"] is True and result["target_ratio"] == 10.0
    (row,) = result["twin"]
    assert set(row) == TWIN_KEYS
    assert row["n_nodes"] == 16 and row["batch_size"] == 32 and row["rate_hz"] == RATE_HZ
    assert row["n_phases"] == 2 and row["steps_timed"] == 2
    # acquired time is exactly the plateaus the chip asked for; the twin clock adds the safety ramps
    assert row["acquired_s"] == pytest.approx(2 * 32 * row["plateau_samples"] / RATE_HZ)
    assert row["clock_s"] >= row["acquired_s"]
    assert row["ratio"] == pytest.approx(row["acquired_s"] / row["wall_s"])
    assert row["ratio"] > 1 and row["ratio_clock"] >= row["ratio"]
    assert row["factorisations_per_step"] >= 1  # the update moved the pots: the twin refactored
    assert result["meets_target"] == (row["ratio"] >= 10.0)
    assert result["twin_acquisition"]["ratio"] > 1


def test_quick_overhead_rows(quick):
    result, _ = quick
    rows = result["overhead"]
    nets = overhead_networks()
    assert [(r["n_nodes"], r["batch_size"]) for r in rows] == [(n.n_nodes, b) for n in nets for b in (32, 256)]
    for r, net in zip(rows, [n for n in nets for _ in (32, 256)]):
        assert set(r) == OVERHEAD_KEYS
        assert math.isfinite(r["overhead_s"]) and r["overhead_s"] > 0
        assert 0 < r["overhead_share_of_step"] < 1
        assert r["overhead_fraction_of_acquisition"] == pytest.approx(r["overhead_s"] / r["hardware_acquisition_s"])
        # the fake DAQ really received both phases' waveforms: plateaus plus the safety ramps
        assert r["write_read_per_step"] == 2 and r["set_taps_per_step"] == 1
        assert r["requested_samples"] == 2 * r["batch_size"] * r["plateau_samples"]
        assert r["ao_samples"] == r["requested_samples"] + r["ramp_samples"]
        assert 0 < r["ramp_samples"] <= 4 * 20  # in and out of 2 waveforms, <= 2 V at 0.1 V per sample
        assert r["hardware_acquisition_s"] == pytest.approx(r["ao_samples"] / RATE_HZ)
        n_ao = len(net.inputs) + len(net.outputs)
        n_ao_last, n_samples_last, n_ai_last = r["last_write_shape"]
        assert (n_ao_last, n_ai_last) == (n_ao, net.n_nodes)
        assert n_samples_last >= r["batch_size"] * r["plateau_samples"]
        assert r["ai_values_per_step"] == net.n_nodes * r["ao_samples"]
    report = format_instrument_report(result)
    for text in ("(a) twin vs real time", "(b) labtrain overhead", "lattice 4x4", "random 100 nodes", "Target ratio"):
        assert text in report


def test_fake_daq_receives_the_plateaus_and_the_chip_cleans_up():
    before = set(map(id, safety.registered()))
    net = overhead_networks()[0]
    chip, daq, pots = build_fake_chip(net)
    assert isinstance(daq, FakeDAQ) and len(safety.registered()) == len(before) + 2
    try:
        rng = np.random.default_rng(1)
        x = rng.uniform(0, 1, (5, chip.n_inputs))
        daq.reset_counts()
        m = chip.measure(x, edge_drops=True)
        p = chip.settings.plateau_samples
        assert daq.n_write_read == 1 and daq.ao_samples >= 5 * p
        wave = daq.last_ao_v
        assert wave.shape == (len(chip.wiring.ao_channels()), daq.ao_samples)
        inputs, outputs = wave[:chip.n_inputs], wave[chip.n_inputs:]
        for k in range(5):  # every example's level is held at least for the averaging window
            held = np.all(inputs == x[k][:, None], axis=0)
            assert held.sum() >= chip.settings.average_samples
        assert np.all(outputs == 0)  # free phase: output AOs idle
        assert np.all(m.output_v == 0)  # the fake reads 0 V
        assert wave[:, 0].max() <= 0.1 + 1e-12 and np.all(wave[:, -1] == 0)  # ramped in from and out to 0 V
        clamp = np.full((5, chip.n_outputs), 0.3)
        chip.measure(x, ClampNudge(clamp))
        # free phase: switches set open; clamped phase: closed for the acquisition, then opened
        assert daq.n_write_read == 2 and daq.n_set_digital == 3
        assert not any(daq.digital_states().values())
        assert np.sum(np.all(daq.last_ao_v[chip.n_inputs:] == 0.3, axis=0)) >= 5 * chip.settings.average_samples
    finally:
        chip.close()
    assert set(map(id, safety.registered())) == before


def test_bench_instrument_script(quick, monkeypatch, capsys):
    import bench_instrument as script

    calls = []
    monkeypatch.setattr(script, "run_instrument_benchmark", lambda **kw: calls.append(kw) or quick[0])
    assert script.main(["--quick"]) == 0
    assert calls and calls[0]["quick"] is True
    assert "(b) labtrain overhead" in capsys.readouterr().out
