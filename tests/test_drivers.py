"""Instrument drivers without hardware: byte for byte (lock-ins, pot bridge, AD5293 frames), the nidaqmx DAQ
against a fake of the nidaqmx calls it uses, discovery with packages/drivers missing.  Hardware tests at the end
run only with ``--hardware`` and an instrument address (see conftest.py)."""

from __future__ import annotations

import enum
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import pyvisa
import serial  # pyserial: in the test extra
from pymeasure.instruments.srs import SR830, SR860
from pymeasure.test import expected_protocol

from labtrain.drivers import discovery
from labtrain.drivers.lockin import SR830LockIn, SR860LockIn
from labtrain.drivers.nidaq import NIDAQ
from labtrain.drivers.potbridge import FTDIAD5293Chain, SerialPotBridge, checksum, frame_line, parse_line
from labtrain.instruments.ports import Acquisition, LockInReading, PortError, PortIOError, PortTimeout, PotCalibration

SIM_YAML = Path(__file__).parent / "data" / "srs_lockins.yaml"


# ====================================================================== fake nidaqmx
class FakeDaqError(Exception):
    def __init__(self, message, error_code, task_name=""):
        super().__init__(message)
        self.error_code = error_code


class FakeNI:
    """The few nidaqmx calls NIDAQ uses, recording every call in ``log`` (tuples)."""

    def __init__(self):
        self.log: list[tuple] = []
        self.fail: dict[str, int] = {}  # method name -> DAQmx error code to raise there
        self.driver_missing = False
        self.last_ao: np.ndarray | None = None
        self.n_tasks = 0
        self.devices: dict[str, dict] = {}
        self.add_device("Dev1", "PCIe-6363", n_ao=4, n_ai=32, n_do=32, serial_num=0x1A2B3C4D)

    def add_device(self, name, product_type, n_ao, n_ai, n_do, ao_rngs=(-10.0, 10.0, -5.0, 5.0),
                   ai_rngs=(-0.1, 0.1, -0.2, 0.2, -0.5, 0.5, -1.0, 1.0, -2.0, 2.0, -5.0, 5.0, -10.0, 10.0), **extra):
        """A device as nidaqmx.system.Device shows it: physical channel collections, ranges, rates."""
        chans = lambda names: types.SimpleNamespace(channel_names=list(names))  # noqa: E731
        self.devices[name] = dict(
            product_type=product_type, serial_num=0x1A2B3C4D, dev_is_simulated=False, ai_max_single_chan_rate=2e6,
            ai_max_multi_chan_rate=1e6, ao_max_rate=2.86e6, ai_simultaneous_sampling_supported=False,
            ao_physical_chans=chans(f"{name}/ao{k}" for k in range(n_ao)),
            ai_physical_chans=chans(f"{name}/ai{k}" for k in range(n_ai)),
            do_lines=chans(f"{name}/port0/line{k}" for k in range(n_do)),
            ao_voltage_rngs=list(ao_rngs), ai_voltage_rngs=list(ai_rngs))
        self.devices[name].update(extra)
        return self

    def _maybe_fail(self, what):
        if what in self.fail:
            raise self.errors.DaqError(f"fake failure in {what}\nTask Name: t", self.fail[what])

    def modules(self) -> dict[str, types.ModuleType]:
        fake = self

        class Error(Exception):
            pass

        class DaqError(Error):
            def __init__(self, message, error_code, task_name=""):
                super().__init__(message)
                self.error_code = error_code

        class DaqNotFoundError(Error):
            pass

        errors = types.ModuleType("nidaqmx.errors")
        errors.Error, errors.DaqError, errors.DaqNotFoundError = Error, DaqError, DaqNotFoundError
        self.errors = errors

        constants = types.ModuleType("nidaqmx.constants")
        constants.AcquisitionType = enum.Enum("AcquisitionType", {"FINITE": 10178, "CONTINUOUS": 10123})
        constants.TerminalConfiguration = enum.Enum("TerminalConfiguration", {
            "RSE": 10083, "NRSE": 10078, "DIFF": 10106, "PSEUDO_DIFF": 12529, "DEFAULT": -1})
        constants.LineGrouping = enum.Enum("LineGrouping", {"CHAN_PER_LINE": 0, "CHAN_FOR_ALL_LINES": 1})

        class Channels:
            def __init__(self, task):
                self.task = task

            def add_ai_voltage_chan(self, physical_channel, name_to_assign_to_channel="", terminal_config=None,
                                    min_val=-5.0, max_val=5.0):
                fake.log.append(("add_ai", self.task.id, physical_channel, terminal_config.name, min_val, max_val))
                self.task.kind = "ai"
                self.task.channels.append(physical_channel)

            def add_ao_voltage_chan(self, physical_channel, name_to_assign_to_channel="", min_val=-10.0,
                                    max_val=10.0):
                fake.log.append(("add_ao", self.task.id, physical_channel, min_val, max_val))
                self.task.kind = "ao"
                self.task.channels.append(physical_channel)

            def add_do_chan(self, lines, name_to_assign_to_lines="", line_grouping=None):
                fake.log.append(("add_do", self.task.id, lines, line_grouping.name))
                self.task.kind = "do"
                self.task.channels.append(lines)

        class Timing:
            def __init__(self, task):
                self.task = task
                self.samp_clk_rate = None

            def cfg_samp_clk_timing(self, rate, source="", active_edge=None, sample_mode=None, samps_per_chan=1000):
                fake.log.append(("timing", self.task.id, rate, source, sample_mode.name, samps_per_chan))
                self.samp_clk_rate = float(rate) * 1.0  # a real device may coerce; this one does not
                self.task.n = samps_per_chan

        class StartTrigger:
            def __init__(self, task):
                self.task = task

            def cfg_dig_edge_start_trig(self, trigger_source, trigger_edge=None):
                fake.log.append(("start_trigger", self.task.id, trigger_source))

        class Task:
            def __init__(self, new_task_name=""):
                fake.n_tasks += 1
                self.id = fake.n_tasks
                self.kind, self.channels, self.n, self.closed = None, [], None, False
                self.ai_channels = self.ao_channels = self.do_channels = Channels(self)
                self.timing = Timing(self)
                self.triggers = types.SimpleNamespace(start_trigger=StartTrigger(self))
                self.in_stream = types.SimpleNamespace(task=self)
                self.out_stream = types.SimpleNamespace(task=self)
                fake.log.append(("task", self.id))

            def start(self):
                fake.log.append(("start", self.id, self.kind))

            def wait_until_done(self, timeout=10.0):
                fake.log.append(("wait", self.id, timeout))
                fake._maybe_fail("wait_until_done")

            def write(self, data, auto_start=None, timeout=10.0):
                fake.log.append(("write", self.id, list(data), auto_start))

            def close(self):
                assert not self.closed, "task closed twice"
                self.closed = True
                if self.kind == "ao":
                    fake.last_ao = None  # its waveform ends with the task
                fake.log.append(("close", self.id))

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        readers = types.ModuleType("nidaqmx.stream_readers")

        class AnalogMultiChannelReader:
            def __init__(self, in_stream):
                self.task = in_stream.task

            def read_many_sample(self, data, number_of_samples_per_channel=-1, timeout=10.0):
                fake.log.append(("read_many", self.task.id, data.shape, number_of_samples_per_channel, timeout))
                assert data.dtype == np.float64 and data.flags.c_contiguous
                assert data.shape == (len(self.task.channels), number_of_samples_per_channel)
                fake._maybe_fail("read_many_sample")
                # the "chip": AI row k reads 0.5 * AO row 0 + k, so order and content are checkable
                ao = fake.last_ao if fake.last_ao is not None else np.zeros((1, data.shape[1]))
                data[:] = 0.5 * ao[0][None, :] + np.arange(data.shape[0])[:, None]
                return number_of_samples_per_channel

        readers.AnalogMultiChannelReader = AnalogMultiChannelReader

        writers = types.ModuleType("nidaqmx.stream_writers")

        class AnalogMultiChannelWriter:
            def __init__(self, out_stream, auto_start=None):
                self.task, self.auto_start = out_stream.task, auto_start

            def write_many_sample(self, data, timeout=10.0):
                fake.log.append(("write_many", self.task.id, data.shape, self.auto_start))
                assert data.dtype == np.float64 and data.flags.c_contiguous
                fake.last_ao = data.copy()
                return data.shape[1]

            def write_one_sample(self, data, timeout=10):
                fake.log.append(("write_one", self.task.id, list(np.asarray(data)), self.auto_start))
                fake._maybe_fail("write_one_sample")

        writers.AnalogMultiChannelWriter = AnalogMultiChannelWriter

        system = types.ModuleType("nidaqmx.system")

        class Device:
            def __init__(self, name):
                if fake.driver_missing:
                    raise DaqNotFoundError("Could not find an installation of NI-DAQmx.")
                if name not in fake.devices:
                    raise DaqError(f"Device {name} not found", -200220)
                self.name = name
                self.__dict__.update(fake.devices[name])

        class System:
            @staticmethod
            def local():
                if fake.driver_missing:
                    raise DaqNotFoundError("Could not find an installation of NI-DAQmx.")
                return types.SimpleNamespace(driver_version=(2025, 3, 0),
                                             devices=types.SimpleNamespace(device_names=list(fake.devices)))

        system.Device, system.System = Device, System

        root = types.ModuleType("nidaqmx")
        root.__path__ = []  # a package
        root.Task, root.DaqError, root.errors, root.constants = Task, DaqError, errors, constants
        root.stream_readers, root.stream_writers, root.system = readers, writers, system
        return {"nidaqmx": root, "nidaqmx.errors": errors, "nidaqmx.constants": constants,
                "nidaqmx.stream_readers": readers, "nidaqmx.stream_writers": writers, "nidaqmx.system": system}

    def install(self, monkeypatch):
        for name, mod in self.modules().items():
            monkeypatch.setitem(sys.modules, name, mod)
        return self

    def calls(self, kind):
        return [c for c in self.log if c[0] == kind]


