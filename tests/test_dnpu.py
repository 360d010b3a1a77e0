"""Synthetic DNPU physics (HoppingDNPU) and the ideal DNPU chip."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.chip.base import AC_TONES, CapabilityError, CurrentNudge, Tone
from labtrain.kinds.dnpu.chip import DNPU, DNPUChip, DNPUMeasurement
from labtrain.physics.demod import FrequencyPlan
from labtrain.kinds.dnpu.layout import DNPUModel, default_layout
from labtrain.kinds.dnpu.model import HoppingDNPU

LAYOUT = default_layout()
CASES = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])


@pytest.fixture(scope="module")
def model() -> HoppingDNPU:
    return HoppingDNPU()


def _random_electrodes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(LAYOUT.low_v, LAYOUT.high_v, (n, 7))


def test_model_is_a_dnpu_model_with_tens_of_na(model):
    assert isinstance(model, DNPUModel)
    current = model.current_a(_random_electrodes(500, 1))
    assert current.shape == (500,)
    med = np.median(np.abs(current))
    assert 5e-9 < med < 50e-9
    assert np.mean(np.abs(current) > LAYOUT.clip_a) < 0.05
    # vectorised over any leading shape, and solved to the same answer
    ev = _random_electrodes(6, 2)
    assert np.allclose(model.current_a(ev.reshape(2, 3, 7)).ravel(), model.current_a(ev), rtol=1e-9, atol=1e-18)


def test_model_satisfies_kirchhoff(model):
    ev = _random_electrodes(20, 3)
    x = model.internal_v(ev)
    g, _ = model._gating(ev)
    d = model._drops(ev, x)
    i = g * model.v0_v * np.sinh(d / model.v0_v)
    residual = i @ model._b_int.T
    assert np.max(np.abs(residual)) < 1e-12 * np.max(np.abs(i))


def test_exact_jacobian_matches_finite_differences(model):
    ev = _random_electrodes(8, 4)
    current, jac = model.jacobian_a(ev)
    assert np.allclose(current, model.current_a(ev), rtol=1e-10, atol=1e-20)
    h = 1e-6
    fd = np.stack([(model.current_a(ev + h * e) - model.current_a(ev - h * e)) / (2 * h) for e in np.eye(7)], -1)
    assert np.max(np.abs(jac - fd)) < 1e-6 * np.max(np.abs(jac))


def test_model_is_smooth_and_nonmonotone(model):
    # smooth: second differences along a line shrink like h^2
    base = _random_electrodes(1, 5)[0]
    direction = np.random.default_rng(6).normal(size=7)
    direction /= np.linalg.norm(direction)
    for h in (1e-2, 1e-3):
        pts = base + np.outer([-h, 0.0, h], direction)
        i = model.current_a(pts)
        curvature = abs(i[0] - 2 * i[1] + i[2]) / h**2
        assert curvature < 1e-5  # A/V^2: bounded second derivative
    # strongly nonlinear and non-monotone: dI/dV takes both signs for every data electrode
    _, jac = model.jacobian_a(_random_electrodes(400, 7))
    for k in LAYOUT.data_electrodes:
        assert np.mean(jac[:, k] > 0) > 0.05 and np.mean(jac[:, k] < 0) > 0.05


def test_model_seeds_give_different_devices():
    ev = _random_electrodes(10, 8)
    a, b = HoppingDNPU(seed=0).current_a(ev), HoppingDNPU(seed=1).current_a(ev)
    assert not np.allclose(a, b)
    assert np.allclose(a, HoppingDNPU(seed=0).current_a(ev))


def test_model_rejects_bad_settings():
    with pytest.raises(ValueError, match="width_v"):
        HoppingDNPU(width_v=0.0)
    with pytest.raises(ValueError, match="rim_order"):
        HoppingDNPU(rim_order=(0, 1, 2, 3, 4, 5, 6, 6))
    with pytest.raises(ValueError, match="electrode_v"):
        HoppingDNPU().current_a(np.zeros((3, 5)))


# ------------------------------------------------------------------ chip
def test_chip_contract(model):
    chip = DNPUChip(model)
    assert chip.backend == "ideal"
    assert {AC_TONES, DNPU} <= chip.capabilities
    assert (chip.n_inputs, chip.n_outputs) == (2, 1)
    spec = chip.parameter_spec
    assert spec.name == "control_voltage" and spec.unit == "V"
    assert np.allclose(chip.get_parameters(), 0.5 * (spec.lower + spec.upper))
    took = chip.set_parameters(np.array([-5.0, 0.0, 0.7, -0.3, 0.5]))
    assert np.allclose(took, [-1.2, 0.0, 0.6, -0.3, 0.15])
    assert np.allclose(chip.get_parameters(), took)
    m = chip.measure(CASES)
    assert isinstance(m, DNPUMeasurement) and m.output_v.shape == (4, 1)
    expected = LAYOUT.clip(model.current_a(LAYOUT.electrode_voltages(CASES, took)))
    assert np.allclose(m.output_current_a[:, 0], expected)
    assert np.allclose(m.output_v[:, 0], expected * LAYOUT.gain_ohm)
    snap = chip.snapshot()
    assert snap["model"]["model"] == "HoppingDNPU" and snap["control_v"] == took.tolist()
    with chip:
        pass


def test_chip_capability_and_input_errors(model):
    chip = DNPUChip(model)
    with pytest.raises(CapabilityError):
        chip.measure(CASES, CurrentNudge(np.zeros((4, 1))))
    with pytest.raises(CapabilityError):
        chip.measure(CASES, edge_drops=True)
    with pytest.raises(ValueError, match="outside its range"):
        chip.measure(np.array([[0.0, 0.9]]))
    with pytest.raises(ValueError, match="shape"):
        chip.measure(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="expected 5"):
        chip.set_parameters(np.zeros(4))
    plan = FrequencyPlan.from_frequencies([200.0], 10_000.0, 0.05)
    with pytest.raises(CapabilityError):
        chip.measure_ac(CASES, [Tone("output_current", 0, 200.0, 1e-9)], plan)
    with pytest.raises(ValueError, match="index 7"):
        chip.measure_ac(CASES, [Tone("control", 7, 200.0, 0.01)], plan)


def test_chip_read_noise_and_reseed(model):
    chip = DNPUChip(model, read_noise_a=1e-9, average_samples=4, seed=0)
    chip.reseed(3)
    a = chip.measure(CASES).output_v
    chip.reseed(3)
    b = chip.measure(CASES).output_v
    c = chip.measure(CASES).output_v
    assert np.array_equal(a, b) and not np.array_equal(b, c)
    clean = DNPUChip(model).measure(CASES).output_v
    spread = np.std(np.stack([chip.measure(CASES).output_v for _ in range(200)]) - clean)
    assert spread == pytest.approx(1e-9 / 2 * LAYOUT.gain_ohm, rel=0.15)


def test_measure_ac_is_time_domain_and_matches_derivative(model):
    chip = DNPUChip(model, control_v=np.array([-0.2, -0.5, 0.1, -0.4, -0.1]))
    plan = FrequencyPlan.from_frequencies([200.0, 360.0], 10_000.0, 0.05)
    amps = np.array([1e-3, 1e-3])
    tones = [Tone("control", 0, 200.0, amps[0]), Tone("input", 1, 360.0, amps[1])]
    x = np.array([[-0.5, 0.1], [0.2, -0.8]])
    meas = chip.measure_ac(x, tones, plan, settle_samples=20)
    assert meas.output.in_phase.shape == (2, 1, 2)
    assert meas.waveforms.shape == (2, 1, 520)
    assert meas.acquisition_s == pytest.approx(2 * 520 / 10_000.0)
    # the raw waveform is the model evaluated sample by sample
    t = np.arange(520) / 10_000.0
    ev = LAYOUT.electrode_voltages(x, chip.get_parameters())[:, None, :].repeat(520, 1)
    ev[..., 0] += amps[0] * np.sin(2 * np.pi * 200.0 * t)
    ev[..., 2] += amps[1] * np.sin(2 * np.pi * 360.0 * t)
    assert np.allclose(meas.waveforms[:, 0], LAYOUT.clip(model.current_a(ev)) * LAYOUT.gain_ohm, rtol=1e-9)
    # small tones: X / a = dI/dV (exact Jacobian), quadrature ~ 0
    _, jac = model.jacobian_a(LAYOUT.electrode_voltages(x, chip.get_parameters()))
    expected = jac[:, [0, 2]] * LAYOUT.gain_ohm
    assert np.allclose(meas.output.in_phase[:, 0] / amps, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.max(np.abs(meas.output.quadrature)) < 1e-9 * np.max(np.abs(meas.output.in_phase))


def test_measure_ac_refuses_out_of_range_tones(model):
    chip = DNPUChip(model, control_v=np.array([0.59, -0.5, 0.1, -0.4, -0.1]))
    plan = FrequencyPlan.from_frequencies([200.0], 10_000.0, 0.05)
    with pytest.raises(ValueError, match=r"^electrode e0 .* leaves its range") as err:
        chip.measure_ac(CASES, [Tone("control", 0, 200.0, 0.03)], plan)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="leaves its range"):  # data electrodes sit on their bounds
        chip.measure_ac(CASES, [Tone("input", 0, 200.0, 0.01)], plan)
    with pytest.raises(ValueError, match="whole number of periods"):
        chip.measure_ac(CASES, [Tone("control", 1, 210.0, 0.01)], plan)
    with pytest.raises(ValueError, match="sample clock"):
        chip.measure_ac(CASES, [Tone("control", 1, 200.0, 0.01)], FrequencyPlan.from_frequencies([200.0], 20_000.0, 0.05))
