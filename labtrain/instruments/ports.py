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
* Everything a chip or the safety layer may ask a port is declared here, with
  a default where a bare instrument has a sensible answer (a DAQ without a
  slew limit allows any step; a real lock-in has no twin clock): nothing above
  the ports probes them with ``getattr`` / ``hasattr``.
* A port behind the safety layer is also :class:`Guarded`: it has a
  ``safe_state()``; the instrument chips accept only guarded ports.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["PortError", "PortTimeout", "PortIOError", "Acquisition", "DAQ", "LockInReading", "LockIn",
           "PotCalibration", "PotArray", "Guarded", "SafeStatePort", "check_ao_values"]


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

    #: the device's name as channel names start with it, e.g. "Dev1" ("" when channels carry no prefix)
    device: str = ""
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
        """The level every AO channel really holds now, volts.

        After a ``write_read`` that raised part-way through its waveform (a
        timeout, a lost device, Ctrl-C) this is the last sample the device
        *generated* -- an analog output holds it after an abort -- not the
        waveform's last sample, and the previous level if the generation never
        started.  ``nan`` where the driver cannot know (the safety layer then
        steps that channel to its safe level and logs it).
        """

    @abc.abstractmethod
    def set_digital(self, states: dict[str, bool]) -> None:
        """Set digital-output lines (e.g. clamp switches)."""

    @abc.abstractmethod
    def digital_states(self) -> dict[str, bool]:
        """The state every digital line holds now."""

    @abc.abstractmethod
    def identify(self) -> str:
        """Device identity (model, serial number)."""

    def max_step_v(self, ao_channels: Sequence[str], rate_hz: float) -> np.ndarray:
        """Largest change between consecutive samples this port allows at ``rate_hz``, one per channel, volts.

        A bare port enforces no slew limit (``inf``);
        :class:`~labtrain.instruments.safety.SafeDAQ` returns its limits.
        """
        return np.full(len(tuple(ao_channels)), np.inf)

    def check_ao_values(self, ao_channels: Sequence[str], values_v: np.ndarray, *,
                        what: Sequence[str] | None = None, where: str = "",
                        columns: str | Sequence[str] = "sample") -> np.ndarray:
        """Check AO values (finite, inside what this port allows) without sending anything.

        A bare port allows its converter range ``ao_range_v``;
        :class:`~labtrain.instruments.safety.SafeDAQ` its per-channel limits.

        Parameters
        ----------
        ao_channels : sequence of str
            One channel per row of ``values_v``.
        values_v : array_like, shape (n_channels,) or (n_channels, n)
            Volts.
        what : sequence of str, optional
            What each channel drives, for the message (``"input 0"``, ``"electrode E3"``).
        where : str
            The request being checked, for the message (``"measure"``).
        columns : str or sequence of str
            Name of the column index (``"example"`` -> ``"example 3"``) or one label per column.

        Returns
        -------
        ndarray, shape (n_channels, n)
            ``values_v`` as float64.

        Raises
        ------
        ValueError
            One line naming the request, what and the channel, the column, the value and the allowed range.
        """
        names = tuple(ao_channels)
        lo, hi = (float(v) for v in self.ao_range_v)
        return check_ao_values(names, values_v, np.full(len(names), lo), np.full(len(names), hi),
                               bounds=None, what=what, where=where, columns=columns)

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Restart the port's noise generator (twins; a real instrument has none to reseed: no effect)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the port's clock with every output held: real time for an instrument,
        the simulated clock for a twin."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"sleep: seconds must be a finite number >= 0, got {seconds!r}")
        time.sleep(seconds)

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
    """A lock-in amplifier with its internal reference (sine out) and one demodulator.

    ``min_amplitude_v`` / ``max_amplitude_v`` are the sine-out amplitudes the
    instrument accepts (V RMS; an SR830 cannot go below 0.004 V): the lowest
    is the lock-in's safe state.  ``frequency_range_hz`` the reference
    frequencies it accepts.
    """

    #: smallest sine-out amplitude the instrument accepts, V RMS (its safe state)
    min_amplitude_v: float = 0.0
    #: largest sine-out amplitude the instrument accepts, V RMS
    max_amplitude_v: float = math.inf
    #: (low, high) reference frequencies the instrument accepts, Hz (default: an SR830's)
    frequency_range_hz: tuple[float, float] = (1e-3, 102_000.0)

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


