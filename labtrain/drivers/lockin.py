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
    (when opened)       OUTX 0 / *IDN?      OUTX 0 on RS-232, then *IDN? (model checked)

Over RS-232 (VISA ``ASRL`` resources) the SR830 ends its replies with CR and must
be told ``OUTX 0`` before the first query, or it answers on GPIB; the adapter
sends it and reads up to CR there, LF everywhere else.  The SR860 ends replies
with LF on every interface and answers where it was asked.

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

from labtrain.instruments.ports import LockIn, LockInReading, PortError, PortIOError, unwrap
from labtrain.drivers._common import require, translate
from labtrain.instruments.drivers import DriverSpec
from labtrain.schema import Field

__all__ = ["SR830LockIn", "SR860LockIn", "SR830_DRIVER", "SR860_DRIVER"]


class _SRSLockIn(LockIn):
    """Shared adapter; subclasses name the PyMeasure class, ranges and snap arguments."""

    _model = ""
    _pymeasure_class = ""
    #: (low, high) reference frequency the instrument accepts, Hz
    frequency_range_hz: tuple[float, float] = (0.0, 0.0)
    #: (low, high) sine-out amplitude the instrument accepts, V RMS
    amplitude_range_v: tuple[float, float] = (0.0, 0.0)
    _snap_args: tuple[str, str] = ("X", "Y")

    #: models (second field of the ``*IDN?`` reply) this class drives
    _models: tuple[str, ...] = ()
    #: (read, write) termination over RS-232 (VISA ``ASRL`` resources) and over every other interface
    _serial_terminations: tuple[str, str] = ("\n", "\n")
    _terminations: tuple[str, str] = ("\n", "\n")
    #: command that directs replies to an interface (``output_interface``); empty: replies go where asked
    _outx: dict[str, str] = {}
    OUTPUT_INTERFACES = ("auto", "rs232", "gpib", "none")

    @property
    def min_amplitude_v(self) -> float:
        """Smallest sine-out amplitude (V RMS): the lock-in's safe state (the SR830 cannot go to 0)."""
        return self.amplitude_range_v[0]

    def __init__(self, resource: Any, *, timeout_s: float = 3.0, visa_library: str = "",
                 output_interface: str = "auto", check_identity: bool = True, **visa_kwargs: Any) -> None:
        """Open the lock-in, direct its replies to the link in use and check that it is the model claimed.

        Parameters
        ----------
        resource
            A VISA resource name (``"GPIB0::8::INSTR"``, ``"TCPIP::192.168.1.20::INSTR"``,
            ``"ASRL/dev/ttyUSB0::INSTR"``), a GPIB address as int, a PyMeasure adapter (``VISAAdapter``,
            ``SerialAdapter``, the test suite's ``ProtocolAdapter``), or an already-open PyMeasure
            instrument of the right class.  Anything else is a ``TypeError``.
        timeout_s
            VISA I/O timeout (only when ``resource`` is an address).
        visa_library
            PyVISA backend, e.g. ``"@py"`` (pyvisa-py) or ``"file.yaml@sim"`` (pyvisa-sim); empty: default.
        output_interface : {"auto", "rs232", "gpib", "none"}
            SR830 only: send ``OUTX 0`` (rs232) or ``OUTX 1`` (gpib) before anything else, so that replies
            come back on the link in use; ``"auto"``: ``OUTX 0`` on a serial (ASRL) link, nothing otherwise.
        check_identity
            Ask ``*IDN?`` once opened and raise ``ValueError`` unless the reply names this model -- before
            any setting is sent (a wrong address must not receive lock-in commands).
        visa_kwargs
            More PyVISA resource options (``read_termination``, ``write_termination``, ``baud_rate``,
            ``parity`` ...); they override the defaults: LF both ways, and on RS-232 the model's own
            (SR830: CR both ways).
        """
        who = type(self).__name__
        srs = require("pymeasure.instruments.srs", who, "pymeasure")
        adapters = require("pymeasure.adapters", who, "pymeasure")
        cls = getattr(srs, self._pymeasure_class)
        if output_interface not in self.OUTPUT_INTERFACES:
            raise ValueError(f"{who}: output_interface = {output_interface!r}; allowed: "
                             f"{', '.join(self.OUTPUT_INTERFACES)}")
        if output_interface in ("rs232", "gpib") and not self._outx:
            raise ValueError(f"{who}: output_interface = {output_interface!r}: the {self._model} answers on the "
                             f"interface it was asked on; use 'auto' or 'none'")
        owned = False
        if isinstance(resource, cls):
            self.instrument = resource
        elif isinstance(resource, bool) or not isinstance(resource, (str, int, adapters.Adapter)):
            what = type(resource).__name__
            hint = f" (a PyMeasure {what}, not a {self._pymeasure_class})" if isinstance(
                resource, require("pymeasure.instruments", who, "pymeasure").Instrument) else ""
            raise TypeError(f"{who}: got a {what}{hint}; expected a VISA resource name, a GPIB address, a "
                            f"PyMeasure adapter or a pymeasure.instruments.srs.{self._pymeasure_class}")
        elif isinstance(resource, (str, int)):
            constants = require("pyvisa.constants", who, "pyvisa")
            read, write = self._terminations
            opts: dict[str, Any] = {name: {"read_termination": read, "write_termination": write}
                                    for name in constants.InterfaceType.__members__}
            read, write = self._serial_terminations
            opts["asrl"] = {"read_termination": read, "write_termination": write}  # PyMeasure: per-interface
            opts["timeout"] = int(timeout_s * 1000)
            opts.update(visa_kwargs)  # the caller's options win over the per-interface defaults
            try:
                self.instrument = cls(resource, visa_library=visa_library, **opts)
            except Exception as exc:  # no VISA library (pyvisa raises ValueError), unknown resource, no answer
                err = translate(exc, f"{self._model}: opening {resource!r}")
                raise err from exc
            owned = True
        else:
            self.instrument = cls(resource)
            owned = True
        self.resource = resource if isinstance(resource, (str, int)) else type(resource).__name__
        try:
            self.output_interface = self._direct_replies(output_interface)
            if check_identity:
                self._check_identity()
        except BaseException:
            if owned:
                with contextlib.suppress(Exception):
                    self.instrument.adapter.close()
            raise

    def is_serial(self) -> bool:
        """True when the link is RS-232: a VISA ``ASRL`` resource or a PyMeasure ``SerialAdapter``."""
        adapter = getattr(self.instrument, "adapter", None)
        if type(adapter).__name__ == "SerialAdapter":
            return True
        kind = getattr(getattr(adapter, "connection", None), "interface_type", None)
        return getattr(kind, "name", None) == "asrl"

    def _direct_replies(self, output_interface: str) -> str:
        """Send the model's ``OUTX`` for ``output_interface``; returns the interface chosen (or "none")."""
        choice = output_interface
        if choice == "auto":
            choice = "rs232" if self._outx and self.is_serial() else "none"
        if choice != "none":
            with self._io(f"directing replies to {choice} ({self._outx[choice]})"):
                self.instrument.write(self._outx[choice])
        return choice

    def _check_identity(self) -> None:
        idn = self.identify()
        fields = [f.strip() for f in idn.split(",")]
        model = fields[1].upper() if len(fields) > 1 else ""
        if model not in self._models:
            raise ValueError(f"{self._model}: {self.resource!r} answered *IDN? with {idn!r}: model "
                             f"{model or '?'}, expected {' or '.join(self._models)}; check the address")

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
    _models = ("SR830", "SR810")
    # manual, "RS232 interface": replies end with CR over RS-232; commands may end with CR or LF
    _serial_terminations = ("\r", "\r")
    _outx = {"rs232": "OUTX 0", "gpib": "OUTX 1"}
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
    _models = ("SR860", "SR865", "SR865A")
    frequency_range_hz = (1e-3, 500e3)
    amplitude_range_v = (1e-9, 2.0)
    _snap_args = ("X", "Y")


