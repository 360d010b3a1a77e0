"""[instruments] tables: parsing (one-line errors), drivers from the registry (built-in and plugin), the bench
opened from them and checked against the wiring before any voltage -- with the lowest transport layers faked
(a fake nidaqmx module, pyvisa-sim, a scripted serial link)."""

from __future__ import annotations

import tomllib
from pathlib import Path
import types

import pytest

from cli_helpers import cli, write
from test_drivers import FakeLink, FakeNI, SIM_YAML

from labtrain import registry
from labtrain.instruments.bench_file import (BenchError, BenchNeeds, ChannelGroup, check_bench, open_bench,
                                             parse_instruments, require_bench, resolve_channel)
from labtrain.instruments.drivers import DriverSpec, load_driver
from labtrain.schema import ConfigError, Field

SRC = "bench.toml"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ni(monkeypatch):
    fake = FakeNI().install(monkeypatch)
    fake.add_device("Dev1", "USB-6363", n_ao=4, n_ai=32, n_do=32)
    fake.add_device("Dev2", "PCIe-6738", n_ao=32, n_ai=0, n_do=8, ai_rngs=())
    fake.add_device("Dev3", "USB-6001", n_ao=2, n_ai=8, n_do=13, ao_rngs=(-10.0, 10.0), ai_rngs=(-10.0, 10.0))
    return fake


def parse(text: str) -> dict:
    return parse_instruments(tomllib.loads(text)["instruments"], SRC)


# ====================================================================== parsing
GOOD = """
[instruments.daq]
driver = "nidaq"
resource = "Dev1"
options = { terminal_config = "DIFF", ao_range_v = [-5.0, 5.0] }

[instruments.lockin]
driver = "sr830"
resource = "ASRL/dev/ttyUSB0::INSTR"
options = { baud_rate = 9600, read_termination = "\\r", parity = "none" }

[instruments.pots]
driver = "ad5293_ftdi"
resource = "ftdi://ftdi:232h/1"
options = { r_total_ohm = 20e3 }
"""


def test_good_instruments_parse_to_roles_and_converted_options():
    out = parse(GOOD)
    assert out["daq"] == {"driver": "nidaq", "resource": "Dev1", "port": "daq",
                          "options": {"terminal_config": "DIFF", "ao_range_v": [-5.0, 5.0]}}
    assert out["lockin"]["port"] == "lockin" and out["lockin"]["options"]["read_termination"] == "\r"
    assert out["pots"]["options"] == {"r_total_ohm": 20000.0}
    assert load_driver("sr830").resolve_options(out["lockin"]["options"])["timeout_s"] == 3.0  # defaults at open


