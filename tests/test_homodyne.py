"""Homodyne gradient extraction against finite differences and the exact Jacobian-chained gradient."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labtrain.chip.base import AC_TONES, CapabilityError
from labtrain.kinds.dnpu.chip import DNPUChip
from labtrain.physics.demod import PUBLISHED_DNPU_TONES_HZ, FrequencyPlan, ToneCollision
from labtrain.protocols.fidelity import compare_gradients
from labtrain.protocols.homodyne import HomodyneGradient, dnpu_exact_gradient
from labtrain.kinds.dnpu.model import HoppingDNPU

CASES = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])
TARGETS = np.array([[-1.5], [-0.5], [-0.5], [-1.5]])   # XOR
CONTROL_V = np.array([-0.3, -0.6, -0.1, -0.8, -0.05])


@pytest.fixture(scope="module")
def model() -> HoppingDNPU:
    return HoppingDNPU()


def _chip(model, **kw) -> DNPUChip:
    return DNPUChip(model, control_v=CONTROL_V, **kw)


def test_parallel_matches_exact_and_finite_differences(model):
    chip = _chip(model)
    exact = dnpu_exact_gradient(chip, CASES, TARGETS)
    hge = HomodyneGradient(tones_hz=PUBLISHED_DNPU_TONES_HZ)
    est = hge.estimate(chip, CASES, TARGETS)
    fid = compare_gradients(est.gradient, exact)
    assert fid.cosine > 0.999 and fid.relative_error < 0.02
    assert est.n_phases == 1
    assert np.allclose(chip.get_parameters(), CONTROL_V)
    fd = HomodyneGradient(mode="finite_difference", fd_step_v=1e-4).estimate(chip, CASES, TARGETS)
    assert compare_gradients(fd.gradient, exact).relative_error < 1e-4
    assert fd.n_phases == 11
    assert compare_gradients(est.gradient, fd.gradient).cosine > 0.999
    # loss and outputs are those of the operating point (DC of the window), up to the O(a^2) shift
    free = chip.measure(CASES).output_v
    assert np.allclose(est.output_v, free, atol=0.02)
    # health: a memoryless device has no quadrature
    assert np.all(hge.last_quadrature_ratio < 1e-6)
    assert "quadrature_ratio" in hge.describe()


def test_bias_is_second_order_in_amplitude(model):
    """X/a = f' + a^2 f'''/8 + ...: halving every amplitude quarters the error."""
    chip = _chip(model)
    exact = dnpu_exact_gradient(chip, CASES, TARGETS)
    base = np.array([0.03, 0.01, 0.01, 0.005, 0.005])
    errors = []
    for scale in (2.0, 1.0, 0.5):
        est = HomodyneGradient(amplitudes_v=base * scale).estimate(chip, CASES, TARGETS)
        # compare with the exact gradient at the same DC (chained with the same DC outputs)
        jac = chip.output_jacobian(CASES)
        chained = np.mean(np.sum((est.output_v - TARGETS)[..., None] * jac, axis=1), axis=0)
        errors.append(np.linalg.norm(est.gradient - chained) / np.linalg.norm(exact))
    assert errors[1] / errors[2] == pytest.approx(4.0, rel=0.25)
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.25)
    assert errors[1] < 0.02   # the published amplitudes: < 2 % bias on this device


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sequential_equals_parallel_within_noise(model):
    chip = _chip(model, read_noise_a=0.1e-9, seed=1)
    par = HomodyneGradient().estimate(chip, CASES, TARGETS)
    seq_rule = HomodyneGradient(mode="sequential")
    seq = seq_rule.estimate(chip, CASES, TARGETS)
    assert seq.n_phases == 5
    # noise of X/a: sigma sqrt(2/N)/a per case, times |err| ~ 1 V, averaged over 4 cases
    noise = 0.1e-9 * chip.layout.gain_ohm * np.sqrt(2 / 500) / np.array([0.03, 0.01, 0.01, 0.005, 0.005])
    bound = 5 * noise * np.sqrt(np.mean((par.output_v - TARGETS) ** 2)) + 1e-3 * np.abs(par.gradient)
    assert np.all(np.abs(par.gradient - seq.gradient) < bound)
    assert compare_gradients(par.gradient, seq.gradient).cosine > 0.99


def test_requires_and_capabilities(model):
    assert HomodyneGradient().requires == frozenset({AC_TONES})
    assert HomodyneGradient(mode="finite_difference").requires == frozenset()

    class NoAC(DNPUChip):
        capabilities = frozenset()

    chip = NoAC(model)
    with pytest.raises(CapabilityError):
        HomodyneGradient().check(chip)
    HomodyneGradient(mode="finite_difference").check(chip)


def test_harmonic_tone_set_is_flagged(model):
    chip = _chip(model)
    with pytest.raises(ToneCollision, match="collide"):
        HomodyneGradient(tones_hz=(8.0, 16.0, 24.0, 32.0, 40.0), window_s=0.125).estimate(chip, CASES, TARGETS)
    assert FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, 10_000.0, 0.05).collisions() == []
    plan = HomodyneGradient().plan_for(chip)
    assert plan.collisions() == [] and plan.n_tones == 5


def test_out_of_range_amplitude_is_one_line_error(model):
    chip = _chip(model)
    with pytest.raises(ValueError, match=r"^homodyne amplitude 1\.0 V on control 0") as err:
        HomodyneGradient(amplitudes_v=(1.0, 0.01, 0.01, 0.005, 0.005)).estimate(chip, CASES, TARGETS)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="lists 3 amplitudes for 5"):
        HomodyneGradient(amplitudes_v=(0.01, 0.01, 0.01)).estimate(chip, CASES, TARGETS)
    with pytest.raises(ValueError, match="mode"):
        HomodyneGradient(mode="lockin")
    assert np.allclose(chip.get_parameters(), CONTROL_V)


def test_operating_point_moves_inward_at_bounds(model):
    """A control parked on its bound is measured a tone amplitude inside; the chip keeps its parameters."""
    spec_chip = _chip(model)
    lower = spec_chip.parameter_spec.lower.copy()
    chip = DNPUChip(model, control_v=lower)
    est = HomodyneGradient().estimate(chip, CASES, TARGETS)
    assert np.allclose(chip.get_parameters(), lower)
    inside = DNPUChip(model, control_v=lower + np.array([0.03, 0.01, 0.01, 0.005, 0.005]))
    exact = dnpu_exact_gradient(inside, CASES, TARGETS)
    assert compare_gradients(est.gradient, exact).cosine > 0.999


def test_quadrature_warning(model):
    chip = _chip(model)
    rule = HomodyneGradient(quadrature_warn=-1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rule.estimate(chip, CASES, TARGETS)
    assert any("quadrature" in str(w.message) for w in caught)