@pytest.fixture
def ni(monkeypatch):
    return FakeNI().install(monkeypatch)


def make_daq(**kw):
    args = dict(device="Dev1", ao_channels=["ao0", "ao1"], ai_channels=["Dev1/ai0", "ai1", "ai2"],
                do_lines=["port0/line0", "port0/line1"], ao_range_v=(-5, 5), ai_range_v=(-2, 2),
                terminal_config="differential")
    args.update(kw)
    return NIDAQ(**args)


def test_nidaq_write_read_configures_one_clock_and_arms_ao_before_ai(ni):
    daq = make_daq(max_rate_hz=50e3)
    assert ni.log == []  # creating the port touches nothing
    n = 6
    ao = np.vstack([np.linspace(-1, 1, n), np.full(n, 0.25)])
    acq = daq.write_read(["Dev1/ao0", "ao1"], ao, ["ai0", "ai1", "ai2"], rate_hz=10e3, timeout_s=2.0)

    assert isinstance(acq, Acquisition)
    assert acq.channels == ("Dev1/ai0", "Dev1/ai1", "Dev1/ai2")
    assert acq.rate_hz == 10e3 and acq.n_samples == n
    np.testing.assert_allclose(acq.ai_v, 0.5 * ao[0][None, :] + np.arange(3)[:, None])  # the reader's array
    ai_id, ao_id = 1, 2
    assert ni.calls("add_ai") == [("add_ai", ai_id, f"Dev1/ai{k}", "DIFF", -2.0, 2.0) for k in range(3)]
    assert ni.calls("add_ao") == [("add_ao", ao_id, "Dev1/ao0", -5.0, 5.0), ("add_ao", ao_id, "Dev1/ao1", -5.0, 5.0)]
    assert ni.calls("timing") == [("timing", ai_id, 10e3, "", "FINITE", n),
                                  ("timing", ao_id, 10e3, "/Dev1/ai/SampleClock", "FINITE", n)]
    assert ni.calls("start_trigger") == [("start_trigger", ao_id, "/Dev1/ai/StartTrigger")]
    assert ni.calls("write_many") == [("write_many", ao_id, (2, n), False)]
    read = ni.calls("read_many")
    assert read[0][1:4] == (ai_id, (3, n), n) and read[0][4] == pytest.approx(2.0 + n / 10e3)
    # order: AO written, then AO armed, then AI started (fires the trigger), read, AO waited, both closed
    order = [c[:2] for c in ni.log if c[0] in ("write_many", "start", "read_many", "wait", "close")]
    assert order == [("write_many", ao_id), ("start", ao_id), ("start", ai_id), ("read_many", ai_id),
                     ("wait", ao_id), ("close", ao_id), ("close", ai_id)]
    assert daq.dc_levels_v() == {"Dev1/ao0": 1.0, "Dev1/ao1": 0.25}  # each holds its last sample


