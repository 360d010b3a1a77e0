"""SRS SR830 / SR860 lock-in amplifiers as :class:`~labtrain.instruments.ports.LockIn` ports, over PyMeasure's drivers.

The adapters only map names and units and translate errors; every command
string is PyMeasure's (``pymeasure.instruments.srs.SR830`` / ``SR860``)::

    port property       PyMeasure           SR830            SR860
    frequency_hz        frequency           FREQ? / FREQ     FREQ? / FREQ
    amplitude_v (RMS)   sine_voltage        SLVL? / SLVL     SLVL? / SLVL
    time_constant_s     time_constant       OFLT? / OFLT i   OFLT? / OFLT i
    sensitivity_v       sensitivity         SENS? / SENS i   SCAL? / SCAL i
    read_xy()           snap("X", "Y")      SNAP? 1,2        SNAP? X, Y
    identify()          *IDN?

Time constant and sensitivity are discrete: a setter picks the next larger
step (PyMeasure's ``truncated_discrete_set``); read the property back for the
value the instrument holds.  Out-of-range requests raise ``ValueError`` before
anything is sent; PyVISA timeouts become :class:`~labtrain.instruments.ports.PortTimeout`,
other link faults and unparsable replies :class:`~labtrain.instruments.ports.PortIOError`.

``pymeasure`` (and ``pyvisa``) are imported when a port is created.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterator

from labtrain.instruments.ports import LockIn, LockInReading, PortError, PortIOError
from labtrain.drivers._common import require, translate

__all__ = ["SR830LockIn", "SR860LockIn"]


class _SRSLockIn(LockIn):
    """Shared adapter; subclasses name the PyMeasure class, ranges and snap arguments."""

    _model = ""
    _pymeasure_class = ""
    #: (low, high) reference frequency the instrument accepts, Hz
    frequency_range_hz: tuple[float, float] = (0.0, 0.0)
    #: (low, high) sine-out amplitude the instrument accepts, V RMS
    amplitude_range_v: tuple[float, float] = (0.0, 0.0)
    _snap_args: tuple[str, str] = ("X", "Y")

    @property
    def min_amplitude_v(self) -> float:
        """Smallest sine-out amplitude (V RMS): the lock-in's safe state (the SR830 cannot go to 0)."""
        return self.amplitude_range_v[0]

    def __init__(self, resource: Any, *, timeout_s: float = 3.0, visa_library: str = "",
                 **visa_kwargs: Any) -> None:
        """Open the lock-in.

        Parameters
        ----------
        resource
            A VISA resource name (``"GPIB0::8::INSTR"``, ``"TCPIP::192.168.1.20::INSTR"``), a GPIB
            address as int, a PyMeasure adapter (``VISAAdapter``, ``SerialAdapter``, the test suite's
            ``ProtocolAdapter``), or an already-open PyMeasure instrument of the right class.
        timeout_s
            VISA I/O timeout (only when ``resource`` is an address).
        visa_library
            PyVISA backend, e.g. ``"@py"`` (pyvisa-py) or ``"file.yaml@sim"`` (pyvisa-sim); empty: default.
        visa_kwargs
            More PyVISA resource options (``read_termination``, ``write_termination``, ``baud_rate`` ...).
        """
        srs = require("pymeasure.instruments.srs", type(self).__name__, "pymeasure")
        cls = getattr(srs, self._pymeasure_class)
        self.resource = resource if isinstance(resource, (str, int)) else type(resource).__name__
        if isinstance(resource, cls):
            self.instrument = resource
            return
        if isinstance(resource, (str, int)):
            require("pyvisa", type(self).__name__)
            opts = {"read_termination": "\n", "write_termination": "\n", "timeout": int(timeout_s * 1000)}
            opts.update(visa_kwargs)
            try:
                self.instrument = cls(resource, visa_library=visa_library, **opts)
            except Exception as exc:  # no VISA library (pyvisa raises ValueError), unknown resource, no answer
                err = translate(exc, f"{self._model}: opening {resource!r}")
                raise err from exc
        else:
            self.instrument = cls(resource)

    # ----------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def _io(self, what: str, reply_errors: bool = False) -> Iterator[None]:
        """Translate library exceptions; with ``reply_errors`` also a reply that does not parse."""
        try:
            yield
        except PortError:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            if not reply_errors:
                raise
            raise PortIOError(f"{self._model}: {what}: unexpected reply ({exc})") from exc
        except Exception as exc:
            raise translate(exc, f"{self._model}: {what}") from exc

    def _float(self, value: Any, what: str) -> float:
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise PortIOError(f"{self._model}: {what}: reply {value!r} is not a number") from None
        if not math.isfinite(out):
            raise PortIOError(f"{self._model}: {what}: reply {value!r} is not finite")
        return out

    def _get(self, name: str) -> float:
        with self._io(f"reading {name}", reply_errors=True):
            value = getattr(self.instrument, name)
        return self._float(value, f"reading {name}")

    def _set(self, name: str, value: float) -> None:
        if not isinstance(getattr(type(self.instrument), name, None), property):
            # an older PyMeasure (SR860 before 0.16 only had ``sensitvity``) would silently store a plain attribute
            raise PortError(f"{self._model}: PyMeasure's {type(self.instrument).__name__} has no '{name}' property; "
                            f"install pymeasure>=0.16")
        with self._io(f"setting {name}"):
            setattr(self.instrument, name, value)

    @staticmethod
    def _check(value: float, lo: float, hi: float, what: str, unit: str, low_open: bool = False) -> float:
        """``lo <= value <= hi``; with ``low_open`` any ``0 < value <= hi`` (a discrete setting rounds up to lo)."""
        value = float(value)
        ok = math.isfinite(value) and value <= hi and (0 < value if low_open else lo <= value)
        if not ok:
            rng = (f"(0, {hi:g}] {unit}, rounded up to the next step from {lo:g}" if low_open
                   else f"[{lo:g}, {hi:g}] {unit}")
            raise ValueError(f"{what} = {value!r} {unit}: allowed range {rng}")
        return value

    # ----------------------------------------------------------------- settings
    @property
    def frequency_hz(self) -> float:
        """Reference frequency (Hz), internal reference."""
        return self._get("frequency")

    @frequency_hz.setter
    def frequency_hz(self, value: float) -> None:
        self._set("frequency", self._check(value, *self.frequency_range_hz, "frequency_hz", "Hz"))

    @property
    def amplitude_v(self) -> float:
        """Sine-out amplitude (V RMS)."""
        return self._get("sine_voltage")

    @amplitude_v.setter
    def amplitude_v(self, value: float) -> None:
        self._set("sine_voltage", self._check(value, *self.amplitude_range_v, "amplitude_v", "V"))

    @property
    def time_constant_s(self) -> float:
        """Output filter time constant (s); setting picks the next larger step."""
        return self._get("time_constant")

    @time_constant_s.setter
    def time_constant_s(self, value: float) -> None:
        steps = type(self.instrument).TIME_CONSTANTS
        self._set("time_constant", self._check(value, min(steps), max(steps), "time_constant_s", "s", low_open=True))

    @property
    def sensitivity_v(self) -> float:
        """Full-scale sensitivity (V); setting picks the next larger step."""
        return self._get("sensitivity")

    @sensitivity_v.setter
    def sensitivity_v(self, value: float) -> None:
        steps = type(self.instrument).SENSITIVITIES
        self._set("sensitivity", self._check(value, min(steps), max(steps), "sensitivity_v", "V", low_open=True))

    # ----------------------------------------------------------------- readings
    def read_xy(self) -> LockInReading:
        """X and Y (V RMS) taken at one instant (SNAP?), with the host time of the query."""
        t = time.time()
        with self._io("reading X, Y", reply_errors=True):
            values = self.instrument.snap(*self._snap_args)
        if len(values) != 2:
            raise PortIOError(f"{self._model}: reading X, Y: expected 2 values, got {values!r}")
        return LockInReading(self._float(values[0], "reading X"), self._float(values[1], "reading Y"), t)

    def identify(self) -> str:
        with self._io("identify"):
            idn = str(self.instrument.ask("*IDN?")).strip()
        if not idn:
            raise PortIOError(f"{self._model}: empty reply to *IDN?")
        return idn

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"model": self._model, "resource": self.resource})
        return snap

    def close(self) -> None:
        with self._io("closing"):
            self.instrument.adapter.close()


