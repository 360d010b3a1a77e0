"""``[chip] type = "dnpu"``: dopant-network processing units trained by homodyne gradient extraction."""

from __future__ import annotations

from typing import Any

from labtrain.kinds import ChipKind
from labtrain.kinds.ac_rules import check_ac_settings, hge_rule
from labtrain.kinds.dnpu.builder import DNPU_LAYOUT_KEYS, no_network, build_dnpu_task, build_dnpu_chip, hge_gradcheck
from labtrain.kinds.dnpu.schema import OWN
from labtrain.kinds.dnpu.selftest import dnpu_selftest
from labtrain.kinds.fields import AC_WINDOW, VOLTAGE_TASK, merge
from labtrain.schema import ConfigError, show


def check(s: dict[str, dict[str, Any]], given: dict[str, dict[str, Any]], source: str) -> None:
    """Model and surrogate file, electrode lists that fit together, tone amplitudes per control."""
    c, where = s["chip"], f"{source}: [chip]"
    given_chip = given.get("chip", {})
    if c["model"] == "surrogate":
        if not c["surrogate_path"]:
            raise ConfigError(f"{where} model = 'surrogate' needs surrogate_path = \"path/to/surrogate.h5\" "
                              "(written by labtrain characterize)")
        extra = [k for k in DNPU_LAYOUT_KEYS + ("model_seed",) if k in given_chip]
        if extra:
            raise ConfigError(f"{where} {extra[0]} = {show(given_chip[extra[0]])}: with model = 'surrogate' the "
                              "surrogate file sets the electrode ranges, roles, gain and clipping; remove it")
        return
    if c["surrogate_path"]:
        raise ConfigError(f"{where} surrogate_path = {c['surrogate_path']!r} applies to model = 'surrogate', "
                          f"not to model = {c['model']!r}; remove it")
    low, high = c["electrode_low_v"], c["electrode_high_v"]
    if len(low) != len(high):
        raise ConfigError(f"{where} electrode_low_v = {show(low)} and electrode_high_v = {show(high)} must list "
                          "the same electrodes")
    bad = [i for i, (lo, hi) in enumerate(zip(low, high)) if lo >= hi]
    if bad:
        raise ConfigError(f"{where} electrode {bad[0]}: electrode_low_v = {low[bad[0]]!r} must be below "
                          f"electrode_high_v = {high[bad[0]]!r}")
    amps = s["learning"]["amplitudes_v"]
    n_c = len(c["control_electrodes"])
    if len(amps) not in (1, n_c):
        raise ConfigError(f"{source}: [learning] amplitudes_v = {show(amps)}: expected one amplitude or one per "
                          f"control electrode ({n_c})")


def describe(s: dict[str, dict[str, Any]]) -> str:
    c = s["chip"]
    model = "surrogate" if c["model"] == "surrogate" else f"hopping model, seed {c['model_seed']}"
    return f"DNPU ({model}; {len(c['control_electrodes'])} controls)"


KIND = ChipKind(
    name="dnpu",
    summary="dopant-network processing unit (control voltages, output current via a TIA); HGE",
    schema=merge(VOLTAGE_TASK, AC_WINDOW, OWN),
    rules={"hge": hge_rule},
    task=build_dnpu_task,
    network=no_network,
    chip=build_dnpu_chip,
    backends=("ideal", "twin", "hardware"),
    check=check,
    check_setup=check_ac_settings,
    gradcheck=hge_gradcheck,
    describe=describe,
    selftest=dnpu_selftest,
)