def test_nidaq_onboard_ao_clock_and_ai_only(ni):
    daq = make_daq(max_rate_hz=50e3, ao_clock="onboard", terminal_config="RSE")
    daq.write_read(["ao0"], np.zeros((1, 4)), ["ai1"], rate_hz=1e3)
    assert [c[3] for c in ni.calls("timing")] == ["", ""]  # AO on its own clock ...
    assert ni.calls("start_trigger")[0][2] == "/Dev1/ai/StartTrigger"  # ... started by the AI start trigger
    assert ni.calls("add_ai")[0][3] == "RSE"
    ni.log.clear()
    acq = daq.write_read([], np.zeros((0, 5)), ["ai0", "ai2"], rate_hz=1e3)
    assert acq.ai_v.shape == (2, 5)
    assert ni.calls("add_ao") == [] and ni.calls("start_trigger") == []
    assert [c[0] for c in ni.log if c[0] in ("start", "close")] == ["start", "close"]


def test_nidaq_max_rate_from_device_and_bad_requests_touch_nothing(ni):
    daq = make_daq()
    assert daq.max_rate_hz == pytest.approx(1e6 / 3)  # multiplexed AI: aggregate rate / 3 channels
    ni.log.clear()
    with pytest.raises(ValueError, match="outside the AO range"):
        daq.write_read(["ao0"], np.full((1, 4), 6.0), ["ai0"], rate_hz=1e3)
    with pytest.raises(ValueError, match="not one of this DAQ's channels"):
        daq.write_read(["ao3"], np.zeros((1, 4)), ["ai0"], rate_hz=1e3)
    with pytest.raises(ValueError, match="rate_hz"):
        daq.write_read(["ao0"], np.zeros((1, 4)), ["ai0"], rate_hz=1e7)
    with pytest.raises(ValueError, match="shape"):
        daq.write_read(["ao0", "ao1"], np.zeros((1, 4)), ["ai0"], rate_hz=1e3)
    with pytest.raises(ValueError, match="outside the AO range"):
        daq.set_dc({"ao0": -5.5})
    with pytest.raises(ValueError, match="terminal_config"):
        make_daq(terminal_config="single")
    assert ni.log == []


def test_nidaq_timeouts_and_io_errors_are_translated_and_tasks_closed(ni):
    daq = make_daq(max_rate_hz=1e5)
    ni.fail = {"read_many_sample": -200284}  # samples not yet available: read timed out
    with pytest.raises(PortTimeout, match="-200284"):
        daq.write_read(["ao0"], np.zeros((1, 8)), ["ai0"], rate_hz=1e3)
    assert len(ni.calls("close")) == 2
    ni.log.clear()
    ni.fail = {"wait_until_done": -200560}
    with pytest.raises(PortTimeout):
        daq.write_read(["ao0"], np.zeros((1, 8)), ["ai0"], rate_hz=1e3)
    ni.log.clear()
    ni.fail = {"read_many_sample": -50103}  # resource reserved
    with pytest.raises(PortIOError, match="-50103") as info:
        daq.write_read(["ao0"], np.zeros((1, 8)), ["ai0"], rate_hz=1e3)
    assert not isinstance(info.value, PortTimeout)
    assert len(ni.calls("close")) == 2
    ni.fail = {"write_one_sample": -200088}
    with pytest.raises(PortIOError):
        daq.set_dc({"ao1": 1.0})
    assert daq.dc_levels_v()["Dev1/ao1"] == 0.0  # a failed write is not recorded as held


def test_nidaq_dc_digital_identify_close(ni):
    daq = make_daq(max_rate_hz=1e5)
    daq.set_dc({"ao1": 1.5, "Dev1/ao0": -0.5})
    assert ni.calls("add_ao") == [("add_ao", 1, "Dev1/ao1", -5.0, 5.0), ("add_ao", 1, "Dev1/ao0", -5.0, 5.0)]
    assert ni.calls("write_one") == [("write_one", 1, [1.5, -0.5], True)]
    assert ni.calls("close") == [("close", 1)]
    assert daq.dc_levels_v() == {"Dev1/ao0": -0.5, "Dev1/ao1": 1.5}

    daq.set_digital({"port0/line1": True})
    daq.set_digital({"Dev1/port0/line0": True})
    assert ni.calls("add_do") == [("add_do", 2, "Dev1/port0/line0", "CHAN_PER_LINE"),
                                  ("add_do", 2, "Dev1/port0/line1", "CHAN_PER_LINE")]  # one persistent task
    assert ni.calls("write") == [("write", 2, [False, True], True), ("write", 2, [True, True], True)]
    assert daq.digital_states() == {"Dev1/port0/line0": True, "Dev1/port0/line1": True}
    with pytest.raises(ValueError):
        daq.set_digital({"port1/line0": True})

    assert daq.identify() == "NI PCIe-6363 serial 1A2B3C4D (Dev1)"
    snap = daq.snapshot()
    assert snap["terminal_config"] == "DIFF" and snap["identity"].startswith("NI PCIe-6363")
    daq.close()
    assert ni.calls("close")[-1] == ("close", 2)


def test_nidaq_driver_missing_and_package_missing(ni, monkeypatch):
    daq = make_daq(max_rate_hz=1e5)
    ni.driver_missing = True
    with pytest.raises(PortIOError, match="DaqNotFoundError"):
        daq.identify()
    for name in list(sys.modules):
        if name == "nidaqmx" or name.startswith("nidaqmx."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"\.\[hardware\]' in the labtrain checkout"):
        make_daq(max_rate_hz=1e5)


