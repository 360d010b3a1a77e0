"""NI DAQ (M/X-series and alike) through ``nidaqmx``: synchronised AO/AI, static AO levels, DO switch lines.

One acquisition (:meth:`NIDAQ.write_read`) builds two finite tasks on one
sample clock::

    AI task  : ai channels, sample clock at rate_hz (onboard), n samples  ─┐ master
    AO task  : ao channels, n samples, sample clock = /Dev1/ai/SampleClock │ (or its own clock at
               start trigger = /Dev1/ai/StartTrigger  ◄────────────────────┘  the same rate)

The AO task is written and *armed* first; starting the AI task fires the
start trigger, so sample ``k`` of every AO channel and every AI channel share
one clock edge.  AI samples land in a preallocated ``(n_ai, n)`` array through
:class:`nidaqmx.stream_readers.AnalogMultiChannelReader`; both tasks are
closed before the call returns.

True held levels: when an acquisition fails or is interrupted after the AO
task was armed, the generation is stopped and the driver asks the device how
far it got (``out_stream.total_samp_per_chan_generated``).  An NI analog
output holds the last sample it generated, so :meth:`NIDAQ.dc_levels_v`
reports that sample (the previous level if none was generated), and the
safety layer ramps from there -- not from the waveform's last sample, which
the device never reached.  If the count cannot be read (lost device) the level
is reported as ``nan``: unknown.

``nidaqmx`` is imported when a :class:`NIDAQ` is created, never at
``import labtrain``.  The NI-DAQmx C driver itself is only needed when a task
is created (``identify`` is the cheapest way to check it).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any, Iterator, Sequence

import numpy as np

from labtrain.instruments.ports import DAQ, Acquisition, PortIOError, PortTimeout, unwrap
from labtrain.drivers._common import require
from labtrain.instruments.drivers import DriverSpec
from labtrain.schema import Field

log = logging.getLogger(__name__)

__all__ = ["NIDAQ", "TIMEOUT_ERROR_CODES", "TERMINAL_CONFIGS", "DRIVER", "device_channels", "nidaq_channels"]

#: NI-DAQmx error codes that mean "did not finish in time" (-> PortTimeout; any other DaqError -> PortIOError)
TIMEOUT_ERROR_CODES = frozenset({
    -200284,  # SAMPLES_NOT_YET_AVAILABLE: read timed out
    -200292,  # SAMPLES_CAN_NOT_YET_BE_WRITTEN: write timed out
    -200474,  # OPERATION_TIMED_OUT
    -200560,  # WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE: wait_until_done timed out
    -200221,  # TIMEOUT_EXCEEDED
})

#: accepted spellings of the AI terminal configuration -> nidaqmx.constants.TerminalConfiguration member
TERMINAL_CONFIGS = {
    "rse": "RSE", "nrse": "NRSE", "diff": "DIFF", "differential": "DIFF", "pseudo_diff": "PSEUDO_DIFF",
    "pseudodifferential": "PSEUDO_DIFF", "default": "DEFAULT",
}
AO_CLOCKS = ("ai", "onboard")
_RELATIVE = re.compile(r"^(ai|ao|port|line|ctr|pfi)\d+(/|$)", re.IGNORECASE)  # a channel without its device


class NIDAQ(DAQ):
    """An NI-DAQmx device as a :class:`~labtrain.instruments.ports.DAQ` port.

    Parameters
    ----------
    device : str
        NI-DAQmx device name as in NI MAX, e.g. ``"Dev1"``.
    ao_channels, ai_channels : sequence of str
        Channels this port may use, ``"Dev1/ao0"`` or just ``"ao0"`` (the device is prepended).
    do_lines : sequence of str
        Digital-output lines (clamp switches), ``"Dev1/port0/line0"`` or ``"port0/line0"``.
    ao_range_v, ai_range_v : (float, float)
        Converter ranges (V); NI-DAQmx picks the smallest hardware range that covers them.
    terminal_config : str
        AI terminal configuration: ``"RSE"`` (referenced single-ended, default), ``"NRSE"``,
        ``"DIFF"``/``"differential"``, ``"PSEUDO_DIFF"`` or ``"DEFAULT"``.
    max_rate_hz : float, optional
        Highest sample clock allowed.  ``None`` asks the device (``ai_max_single_chan_rate``,
        ``ai_max_multi_chan_rate`` / number of AI channels, ``ao_max_rate``).
    ao_clock : {"ai", "onboard"}
        ``"ai"`` (default): AO samples on the AI sample clock (``/Dev1/ai/SampleClock``), exactly
        one clock.  ``"onboard"``: the AO task runs its own clock at the same rate from the same
        timebase.  Either way AO starts on ``/Dev1/ai/StartTrigger``.

    Notes
    -----
    Creating the port applies nothing.  AO levels and DO states are *tracked*: until the first
    ``set_dc`` / ``set_digital`` they read 0 V / open (``False``), which is what the safety
    layer drives them to first.  DO lines are held by one persistent on-demand task (lines
    keep their state while it is open); it is closed by :meth:`close`.
    """

    def __init__(self, device: str = "Dev1", ao_channels: Sequence[str] = (), ai_channels: Sequence[str] = (),
                 do_lines: Sequence[str] = (), ao_range_v: tuple[float, float] = (-10.0, 10.0),
                 ai_range_v: tuple[float, float] = (-10.0, 10.0), terminal_config: str = "RSE",
                 max_rate_hz: float | None = None, ao_clock: str = "ai") -> None:
        self._nidaqmx = require("nidaqmx", "NIDAQ")
        self._constants = require("nidaqmx.constants", "NIDAQ", "nidaqmx")
        self._readers = require("nidaqmx.stream_readers", "NIDAQ", "nidaqmx")
        self._writers = require("nidaqmx.stream_writers", "NIDAQ", "nidaqmx")
        self._system = require("nidaqmx.system", "NIDAQ", "nidaqmx")
        errors = require("nidaqmx.errors", "NIDAQ", "nidaqmx")
        self._daq_error = errors.DaqError
        # the package's base error also covers DaqNotFoundError (NI-DAQmx driver missing)
        self._any_error = getattr(errors, "Error", errors.DaqError)

        if not device or "/" in device:
            raise ValueError(f"device = {device!r}: expected an NI-DAQmx device name such as 'Dev1'")
        self.device = device
        self.ao_channels = self._names(ao_channels, "ao_channels")
        self.ai_channels = self._names(ai_channels, "ai_channels")
        self.do_lines = self._names(do_lines, "do_lines")
        self.ao_range_v = self._range(ao_range_v, "ao_range_v")
        self.ai_range_v = self._range(ai_range_v, "ai_range_v")
        key = str(terminal_config).strip().lower().replace("-", "_").replace(" ", "_")
        if key not in TERMINAL_CONFIGS:
            raise ValueError(f"terminal_config = {terminal_config!r}: expected one of RSE, NRSE, DIFF, "
                             f"PSEUDO_DIFF, DEFAULT")
        self.terminal_config = TERMINAL_CONFIGS[key]
        self._terminal = getattr(self._constants.TerminalConfiguration, self.terminal_config)
        if ao_clock not in AO_CLOCKS:
            raise ValueError(f"ao_clock = {ao_clock!r}: expected one of {', '.join(AO_CLOCKS)}")
        self.ao_clock = ao_clock
        if max_rate_hz is None:
            max_rate_hz = self._device_max_rate_hz()
        if not max_rate_hz > 0:
            raise ValueError(f"max_rate_hz must be > 0, got {max_rate_hz}")
        self.max_rate_hz = float(max_rate_hz)
        self._dc_v = {ch: 0.0 for ch in self.ao_channels}
        self._do = {line: False for line in self.do_lines}
        self._do_task = None

    # ----------------------------------------------------------------- helpers
    def _full(self, name: str) -> str:
        """``"ao0"`` / ``"port0/line1"`` -> ``"Dev1/ao0"`` / ``"Dev1/port0/line1"``; full names stay as they are."""
        name = str(name).strip().lstrip("/")
        return f"{self.device}/{name}" if _RELATIVE.match(name) else name

    def _names(self, names: Sequence[str], what: str) -> tuple[str, ...]:
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        full = tuple(self._full(n) for n in names)
        dup = sorted({n for n in full if full.count(n) > 1})
        if dup:
            raise ValueError(f"{what}: channel {dup[0]!r} is listed twice")
        return full

    @staticmethod
    def _range(rng: Sequence[float], what: str) -> tuple[float, float]:
        lo, hi = (float(v) for v in rng)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"{what} = {tuple(rng)}: expected (low, high) with low < high")
        return lo, hi

    def _terminal_name(self, signal: str) -> str:
        return f"/{self.device}/{signal}"

    @contextlib.contextmanager
    def _daq_errors(self, what: str) -> Iterator[None]:
        """Translate nidaqmx errors raised in the block into PortTimeout / PortIOError."""
        try:
            yield
        except self._daq_error as exc:
            code = getattr(exc, "error_code", None)
            if code in TIMEOUT_ERROR_CODES:
                raise PortTimeout(f"{self.device}: {what} timed out (DAQmx error {code})") from exc
            raise PortIOError(f"{self.device}: {what} failed (DAQmx error {code}): "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except self._any_error as exc:  # e.g. DaqNotFoundError: the NI-DAQmx driver is not installed
            raise PortIOError(f"{self.device}: {what}: {type(exc).__name__}: {exc}") from exc

    def _check_channels(self, names: Sequence[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        full = self._names(names, what)
        unknown = [n for n in full if n not in allowed]
        if unknown:
            raise ValueError(f"{what}: {unknown[0]!r} is not one of this DAQ's channels "
                             f"({', '.join(allowed) or 'none'})")
        return full

    def _check_levels(self, values: np.ndarray, what: str) -> None:
        lo, hi = self.ao_range_v
        if values.size and not np.all(np.isfinite(values)):
            raise ValueError(f"{what}: values must be finite")
        if values.size and (values.min() < lo or values.max() > hi):
            raise ValueError(f"{what}: values span [{values.min():g}, {values.max():g}] V, outside the AO range "
                             f"[{lo:g}, {hi:g}] V")

    def _device_max_rate_hz(self) -> float:
        with self._daq_errors("reading the device's rate limits"):
            dev = self._system.Device(self.device)
            ai_single = float(dev.ai_max_single_chan_rate)
            ai_multi = float(dev.ai_max_multi_chan_rate)
            simultaneous = bool(getattr(dev, "ai_simultaneous_sampling_supported", False))
            n_ai = max(len(self.ai_channels), 1)
            rate = ai_single if n_ai == 1 else (ai_multi if simultaneous else ai_multi / n_ai)
            rate = min(rate, ai_single)
            if self.ao_channels:
                rate = min(rate, float(dev.ao_max_rate))
        return rate

    # ----------------------------------------------------------------- DAQ port
    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        """Write ``ao_v`` (n_ao x n) and read ``ai_channels`` (n samples each) on one clock.

        ``timeout_s`` is the wait allowed *beyond* the acquisition's own duration.  AO channels not
        named keep their DC level; every named channel holds its last sample afterwards.
        """
        ao = self._check_channels(ao_channels, self.ao_channels, "ao_channels")
        ai = self._check_channels(ai_channels, self.ai_channels, "ai_channels")
        if not ai:
            raise ValueError("write_read needs at least one AI channel")
        ao_v = np.ascontiguousarray(ao_v, dtype=np.float64)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(ao):
            raise ValueError(f"ao_v must have shape ({len(ao)}, n_samples), got {ao_v.shape}")
        n = ao_v.shape[1]
        if n < 2:
            raise ValueError(f"a finite acquisition needs >= 2 samples, got {n}")
        self._check_levels(ao_v, "ao_v")
        if not 0 < rate_hz <= self.max_rate_hz:
            raise ValueError(f"rate_hz = {rate_hz}: must be in (0, {self.max_rate_hz:g}] Hz")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        const = self._constants
        finite = const.AcquisitionType.FINITE
        read_timeout_s = n / rate_hz + timeout_s
        data = np.zeros((len(ai), n), dtype=np.float64)
        ai_task = ao_task = None
        ao_armed = completed = False
        with self._daq_errors("synchronised AO/AI acquisition"):
            try:
                ai_task = self._nidaqmx.Task()
                lo, hi = self.ai_range_v
                for ch in ai:
                    ai_task.ai_channels.add_ai_voltage_chan(ch, terminal_config=self._terminal, min_val=lo,
                                                            max_val=hi)
                ai_task.timing.cfg_samp_clk_timing(rate_hz, sample_mode=finite, samps_per_chan=n)
                if ao:
                    ao_task = self._nidaqmx.Task()
                    lo, hi = self.ao_range_v
                    for ch in ao:
                        ao_task.ao_channels.add_ao_voltage_chan(ch, min_val=lo, max_val=hi)
                    source = self._terminal_name("ai/SampleClock") if self.ao_clock == "ai" else ""
                    ao_task.timing.cfg_samp_clk_timing(rate_hz, source=source, sample_mode=finite,
                                                       samps_per_chan=n)
                    ao_task.triggers.start_trigger.cfg_dig_edge_start_trig(self._terminal_name("ai/StartTrigger"))
                    writer = self._writers.AnalogMultiChannelWriter(ao_task.out_stream, auto_start=False)
                    writer.write_many_sample(ao_v, timeout=timeout_s)
                    ao_task.start()  # armed: waits for the AI start trigger
                    ao_armed = True
                reader = self._readers.AnalogMultiChannelReader(ai_task.in_stream)
                actual_rate = float(getattr(ai_task.timing, "samp_clk_rate", rate_hz) or rate_hz)
                t0 = time.time()
                ai_task.start()  # fires ai/StartTrigger: AO and AI begin on the same edge
                got = reader.read_many_sample(data, number_of_samples_per_channel=n, timeout=read_timeout_s)
                if got is not None and int(got) != n:
                    raise PortIOError(f"{self.device}: read {int(got)} of {n} samples per channel")
                if ao_task is not None:
                    ao_task.wait_until_done(timeout=timeout_s)
                    completed = True
            finally:
                if ao_armed:
                    self._dc_v.update(self._held_levels(ao_task, ao, ao_v, completed))
                for task in (ao_task, ai_task):
                    if task is not None:
                        with contextlib.suppress(Exception):
                            task.close()
        return Acquisition(ai_v=data, rate_hz=actual_rate, start_time_s=t0, channels=ai)

    def _held_levels(self, ao_task: Any, ao: tuple[str, ...], ao_v: np.ndarray, completed: bool) -> dict[str, float]:
        """What each AO channel of an armed generation holds now: its last sample if the generation completed,
        else the last sample the device generated before it was stopped (the previous level if none), ``nan``
        where the device cannot be asked.  Stops an unfinished generation first, so the count is final."""
        if completed:
            return {ch: float(ao_v[i, -1]) for i, ch in enumerate(ao)}
        try:
            ao_task.stop()  # abort the generation: from here the AO holds the last generated sample
            generated = int(ao_task.out_stream.total_samp_per_chan_generated)
        except Exception as exc:  # noqa: BLE001 -- a lost device, a dead driver: the level is unknown
            log.warning("NI-DAQmx: stopping an aborted generation failed (%s: %s): the AO levels are unknown",
                        type(exc).__name__, exc)
            return {ch: float("nan") for ch in ao}
        if generated <= 0:
            return {ch: self._dc_v[ch] for ch in ao}
        k = min(generated, ao_v.shape[1]) - 1
        return {ch: float(ao_v[i, k]) for i, ch in enumerate(ao)}

    def set_dc(self, levels_v: dict[str, float]) -> None:
        """Step the named AO channels to static levels with one on-demand task (no ramp: the safety layer ramps)."""
        if not levels_v:
            return
        names = self._check_channels(list(levels_v), self.ao_channels, "set_dc")
        values = np.array([float(v) for v in levels_v.values()], dtype=np.float64)
        self._check_levels(values, "set_dc")
        lo, hi = self.ao_range_v
        with self._daq_errors("setting DC levels"):
            with self._nidaqmx.Task() as task:
                for ch in names:
                    task.ao_channels.add_ao_voltage_chan(ch, min_val=lo, max_val=hi)
                writer = self._writers.AnalogMultiChannelWriter(task.out_stream, auto_start=True)
                writer.write_one_sample(values, timeout=10.0)
        self._dc_v.update(dict(zip(names, values.tolist())))

    def dc_levels_v(self) -> dict[str, float]:
        """The level every AO channel holds: the last ``set_dc`` level or waveform sample the device generated
        (after an aborted generation, the sample it reached; ``nan`` if the device could not be asked)."""
        return dict(self._dc_v)

    def set_digital(self, states: dict[str, bool]) -> None:
        """Drive the named DO lines; the others keep their state (all lines are written every time)."""
        if not states:
            return
        names = self._check_channels(list(states), self.do_lines, "set_digital")
        new = dict(self._do)
        new.update({n: bool(v) for n, v in zip(names, states.values())})
        with self._daq_errors("setting digital lines"):
            if self._do_task is None:
                task = self._nidaqmx.Task()
                try:
                    for line in self.do_lines:
                        task.do_channels.add_do_chan(line, line_grouping=self._constants.LineGrouping.CHAN_PER_LINE)
                except BaseException:
                    with contextlib.suppress(Exception):
                        task.close()
                    raise
                self._do_task = task
            self._do_task.write([new[line] for line in self.do_lines], auto_start=True)
        self._do = new

    def digital_states(self) -> dict[str, bool]:
        return dict(self._do)

    def identify(self) -> str:
        """``"<product type> serial <hex> (<device>)"`` from the NI-DAQmx system (applies nothing)."""
        with self._daq_errors("identify"):
            dev = self._system.Device(self.device)
            product = str(dev.product_type)
            serial = int(dev.serial_num)
            simulated = bool(getattr(dev, "dev_is_simulated", False))
        return f"NI {product} serial {serial:X} ({self.device}{', simulated' if simulated else ''})"

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"device": self.device, "terminal_config": self.terminal_config, "ao_clock": self.ao_clock,
                     "dc_levels_v": self.dc_levels_v(), "digital_states": self.digital_states()})
        return snap

    def close(self) -> None:
        if self._do_task is not None:
            task, self._do_task = self._do_task, None
            with self._daq_errors("closing the DO task"):
                task.close()


# ---------------------------------------------------------------------------- channel enumeration, DRIVER
def _channel_names(collection: Any) -> list[str]:
    """``PhysicalChannelCollection.channel_names`` (empty when the device has none of that kind)."""
    if collection is None:
        return []
    return [str(n) for n in getattr(collection, "channel_names", collection)]


def _span(ranges: Any) -> tuple[float, float] | None:
    """``(lowest, highest)`` of nidaqmx's flat ``[lo1, hi1, lo2, hi2, ...]`` range lists; ``None`` if empty."""
    values = [float(v) for v in (ranges or [])]
    if len(values) < 2:
        return None
    return min(values[0::2]), max(values[1::2])


