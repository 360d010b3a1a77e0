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

from labtrain.instruments.bench_file import (Bench, BenchError, BenchNeeds, ChannelGroup, bench_instruments,
                                             daq_prefix, open_bench, require_bench)
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.dac_bench.hardware import (acquisition_settings, hardware_options, signal_needs, twin_bench,
                                               twin_daq_options, twin_pot_options, wiring_keys)
from labtrain.kinds.nonlinear.bench import NonlinearBenchChip
from labtrain.kinds.nonlinear.model import NonlinearEdges
from labtrain.kinds.nonlinear.wiring import NonlinearWiring, WiringError, default_nonlinear_wiring
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

    w = NonlinearWiring(**wiring_keys(wiring, entries, base, extra=("gate_ao",)))
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
    needs = [signal_needs(backend, wiring)]
    if wiring.gate_ao:
        lo, hi = gate_limits(edges)
        reach = float(max(np.max(-lo), np.max(hi)))
        needs.append(BenchNeeds(groups=(ChannelGroup("ao", "gate_ao", wiring.gate_ao),), max_abs_v=reach,
                                max_abs_v_source=("chip", f"gate range [{float(lo.min()):g}, {float(hi.max()):g}] V "
                                                  "(gate_min_v, gate_max_v)")))
    return needs


def open_nonlinear_twin(backend: Mapping[str, Any], net: Network, edges: NonlinearEdges, wiring: NonlinearWiring,
                        seed: int, instruments: Mapping[str, Any] | None = None):
    """Simulated DAQ and pot array behind a nonlinear bench circuit (the raw, unwrapped twin).

    The twin's DAQ has the ``[backend] twin_*`` converters and noise; its diodes differ from the
    model's by ``twin_diode_tolerance`` and ``twin_temperature_k``.
    """
    from labtrain.kinds.nonlinear.twin import build_nonlinear_twin

    entries = nonlinear_instruments(backend, edges, instruments) if instruments else {}
    return build_nonlinear_twin(
        net, edges, wiring, seed=seed, diode_tolerance=backend["twin_diode_tolerance"],
        temperature_k=backend["twin_temperature_k"], pot_options=twin_pot_options(backend, entries),
        daq_options=twin_daq_options(backend, entries, daq_prefix(entries, backend["daq_device"])))


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
        bench = twin_bench(twin, entries)
    else:
        bench = open_bench(entries, hardware_options(backend, wiring, entries), given=ports)
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