def test_nidaq_lists_every_physical_channel_of_a_device_or_chassis(ni):
    from labtrain.drivers.nidaq import DRIVER, device_channels

    dev1 = device_channels("Dev1")
    assert dev1["product"] == "NI PCIe-6363" and dev1["ao"] == [f"Dev1/ao{k}" for k in range(4)]
    assert len(dev1["ai"]) == 32 and dev1["do"][0] == "Dev1/port0/line0"
    assert dev1["ao_range_v"] == (-10.0, 10.0) and dev1["ai_range_v"] == (-10.0, 10.0)
    module = lambda name, n_ao, n_ai, rngs: types.SimpleNamespace(  # noqa: E731
        ao_physical_chans=types.SimpleNamespace(channel_names=[f"{name}/ao{k}" for k in range(n_ao)]),
        ai_physical_chans=types.SimpleNamespace(channel_names=[f"{name}/ai{k}" for k in range(n_ai)]),
        do_lines=types.SimpleNamespace(channel_names=[]), ao_voltage_rngs=rngs if n_ao else [],
        ai_voltage_rngs=[] if n_ao else rngs)
    ni.add_device("cDAQ1", "cDAQ-9178", n_ao=0, n_ai=0, n_do=0, ao_rngs=(), ai_rngs=(),
                  chassis_module_devices=[module("cDAQ1Mod1", 4, 0, [-10.0, 10.0]),
                                          module("cDAQ1Mod2", 0, 16, [-5.0, 5.0])])
    chassis = device_channels("cDAQ1")
    assert chassis["ao"] == [f"cDAQ1Mod1/ao{k}" for k in range(4)] and len(chassis["ai"]) == 16
    assert chassis["ao_range_v"] == (-10.0, 10.0) and chassis["ai_range_v"] == (-5.0, 5.0)
    with pytest.raises(PortIOError, match=r"Dev9: listing the device's channels failed \(DAQmx error -200220\)"):
        device_channels("Dev9")
    daq = DRIVER.open("Dev1", DRIVER.resolve_options({"terminal_config": "NRSE", "ao_clock": "onboard",
                                                      "max_rate_hz": 5e4}, {"ao_channels": ("ao0",)}))
    assert (daq.terminal_config, daq.ao_clock, daq.max_rate_hz, daq.ao_channels) == ("NRSE", "onboard", 5e4,
                                                                                   ("Dev1/ao0",))
    assert DRIVER.describe_channels(daq)["ao"] == dev1["ao"]  # the device's channels, not only the opened ones
    with pytest.raises(ValueError, match="resource is empty"):
        DRIVER.open("", DRIVER.resolve_options())


def test_driver_specs_of_the_lockins_and_pots_open_with_file_options(monkeypatch):
    from pymeasure.adapters import ProtocolAdapter
    from labtrain.drivers.lockin import SR830_DRIVER
    from labtrain.drivers.potbridge import FTDI_DRIVER, SERIAL_DRIVER

    lockin = SR830_DRIVER.open("ASRL1::INSTR", SR830_DRIVER.resolve_options(
        {"visa_library": f"{SIM_YAML}@sim", "timeout_s": 0.2, "baud_rate": 19200, "parity": "even"}))
    link = lockin.instrument.adapter.connection
    assert (link.baud_rate, link.parity) == (19200, pyvisa.constants.Parity.even) and link.read_termination == "\r"
    assert SR830_DRIVER.describe_channels(lockin)["amplitude_range_v"] == (0.004, 5.0)
    lockin.close()
    links = []
    monkeypatch.setattr(serial, "serial_for_url", lambda url, **kw: links.append((url, kw)) or FakeLink([]))
    pots = SERIAL_DRIVER.open("COM5", SERIAL_DRIVER.resolve_options(
        {"n_taps": 256, "r_total_ohm": 1e4, "r_wiper_ohm": 0.0, "r_end_ohm": 0.0, "baud_rate": 9600},
        {"n_channels": 6}))
    assert links == [("COM5", {"baudrate": 9600, "timeout": 0.5, "write_timeout": 0.5})]
    assert (pots.n_channels, pots.n_taps, pots.calibration.r_total_ohm[0]) == (6, 256, 1e4)
    calls = []

    class SpiController:  # pyftdi.spi.SpiController, the lowest layer the chain driver uses
        def __init__(self, cs_count):
            calls.append(("controller", cs_count))

        def configure(self, url):
            calls.append(("configure", url))

        def get_port(self, cs, freq, mode):
            calls.append(("port", cs, freq, mode))
            return FakeAD5293Chain(2)

    spi = types.ModuleType("pyftdi.spi")
    spi.SpiController = SpiController
    monkeypatch.setitem(sys.modules, "pyftdi", types.ModuleType("pyftdi"))
    monkeypatch.setitem(sys.modules, "pyftdi.spi", spi)
    chain = FTDI_DRIVER.open("ftdi://ftdi:232h/1", FTDI_DRIVER.resolve_options(
        {"r_total_ohm": 50e3, "cs": 1, "frequency_hz": 2e5}, {"n_channels": 2}))
    assert calls == [("controller", 2), ("configure", "ftdi://ftdi:232h/1"), ("port", 1, 2e5, 1)]
    assert chain.calibration.r_total_ohm.tolist() == [50e3, 50e3] and chain.get_taps().tolist() == [512, 512]
    with pytest.raises(ValueError, match="potbridge: resource is empty"):
        SERIAL_DRIVER.open("", SERIAL_DRIVER.resolve_options({}, {"n_channels": 1}))


def test_discovery_lists_the_drivers_and_a_broken_plugin(monkeypatch):
    from labtrain import registry

    entry = registry.Entry("labtrain.drivers", "scope", "no_such_module:DRIVER", "labtrain-scope")
    monkeypatch.setattr(registry, "_plugin_entries", lambda group: [entry] if group == "labtrain.drivers" else [])
    registry.clear_cache()
    try:
        rows = discovery.list_drivers()
        assert [r["name"] for r in rows] == ["nidaq", "sr830", "sr860", "potbridge", "ad5293_ftdi", "scope"]
        assert rows[1]["port"] == "lockin" and "output_interface" in rows[1]["options"]
        text = discovery.format_drivers(rows).splitlines()
        assert text[1].split()[:2] == ["nidaq", "daq"]
        assert text[-1].startswith("  scope         BROKEN [labtrain-scope]:") and "No module named" in text[-1]
    finally:
        registry.clear_cache()


# ====================================================================== lock-ins, byte for byte
def test_sr830_commands_byte_for_byte():
    with expected_protocol(SR830, [
        ("*IDN?", "Stanford_Research_Systems,SR830,s/n48329,ver1.07"),   # model checked before any setting
        ("FREQ1.37000e+02", None), ("FREQ?", "137.000"),
        ("SLVL0.100", None), ("SLVL?", "0.100"),
        ("OFLT8", None), ("OFLT?", "8"),          # 0.09 s -> next step up: 100 ms (index 8)
        ("SENS17", None), ("SENS?", "17"),        # 0.8 mV -> 1 mV (index 17)
        ("SNAP? 1,2", "1.25e-03,-3.5e-04"),
        ("*IDN?", "Stanford_Research_Systems,SR830,s/n48329,ver1.07"),
    ]) as inst:
        lockin = SR830LockIn(inst)
        assert lockin.min_amplitude_v == 0.004 and lockin.frequency_range_hz == (1e-3, 102e3)  # for the safety layer
        lockin.frequency_hz = 137
        assert lockin.frequency_hz == 137.0
        lockin.amplitude_v = 0.1
        assert lockin.amplitude_v == 0.1
        lockin.time_constant_s = 0.09
        assert lockin.time_constant_s == 0.1
        lockin.sensitivity_v = 0.8e-3
        assert lockin.sensitivity_v == 1e-3
        reading = lockin.read_xy()
        assert isinstance(reading, LockInReading) and (reading.x_v, reading.y_v) == (1.25e-3, -3.5e-4)
        assert lockin.identify() == "Stanford_Research_Systems,SR830,s/n48329,ver1.07"


