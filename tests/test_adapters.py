"""Adapters: QCoDeS-style parameters/instruments and PyMeasure instruments as labtrain ports, behind the safety
layer.  QCoDeS is not installed: small fakes implement the documented Parameter API (get, set, unit, name)."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.instruments.srs import SR830, SR860
from pymeasure.test import expected_protocol

from labtrain.drivers.lockin import SR830LockIn, SR860LockIn
from labtrain.instruments.adapters import (AttributeParameter, ParameterDAQ, ParameterLockIn, check_parameter,
                                           lockin_from_pymeasure)
from labtrain.instruments.ports import PortIOError, PortTimeout
from labtrain.instruments.safety import SafeDAQ, SafeLockIn, SafetyConfig, SafetyError


class FakeParameter:
    """The slice of qcodes.Parameter labtrain uses: name, full_name, unit, get(), set(), gettable, settable."""

    def __init__(self, name, unit, value=0.0, settable=True, instrument="fake", getter=None):
        self.name, self.unit, self.settable, self.gettable = name, unit, settable, True
        self.full_name = f"{instrument}_{name}"
        self.value, self.sets, self.gets, self._getter = value, [], 0, getter

    def get(self):
        self.gets += 1
        return self._getter() if self._getter is not None else self.value

    def set(self, value):
        if not self.settable:
            raise TypeError(f"{self.name} is not settable")
        self.sets.append(value)
        self.value = value


class FakeQCoDeSLockIn:
    """A QCoDeS SR830/SR86x driver as far as the adapter sees it."""

    def __init__(self, model="SR830", snap=True):
        self.frequency = FakeParameter("frequency", "Hz", 1000.0, instrument="lockin")
        self.amplitude = FakeParameter("amplitude", "V", 0.004, instrument="lockin")
        self.time_constant = FakeParameter("time_constant", "s", 0.1, instrument="lockin")
        self.sensitivity = FakeParameter("sensitivity", "V", 1.0, instrument="lockin")
        self.X = FakeParameter("X", "V", 1e-3, settable=False, instrument="lockin")
        self.Y = FakeParameter("Y", "V", -2e-3, settable=False, instrument="lockin")
        self.model, self.snaps = model, 0
        if not snap:
            self.snap = None

    def get_idn(self):
        return {"vendor": "Stanford_Research_Systems", "model": self.model, "serial": "s/n1", "firmware": "ver1.07"}

    def snap(self, *names):
        self.snaps += 1
        assert names == ("x", "y")
        return (self.X.value, self.Y.value)


# ====================================================================== parameters
def test_check_parameter_refuses_what_is_not_a_parameter_of_the_right_unit():
    with pytest.raises(TypeError, match=r"ParameterDAQ: ao\['a'\] = object: expected a parameter with get\(\)"):
        check_parameter(object(), "ao['a']", ("V",), settable=True, owner="ParameterDAQ")
    with pytest.raises(ValueError, match=r"amplitude = lockin_amplitude has unit 'mV', expected 'V'"):
        check_parameter(FakeParameter("amplitude", "mV", instrument="lockin"), "amplitude", ("V",), settable=True,
                        owner="x")
    with pytest.raises(ValueError, match="has unit '', expected 'V'"):  # a unit must be declared, not guessed
        check_parameter(FakeParameter("v", ""), "ai", ("V",), settable=False, owner="x")
    with pytest.raises(TypeError, match="is not settable"):
        check_parameter(FakeParameter("X", "V", settable=False), "frequency", ("V",), settable=True, owner="x")


def test_attribute_parameter_wraps_a_property_without_reading_it():
    class Meter:
        reads = 0

        @property
        def voltage(self):
            Meter.reads += 1
            return 0.25

        source_voltage = 0.0

    m = Meter()
    v = AttributeParameter(m, "voltage", "V", settable=False)
    assert Meter.reads == 0 and v.unit == "V" and v.name == "Meter.voltage"
    assert v.get() == 0.25 and Meter.reads == 1
    with pytest.raises(TypeError, match="is a measurement"):
        v.set(1.0)
    src = AttributeParameter(m, "source_voltage", "V")
    src.set(0.7)
    assert m.source_voltage == 0.7
    with pytest.raises(TypeError, match="Meter has no attribute 'voltag'"):
        AttributeParameter(m, "voltag", "V")
    assert Meter.reads == 1


# ====================================================================== lock-in
def test_qcodes_lockin_through_the_safety_layer():
    inst = FakeQCoDeSLockIn()
    lockin = ParameterLockIn.from_qcodes(inst)
    assert lockin.amplitude_range_v == (0.004, 5.0) and lockin.identify() == \
        "Stanford_Research_Systems,SR830,s/n1,ver1.07"
    lockin.frequency_hz = 137.0
    assert inst.frequency.sets == [137.0] and lockin.frequency_hz == 137.0
    reading = lockin.read_xy()
    assert (reading.x_v, reading.y_v, inst.snaps) == (1e-3, -2e-3, 1)  # one SNAP: X and Y at one instant
    with pytest.raises(ValueError, match=r"amplitude_v = 6.0 V: allowed range \[0.004, 5\] V"):
        lockin.amplitude_v = 6.0
    safe = SafeLockIn(lockin, max_amplitude_v=0.1, register=False)
    with pytest.raises(SafetyError, match="above max_amplitude_v"):
        safe.amplitude_v = 0.5
    assert inst.amplitude.sets == []                  # nothing reached the instrument
    safe.amplitude_v = 0.05
    safe.safe_state()
    assert inst.amplitude.sets == [0.05, 0.004]        # the safe state: the SR830's minimum amplitude
    assert lockin.snapshot()["parameters"]["x"] == "lockin_X"


def test_qcodes_lockin_refuses_other_instruments_and_reads_xy_one_by_one_without_snap():
    with pytest.raises(ValueError, match=r"model 'DMM6500' is not a lock-in labtrain knows"):
        ParameterLockIn.from_qcodes(FakeQCoDeSLockIn(model="DMM6500"))
    custom = ParameterLockIn.from_qcodes(FakeQCoDeSLockIn(model="MFLI", snap=False),
                                         amplitude_range_v=(0.0, 1.0), frequency_range_hz=(0.1, 5e6))
    inst = FakeQCoDeSLockIn()
    del inst.sensitivity
    with pytest.raises(TypeError, match="no lock-in parameter 'sensitivity'"):
        ParameterLockIn.from_qcodes(inst)
    with pytest.raises(TypeError, match="expected a QCoDeS instrument"):
        ParameterLockIn.from_qcodes(object())
    assert custom.read_xy().y_v == -2e-3
    broken = FakeQCoDeSLockIn()
    broken.X._getter = lambda: (_ for _ in ()).throw(TimeoutError("VI_ERROR_TMO"))
    lockin = ParameterLockIn.from_qcodes(broken)
    lockin._snap = None
    with pytest.raises(PortTimeout, match="reading X"):
        lockin.read_xy()
    broken.X._getter = lambda: "OVLD"
    with pytest.raises(PortIOError, match="'OVLD' is not a number"):
        lockin.read_xy()


def test_pymeasure_lockins_become_the_matching_driver_and_others_are_refused():
    idn = "Stanford_Research_Systems,SR830,s/n3,ver1.07"
    with expected_protocol(SR830, [("*IDN?", idn), ("SNAP? 1,2", "1e-6,2e-6")]) as inst:
        port = lockin_from_pymeasure(inst)
        assert isinstance(port, SR830LockIn) and port.read_xy().x_v == 1e-6
    with expected_protocol(SR860, [("*IDN?", "Stanford_Research_Systems,SR860,003101,v1.47")]) as inst:
        assert isinstance(lockin_from_pymeasure(inst), SR860LockIn)
    with expected_protocol(SR830, [("*IDN?", "Stanford_Research_Systems,SR860,003101,v1.47")]) as inst:
        with pytest.raises(ValueError, match="model SR860, expected SR830 or SR810"):  # wrong class for the box
            lockin_from_pymeasure(inst)
    with pytest.raises(TypeError, match="is not a PyMeasure SR830 or SR860"):
        lockin_from_pymeasure(object())


# ====================================================================== DAQ
class FakeClock:
    def __init__(self, step_s=0.0):
        self.t, self.step_s, self.sleeps = 0.0, step_s, []

    def __call__(self):
        self.t += self.step_s
        return self.t

    def sleep(self, s):
        self.sleeps.append(round(s, 9))
        self.t += s


def smu_bench(step_s=0.0, ao0_v=0.3):
    """Two SMU-like outputs and a meter that reads 0.5 * ao0 + ao1 (a resistive divider)."""
    ao0 = FakeParameter("source_voltage", "V", ao0_v, instrument="smu1")
    ao1 = FakeParameter("source_voltage", "V", 0.0, instrument="smu2")
    ai0 = FakeParameter("voltage", "V", settable=False, instrument="dmm",
                        getter=lambda: 0.5 * ao0.value + ao1.value)
    relay = FakeParameter("relay", "", False)
    clock = FakeClock(step_s)
    daq = ParameterDAQ({"smu/ao0": ao0, "smu/ao1": ao1}, {"dmm/ai0": ai0}, {"box/line0": relay},
                       ao_range_v=(-2, 2), max_rate_hz=100, identity=lambda: {"vendor": "Keithley", "model": "2450"},
                       clock=clock, sleep=clock.sleep)
    return daq, ao0, ao1, ai0, relay, clock


def test_parameter_daq_steps_the_waveform_paced_and_only_writes_changes():
    daq, ao0, ao1, ai0, relay, clock = smu_bench()
    assert daq.dc_levels_v() == {"smu/ao0": 0.3, "smu/ao1": 0.0}  # the levels the instrument really holds
    ao_v = np.array([[0.3, 0.3, 1.0, 1.0], [0.0, 0.2, 0.2, 0.2]])
    acq = daq.write_read(["smu/ao0", "smu/ao1"], ao_v, ["dmm/ai0"], rate_hz=50)
    assert np.allclose(acq.ai_v, [[0.15, 0.35, 0.7, 0.7]]) and acq.rate_hz == 50 and acq.channels == ("dmm/ai0",)
    assert (ao0.sets, ao1.sets) == ([1.0], [0.2])            # unchanged samples send nothing
    assert clock.sleeps == [0.02, 0.02, 0.02]               # sample k at k / rate_hz
    assert daq.dc_levels_v() == {"smu/ao0": 1.0, "smu/ao1": 0.2}
    daq.set_digital({"box/line0": True})
    assert relay.sets == [True] and daq.digital_states() == {"box/line0": True}
    assert daq.identify() == "Keithley,2450,," and daq.snapshot()["software_timed"] is True
    for bad, match in ((dict(rate_hz=500), "must be in"), (dict(ao_v=np.full((2, 2), 3.0)), "within the AO range"),
                       (dict(ai=["dmm/ai9"]), "'dmm/ai9' is not one of")):
        args = dict(ao_v=ao_v, rate_hz=50, ai=["dmm/ai0"]) | bad
        with pytest.raises(ValueError, match=match):
            daq.write_read(["smu/ao0", "smu/ao1"], args["ao_v"], args["ai"], rate_hz=args["rate_hz"])
    assert (ao0.sets, ao1.sets) == ([1.0], [0.2])            # refused requests sent nothing


def test_parameter_daq_that_falls_behind_times_out_and_bad_parameters_are_refused():
    daq, *_ = smu_bench(step_s=0.5)  # every clock read costs 0.5 s: far slower than 100 Hz
    with pytest.raises(PortTimeout, match="sample 1 of 3 came after"):
        daq.write_read(["smu/ao0"], np.zeros((1, 3)), ["dmm/ai0"], rate_hz=100, timeout_s=0.1)
    with pytest.raises(ValueError, match=r"ai\['x'\] = fake_i has unit 'A', expected 'V'"):
        ParameterDAQ({}, {"x": FakeParameter("i", "A")})
    with pytest.raises(ValueError, match="needs at least one AI parameter"):
        ParameterDAQ({"a": FakeParameter("v", "V")}, {})


def test_parameter_daq_behind_the_safety_layer_ramps_from_the_true_level():
    daq, ao0, ao1, *_ = smu_bench(ao0_v=1.5)
    config = SafetyConfig.from_settings(2.0, 10.0, ramp_rate_hz=20.0)  # 10 V/s at 20 Hz: 0.5 V per sample
    safe = SafeDAQ(daq, config, register=False)
    with pytest.raises(SafetyError):
        safe.set_dc({"smu/ao0": 2.5})
    assert ao0.sets == []
    safe.safe_state()
    assert ao0.value == 0.0 and len(ao0.sets) >= 3                 # ramped from 1.5 V, not stepped
    assert max(abs(np.diff([1.5] + ao0.sets))) <= 0.5 + 1e-12
    safe.close()