# ---------------------------------------------------------------------------- DRIVER specs
_TERMINATIONS = ("\r", "\n", "\r\n")


def _check_visa_options(options: dict[str, Any]) -> None:
    for key in ("read_termination", "write_termination"):
        value = options.get(key)
        if value is not None and value not in _TERMINATIONS:
            raise ValueError(f"options.{key} = {value!r}: expected \"\\r\", \"\\n\" or \"\\r\\n\"")


def _visa_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """PyVISA resource options from the file's options (only those given)."""
    out: dict[str, Any] = {}
    for key in ("read_termination", "write_termination", "baud_rate"):
        if options.get(key) is not None:
            out[key] = options[key]
    if options.get("parity") is not None:
        constants = require("pyvisa.constants", "SRS lock-in", "pyvisa")
        out["parity"] = constants.Parity[options["parity"]]
    return out


def _open_sr830(resource: str, options: dict[str, Any]) -> SR830LockIn:
    if not resource:
        raise ValueError("sr830: resource is empty; expected a VISA resource such as 'GPIB0::8::INSTR' or "
                         "'ASRL/dev/ttyUSB0::INSTR'")
    return SR830LockIn(resource, timeout_s=options["timeout_s"], visa_library=options["visa_library"],
                       output_interface=options["output_interface"], check_identity=options["check_identity"],
                       **_visa_kwargs(options))


