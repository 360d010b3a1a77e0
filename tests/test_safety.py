"""The safety layer: limits before anything is sent, slew-limited ramps, safe state on every way out.

Every test drives a wrapper over a small in-test fake that records every sample
it was sent, so the assertions are about what reached the "chip".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labtrain.instruments import safety
from labtrain.instruments.ports import DAQ, Acquisition, LockIn, LockInReading, PortIOError, PortTimeout, PotArray, PotCalibration
from labtrain.instruments.safety import (ChannelLimits, SafeDAQ, SafeLockIn, SafePotArray, SafetyConfig, SafetyError,
                             SafeStateRegistry, rate_limit)

SLEW = 100.0  # V/s
RAMP_RATE = 1000.0  # Hz -> 0.1 V per ramp step
RATE = 1000.0  # acquisition rate in most tests -> 0.1 V per sample allowed
STEP = SLEW / RATE
TOL = 1 + 1e-9


# -------------------------------------------------------------------- fakes
class RecordingDAQ(DAQ):
    """Records every AO sample it is sent: ``history[ch]`` is a list of (volts, rate_hz or None for set_dc)."""

    ao_channels = ("ao0", "ao1", "ao2")
    ai_channels = ("ai0", "ai1", "ai2")
    do_lines = ("do0", "do1")
    max_rate_hz = 1e5

    def __init__(self, start_levels: dict | None = None) -> None:
        self.levels = {c: 0.0 for c in self.ao_channels}
        self.levels.update(start_levels or {})
        self.history: dict[str, list[tuple[float, float | None]]] = {c: [] for c in self.ao_channels}
        self.digital = {line: False for line in self.do_lines}
        self.calls: list[tuple] = []
        self.clock_s = 100.0
        self.fail: tuple[int, BaseException] | None = None  # (samples written before raising, exception)
        self.broken = False  # every call raises PortIOError
        self.closed = False

    def _check(self):
        if self.broken:
            raise PortIOError("device lost")

    def write_read(self, ao_channels, ao_v, ai_channels, rate_hz, timeout_s=10.0):
        self._check()
        ao_v = np.asarray(ao_v, float)
        n = ao_v.shape[1]
        self.calls.append(("write_read", tuple(ao_channels), n, rate_hz, timeout_s))
        held = dict(self.levels)
        stop = n if self.fail is None else min(self.fail[0], n)
        for i, c in enumerate(ao_channels):
            self.history[c].extend((float(v), rate_hz) for v in ao_v[i, :stop])
            if stop:
                self.levels[c] = float(ao_v[i, stop - 1])
        if self.fail is not None:
            exc, self.fail = self.fail[1], None
            raise exc
        rows = {c: ao_v[i] for i, c in enumerate(ao_channels)}
        ai = np.array([rows.get("ao" + ch[2:], np.full(n, held["ao" + ch[2:]])) for ch in ai_channels]).reshape(
            len(ai_channels), n)
        start = self.clock_s
        self.clock_s += n / rate_hz
        return Acquisition(ai, rate_hz, start, tuple(ai_channels))

    def set_dc(self, levels_v):
        self._check()
        self.calls.append(("set_dc", dict(levels_v)))
        for c, v in levels_v.items():
            self.history[c].append((float(v), None))
            self.levels[c] = float(v)

    def dc_levels_v(self):
        self._check()
        return dict(self.levels)

    def set_digital(self, states):
        self._check()
        self.calls.append(("set_digital", dict(states)))
        self.digital.update(states)

    def digital_states(self):
        return dict(self.digital)

    def identify(self):
        return "recording fake DAQ"

    def close(self):
        self.closed = True


def config(**kw) -> SafetyConfig:
    kw.setdefault("channels", {"ao2": {"max_abs_v": 0.5}})
    kw.setdefault("ramp_rate_hz", RAMP_RATE)
    return SafetyConfig.from_settings(max_abs_v=2.0, max_slew_v_per_s=SLEW, **kw)


@pytest.fixture
def fake():
    return RecordingDAQ()


@pytest.fixture
def daq(fake):
    wrapped = SafeDAQ(fake, config(), register=False)
    yield wrapped
    wrapped.close()


def assert_history_safe(fake: RecordingDAQ, limits=None):
    """Every sample within limits, every consecutive pair within the slew limit at its own rate."""
    limits = limits or {"ao0": 2.0, "ao1": 2.0, "ao2": 0.5}
    n_checked = 0
    for c, hist in fake.history.items():
        prev = 0.0  # every channel starts at 0 V in these tests
        for v, rate in hist:
            assert abs(v) <= limits[c], f"{c}: {v} V beyond the limit"
            allowed = SLEW / (rate if rate is not None else RAMP_RATE)
            assert abs(v - prev) <= allowed * TOL, f"{c}: jump {prev} -> {v} V faster than the slew limit"
            prev = v
            n_checked += 1
    return n_checked


def values(fake, ch):
    return np.array([v for v, _ in fake.history[ch]])


# ------------------------------------------------------------ limit checks
BAD_WAVEFORMS = [
    (("ao0",), [[0.0, 2.5]], "ao0: sample 1 is 2.5 V, above max_v = 2 V"),
    (("ao0",), [[0.0, -2.1]], "ao0: sample 1 is -2.1 V, below min_v = -2 V"),
    (("ao0", "ao2"), [[0.0, 0.0], [0.0, 0.6]], "ao2: sample 1 is 0.6 V, above max_v = 0.5 V"),
    (("ao0",), [[0.0, np.nan]], "ao0: sample 1 is nan, not a finite voltage"),
    (("ao0",), [[0.0, 0.5]], "ao0: step 0 -> 0.5 V between samples 0 and 1 at 1000 Hz is 500 V/s, above "
                             "max_slew_v_per_s = 100 V/s"),
    (("ao9",), [[0.0]], "'ao9' is not an AO channel"),
    (("ao0", "ao0"), [[0.0], [0.0]], "AO channel 'ao0' named twice"),
    (("ao0", "ao1"), [[0.0, 0.0]], "ao_v must have shape (2, n_samples >= 1)"),
    (("ao0",), np.zeros((1, 0)), "ao_v must have shape (1, n_samples >= 1)"),
]


@pytest.mark.parametrize("channels, wave, message", BAD_WAVEFORMS)
def test_bad_waveform_raises_one_line_and_sends_nothing(daq, fake, channels, wave, message):
    with pytest.raises(SafetyError) as info:
        daq.write_read(channels, np.array(wave, float), ("ai0",), RATE)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert fake.calls == [] and all(h == [] for h in fake.history.values())


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_hz": 2e5}, "rate_hz = 200000 Hz is above the DAQ's max_rate_hz"),
    ({"rate_hz": 0.0}, "rate_hz must be a finite number > 0"),
    ({"ai_channels": ("ai7",)}, "'ai7' is not an AI channel"),
    ({"timeout_s": -1.0}, "timeout_s must be > 0"),
])
def test_bad_acquisition_settings_send_nothing(daq, fake, kwargs, message):
    args = {"ao_channels": ("ao0",), "ao_v": np.zeros((1, 3)), "ai_channels": ("ai0",), "rate_hz": RATE}
    args.update(kwargs)
    with pytest.raises(SafetyError, match=message.replace("(", r"\(")):
        daq.write_read(**args)
    assert fake.calls == []


def test_slew_exactly_at_the_limit_passes(daq, fake):
    wave = np.linspace(0.0, 1.0, 11)[None, :]  # 0.1 V per sample at 1 kHz = exactly 100 V/s
    acq = daq.write_read(("ao0",), wave, ("ai0",), RATE)
    np.testing.assert_array_equal(acq.ai_v, wave)
    assert assert_history_safe(fake) > 11


@pytest.mark.parametrize("levels, message", [
    ({"ao0": 2.01}, "ao0: set_dc level 2.01 V is above max_v = 2 V"),
    ({"ao2": -0.75}, "ao2: set_dc level -0.75 V is below min_v = -0.5 V"),
    ({"ao0": float("inf")}, "ao0: set_dc level inf is not a finite voltage"),
    ({"ao0": 1.0, "aoX": 0.0}, "'aoX' is not an AO channel"),
])
def test_bad_dc_level_sends_nothing(daq, fake, levels, message):
    with pytest.raises(SafetyError, match=message):
        daq.set_dc(levels)
    assert fake.calls == [] and fake.levels == {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0}


@pytest.mark.parametrize("states, message", [
    ({"do7": True}, "'do7' is not a digital line"),
    ({"do0": 1}, "do0: state must be True or False"),
])
def test_bad_digital_request_sends_nothing(daq, fake, states, message):
    with pytest.raises(SafetyError, match=message):
        daq.set_digital(states)
    assert fake.calls == []


def test_digital_lines_can_be_restricted(fake):
    d = SafeDAQ(fake, config(allowed_do_lines=("do1",)), register=False)
    d.set_digital({"do1": True})
    with pytest.raises(SafetyError, match="'do0' is not in allowed_do_lines"):
        d.set_digital({"do0": True})
    assert fake.digital == {"do0": False, "do1": True}


# ------------------------------------------------------------------ ramps
def test_legal_waveform_ramps_from_held_level_and_back_to_safe(daq, fake):
    daq.set_dc({"ao0": 0.5, "ao1": -0.3})
    assert fake.levels["ao0"] == pytest.approx(0.5) and fake.levels["ao1"] == pytest.approx(-0.3)
    n_before = len(fake.history["ao0"])
    ao1_before = list(fake.history["ao1"])
    wave = np.array([np.linspace(1.0, 1.5, 6), np.full(6, 0.2)])
    daq.write_read(("ao0", "ao2"), wave, ("ai0",), RATE)

    sent = values(fake, "ao0")[n_before:]
    # ramp 0.5 -> 1.0 (4 samples strictly between), the waveform, ramp 1.5 -> 0 ending at exactly 0
    np.testing.assert_allclose(sent[:4], [0.6, 0.7, 0.8, 0.9])
    i = np.flatnonzero(sent == 1.0)[0]
    np.testing.assert_array_equal(sent[i:i + 6], wave[0])
    assert sent[-1] == 0.0 and len(sent) == 4 + 6 + 15
    assert values(fake, "ao2")[-1] == 0.0
    assert fake.history["ao1"] == ao1_before and fake.levels["ao1"] == pytest.approx(-0.3)  # not named: holds
    assert fake.levels["ao0"] == 0.0
    assert assert_history_safe(fake) > 40
    (name, chans, n, rate, timeout), = [c for c in fake.calls if c[0] == "write_read" and c[1] == ("ao0", "ao2")]
    assert n == 25 and rate == RATE and timeout == pytest.approx(10.0 + 19 / RATE)


def test_acquisition_has_exactly_the_requested_samples(daq, fake):
    fake.levels["ao1"] = 0.25  # held, not written: its echo stays constant
    rng = np.random.default_rng(0)
    wave = np.cumsum(rng.uniform(-STEP, STEP, (2, 50)), axis=1) * 0.9
    wave[1] = np.clip(wave[1], -0.5, 0.5)
    wave[:, 0] = [0.7, -0.4]
    wave[0, 1:] = np.clip(0.7 + np.cumsum(rng.uniform(-STEP, STEP, 49)) * 0.5, -2, 2)
    wave[1, 1:] = np.clip(-0.4 + np.cumsum(rng.uniform(-STEP, STEP, 49)) * 0.5, -0.5, 0.5)
    clock0 = fake.clock_s
    acq = daq.write_read(("ao0", "ao2"), wave, ("ai2", "ai1", "ai0"), RATE)
    assert acq.ai_v.shape == (3, 50) and acq.n_samples == 50
    np.testing.assert_array_equal(acq.ai_v[0], wave[1])
    np.testing.assert_array_equal(acq.ai_v[2], wave[0])
    np.testing.assert_array_equal(acq.ai_v[1], np.full(50, 0.25))
    assert acq.channels == ("ai2", "ai1", "ai0") and acq.rate_hz == RATE
    assert acq.start_time_s == pytest.approx(clock0 + 6 / RATE)  # 0 -> 0.7 V: 6 ramp samples before
    assert fake.calls[-1][2] > 50  # the device got the ramps as well


def test_waveform_already_at_safe_level_gets_no_ramps(daq, fake):
    wave = np.array([[0.0, 0.1, 0.1, 0.0]])
    acq = daq.write_read(("ao0",), wave, ("ai0",), RATE)
    assert fake.calls[-1][2] == 4
    np.testing.assert_array_equal(acq.ai_v, wave)


@pytest.mark.parametrize("mode, expected_call", [("clocked", "write_read"), ("stepped", "set_dc")])
def test_set_dc_ramps(fake, mode, expected_call):
    d = SafeDAQ(fake, config(), ramp_mode=mode, register=False)
    d.set_dc({"ao0": 1.0, "ao2": -0.45})
    assert fake.levels["ao0"] == 1.0 and fake.levels["ao2"] == -0.45
    np.testing.assert_allclose(values(fake, "ao0"), np.arange(1, 11) / 10)
    assert assert_history_safe(fake) == 20
    assert {c[0] for c in fake.calls} == {expected_call}
    if mode == "clocked":
        (_, chans, n, rate, _), = fake.calls
        assert chans == ("ao0", "ao2") and n == 10 and rate == RAMP_RATE
    else:
        assert len(fake.calls) == 10


def test_set_dc_within_one_step_is_a_single_write(daq, fake):
    daq.set_dc({"ao0": 0.05})
    daq.set_dc({"ao0": 0.05})  # already there: nothing to do
    assert fake.calls == [("set_dc", {"ao0": 0.05})]


def test_safe_state_ramps_to_zero_and_opens_lines(daq, fake):
    daq.set_dc({"ao0": -1.2, "ao1": 1.7, "ao2": 0.5})
    daq.set_digital({"do0": True, "do1": True})
    daq.safe_state()
    assert fake.levels == {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0}
    assert fake.digital == {"do0": False, "do1": False}
    assert len(values(fake, "ao1")) == 17 + 17 + 1  # up, down, a final write of the safe level
    assert assert_history_safe(fake) > 60


def test_safe_level_can_be_nonzero(fake):
    d = SafeDAQ(fake, config(channels={"ao1": {"safe_level_v": 0.3}}), register=False)
    d.write_read(("ao1",), np.array([[0.4, 0.5]]), ("ai1",), RATE)
    assert fake.levels["ao1"] == pytest.approx(0.3)
    d.safe_state()
    assert fake.levels["ao1"] == pytest.approx(0.3) and fake.levels["ao0"] == 0.0


# ------------------------------------------------------------- failures
def test_instrument_fault_mid_acquisition_leaves_outputs_safe(daq, fake):
    daq.set_digital({"do0": True})
    fake.fail = (8, PortTimeout("no trigger"))
    wave = np.full((2, 20), 1.0)
    wave[1] = 0.4
    with pytest.raises(PortTimeout, match="no trigger"):
        daq.write_read(("ao0", "ao2"), wave, ("ai0",), RATE)
    assert values(fake, "ao0").max() == 0.8  # the fault struck on the ramp up
    assert fake.levels == {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0}
    assert fake.digital["do0"] is True  # a retried acquisition needs the switches it set up
    assert assert_history_safe(fake) > 10


def test_fault_with_a_stale_driver_level_still_ends_at_safe_level(daq, fake):
    """A driver that breaks the contract (after an aborted generation it reports the waveform's last sample, as
    the NI driver did before it asked the device how far it got): the final write still ends at the safe level."""
    real_write_read = fake.write_read

    def aborted(ao_channels, ao_v, *args, **kw):
        fake.fail = (12, PortIOError("generation aborted"))
        try:
            return real_write_read(ao_channels, ao_v, *args, **kw)
        finally:
            reported.update({c: float(ao_v[i, -1]) for i, c in enumerate(ao_channels)})

    reported: dict[str, float] = {}
    fake.write_read = aborted
    fake.dc_levels_v = lambda: {**fake.levels, **reported}
    with pytest.raises(PortIOError):
        daq.write_read(("ao0",), np.full((1, 20), 1.0), ("ai0",), RATE)
    assert fake.levels["ao0"] == 0.0  # the device, not just the driver's bookkeeping
    assert fake.calls[-1] == ("set_dc", {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0})


def test_recovery_ramps_from_the_true_level_even_when_the_ramp_itself_is_cut_off(daq, fake):
    fake.fail = (25, PortIOError("generation aborted"))              # inside the 1.5 V plateau
    real_write_read = fake.write_read
    cut = []

    def cut_recovery(ao_channels, ao_v, *args, **kw):
        if fake.fail is None and not cut:                            # the clocked recovery ramp: cut it too
            cut.append(ao_v.shape[1])
            fake.fail = (4, PortTimeout("ramp aborted"))
        return real_write_read(ao_channels, ao_v, *args, **kw)

    fake.write_read = cut_recovery
    with pytest.raises(PortIOError, match="generation aborted"):
        daq.write_read(("ao0",), np.full((1, 40), 1.5), ("ai0",), RATE)
    assert cut == [15] and fake.levels["ao0"] == 0.0                # 1.5 V down in 0.1 V steps
    v = values(fake, "ao0")
    assert v[24] == 1.5 and np.allclose(v[25:29], [1.4, 1.3, 1.2, 1.1])  # clocked ramp, cut after 4 samples
    assert np.allclose(v[29:40], np.arange(1.0, -0.05, -0.1))           # the stepped ramp goes on from 1.1 V
    assert assert_history_safe(fake) == len(v) + 2                  # + the final write of ao1 and ao2


@pytest.mark.parametrize("levels, where, what, message", [
    ([[0.5, np.nan]], "measure", ["input 3"], "measure: input 3 on ao0: example 1 is nan, not a finite voltage "
                                              "(allowed range [-2, 2] V); nothing was sent"),
    ([[0.1], [0.7]], "", None, "ao2: example 0 is 0.7 V, above max_v = 0.5 V (allowed range [-0.5, 0.5] V)"),
    ([[-2.5]], "set", ["output 0"], "set: output 0 on ao0: example 0 is -2.5 V, below min_v = -2 V"),
])
def test_check_ao_values_names_what_where_and_the_allowed_range(daq, fake, levels, where, what, message):
    channels = ("ao0",) if len(levels) == 1 else ("ao0", "ao2")
    with pytest.raises(SafetyError) as info:
        daq.check_ao_values(channels, np.array(levels), what=what, where=where, columns="example")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert fake.calls == []
    ok = daq.check_ao_values(("ao0", "ao2"), [0.1, -0.4])
    assert ok.shape == (2, 1) and ok.dtype == float
    with pytest.raises(SafetyError, match=r"ao0: during ramp is 3 V, above max_v = 2 V"):
        daq.check_ao_values(("ao0",), [[0.0, 3.0]], columns=["before", "during ramp"])


def test_bare_port_defaults_of_the_contracts(fake):
    """What a port that declares nothing more answers: no slew limit, its converter range, no twin clock."""
    assert np.all(np.isinf(fake.max_step_v(("ao0", "ao1"), 1e3))) and fake.max_step_v((), 1e3).shape == (0,)
    with pytest.raises(ValueError, match=r"x on ao1: sample 0 is 11 V, outside the AO range \[-10, 10\] V; nothing"):
        fake.check_ao_values(("ao1",), [[11.0]], what=["x"])
    fake.reseed(3)  # nothing to reseed on an instrument: no effect, no error
    start = time.monotonic()
    fake.sleep(0.01)
    assert time.monotonic() - start >= 0.01
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        fake.sleep(-1.0)
    assert LockIn.min_amplitude_v == 0.0 and LockIn.max_amplitude_v == np.inf


def test_safe_daq_passes_reseed_and_sleep_to_the_wrapped_port():
    twin_mod = pytest.importorskip("labtrain.simulators.daq_twin")
    twin = twin_mod.SimulatedDAQ(twin_mod.LinearCircuit.loopback({"ai0": "ao0"}), noise_white_v=1e-3)
    d = SafeDAQ(twin, config(channels={}), register=False)
    assert d.wrapped is twin and d.daq is twin
    d.sleep(2.5)
    assert twin.simulated_time_s == 2.5  # the twin's clock, not the wall clock
    d.reseed(4)
    a = d.write_read(("ao0",), np.zeros((1, 5)), ("ai0",), RATE).ai_v
    d.reseed(4)
    np.testing.assert_array_equal(a, d.write_read(("ao0",), np.zeros((1, 5)), ("ai0",), RATE).ai_v)
    d.close()


def test_keyboard_interrupt_inside_a_call_reaches_the_safe_state(daq, fake):
    daq.set_dc({"ao1": 1.0})
    daq.set_digital({"do1": True})
    fake.fail = (15, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        daq.write_read(("ao0",), np.full((1, 30), 1.5), ("ai0",), RATE)
    assert fake.levels == {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0}
    assert fake.digital == {"do0": False, "do1": False}
    assert assert_history_safe(fake) > 20


def test_clocked_safe_ramp_falls_back_to_steps(daq, fake):
    daq.set_dc({"ao0": 0.5})
    real = fake.write_read

    def broken(*args, **kw):
        raise PortIOError("AO task failed")

    fake.write_read = broken
    daq.safe_state()
    fake.write_read = real
    assert fake.levels["ao0"] == 0.0
    assert [c[0] for c in fake.calls[-7:]] == ["set_dc"] * 6 + ["set_digital"]  # 5 steps, then the confirmation
    assert fake.calls[-2] == ("set_dc", {"ao0": 0.0, "ao1": 0.0, "ao2": 0.0})
    assert assert_history_safe(fake) == 10 + 3


def test_failing_safe_state_does_not_mask_the_original_error(daq, fake, caplog):
    original = PortTimeout("acquisition timed out")

    def fail_then_break(*args, **kw):
        fake.broken = True
        raise original

    fake.write_read = fail_then_break
    with pytest.raises(PortTimeout) as info:
        daq.write_read(("ao0",), np.zeros((1, 3)), ("ai0",), RATE)
    assert info.value is original
    assert any("device lost" in note for note in getattr(info.value, "__notes__", []))
    assert "safe state after PortTimeout failed" in caplog.text
    fake.broken = False


def test_context_manager_exit_safe_state_and_close(fake):
    with pytest.raises(RuntimeError, match="user error"):
        with SafeDAQ(fake, config(), register=False) as d:
            d.set_dc({"ao0": 0.3})
            raise RuntimeError("user error")
    assert fake.levels["ao0"] == 0.0 and fake.closed
    with pytest.raises(SafetyError, match="is closed"):
        d.set_dc({"ao0": 0.1})
    assert fake.levels["ao0"] == 0.0


def test_close_error_does_not_mask_the_error_in_flight(fake):
    with pytest.raises(ValueError, match="in flight"):
        with SafeDAQ(fake, config(), register=False) as d:
            d.set_dc({"ao0": 0.3})
            fake.broken = True
            raise ValueError("in flight")
    assert not fake.closed  # could not be made safe: stays open for a later try
    fake.broken = False
    d.close()
    assert fake.closed and fake.levels["ao0"] == 0.0


# ----------------------------------------------------------------- config
def test_config_from_settings_and_snapshot(fake):
    cfg = SafetyConfig.from_settings(max_abs_v=5.0, max_slew_v_per_s=50.0, ramp_rate_hz=500.0,
                                     channels={"ao1": {"min_v": -1.0, "max_v": 3.0, "max_slew_v_per_s": 10.0},
                                               "ao2": ChannelLimits(0.0, 0.2, 1.0)})
    fake.ao_range_v = (-4.0, 4.0)
    d = SafeDAQ(fake, cfg, register=False)
    snap = d.snapshot()
    assert snap["identity"] == "recording fake DAQ"
    ch = snap["safety"]["channels"]
    assert ch["ao0"] == {"min_v": -4.0, "max_v": 4.0, "max_slew_v_per_s": 50.0, "safe_level_v": 0.0}  # AO range
    assert ch["ao1"] == {"min_v": -1.0, "max_v": 3.0, "max_slew_v_per_s": 10.0, "safe_level_v": 0.0}
    assert ch["ao2"]["max_v"] == 0.2 and snap["safety"]["ramp_rate_hz"] == 500.0
    assert snap["safety"]["ramp_mode"] == "clocked"


@pytest.mark.parametrize("build, message", [
    (lambda: SafetyConfig.from_settings(max_abs_v=1.0, max_slew_v_per_s=0.0), "max_slew_v_per_s must be > 0"),
    (lambda: SafetyConfig.from_settings(max_abs_v=-1.0, max_slew_v_per_s=1.0), "max_abs_v must be a finite number"),
    (lambda: SafetyConfig.from_settings(max_abs_v=1.0, max_slew_v_per_s=1.0, channels={"ao0": {"max_ab_v": 1}}),
     "ao0: unknown limit 'max_ab_v'"),
    (lambda: SafetyConfig.from_settings(max_abs_v=1.0, max_slew_v_per_s=1.0, channels={"ao0": {"safe_level_v": 2}}),
     r"ao0: safe_level_v = 2 V is outside \[-1, 1\] V"),
    (lambda: SafetyConfig.from_settings(max_abs_v=1.0, max_slew_v_per_s=1.0, ramp_rate_hz=0),
     "ramp_rate_hz must be a finite number > 0"),
    (lambda: SafeDAQ(RecordingDAQ(), config(channels={"Dev1/ao0": {"max_abs_v": 1}}), register=False),
     "limits given for 'Dev1/ao0', which is not an AO channel"),
    (lambda: SafeDAQ(RecordingDAQ(), config(ramp_rate_hz=1e6), register=False), "ramp_rate_hz = 1e\\+06 Hz is above"),
])
def test_bad_config_one_line_error(build, message):
    with pytest.raises(SafetyError, match=message):
        build()


def test_huge_ramp_is_refused_before_anything_is_sent(fake):
    d = SafeDAQ(fake, SafetyConfig.from_settings(max_abs_v=2.0, max_slew_v_per_s=1e-6), register=False)
    with pytest.raises(SafetyError, match="would need"):
        d.set_dc({"ao0": 2.0})
    assert fake.calls == []


def test_rate_limit_makes_plateaus_pass_the_slew_check(daq, fake):
    plateaus = np.repeat(np.array([[0.0, 1.0, -1.0, 0.5], [0.0, 0.4, -0.4, 0.0]]), 25, axis=1)
    with pytest.raises(SafetyError):
        daq.check_waveform(("ao0", "ao2"), plateaus, RATE)
    shaped = rate_limit(plateaus, STEP)
    np.testing.assert_array_equal(daq.shape_waveform(("ao0", "ao2"), plateaus, RATE), shaped)
    np.testing.assert_allclose(daq.max_step_v(("ao0", "ao2"), 500.0), [0.2, 0.2])
    daq.check_waveform(("ao0", "ao2"), shaped, RATE)  # passes
    np.testing.assert_allclose(shaped[:, 24::25], plateaus[:, 24::25])  # every plateau reached by its end
    assert np.abs(np.diff(shaped, axis=1)).max() <= STEP * TOL
    daq.write_read(("ao0", "ao2"), shaped, ("ai0",), RATE)
    assert assert_history_safe(fake) > 200


# --------------------------------------------------------------- registry
class CountingPort:
    def __init__(self, name, log, error=None, priority=50):
        self.name, self.log, self.error, self.safe_priority = name, log, error, priority

    def safe_state(self):
        self.log.append(self.name)
        if self.error is not None:
            raise self.error


def test_safe_all_runs_every_port_once_even_if_some_raise():
    reg = SafeStateRegistry()
    reg.install_sigterm_handler = lambda: False  # keep pytest's own SIGTERM handling
    calls: list[str] = []
    ports = [CountingPort("pots", calls, RuntimeError("bus stuck"), 20),
             CountingPort("daq", calls, None, 0),
             CountingPort("lockin", calls, KeyboardInterrupt(), 10),
             CountingPort("other", calls)]
    for p in ports + [ports[1]]:  # registering twice keeps one entry
        reg.register(p)
    failures = reg.safe_all()
    assert calls == ["daq", "lockin", "pots", "other"]  # outputs first, then lock-in, then pots
    assert [(p.name, type(e).__name__) for p, e in failures] == [("lockin", "KeyboardInterrupt"),
                                                                  ("pots", "RuntimeError")]
    calls.clear()
    reg.at_exit()
    reg.at_exit()  # e.g. SIGTERM's exit and then atexit: still once
    assert sorted(calls) == ["daq", "lockin", "other", "pots"]
    reg.unregister(ports[0])
    assert ports[0] not in reg.ports() and len(reg.ports()) == 3


def test_safe_all_drops_the_lockin_sine_before_the_dc_levels_move(fake):
    order = []
    li, pots = RecordingLockIn(), RecordingPots()
    d = SafeDAQ(fake, config(), register=False)
    safe_li = SafeLockIn(li, max_amplitude_v=1.0, register=False)
    safe_pots = SafePotArray(pots, register=False)
    reg = SafeStateRegistry()
    for port, name in ((safe_pots, "pots"), (d, "daq"), (safe_li, "lock-in")):
        reg.register(port)
        real = port.safe_state
        port.safe_state = (lambda real=real, name=name: (order.append(name), real()))
    assert reg.safe_all() == [] and order == ["lock-in", "daq", "pots"]
    with pytest.raises(TypeError, match="has no safe_state"):
        reg.register(object())


def test_safe_ports_register_and_unregister(monkeypatch, fake):
    reg = SafeStateRegistry()
    monkeypatch.setattr(reg, "install_sigterm_handler", lambda: False)
    monkeypatch.setattr(safety, "_REGISTRY", reg)
    d = SafeDAQ(fake, config())
    pots = SafePotArray(RecordingPots())
    assert safety.registered() == [d, pots]
    d.set_dc({"ao0": 0.4})
    assert safety.safe_all() == []
    assert fake.levels["ao0"] == 0.0 and pots.get_taps().tolist() == [255] * 4
    d.close()
    pots.close()
    assert safety.registered() == []


SCRIPT = """
import sys, time
import numpy as np
from labtrain.instruments.ports import DAQ, Acquisition
from labtrain.instruments.safety import SafeDAQ, SafetyConfig