BAD = {
    "unknown-driver": ('[instruments.daq]\ndriver = "nidaqq"\n',
                       ["[instruments.daq]", "driver = 'nidaqq'", "did you mean 'nidaq'", "installed: nidaq, sr830"]),
    "no-driver": ('[instruments.daq]\nresource = "Dev1"\n', ["[instruments.daq]", "has no driver"]),
    "unknown-key": ('[instruments.daq]\ndriver = "nidaq"\nresourse = "Dev1"\n',
                    ["[instruments.daq]", "unknown key 'resourse'", "did you mean 'resource'",
                     "allowed keys: driver, resource, options"]),
    "unknown-option": ('[instruments.daq]\ndriver = "nidaq"\noptions = { terminal = "RSE" }\n',
                       ["[instruments.daq]", "options.terminal", "did you mean 'terminal_config'",
                        "its options: terminal_config, ao_range_v, max_rate_hz, ao_clock"]),
    "bad-choice": ('[instruments.daq]\ndriver = "nidaq"\noptions = { terminal_config = "diferential" }\n',
                   ["[instruments.daq]", "options.terminal_config = 'diferential'", "one of RSE, NRSE, DIFF"]),
    "out-of-range": ('[instruments.lockin]\ndriver = "sr830"\nresource = "GPIB0::8::INSTR"\n'
                     'options = { baud_rate = 50 }\n',
                     ["[instruments.lockin]", "options.baud_rate = 50", "out of range", "[300, 115200]"]),
    "wrong-type": ('[instruments.lockin]\ndriver = "sr860"\noptions = { timeout_s = "3" }\n',
                   ["[instruments.lockin]", "options.timeout_s = '3'", "expected a number"]),
    "bad-termination": ('[instruments.lockin]\ndriver = "sr830"\noptions = { read_termination = "\\t" }\n',
                        ["[instruments.lockin]", "options.read_termination", "expected \"\\r\", \"\\n\""]),
    "bad-range": ('[instruments.daq]\ndriver = "nidaq"\noptions = { ao_range_v = [5.0, -5.0] }\n',
                  ["[instruments.daq]", "options.ao_range_v = [5.0, -5.0]", "low < high"]),
    "bench-key": ('[instruments.daq]\ndriver = "nidaq"\noptions = { ao_channels = ["Dev1/ao0"] }\n',
                  ["[instruments.daq]", "options.ao_channels", "set by labtrain from the wiring"]),
    "two-daqs": ('[instruments.daq]\ndriver = "nidaq"\n[instruments.daq2]\ndriver = "nidaq"\nresource = "Dev2"\n',
                 ["[instruments.daq2]", "driver = 'nidaq'", "a bench has one daq", "[instruments.daq] is already it"]),
    "bad-name": ('[instruments."my daq"]\ndriver = "nidaq"\n', ["[instruments.my daq]", "start with a letter"]),
    "not-a-table": ('[instruments]\ndaq = "nidaq"\n', ["[instruments] daq = 'nidaq'", "expected a table"]),
    "resource-not-str": ('[instruments.daq]\ndriver = "nidaq"\nresource = 1\n',
                         ["[instruments.daq]", "resource = 1", "expected a string", "NI-DAQmx device name"]),
    "options-not-table": ('[instruments.daq]\ndriver = "nidaq"\noptions = "DIFF"\n',
                          ["[instruments.daq]", "options = 'DIFF'", "expected a table"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_instruments_are_one_line_config_errors(case):
    text, needles = BAD[case]
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{SRC}: ")
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message}"


def test_instruments_through_the_experiment_file(tmp_path, capsys):
    """config loads [instruments] through parse_instruments; a bad table is exit 2, one line, on every command."""
    f = write(tmp_path, "[task]\nname = \"and\"\n[instruments.daq]\ndriver = \"nidaq\"\nresource = \"Dev1\"\n"
              "options = { ao_clok = \"ai\" }\n")
    code, out, err = cli(["check", f], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(f) in err and "[instruments.daq] options.ao_clok" in err and "did you mean 'ao_clock'" in err


# ====================================================================== drivers and the registry
def fake_open(resource, options):
    raise AssertionError("not opened in this test")


PLUGIN_DRIVER = None  # set by the plugin test: what the fake entry point names


def test_driver_spec_refuses_malformed_specs():
    with pytest.raises(ValueError, match="port = 'scope'; allowed: daq, pots, lockin"):
        DriverSpec("x", "scope", fake_open, "x")
    with pytest.raises(ValueError, match="option name 'ao_channels' is reserved for the bench"):
        DriverSpec("x", "daq", fake_open, "x", options={"ao_channels": Field("strs", [], "")})
    with pytest.raises(ValueError, match="must be a labtrain.schema.Field"):
        DriverSpec("x", "daq", fake_open, "x", options={"gain": 3})
    assert load_driver("nidaq").install_hint == "pip install -e '.[hardware]' in the labtrain checkout"


def test_a_plugin_driver_from_an_entry_point_serves_a_bench(monkeypatch):
    """A plugin registers a DriverSpec in the labtrain.drivers group; files name it like a built-in."""
    from test_adapters import FakeParameter
    from labtrain.instruments.adapters import ParameterDAQ

    def open_smu(resource, options):
        v = FakeParameter("source_voltage", "V", instrument=resource)
        i = FakeParameter("voltage", "V", settable=False, instrument=resource, getter=lambda: v.value * options["gain"])
        return ParameterDAQ({f"{resource}/ao0": v}, {f"{resource}/ai0": i}, max_rate_hz=50,
                            ao_range_v=(-options["limit_v"], options["limit_v"]), identity=f"SMU {resource}")

    global PLUGIN_DRIVER
    PLUGIN_DRIVER = DriverSpec("smu_daq", "daq", open_smu, "an SMU pair as a slow DAQ", extra="",
                               options={"gain": Field("float", 1.0, "meter gain", 0, 10),
                                        "limit_v": Field("float", 2.0, "compliance (V)", 0, 20, low_open=True)})
    entry = registry.Entry("labtrain.drivers", "smu_daq", "test_bench_file:PLUGIN_DRIVER", "labtrain-smu")
    monkeypatch.setattr(registry, "_plugin_entries", lambda group: [entry] if group == "labtrain.drivers" else [])
    registry.clear_cache()
    try:
        inst = parse('[instruments.smu]\ndriver = "smu_daq"\nresource = "SMU1"\noptions = { gain = 0.5 }\n')
        assert inst["smu"]["port"] == "daq"
        bench = open_bench(inst, {"daq": {"ao_channels": ("SMU1/ao0",)}})
        assert bench.identities() == {"smu": "SMU SMU1"} and bench["daq"].ao_range_v == (-2.0, 2.0)
        needs = BenchNeeds(groups=(ChannelGroup("ao", "input_ao", (resolve_channel("smu/ao0", inst),)),
                                   ChannelGroup("ai", "node_ai", ("SMU1/ai0",))), max_abs_v=1.0)
        assert check_bench(bench, needs) == []
        problems = check_bench(bench, BenchNeeds(groups=needs.groups, max_abs_v=3.0,
                                                 max_abs_v_source=("backend", "max_abs_v = 3")))
        assert [p.section for p in problems] == ["backend"]
        assert "max_abs_v = 3: +-3 V is beyond the AO range of ParameterDAQ 'SMU1' ([-2, 2] V)" in str(problems[0])
        with pytest.raises(ConfigError, match="options.gain = 20: out of range"):
            parse('[instruments.smu]\ndriver = "smu_daq"\noptions = { gain = 20 }\n')
    finally:
        registry.clear_cache()


# ====================================================================== checks against the device
def needs_for(ao, ai=("Dev1/ai0",), do=(), max_abs_v=2.0, ai_max_abs_v=10.0):
    return BenchNeeds(groups=(ChannelGroup("ao", "input_ao", tuple(ao[:3])), ChannelGroup("ao", "output_ao", tuple(ao[3:])),
                              ChannelGroup("ai", "node_ai", tuple(ai)), ChannelGroup("do", "output_switch_do", tuple(do))),
                      max_abs_v=max_abs_v, max_abs_v_source=("backend", f"max_abs_v = {max_abs_v:g}"),
                      ai_max_abs_v=ai_max_abs_v, ai_max_abs_v_source=("backend", f"ai_max_abs_v = {ai_max_abs_v:g}"))


def open_daq(resource="Dev1", options=None, ao=()):
    inst = {"daq": {"driver": "nidaq", "resource": resource, "options": options or {}, "port": "daq"}}
    return open_bench(inst, {"daq": {"ao_channels": tuple(ao), "ai_channels": (f"{resource}/ai0",)}})


def test_usb6363_with_a_wiring_naming_ao4_to_ao11_names_the_first_missing_channel(ni):
    wanted = [f"Dev1/ao{k}" for k in range(4, 12)]
    bench = open_daq()  # opening lists nothing and applies nothing
    assert not [c for c in ni.log if c[0] in ("task", "write_one", "write_many")]
    problems = check_bench(bench, needs_for(wanted))
    assert [p.section for p in problems] == ["wiring", "wiring"]
    assert str(problems[0]) == ("input_ao names 'Dev1/ao4', which NI USB-6363 'Dev1' does not have: it has 4 AO "
                                "channels (Dev1/ao0, Dev1/ao1, Dev1/ao2, Dev1/ao3); this bench needs 8")
    assert str(problems[1]).startswith("output_ao names 'Dev1/ao7'")
    with pytest.raises(BenchError, match="input_ao names 'Dev1/ao4'"):
        require_bench(bench, needs_for(wanted))
    assert check_bench(bench, needs_for(["ao0", "Dev1/ao1", "/Dev1/AO2", "Dev1/ao3"])) == []  # relative, /, case


def test_ranges_lines_and_ai_channels_are_checked(ni):
    ao = [f"Dev1/ao{k}" for k in range(4)]
    assert check_bench(open_daq(), needs_for(ao, max_abs_v=10.0)) == []
    narrow = check_bench(open_daq(options={"ao_range_v": [-1.0, 1.0]}), needs_for(ao, max_abs_v=2.0))
    assert len(narrow) == 1 and narrow[0].section == "instruments.daq"
    assert "+-2 V is beyond the AO range daq is opened with ([-1, 1] V, options.ao_range_v)" in str(narrow[0])
    usb6001 = check_bench(open_daq("Dev3"), BenchNeeds(groups=(ChannelGroup("do", "output_switch_do",
                                                                           ("Dev3/port0/line13",)),),
                                                      ai_max_abs_v=10.0))
    assert [str(p).split(",")[0] for p in usb6001] == ["output_switch_do names 'Dev3/port0/line13'"]
    no_ai = check_bench(open_daq("Dev2"), needs_for([f"Dev2/ao{k}" for k in range(7)], ai=["Dev2/ai0"]))
    assert len(no_ai) == 1 and "which NI PCIe-6738 'Dev2' does not have: it has 0 AI channels (none)" in str(no_ai[0])
    ni.devices["Dev3"]["ao_voltage_rngs"] = [-5.0, 5.0]
    over = check_bench(open_daq("Dev3"), BenchNeeds(max_abs_v=8.0, max_abs_v_source=("backend", "max_abs_v = 8")))
    assert str(over[0]) == "max_abs_v = 8: +-8 V is beyond the AO range of NI USB-6001 'Dev3' ([-5, 5] V)"


def test_a_device_that_cannot_be_listed_is_a_problem_not_a_crash(ni):
    bench = open_daq()
    ni.driver_missing = True
    problems = check_bench(bench, needs_for(["Dev1/ao0"]))
    assert len(problems) == 1 and "daq: cannot list the device's channels" in str(problems[0])


# ====================================================================== the resistor bench from the file
def resistor_backend(**kw):
    b = {"kind": "hardware", "daq_device": "Dev1", "pot_interface": "serial", "pot_address": "/dev/ttyACM0",
         "ai_max_abs_v": 10.0, "max_abs_v": 2.0, "max_slew_v_per_s": 1000.0, "rate_hz": 10_000.0,
         "settle_samples": 10, "average_samples": 10, "timeout_s": 10.0, "retries": 0, "retry_wait_s": 0.0,
         "pot_taps": 1024, "pot_r_total_ohm": 1e5, "pot_r_wiper_ohm": 50.0, "pot_r_end_ohm": 0.0,
         "pot_tolerance": 0.0, "twin_noise_white_v": 0.0, "twin_noise_1f_v": 0.0, "twin_adc_bits": 16,
         "twin_rc_time_s": 0.0}
    b.update(kw)
    return b


WIRING = {"read": "all", "output_series_ohm": 10.0, "input_ao": [], "output_ao": [], "output_switch_do": [],
          "node_ai": [], "read_nodes": [], "pot_channels": []}


def small_network():
    """2 x 2 lattice: 4 nodes (2 inputs, 1 output, 1 ground), 4 edges."""
    from labtrain.physics.network import lattice

    net = lattice(2, 2)
    assert (net.n_nodes, net.n_edges, len(net.inputs), len(net.outputs)) == (4, 4, 2, 1)
    return net


@pytest.fixture
def serial_bridge(monkeypatch):
    """pyserial's serial_for_url replaced by a scripted link (the lowest transport layer of the bridge)."""
    import serial

    opened = []

    def serial_for_url(url, **kw):
        link = FakeLink([(b"IDN?*7C\n", b"IDN labtrain-potbridge,v1,sn0042*69\n"),
                         (b"CFG?*7D\n", b"CFG 4 1024*71\n")])
        opened.append((url, kw, link))
        return link

    monkeypatch.setattr(serial, "serial_for_url", serial_for_url)
    return opened


def test_without_instruments_the_backend_keys_mean_what_they_meant(ni, serial_bridge):
    from labtrain.drivers.nidaq import NIDAQ
    from labtrain.drivers.potbridge import SerialPotBridge
    from labtrain.kinds.resistor.hardware import build_wiring, identify_instruments, open_hardware_ports

    net = small_network()
    b = resistor_backend(pot_r_total_ohm=5e4)
    wiring = build_wiring(b, WIRING, net)
    daq, pots = open_hardware_ports(b, net, wiring)
    assert isinstance(daq, NIDAQ) and daq.device == "Dev1" and daq.ao_channels == ("Dev1/ao0", "Dev1/ao1", "Dev1/ao2")
    assert daq.ai_range_v == (-10.0, 10.0) and daq.do_lines == ("Dev1/port0/line0",)
    assert isinstance(pots, SerialPotBridge) and serial_bridge[0][0] == "/dev/ttyACM0"
    assert pots.n_channels == 4 and pots.calibration.r_total_ohm.tolist() == [5e4] * 4
    assert pots.calibration.r_wiper_ohm.tolist() == [50.0] * 4
    ids = identify_instruments(b, WIRING, net)
    assert list(ids) == ["daq", "pots"] and ids["daq"].startswith("NI USB-6363")
    # without [instruments], "daq" is [backend] daq_device
    assert build_wiring(b, dict(WIRING, input_ao=["daq/ao3", "daq/ao0"]), net).input_ao == ("Dev1/ao3", "Dev1/ao0")


def test_instruments_from_the_file_open_through_the_registry_with_channels_by_instrument_name(ni, serial_bridge):
    from labtrain.kinds.resistor.hardware import build_wiring, identify_instruments, open_hardware_ports
    from labtrain.kinds.resistor.wiring import WiringError

    inst = parse('[instruments.usb]\ndriver = "nidaq"\nresource = "Dev3"\noptions = { terminal_config = "DIFF" }\n'
                 '[instruments.bridge]\ndriver = "potbridge"\nresource = "COM7"\n'
                 'options = { r_total_ohm = 2e4, baud_rate = 9600 }\n')
    net = small_network()
    b = resistor_backend()
    section = dict(WIRING, input_ao=["usb/ao0", "usb/ao1"], output_ao=["Dev1/ao0"], node_ai=["usb/ai0", "usb/ai1",
                   "usb/ai2", "usb/ai3"], output_switch_do=["usb/port0/line2"])
    wiring = build_wiring(b, section, net, inst)
    assert wiring.input_ao == ("Dev3/ao0", "Dev3/ao1") and wiring.output_switch_do == ("Dev3/port0/line2",)
    with pytest.raises(BenchError, match="output_ao names 'Dev1/ao0', which NI USB-6001 'Dev3' does not have"):
        open_hardware_ports(b, net, wiring, inst)
    assert serial_bridge[-1][2].script  # the bridge was opened but nothing was exchanged before the check
    with pytest.raises(WiringError, match="AO channel 'Dev3/ao1' is wired twice"):  # names resolved, then checked
        build_wiring(b, dict(section, input_ao=["usb/ao0", "Dev3/ao1"], output_ao=["usb/ao1"]), net, inst)
    # a 2-AO USB-6001 cannot hold 2 inputs + 1 output: the first missing channel is named
    wiring = build_wiring(b, dict(section, output_ao=["usb/ao2"]), net, inst)
    with pytest.raises(BenchError, match=r"output_ao names 'Dev3/ao2'.*it has 2 AO channels.*needs 3"):
        open_hardware_ports(b, net, wiring, inst)
    inst["usb"]["resource"] = "Dev1"
    ids = identify_instruments(b, dict(section, output_ao=["usb/ao2"]), net, inst)
    assert list(ids) == ["usb", "bridge"] and ids["bridge"] == "labtrain-potbridge,v1,sn0042"
    url, kw, _ = serial_bridge[-1]
    assert url == "COM7" and kw["baudrate"] == 9600
    daq, pots = open_hardware_ports(b, net, build_wiring(b, dict(section, output_ao=["usb/ao2"]), net, inst), inst)
    assert daq.terminal_config == "DIFF" and pots.calibration.r_total_ohm[0] == 2e4


def test_a_lockin_on_a_resistor_bench_is_refused_with_its_table(ni):
    from labtrain.kinds.resistor.hardware import open_hardware_ports, build_wiring

    inst = parse('[instruments.li]\ndriver = "sr830"\nresource = "GPIB0::8::INSTR"\n')
    net = small_network()
    with pytest.raises(BenchError) as info:
        open_hardware_ports(resistor_backend(), net, build_wiring(resistor_backend(), WIRING, net), inst)
    assert info.value.section == "instruments.li" and "a resistor_network bench uses no lockin" in str(info.value)


def test_the_twin_simulates_the_instruments_the_file_names():
    from labtrain.kinds.resistor.hardware import build_instrument_chip

    inst = parse('[instruments.daq]\ndriver = "nidaq"\nresource = "DevX"\noptions = { ao_range_v = [-5.0, 5.0] }\n'
                 '[instruments.pots]\ndriver = "potbridge"\nresource = "/dev/ttyACM0"\n'
                 'options = { n_taps = 256, r_total_ohm = 5e4 }\n')
    net = small_network()
    b = resistor_backend(kind="twin")
    chip = build_instrument_chip(b, dict(WIRING, input_ao=["daq/ao0", "daq/ao1"]), net, None, seed=0,
                                 instruments=inst)
    try:
        pots = chip.pots.pots if hasattr(chip.pots, "pots") else chip.pots._inner
        assert pots.n_taps == 256 and pots.calibration.r_total_ohm[0] == 5e4
        assert chip.daq.ao_range_v == (-5.0, 5.0) and "DevX/ao0" in chip.daq.ao_channels
    finally:
        chip.close()
    narrow = parse('[instruments.daq]\ndriver = "nidaq"\noptions = { ao_range_v = [-1.0, 1.0] }\n')
    with pytest.raises(BenchError, match=r"max_abs_v = 2: \+-2 V is beyond the AO range"):
        build_instrument_chip(b, WIRING, net, None, seed=0, instruments=narrow)


def test_check_hardware_with_a_usb6363_too_small_for_the_wiring_exits_2_naming_the_channel(ni, tmp_path, capsys):
    """`labtrain check FILE --backend hardware` opens the (faked) USB-6363, lists its 4 AO channels and refuses a
    wiring on ao4..ao11 before any voltage: exit 2, one line, the first missing channel named."""
    text = ("[chip]\ntopology = \"lattice\"\nrows = 4\ncols = 4\n[task]\nname = \"and\"\n"
            "bias_inputs_v = [1.0, 1.0, 1.0, 1.0, 1.0]\n[backend]\ndaq_device = \"Dev1\"\npot_address = \"loop://\"\n"
            "[wiring]\ninput_ao = [" + ", ".join(f'"Dev1/ao{k}"' for k in range(4, 11)) + "]\n"
            "output_ao = [\"Dev1/ao11\"]\n")
    f = write(tmp_path, text)
    code, out, err = cli(["check", f, "--backend", "hardware"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(f) in err and "'Dev1/ao4'" in err and "USB-6363" in err and "4 AO channels" in err
    assert not [c for c in ni.log if c[0] in ("write_one", "write_many", "start")]  # nothing was driven


# ====================================================================== the DNPU bench from the file
DNPU_BENCH = """
[instruments.daq]
driver = "nidaq"
resource = "Dev2"

[instruments.lockin]
driver = "sr830"
resource = "ASRL1::INSTR"
options = {{ visa_library = "{lib}", timeout_s = 0.5, baud_rate = 9600 }}
"""


def test_dnpu_bench_with_a_lockin_chosen_in_toml(ni):
    """DAQ (32-AO PCIe-6738, faked nidaqmx) and an SR830 on RS-232 (pyvisa-sim): the lock-in becomes the chip's
    demodulator, the relays are DO lines of the DAQ, the bench is checked before anything is driven."""
    from labtrain.drivers.lockin import SR830LockIn
    from labtrain.kinds.dnpu.hardware import build_dnpu_hardware

    ni.devices["Dev2"]["ai_physical_chans"] = types.SimpleNamespace(channel_names=["Dev2/ai0"])
    ni.devices["Dev2"]["ai_voltage_rngs"] = [-10.0, 10.0]
    inst = parse(DNPU_BENCH.format(lib=f"{SIM_YAML}@sim"))
    chip = build_dnpu_hardware(layout=None, instruments=inst, rate_hz=1000.0)
    try:
        assert chip.demodulator == "lockin" and chip.backend == "hardware"
        raw = chip.lockin.lockin
        assert isinstance(raw, SR830LockIn) and raw.output_interface == "rs232"
        assert raw.instrument.adapter.connection.read_termination == "\r"
        assert chip.electrode_ao[0] == "Dev2/ao0" and chip.lockin_router.lines["Dev2/ao6"] == "Dev2/port0/line6"
        assert raw.time_constant_s == 0.03  # set once opened (OFLT7 over the CR-terminated link)
        chip.lockin.amplitude_v = 0.05
        assert raw.amplitude_v == 0.05
        chip.safe_state()
        assert raw.amplitude_v == 0.004  # the safe state: minimum sine out (SLVL0.004)
    finally:
        chip.close()
    ni.devices["Dev2"]["do_lines"] = types.SimpleNamespace(channel_names=[f"Dev2/port0/line{k}" for k in range(4)])
    with pytest.raises(BenchError, match=r"lock-in relay lines names 'Dev2/port0/line4'.*it has 4 DO"):
        build_dnpu_hardware(instruments=inst, rate_hz=1000.0)


def test_dnpu_on_a_usb6363_lacks_electrode_channels(ni):
    from labtrain.kinds.dnpu.hardware import build_dnpu_hardware

    with pytest.raises(BenchError, match=r"electrode_ao names 'Dev1/ao4', which NI USB-6363 'Dev1' does not have: it "
                                         r"has 4 AO channels .*this bench needs 7") as info:
        build_dnpu_hardware("Dev1")
    assert info.value.section == "wiring"
    assert not [c for c in ni.log if c[0] in ("write_one", "write_many", "start")]


def test_driver_reference_is_generated_from_the_specs():
    from labtrain.instruments.drivers import drivers_markdown

    text = drivers_markdown()
    for name in ("nidaq", "sr830", "sr860", "potbridge", "ad5293_ftdi"):
        assert f"### `{name}` (" in text
    assert "| `output_interface` | str | `'auto'` | one of auto, rs232, gpib, none |" in text
    assert "| `n_taps` | int | (bench) | int in [2, 1000000] |" in text and "\n\n\n" not in text


def test_a_file_configured_bench_with_a_lockin_runs_on_the_twin(tmp_path, capsys):
    """The DNPU example with a lock-in chosen in TOML: `--backend twin` simulates that bench (DAQ + SR830 routed
    by relays) and trains with sequential HGE demodulated by the (simulated) lock-in."""
    import h5py
    import json

    text = (ROOT / "examples" / "dnpu_xor_hge.toml").read_text()
    text = text.replace('hge_mode = "parallel"', 'hge_mode = "sequential"')
    text = text.replace("amplitudes_v = [0.03, 0.01, 0.01, 0.005, 0.005]", "amplitudes_v = [0.03, 0.01, 0.01, 0.01, 0.01]")
    text += ('\n[instruments.daq]\ndriver = "nidaq"\nresource = "Dev1"\n'
             '\n[instruments.lockin]\ndriver = "sr830"\nresource = "GPIB0::8::INSTR"\n')
    f = write(tmp_path, text)
    code, out, err = cli(["check", f, "--backend", "twin"], capsys)
    assert code == 0, err
    code, out, err = cli(["run", f, "--backend", "twin", "--epochs", "2", "--out", str(tmp_path / "runs"), "-q"],
                         capsys)
    assert code == 0, err
    assert "status      completed" in out
    (run_file,) = (tmp_path / "runs").glob("*.h5")
    from labtrain.training.store import RunStore

    with RunStore.open(run_file) as store:
        snapshot = json.dumps(store.snapshot)
    assert '"demodulator": "lockin"' in snapshot
