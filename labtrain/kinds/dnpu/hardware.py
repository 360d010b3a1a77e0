"""Assemble a DNPU bench chip: simulated instruments (twin) or the instruments named in the file (hardware).

Both return the same :class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip` over safety-wrapped ports;
only the lowest layer differs (the simulated DAQ and lock-in over :class:`DNPUBenchCircuit`, or drivers
opened through the registry).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from labtrain.instruments.safety import SafeDAQ, SafeLockIn, SafetyConfig
from labtrain.kinds.dnpu.bench import DigitalLineRouter, InstrumentDNPUChip
from labtrain.kinds.dnpu.layout import DNPULayout, DNPUModel, default_electrode_ao, default_layout
from labtrain.kinds.dnpu.model import HoppingDNPU
from labtrain.kinds.dnpu.twin import ACCoupledSimulatedLockIn, DNPUBenchCircuit, TwinLockInRouter
from labtrain.simulators.daq_twin import SimulatedDAQ

__all__ = ["build_dnpu_twin", "build_dnpu_hardware", "dnpu_safety_config"]


def dnpu_safety_config(layout: DNPULayout, electrode_ao: Sequence[str], *, max_slew_v_per_s: float,
                       ramp_rate_hz: float) -> SafetyConfig:
    """Safety limits of a DNPU bench: every electrode's AO limited to its range, everything else to the abort level.

    The default limits (channels not named, e.g. spare AOs) are
    ``+-abort_abs_v`` minus one part in 10^6 (the abort level itself is never
    reached); electrode channels get ``[low_v, high_v]`` of the layout.
    """
    below_abort = layout.abort_abs_v * (1 - 1e-6)
    channels = {c: {"min_v": float(lo), "max_v": float(hi)}
                for c, lo, hi in zip(electrode_ao, layout.low_v, layout.high_v)}
    return SafetyConfig.from_settings(below_abort, max_slew_v_per_s, ramp_rate_hz=ramp_rate_hz, channels=channels)


def build_dnpu_twin(model: DNPUModel | None = None, layout: DNPULayout | None = None, *, rate_hz: float = 10_000.0,
                    settle_samples: int = 20, average_samples: int = 20, noise_white_v: float = 1e-4,
                    noise_1f_v: float = 0.0, adc_bits: int | None = 16, dac_bits: int | None = 16,
                    ai_max_abs_v: float | None = None, rc_time_s: float = 0.0, max_slew_v_per_s: float = 200.0,
                    control_v: np.ndarray | None = None, inverting: bool = True, seed: int = 0,
                    model_seed: int | None = None, lockin: bool = False, lockin_noise_v_per_rthz: float = 0.0,
                    lockin_time_constant_s: float = 0.03, lockin_settle_time_constants: float = 10.0,
                    demodulator: str = "software", retries: int = 2, device: str = "Dev1") -> Any:
    """A DNPU twin on the code path of the bench: model -> circuit -> SimulatedDAQ -> SafeDAQ -> chip.

    Parameters
    ----------
    model : DNPUModel, optional
        Device physics; default the synthetic :class:`~labtrain.kinds.dnpu.model.HoppingDNPU` (its default
        device, or ``seed=model_seed``).
    layout : DNPULayout, optional
        Default :func:`~labtrain.kinds.dnpu.layout.default_layout`.
    rate_hz : float
        Sample clock of AO and AI.
    settle_samples, average_samples : int
        DC plateau of :meth:`InstrumentDNPUChip.measure` (after the slew ramp).
    noise_white_v, noise_1f_v : float
        Noise at the amplifier output (volts RMS per sample; ``noise_white_v / gain_ohm`` in amperes).
    adc_bits, dac_bits : int or None
        Converter resolutions.
    ai_max_abs_v : float, optional
        AI range ``+-ai_max_abs_v``; default: 5 % above the amplifier's saturation ``gain_ohm * clip_a``.
    rc_time_s : float
        First-order response of the read-out (0: quasi-static).
    max_slew_v_per_s : float
        Safety slew limit of every electrode.
    control_v : ndarray, optional
        Initial control voltages (default: middle of each range).
    inverting : bool
        Amplifier polarity (see :class:`DNPUBenchCircuit`).
    seed : int
        Seed of the DAQ noise (``seed + 1`` for the lock-in's).
    model_seed : int, optional
        Seed of the default synthetic model (``None``: its default device).
    lockin : bool
        Add a simulated lock-in (SR830-like) routed by a :class:`TwinLockInRouter`.
    lockin_noise_v_per_rthz, lockin_time_constant_s, lockin_settle_time_constants : float
        Lock-in input noise density, time constant and the wait per reading (in time constants).
    demodulator : {"software", "lockin"}
        Default demodulator of ``measure_ac``.
    retries : int
        Extra attempts after an instrument fault.
    device : str
        DAQ device name in the channel names.

    Returns
    -------
    InstrumentDNPUChip
        ``backend = "twin"``; the raw twin parts are ``chip.daq.daq`` (SimulatedDAQ),
        ``chip.daq.daq.circuit`` and ``chip.lockin`` (a SafeLockIn over the SimulatedLockIn).
    """

    layout = default_layout() if layout is None else layout
    if model is None:
        model = HoppingDNPU() if model_seed is None else HoppingDNPU(seed=model_seed)
    electrode_ao = default_electrode_ao(layout.n_electrodes, device)
    output_ai = f"{device}/ai0"
    circuit = DNPUBenchCircuit(model, layout, electrode_ao=electrode_ao, output_ai=output_ai, inverting=inverting)
    ai = 1.05 * layout.gain_ohm * layout.clip_a if ai_max_abs_v is None else float(ai_max_abs_v)
    if not ai > 0:
        raise ValueError(f"ai_max_abs_v must be > 0, got {ai_max_abs_v!r}")
    sim = SimulatedDAQ(circuit, ao_range_v=(-10.0, 10.0), ai_range_v=(-ai, ai), max_rate_hz=max(1e5, rate_hz),
                       adc_bits=adc_bits, dac_bits=dac_bits, noise_white_v=noise_white_v, noise_1f_v=noise_1f_v,
                       rc_time_s=rc_time_s, seed=seed, device=f"{device}-dnpu-twin")
    config = dnpu_safety_config(layout, electrode_ao, max_slew_v_per_s=max_slew_v_per_s, ramp_rate_hz=rate_hz)
    safe_daq = SafeDAQ(sim, config)
    safe_lockin = router = None
    try:
        if lockin:
            raw = ACCoupledSimulatedLockIn(frequency_hz=200.0, amplitude_v=0.004,
                                           time_constant_s=lockin_time_constant_s, sensitivity_v=1.0,
                                           noise_v_per_rthz=lockin_noise_v_per_rthz,
                                           settle_time_constants=lockin_settle_time_constants, seed=seed + 1)
            router = TwinLockInRouter(raw, sim, output_ai)
            max_rms = float(np.max(np.asarray(layout.high_v) - np.asarray(layout.low_v))) / 2 / np.sqrt(2)
            safe_lockin = SafeLockIn(raw, max_amplitude_v=max(max_rms, 0.004), frequency_range_hz=(1e-3, rate_hz / 2))
        return InstrumentDNPUChip(safe_daq, layout, control_v, electrode_ao=electrode_ao, output_ai=output_ai,
                                  inverting=inverting, rate_hz=rate_hz, settle_samples=settle_samples,
                                  average_samples=average_samples, retries=retries, backend="twin",
                                  lockin=safe_lockin, lockin_router=router,
                                  lockin_settle_time_constants=lockin_settle_time_constants,
                                  demodulator=demodulator)
    except Exception:
        safe_daq.close()
        if safe_lockin is not None:
            safe_lockin.close()
        raise


def build_dnpu_hardware(daq_device: str = "Dev1", layout: DNPULayout | None = None, *, rate_hz: float = 10_000.0,
                        settle_samples: int = 20, average_samples: int = 20, max_slew_v_per_s: float = 200.0,
                        ai_max_abs_v: float = 10.0, inverting: bool = True, control_v: np.ndarray | None = None,
                        retries: int = 2, lockin_resource: Any = None, lockin_model: str = "SR830",
                        lockin_max_amplitude_v: float = 0.1, lockin_time_constant_s: float = 0.03,
                        lockin_settle_time_constants: float = 10.0, instruments: Any = None, ports: Any = None,
                        electrode_ao: Sequence[str] | None = None, output_ai: str | None = None,
                        relay_do: Sequence[str] | None = None, demodulator: str | None = None) -> InstrumentDNPUChip:
    """A DNPU on a real bench (electrodes on AO channels, amplifier on one AI), behind the safety layer.

    The instruments come from the experiment's ``[instruments]`` tables (``instruments``, as
    ``exp["instruments"]``: a ``daq`` and optionally a ``lockin``, opened through the driver
    registry); a role they do not name falls back to the arguments: an NI DAQ ``daq_device``,
    and with ``lockin_resource`` an SR830/SR860 (``lockin_model``) at that VISA address.
    ``ports`` maps a role to a ready port (e.g. a QCoDeS lock-in from
    :mod:`labtrain.instruments.adapters`) used instead.  Nothing is written until the first
    measurement; before the chip is made the bench is checked (:func:`~labtrain.instruments.bench_file.require_bench`):
    every electrode AO, the amplifier AI and the relay lines exist on the device, its AO range
    covers the electrode ranges, the lock-in's sine out reaches ``lockin_max_amplitude_v``.

    Parameters
    ----------
    electrode_ao, output_ai, relay_do : optional
        Channels (``"daq/ao3"`` or ``"Dev1/ao3"``); defaults ``<device>/ao0..``, ``<device>/ai0``
        and, with a lock-in, one relay line ``<device>/port0/line{k}`` per electrode.
    demodulator : {"software", "lockin"}, optional
        Default of ``measure_ac``; ``None``: ``"lockin"`` when a lock-in is on the bench.
    lockin_max_amplitude_v, lockin_time_constant_s, lockin_settle_time_constants : float
        Sine-out limit (V RMS, :class:`~labtrain.instruments.safety.SafeLockIn`), the time constant
        set once opened, and the wait per reading in time constants.

    Raises
    ------
    BenchError
        The bench cannot serve the chip (one line; ``section`` names the table to blame).
    ImportError, PortError, ValueError
        Missing driver package, instrument not answering, bad argument.
    """
    from labtrain.instruments.bench_file import (BenchNeeds, ChannelGroup, bench_instruments, daq_prefix, open_bench,
                                                 require_bench, resolve_channel)

    layout = default_layout() if layout is None else layout
    ports = dict(ports or {})
    legacy_lockin = {}
    if lockin_resource is not None:
        if lockin_model not in ("SR830", "SR860"):
            raise ValueError(f"lockin_model must be SR830 or SR860, got {lockin_model!r}")
        if isinstance(lockin_resource, (str, int)) and not isinstance(lockin_resource, bool):
            legacy_lockin = {"lockin": {"driver": lockin_model.lower(), "resource": str(lockin_resource),
                                        "options": {}, "port": "lockin"}}
        elif "lockin" not in ports:  # a PyMeasure adapter or instrument, as before
            from labtrain.drivers import lockin as lockin_drivers
            ports["lockin"] = {"SR830": lockin_drivers.SR830LockIn,
                               "SR860": lockin_drivers.SR860LockIn}[lockin_model](lockin_resource)
    given = dict(instruments or {})
    if not any(e.get("port") == "lockin" for e in given.values()):
        given.update({k: v for k, v in legacy_lockin.items() if k not in given})
    entries = bench_instruments(given, {"daq_device": daq_device}, ("daq",), ("lockin",), bench="a dnpu bench")
    device = daq_prefix(entries, daq_device)
    with_lockin = "lockin" in ports or any(e["port"] == "lockin" for e in entries.values())
    ao = tuple(resolve_channel(c, entries) for c in electrode_ao) if electrode_ao is not None else \
        default_electrode_ao(layout.n_electrodes, device)
    ai = resolve_channel(output_ai, entries) if output_ai is not None else f"{device}/ai0"
    if not with_lockin:
        relays: dict[str, str] = {}
    elif relay_do is not None:
        if len(relay_do) != len(ao):
            raise ValueError(f"relay_do lists {len(relay_do)} lines for {len(ao)} electrodes")
        relays = {c: resolve_channel(line, entries) for c, line in zip(ao, relay_do)}
    else:
        relays = {c: f"{device}/port0/line{k}" for k, c in enumerate(ao)}
    if len(ao) != layout.n_electrodes:
        raise ValueError(f"electrode_ao lists {len(ao)} channels for {layout.n_electrodes} electrodes")
    bench = open_bench(entries, {"daq": {"ao_channels": ao, "ai_channels": (ai,), "do_lines": tuple(relays.values()),
                                         "ai_range_v": (-ai_max_abs_v, ai_max_abs_v)}}, given=ports)
    safe = safe_lockin = None
    try:
        reach_v = float(max(np.max(np.abs(layout.low_v)), np.max(np.abs(layout.high_v))))
        require_bench(bench, BenchNeeds(
            groups=(ChannelGroup("ao", "electrode_ao", ao), ChannelGroup("ai", "output_ai", (ai,)),
                    ChannelGroup("do", "lock-in relay lines", tuple(relays.values()))),
            max_abs_v=reach_v, max_abs_v_source=("chip", f"electrode_low_v / electrode_high_v (up to {reach_v:g} V)"),
            ai_max_abs_v=float(ai_max_abs_v), ai_max_abs_v_source=("backend", f"ai_max_abs_v = {ai_max_abs_v:g}"),
            lockin_amplitude_v=float(lockin_max_amplitude_v) if with_lockin else None,
            lockin_source=("backend", f"lock-in max amplitude {lockin_max_amplitude_v:g} V RMS")))
        safe = SafeDAQ(bench["daq"], dnpu_safety_config(layout, ao, max_slew_v_per_s=max_slew_v_per_s,
                                                        ramp_rate_hz=rate_hz))
        router = None
        if with_lockin:
            raw = bench["lockin"]
            safe_lockin = SafeLockIn(raw, max_amplitude_v=lockin_max_amplitude_v)  # its declared frequency range
            safe_lockin.time_constant_s = lockin_time_constant_s
            router = DigitalLineRouter(safe, relays)
        mode = demodulator if demodulator is not None else ("lockin" if with_lockin else "software")
        return InstrumentDNPUChip(safe, layout, control_v, electrode_ao=ao, output_ai=ai, inverting=inverting,
                                  rate_hz=rate_hz, settle_samples=settle_samples, average_samples=average_samples,
                                  retries=retries, backend="hardware", lockin=safe_lockin, lockin_router=router,
                                  lockin_settle_time_constants=lockin_settle_time_constants, demodulator=mode)
    except BaseException:
        for port in (safe_lockin, safe):
            if port is not None:
                try:
                    port.close()
                except Exception:  # noqa: BLE001 -- the original error is the one to report
                    pass
        bench.close()
        raise
