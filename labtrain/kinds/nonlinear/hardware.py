"""Assemble a nonlinear bench chip from an experiment: wiring, bench (twin or real), checks, safety.

As :mod:`labtrain.kinds.resistor.hardware` for the linear bench, with the nonlinear chip's
differences: pots only for the linear edges (none needed without one), gate AO channels for
the transistor edges with their own safety limits (``[min(0, gate_min_v), max(0, gate_max_v)]``,
safe level 0 V: every transistor off), and the twin's per-part diode variations
(``[backend] twin_diode_tolerance``, ``twin_temperature_k``).  Before the chip is made --
before any voltage -- the opened bench is checked against the wiring (every channel exists,
the AO range covers ``max_abs_v`` and the gate range, the AI range ``ai_max_abs_v``, every pot
channel exists).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from labtrain.instruments.bench_file import (Bench, BenchError, BenchNeeds, BenchPort, ChannelGroup,
                                             bench_instruments, daq_prefix, open_bench, require_bench,
                                             resolve_channel)
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.nonlinear.bench import NonlinearBenchChip
from labtrain.kinds.nonlinear.model import NonlinearEdges
from labtrain.kinds.nonlinear.wiring import NonlinearWiring, WiringError, default_nonlinear_wiring
from labtrain.kinds.resistor.hardware import acquisition_settings
from labtrain.physics.network import Network

__all__ = ["nonlinear_instruments", "build_nonlinear_wiring", "nonlinear_safety_config", "gate_limits",
           "bench_needs", "open_nonlinear_twin", "open_nonlinear_bench", "build_nonlinear_bench_chip",
           "identify_nonlinear_instruments", "BUILD_ERRORS"]

BENCH = "a nonlinear_resistor bench"


def _roles(edges: NonlinearEdges) -> tuple[str, ...]:
    """The bench's roles: a DAQ, and a pot array when there is a linear edge."""
    return ("daq", "pots") if len(edges.indices("linear")) else ("daq",)