def test_sr860_commands_byte_for_byte():
    with expected_protocol(SR860, [
        ("*IDN?", "Stanford_Research_Systems,SR860,003101,v1.47"),
        ("FREQ 1.000000e+04", None), ("FREQ?", "1.000000e+04"),
        ("SLVL 5.000000000e-01", None),
        ("SCAL 9", None), ("SCAL?", "9"),         # SR860 lists sensitivities high to low: 1 mV is index 9
        ("OFLT 10", None), ("OFLT?", "10"),      # 100 ms
        ("SNAP? X, Y", "2.0e-06,4.0e-06"),
        ("*IDN?", "Stanford_Research_Systems,SR860,003101,v1.47"),
    ]) as inst:
        lockin = SR860LockIn(inst)
        lockin.frequency_hz = 1e4
        assert lockin.frequency_hz == 1e4
        lockin.amplitude_v = 0.5
        lockin.sensitivity_v = 1e-3
        assert lockin.sensitivity_v == 1e-3
        lockin.time_constant_s = 0.1
        assert lockin.time_constant_s == 0.1
        assert lockin.read_xy().r_v == pytest.approx(np.hypot(2e-6, 4e-6))
        assert lockin.identify().split(",")[1] == "SR860"


def test_lockin_bad_requests_send_nothing_and_garbled_replies_are_io_errors():
    with expected_protocol(SR830, [("*IDN?", "Stanford_Research_Systems,SR830,s/n1,ver1.07"), ("SNAP? 1,2", "1.0e-3"), ("FREQ?", "FREQ?"), ("SNAP? 1,2", "1e-3,OVLD")]) as inst:
        lockin = SR830LockIn(inst)
        for name, value in (("frequency_hz", 2e5), ("amplitude_v", 6.0), ("amplitude_v", 0.001),
                            ("time_constant_s", 0.0), ("sensitivity_v", 2.0), ("frequency_hz", float("nan"))):
            with pytest.raises(ValueError, match=name):
                setattr(lockin, name, value)
        with pytest.raises(PortIOError, match="expected 2 values"):
            lockin.read_xy()
        with pytest.raises(PortIOError, match="not a number"):
            lockin.frequency_hz
        with pytest.raises(PortIOError, match="reading Y"):
            lockin.read_xy()


def test_lockin_visa_round_trip_and_timeout_with_pyvisa_sim():
    lib = f"{SIM_YAML}@sim"  # pyvisa-sim (test extra) plays the instruments described in the YAML file
    lockin = SR830LockIn("GPIB0::8::INSTR", visa_library=lib, timeout_s=0.1)
    assert lockin.identify() == "Stanford_Research_Systems,SR830,s/n48329,ver1.07"
    assert (lockin.read_xy().x_v, lockin.read_xy().y_v) == (1.25e-3, -3.5e-4)
    lockin.frequency_hz = 137.5
    assert lockin.frequency_hz == 137.5
    with pytest.raises(PortTimeout, match="VI_ERROR_TMO"):  # the simulated SR830 never answers OFLT?
        lockin.time_constant_s
    lockin.close()
    with pytest.raises(PortIOError):  # a closed session is a link fault, not a bad request
        lockin.identify()
    sr860 = SR860LockIn("TCPIP0::192.168.1.20::inst0::INSTR", visa_library=lib)
    assert sr860.read_xy().y_v == 4e-6
    with pytest.raises(PortIOError, match="opening"):  # no usable VISA library is a port fault, not a crash
        SR830LockIn("GPIB0::8::INSTR", visa_library="/nonexistent/libvisa.so")


def test_lockin_translates_visa_errors_without_importing_pyvisa_at_module_level():
    from labtrain.drivers._common import is_timeout, translate

    tmo = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)
    lost = pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_connection_lost)
    assert is_timeout(tmo) and not is_timeout(lost)
    assert isinstance(translate(tmo, "x"), PortTimeout)
    assert type(translate(lost, "x")) is PortIOError
    assert isinstance(translate(serial.SerialTimeoutException("write timeout"), "x"), PortTimeout)


def test_lockin_from_a_pymeasure_adapter_and_missing_pymeasure(monkeypatch):
    from pymeasure.adapters import ProtocolAdapter

    adapter = ProtocolAdapter([("*IDN?", "Stanford_Research_Systems,SR830,s/n2,ver1.07")] * 2)
    assert SR830LockIn(adapter).identify().endswith("s/n2,ver1.07")
    assert adapter._index == 2  # both exchanges (model check when opened, identify) happened on our adapter
    monkeypatch.setitem(sys.modules, "pymeasure.instruments.srs", None)
    with pytest.raises(ImportError, match=r"pymeasure.*\.\[hardware\]' in the labtrain checkout"):
        SR860LockIn("GPIB0::8::INSTR")


def test_sr830_on_rs232_sends_outx0_before_the_first_query():
    """Over RS-232 the SR830 answers on GPIB until told ``OUTX 0``: it must be the very first message."""
    from pymeasure.adapters import ProtocolAdapter

    idn = "Stanford_Research_Systems,SR830,s/n7,ver1.07"
    serial_link = ProtocolAdapter([("OUTX 0", None), ("*IDN?", idn), ("SNAP? 1,2", "1e-3,2e-3")])
    serial_link.connection.interface_type = pyvisa.constants.InterfaceType.asrl  # what a VISA ASRL session reports
    lockin = SR830LockIn(serial_link)
    assert lockin.output_interface == "rs232" and lockin.read_xy().y_v == 2e-3
    assert serial_link._index == 3
    gpib = ProtocolAdapter([("OUTX 1", None), ("*IDN?", idn)])        # forced: a unit left on RS-232 replies
    assert SR830LockIn(gpib, output_interface="gpib").output_interface == "gpib" and gpib._index == 2
    quiet = ProtocolAdapter([("*IDN?", idn)])                         # auto on GPIB: nothing extra is sent
    assert SR830LockIn(quiet).output_interface == "none"
    with pytest.raises(ValueError, match="answers on the interface it was asked on"):
        SR860LockIn(ProtocolAdapter([]), output_interface="rs232")
    with pytest.raises(ValueError, match="output_interface = 'serial'; allowed: auto, rs232, gpib, none"):
        SR830LockIn(ProtocolAdapter([]), output_interface="serial")