class FileDAQ(DAQ):
    ao_channels = ("ao0", "ao1")
    ai_channels = ("ai0",)
    do_lines = ("do0",)

    def __init__(self, path):
        self.f = open(path, "w")
        self.levels = {"ao0": 0.0, "ao1": 0.0}
        self.dig = {"do0": False}

    def rec(self, name, value):
        self.f.write(f"{name} {value!r}\\n")
        self.f.flush()

    def write_read(self, ao_channels, ao_v, ai_channels, rate_hz, timeout_s=10.0):
        for k in range(ao_v.shape[1]):
            for i, c in enumerate(ao_channels):
                self.rec(c, float(ao_v[i, k]))
                self.levels[c] = float(ao_v[i, k])
        return Acquisition(np.zeros((len(ai_channels), ao_v.shape[1])), rate_hz, 0.0, tuple(ai_channels))

    def set_dc(self, levels_v):
        for c, v in levels_v.items():
            self.rec(c, float(v))
            self.levels[c] = float(v)

    def dc_levels_v(self):
        return dict(self.levels)

    def set_digital(self, states):
        for c, v in states.items():
            self.rec(c, bool(v))
            self.dig[c] = bool(v)

    def digital_states(self):
        return dict(self.dig)

    def identify(self):
        return "file DAQ"

