"""IdealChip and the Chip base class: parameters, pot taps, read noise, nudges, records, safety."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labtrain.chip.base import (CLAMP_NUDGE, CURRENT_NUDGE, EDGE_DROPS, NETWORK_MODEL, CapabilityError, Chip,
                                ClampNudge, CurrentNudge, Measurement, PotQuantizer)
from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.physics.network import Network, random_graph
from labtrain.kinds.resistor.model import LinearResistorNetwork


@pytest.fixture(scope="module")
def net():
    return random_graph(12, 30, seed=3, n_inputs=2, n_outputs=2)


@pytest.fixture(scope="module")
def uneven_net(net):
    """Same graph with different, awkward bounds on every edge."""
    rng = np.random.default_rng(0)
    g_min = np.exp(rng.uniform(np.log(1e-6), np.log(1e-5), net.n_edges))
    g_max = g_min * np.exp(rng.uniform(1, 5, net.n_edges))
    return Network(net.n_nodes, net.edges, net.inputs, net.outputs, net.grounds, g_min, g_max)


def inputs(n=4, k=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, k))


# -------------------------------------------------------------- parameters
def test_initial_conductance_is_geometric_mean(net):
    chip = IdealChip(net)
    np.testing.assert_allclose(chip.get_parameters(), np.sqrt(net.g_min_s * net.g_max_s))
    spec = chip.parameter_spec
    assert spec.name == "conductance" and spec.unit == "S" and spec.size == net.n_edges
    np.testing.assert_array_equal(spec.lower, net.g_min_s)
    np.testing.assert_array_equal(spec.span, net.g_max_s - net.g_min_s)
    assert spec.quantizer is None
    assert (chip.n_inputs, chip.n_outputs) == (2, 2)
    assert chip.capabilities == {CURRENT_NUDGE, CLAMP_NUDGE, EDGE_DROPS, NETWORK_MODEL, "ac_tones", "reference_gradient",
                                 "linear_network_model"}


def test_set_parameters_clips_and_returns_what_it_took(uneven_net):
    chip = IdealChip(uneven_net)
    rng = np.random.default_rng(1)
    want = rng.uniform(-1e-3, 1e-1, uneven_net.n_edges)
    want[:5] = [1e-12, 1.0, -3.0, 1e-5, 2e-6]
    took = chip.set_parameters(want)
    np.testing.assert_array_equal(took, np.clip(want, uneven_net.g_min_s, uneven_net.g_max_s))
    np.testing.assert_array_equal(chip.get_parameters(), took)
    # in-range values are taken as they are
    inside = np.sqrt(uneven_net.g_min_s * uneven_net.g_max_s)
    np.testing.assert_array_equal(chip.set_parameters(inside), inside)


def test_parameters_are_copies(net):
    chip = IdealChip(net)
    g = chip.get_parameters()
    g[:] = 0.0
    assert np.all(chip.get_parameters() > 0)
    took = chip.set_parameters(np.full(net.n_edges, 1e-4))
    took[:] = 5.0
    assert np.all(chip.get_parameters() == 1e-4)


@pytest.mark.parametrize("bad,match", [(np.ones(3), "expected 30"), (np.full(30, np.nan), "finite"),
                                       (np.full(30, np.inf), "finite")])
def test_set_parameters_rejects_bad_values(net, bad, match):
    chip = IdealChip(net)
    before = chip.get_parameters()
    with pytest.raises(ValueError, match=match):
        chip.set_parameters(bad)
    np.testing.assert_array_equal(chip.get_parameters(), before)


@pytest.mark.parametrize("kw", [dict(pot_steps=1), dict(pot_steps=-2), dict(read_noise_v=-1e-3)])
def test_constructor_validation(net, kw):
    with pytest.raises(ValueError):
        IdealChip(net, **kw)


def test_new_parameters_change_the_physics(net):
    chip = IdealChip(net)
    x = inputs()
    before = chip.measure(x).output_v
    g = np.random.default_rng(2).uniform(1e-5, 1e-3, net.n_edges)
    took = chip.set_parameters(g)
    after = chip.measure(x).output_v
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, LinearResistorNetwork(net, took).steady_state(x).output_v, rtol=1e-12)
    # the model is built once per parameter update
    assert chip.network_model() is chip.network_model()
    np.testing.assert_array_equal(chip.network_model().conductance_s, took)


# ------------------------------------------------------------ pot quantizer
@pytest.mark.parametrize("n_taps", [2, 7, 64])
def test_pot_quantization(uneven_net, n_taps):
    chip = IdealChip(uneven_net, pot_steps=n_taps)
    q = chip.parameter_spec.quantizer
    assert q.n_taps == n_taps
    rng = np.random.default_rng(n_taps)
    seen = []
    for _ in range(60):
        want = np.exp(rng.uniform(np.log(1e-7), np.log(1e-1), uneven_net.n_edges))
        took = chip.set_parameters(want)
        assert np.all(took >= uneven_net.g_min_s) and np.all(took <= uneven_net.g_max_s)
        # uniform in resistance: R - R_min is an integer multiple of the tap pitch
        pitch = (1 / uneven_net.g_min_s - 1 / uneven_net.g_max_s) / (n_taps - 1)
        k = (1 / took - 1 / uneven_net.g_max_s) / pitch
        np.testing.assert_allclose(k, np.rint(k), atol=1e-6)
        # nearest tap in resistance (within the range)
        r_want = np.clip(1 / want, 1 / uneven_net.g_max_s, 1 / uneven_net.g_min_s)
        assert np.all(np.abs(1 / took - r_want) <= 0.5 * pitch * (1 + 1e-9))
        seen.append(took)
    seen = np.array(seen)
    for e in range(uneven_net.n_edges):
        assert len(np.unique(seen[:, e])) <= n_taps
    assert max(len(np.unique(seen[:, e])) for e in range(uneven_net.n_edges)) >= min(n_taps, 3)  # not stuck
    # the end taps are exactly the bounds' resistances
    np.testing.assert_allclose(chip.set_parameters(np.full(uneven_net.n_edges, 1.0)), uneven_net.g_max_s, rtol=1e-14)
    np.testing.assert_allclose(chip.set_parameters(np.full(uneven_net.n_edges, 1e-12)), uneven_net.g_min_s,
                               rtol=1e-14)


def test_pot_quantizer_round_trip():
    q = PotQuantizer(np.array([1e3, 2e3]), np.array([1e5, 5e4]), 11)
    taps = np.array([[0, 10], [3, 7], [10, 0]])
    for t in taps:
        np.testing.assert_array_equal(q.to_taps(q.to_conductance(t)), t)
    np.testing.assert_allclose(q.to_conductance(np.array([0, 10])), [1e-3, 1 / 5e4])
    # conductance steps are uneven: equal resistance steps
    g = q.to_conductance(np.arange(11)[:, None] * np.array([1, 1]))[:, 0]
    np.testing.assert_allclose(np.diff(1 / g), 9.9e3)
    assert not np.allclose(np.diff(g), np.diff(g)[0])
    np.testing.assert_array_equal(q.to_taps(np.array([1.0, 1e-9])), [0, 10])  # clipped to the tap range


def test_step_parameters_moves_exactly_one_tap(net):
    n_taps = 16
    chip = IdealChip(net, pot_steps=n_taps)
    q = chip.parameter_spec.quantizer
    rng = np.random.default_rng(3)
    chip.set_parameters(q.to_conductance(rng.integers(1, n_taps - 1, net.n_edges)))
    for _ in range(5):
        direction = rng.normal(size=net.n_edges)
        direction[:4] = 0.0
        taps0 = q.to_taps(chip.get_parameters())
        g0 = chip.get_parameters()
        took = chip.step_parameters(direction)
        taps1 = q.to_taps(took)
        expected = np.clip(taps0 - np.sign(direction).astype(int), 0, n_taps - 1)
        np.testing.assert_array_equal(taps1, expected)
        assert np.all(np.abs(taps1 - taps0) <= 1)
        # positive direction = more conductance
        assert np.all(took[direction > 0] >= g0[direction > 0]) and np.all(took[direction < 0] <= g0[direction < 0])
        np.testing.assert_array_equal(took[:4], g0[:4])
        np.testing.assert_array_equal(chip.get_parameters(), took)
    # at the top tap, stepping up stays put
    chip.set_parameters(np.full(net.n_edges, 1.0))
    top = chip.get_parameters()
    np.testing.assert_array_equal(chip.step_parameters(np.ones(net.n_edges)), top)
    assert np.all(q.to_taps(chip.step_parameters(-np.ones(net.n_edges))) == 1)


def test_step_parameters_continuous_is_1_256_of_range(net):
    chip = IdealChip(net)
    g0 = chip.get_parameters()
    direction = np.r_[np.ones(10), -np.ones(10), np.zeros(10)]
    took = chip.step_parameters(direction * 3.7)  # only the sign matters
    np.testing.assert_allclose(took - g0, direction * (net.g_max_s - net.g_min_s) / 256, rtol=1e-9)
    chip.set_parameters(net.g_max_s)
    np.testing.assert_array_equal(chip.step_parameters(np.ones(net.n_edges)), net.g_max_s)  # clipped


# ------------------------------------------------------------------ noise
def test_read_noise_is_gaussian_with_given_std(net):
    sigma = 2e-3
    chip = IdealChip(net, read_noise_v=sigma, seed=1)
    clean = IdealChip(net)
    x = np.tile(inputs(1), (4000, 1))
    m = chip.measure(x, edge_drops=True)
    ref = clean.measure(x, edge_drops=True)
    noise = (m.output_v - ref.output_v).ravel()
    assert abs(noise.mean()) < 4 * sigma / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(sigma, rel=0.03)
    # Gaussian: 68.3 % within one sigma, 95.4 % within two, kurtosis 3
    assert np.mean(np.abs(noise) < sigma) == pytest.approx(0.683, abs=0.015)
    assert np.mean(np.abs(noise) < 2 * sigma) == pytest.approx(0.954, abs=0.01)
    assert np.mean(noise**4) / noise.var() ** 2 == pytest.approx(3.0, abs=0.2)
    # edge drops come from the same noisy node readings: independent ends -> std sqrt(2) sigma
    drop_noise = m.edge_drops.values - ref.edge_drops.values
    assert drop_noise.std() == pytest.approx(np.sqrt(2) * sigma, rel=0.03)
    assert not m.edge_drops.is_factored


def test_read_noise_reproducible_after_reseed(net):
    chip = IdealChip(net, read_noise_v=1e-3, seed=0)
    x = inputs()
    chip.reseed(7)
    a = chip.measure(x, edge_drops=True)
    b = chip.measure(x)
    assert not np.array_equal(a.output_v, b.output_v)  # the generator advances
    chip.reseed(7)
    a2 = chip.measure(x, edge_drops=True)
    np.testing.assert_array_equal(a.output_v, a2.output_v)
    np.testing.assert_array_equal(a.edge_drops.values, a2.edge_drops.values)
    chip.reseed([7, 3])  # a sequence seed (per-step seeding in the run loop)
    c = chip.measure(x)
    chip.reseed([7, 3])
    np.testing.assert_array_equal(chip.measure(x).output_v, c.output_v)
    assert not np.array_equal(c.output_v, a.output_v)
    # the constructor seed is honoured too
    o1 = IdealChip(net, read_noise_v=1e-3, seed=5).measure(x).output_v
    o2 = IdealChip(net, read_noise_v=1e-3, seed=5).measure(x).output_v
    np.testing.assert_array_equal(o1, o2)


def test_no_noise_is_exact(net):
    chip = IdealChip(net)
    x = inputs()
    m = chip.measure(x)
    np.testing.assert_array_equal(m.output_v, chip.network_model().steady_state(x).output_v)
    assert m.edge_drops is None  # not requested
    assert isinstance(m, Measurement) and m.timestamp_s > 0


# --------------------------------------------------------------- nudges
@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_measure_with_current_nudge(net, noise):
    chip = IdealChip(net, read_noise_v=noise, seed=0)
    x = inputs()
    cur = np.random.default_rng(4).normal(size=(4, 2)) * 1e-5
    m = chip.measure(x, CurrentNudge(cur), edge_drops=True)
    ref = LinearResistorNetwork(net, chip.get_parameters()).steady_state(x, output_current_a=cur)
    tol = 6 * noise + 1e-12
    assert np.abs(m.output_v - ref.output_v).max() <= tol
    assert np.abs(m.edge_drops.values - ref.edge_drops.values).max() <= 2 * tol
    free = chip.measure(x).output_v
    assert np.abs(m.output_v - free).max() > 10 * tol  # the nudge did something


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_measure_with_clamp_nudge(net, noise):
    chip = IdealChip(net, read_noise_v=noise, seed=0)
    x = inputs()
    clamp = np.random.default_rng(5).uniform(-0.5, 0.5, (4, 2))
    m = chip.measure(x, ClampNudge(clamp), edge_drops=True)
    assert np.abs(m.output_v - clamp).max() <= 6 * noise + 1e-10
    ref = LinearResistorNetwork(net, chip.get_parameters()).steady_state(x, output_clamp_v=clamp)
    assert np.abs(m.edge_drops.values - ref.edge_drops.values).max() <= 12 * noise + 1e-10


def test_unknown_nudge_rejected(net):
    with pytest.raises(TypeError, match="nudge"):
        IdealChip(net).measure(inputs(), nudge=np.zeros((4, 2)))


# ------------------------------------------------------ records & safety
def test_snapshot_is_json(net):
    chip = IdealChip(net, pot_steps=32, read_noise_v=1e-3, seed=2, input_mode="current")
    snap = json.loads(json.dumps(chip.snapshot()))
    assert snap["backend"] == "ideal"
    assert snap["pot_steps"] == 32 and snap["read_noise_v"] == 1e-3 and snap["input_mode"] == "current"
    assert snap["network"]["n_edges"] == 30 and snap["network"]["outputs"] == list(net.outputs)
    assert set(snap["capabilities"]) == set(chip.capabilities)


class SpyChip(IdealChip):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[str] = []

    def safe_state(self):
        self.calls.append("safe_state")

    def close(self):
        self.calls.append("close")
        super().close()


def test_context_manager_goes_to_safe_state(net):
    with SpyChip(net) as chip:
        assert isinstance(chip, SpyChip)
        chip.measure(inputs())
        assert chip.calls == []
    assert chip.calls == ["close", "safe_state"]


def test_context_manager_safe_state_on_error(net):
    spy = SpyChip(net)
    with pytest.raises(RuntimeError, match="boom"):
        with spy:
            raise RuntimeError("boom")
    assert spy.calls == ["close", "safe_state"]


def test_base_chip_defaults(net):
    class Minimal(Chip):
        backend = "minimal"
        n_inputs = n_outputs = 1
        parameter_spec = None

        def get_parameters(self):
            return np.zeros(1)

        def set_parameters(self, values):
            return np.asarray(values)

        def measure(self, inputs, nudge=None, edge_drops=False):
            return Measurement(np.zeros((1, 1)))

        def snapshot(self):
            return {}

    chip = Minimal()
    with pytest.raises(CapabilityError, match="minimal chip has no network model"):
        chip.network_model()
    with pytest.raises(CapabilityError, match=r"needs chip capabilities \['edge_drops'\]"):
        chip.require({EDGE_DROPS}, "ep")
    chip.require(set(), "nothing")
    chip.safe_state()
    chip.close()  # default close/safe_state exist and do not raise
    with pytest.raises(TypeError):
        Chip()  # abstract
