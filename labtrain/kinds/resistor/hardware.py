"""Assemble an instrument-backed chip from an experiment: wiring, ports (twin or real), safety.

``backend = "twin"`` builds simulated ports (:mod:`labtrain.simulators`);
``backend = "hardware"`` opens the real drivers (:mod:`labtrain.drivers`,
imported only here and only then).  Both are wrapped by the safety layer and
handed to the same :class:`~labtrain.kinds.resistor.bench.InstrumentChip`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labtrain.kinds.resistor.bench import AcquisitionSettings, InstrumentChip
from labtrain.physics.network import Network
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig, SafetyError
from labtrain.kinds.resistor.wiring import Wiring, WiringError, default_wiring

__all__ = ["build_wiring", "safety_config", "acquisition_settings", "open_twin_ports", "open_hardware_ports",
           "build_instrument_chip", "identify_instruments"]


def build_wiring(backend: dict[str, Any], wiring: dict[str, Any], net: Network) -> Wiring:
    """The experiment's ``[wiring]`` with defaults filled from :func:`default_wiring` (raises WiringError)."""
    read_nodes = wiring["read_nodes"] or None
    base = default_wiring(net, backend["daq_device"], wiring["read"], wiring["output_series_ohm"], read_nodes)
    w = Wiring(
        input_ao=tuple(wiring["input_ao"]) or base.input_ao,
        output_ao=tuple(wiring["output_ao"]) or base.output_ao,
        output_switch_do=tuple(wiring["output_switch_do"]) or base.output_switch_do,
        output_series_ohm=float(wiring["output_series_ohm"]),
        read_nodes=base.read_nodes,
        node_ai=tuple(wiring["node_ai"]) or base.node_ai,
        pot_channels=tuple(wiring["pot_channels"]) or base.pot_channels,
    )
    w.check(net)
    return w


def safety_config(backend: dict[str, Any], rate_hz: float) -> SafetyConfig:
    """Limits for every AO channel, ramps clocked at the acquisition rate."""
    return SafetyConfig.from_settings(backend["max_abs_v"], backend["max_slew_v_per_s"], ramp_rate_hz=rate_hz)


def acquisition_settings(backend: dict[str, Any]) -> AcquisitionSettings:
    return AcquisitionSettings(rate_hz=backend["rate_hz"], settle_samples=backend["settle_samples"],
                               average_samples=backend["average_samples"], timeout_s=backend["timeout_s"],
                               retries=backend["retries"], retry_wait_s=backend["retry_wait_s"])


def open_twin_ports(backend: dict[str, Any], net: Network, wiring: Wiring, seed: int):
    """Simulated DAQ and pot array behind a resistor-bench circuit (returns the raw, unwrapped twin)."""
    from labtrain.kinds.resistor.twin import build_resistor_twin

    ai = backend["ai_max_abs_v"]
    return build_resistor_twin(
        net, wiring, seed=seed,
        pot_options={"n_taps": backend["pot_taps"], "r_total_ohm": backend["pot_r_total_ohm"],
                     "r_wiper_ohm": backend["pot_r_wiper_ohm"], "r_end_ohm": backend["pot_r_end_ohm"],
                     "tolerance": backend["pot_tolerance"]},
        daq_options={"ai_range_v": (-ai, ai), "adc_bits": backend["twin_adc_bits"],
                     "noise_white_v": backend["twin_noise_white_v"], "noise_1f_v": backend["twin_noise_1f_v"],
                     "rc_time_s": backend["twin_rc_time_s"], "max_rate_hz": max(1e5, backend["rate_hz"]),
                     "device": f"{backend['daq_device']}-twin"},
    )


def open_hardware_ports(backend: dict[str, Any], net: Network, wiring: Wiring):
    """The real DAQ and pot array named in the experiment (drivers imported here, lazily)."""
    from labtrain.drivers.nidaq import NIDAQ
    from labtrain.instruments.ports import PotCalibration

    ai = backend["ai_max_abs_v"]
    daq = NIDAQ(backend["daq_device"], ao_channels=wiring.ao_channels(), ai_channels=wiring.node_ai,
                do_lines=wiring.output_switch_do, ai_range_v=(-ai, ai))
    n_channels = max(wiring.pot_channels) + 1
    calibration = PotCalibration.nominal(n_channels, backend["pot_taps"], backend["pot_r_total_ohm"],
                                         backend["pot_r_wiper_ohm"], backend["pot_r_end_ohm"])
    try:
        if backend["pot_interface"] == "serial":
            from labtrain.drivers.potbridge import SerialPotBridge
            pots = SerialPotBridge(backend["pot_address"], n_channels=n_channels, calibration=calibration)
        else:
            from labtrain.drivers.potbridge import FTDIAD5293Chain
            pots = FTDIAD5293Chain(backend["pot_address"], n_channels=n_channels, calibration=calibration)
    except Exception:
        daq.close()
        raise
    return daq, pots


def build_instrument_chip(backend: dict[str, Any], wiring_section: dict[str, Any], net: Network,
                          conductance_s: np.ndarray | None, seed: int) -> InstrumentChip:
    """Wiring, ports, safety and the chip.  Raises WiringError / SafetyError / ImportError / PortError."""
    wiring = build_wiring(backend, wiring_section, net)
    settings = acquisition_settings(backend)
    config = safety_config(backend, settings.rate_hz)
    if backend["kind"] == "twin":
        twin = open_twin_ports(backend, net, wiring, seed)
        daq, pots = twin.daq, twin.pots
    else:
        daq, pots = open_hardware_ports(backend, net, wiring)
    safe_daq = SafeDAQ(daq, config)
    safe_pots = SafePotArray(pots, config)
    try:
        return InstrumentChip(net, wiring, safe_daq, safe_pots, settings, conductance_s, backend=backend["kind"])
    except Exception:
        safe_daq.close()
        safe_pots.close()
        raise


def identify_instruments(backend: dict[str, Any], wiring_section: dict[str, Any], net: Network) -> dict[str, str]:
    """Open every configured instrument, ask its identity, close it -- without applying any voltage."""
    wiring = build_wiring(backend, wiring_section, net)
    if backend["kind"] == "twin":
        twin = open_twin_ports(backend, net, wiring, 0)
        ports = {"daq": twin.daq, "pots": twin.pots}
    else:
        daq, pots = open_hardware_ports(backend, net, wiring)
        ports = {"daq": daq, "pots": pots}
    try:
        return {name: port.identify() for name, port in ports.items()}
    finally:
        for port in ports.values():
            port.close()


# re-exported for build.py's error handling
BUILD_ERRORS = (WiringError, SafetyError)