# ------------------------------------------------------------ safety side
@runtime_checkable
class SafeStatePort(Protocol):
    """Anything the process-wide safe-state registry can bring to a safe state (lower priority goes first)."""

    safe_priority: int

    def safe_state(self) -> None: ...


class Guarded(abc.ABC):
    """A port behind the safety layer (:mod:`labtrain.instruments.safety`): limits checked, a safe state.

    The instrument chips accept only guarded ports; a guarded port registers
    for the safe state at exit.
    """

    #: Order of the safe state at exit, lower first (lock-in sine out, then DAQ outputs, then pots).
    safe_priority: int = 50

    @abc.abstractmethod
    def safe_state(self) -> None:
        """Bring the instrument to its safe state (each port defines what that is)."""

    @abc.abstractmethod
    def limits_snapshot(self) -> dict:
        """The limits this port enforces (goes into the run's snapshot)."""

    @property
    @abc.abstractmethod
    def wrapped(self) -> "DAQ | LockIn | PotArray":
        """The bare port behind the safety layer (to describe it: identity, channels, ranges; never to write)."""


def unwrap(port: Any) -> Any:
    """The bare port behind a safety wrapper (:attr:`Guarded.wrapped`), or ``port`` itself."""
    return port.wrapped if isinstance(port, Guarded) else port


def _volts(value: float) -> str:
    return f"{value:.6g}"


def check_ao_values(ao_channels: Sequence[str], values_v: np.ndarray, low_v: np.ndarray, high_v: np.ndarray, *,
                    bounds: tuple[str, str] | None = ("min_v", "max_v"), what: Sequence[str] | None = None,
                    where: str = "", columns: str | Sequence[str] = "sample",
                    error: type[ValueError] = ValueError) -> np.ndarray:
    """``values_v`` (one row per channel) as float64 after checking every value is finite and inside
    ``[low_v[c], high_v[c]]``; else ``error`` with one line such as
    ``"measure: input 0 on Dev1/ao0: example 2 is 12 V, above max_v = 2 V (allowed range [-2, 2] V); nothing was sent"``.

    ``bounds`` names the lower and upper bound in the message (``None``: the port's AO range); ``what``,
    ``where`` and ``columns`` as in :meth:`DAQ.check_ao_values`.
    """
    names = tuple(ao_channels)
    try:
        values = np.array(values_v, dtype=float)
    except (TypeError, ValueError):
        raise error(f"{where + ': ' if where else ''}values must be numbers in volts, "
                    f"got {type(values_v).__name__}") from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != len(names):
        raise error(f"{where + ': ' if where else ''}values must have one row per AO channel "
                    f"({len(names)}), got shape {values.shape}")
    if what is not None and len(what) != len(names):
        raise error(f"{where + ': ' if where else ''}{len(what)} labels for {len(names)} AO channels")
    lo = np.asarray(low_v, float).reshape(-1)
    hi = np.asarray(high_v, float).reshape(-1)
    finite = np.isfinite(values)
    below = finite & (values < lo[:, None])
    above = finite & (values > hi[:, None])
    bad = ~finite | below | above
    if not bad.any():
        return values
    i, k = (int(v) for v in np.argwhere(bad)[0])
    subject = names[i] if what is None else f"{what[i]} on {names[i]}"
    column = f"{columns} {k}" if isinstance(columns, str) else str(columns[k])
    v = values[i, k]
    allowed = f"[{_volts(lo[i])}, {_volts(hi[i])}] V"
    if not finite[i, k]:
        detail = f"is {v}, not a finite voltage (allowed range {allowed})"
    elif bounds is None:
        detail = f"is {_volts(v)} V, outside the AO range {allowed}"
    elif below[i, k]:
        detail = f"is {_volts(v)} V, below {bounds[0]} = {_volts(lo[i])} V (allowed range {allowed})"
    else:
        detail = f"is {_volts(v)} V, above {bounds[1]} = {_volts(hi[i])} V (allowed range {allowed})"
    detail += "; nothing was sent"
    raise error(f"{where + ': ' if where else ''}{subject}: {column} {detail}")