def device_channels(device: str, system: Any = None) -> dict[str, Any]:
    """Every physical channel of an NI-DAQmx device (or of every module of a CompactDAQ chassis).

    Uses ``nidaqmx.system.Device(device)``: ``ao_physical_chans`` / ``ai_physical_chans`` /
    ``do_lines`` (``.channel_names``), ``ao_voltage_rngs`` / ``ai_voltage_rngs`` (flat
    ``[low, high, ...]`` lists, V) and ``product_type``; a chassis (``chassis_module_devices``
    not empty) contributes the channels of its modules.  Applies nothing.

    Returns
    -------
    dict
        ``{"ao", "ai", "do": [channel names], "ao_range_v", "ai_range_v": (low, high) or None,
        "product": str}``.  NI-DAQmx errors become :class:`~labtrain.instruments.ports.PortIOError`.
    """
    system = require("nidaqmx.system", "NIDAQ", "nidaqmx") if system is None else system
    errors = require("nidaqmx.errors", "NIDAQ", "nidaqmx")
    base_error = getattr(errors, "Error", errors.DaqError)
    try:
        dev = system.Device(device)
        product = str(dev.product_type)
        try:
            modules = list(dev.chassis_module_devices or [])
        except (base_error, AttributeError):  # not a chassis: the property is not supported
            modules = []
        out: dict[str, Any] = {"ao": [], "ai": [], "do": [], "ao_range_v": None, "ai_range_v": None}
        for part in [dev] + modules:
            out["ao"] += _channel_names(getattr(part, "ao_physical_chans", None))
            out["ai"] += _channel_names(getattr(part, "ai_physical_chans", None))
            out["do"] += _channel_names(getattr(part, "do_lines", None))
            for key, attr in (("ao_range_v", "ao_voltage_rngs"), ("ai_range_v", "ai_voltage_rngs")):
                span = _span(getattr(part, attr, None))
                if span is not None:
                    old = out[key]
                    out[key] = span if old is None else (min(old[0], span[0]), max(old[1], span[1]))
    except base_error as exc:
        code = getattr(exc, "error_code", None)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PortIOError(f"{device}: listing the device's channels failed"
                          f"{f' (DAQmx error {code})' if code is not None else ''}: {text}") from exc
    out["product"] = f"NI {product}"
    return out


