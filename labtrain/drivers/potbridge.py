"""Digital-potentiometer arrays as :class:`~labtrain.instruments.ports.PotArray` ports.

:class:`SerialPotBridge`
    A microcontroller that owns the pots (any SPI/I2C parts) and speaks the
    labtrain pot-bridge line protocol over a (USB-)serial port, via pyserial.
    The protocol (``docs/hardware.md``, "Pot-bridge line protocol")::

        line     = body "*" hh "\\n"      hh = XOR of the body's bytes, 2 upper-case hex digits
        IDN?                      -> IDN <text>
        CFG?                      -> CFG <n_channels> <n_taps>
        SET <ch> <tap>            -> OK <ch> <tap>                     (tap the part holds now)
        GET <ch>                  -> TAP <ch> <tap>
        SETM <ch>:<tap> ...       -> OKM <ch>:<tap> ...                (same pairs, same order)
        GETM <ch> ...             -> TAPM <ch>:<tap> ...
        any                       -> ERR <code> <text>

:class:`FTDIAD5293Chain`
    AD5293 (10 bit, 1024 positions) parts in one SPI daisy chain driven
    directly from an FTDI MPSSE bridge (FT232H/FT2232H) through pyftdi.

``pyserial`` / ``pyftdi`` are imported when a port is created, and not at all
when a ready link object (``link=`` / ``spi=``) is passed in -- that is how
the tests drive them byte for byte.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from labtrain.instruments.ports import PortError, PortIOError, PortTimeout, PotArray, PotCalibration
from labtrain.drivers._common import require, translate
from labtrain.instruments.drivers import DriverSpec
from labtrain.schema import Field

__all__ = ["SerialPotBridge", "FTDIAD5293Chain", "checksum", "frame_line", "parse_line", "BRIDGE_ERRORS",
           "ad5293_word", "AD5293_NOP", "AD5293_WRITE_RDAC", "AD5293_READ_RDAC", "AD5293_RESET",
           "AD5293_WRITE_CONTROL", "AD5293_READ_CONTROL", "AD5293_POWER_DOWN", "AD5293_C1_RDAC_WRITE_ENABLE",
           "AD5293_C2_NORMAL_MODE", "SERIAL_DRIVER", "FTDI_DRIVER"]

# ====================================================================== serial bridge
#: error codes a bridge may answer with ``ERR <code> <text>``
BRIDGE_ERRORS = {
    1: "bad checksum",
    2: "unknown command",
    3: "bad syntax or argument",
    4: "channel out of range",
    5: "tap out of range",
    6: "part did not acknowledge or read back wrongly",
    7: "line too long",
}
_BODY = re.compile(r"^[\x20-\x29\x2b-\x7e]+$")  # printable ASCII except '*'


def checksum(body: str | bytes) -> int:
    """XOR of every byte of ``body`` (the text between line start and ``*``)."""
    data = body.encode("ascii") if isinstance(body, str) else bytes(body)
    value = 0
    for b in data:
        value ^= b
    return value


def frame_line(body: str) -> bytes:
    """``body*HH\\n`` as bytes."""
    if not _BODY.match(body):
        raise ValueError(f"bridge line body must be printable ASCII without '*': {body!r}")
    return f"{body}*{checksum(body):02X}\n".encode("ascii")


def parse_line(raw: bytes) -> str:
    """Check a reply's framing and checksum; return its body.  Raises PortTimeout / PortIOError."""
    if not raw:
        raise PortTimeout("pot bridge: no reply")
    if not raw.endswith(b"\n"):
        raise PortTimeout(f"pot bridge: incomplete reply {raw!r} (no newline before the timeout)")
    try:
        line = raw.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise PortIOError(f"pot bridge: reply is not ASCII: {raw!r}") from None
    body, star, hh = line.rpartition("*")
    if not star or len(hh) != 2 or not _BODY.match(body or "*"):
        raise PortIOError(f"pot bridge: malformed reply {raw!r}")
    try:
        received = int(hh, 16)
    except ValueError:
        raise PortIOError(f"pot bridge: malformed checksum in {raw!r}") from None
    if received != checksum(body):
        raise PortIOError(f"pot bridge: bad checksum in {raw!r} (expected {checksum(body):02X})")
    return body