class SR830LockIn(_SRSLockIn):
    """Stanford Research Systems SR830 (GPIB or RS-232) through ``pymeasure.instruments.srs.SR830``.

    frequency_hz 1 mHz .. 102 kHz; amplitude_v 4 mV .. 5 V RMS (2 mV steps);
    time_constant_s 10 us .. 30 ks; sensitivity_v 2 nV .. 1 V.
    """

    _model = "SR830"
    _pymeasure_class = "SR830"
    frequency_range_hz = (1e-3, 102e3)
    amplitude_range_v = (0.004, 5.0)
    _snap_args = ("X", "Y")

    def identify(self) -> str:
        with self._io("identify"):
            idn = str(self.instrument.id).strip()  # PyMeasure's SR830.id: *IDN?
        if not idn:
            raise PortIOError(f"{self._model}: empty reply to *IDN?")
        return idn


class SR860LockIn(_SRSLockIn):
    """Stanford Research Systems SR860 (GPIB, USB-TMC, Ethernet) through ``pymeasure.instruments.srs.SR860``.

    frequency_hz 1 mHz .. 500 kHz; amplitude_v 1 nV .. 2 V RMS; time_constant_s 1 us .. 30 ks;
    sensitivity_v 1 nV .. 1 V.
    """

    _model = "SR860"
    _pymeasure_class = "SR860"
    frequency_range_hz = (1e-3, 500e3)
    amplitude_range_v = (1e-9, 2.0)
    _snap_args = ("X", "Y")
