"""The registry: plugin entry points for kinds, rules and drivers, as labtrain's front ends see them."""

from __future__ import annotations

import sys
import types

import pytest

from labtrain import registry
from labtrain.cli import format_installed, main
from labtrain import config
from labtrain.config import ConfigError, experiment_from_text, schema_for
from labtrain.build import build_setup
from labtrain.kinds import RulePlugin
from labtrain.protocols.gep import EquilibriumPropagation
from labtrain.schema import Field


@pytest.fixture
def plugins(monkeypatch):
    """Install fake plugin entry points (a rule, a broken kind, a kind that shadows a built-in name)."""
    module = types.ModuleType("fake_labtrain_plugin")
    module.RULE = RulePlugin("half_ep", kinds=("resistor_network",),
                             build=lambda exp: EquilibriumPropagation(exp["learning"]["half_beta_s"] * 2),
                             schema={"learning": {"half_beta_s": Field("float", 5e-7, "half the EP nudge (S)", 0, 1,
                                                                       low_open=True)}})
    monkeypatch.setitem(sys.modules, "fake_labtrain_plugin", module)
    fake = {
        "labtrain.rules": [registry.Entry("labtrain.rules", "half_ep", "fake_labtrain_plugin:RULE", "fake-plugin")],
        "labtrain.kinds": [registry.Entry("labtrain.kinds", "broken_kind", "no_such_module_xyz:KIND", "fake-plugin"),
                           registry.Entry("labtrain.kinds", "xy", "fake_labtrain_plugin:RULE", "fake-plugin")],
        "labtrain.drivers": [],
    }
    monkeypatch.setattr(registry, "_plugin_entries", lambda group: fake[group])
    registry.clear_cache()
    yield
    registry.clear_cache()


XOR = """
[chip]
rows = 3
cols = 3
[task]
name = "xor"
complementary_inputs = true
[learning]
rule = "half_ep"
half_beta_s = 1e-6
[run]
epochs = 1
"""


def test_a_plugin_rule_joins_the_kinds_it_names(plugins):
    rules = config.CHIP_RULES
    assert "half_ep" in rules["resistor_network"] and "half_ep" not in rules["dnpu"]
    assert "half_beta_s" in schema_for("resistor_network")["learning"]
    assert "half_beta_s" not in schema_for("xy")["learning"]
    setup = build_setup(experiment_from_text(XOR))
    try:
        assert isinstance(setup.estimator, EquilibriumPropagation) and setup.estimator.strength == 2e-6
    finally:
        setup.chip.close()


def test_broken_and_shadowing_plugins_are_reported_not_fatal(plugins):
    text = format_installed()
    broken = [line for line in text.splitlines() if "broken_kind" in line]
    assert len(broken) == 1 and "BROKEN" in broken[0] and "no_such_module_xyz" in broken[0]
    assert "[plugin fake-plugin]" in broken[0]
    # the built-in xy stays the built-in one
    assert registry.entries("labtrain.kinds")["xy"].source == "labtrain"
    # a file naming the broken kind: one line, exit 2
    with pytest.raises(ConfigError, match="broken_kind"):
        experiment_from_text('[chip]\ntype = "broken_kind"\n')


def test_unknown_names_are_one_line_errors():
    registry.clear_cache()
    with pytest.raises(registry.RegistryError, match="no kind named 'nope' is installed; installed: resistor_network"):
        registry.load("labtrain.kinds", "nope")
    with pytest.raises(registry.RegistryError, match="unknown registry group"):
        registry.entries("labtrain.nothing")


def test_devices_lists_every_builtin_kind_and_driver(capsys):
    registry.clear_cache()
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in ("resistor_network", "xy", "nonreciprocal", "nonlinear_resistor", "dnpu", "nidaq", "sr830",
                 "potbridge"):
        assert any(line.strip().startswith(name + " ") for line in out.splitlines()), name
    assert "BROKEN" not in out