class SerialPotBridge(PotArray):
    """A pot array behind a microcontroller bridge speaking the labtrain line protocol.

    Parameters
    ----------
    port : str
        Serial port or pyserial URL: ``"/dev/ttyACM0"``, ``"COM5"``, ``"loop://"``,
        ``"socket://host:port"``.  Ignored when ``link`` is given.
    n_channels, n_taps : int
        What the bridge must report (``CFG?``); checked before the first write.  ``n_taps``
        defaults to the calibration's, else 1024.
    calibration : PotCalibration, optional
        Tap-to-resistance table; default: nominal from ``r_total_ohm`` / ``r_wiper_ohm`` / ``r_end_ohm``.
    baudrate : int
        Serial speed (the bridge's USB CDC ignores it; a UART bridge needs it).
    timeout_s : float
        Longest wait for one reply line.
    max_line_chars : int
        Longest line (body + ``*HH``) either side may send; ``SETM`` / ``GETM`` are split so that
        both the command and its reply fit.
    link : object, optional
        A ready, open link with ``write(bytes)`` and ``readline() -> bytes`` (and optionally
        ``reset_input_buffer()`` / ``close()``): a ``serial.Serial`` or a test fake.
    """

    def __init__(self, port: str = "", n_channels: int = 1, n_taps: int | None = None,
                 calibration: PotCalibration | None = None, *, r_total_ohm: float = 1e5, r_wiper_ohm: float = 0.0,
                 r_end_ohm: float = 0.0, baudrate: int = 115200, timeout_s: float = 0.5,
                 max_line_chars: int = 128, link: Any = None) -> None:
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if n_taps is None:
            n_taps = calibration.n_taps if calibration is not None else 1024
        if int(n_taps) < 2:
            raise ValueError(f"n_taps must be >= 2, got {n_taps}")
        if max_line_chars < 32:
            raise ValueError(f"max_line_chars must be >= 32, got {max_line_chars}")
        self.n_channels = int(n_channels)
        self.n_taps = int(n_taps)
        self.calibration = PotCalibration.for_device(calibration, self.n_channels, self.n_taps, r_total_ohm,
                                                     r_wiper_ohm, r_end_ohm, "bridge")
        self.port = port
        self.timeout_s = float(timeout_s)
        self.max_line_chars = int(max_line_chars)
        self._identity: str | None = None
        if link is None:
            if not port:
                raise ValueError("SerialPotBridge needs a serial port (e.g. '/dev/ttyACM0') or a link")
            serial = require("serial", "SerialPotBridge", "pyserial")
            try:
                link = serial.serial_for_url(port, baudrate=baudrate, timeout=self.timeout_s,
                                             write_timeout=self.timeout_s)
            except Exception as exc:
                raise translate(exc, f"pot bridge: opening {port!r}") from exc
        self._link = link

    # ----------------------------------------------------------------- protocol
    def _exchange(self, body: str) -> str:
        """Send one command line, return the reply body (``ERR`` -> PortIOError)."""
        line = frame_line(body)
        if len(line) - 1 > self.max_line_chars:
            raise ValueError(f"pot bridge: line of {len(line) - 1} chars exceeds max_line_chars={self.max_line_chars}")
        try:
            if hasattr(self._link, "reset_input_buffer"):
                self._link.reset_input_buffer()  # drop stale bytes from an earlier timed-out reply
            self._link.write(line)
            raw = self._link.readline()
        except Exception as exc:
            raise translate(exc, f"pot bridge: {body.split()[0]}") from exc
        reply = parse_line(raw)
        if reply == "ERR" or reply.startswith("ERR "):
            parts = reply.split(" ", 2)
            code = parts[1] if len(parts) > 1 else "?"
            text = parts[2] if len(parts) > 2 else BRIDGE_ERRORS.get(int(code) if code.isdigit() else 0, "")
            raise PortIOError(f"pot bridge answered {body!r} with error {code}: {text}")
        return reply

    @staticmethod
    def _expect(reply: str, keyword: str, sent: str) -> list[str]:
        fields = reply.split(" ")
        if fields[0] != keyword:
            raise PortIOError(f"pot bridge: sent {sent!r}, expected {keyword} ..., got {reply!r}")
        return fields[1:]

    def _int(self, text: str, reply: str) -> int:
        if not text.isdigit():
            raise PortIOError(f"pot bridge: {text!r} in {reply!r} is not a number")
        return int(text)

    def _pairs(self, fields: list[str], reply: str) -> list[tuple[int, int]]:
        out = []
        for f in fields:
            ch, colon, tap = f.partition(":")
            if not colon:
                raise PortIOError(f"pot bridge: {f!r} in {reply!r} is not <channel>:<tap>")
            out.append((self._int(ch, reply), self._held(tap, reply)))
        return out

    def _held(self, text: str, reply: str) -> int:
        """A tap the bridge reports holding: a number in 0 .. n_taps-1."""
        tap = self._int(text, reply)
        if tap >= self.n_taps:
            raise PortIOError(f"pot bridge: tap {tap} in {reply!r} is beyond the last tap {self.n_taps - 1}")
        return tap

    def _chunks(self, head: str, items: list[str]) -> list[list[str]]:
        """Split ``items`` into runs whose line ``head item item ...*HH`` fits ``max_line_chars``."""
        chunks, cur, length = [], [], len(head) + 3  # "*HH"
        for item in items:
            if cur and length + 1 + len(item) > self.max_line_chars:
                chunks.append(cur)
                cur, length = [], len(head) + 3
            cur.append(item)
            length += 1 + len(item)
        if cur:
            chunks.append(cur)
        return chunks

    # ----------------------------------------------------------------- commands
    def identify(self) -> str:
        """``IDN?`` text; also checks ``CFG?`` against n_channels / n_taps (applies nothing)."""
        idn = self._exchange("IDN?")
        if not idn.startswith("IDN ") or not idn[4:].strip():
            raise PortIOError(f"pot bridge: sent 'IDN?', got {idn!r}")
        cfg = self._exchange("CFG?")
        fields = self._expect(cfg, "CFG", "CFG?")
        if len(fields) != 2:
            raise PortIOError(f"pot bridge: malformed reply to 'CFG?': {cfg!r}")
        n_ch, n_taps = (self._int(f, cfg) for f in fields)
        if (n_ch, n_taps) != (self.n_channels, self.n_taps):
            raise PortError(f"pot bridge {idn[4:].strip()!r} has {n_ch} channels x {n_taps} taps, configured "
                            f"{self.n_channels} x {self.n_taps}")
        self._identity = idn[4:].strip()
        return self._identity

    def set_tap(self, channel: int, tap: int) -> int:
        """``SET``: one channel; returns the tap the part reports holding."""
        channel, tap = self._check_channel(channel), self._check_tap(tap)
        self._verified()
        sent = f"SET {channel} {tap}"
        reply = self._exchange(sent)
        fields = self._expect(reply, "OK", sent)
        if len(fields) != 2 or self._int(fields[0], reply) != channel:
            raise PortIOError(f"pot bridge: sent {sent!r}, echo {reply!r} does not match")
        return self._held(fields[1], reply)

    def get_tap(self, channel: int) -> int:
        """``GET``: one channel's tap."""
        channel = self._check_channel(channel)
        sent = f"GET {channel}"
        reply = self._exchange(sent)
        fields = self._expect(reply, "TAP", sent)
        if len(fields) != 2 or self._int(fields[0], reply) != channel:
            raise PortIOError(f"pot bridge: sent {sent!r}, reply {reply!r} does not match")
        return self._held(fields[1], reply)

    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        """Set every channel (``SETM`` lines, as many as the line limit needs); returns the taps echoed."""
        taps = self._check_taps(taps)
        self._verified()
        held = np.empty(self.n_channels, dtype=np.int64)
        items = [f"{c}:{int(t)}" for c, t in enumerate(taps)]
        for chunk in self._chunks("SETM", items):
            sent = "SETM " + " ".join(chunk)
            reply = self._exchange(sent)
            pairs = self._pairs(self._expect(reply, "OKM", sent), reply)
            want = [int(item.split(":")[0]) for item in chunk]
            if [c for c, _ in pairs] != want:
                raise PortIOError(f"pot bridge: sent {sent!r}, echo {reply!r} names other channels")
            for c, t in pairs:
                held[c] = t
        return held

    def get_taps(self) -> np.ndarray:
        """Every channel's tap (``GETM`` lines)."""
        taps = np.empty(self.n_channels, dtype=np.int64)
        # chunk by the longest possible *reply* item ("<ch>:<n_taps-1>"): the reply must fit the limit too
        longest = [f"{c}:{self.n_taps - 1}" for c in range(self.n_channels)]
        for reply_chunk in self._chunks("TAPM", longest):
            chunk = [item.split(":")[0] for item in reply_chunk]
            sent = "GETM " + " ".join(chunk)
            reply = self._exchange(sent)
            pairs = self._pairs(self._expect(reply, "TAPM", sent), reply)
            if [c for c, _ in pairs] != [int(c) for c in chunk]:
                raise PortIOError(f"pot bridge: sent {sent!r}, reply {reply!r} names other channels")
            for c, t in pairs:
                taps[c] = t
        return taps

    # ----------------------------------------------------------------- checks
    def _verified(self) -> None:
        if self._identity is None:
            self.identify()

    def _check_channel(self, channel: int) -> int:
        if not 0 <= int(channel) < self.n_channels:
            raise ValueError(f"channel {channel} out of range 0..{self.n_channels - 1}")
        return int(channel)

    def _check_tap(self, tap: int) -> int:
        if int(tap) != tap or not 0 <= int(tap) < self.n_taps:
            raise ValueError(f"tap {tap} must be an integer in 0..{self.n_taps - 1}")
        return int(tap)

    def _check_taps(self, taps: np.ndarray) -> np.ndarray:
        arr = np.asarray(taps)
        if arr.shape != (self.n_channels,):
            raise ValueError(f"taps must have shape ({self.n_channels},), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("taps must be integers")
        arr = arr.astype(np.int64)
        if arr.min() < 0 or arr.max() >= self.n_taps:
            raise ValueError(f"taps must be in 0..{self.n_taps - 1}, got {arr.min()}..{arr.max()}")
        return arr

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["port"] = self.port
        return snap

    def close(self) -> None:
        close = getattr(self._link, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                raise translate(exc, "pot bridge: closing") from exc


# ====================================================================== AD5293 over FTDI SPI
# 16-bit input word: DB15 DB14 = 0 0, DB13..DB10 = command code C3..C0, DB9..DB0 = data.  The constants are the
# C3..C0 *codes* (as in ADI's no-OS ad5293 driver).  The datasheet numbers its commands 0..6 and skips the codes
# its 20-TP sibling AD5292 uses for memory, so "command 3" (reset) is code 4, "command 4" (control-register write)
# code 6, "command 5" (control-register read) code 7 and "command 6" (power-down) code 8.
AD5293_NOP = 0            #: do nothing (used to clock readback data out)
AD5293_WRITE_RDAC = 1     #: write DB9..DB0 to the wiper register (needs C1 = 1 in the control register)
AD5293_READ_RDAC = 2      #: the wiper setting comes out of SDO in the *next* frame
AD5293_RESET = 4          #: wiper to midscale (datasheet command 3)
AD5293_WRITE_CONTROL = 6  #: write DB2..DB1 (C2, C1) to the control register (datasheet command 4)
AD5293_READ_CONTROL = 7   #: the control register comes out of SDO in the next frame (datasheet command 5)
AD5293_POWER_DOWN = 8     #: DB0 = 1: shutdown, 0: normal (datasheet command 6)
AD5293_C1_RDAC_WRITE_ENABLE = 0x002  #: control bit C1: 1 = wiper may be written over SPI (power-on: 0, locked)
AD5293_C2_NORMAL_MODE = 0x004        #: control bit C2: 1 = normal mode, 0 = resistor performance mode (power-on)


def ad5293_word(command: int, data: int = 0) -> int:
    """One AD5293 input word: ``command << 10 | data`` (data 10 bits)."""
    if not 0 <= command <= 15:
        raise ValueError(f"AD5293 command must be 0..15, got {command}")
    if not 0 <= data <= 0x3FF:
        raise ValueError(f"AD5293 data must be 0..1023, got {data}")
    return (command << 10) | data


class FTDIAD5293Chain(PotArray):
    """``n_channels`` AD5293 digital pots in one SPI daisy chain on an FTDI MPSSE port (pyftdi).

    Chain order: position 0 is the part whose SDI is wired to the FTDI's MOSI (ADx/DO), its SDO
    feeds position 1's SDI, ..., and the last part's SDO goes to MISO (ADx/DI) -- with a pull-up,
    SDO is open drain.  One frame (one /SYNC low period) shifts ``n_channels`` 16-bit words, MSB first;
    the word sent first travels furthest, so frame word ``k`` belongs to position ``n_channels-1-k``,
    and the same holds for the words clocked out of MISO.  Channel ``c`` of the port is chain
    position ``c``.

    ``set_taps``: unlock frame (command 6, C1 = 1), write frame (command 1 per part), lock frame
    (command 6, C1 = 0, unless ``relock=False``), then a readback (command 2 frame + NOP frame);
    a part reading back anything but what it was sent raises :class:`~labtrain.instruments.ports.PortIOError`.
    ``get_taps`` / ``identify``: readback only (nothing is written to a wiper).

    Parameters
    ----------
    url : str
        pyftdi URL of the MPSSE interface, e.g. ``"ftdi://ftdi:232h/1"``.  Ignored when ``spi`` is given.
    n_channels : int
        Parts in the chain (one channel each).
    calibration : PotCalibration, optional
        Default: nominal 1024-tap table from ``r_total_ohm`` (AD5293: 20, 50 or 100 kOhm) / ``r_wiper_ohm``.
    cs : int
        Chip-select line of the FTDI (0 = ADx/CS on AD3).
    frequency_hz : float
        SCLK.  In a daisy chain every SDO is open drain with a pull-up: keep the clock slow (default 1 MHz).
    normal_mode : bool
        Set control bit C2 (normal mode) instead of resistor performance mode (power-on default).
    relock : bool
        Clear C1 again after every write, so a glitch on the bus cannot move a wiper.
    spi : object, optional
        A ready SPI port with ``exchange(out, readlen=0, duplex=False)`` (pyftdi ``SpiPort`` or a fake).
    """

    def __init__(self, url: str = "", n_channels: int = 1, calibration: PotCalibration | None = None, *,
                 r_total_ohm: float = 20e3, r_wiper_ohm: float = 60.0, r_end_ohm: float = 0.0, cs: int = 0,
                 frequency_hz: float = 1e6, normal_mode: bool = False, relock: bool = True, spi: Any = None) -> None:
        if int(n_channels) < 1:
            raise ValueError(f"n_channels (parts in the chain) must be >= 1, got {n_channels}")
        self.n_channels = int(n_channels)
        self.n_taps = 1024
        self.calibration = PotCalibration.for_device(calibration, self.n_channels, self.n_taps, r_total_ohm,
                                                     r_wiper_ohm, r_end_ohm, "chain")
        self.url = url
        self.cs = int(cs)
        self.frequency_hz = float(frequency_hz)
        self.normal_mode = bool(normal_mode)
        self.relock = bool(relock)
        self._controller = None
        if spi is None:
            if not url:
                raise ValueError("FTDIAD5293Chain needs an FTDI URL (e.g. 'ftdi://ftdi:232h/1') or an spi port")
            spi_mod = require("pyftdi.spi", "FTDIAD5293Chain", "pyftdi")
            try:
                self._controller = spi_mod.SpiController(cs_count=self.cs + 1)
                self._controller.configure(url)
                # AD5293 samples SDI on SCLK falling edges: SPI mode 1 (CPOL = 0, CPHA = 1)
                spi = self._controller.get_port(cs=self.cs, freq=self.frequency_hz, mode=1)
            except Exception as exc:
                raise translate(exc, f"AD5293 chain: opening {url!r}") from exc
        self._spi = spi

    # ----------------------------------------------------------------- frames
    def _frame(self, words_by_position: Sequence[int]) -> bytes:
        """Bytes of one frame: position n-1's word first, position 0's last, each MSB first."""
        out = bytearray()
        for word in reversed(list(words_by_position)):
            out += int(word).to_bytes(2, "big")
        return bytes(out)

    def _xfer(self, frame: bytes, read: bool, what: str) -> bytes:
        try:
            if read:
                back = bytes(self._spi.exchange(frame, readlen=len(frame), duplex=True))
            else:
                self._spi.exchange(frame, duplex=False)
                back = b""
        except Exception as exc:
            raise translate(exc, f"AD5293 chain: {what}") from exc
        if read and len(back) != len(frame):
            raise PortIOError(f"AD5293 chain: {what}: read {len(back)} bytes, expected {len(frame)}")
        return back

    def _control_word(self, unlock: bool) -> int:
        data = (AD5293_C1_RDAC_WRITE_ENABLE if unlock else 0) | (AD5293_C2_NORMAL_MODE if self.normal_mode else 0)
        return ad5293_word(AD5293_WRITE_CONTROL, data)

    def _readback(self) -> np.ndarray:
        n = self.n_channels
        self._xfer(self._frame([ad5293_word(AD5293_READ_RDAC)] * n), False, "readback command")
        back = self._xfer(self._frame([ad5293_word(AD5293_NOP)] * n), True, "readback")
        words = [int.from_bytes(back[2 * k:2 * k + 2], "big") for k in range(n)]
        taps = np.empty(n, dtype=np.int64)
        for k, word in enumerate(words):
            position = n - 1 - k
            if word & 0xC000:
                raise PortIOError(f"AD5293 chain: readback word {word:#06x} of part {position} has DB15/DB14 set "
                                  f"(MISO floating or chain broken? all words: {back.hex()})")
            taps[position] = word & 0x3FF
        return taps

    # ----------------------------------------------------------------- PotArray
    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        arr = np.asarray(taps)
        if arr.shape != (self.n_channels,):
            raise ValueError(f"taps must have shape ({self.n_channels},), got {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() > 1023:
            raise ValueError("taps must be integers in 0..1023")
        arr = arr.astype(np.int64)
        n = self.n_channels
        self._xfer(self._frame([self._control_word(unlock=True)] * n), False, "unlocking the wipers")
        self._xfer(self._frame([ad5293_word(AD5293_WRITE_RDAC, int(t)) for t in arr]), False, "writing the wipers")
        if self.relock:
            self._xfer(self._frame([self._control_word(unlock=False)] * n), False, "locking the wipers")
        held = self._readback()
        bad = np.flatnonzero(held != arr)
        if bad.size:
            # an AD5293 holds exactly what it was sent: a difference is a bus or chain fault (retry rewrites all)
            c = int(bad[0])
            raise PortIOError(f"AD5293 chain: part {c} reads back tap {int(held[c])} after writing {int(arr[c])} "
                              f"({bad.size} of {n} parts differ)")
        return held

    def get_taps(self) -> np.ndarray:
        return self._readback()

    def identify(self) -> str:
        """The AD5293 has no ID register: a readback of every part proves the chain answers."""
        self._readback()
        where = self.url or type(self._spi).__name__
        return f"AD5293 daisy chain of {self.n_channels} on {where} (cs {self.cs}), readback ok"

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"url": self.url, "cs": self.cs, "frequency_hz": self.frequency_hz,
                     "normal_mode": self.normal_mode, "relock": self.relock})
        return snap

    def close(self) -> None:
        if self._controller is not None:
            controller, self._controller = self._controller, None
            try:
                controller.close()
            except Exception as exc:
                raise translate(exc, "AD5293 chain: closing") from exc


# ====================================================================== DRIVER specs
def _calibration(options: dict[str, Any], n_taps: int | None) -> PotCalibration | None:
    """Nominal table from the options (``None`` when a resistance is unset: the driver's defaults apply)."""
    keys = ("r_total_ohm", "r_wiper_ohm", "r_end_ohm")
    if n_taps is None or any(options.get(k) is None for k in keys):
        return None
    return PotCalibration.nominal(int(options["n_channels"]), int(n_taps), *(float(options[k]) for k in keys))


def _open_serial_bridge(resource: str, options: dict[str, Any]) -> SerialPotBridge:
    if not resource:
        raise ValueError("potbridge: resource is empty; expected a serial port such as '/dev/ttyACM0' or 'COM5'")
    n_taps = options.get("n_taps")
    return SerialPotBridge(resource, n_channels=int(options["n_channels"]), n_taps=n_taps,
                           calibration=_calibration(options, n_taps), baudrate=options["baud_rate"],
                           timeout_s=options["timeout_s"], max_line_chars=options["max_line_chars"])


def _open_ftdi_chain(resource: str, options: dict[str, Any]) -> FTDIAD5293Chain:
    if not resource:
        raise ValueError("ad5293_ftdi: resource is empty; expected a pyftdi URL such as 'ftdi://ftdi:232h/1'")
    kw = {k: float(options[k]) for k in ("r_total_ohm", "r_wiper_ohm", "r_end_ohm") if options.get(k) is not None}
    return FTDIAD5293Chain(resource, n_channels=int(options["n_channels"]),
                           calibration=_calibration(options, 1024), cs=options["cs"],
                           frequency_hz=options["frequency_hz"], normal_mode=options["normal_mode"],
                           relock=options["relock"], **kw)


def _resistances(what: str) -> dict[str, Field]:
    return {
        "r_total_ohm": Field("float", None, f"end-to-end resistance of every {what} (ohm; default [backend] "
                             "pot_r_total_ohm)", 0, 1e12, low_open=True),
        "r_wiper_ohm": Field("float", None, "wiper resistance (ohm; default [backend] pot_r_wiper_ohm)", 0, 1e9),
        "r_end_ohm": Field("float", None, "fixed resistance in series (ohm; default [backend] pot_r_end_ohm)",
                           0, 1e12),
    }


def _specs() -> tuple[DriverSpec, DriverSpec]:
    serial_options = {
        "n_taps": Field("int", None, "taps of every pot, checked against the bridge's CFG? (default [backend] "
                        "pot_taps)", 2, 1_000_000),
        **_resistances("pot"),
        "baud_rate": Field("int", 115200, "serial speed (bit/s; a USB CDC bridge ignores it)", 300, 10_000_000),
        "timeout_s": Field("float", 0.5, "longest wait for one reply line (s)", 0, 60, low_open=True),
        "max_line_chars": Field("int", 128, "longest line either side may send", 32, 65536),
    }
    ftdi_options = {
        **_resistances("AD5293 (20e3, 50e3 or 100e3)"),
        "cs": Field("int", 0, "FTDI chip-select line (0 = ADx/CS on AD3)", 0, 4),
        "frequency_hz": Field("float", 1e6, "SPI clock (Hz); keep it slow on an open-drain daisy chain", 1e3, 30e6),
        "normal_mode": Field("bool", False, "set control bit C2 (normal mode) instead of resistor performance mode"),
        "relock": Field("bool", True, "clear C1 after every write so a bus glitch cannot move a wiper"),
    }
    serial = DriverSpec(
        name="potbridge", port="pots", open=_open_serial_bridge, extra="hardware", options=serial_options,
        description="pot array behind a microcontroller bridge (labtrain line protocol over pyserial)",
        resource_doc="serial port or pyserial URL: '/dev/ttyACM0', 'COM5', 'socket://host:port'")
    ftdi = DriverSpec(
        name="ad5293_ftdi", port="pots", open=_open_ftdi_chain, extra="hardware", options=ftdi_options,
        description="AD5293 daisy chain on an FTDI MPSSE SPI port (pyftdi)",
        resource_doc="pyftdi URL of the MPSSE interface, e.g. 'ftdi://ftdi:232h/1'")
    return serial, ftdi


#: ``driver = "potbridge"`` and ``driver = "ad5293_ftdi"``
SERIAL_DRIVER, FTDI_DRIVER = _specs()
