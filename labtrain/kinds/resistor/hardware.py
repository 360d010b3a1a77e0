"""Assemble an instrument-backed chip from an experiment: wiring, bench (twin or real), checks, safety.

``backend = "twin"`` builds simulated ports (:mod:`labtrain.simulators`);
``backend = "hardware"`` opens the instruments of the file's ``[instruments]``
tables through the driver registry (:func:`labtrain.instruments.bench_file.open_bench`;
roles the file does not name keep the flat ``[backend]`` keys: an NI DAQ at
``daq_device``, a pot bridge / AD5293 chain at ``pot_address``).  Before the
chip is made -- before any voltage -- :func:`labtrain.instruments.bench_file.require_bench`
checks the opened devices against the wiring (every channel exists, AO/AI
ranges cover ``max_abs_v`` / ``ai_max_abs_v``, every pot channel exists).  Both
backends are wrapped by the safety layer and handed to the same
:class:`~labtrain.kinds.resistor.bench.InstrumentChip`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from labtrain.instruments.bench_file import (Bench, BenchError, BenchNeeds, bench_instruments, daq_prefix,
                                             instruments_from_backend, open_bench, require_bench)
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.dac_bench.hardware import (acquisition_settings, hardware_options, signal_needs, twin_bench,
                                               twin_daq_options, twin_pot_options, wiring_keys)
from labtrain.kinds.resistor.bench import InstrumentChip
from labtrain.kinds.resistor.wiring import Wiring, WiringError, default_wiring
from labtrain.physics.network import Network

__all__ = ["build_wiring", "safety_config", "acquisition_settings", "open_twin_ports", "open_hardware_ports",
           "open_resistor_bench", "bench_needs", "resistor_instruments", "build_instrument_chip",
           "identify_instruments", "BUILD_ERRORS"]

#: the roles of a resistor-network bench
ROLES = ("daq", "pots")


def resistor_instruments(backend: Mapping[str, Any], instruments: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The bench's instruments: the file's ``[instruments]`` for the roles it names, ``[backend]`` keys otherwise."""
    return bench_instruments(instruments, backend, ROLES, bench="a resistor_network bench")


def build_wiring(backend: dict[str, Any], wiring: dict[str, Any], net: Network,
                 instruments: Mapping[str, Any] | None = None) -> Wiring:
    """The experiment's ``[wiring]`` with defaults filled from :func:`default_wiring` (raises WiringError).

    Channel names may go through the DAQ instrument's name (``"daq/ao3"`` -> ``"Dev1/ao3"``; without
    ``[instruments]``, ``daq`` is ``[backend] daq_device``); the defaults use the DAQ's resource (or
    ``daq_device``) as the device prefix.
    """
    # names only: the flat [backend] instruments under the file's (a role check happens when the bench opens)
    named = {e.get("port") for e in (instruments or {}).values()}
    entries = {**{n: e for n, e in instruments_from_backend(backend).items() if e["port"] not in named},
               **dict(instruments or {})}
    device = daq_prefix(dict(instruments or {}), backend["daq_device"])
    read_nodes = wiring["read_nodes"] or None
    base = default_wiring(net, device, wiring["read"], wiring["output_series_ohm"], read_nodes)

    w = Wiring(**wiring_keys(wiring, entries, base))
    w.check(net)
    return w


def safety_config(backend: dict[str, Any], rate_hz: float) -> SafetyConfig:
    """Limits for every AO channel, ramps clocked at the acquisition rate."""
    return SafetyConfig.from_settings(backend["max_abs_v"], backend["max_slew_v_per_s"], ramp_rate_hz=rate_hz)


def bench_needs(backend: Mapping[str, Any], wiring: Wiring) -> BenchNeeds:
    """What the wiring and the ``[backend]`` limits ask of the bench (for :func:`require_bench`)."""
    return signal_needs(backend, wiring)