daq = SafeDAQ(FileDAQ(sys.argv[1]), SafetyConfig.from_settings(max_abs_v=2.0, max_slew_v_per_s=100.0,
                                                              ramp_rate_hz=1000.0))
daq.set_dc({"ao0": 1.5, "ao1": -1.0})
daq.set_digital({"do0": True})
print("READY", flush=True)
mode = sys.argv[2]
if mode == "exception":
    raise RuntimeError("uncaught")
if mode == "interrupt":
    raise KeyboardInterrupt
if mode == "sigterm":
    while True:
        time.sleep(0.05)
"""


def test_process_exit_ramps_back_to_zero(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text(SCRIPT)
    modes = ["normal", "exception", "interrupt", "sigterm"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = {m: subprocess.Popen([sys.executable, str(script), str(tmp_path / f"{m}.log"), m],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for m in modes}
    p = procs["sigterm"]
    assert p.stdout.readline().strip() == "READY"
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    results = {m: proc.communicate(timeout=30) for m, proc in procs.items()}
    rcs = {m: proc.returncode for m, proc in procs.items()}
    assert rcs["normal"] == 0, results["normal"][1]
    assert rcs["exception"] == 1 and "uncaught" in results["exception"][1]
    assert rcs["interrupt"] != 0 and "KeyboardInterrupt" in results["interrupt"][1]
    assert rcs["sigterm"] == 128 + signal.SIGTERM, results["sigterm"][1]
    for m in modes:
        lines = [ln.split() for ln in (tmp_path / f"{m}.log").read_text().splitlines()]
        for ch, peak in (("ao0", 1.5), ("ao1", -1.0)):
            v = np.array([float(x) for name, x in lines if name == ch])
            top = int(np.argmax(np.abs(v)))
            assert v[top] == peak, m
            assert v[-1] == 0.0, f"{m}: {ch} ends at {v[-1]} V"
            assert len(v) - top - 1 >= 10, f"{m}: {ch} did not ramp down"  # 0.1 V steps
            assert np.abs(np.diff(np.concatenate([[0.0], v]))).max() <= 0.1 * TOL, m
        assert [x for name, x in lines if name == "do0"][-1] == "False", m


# ------------------------------------------------------------------- pots
class RecordingPots(PotArray):
    n_channels = 4
    n_taps = 256

    def __init__(self):
        self.calibration = PotCalibration.nominal(4, 256, 10_000.0)
        self.taps = np.full(4, 128, np.int64)
        self.writes: list[list[int]] = []
        self.fail: BaseException | None = None

    def set_taps(self, taps):
        self.writes.append(np.asarray(taps).tolist())
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        self.taps = np.asarray(taps, np.int64).copy()
        return self.taps.copy()

    def get_taps(self):
        return self.taps.copy()

    def identify(self):
        return "recording pots"


@pytest.mark.parametrize("taps, message", [
    ([0, 1, 2, 256], "pot channel 3: tap 256 is outside the allowed taps [0, 255]"),
    ([0, -1, 2, 3], "pot channel 1: tap -1 is outside"),
    ([0, 1.5, 2, 3], "pot channel 1: taps value 1.5 is not an integer; nothing was written"),
    ([0, 1, 2], "taps must have shape (4,)"),
    ([True, False, True, True], "taps must be integers"),
])
def test_bad_taps_raise_before_anything_is_written(taps, message):
    pots = RecordingPots()
    safe = SafePotArray(pots, register=False)
    with pytest.raises(SafetyError) as info:
        safe.set_taps(taps)
    assert message in str(info.value)
    assert pots.writes == []


def test_pot_ranges_step_limit_and_safe_state():
    pots = RecordingPots()
    cfg = config(tap_ranges=(10, 200), max_tap_step=50)
    safe = SafePotArray(pots, cfg, register=False)
    np.testing.assert_array_equal(safe.set_taps([100, 150, 170, 128]), [100, 150, 170, 128])
    with pytest.raises(SafetyError, match=r"pot channel 0: tap 5 is outside the allowed taps \[10, 200\]"):
        safe.set_taps([5, 150, 170, 128])
    with pytest.raises(SafetyError, match="pot channel 1: move from tap 150 to 20 is 130 taps, above max_tap_step"):
        safe.set_taps([100, 20, 170, 128])
    assert len(pots.writes) == 1
    safe.safe_state()  # exempt from the step limit
    assert pots.taps.tolist() == [200] * 4  # highest allowed resistance
    assert safe.snapshot()["safety"] == {"safe_taps": [200] * 4, "tap_ranges": [[10, 200]] * 4, "max_tap_step": 50}


def test_pot_safe_taps_default_and_configured():
    pots = RecordingPots()
    SafePotArray(pots, register=False).safe_state()
    assert pots.taps.tolist() == [255] * 4
    SafePotArray(pots, safe_taps=[0, 10, 20, 30], register=False).safe_state()
    assert pots.taps.tolist() == [0, 10, 20, 30]
    with pytest.raises(SafetyError, match="pot channel 2: safe tap 300 is outside"):
        SafePotArray(pots, safe_taps=[0, 0, 300, 0], register=False)


def test_interrupt_while_setting_taps_reaches_safe_taps():
    pots = RecordingPots()
    safe = SafePotArray(pots, safe_taps=7, register=False)
    pots.fail = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        safe.set_taps([1, 2, 3, 4])
    assert pots.taps.tolist() == [7] * 4
    pots.fail = PortIOError("nak")
    with pytest.raises(PortIOError):
        safe.set_taps([1, 2, 3, 4])
    assert pots.taps.tolist() == [7] * 4 and pots.writes[-1] == [1, 2, 3, 4]  # a fault: the chip retries


# ----------------------------------------------------------------- lock-in
class RecordingLockIn(LockIn):
    min_amplitude_v = 0.004

    def __init__(self):
        self._f, self._a, self._tc, self._s = 1000.0, 0.5, 0.1, 1.0
        self.sets: list[tuple[str, float]] = []

    frequency_hz = property(lambda s: s._f, lambda s, v: (s.sets.append(("f", v)), setattr(s, "_f", v)))
    amplitude_v = property(lambda s: s._a, lambda s, v: (s.sets.append(("a", v)), setattr(s, "_a", v)))
    time_constant_s = property(lambda s: s._tc, lambda s, v: setattr(s, "_tc", v))
    sensitivity_v = property(lambda s: s._s, lambda s, v: setattr(s, "_s", v))

    def read_xy(self):
        return LockInReading(0.1, 0.2, 1.0)

    def identify(self):
        return "recording lock-in"


def test_lockin_limits_and_safe_state():
    li = RecordingLockIn()
    safe = SafeLockIn(li, max_amplitude_v=1.0, frequency_range_hz=(10.0, 5e4), register=False)
    safe.amplitude_v = 0.8
    safe.frequency_hz = 137.0
    with pytest.raises(SafetyError, match="amplitude_v = 1.5 V is above max_amplitude_v = 1 V"):
        safe.amplitude_v = 1.5
    with pytest.raises(SafetyError, match=r"frequency_hz = 1e\+06 Hz is outside \[10, 50000\] Hz"):
        safe.frequency_hz = 1e6
    assert li.sets == [("a", 0.8), ("f", 137.0)]
    assert safe.read_xy().r_v == pytest.approx(np.hypot(0.1, 0.2))
    safe.safe_state()
    assert li.amplitude_v == 0.004  # the instrument's minimum
    assert safe.snapshot()["safety"]["safe_amplitude_v"] == 0.004
    with pytest.raises(SafetyError, match="safe_amplitude_v = 2 V is outside"):
        SafeLockIn(li, max_amplitude_v=1.0, safe_amplitude_v=2.0, register=False)


def test_lockin_safe_amplitude_from_the_declared_minimum():
    class SRSLike(RecordingLockIn):  # like the SRS drivers: the minimum is a property over the amplitude range
        amplitude_range_v = (0.002, 5.0)
        min_amplitude_v = property(lambda self: self.amplitude_range_v[0])

    class Bare(RecordingLockIn):
        min_amplitude_v = LockIn.min_amplitude_v  # declares nothing: the port contract's 0 V

    srs = SafeLockIn(SRSLike(), max_amplitude_v=1.0, register=False)
    assert srs.safe_amplitude_v == 0.002 and srs.min_amplitude_v == 0.002
    assert SafeLockIn(SRSLike(), max_amplitude_v=1.0, safe_amplitude_v=0.01, register=False).safe_amplitude_v == 0.01
    assert SafeLockIn(Bare(), max_amplitude_v=1.0, register=False).safe_amplitude_v == 0.0


# ------------------------------------------------------------ the twins
def test_with_the_daq_twin_no_violation_reaches_the_chip():
    twin_mod = pytest.importorskip("labtrain.simulators.daq_twin")
    twin = twin_mod.SimulatedDAQ(twin_mod.LinearCircuit.loopback({"ai0": "ao0", "ai1": "ao1"}), do_lines=("do0",),
                                 adc_bits=None, dac_bits=None)
    cfg = SafetyConfig.from_settings(max_abs_v=2.0, max_slew_v_per_s=SLEW, ramp_rate_hz=RAMP_RATE,
                                     channels={"ao1": {"max_abs_v": 1.0}})
    d = SafeDAQ(twin, cfg, register=False)
    d.set_dc({"ao1": -0.8})
    plateaus = np.repeat(np.array([[0.5, 1.5, -1.0, 2.0]]), 30, axis=1)
    wave = rate_limit(plateaus, STEP)
    acq = d.write_read(("ao0",), wave, ("ai0", "ai1"), RATE)
    np.testing.assert_allclose(acq.ai_v[0], wave[0])  # loopback: exactly the requested samples, no ramps
    np.testing.assert_allclose(acq.ai_v[1], -0.8)
    n_events = len(twin.history)
    with pytest.raises(SafetyError):
        d.write_read(("ao0",), np.array([[0.0, 2.5]]), ("ai0",), RATE)
    with pytest.raises(SafetyError):
        d.write_read(("ao0",), plateaus, ("ai0",), RATE)  # the raw plateaus jump too fast
    with pytest.raises(SafetyError):
        d.set_dc({"ao1": 1.2})
    assert len(twin.history) == n_events  # refused requests never reached the twin
    twin.inject_faults(1, "io", ("write_read",), when="after")
    with pytest.raises(PortIOError):
        d.set_dc({"ao0": 1.0})  # the clocked ramp fails after it went out: back to the safe level
    assert twin.dc_levels_v()["ao0"] == 0.0
    d.set_dc({"ao0": -1.5})
    d.set_digital({"do0": True})
    d.safe_state()
    assert twin.dc_levels_v() == {"ao0": 0.0, "ao1": 0.0} and twin.digital_states() == {"do0": False}
    for ch, limit in (("ao0", 2.0), ("ao1", 1.0)):
        summary = twin.ao_summary()[ch]
        assert -limit <= summary["min_v"] and summary["max_v"] <= limit
        assert summary["max_slew_v_per_s"] <= SLEW * TOL
        assert summary["max_step_v"] <= STEP * TOL
        _, v = twin.ao_record(ch)
        assert np.abs(np.diff(v)).max() <= STEP * TOL and v[-1] == 0.0
    assert max(abs(v) for v in twin.ao_record("ao0")[1]) == 2.0


def test_with_the_pot_and_lockin_twins():
    pot_mod = pytest.importorskip("labtrain.simulators.pot_twin")
    lockin_mod = pytest.importorskip("labtrain.simulators.lockin_twin")
    pots = pot_mod.SimulatedPotArray(3, n_taps=128)
    safe = SafePotArray(pots, register=False)
    safe.set_taps([0, 64, 127])
    with pytest.raises(SafetyError, match="pot channel 1: tap 128 is outside"):
        safe.set_taps([0, 128, 127])
    assert len(pots.history) == 1
    safe.safe_state()
    assert pots.get_taps().tolist() == [127] * 3
    li = lockin_mod.SimulatedLockIn()
    safe_li = SafeLockIn(li, max_amplitude_v=0.5, register=False)
    with pytest.raises(SafetyError):
        safe_li.amplitude_v = 1.0
    safe_li.amplitude_v = 0.3
    safe_li.safe_state()
    assert li.amplitude_v == pytest.approx(0.004)
