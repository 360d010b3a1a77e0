"""Twin of a lock-in amplifier (SR830-like): demodulates a simulated signal.

The twin does what the instrument does, numerically: at :meth:`~SimulatedLockIn.read_xy`
it synthesises the input signal on an internal sample clock over the last
``settle_time_constants`` time constants, multiplies it by ``sqrt(2) sin`` and
``sqrt(2) cos`` of the reference, and low-pass filters both products with a
cascade of ``filter_slope_db / 6`` identical first-order sections of time
constant ``time_constant_s`` (the SR830's 6/12/18/24 dB/oct filters; 24 is its
default here).  The filter starts in the steady state of the window's mean
product, so a window of a few time constants settles.  X and Y are the last
filter outputs: RMS values, as on the SR830 -- an input ``A sin(2 pi f t + phi)``
reads ``X = A/sqrt(2) cos(phi)``, ``Y = A/sqrt(2) sin(phi)`` (phase relative to
the reference sine out, ``sqrt(2) * amplitude_v * sin(2 pi f t)``).

Where the signal comes from:

* ``signal``: a callable ``t_s -> volts`` (times on the twin clock);
* ``transfer``: the chip is a linear system driven by the sine out; the signal
  is ``|H| sqrt(2) amplitude_v sin(2 pi f t + arg H)`` with ``H`` a complex
  number or a callable of the frequency;
* :meth:`~SimulatedLockIn.attach`: a :class:`~labtrain.simulators.daq_twin.SimulatedDAQ`
  AI channel, with the sine out summed onto one of its AO channels (the
  circuit, including its RC response, does the rest).

Every sine-out amplitude the twin takes is recorded in
:attr:`~SimulatedLockIn.amplitude_record` (twin time and the process-wide
event order of :mod:`labtrain.simulators._record`), so a test can replay what
the sine out put on the chip next to the DAQ twin's record.

Input noise (``noise_v_per_rthz``, white) is added to every signal source.
A reading whose R exceeds the sensitivity sets :attr:`~SimulatedLockIn.overloaded`
(also in the snapshot); the value itself is returned unclipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.signal import sosfilt, sosfilt_zi

from labtrain.instruments.ports import LockIn, LockInReading
from labtrain.simulators._faults import FaultInjector
from labtrain.simulators._record import next_event

__all__ = ["SimulatedLockIn", "AmplitudeChange", "SR830_TIME_CONSTANTS_S", "SR830_SENSITIVITIES_V",
           "FILTER_SLOPES_DB"]

#: SR830 time constants: 10 us .. 30 ks in 1-3-10 steps
SR830_TIME_CONSTANTS_S = tuple(float(f"{m}e{e}") for e in range(-5, 5) for m in (1, 3))
#: SR830 sensitivities: 2 nV .. 1 V in 2-5-10 steps
SR830_SENSITIVITIES_V = tuple(float(f"{m}e{e}") for e in range(-9, 0) for m in (2, 5, 10))
FILTER_SLOPES_DB = (6, 12, 18, 24)


@dataclass(frozen=True, slots=True)
class AmplitudeChange:
    """The sine out took ``amplitude_v`` (V RMS) at twin time ``t_s``; ``seq`` orders it among every twin's records."""

    seq: int
    t_s: float
    amplitude_v: float