def nonlinear_instruments(backend: Mapping[str, Any], edges: NonlinearEdges,
                          instruments: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The bench's instruments: the file's ``[instruments]`` for the roles it names, ``[backend]`` keys otherwise."""
    return bench_instruments(instruments, backend, _roles(edges), bench=BENCH)


def build_nonlinear_wiring(backend: Mapping[str, Any], wiring: Mapping[str, Any], net: Network, edges: NonlinearEdges,
                           instruments: Mapping[str, Any] | None = None) -> NonlinearWiring:
    """The experiment's ``[wiring]`` with defaults from :func:`default_nonlinear_wiring` (raises WiringError).

    Channel names may go through the DAQ instrument's name (``"daq/ao3"`` -> ``"Dev1/ao3"``).
    """
    entries = nonlinear_instruments(backend, edges, instruments) if instruments else {}
    device = daq_prefix(entries, backend["daq_device"])
    base = default_nonlinear_wiring(net, edges, device, wiring["read"], wiring["output_series_ohm"],
                                    wiring["read_nodes"] or None)

    def names(key: str) -> tuple[str, ...]:
        return tuple(resolve_channel(c, entries) for c in wiring[key])

    w = NonlinearWiring(
        input_ao=names("input_ao") or base.input_ao,
        output_ao=names("output_ao") or base.output_ao,
        output_switch_do=names("output_switch_do") or base.output_switch_do,
        output_series_ohm=float(wiring["output_series_ohm"]),
        read_nodes=base.read_nodes,
        node_ai=names("node_ai") or base.node_ai,
        pot_channels=tuple(wiring["pot_channels"]) or base.pot_channels,
        gate_ao=names("gate_ao") or base.gate_ao,
    )
    w.check(net, edges)
    return w


def gate_limits(edges: NonlinearEdges) -> tuple[np.ndarray, np.ndarray]:
    """Safety limits ``(min_v, max_v)`` of every gate AO channel (transistor edges in increasing order):
    the gate range widened to include the safe level 0 V."""
    tr = edges.indices("transistor")
    return (np.minimum(0.0, edges.params["gate_min_v"][tr]), np.maximum(0.0, edges.params["gate_max_v"][tr]))


def nonlinear_safety_config(backend: Mapping[str, Any], wiring: NonlinearWiring, edges: NonlinearEdges,
                            rate_hz: float) -> SafetyConfig:
    """``max_abs_v`` on the input and output AOs, the gate limits on the gate AOs; ramps clocked at ``rate_hz``."""
    lo, hi = gate_limits(edges)
    channels = {c: {"min_v": float(a), "max_v": float(b)} for c, a, b in zip(wiring.gate_ao, lo, hi)}
    return SafetyConfig.from_settings(backend["max_abs_v"], backend["max_slew_v_per_s"], ramp_rate_hz=rate_hz,
                                      channels=channels)


def bench_needs(backend: Mapping[str, Any], wiring: NonlinearWiring, edges: NonlinearEdges) -> list[BenchNeeds]:
    """What the wiring and the limits ask of the bench: the signal channels and pots, then the gate channels."""
    needs = [BenchNeeds(
        groups=(ChannelGroup("ao", "input_ao", wiring.input_ao), ChannelGroup("ao", "output_ao", wiring.output_ao),
                ChannelGroup("ai", "node_ai", wiring.node_ai),
                ChannelGroup("do", "output_switch_do", wiring.output_switch_do)),
        max_abs_v=float(backend["max_abs_v"]), max_abs_v_source=("backend", f"max_abs_v = {backend['max_abs_v']:g}"),
        ai_max_abs_v=float(backend["ai_max_abs_v"]),
        ai_max_abs_v_source=("backend", f"ai_max_abs_v = {backend['ai_max_abs_v']:g}"),
        pot_channels=tuple(wiring.pot_channels))]
    if wiring.gate_ao:
        lo, hi = gate_limits(edges)
        reach = float(max(np.max(-lo), np.max(hi)))
        needs.append(BenchNeeds(groups=(ChannelGroup("ao", "gate_ao", wiring.gate_ao),), max_abs_v=reach,
                                max_abs_v_source=("chip", f"gate range [{float(lo.min()):g}, {float(hi.max()):g}] V "
                                                  "(gate_min_v, gate_max_v)")))
    return needs


def _pot_settings(backend: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Pot taps and resistances: the pots instrument's options where given, else ``[backend] pot_*``."""
    out = {"n_taps": backend["pot_taps"], "r_total_ohm": backend["pot_r_total_ohm"],
           "r_wiper_ohm": backend["pot_r_wiper_ohm"], "r_end_ohm": backend["pot_r_end_ohm"]}
    for entry in entries.values():
        if entry.get("port") == "pots":
            out.update({k: v for k, v in entry.get("options", {}).items() if k in out and v is not None})
    return out


def open_nonlinear_twin(backend: Mapping[str, Any], net: Network, edges: NonlinearEdges, wiring: NonlinearWiring,
                        seed: int, instruments: Mapping[str, Any] | None = None):
    """Simulated DAQ and pot array behind a nonlinear bench circuit (the raw, unwrapped twin).

    The twin's DAQ has the ``[backend] twin_*`` converters and noise; its diodes differ from the
    model's by ``twin_diode_tolerance`` and ``twin_temperature_k``.
    """
    from labtrain.kinds.nonlinear.twin import build_nonlinear_twin

    entries = nonlinear_instruments(backend, edges, instruments) if instruments else {}
    ai = backend["ai_max_abs_v"]
    pots = _pot_settings(backend, entries)
    daq_options = {"ai_range_v": (-ai, ai), "adc_bits": backend["twin_adc_bits"],
                   "noise_white_v": backend["twin_noise_white_v"], "noise_1f_v": backend["twin_noise_1f_v"],
                   "rc_time_s": backend["twin_rc_time_s"], "max_rate_hz": max(1e5, backend["rate_hz"]),
                   "device": f"{daq_prefix(entries, backend['daq_device'])}-twin"}
    for entry in entries.values():
        if entry.get("port") == "daq" and entry.get("options", {}).get("ao_range_v") is not None:
            daq_options["ao_range_v"] = tuple(entry["options"]["ao_range_v"])
    return build_nonlinear_twin(
        net, edges, wiring, seed=seed, diode_tolerance=backend["twin_diode_tolerance"],
        temperature_k=backend["twin_temperature_k"],
        pot_options={"n_taps": pots["n_taps"], "r_total_ohm": pots["r_total_ohm"],
                     "r_wiper_ohm": pots["r_wiper_ohm"], "r_end_ohm": pots["r_end_ohm"],
                     "tolerance": backend["pot_tolerance"]},
        daq_options=daq_options)


def open_nonlinear_bench(backend: Mapping[str, Any], net: Network, edges: NonlinearEdges, wiring: NonlinearWiring,
                         instruments: Mapping[str, Any] | None = None, ports: Mapping[str, Any] | None = None,
                         seed: int = 0) -> Bench:
    """The bench of a nonlinear chip, opened (hardware) or simulated (twin), and checked against the wiring.

    ``ports`` maps a role (``"daq"``, ``"pots"``) to a ready port that replaces that role's instrument.
    Raises :class:`~labtrain.instruments.bench_file.BenchError` (one line, ``section`` to blame); every
    port is closed again then.
    """
    entries = nonlinear_instruments(backend, edges, instruments) if (instruments or backend["kind"] != "twin") else {}
    if backend["kind"] == "twin":
        twin = open_nonlinear_twin(backend, net, edges, wiring, seed, instruments)
        names = {e["port"]: n for n, e in entries.items()}
        found = [BenchPort(names.get("daq", "daq"), "daq", twin.daq, None, "", "backend")]
        if twin.pots is not None:
            found.append(BenchPort(names.get("pots", "pots"), "pots", twin.pots, None, "", "backend"))
        bench = Bench(found)
    else:
        ai = backend["ai_max_abs_v"]
        options = {"daq": {"ao_channels": wiring.all_ao_channels(), "ai_channels": wiring.node_ai,
                           "do_lines": wiring.output_switch_do, "ai_range_v": (-ai, ai)}}
        if wiring.pot_channels:
            options["pots"] = {"n_channels": max(wiring.pot_channels) + 1, **_pot_settings(backend, entries)}
        bench = open_bench(entries, options, given=ports)
    try:
        for needs in bench_needs(backend, wiring, edges):
            require_bench(bench, needs)
    except BaseException:
        bench.close()
        raise
    return bench


def build_nonlinear_bench_chip(backend: Mapping[str, Any], wiring_section: Mapping[str, Any], net: Network,
                               edges: NonlinearEdges, parameters: np.ndarray | None, seed: int,
                               instruments: Mapping[str, Any] | None = None,
                               ports: Mapping[str, Any] | None = None) -> NonlinearBenchChip:
    """Wiring, bench, checks, safety and the chip.

    Raises WiringError / BenchError / SafetyError / ImportError / PortError.
    """
    wiring = build_nonlinear_wiring(backend, wiring_section, net, edges, instruments)
    settings = acquisition_settings(backend)
    config = nonlinear_safety_config(backend, wiring, edges, settings.rate_hz)
    bench = open_nonlinear_bench(backend, net, edges, wiring, instruments, ports, seed)
    try:
        safe_daq = SafeDAQ(bench["daq"], config)
    except BaseException:
        bench.close()
        raise
    safe_pots = SafePotArray(bench["pots"], config) if "pots" in bench else None
    try:
        return NonlinearBenchChip(net, edges, wiring, safe_daq, safe_pots, settings, parameters,
                                  backend=backend["kind"])
    except BaseException:
        safe_daq.close()
        if safe_pots is not None:
            safe_pots.close()
        raise


def identify_nonlinear_instruments(backend: Mapping[str, Any], wiring_section: Mapping[str, Any], net: Network,
                                   edges: NonlinearEdges, instruments: Mapping[str, Any] | None = None
                                   ) -> dict[str, str]:
    """Open every instrument, check it against the wiring, ask its identity, close it -- applying no voltage."""
    wiring = build_nonlinear_wiring(backend, wiring_section, net, edges, instruments)
    bench = open_nonlinear_bench(backend, net, edges, wiring, instruments)
    try:
        return bench.identities()
    finally:
        bench.close()


#: what the builder turns into a one-line ConfigError (BenchError carries ``section``)
BUILD_ERRORS = (WiringError, SafetyError, BenchError)