def test_sr830_rs232_terminations_and_visa_options_with_pyvisa_sim():
    """The simulated RS-232 SR830 ends replies with CR and only acts on commands ending in CR: a wrong
    termination either way is a timeout, so a reading proves both; options override the defaults."""
    lib = f"{SIM_YAML}@sim"
    lockin = SR830LockIn("ASRL1::INSTR", visa_library=lib, timeout_s=0.2, baud_rate=19200)
    link = lockin.instrument.adapter.connection
    assert (link.read_termination, link.write_termination, link.baud_rate) == ("\r", "\r", 19200)
    assert lockin.output_interface == "rs232" and lockin.read_xy().x_v == 2.5e-3
    lockin.close()
    with pytest.raises(PortTimeout):  # LF-terminated reads never see the end of a CR reply
        SR830LockIn("ASRL1::INSTR", visa_library=lib, timeout_s=0.1, read_termination="\n")
    with pytest.raises(PortTimeout):  # LF-terminated commands are never complete for this instrument
        SR830LockIn("ASRL1::INSTR", visa_library=lib, timeout_s=0.1, write_termination="\n")


def test_lockin_refuses_what_it_is_not():
    """A wrong object is a TypeError at once; a wrong instrument at the address is a ValueError after *IDN?,
    before any lock-in command reaches it."""
    lib = f"{SIM_YAML}@sim"
    for thing in (object(), 3.5, True, [1, 2]):
        with pytest.raises(TypeError, match="expected a VISA resource name"):
            SR830LockIn(thing)
    with expected_protocol(SR860, []) as sr860:
        with pytest.raises(TypeError, match=r"a PyMeasure SR860, not a SR830"):
            SR830LockIn(sr860)
    with pytest.raises(ValueError, match=r"'GPIB0::24::INSTR' answered \*IDN\? with 'KEITHLEY.*model MODEL 2400, "
                                         r"expected SR830 or SR810; check the address"):
        SR830LockIn("GPIB0::24::INSTR", visa_library=lib, timeout_s=0.2)
    keithley = SR830LockIn("GPIB0::24::INSTR", visa_library=lib, timeout_s=0.2, check_identity=False)
    assert keithley.identify().startswith("KEITHLEY")  # opt-out kept for exotic firmware strings
    keithley.close()


# ====================================================================== pot bridge, byte for byte
class ScriptError(BaseException):
    """The driver wrote something the script did not expect (BaseException: the driver must not translate it)."""


class FakeLink:
    """A serial link that checks every line written against a script and answers with the scripted bytes."""

    def __init__(self, script):
        self.script = list(script)
        self.pending = b""
        self.resets = 0
        self.closed = False

    def reset_input_buffer(self):
        self.resets += 1

    def write(self, data):
        if not self.script:
            raise ScriptError(f"unexpected write {data!r}")
        expected, reply = self.script.pop(0)
        if data != expected:
            raise ScriptError(f"wrote {data!r}, script expects {expected!r}")
        self.pending = reply
        return len(data)

    def readline(self):
        reply, self.pending = self.pending, b""
        return reply

    def close(self):
        self.closed = True


HELLO = [(b"IDN?*7C\n", b"IDN labtrain-potbridge,v1,sn0042*69\n"), (b"CFG?*7D\n", b"CFG 3 1024*76\n")]


def bridge(script, **kw):
    link = FakeLink(script)
    return SerialPotBridge(n_channels=3, n_taps=1024, link=link, **kw), link


def test_checksum_is_nmea_xor_and_framing():
    assert checksum("GPGLL,5057.970,N,00146.110,E,142451,A") == 0x27  # the textbook NMEA 0183 example
    assert frame_line("SET 1 700") == b"SET 1 700*44\n"
    assert parse_line(b"OK 1 700*02\r\n") == "OK 1 700"
    with pytest.raises(ValueError):
        frame_line("SET*1")
    with pytest.raises(PortIOError, match="bad checksum"):
        parse_line(b"OK 1 700*03\n")
    with pytest.raises(PortIOError, match="malformed"):
        parse_line(b"OK 1 700\n")
    with pytest.raises(PortTimeout):
        parse_line(b"")


def test_bridge_identify_set_get_byte_for_byte():
    pots, link = bridge(HELLO + [
        (b"SETM 0:5 1:1023 2:512*25\n", b"OKM 0:5 1:1023 2:512*63\n"),
        (b"GETM 0 1 2*08\n", b"TAPM 0:5 1:1023 2:512*22\n"),
        (b"SET 1 700*44\n", b"OK 1 700*02\n"),
        (b"GET 2*44\n", b"TAP 2 511*42\n"),
    ])
    assert pots.set_taps(np.array([5, 1023, 512])).tolist() == [5, 1023, 512]  # identifies first: IDN?, CFG?
    assert pots.get_taps().tolist() == [5, 1023, 512]
    assert pots.set_tap(1, 700) == 700
    assert pots.get_tap(2) == 511
    assert link.script == [] and link.resets == 6
    link.script = list(HELLO)
    snap = pots.snapshot()
    assert snap["identity"] == "labtrain-potbridge,v1,sn0042" and snap["n_taps"] == 1024
    pots.close()
    assert link.closed


def test_bridge_batches_split_so_command_and_reply_fit_the_line_limit():
    n = 12
    set_lines = ["SETM 0:1000 1:1000 2:1000 3:1000", "SETM 4:1000 5:1000 6:1000 7:1000",
                 "SETM 8:1000 9:1000 10:1000 11:1000"]
    get_lines = ["GETM 0 1 2 3", "GETM 4 5 6 7", "GETM 8 9 10 11"]  # sized by the replies "TAPM c:tap ..."
    script = [(frame_line("IDN?"), frame_line("IDN x")), (frame_line("CFG?"), frame_line(f"CFG {n} 1024"))]
    script += [(frame_line(body), frame_line("OKM" + body[4:])) for body in set_lines]
    script += [(frame_line(get), frame_line("TAPM" + put[4:])) for get, put in zip(get_lines, set_lines)]
    assert all(len(line) - 1 <= 40 for pair in script for line in pair)  # commands and replies fit
    link = FakeLink(script)
    pots = SerialPotBridge(n_channels=n, n_taps=1024, link=link, max_line_chars=40)
    assert pots.set_taps(np.full(n, 1000)).tolist() == [1000] * n
    assert pots.get_taps().tolist() == [1000] * n
    assert link.script == []