class SimulatedLockIn(LockIn):
    """Twin of a lock-in amplifier with internal reference and one demodulator.

    Parameters
    ----------
    signal : callable, optional
        ``signal(t_s) -> volts``, vectorised over an array of twin times.
    transfer : complex or callable, optional
        Chip response ``H`` (V/V) to the sine out, or ``H(frequency_hz)``.
        Exactly one of ``signal``, ``transfer`` or a later :meth:`attach` gives the input.
    frequency_hz, amplitude_v, time_constant_s, sensitivity_v : float
        Initial settings (``amplitude_v`` is the sine-out RMS).
    filter_slope_db : int
        6, 12, 18 or 24 dB/octave.
    noise_v_per_rthz : float
        White input noise density (V/sqrt(Hz)).
    strict : bool
        Accept only the SR830's discrete time constants and sensitivities.
    min_amplitude_v, max_amplitude_v : float
        Sine-out amplitude range accepted (SR830: 0.004 .. 5 V RMS).
    samples_per_period : int
        Internal sample clock in samples per reference period (>= 8).
    settle_time_constants : float
        Length of the synthesised window in time constants.
    max_window_samples : int
        Cap on the synthesised window (long time constants at high frequency
        use a shorter window; the steady-state start keeps the reading unbiased).
    seed : int
        Seed of the input noise.
    history_max_events : int
        Stop appending to :attr:`amplitude_record` (and set
        :attr:`history_truncated`) after this many amplitude changes.
    """

    def __init__(self, signal: Callable[[np.ndarray], np.ndarray] | None = None, *,
                 transfer: complex | Callable[[float], complex] | None = None, frequency_hz: float = 1000.0,
                 amplitude_v: float = 0.1, time_constant_s: float = 0.1, sensitivity_v: float = 1.0,
                 filter_slope_db: int = 24, phase_deg: float = 0.0, noise_v_per_rthz: float = 0.0,
                 strict: bool = False, min_amplitude_v: float = 0.004, max_amplitude_v: float = 5.0,
                 samples_per_period: int = 16, settle_time_constants: float = 10.0,
                 max_window_samples: int = 1 << 20, seed: int = 0, serial: str = "00000",
                 history_max_events: int = 1_000_000) -> None:
        if signal is not None and transfer is not None:
            raise ValueError("give signal or transfer, not both")
        self.signal = signal
        self.transfer = transfer
        self.strict = bool(strict)
        self.min_amplitude_v = float(min_amplitude_v)
        self.max_amplitude_v = float(max_amplitude_v)
        if not 0 <= self.min_amplitude_v <= self.max_amplitude_v:
            raise ValueError(f"need 0 <= min_amplitude_v <= max_amplitude_v, got {min_amplitude_v!r}, "
                             f"{max_amplitude_v!r}")
        if int(samples_per_period) != samples_per_period or samples_per_period < 8:
            raise ValueError(f"samples_per_period must be an integer >= 8, got {samples_per_period!r}")
        self.samples_per_period = int(samples_per_period)
        if not settle_time_constants > 0:
            raise ValueError(f"settle_time_constants must be > 0, got {settle_time_constants!r}")
        self.settle_time_constants = float(settle_time_constants)
        self.max_window_samples = int(max_window_samples)
        if not (np.isfinite(noise_v_per_rthz) and noise_v_per_rthz >= 0):
            raise ValueError(f"noise_v_per_rthz must be >= 0, got {noise_v_per_rthz!r}")
        self.noise_v_per_rthz = float(noise_v_per_rthz)
        self.seed = int(seed)
        self.serial = serial
        self._rng = np.random.default_rng(seed)
        self._daq: Any = None
        self._clock = 0.0
        self.amplitude_record: list[AmplitudeChange] = []
        self.history_max_events = int(history_max_events)
        self.history_truncated = False
        self._frequency_hz = self._amplitude_v = self._time_constant_s = self._sensitivity_v = 0.0
        self.frequency_hz = frequency_hz
        self.amplitude_v = amplitude_v
        self.time_constant_s = time_constant_s
        self.sensitivity_v = sensitivity_v
        self.filter_slope_db = filter_slope_db
        self.phase_deg = phase_deg
        self._input_channel: str | None = None
        self._reference_channel: str | None = None
        self.overloaded = False
        self.n_reads = 0
        self._faults = FaultInjector("SimulatedLockIn")

    # ------------------------------------------------------------- settings
    @property
    def frequency_hz(self) -> float:
        """Reference frequency (Hz), > 0."""
        return self._frequency_hz

    @frequency_hz.setter
    def frequency_hz(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"frequency_hz must be > 0, got {value!r}")
        self._frequency_hz = value

    @property
    def amplitude_v(self) -> float:
        """Sine-out amplitude (V RMS), ``min_amplitude_v .. max_amplitude_v``."""
        return self._amplitude_v

    @amplitude_v.setter
    def amplitude_v(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and self.min_amplitude_v <= value <= self.max_amplitude_v):
            raise ValueError(f"amplitude_v must be in [{self.min_amplitude_v:g}, {self.max_amplitude_v:g}] V RMS, "
                             f"got {value!r}")
        self._amplitude_v = value
        if not self.history_truncated:
            if len(self.amplitude_record) >= self.history_max_events:
                self.history_truncated = True
            else:
                self.amplitude_record.append(AmplitudeChange(next_event(), self.simulated_time_s, value))

    @property
    def time_constant_s(self) -> float:
        """Low-pass time constant (s): any positive value, or one of ``SR830_TIME_CONSTANTS_S`` when strict."""
        return self._time_constant_s

    @time_constant_s.setter
    def time_constant_s(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"time_constant_s must be > 0, got {value!r}")
        if self.strict and not np.any(np.isclose(value, SR830_TIME_CONSTANTS_S, rtol=1e-9)):
            raise ValueError(f"time_constant_s = {value:g} s is not an SR830 time constant "
                             f"(10 us .. 30 ks in 1-3-10 steps)")
        self._time_constant_s = value

    @property
    def sensitivity_v(self) -> float:
        """Full-scale sensitivity (V RMS): any positive value, or one of ``SR830_SENSITIVITIES_V`` when strict."""
        return self._sensitivity_v

    @sensitivity_v.setter
    def sensitivity_v(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"sensitivity_v must be > 0, got {value!r}")
        if self.strict and not np.any(np.isclose(value, SR830_SENSITIVITIES_V, rtol=1e-9)):
            raise ValueError(f"sensitivity_v = {value:g} V is not an SR830 sensitivity (2 nV .. 1 V, 2-5-10 steps)")
        self._sensitivity_v = value

    @property
    def filter_slope_db(self) -> int:
        """Low-pass roll-off, dB/octave: 6, 12, 18 or 24."""
        return self._slope

    @filter_slope_db.setter
    def filter_slope_db(self, value: int) -> None:
        if value not in FILTER_SLOPES_DB:
            raise ValueError(f"filter_slope_db must be one of {FILTER_SLOPES_DB}, got {value!r}")
        self._slope = int(value)

    @property
    def phase_deg(self) -> float:
        """Detection phase shift (degrees) applied to the demodulation reference (not to the sine out)."""
        return self._phase_deg

    @phase_deg.setter
    def phase_deg(self, value: float) -> None:
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"phase_deg must be finite, got {value!r}")
        self._phase_deg = value

    # ---------------------------------------------------------------- wiring
    def attach(self, daq: Any, input_channel: str, reference_channel: str | None = None) -> None:
        """Read ``input_channel`` of a SimulatedDAQ's circuit; sum the sine out onto AO ``reference_channel``."""
        if input_channel not in daq.ai_channels:
            raise ValueError(f"unknown AI channel {input_channel!r}")
        if reference_channel is not None and reference_channel not in daq.ao_channels:
            raise ValueError(f"unknown AO channel {reference_channel!r}")
        self._daq, self._input_channel, self._reference_channel = daq, input_channel, reference_channel
        self.signal = self.transfer = None

    @property
    def simulated_time_s(self) -> float:
        """Twin clock: the attached DAQ's, else the lock-in's own (moved by :meth:`sleep`)."""
        return float(self._daq.simulated_time_s) if self._daq is not None else self._clock

    def sleep(self, seconds: float) -> None:
        """Let simulated time pass (the attached DAQ's clock when attached)."""
        if self._daq is not None:
            self._daq.sleep(seconds)
        else:
            if not seconds >= 0:
                raise ValueError(f"seconds must be >= 0, got {seconds!r}")
            self._clock += float(seconds)

    def reference_v(self, t_s: np.ndarray) -> np.ndarray:
        """The sine out at times ``t_s``: ``sqrt(2) amplitude_v sin(2 pi f t)``."""
        return np.sqrt(2) * self._amplitude_v * np.sin(2 * np.pi * self._frequency_hz * np.asarray(t_s))

    # ---------------------------------------------------------------- port
    def read_xy(self) -> LockInReading:
        """Demodulate the last ``settle_time_constants`` time constants of the input signal now."""
        self._faults.check("read_xy", "before")
        now = self.simulated_time_s
        f, tau = self._frequency_hz, self._time_constant_s
        fs = self.samples_per_period * f
        n = int(np.ceil(self.settle_time_constants * tau * fs))
        n = max(min(n, self.max_window_samples), self.samples_per_period)
        n = -(-n // self.samples_per_period) * self.samples_per_period  # whole periods: the mean has no 2f part
        t = now - (np.arange(n)[::-1]) / fs
        s = self._input(t)
        if self.noise_v_per_rthz > 0:
            s = s + self._rng.normal(0.0, self.noise_v_per_rthz * np.sqrt(fs / 2), n)
        phase = 2 * np.pi * f * t + np.radians(self._phase_deg)
        products = np.sqrt(2) * np.stack([s * np.sin(phase), s * np.cos(phase)])
        a = np.exp(-1.0 / (fs * tau))
        sos = np.tile([1 - a, 0.0, 0.0, 1.0, -a, 0.0], (self._slope // 6, 1))
        zi = sosfilt_zi(sos)  # steady state for a unit input
        start = products.mean(axis=1)
        out = sosfilt(sos, products, axis=1, zi=zi[:, None, :] * start[None, :, None])[0][:, -1]
        x, y = float(out[0]), float(out[1])
        self.overloaded = bool(np.hypot(x, y) > self._sensitivity_v)
        self.n_reads += 1
        return LockInReading(x, y, now)

    def identify(self) -> str:
        return f"Stanford_Research_Systems,SR830-TWIN,s/n{self.serial},ver1.07-labtrain"

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"filter_slope_db": self._slope, "phase_deg": self._phase_deg, "overloaded": self.overloaded,
                     "noise_v_per_rthz": self.noise_v_per_rthz, "seed": self.seed,
                     "input": ("daq" if self._daq is not None else "transfer" if self.transfer is not None
                               else "signal" if self.signal is not None else None),
                     "input_channel": self._input_channel, "reference_channel": self._reference_channel})
        return snap

    def inject_faults(self, n: int, kind: str = "timeout", methods: tuple[str, ...] = ("read_xy",)) -> None:
        """Make the next ``n`` ``read_xy`` calls raise ``PortTimeout`` (``"timeout"``) or ``PortIOError`` (``"io"``)."""
        self._faults.arm(n, kind, frozenset(methods), "before")

    @property
    def faults_raised(self) -> int:
        """Injected faults that struck so far."""
        return self._faults.raised

    # ------------------------------------------------------------ internals
    def _input(self, t: np.ndarray) -> np.ndarray:
        if self._daq is not None:
            extra = {self._reference_channel: self.reference_v(t)} if self._reference_channel else {}
            return self._daq.probe_ai([self._input_channel], t, extra)[0]
        if self.transfer is not None:
            h = complex(self.transfer(self._frequency_hz) if callable(self.transfer) else self.transfer)
            return np.abs(h) * np.sqrt(2) * self._amplitude_v * np.sin(2 * np.pi * self._frequency_hz * t
                                                                      + np.angle(h))
        if self.signal is not None:
            s = np.asarray(self.signal(t), float)
            if s.shape != t.shape:
                raise ValueError(f"signal returned shape {s.shape} for {t.shape} times")
            return s
        return np.zeros_like(t)