def nidaq_channels(port: Any) -> dict[str, Any]:
    """:func:`device_channels` of an opened :class:`NIDAQ` (also through a safety wrapper)."""
    inner = unwrap(port)
    return device_channels(inner.device, inner._system)


def _check_nidaq_options(options: dict[str, Any]) -> None:
    rng = options.get("ao_range_v")
    if rng is not None and (len(rng) != 2 or not rng[0] < rng[1]):
        raise ValueError(f"options.ao_range_v = {list(rng)}: expected [low, high] with low < high (V)")


def _open_nidaq(resource: str, options: dict[str, Any]) -> NIDAQ:
    if not resource:
        raise ValueError("nidaq: resource is empty; expected an NI-DAQmx device name as in NI MAX, e.g. 'Dev1'")
    return NIDAQ(resource, ao_channels=tuple(options.get("ao_channels", ())),
                 ai_channels=tuple(options.get("ai_channels", ())), do_lines=tuple(options.get("do_lines", ())),
                 ao_range_v=tuple(options["ao_range_v"]), ai_range_v=tuple(options.get("ai_range_v", (-10.0, 10.0))),
                 terminal_config=options["terminal_config"], max_rate_hz=options["max_rate_hz"] or None,
                 ao_clock=options["ao_clock"])


#: ``driver = "nidaq"``: an NI-DAQmx device (M/X series, USB/PCIe, a CompactDAQ chassis) as the bench's DAQ
DRIVER = DriverSpec(
    name="nidaq", port="daq", open=_open_nidaq, channels=nidaq_channels, extra="hardware",
    description="NI-DAQmx device: AO/AI on one sample clock, DO switch lines (nidaqmx + NI-DAQmx driver)",
    resource_doc="NI-DAQmx device name as in NI MAX, e.g. 'Dev1' (full channel names may name chassis modules)",
    options={
        "terminal_config": Field("str", "RSE", "AI terminal configuration", choices=tuple(dict.fromkeys(
            TERMINAL_CONFIGS.values()))),
        "ao_range_v": Field("floats", [-10.0, 10.0], "AO converter range [low, high] (V); NI-DAQmx picks the "
                            "smallest hardware range covering it", -100.0, 100.0),
        "max_rate_hz": Field("float", 0.0, "highest sample clock allowed (Hz; 0 = ask the device)", 0.0, 1e9),
        "ao_clock": Field("str", "ai", "AO on the AI sample clock (ai) or its own clock at the same rate "
                          "(onboard)", choices=AO_CLOCKS),
    },
    validate=_check_nidaq_options,
)