def _open_sr860(resource: str, options: dict[str, Any]) -> SR860LockIn:
    if not resource:
        raise ValueError("sr860: resource is empty; expected a VISA resource such as "
                         "'TCPIP::192.168.1.20::INSTR' or 'USB0::0xB506::0x2000::003101::INSTR'")
    return SR860LockIn(resource, timeout_s=options["timeout_s"], visa_library=options["visa_library"],
                       check_identity=options["check_identity"], **_visa_kwargs(options))


def _visa_options(**extra: Field) -> dict[str, Field]:
    base = {
        "timeout_s": Field("float", 3.0, "VISA I/O timeout (s)", 0, 600, low_open=True),
        "visa_library": Field("str", "", "PyVISA backend: '' (default), '@py' (pyvisa-py), 'file.yaml@sim'"),
        "read_termination": Field("str", None, "reply terminator; default LF (SR830 over RS-232: CR)"),
        "write_termination": Field("str", None, "command terminator; default LF (SR830 over RS-232: CR)"),
        "baud_rate": Field("int", None, "RS-232 speed (bit/s) as set on the instrument's front panel",
                           300, 115200),
        "parity": Field("str", None, "RS-232 parity as set on the instrument", choices=("none", "odd", "even")),
        "check_identity": Field("bool", True, "ask *IDN? when opened and refuse another model"),
    }
    base.update(extra)
    return base


def _lockin_channels(port: Any) -> dict[str, Any]:
    inner = unwrap(port)
    return {"amplitude_range_v": tuple(inner.amplitude_range_v), "frequency_range_hz": tuple(inner.frequency_range_hz),
            "product": inner._model}


#: ``driver = "sr830"``: an SRS SR830 (or SR810) over GPIB or RS-232
SR830_DRIVER = DriverSpec(
    name="sr830", port="lockin", open=_open_sr830, channels=_lockin_channels, extra="hardware",
    description="SRS SR830 / SR810 lock-in over GPIB or RS-232 (PyMeasure + PyVISA)",
    resource_doc="VISA resource: 'GPIB0::8::INSTR', 'ASRL/dev/ttyUSB0::INSTR', 'ASRL3::INSTR'",
    options=_visa_options(output_interface=Field(
        "str", "auto", "send OUTX 0 (rs232) / OUTX 1 (gpib) first; auto: OUTX 0 on a serial link",
        choices=SR830LockIn.OUTPUT_INTERFACES)),
    validate=_check_visa_options,
)

#: ``driver = "sr860"``: an SRS SR860 / SR865(A) over GPIB, USB-TMC, Ethernet or RS-232
SR860_DRIVER = DriverSpec(
    name="sr860", port="lockin", open=_open_sr860, channels=_lockin_channels, extra="hardware",
    description="SRS SR860 / SR865 lock-in over GPIB, USB, Ethernet or RS-232 (PyMeasure + PyVISA)",
    resource_doc="VISA resource: 'TCPIP::192.168.1.20::INSTR', 'USB0::0xB506::0x2000::003101::INSTR', "
                 "'GPIB0::4::INSTR'",
    options=_visa_options(),
    validate=_check_visa_options,
)
