"""Instrument ports: the narrow interfaces an instrument-backed chip needs from a bench.

A *port* is what :class:`~labtrain.kinds.resistor.bench.InstrumentChip` talks to.
Each port has real drivers (:mod:`labtrain.drivers`: nidaqmx, PyMeasure
lock-ins, potentiometer bridges) and twins (:mod:`labtrain.simulators`) wired to
a physics model, and every port -- real or twin -- is wrapped by the safety
layer (:mod:`labtrain.instruments.safety`) before a chip sees it.

Conventions
-----------
* SI units, in names: volts ``_v``, seconds ``_s``, hertz ``_hz``, ohms ``_ohm``.
* Waveform arrays are ``(n_channels, n_samples)`` float64, channels in the
  order the caller named them.
* Every port has ``identify() -> str`` (the instrument's own identity string),
  ``snapshot() -> dict`` (every setting, JSON-serialisable; it goes into the
  run file) and ``close()``.
* Ports raise :class:`PortTimeout` or :class:`PortIOError` for instrument
  faults (the chip retries those), and plain ``ValueError`` for bad requests.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["PortError", "PortTimeout", "PortIOError", "Acquisition", "DAQ", "LockInReading", "LockIn",
           "PotCalibration", "PotArray"]


class PortError(RuntimeError):
    """An instrument did not do what was asked (base class of instrument faults)."""


class PortTimeout(PortError):
    """An instrument did not answer in time."""


class PortIOError(PortError):
    """An instrument answered wrongly or the link failed (bad checksum, lost device, ...)."""


# ---------------------------------------------------------------------- DAQ
@dataclass
class Acquisition:
    """What one synchronised AO/AI acquisition read.

    Attributes
    ----------
    ai_v : ndarray, shape (n_ai, n_samples)
        Analog-input samples in volts, one row per channel requested.
    rate_hz : float
        Sample clock (shared by AO and AI).
    start_time_s : float
        Timestamp of the first sample (``time.time()`` for real hardware, the
        simulated clock for a twin).
    channels : tuple of str
        The AI channels, in row order.
    """

    ai_v: np.ndarray
    rate_hz: float
    start_time_s: float
    channels: tuple[str, ...]

    @property
    def n_samples(self) -> int:
        return self.ai_v.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz


class DAQ(abc.ABC):
    """A data-acquisition device: analog outputs and inputs on one sample clock, plus digital lines.

    ``write_read`` writes one AO waveform per channel and reads the AI channels
    on the *same* clock (AO starts on the AI start trigger), returning exactly
    as many AI samples as AO samples were written.  Between acquisitions every
    AO channel holds a DC level (``set_dc`` / ``dc_levels_v``); an acquisition
    leaves each channel holding its waveform's last sample.
    """

    #: analog-output channel names, e.g. ("Dev1/ao0", "Dev1/ao1")
    ao_channels: tuple[str, ...] = ()
    #: analog-input channel names
    ai_channels: tuple[str, ...] = ()
    #: digital-output lines (switches), e.g. ("Dev1/port0/line0",)
    do_lines: tuple[str, ...] = ()
    #: (low, high) output range of the AO converters, volts
    ao_range_v: tuple[float, float] = (-10.0, 10.0)
    #: (low, high) input range of the AI converters, volts
    ai_range_v: tuple[float, float] = (-10.0, 10.0)
    #: highest sample clock the device supports for this channel count
    max_rate_hz: float = 1e5

    @abc.abstractmethod
    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        """Write ``ao_v`` (n_ao x n_samples) to ``ao_channels`` and read ``ai_channels`` on the same clock."""

    @abc.abstractmethod
    def set_dc(self, levels_v: dict[str, float]) -> None:
        """Set and hold static levels on the named AO channels (no waveform, no ramp)."""

    @abc.abstractmethod
    def dc_levels_v(self) -> dict[str, float]:
        """The level every AO channel holds now."""

    @abc.abstractmethod
    def set_digital(self, states: dict[str, bool]) -> None:
        """Set digital-output lines (e.g. clamp switches)."""

    @abc.abstractmethod
    def digital_states(self) -> dict[str, bool]:
        """The state every digital line holds now."""

    @abc.abstractmethod
    def identify(self) -> str:
        """Device identity (model, serial number)."""

    def snapshot(self) -> dict:
        return {"kind": type(self).__name__, "identity": self.identify(), "ao_channels": list(self.ao_channels),
                "ai_channels": list(self.ai_channels), "do_lines": list(self.do_lines),
                "ao_range_v": list(self.ao_range_v), "ai_range_v": list(self.ai_range_v),
                "max_rate_hz": self.max_rate_hz}

    def close(self) -> None:
        """Release the device (the safety layer has already brought it to its safe state)."""


# ------------------------------------------------------------------- lock-in
@dataclass(frozen=True)
class LockInReading:
    """One demodulated reading: in-phase ``x_v``, quadrature ``y_v`` (volts RMS) and when it was taken."""

    x_v: float
    y_v: float
    timestamp_s: float = field(default_factory=time.time)

    @property
    def r_v(self) -> float:
        return float(np.hypot(self.x_v, self.y_v))

    @property
    def theta_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.y_v, self.x_v)))


class LockIn(abc.ABC):
    """A lock-in amplifier with its internal reference (sine out) and one demodulator."""

    @property
    @abc.abstractmethod
    def frequency_hz(self) -> float: ...

    @frequency_hz.setter
    @abc.abstractmethod
    def frequency_hz(self, value: float) -> None: ...

    @property
    @abc.abstractmethod
    def amplitude_v(self) -> float:
        """Reference sine-out amplitude (V RMS)."""

    @amplitude_v.setter
    @abc.abstractmethod
    def amplitude_v(self, value: float) -> None: ...

    @property
    @abc.abstractmethod
    def time_constant_s(self) -> float: ...

    @time_constant_s.setter
    @abc.abstractmethod
    def time_constant_s(self, value: float) -> None: ...

    @property
    @abc.abstractmethod
    def sensitivity_v(self) -> float: ...

    @sensitivity_v.setter
    @abc.abstractmethod
    def sensitivity_v(self, value: float) -> None: ...

    @abc.abstractmethod
    def read_xy(self) -> LockInReading:
        """Read X and Y now (after the caller waited the settling time it needs)."""

    @abc.abstractmethod
    def identify(self) -> str: ...

    def snapshot(self) -> dict:
        return {"kind": type(self).__name__, "identity": self.identify(), "frequency_hz": self.frequency_hz,
                "amplitude_v": self.amplitude_v, "time_constant_s": self.time_constant_s,
                "sensitivity_v": self.sensitivity_v}

    def close(self) -> None:
        """Release the instrument."""


# ------------------------------------------------------------- potentiometers
@dataclass(frozen=True)
class PotCalibration:
    """Tap-to-resistance table of a potentiometer array used as rheostats (one per channel).

    The resistance of channel ``c`` at tap ``k`` (0 .. n_taps-1) is
    ``r_end_ohm[c] + r_wiper_ohm[c] + r_total_ohm[c] * k / (n_taps - 1)``.
    ``tolerance`` is the datasheet's relative tolerance of ``r_total_ohm``
    (informational: a calibrated table already includes each part's deviation).
    """

    n_taps: int
    r_total_ohm: np.ndarray
    r_wiper_ohm: np.ndarray
    r_end_ohm: np.ndarray
    tolerance: float = 0.0

    @classmethod
    def nominal(cls, n_channels: int, n_taps: int, r_total_ohm: float, r_wiper_ohm: float = 0.0,
                r_end_ohm: float = 0.0, tolerance: float = 0.0) -> "PotCalibration":
        """Every channel at the datasheet values."""
        full = lambda v: np.full(n_channels, float(v))  # noqa: E731
        return cls(int(n_taps), full(r_total_ohm), full(r_wiper_ohm), full(r_end_ohm), float(tolerance))

    @classmethod
    def for_device(cls, calibration: "PotCalibration | None", n_channels: int, n_taps: int, r_total_ohm: float,
                   r_wiper_ohm: float, r_end_ohm: float, device: str = "device") -> "PotCalibration":
        """``calibration`` checked against a device's channels x taps, or the nominal table if None."""
        if calibration is None:
            return cls.nominal(n_channels, n_taps, r_total_ohm, r_wiper_ohm, r_end_ohm)
        if calibration.n_channels != n_channels or calibration.n_taps != n_taps:
            raise ValueError(f"calibration is for {calibration.n_channels} channels x {calibration.n_taps} taps, "
                             f"the {device} has {n_channels} x {n_taps}")
        return calibration

    def __post_init__(self) -> None:
        if self.n_taps < 2:
            raise ValueError(f"a pot needs >= 2 taps, got {self.n_taps}")
        for name in ("r_total_ohm", "r_wiper_ohm", "r_end_ohm"):
            arr = np.asarray(getattr(self, name), float)
            object.__setattr__(self, name, arr)
            if arr.shape != (self.n_channels,) or np.any(arr < 0) or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be {self.n_channels} finite values >= 0")
        if np.any(self.r_total_ohm <= 0):
            raise ValueError("r_total_ohm must be > 0")

    @property
    def n_channels(self) -> int:
        return len(np.asarray(self.r_total_ohm))

    def resistance_ohm(self, taps: np.ndarray) -> np.ndarray:
        taps = np.asarray(taps)
        return self.r_end_ohm + self.r_wiper_ohm + self.r_total_ohm * taps / (self.n_taps - 1)

    def conductance_s(self, taps: np.ndarray) -> np.ndarray:
        return 1.0 / self.resistance_ohm(taps)

    def taps_for_conductance(self, conductance_s: np.ndarray) -> np.ndarray:
        """Nearest tap (in resistance) for each channel's requested conductance."""
        r = 1.0 / np.asarray(conductance_s, float)
        k = (r - self.r_end_ohm - self.r_wiper_ohm) / self.r_total_ohm * (self.n_taps - 1)
        return np.clip(np.rint(k), 0, self.n_taps - 1).astype(np.int64)

    @property
    def g_min_s(self) -> np.ndarray:
        return self.conductance_s(np.full(self.n_channels, self.n_taps - 1))

    @property
    def g_max_s(self) -> np.ndarray:
        return self.conductance_s(np.zeros(self.n_channels))

    def to_dict(self) -> dict:
        return {"n_taps": self.n_taps, "r_total_ohm": self.r_total_ohm.tolist(),
                "r_wiper_ohm": self.r_wiper_ohm.tolist(), "r_end_ohm": self.r_end_ohm.tolist(),
                "tolerance": self.tolerance}


class PotArray(abc.ABC):
    """An array of digital potentiometers used as rheostats, one channel per network edge."""

    n_channels: int = 0
    n_taps: int = 2
    calibration: PotCalibration

    @abc.abstractmethod
    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        """Set every channel's tap; returns the taps the parts report holding afterwards."""

    @abc.abstractmethod
    def get_taps(self) -> np.ndarray:
        """Read back every channel's tap."""

    @abc.abstractmethod
    def identify(self) -> str: ...

    def snapshot(self) -> dict:
        return {"kind": type(self).__name__, "identity": self.identify(), "n_channels": self.n_channels,
                "n_taps": self.n_taps, "calibration": self.calibration.to_dict()}

    def close(self) -> None:
        """Release the link."""