def test_bridge_faults():
    # bad checksum on the reply
    pots, _ = bridge(HELLO + [(b"GET 2*44\n", b"TAP 2 511*43\n")])
    pots.identify()
    with pytest.raises(PortIOError, match="bad checksum"):
        pots.get_tap(2)
    # no reply / half a reply: timeouts
    pots, _ = bridge([(b"IDN?*7C\n", b"")])
    with pytest.raises(PortTimeout):
        pots.identify()
    pots, _ = bridge([(b"IDN?*7C\n", b"IDN labtr")])
    with pytest.raises(PortTimeout, match="incomplete"):
        pots.identify()
    # an ERR reply
    pots, _ = bridge(HELLO + [(b"SET 1 700*44\n", b"ERR 5 tap out of range*2D\n")])
    with pytest.raises(PortIOError, match="error 5: tap out of range"):
        pots.set_tap(1, 700)
    # a valid line for another channel (the echo check)
    pots, _ = bridge(HELLO + [(b"SET 1 700*44\n", b"OK 2 700*01\n")])
    with pytest.raises(PortIOError, match="does not match"):
        pots.set_tap(1, 700)
    # a tap beyond the last one
    pots, _ = bridge([(b"GET 2*44\n", frame_line("TAP 2 1024"))])  # reads need no identify first
    with pytest.raises(PortIOError, match="beyond the last tap 1023"):
        pots.get_tap(2)
    # channels transposed: XOR cannot see it, the echo check does
    assert checksum("OKM 0:5 2:1023 1:512") == checksum("OKM 0:5 1:1023 2:512")
    pots, _ = bridge(HELLO + [(b"SETM 0:5 1:1023 2:512*25\n", b"OKM 0:5 2:1023 1:512*63\n")])
    with pytest.raises(PortIOError, match="other channels"):
        pots.set_taps(np.array([5, 1023, 512]))
    # a bridge with another shape is refused before anything is written
    pots, link = bridge([HELLO[0], (b"CFG?*7D\n", b"CFG 16 256*74\n")])
    with pytest.raises(PortError, match="16 channels x 256 taps"):
        pots.set_taps(np.array([1, 2, 3]))
    assert link.script == []
    # the shape may come from the calibration alone; a calibration of another shape is refused
    cal = PotCalibration.nominal(3, 256, 1e4)
    assert SerialPotBridge(n_channels=3, calibration=cal, link=FakeLink([])).n_taps == 256
    with pytest.raises(ValueError, match="calibration is for 3 channels x 256 taps"):
        SerialPotBridge(n_channels=3, n_taps=1024, calibration=cal, link=FakeLink([]))
    # bad requests never reach the link
    pots, link = bridge([])
    for bad in (np.array([1, 2]), np.array([0, 1, 1024]), np.array([0.5, 1, 2])):
        with pytest.raises(ValueError):
            pots.set_taps(bad)
    with pytest.raises(ValueError):
        pots.set_tap(3, 0)


def test_bridge_over_pyserial_loopback_is_detected_as_wrong_reply():
    pots = SerialPotBridge("loop://", n_channels=3, n_taps=1024, timeout_s=0.05)
    with pytest.raises(PortIOError, match="IDN"):  # a loop (TX wired to RX) echoes the command itself
        pots.identify()
    pots.close()


def test_bridge_missing_pyserial_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(ImportError, match=r"pyserial.*\.\[hardware\]' in the labtrain checkout"):
        SerialPotBridge("/dev/ttyACM0", n_channels=2)


# ====================================================================== AD5293 daisy chain
class FakeAD5293Chain:
    """Word-level model of AD5293 parts in a daisy chain behind an SPI port (records every frame)."""

    def __init__(self, n, stuck_locked=()):
        self.n = n
        self.rdac = [512] * n
        self.ctrl = [0] * n
        self.sdo = [0] * n  # what each part shifts out in the next frame
        self.stuck_locked = set(stuck_locked)
        self.frames: list[tuple[bytes, bool]] = []

    def exchange(self, out=b"", readlen=0, start=True, stop=True, duplex=False, droptail=0):
        out = bytes(out)
        if len(out) != 2 * self.n:
            raise ScriptError(f"frame of {len(out)} bytes for a chain of {self.n} parts")
        self.frames.append((out, duplex))
        miso = b"".join(self.sdo[p].to_bytes(2, "big") for p in reversed(range(self.n)))
        for k in range(self.n):
            p = self.n - 1 - k  # the word sent first ends in the last part
            word = int.from_bytes(out[2 * k:2 * k + 2], "big")
            cmd, data = (word >> 10) & 0xF, word & 0x3FF
            self.sdo[p] = word
            if cmd == 1 and self.ctrl[p] & 0x2:
                self.rdac[p] = data
            elif cmd == 2:
                self.sdo[p] = self.rdac[p]
            elif cmd == 6 and p not in self.stuck_locked:
                self.ctrl[p] = data & 0x6
        return miso[:readlen] if duplex else b""


def test_ad5293_frames_byte_for_byte():
    spi = FakeAD5293Chain(2)
    chain = FTDIAD5293Chain(n_channels=2, spi=spi)
    assert chain.set_taps(np.array([5, 1000])).tolist() == [5, 1000]
    assert spi.frames == [
        (bytes.fromhex("18021802"), False),  # command 6, C1 = 1: unlock wiper writes, both parts
        (bytes.fromhex("07e80405"), False),  # command 1: part 1 <- 1000 (sent first), part 0 <- 5
        (bytes.fromhex("18001800"), False),  # command 6, C1 = 0: lock again
        (bytes.fromhex("08000800"), False),  # command 2: read back in the next frame
        (bytes.fromhex("00000000"), True),   # NOPs clock out part 1's then part 0's wiper
    ]
    assert spi.rdac == [5, 1000]
    spi.frames.clear()
    assert chain.get_taps().tolist() == [5, 1000]
    assert [f for f, _ in spi.frames] == [bytes.fromhex("08000800"), bytes.fromhex("00000000")]
    assert "chain of 2" in chain.identify()
    chain = FTDIAD5293Chain(n_channels=1, spi=FakeAD5293Chain(1), normal_mode=True, relock=False)
    chain.set_taps(np.array([3]))
    assert chain._spi.frames[0][0] == bytes.fromhex("1806") and len(chain._spi.frames) == 4  # C2|C1, no relock


