"""One contract, every chip: each registered kind x backend (ideal, twin) and the example plugin's kind.

What a rule, the run loop and the GUI may ask of a chip is the :class:`~labtrain.chip.base.Chip`
contract; this suite checks each implementation keeps it (shapes, units, parameter validation, reseeding,
snapshot, safe state) and that the exact reference gradient agrees with finite differences of the loss.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from labtrain.build import build_setup
from labtrain.chip.base import REFERENCE_GRADIENT, CapabilityError, Chip, Measurement
from labtrain.config import chip_kinds, experiment_from_text, load_experiment
from labtrain.protocols.base import half_squared_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: a small experiment per built-in kind
CASES = {
    "resistor_network": ("xor_resistor_cl.toml", ("ideal", "twin")),
    "nonlinear_resistor": ("xor_diode_fp.toml", ("ideal", "twin")),
    "dnpu": ("dnpu_xor_hge.toml", ("ideal", "twin")),
    "xy": ("xor_xy_all_to_all.toml", ("ideal",)),
    "nonreciprocal": ("digits_aep.toml", ("ideal",)),
}
#: kinds whose measurement is stochastic by design (random relaxation starts): no finite differences
STOCHASTIC = {"xy"}
PARAMS = [pytest.param((kind, backend), id=f"{kind}-{backend}") for kind, (_, backends) in CASES.items()
          for backend in backends]


def test_every_registered_kind_is_covered():
    assert set(CASES) == set(chip_kinds())
    for kind, (_, backends) in CASES.items():
        assert set(chip_kinds()[kind].backends) - {"hardware"} == set(backends), kind


@pytest.fixture(params=PARAMS)
def setup(request):
    kind, backend = request.param
    exp = load_experiment(EXAMPLES / CASES[kind][0], {"backend": {"kind": backend}})
    s = build_setup(exp)
    yield s
    s.chip.close()


@pytest.fixture
def plugin_chip():
    sys.path.insert(0, str(EXAMPLES / "plugin"))
    try:
        from labtrain_crossbar.chip import CrossbarChip
        chip = CrossbarChip(3, 2, g_min_s=1e-5, g_max_s=1e-3, feedback_ohm=1000.0, seed=0)
    finally:
        sys.path.remove(str(EXAMPLES / "plugin"))
    return chip


def _batch(setup):
    return setup.task.x_train[:4], setup.task.t_train[:4]


def check_contract(chip: Chip, x: np.ndarray, t: np.ndarray, stochastic: bool) -> None:
    spec = chip.parameter_spec
    assert isinstance(chip.capabilities, frozenset) and all(isinstance(c, str) for c in chip.capabilities)
    assert spec.lower.shape == spec.upper.shape == (spec.size,) and np.all(spec.lower < spec.upper)
    assert isinstance(spec.unit, str) and spec.unit
    # one declared unit per parameter (run files and exports take their units from here), "mixed" resolved
    units = chip.parameter_units()
    assert len(units) == spec.size and all(isinstance(u, str) and u and u != "mixed" for u in units)
    assert spec.unit == "mixed" or set(units) == {spec.unit}
    assert isinstance(chip.output_unit, str) and chip.output_unit
    p0 = chip.get_parameters()
    assert p0.shape == (spec.size,) and np.all((p0 >= spec.lower) & (p0 <= spec.upper))
    # setting returns what the device took: clipped into the bounds, never outside
    took = chip.set_parameters(spec.upper + spec.span)
    assert np.all(took <= spec.upper + 1e-12 * np.abs(spec.upper)) and np.allclose(chip.get_parameters(), took)
    for bad in (np.full(spec.size, np.nan), np.zeros(spec.size + 1)):
        with pytest.raises(ValueError):
            chip.set_parameters(bad)
    assert np.allclose(chip.get_parameters(), took)  # a refused request changes nothing
    chip.set_parameters(p0)
    # measuring: shape, unit, repeatable after reseed
    chip.reseed([1, 2])
    m = chip.measure(x)
    assert isinstance(m, Measurement)
    assert m.output_v.shape == (len(x), chip.n_outputs) and np.all(np.isfinite(m.output_v))
    assert m.unit == chip.output_unit
    chip.reseed([1, 2])
    np.testing.assert_array_equal(chip.measure(x).output_v, m.output_v)
    with pytest.raises(CapabilityError, match="needs chip capabilities"):
        chip.require({"no_such_capability"}, "a test")
    # snapshot is JSON data; parameter labels name every parameter or none
    json.dumps(chip.snapshot())
    assert len(chip.parameter_labels()) in (0, spec.size)
    # the reference gradient: shape, and finite differences of the noise-free loss along a random direction
    if REFERENCE_GRADIENT in chip.capabilities:
        g = chip.reference_gradient(x, t)
        assert g.shape == (spec.size,) and np.all(np.isfinite(g))
        np.testing.assert_allclose(chip.reference_gradient(x, t, chip.get_parameters()), g)
        if not stochastic:
            rng = np.random.default_rng(0)
            d = rng.normal(size=spec.size) * spec.span * 1e-4
            p = chip.get_parameters()
            inside = np.clip(p, spec.lower + 2 * np.abs(d), spec.upper - 2 * np.abs(d))
            chip.set_parameters(inside)
            g = chip.reference_gradient(x, t)

            def loss(params):
                chip.set_parameters(params)
                chip.reseed([1, 2])
                return half_squared_error(chip.measure(x).output_v, t)

            fd = (loss(inside + d) - loss(inside - d)) / 2
            chip.set_parameters(p)
            assert fd == pytest.approx(g @ d, rel=2e-3, abs=1e-12 * max(1.0, abs(g @ d)))
    else:
        with pytest.raises(CapabilityError):
            chip.reference_gradient(x, t)
    # safe state: idempotent; the context manager closes
    chip.safe_state()
    chip.safe_state()


def test_chip_contract(setup):
    x, t = _batch(setup)
    kind = setup.experiment["chip"]["type"]
    check_contract(setup.chip, x, t, stochastic=kind in STOCHASTIC or setup.chip.backend != "ideal")
    assert setup.chip.backend == setup.experiment["backend"]["kind"]


def test_plugin_chip_contract(plugin_chip):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (5, 3))
    t = rng.uniform(0, 0.5, (5, 2))
    with plugin_chip as chip:
        check_contract(chip, x, t, stochastic=False)