def open_twin_ports(backend: dict[str, Any], net: Network, wiring: Wiring, seed: int,
                    instruments: Mapping[str, Any] | None = None):
    """Simulated DAQ and pot array behind a resistor-bench circuit (returns the raw, unwrapped twin).

    With ``[instruments]`` the twin simulates the instruments the file names: the pots' taps and
    resistances and the DAQ's ``options.ao_range_v`` come from there (nothing is opened).
    """
    from labtrain.kinds.resistor.twin import build_resistor_twin

    entries = resistor_instruments(backend, instruments) if instruments else {}
    return build_resistor_twin(net, wiring, seed=seed, pot_options=twin_pot_options(backend, entries),
                               daq_options=twin_daq_options(backend, entries,
                                                            daq_prefix(entries, backend["daq_device"])))


def open_resistor_bench(backend: dict[str, Any], net: Network, wiring: Wiring,
                        instruments: Mapping[str, Any] | None = None, ports: Mapping[str, Any] | None = None,
                        seed: int = 0) -> Bench:
    """The bench of a resistor-network chip, opened (hardware) or simulated (twin), and checked.

    ``ports`` maps a role (``"daq"``, ``"pots"``) to a ready port (e.g. an adapter from
    :mod:`labtrain.instruments.adapters`) that replaces that role's instrument.  Raises
    :class:`~labtrain.instruments.bench_file.BenchError` (one line, ``section`` to blame) when the
    bench cannot serve the wiring; every port is closed again then.
    """
    if backend["kind"] == "twin":
        entries = resistor_instruments(backend, instruments) if instruments else {}
        twin = open_twin_ports(backend, net, wiring, seed, instruments)
        bench = twin_bench(twin, entries)
    else:
        entries = resistor_instruments(backend, instruments)
        bench = open_bench(entries, hardware_options(backend, wiring, entries), given=ports)
    try:
        require_bench(bench, bench_needs(backend, wiring))
    except BaseException:
        bench.close()
        raise
    return bench


def open_hardware_ports(backend: dict[str, Any], net: Network, wiring: Wiring,
                        instruments: Mapping[str, Any] | None = None, ports: Mapping[str, Any] | None = None):
    """The real DAQ and pot array of the experiment, checked against the wiring: ``(daq, pots)``."""
    bench = open_resistor_bench({**backend, "kind": "hardware"}, net, wiring, instruments, ports)
    return bench["daq"], bench["pots"]


def build_instrument_chip(backend: dict[str, Any], wiring_section: dict[str, Any], net: Network,
                          conductance_s: np.ndarray | None, seed: int, instruments: Mapping[str, Any] | None = None,
                          ports: Mapping[str, Any] | None = None) -> InstrumentChip:
    """Wiring, bench, checks, safety and the chip.

    Raises WiringError / BenchError / SafetyError / ImportError / PortError.
    """
    wiring = build_wiring(backend, wiring_section, net, instruments)
    settings = acquisition_settings(backend)
    config = safety_config(backend, settings.rate_hz)
    bench = open_resistor_bench(backend, net, wiring, instruments, ports, seed)
    safe_daq = SafeDAQ(bench["daq"], config)
    safe_pots = SafePotArray(bench["pots"], config)
    try:
        return InstrumentChip(net, wiring, safe_daq, safe_pots, settings, conductance_s, backend=backend["kind"])
    except Exception:
        safe_daq.close()
        safe_pots.close()
        raise


def identify_instruments(backend: dict[str, Any], wiring_section: dict[str, Any], net: Network,
                         instruments: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Open every instrument, check it against the wiring, ask its identity, close it -- applying no voltage.

    Returns ``{instrument name: identity}``; raises :class:`~labtrain.instruments.bench_file.BenchError`
    naming the first channel the device lacks, a range that does not cover ``max_abs_v``, ...
    """
    wiring = build_wiring(backend, wiring_section, net, instruments)
    bench = open_resistor_bench(backend, net, wiring, instruments)
    try:
        return bench.identities()
    finally:
        bench.close()


# re-exported for the builder's error handling: BenchError carries ``section`` (the table to blame)
BUILD_ERRORS = (WiringError, SafetyError, BenchError)
