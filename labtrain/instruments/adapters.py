"""Instruments you already have in Python -- QCoDeS instruments and Parameters, PyMeasure instruments -- as
labtrain ports.

A lab that drives its bench from QCoDeS or PyMeasure keeps its instrument
objects; these adapters present them as :class:`~labtrain.instruments.ports.LockIn`
and :class:`~labtrain.instruments.ports.DAQ` ports, so the same safety layer,
checks and chips run on them.  Hand them to a bench builder as ready ports
(``ports={"lockin": ...}``): they take the place of that role's instrument and
are wrapped like any driver (:class:`~labtrain.instruments.safety.SafeLockIn`,
:class:`~labtrain.instruments.safety.SafeDAQ`).

Every adapter checks up front that it was given what it claims -- callable
``get``/``set``, the right unit, the right instrument model from ``*IDN?`` /
``get_idn()`` -- and refuses anything else with a one-line ``TypeError`` (wrong
kind of object, missing attribute) or ``ValueError`` (wrong unit, wrong model).

QCoDeS is not a dependency: the adapters use only the documented Parameter API
(``get()``, ``set(value)``, ``unit``, ``name`` / ``full_name``, and
``gettable`` / ``settable`` where present), so any object that offers it works,
e.g. :class:`AttributeParameter` over a PyMeasure property.

Recipes
-------
A QCoDeS SR830 as the DNPU's lock-in::

    from qcodes.instrument_drivers.stanford_research import SR830
    from labtrain.instruments.adapters import ParameterLockIn

    sr830 = SR830("lockin", "GPIB0::8::INSTR")
    lockin = ParameterLockIn.from_qcodes(sr830)                 # checks get_idn() and every unit
    chip = build_dnpu_hardware("Dev1", layout, ports={"lockin": lockin})

Two SMU channels as a (software-timed) DAQ, from QCoDeS parameters or PyMeasure properties::

    daq = ParameterDAQ(ao={"smu/ao0": k2450.source.voltage},
                       ai={"smu/ai0": ScaledParameter(k2450.sense.current, gain=1e4, unit="V")},
                       max_rate_hz=20, ao_range_v=(-2, 2), identity=k2450.get_idn)
    daq = ParameterDAQ(ao={"k/ao0": AttributeParameter(keithley, "source_voltage", "V")},
                       ai={"k/ai0": AttributeParameter(keithley, "voltage", "V", settable=False)}, max_rate_hz=5)
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from labtrain.instruments.ports import DAQ, Acquisition, LockIn, LockInReading, PortError, PortIOError, PortTimeout

__all__ = ["AttributeParameter", "ParameterLockIn", "ParameterDAQ", "lockin_from_pymeasure", "KNOWN_LOCKINS",
           "check_parameter"]

#: sine-out amplitude (V RMS) and reference frequency (Hz) ranges of lock-ins by ``*IDN?`` model
KNOWN_LOCKINS: dict[str, dict[str, tuple[float, float]]] = {
    "SR830": {"amplitude_range_v": (0.004, 5.0), "frequency_range_hz": (1e-3, 102e3)},
    "SR810": {"amplitude_range_v": (0.004, 5.0), "frequency_range_hz": (1e-3, 102e3)},
    "SR860": {"amplitude_range_v": (1e-9, 2.0), "frequency_range_hz": (1e-3, 500e3)},
    "SR865": {"amplitude_range_v": (1e-9, 2.0), "frequency_range_hz": (1e-3, 4e6)},
    "SR865A": {"amplitude_range_v": (1e-9, 2.0), "frequency_range_hz": (1e-3, 4e6)},
}


def _label(param: Any, fallback: str) -> str:
    return str(getattr(param, "full_name", None) or getattr(param, "name", None) or fallback)


def check_parameter(param: Any, role: str, units: Sequence[str], *, settable: bool, owner: str) -> Any:
    """Refuse ``param`` unless it is a gettable (and, if asked, settable) parameter in one of ``units``.

    Raises ``TypeError`` (no callable ``get``/``set``, not gettable/settable) or ``ValueError``
    (another unit; a parameter without a unit must declare one) with a one-line message.
    """
    if param is None or not callable(getattr(param, "get", None)):
        raise TypeError(f"{owner}: {role} = {type(param).__name__}: expected a parameter with get() "
                        f"(a QCoDeS Parameter or labtrain.instruments.adapters.AttributeParameter)")
    if getattr(param, "gettable", True) is False:
        raise TypeError(f"{owner}: {role} = {_label(param, role)} is not gettable")
    if settable and (not callable(getattr(param, "set", None)) or getattr(param, "settable", True) is False):
        raise TypeError(f"{owner}: {role} = {_label(param, role)} is not settable; {role} must be")
    unit = getattr(param, "unit", None)
    if unit not in units:
        want = " or ".join(repr(u) for u in units)
        raise ValueError(f"{owner}: {role} = {_label(param, role)} has unit {unit!r}, expected {want} "
                         f"(wrap it, e.g. QCoDeS ScaledParameter, to convert)")
    return param


@contextlib.contextmanager
def _io(owner: str, what: str) -> Iterator[None]:
    """Exceptions of the wrapped library as port faults: TimeoutError -> PortTimeout, others -> PortIOError."""
    try:
        yield
    except PortError:
        raise
    except TimeoutError as exc:
        raise PortTimeout(f"{owner}: {what}: timed out ({exc})") from exc
    except Exception as exc:
        if type(exc).__name__.endswith("Timeout") or getattr(exc, "error_code", None) == -1073807339:
            raise PortTimeout(f"{owner}: {what}: timed out ({exc})") from exc
        raise PortIOError(f"{owner}: {what}: {type(exc).__name__}: {exc}") from exc


def _number(value: Any, owner: str, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise PortIOError(f"{owner}: {what}: {value!r} is not a number") from None
    if not math.isfinite(out):
        raise PortIOError(f"{owner}: {what}: {value!r} is not finite")
    return out


class AttributeParameter:
    """An attribute of an object -- a PyMeasure property such as ``Keithley2400.source_voltage`` -- as a
    parameter with ``get()``, ``set()``, ``unit`` and ``name`` (the part of the QCoDeS API labtrain uses).

    Parameters
    ----------
    obj : object
        The instrument.
    attribute : str
        Attribute name; it must exist on ``obj`` (checked now, without reading it).
    unit : str
        Unit of the value (``"V"``): PyMeasure properties carry none, so it is declared here.
    name : str, optional
        Label for messages; default ``"<Class>.<attribute>"``.
    settable : bool
        False for a measurement (``set`` then raises ``TypeError``).
    """

    def __init__(self, obj: Any, attribute: str, unit: str, name: str | None = None, settable: bool = True) -> None:
        # look on the class and the instance dict: hasattr(obj, ...) would read a property (a query to the device)
        known = isinstance(attribute, str) and (hasattr(type(obj), attribute)
                                                or attribute in getattr(obj, "__dict__", {}))
        if not known:
            raise TypeError(f"AttributeParameter: {type(obj).__name__} has no attribute {attribute!r}")
        self.obj, self.attribute, self.unit = obj, attribute, str(unit)
        self.name = self.full_name = name or f"{type(obj).__name__}.{attribute}"
        self.settable, self.gettable = bool(settable), True

    def get(self) -> Any:
        return getattr(self.obj, self.attribute)

    def set(self, value: Any) -> None:
        if not self.settable:
            raise TypeError(f"{self.name} is a measurement; it cannot be set")
        setattr(self.obj, self.attribute, value)

    def __repr__(self) -> str:
        return f"AttributeParameter({self.name}, unit={self.unit!r})"


# ============================================================================ lock-in
class ParameterLockIn(LockIn):
    """A lock-in amplifier made of parameters (QCoDeS or :class:`AttributeParameter`).

    Parameters
    ----------
    frequency, amplitude, time_constant, sensitivity : parameter
        Settable; units ``Hz``, ``V`` (sine out, RMS), ``s``, ``V``.
    x, y : parameter
        Gettable, unit ``V`` (RMS).
    identity : str or callable
        The instrument's identity, or a callable returning it (a string, or QCoDeS's ``get_idn()`` dict).
    amplitude_range_v, frequency_range_hz : (float, float)
        What the sine out and reference accept; requests outside are ``ValueError`` before anything is sent.
    snap : callable, optional
        ``snap() -> (x, y)`` reading both at one instant (QCoDeS SR830 ``snap("x", "y")``); without it X
        and Y are read one after the other.
    model : str
        Name for messages and snapshots.
    """

    def __init__(self, *, frequency: Any, amplitude: Any, time_constant: Any, sensitivity: Any, x: Any, y: Any,
                 identity: str | Callable[[], Any], amplitude_range_v: tuple[float, float],
                 frequency_range_hz: tuple[float, float], snap: Callable[[], Sequence[Any]] | None = None,
                 model: str = "lock-in") -> None:
        self.model = str(model)
        owner = f"ParameterLockIn({self.model})"
        self._frequency = check_parameter(frequency, "frequency", ("Hz",), settable=True, owner=owner)
        self._amplitude = check_parameter(amplitude, "amplitude", ("V",), settable=True, owner=owner)
        self._time_constant = check_parameter(time_constant, "time_constant", ("s",), settable=True, owner=owner)
        self._sensitivity = check_parameter(sensitivity, "sensitivity", ("V",), settable=True, owner=owner)
        self._x = check_parameter(x, "x", ("V",), settable=False, owner=owner)
        self._y = check_parameter(y, "y", ("V",), settable=False, owner=owner)
        if snap is not None and not callable(snap):
            raise TypeError(f"{owner}: snap must be callable () -> (x, y), got {type(snap).__name__}")
        if not (isinstance(identity, str) or callable(identity)):
            raise TypeError(f"{owner}: identity must be a string or a callable, got {type(identity).__name__}")
        self._snap, self._identity = snap, identity
        self.amplitude_range_v = self._pair(amplitude_range_v, "amplitude_range_v", owner)
        self.frequency_range_hz = self._pair(frequency_range_hz, "frequency_range_hz", owner)
        self._owner = owner

    @staticmethod
    def _pair(rng: Sequence[float], what: str, owner: str) -> tuple[float, float]:
        lo, hi = (float(v) for v in rng)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"{owner}: {what} = {tuple(rng)}: expected (low, high) with 0 <= low < high")
        return lo, hi

    @property
    def min_amplitude_v(self) -> float:
        """Smallest sine-out amplitude (V RMS): the safe state."""
        return self.amplitude_range_v[0]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_qcodes(cls, instrument: Any, *, amplitude_range_v: tuple[float, float] | None = None,
                    frequency_range_hz: tuple[float, float] | None = None) -> "ParameterLockIn":
        """A QCoDeS lock-in driver (``SR830``, ``SR86x`` and any with the same parameter names).

        Uses its ``frequency``, ``amplitude``, ``time_constant``, ``sensitivity``, ``X``, ``Y``
        parameters, ``snap("x", "y")`` (SR830) or ``get_values("X", "Y")`` (SR86x) when present, and
        ``get_idn()``.  The ranges come from :data:`KNOWN_LOCKINS` by model unless given.
        """
        owner = f"ParameterLockIn.from_qcodes({type(instrument).__name__})"
        get_idn = getattr(instrument, "get_idn", None)
        if not callable(get_idn):
            raise TypeError(f"{owner}: expected a QCoDeS instrument (with get_idn() and parameters), "
                            f"got {type(instrument).__name__}")
        missing = [n for n in ("frequency", "amplitude", "time_constant", "sensitivity", "X", "Y")
                   if not callable(getattr(getattr(instrument, n, None), "get", None))]
        if missing:
            raise TypeError(f"{owner}: no lock-in parameter {missing[0]!r} (needs frequency, amplitude, "
                            f"time_constant, sensitivity, X, Y)")
        with _io(owner, "get_idn()"):
            idn = get_idn()
        model = str((idn or {}).get("model") or "").strip() if isinstance(idn, Mapping) else str(idn)
        known = KNOWN_LOCKINS.get(model.upper())
        if known is None and (amplitude_range_v is None or frequency_range_hz is None):
            raise ValueError(f"{owner}: get_idn() model {model!r} is not a lock-in labtrain knows "
                             f"({', '.join(KNOWN_LOCKINS)}); pass amplitude_range_v and frequency_range_hz")
        if hasattr(instrument, "snap") and callable(instrument.snap):
            snap = lambda: instrument.snap("x", "y")  # noqa: E731  -- QCoDeS SR830
        elif callable(getattr(instrument, "get_values", None)):
            snap = lambda: instrument.get_values("X", "Y")  # noqa: E731  -- QCoDeS SR86x
        else:
            snap = None
        return cls(frequency=instrument.frequency, amplitude=instrument.amplitude,
                   time_constant=instrument.time_constant, sensitivity=instrument.sensitivity,
                   x=instrument.X, y=instrument.Y, identity=get_idn, snap=snap, model=model or "lock-in",
                   amplitude_range_v=amplitude_range_v or known["amplitude_range_v"],
                   frequency_range_hz=frequency_range_hz or known["frequency_range_hz"])

    # ------------------------------------------------------------------ port
    def _get(self, param: Any, what: str) -> float:
        with _io(self._owner, f"reading {what}"):
            value = param.get()
        return _number(value, self._owner, f"reading {what}")

    def _set(self, param: Any, what: str, value: float) -> None:
        with _io(self._owner, f"setting {what}"):
            param.set(value)

    @staticmethod
    def _in(value: float, rng: tuple[float, float], what: str, unit: str) -> float:
        value = float(value)
        if not (math.isfinite(value) and rng[0] <= value <= rng[1]):
            raise ValueError(f"{what} = {value!r} {unit}: allowed range [{rng[0]:g}, {rng[1]:g}] {unit}")
        return value

    @property
    def frequency_hz(self) -> float:
        return self._get(self._frequency, "frequency")

    @frequency_hz.setter
    def frequency_hz(self, value: float) -> None:
        self._set(self._frequency, "frequency", self._in(value, self.frequency_range_hz, "frequency_hz", "Hz"))

    @property
    def amplitude_v(self) -> float:
        return self._get(self._amplitude, "amplitude")

    @amplitude_v.setter
    def amplitude_v(self, value: float) -> None:
        self._set(self._amplitude, "amplitude", self._in(value, self.amplitude_range_v, "amplitude_v", "V"))

    @property
    def time_constant_s(self) -> float:
        return self._get(self._time_constant, "time constant")

    @time_constant_s.setter
    def time_constant_s(self, value: float) -> None:
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"time_constant_s = {value!r} s: must be > 0")
        self._set(self._time_constant, "time constant", float(value))

    @property
    def sensitivity_v(self) -> float:
        return self._get(self._sensitivity, "sensitivity")

    @sensitivity_v.setter
    def sensitivity_v(self, value: float) -> None:
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"sensitivity_v = {value!r} V: must be > 0")
        self._set(self._sensitivity, "sensitivity", float(value))

    def read_xy(self) -> LockInReading:
        t = time.time()
        if self._snap is not None:
            with _io(self._owner, "reading X, Y"):
                values = list(self._snap())
            if len(values) != 2:
                raise PortIOError(f"{self._owner}: reading X, Y: expected 2 values, got {values!r}")
            return LockInReading(_number(values[0], self._owner, "reading X"),
                                 _number(values[1], self._owner, "reading Y"), t)
        return LockInReading(self._get(self._x, "X"), self._get(self._y, "Y"), t)

    def identify(self) -> str:
        if isinstance(self._identity, str):
            return self._identity
        with _io(self._owner, "identify"):
            idn = self._identity()
        if isinstance(idn, Mapping):
            idn = ",".join(str(idn.get(k) or "") for k in ("vendor", "model", "serial", "firmware"))
        return str(idn)

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"model": self.model, "adapter": "parameters",
                     "parameters": {r: _label(p, r) for r, p in (("frequency", self._frequency),
                                                                  ("amplitude", self._amplitude),
                                                                  ("time_constant", self._time_constant),
                                                                  ("sensitivity", self._sensitivity),
                                                                  ("x", self._x), ("y", self._y))}})
        return snap


def lockin_from_pymeasure(instrument: Any, **kwargs: Any) -> LockIn:
    """An open PyMeasure lock-in as a port: ``SR830``/``SR810`` -> :class:`~labtrain.drivers.lockin.SR830LockIn`,
    ``SR860``/``SR865`` -> :class:`~labtrain.drivers.lockin.SR860LockIn` (``*IDN?`` checked; ``kwargs``
    go to the driver).  Another PyMeasure lock-in: wrap its properties in :class:`AttributeParameter` and
    use :class:`ParameterLockIn`."""
    from labtrain.drivers._common import require
    from labtrain.drivers.lockin import SR830LockIn, SR860LockIn

    srs = require("pymeasure.instruments.srs", "lockin_from_pymeasure", "pymeasure")
    for cls, port in ((getattr(srs, "SR830", None), SR830LockIn), (getattr(srs, "SR860", None), SR860LockIn)):
        if cls is not None and isinstance(instrument, cls):
            return port(instrument, **kwargs)
    raise TypeError(f"lockin_from_pymeasure: {type(instrument).__name__} is not a PyMeasure SR830 or SR860; wrap "
                    f"its properties with AttributeParameter and use ParameterLockIn")


# ============================================================================ DAQ
class ParameterDAQ(DAQ):
    """A software-timed DAQ made of parameters: SMU outputs or DAC channels as AO, meters as AI.

    ``write_read`` steps through the waveform one sample at a time: at sample ``k`` (paced to
    ``k / rate_hz`` after the start on the host clock) it sets every AO whose value changed, then
    reads every AI.  There is no hardware clock: use it for slow benches (``max_rate_hz`` of a few
    to a few hundred hertz) and let the safety layer ramp as usual.  The AO levels are read from
    the instrument when the port is created (true held levels: the safety layer ramps from there).

    Parameters
    ----------
    ao, ai : mapping of channel name to parameter
        Settable voltage outputs (unit ``V``) and gettable voltage inputs (unit ``V``).
    do : mapping of line name to parameter, optional
        Settable digital lines (any unit; values ``True``/``False``).
    ao_range_v, ai_range_v : (float, float)
        Ranges of the outputs and inputs (V); AO requests outside are ``ValueError`` before anything is set.
    max_rate_hz : float
        Fastest pace ``write_read`` accepts.
    identity : str or callable
        Identity string, or a callable returning it (QCoDeS ``get_idn``).
    clock, sleep : callable
        Host clock and sleep (seconds); tests pass fakes.
    """

    def __init__(self, ao: Mapping[str, Any], ai: Mapping[str, Any], do: Mapping[str, Any] | None = None, *,
                 ao_range_v: tuple[float, float] = (-10.0, 10.0), ai_range_v: tuple[float, float] = (-10.0, 10.0),
                 max_rate_hz: float = 10.0, identity: str | Callable[[], Any] = "parameter DAQ",
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        owner = "ParameterDAQ"
        for what, table in (("ao", ao), ("ai", ai), ("do", do or {})):
            if not isinstance(table, Mapping):
                raise TypeError(f"{owner}: {what} must map channel names to parameters, got {type(table).__name__}")
        self._ao = {str(c): check_parameter(p, f"ao[{c!r}]", ("V",), settable=True, owner=owner)
                    for c, p in ao.items()}
        self._ai = {str(c): check_parameter(p, f"ai[{c!r}]", ("V",), settable=False, owner=owner)
                    for c, p in ai.items()}
        self._do: dict[str, Any] = {}
        for c, p in (do or {}).items():
            if not callable(getattr(p, "set", None)):
                raise TypeError(f"{owner}: do[{c!r}] = {type(p).__name__}: expected a parameter with set()")
            self._do[str(c)] = p
        if not self._ai:
            raise ValueError(f"{owner}: needs at least one AI parameter")
        self.ao_channels, self.ai_channels, self.do_lines = tuple(self._ao), tuple(self._ai), tuple(self._do)
        self.ao_range_v = self._range(ao_range_v, "ao_range_v")
        self.ai_range_v = self._range(ai_range_v, "ai_range_v")
        if not (isinstance(max_rate_hz, (int, float)) and math.isfinite(max_rate_hz) and max_rate_hz > 0):
            raise ValueError(f"{owner}: max_rate_hz = {max_rate_hz!r}: must be > 0")
        self.max_rate_hz = float(max_rate_hz)
        self._identity, self._clock, self._sleep = identity, clock, sleep
        self._owner = owner
        self._dc_v = {c: self._read(p, f"AO {c}") for c, p in self._ao.items()}
        self._states = {c: False for c in self._do}

    @staticmethod
    def _range(rng: Sequence[float], what: str) -> tuple[float, float]:
        lo, hi = (float(v) for v in rng)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"ParameterDAQ: {what} = {tuple(rng)}: expected (low, high) with low < high")
        return lo, hi

    def _read(self, param: Any, what: str) -> float:
        with _io(self._owner, f"reading {what}"):
            value = param.get()
        return _number(value, self._owner, f"reading {what}")

    def _write(self, param: Any, what: str, value: Any) -> None:
        with _io(self._owner, f"setting {what}"):
            param.set(value)

    def _channels(self, names: Sequence[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        names = tuple(str(n) for n in names)
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"{what}: {unknown[0]!r} is not one of this DAQ's channels ({', '.join(allowed) or 'none'})")
        return names

    def _levels(self, values: np.ndarray, what: str) -> None:
        lo, hi = self.ao_range_v
        if values.size and (not np.all(np.isfinite(values)) or values.min() < lo or values.max() > hi):
            raise ValueError(f"{what}: values must be finite and within the AO range [{lo:g}, {hi:g}] V")

    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        ao = self._channels(ao_channels, self.ao_channels, "ao_channels")
        ai = self._channels(ai_channels, self.ai_channels, "ai_channels")
        if not ai:
            raise ValueError("write_read needs at least one AI channel")
        ao_v = np.asarray(ao_v, dtype=np.float64)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(ao):
            raise ValueError(f"ao_v must have shape ({len(ao)}, n_samples), got {ao_v.shape}")
        self._levels(ao_v, "ao_v")
        if not 0 < rate_hz <= self.max_rate_hz:
            raise ValueError(f"rate_hz = {rate_hz}: must be in (0, {self.max_rate_hz:g}] Hz")
        n = ao_v.shape[1]
        data = np.empty((len(ai), n))
        start_wall, t0 = time.time(), self._clock()
        deadline = t0 + n / rate_hz + timeout_s
        for k in range(n):
            wait = t0 + k / rate_hz - self._clock()
            if wait > 0:
                self._sleep(wait)
            for i, ch in enumerate(ao):
                value = float(ao_v[i, k])
                if value != self._dc_v[ch]:
                    self._write(self._ao[ch], f"AO {ch}", value)
                    self._dc_v[ch] = value
            for j, ch in enumerate(ai):
                data[j, k] = self._read(self._ai[ch], f"AI {ch}")
            if self._clock() > deadline:
                raise PortTimeout(f"{self._owner}: sample {k + 1} of {n} came after the acquisition's "
                                  f"{n / rate_hz:g} s + timeout_s {timeout_s:g} s")
        return Acquisition(ai_v=data, rate_hz=float(rate_hz), start_time_s=start_wall, channels=ai)

    def set_dc(self, levels_v: dict[str, float]) -> None:
        names = self._channels(list(levels_v), self.ao_channels, "set_dc")
        values = np.array([float(v) for v in levels_v.values()])
        self._levels(values, "set_dc")
        for ch, value in zip(names, values.tolist()):
            self._write(self._ao[ch], f"AO {ch}", value)
            self._dc_v[ch] = value

    def dc_levels_v(self) -> dict[str, float]:
        return dict(self._dc_v)

    def set_digital(self, states: dict[str, bool]) -> None:
        names = self._channels(list(states), self.do_lines, "set_digital")
        for ch, state in zip(names, states.values()):
            self._write(self._do[ch], f"DO {ch}", bool(state))
            self._states[ch] = bool(state)

    def digital_states(self) -> dict[str, bool]:
        return dict(self._states)

    def identify(self) -> str:
        if isinstance(self._identity, str):
            return self._identity
        with _io(self._owner, "identify"):
            idn = self._identity()
        if isinstance(idn, Mapping):
            idn = ",".join(str(idn.get(k) or "") for k in ("vendor", "model", "serial", "firmware"))
        return str(idn)

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"adapter": "parameters", "software_timed": True,
                     "parameters": {**{c: _label(p, c) for c, p in self._ao.items()},
                                    **{c: _label(p, c) for c, p in self._ai.items()}}})
        return snap