def test_ad5293_faults():
    chain = FTDIAD5293Chain(n_channels=3, spi=FakeAD5293Chain(3, stuck_locked={1}))
    with pytest.raises(PortIOError, match="part 1 reads back tap 512 after writing 7"):
        chain.set_taps(np.array([7, 7, 7]))

    class Floating:  # MISO pulled up, chain broken
        def exchange(self, out=b"", readlen=0, duplex=False, **kw):
            return b"\xff" * readlen if duplex else b""

    with pytest.raises(PortIOError, match="DB15"):
        FTDIAD5293Chain(n_channels=2, spi=Floating()).get_taps()

    class Unplugged:
        def exchange(self, *a, **kw):
            raise OSError("USB device disconnected")

    with pytest.raises(PortIOError, match="disconnected"):
        FTDIAD5293Chain(n_channels=2, spi=Unplugged()).identify()
    with pytest.raises(ValueError):
        FTDIAD5293Chain(n_channels=2, spi=FakeAD5293Chain(2)).set_taps(np.array([0, 1024]))


def test_ad5293_missing_pyftdi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyftdi", None)
    monkeypatch.setitem(sys.modules, "pyftdi.spi", None)
    with pytest.raises(ImportError, match=r"pyftdi.*\.\[hardware\]' in the labtrain checkout"):
        FTDIAD5293Chain("ftdi://ftdi:232h/1", n_channels=2)


# ====================================================================== discovery and check
def test_discovery_reports_missing_packages_without_raising(monkeypatch):
    for name in ("pyvisa", "nidaqmx", "nidaqmx.system", "serial", "serial.tools", "serial.tools.list_ports",
                 "pyftdi", "pyftdi.ftdi"):
        monkeypatch.setitem(sys.modules, name, None)
    info = discovery.list_devices()
    assert set(info) == {"visa", "ni", "serial", "ftdi"}
    assert all(s["status"] == "missing" and s["devices"] == [] for s in info.values())
    text = discovery.format_devices(info)
    assert "NI-DAQmx devices: nidaqmx not installed" in text and "pyserial not installed" in text


def test_discovery_nidaqmx_installed_but_driver_missing(ni):
    ni.driver_missing = True
    section = discovery.list_devices(sections=("ni",))["ni"]
    assert section["status"] == "error" and "NI-DAQmx driver not found" in section["message"]
    ni.driver_missing = False
    section = discovery.list_devices(sections=("ni",))["ni"]
    assert section["devices"] == [{"name": "Dev1", "product_type": "PCIe-6363", "serial": "1A2B3C4D",
                                   "simulated": False}]
    assert "Dev1: PCIe-6363 (serial 1A2B3C4D)" in discovery.format_devices({"ni": section})


def test_discovery_lists_visa_resources_and_serial_ports(monkeypatch):
    info = discovery.list_devices(visa_library=f"{SIM_YAML}@sim", sections=("visa", "serial"))
    assert [d["resource"] for d in info["visa"]["devices"]] == ["ASRL1::INSTR", "GPIB0::24::INSTR", "GPIB0::8::INSTR",
                                                                "TCPIP0::192.168.1.20::inst0::INSTR"]
    assert info["serial"]["status"] == "ok"
    fake_port = types.SimpleNamespace(device="/dev/ttyACM7", description="pot bridge", hwid="USB VID:PID=2E8A:000A")
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [fake_port])
    info = discovery.list_devices(sections=("serial",))
    assert "/dev/ttyACM7  pot bridge - USB VID:PID=2E8A:000A" in discovery.format_devices(info)
    broken = discovery.list_devices(visa_library="/nonexistent/lib.so", sections=("visa",))["visa"]
    assert broken["status"] == "error"


def test_check_ports_reports_identity_or_fault():
    class Good:
        def identify(self):
            return "Stanford_Research_Systems,SR830,s/n1,ver1.07"

    class Silent:
        def identify(self):
            raise PortTimeout("SR830: identify: timed out")

    results = discovery.check_ports({"lockin": Good(), "pots": Silent()})
    assert [r["ok"] for r in results] == [True, False]
    assert not discovery.all_ok(results)
    text = discovery.format_check(results)
    assert text.splitlines() == ["ok   lockin (Good): Stanford_Research_Systems,SR830,s/n1,ver1.07",
                                 "FAIL pots (Silent): PortTimeout: SR830: identify: timed out"]


def test_importing_labtrain_and_drivers_needs_no_instrument_package():
    code = ("import sys, labtrain, labtrain.drivers, labtrain.drivers.nidaq, labtrain.drivers.lockin, "
            "labtrain.drivers.potbridge, labtrain.drivers.discovery\n"
            "print(sorted(m for m in ('nidaqmx', 'pymeasure', 'pyvisa', 'serial', 'pyftdi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ====================================================================== hardware (opt-in, read-only)
@pytest.mark.hardware
def test_hardware_daq_identifies(request):
    device = request.config.getoption("--daq-device") or pytest.skip("needs --daq-device")
    daq = NIDAQ(device, ai_channels=["ai0"])
    assert daq.identify().startswith("NI ")
    assert daq.max_rate_hz > 0


@pytest.mark.hardware
def test_hardware_lockin_identifies_and_reads(request):
    spec = request.config.getoption("--lockin") or pytest.skip("needs --lockin MODEL@ADDRESS")
    model, _, address = spec.partition("@")
    lockin = {"SR830": SR830LockIn, "SR860": SR860LockIn}[model.upper()](address)
    try:
        assert model.upper() in lockin.identify()
        assert np.isfinite(lockin.read_xy().r_v)
    finally:
        lockin.close()


@pytest.mark.hardware
def test_hardware_potbridge_identifies_and_reads_back(request):
    spec = request.config.getoption("--potbridge") or pytest.skip("needs --potbridge PORT:N_CHANNELS:N_TAPS")
    port, n_channels, n_taps = spec.rsplit(":", 2)
    pots = SerialPotBridge(port, n_channels=int(n_channels), n_taps=int(n_taps))
    try:
        assert pots.identify()
        taps = pots.get_taps()
        assert taps.shape == (int(n_channels),) and taps.min() >= 0 and taps.max() < int(n_taps)
    finally:
        pots.close()


@pytest.mark.hardware
def test_hardware_ad5293_chain_reads_back(request):
    spec = request.config.getoption("--ftdi-url") or pytest.skip("needs --ftdi-url URL#N_PARTS")
    url, _, n = spec.partition("#")
    chain = FTDIAD5293Chain(url, n_channels=int(n or 1))
    try:
        assert "readback ok" in chain.identify()
    finally:
        chain.close()
