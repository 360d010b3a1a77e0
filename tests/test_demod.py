"""Software lock-in and tone planner (labtrain.physics.demod)."""

from __future__ import annotations

import numpy as np
import pytest

from labtrain.physics.demod import (PUBLISHED_DNPU_TONES_HZ, FrequencyPlan, ToneCollision, demodulate, in_phase_noise,
                            plan_tones, tone_collisions, tone_waveforms)


def _multitone(rng, plan: FrequencyPlan, n_samples: int, noise_rms: float, n_signals: int):
    t = np.arange(n_samples) / plan.rate_hz
    amp = rng.uniform(0.1, 2.0, (n_signals, plan.n_tones))
    phase = rng.uniform(-np.pi, np.pi, (n_signals, plan.n_tones))
    dc = rng.normal(0, 1, n_signals)
    arg = 2 * np.pi * plan.tones_hz[None, :, None] * t + phase[..., None]
    clean = dc[:, None] + np.sum(amp[..., None] * np.sin(arg), axis=1)
    return clean + rng.normal(0, noise_rms, clean.shape), amp, phase, dc


def test_recovers_amplitude_phase_and_dc_exactly_without_noise():
    rng = np.random.default_rng(0)
    plan = FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, 10_000.0, 0.05)
    settle = 123
    sig, amp, phase, dc = _multitone(rng, plan, settle + plan.window_samples, 0.0, 7)
    d = demodulate(sig, plan.rate_hz, plan.tones_hz, settle_samples=settle)
    np.testing.assert_allclose(d.amplitude, amp, rtol=1e-10)
    np.testing.assert_allclose(np.angle(np.exp(1j * (d.phase_rad - phase))), 0, atol=1e-10)
    np.testing.assert_allclose(d.dc, dc, atol=1e-12)
    # in-phase is the coefficient of sin: amplitude * cos(phase)
    np.testing.assert_allclose(d.in_phase, amp * np.cos(phase), atol=1e-10)
    assert np.all(d.quadrature_ratio() > 0)


def test_noise_of_in_phase_follows_one_over_sqrt_window():
    """X from white noise of RMS sigma has std sigma*sqrt(2/N): 4x the window halves the error."""
    rng = np.random.default_rng(1)
    rate, sigma = 10_000.0, 0.05
    stds = []
    for window_s in (0.02, 0.08):
        plan = plan_tones(3, rate, window_s, max_hz=1500, mains_hz=0.0)  # 50 Hz grid: all bins are mains
        sig, amp, phase, _ = _multitone(rng, plan, plan.window_samples, sigma, 4000)
        d = demodulate(sig, rate, plan.tones_hz)
        err = d.in_phase - amp * np.cos(phase)
        expected = in_phase_noise(sigma, plan.window_samples)
        assert np.std(err) == pytest.approx(expected, rel=0.05)
        stds.append(np.std(err))
    assert stds[0] / stds[1] == pytest.approx(2.0, rel=0.08)


def test_tone_waveforms_demodulate_back_and_start_at_zero():
    plan = plan_tones(4, 5_000.0, 0.1, max_hz=800)
    amps = np.array([[0.03, 0.01, 0.02, 0.005]])
    w = tone_waveforms(plan.tones_hz, amps, plan.rate_hz, plan.window_samples)
    assert w.shape == (1, plan.window_samples) and w[0, 0] == 0.0
    d = demodulate(w, plan.rate_hz, plan.tones_hz)
    np.testing.assert_allclose(d.in_phase, amps, atol=1e-14)
    np.testing.assert_allclose(d.quadrature, 0, atol=1e-14)


def test_published_tones_are_collision_free_and_harmonic_set_is_flagged():
    assert FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, 1e4, 0.05).collisions() == []
    bad = FrequencyPlan.from_frequencies([8, 16, 24, 32, 40], 1e4, 1.0).collisions()
    # every tone of the harmonic set is hit by some product
    hit = {int(line.rsplit(" ", 1)[1]) for line in bad}
    assert hit == {8, 16, 24, 32, 40}


def test_planner_tones_are_collision_free_on_grid_in_band_away_from_mains():
    """Property test over 150 random clocks, windows, bands and tone counts."""
    rng = np.random.default_rng(100)
    planned = 0
    for _ in range(150):
        rate = float(rng.choice([1_000.0, 10_000.0, 25_000.0, 100_000.0]))
        window_s = float(rng.choice([0.02, 0.05, 0.1, 0.2, 0.5]))
        n = int(rng.integers(1, 7))
        max_hz = float(rng.uniform(0.05, 0.2) * rate)
        third = bool(rng.integers(2))
        try:
            plan = plan_tones(n, rate, window_s, max_hz=max_hz, third_order=third)
        except ToneCollision:
            continue        # a band too narrow for n tones: the planner says so instead of colliding
        planned += 1
        assert plan.n_tones == n
        assert tone_collisions(plan.bins, plan.window_samples, third) == []
        f = plan.tones_hz
        assert np.all(f <= max_hz + 1e-9) and np.all(f > 0)
        np.testing.assert_allclose(f * window_s, np.round(f * window_s), atol=1e-9)      # whole periods
        mains = 50.0 * np.round(f / 50.0)
        assert np.all((mains == 0) | (np.abs(f - mains) >= plan.resolution_hz - 1e-9))
        # brute force: no product (folded about Nyquist) equals a tone
        N, bins = plan.window_samples, np.array(plan.bins)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        prods = [2 * bins, 3 * bins] + [np.array([bins[i] + bins[j], abs(bins[i] - bins[j])]) for i, j in pairs]
        if third:
            prods += [np.array([2 * bins[i] + bins[j], abs(2 * bins[i] - bins[j]), 2 * bins[j] + bins[i],
                                abs(2 * bins[j] - bins[i])]) for i, j in pairs]
        prods = np.concatenate(prods) % N
        prods = np.minimum(prods, N - prods)
        assert not set(prods.tolist()) & set(bins.tolist())
    assert planned >= 100


def test_products_above_nyquist_fold_back():
    # 2 * 400 = 800 folds to 1000 - 800 = 200 in a 1000-sample window
    assert tone_collisions([200, 400], 1000) != []
    assert any("2x bin 400" in c for c in tone_collisions([200, 400], 1000))


def test_bad_requests_are_one_line_errors():
    with pytest.raises(ValueError, match="whole number of periods"):
        demodulate(np.zeros(100), 1000.0, [15.0])
    with pytest.raises(ValueError, match="does not fit"):
        demodulate(np.zeros(100), 1000.0, [10.0], settle_samples=99)
    with pytest.raises(ValueError, match="whole number of periods"):
        FrequencyPlan.from_frequencies([205.0], 1e4, 0.05)
    with pytest.raises(ToneCollision, match="collision-free tones fit"):
        plan_tones(20, 1000.0, 0.02, max_hz=200)
    with pytest.raises(ValueError, match="between DC and Nyquist"):
        FrequencyPlan(1000.0, 100, (60,))
