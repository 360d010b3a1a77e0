"""What assembling a DAQ-and-pot bench from an experiment shares across kinds.

The kinds' ``hardware`` modules (:mod:`labtrain.kinds.resistor.hardware`,
:mod:`labtrain.kinds.nonlinear.hardware`) build their wiring, open (or
simulate) their bench, check it and wrap it in the safety layer; the pieces
here are the ones that do not depend on the kind: the shared wiring keys of an
experiment's ``[wiring]``, the acquisition settings, pot settings, the twin's
DAQ options, the signal channels' needs and the options that open the real
instruments, and ``labtrain check``'s capability check.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from labtrain.config import ConfigError
from labtrain.instruments.bench_file import Bench, BenchNeeds, BenchPort, ChannelGroup, resolve_channel
from labtrain.kinds.dac_bench.chip import AcquisitionSettings
from labtrain.kinds.dac_bench.wiring import DACWiring

__all__ = ["acquisition_settings", "wiring_keys", "pot_settings", "twin_daq_options", "twin_pot_options",
           "twin_bench", "signal_needs", "hardware_options", "require_rule_capabilities"]


def acquisition_settings(backend: Mapping[str, Any]) -> AcquisitionSettings:
    return AcquisitionSettings(rate_hz=backend["rate_hz"], settle_samples=backend["settle_samples"],
                               average_samples=backend["average_samples"], timeout_s=backend["timeout_s"],
                               retries=backend["retries"], retry_wait_s=backend["retry_wait_s"])


def wiring_keys(section: Mapping[str, Any], entries: Mapping[str, Any], base: DACWiring,
                extra: Sequence[str] = ()) -> dict[str, Any]:
    """The wiring keys of an experiment's ``[wiring]`` ``section``: channel names resolved through the
    instruments ``entries`` (``"daq/ao3"`` -> ``"Dev1/ao3"``), each key left empty taken from ``base`` (the
    kind's default wiring); ``extra`` names further channel-list keys of the kind (``gate_ao``)."""

    def names(key: str) -> tuple[str, ...]:
        return tuple(resolve_channel(c, entries) for c in section[key])

    keys = dict(
        input_ao=names("input_ao") or base.input_ao,
        output_ao=names("output_ao") or base.output_ao,
        output_switch_do=names("output_switch_do") or base.output_switch_do,
        output_series_ohm=float(section["output_series_ohm"]),
        read_nodes=base.read_nodes,
        node_ai=names("node_ai") or base.node_ai,
        pot_channels=tuple(section["pot_channels"]) or base.pot_channels,
    )
    keys.update({key: names(key) or getattr(base, key) for key in extra})
    return keys


def pot_settings(backend: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Pot taps and resistances: the pots instrument's options where given, else ``[backend] pot_*``."""
    out = {"n_taps": backend["pot_taps"], "r_total_ohm": backend["pot_r_total_ohm"],
           "r_wiper_ohm": backend["pot_r_wiper_ohm"], "r_end_ohm": backend["pot_r_end_ohm"]}
    for entry in entries.values():
        if entry.get("port") == "pots":
            out.update({k: v for k, v in entry.get("options", {}).items() if k in out and v is not None})
    return out


def twin_pot_options(backend: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The twin's pot array: :func:`pot_settings` and ``[backend] pot_tolerance``."""
    pots = pot_settings(backend, entries)
    return {"n_taps": pots["n_taps"], "r_total_ohm": pots["r_total_ohm"], "r_wiper_ohm": pots["r_wiper_ohm"],
            "r_end_ohm": pots["r_end_ohm"], "tolerance": backend["pot_tolerance"]}


def twin_daq_options(backend: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]],
                     device: str) -> dict[str, Any]:
    """The twin DAQ's converters and noise (``[backend] twin_*``), named ``<device>-twin``; the DAQ
    instrument's ``options.ao_range_v`` where the file gives one."""
    ai = backend["ai_max_abs_v"]
    options = {"ai_range_v": (-ai, ai), "adc_bits": backend["twin_adc_bits"],
               "noise_white_v": backend["twin_noise_white_v"], "noise_1f_v": backend["twin_noise_1f_v"],
               "rc_time_s": backend["twin_rc_time_s"], "max_rate_hz": max(1e5, backend["rate_hz"]),
               "device": f"{device}-twin"}
    for entry in entries.values():
        if entry.get("port") == "daq" and entry.get("options", {}).get("ao_range_v") is not None:
            options["ao_range_v"] = tuple(entry["options"]["ao_range_v"])
    return options


def twin_bench(twin: Any, entries: Mapping[str, Mapping[str, Any]]) -> Bench:
    """A twin's DAQ and pot array (when it has one) as a bench, under the file's instrument names."""
    names = {e["port"]: n for n, e in entries.items()}
    found = [BenchPort(names.get("daq", "daq"), "daq", twin.daq, None, "", "backend")]
    if twin.pots is not None:
        found.append(BenchPort(names.get("pots", "pots"), "pots", twin.pots, None, "", "backend"))
    return Bench(found)


def signal_needs(backend: Mapping[str, Any], wiring: DACWiring) -> BenchNeeds:
    """What the signal channels, the pots and the ``[backend]`` limits ask of the bench."""
    return BenchNeeds(
        groups=(ChannelGroup("ao", "input_ao", wiring.input_ao), ChannelGroup("ao", "output_ao", wiring.output_ao),
                ChannelGroup("ai", "node_ai", wiring.node_ai),
                ChannelGroup("do", "output_switch_do", wiring.output_switch_do)),
        max_abs_v=float(backend["max_abs_v"]), max_abs_v_source=("backend", f"max_abs_v = {backend['max_abs_v']:g}"),
        ai_max_abs_v=float(backend["ai_max_abs_v"]),
        ai_max_abs_v_source=("backend", f"ai_max_abs_v = {backend['ai_max_abs_v']:g}"),
        pot_channels=tuple(wiring.pot_channels))


def hardware_options(backend: Mapping[str, Any], wiring: DACWiring,
                     entries: Mapping[str, Any]) -> dict[str, dict]:
    """Options that open the real instruments: the DAQ's channels (every AO the wiring uses) and AI range, the
    pot array's channels and settings (when the wiring has pots)."""
    ai = backend["ai_max_abs_v"]
    options = {"daq": {"ao_channels": wiring.all_ao_channels(), "ai_channels": wiring.node_ai,
                       "do_lines": wiring.output_switch_do, "ai_range_v": (-ai, ai)}}
    if wiring.pot_channels:
        options["pots"] = {"n_channels": max(wiring.pot_channels) + 1, **pot_settings(backend, entries)}
    return options


def require_rule_capabilities(exp: Mapping[str, Any], estimator: Any, capabilities: frozenset[str], src: str) -> None:
    """``labtrain check`` on a bench: a one-line ConfigError when the rule needs capabilities the bench chip the
    wiring implies does not have -- the words of the run's own check (``Chip.require``), so ``check`` and
    ``run`` agree."""
    missing = sorted(estimator.requires - capabilities)
    if missing:
        raise ConfigError(f"{src}: [learning] rule = {exp['learning']['rule']!r}: {estimator.name} needs "
                          f"chip capabilities {missing}, which the {exp['backend']['kind']} chip does not have "
                          f"(it has {sorted(capabilities)})")
