"""Safety layer: every instrument port, real or twin, is wrapped here before a chip sees it.

What it guarantees
------------------
* **Limits before anything is sent.**  Every AO sample, DC level, pot tap and
  lock-in setting is checked against the configured limits *before* the
  wrapped port is called; a violating request raises :class:`SafetyError`
  (a ``ValueError`` with a one-line message naming the channel, the value and
  the limit) and nothing is written.
* **Slew-limited moves.**  Inside a waveform, consecutive samples must satisfy
  ``|dv| * rate_hz <= max_slew_v_per_s`` (else :class:`SafetyError`).  Every
  move the layer makes itself -- into a waveform, out of it, ``set_dc``,
  ``safe_state`` -- is a linear ramp whose steps are at most
  ``max_slew_v_per_s / rate_hz``.
* **Waveforms start and end at the safe level.**  ``SafeDAQ.write_read``
  prepends a ramp from the level each channel holds to the first sample and
  appends a ramp from the last sample to the channel's safe level, writes the
  extended waveform in *one* acquisition, and strips the AI samples of both
  ramps: the caller gets exactly the samples it asked for.
* **A safe state** -- AO ramped to the safe level (0 V by default), digital
  lines open (``False``), lock-in sine out at its minimum amplitude, pots at
  their safe taps -- on ``close()``/context exit, after an interrupt inside a
  wrapped call, and at interpreter exit for every port still open (normal end,
  uncaught exception, a ``KeyboardInterrupt`` that propagates out of the
  program, SIGTERM).
* **Ramps from the level the device really holds.**  Every ramp starts at
  ``dc_levels_v()`` of the wrapped port, whose contract is the level the
  device holds -- after a generation aborted mid-waveform, the sample it
  reached, not the waveform's last sample (:class:`~labtrain.instruments.ports.DAQ`).
  A driver that cannot tell reports ``nan``: such a channel is stepped to its
  safe level (the only move possible; logged as an error), and a waveform is
  refused on it until then.
* **Explicit value checks.**  ``check_ao_values`` checks finiteness and limits
  with a one-line message naming the request, what the channel drives, the
  channel, the value and the allowed range; chips call it before they shape
  waveforms, so a ``nan`` or an out-of-range input is reported as what it is.  Not on SIGKILL, ``os._exit`` or a power cut: keep the
  bench's hardware limits (series resistors, current limits) in place.

Failures inside a wrapped call
------------------------------
* An ordinary exception (:class:`~labtrain.instruments.ports.PortTimeout`,
  :class:`~labtrain.instruments.ports.PortIOError`, ...) from ``write_read`` or ``set_dc``
  ramps the analog outputs from the levels they really hold to their safe
  levels, then re-raises the original exception.  Digital lines, pots and the lock-in are left alone so the chip
  can retry the call in the state it set up (the retried waveform ramps up
  again from the safe level).
* An interrupt (``KeyboardInterrupt``, ``SystemExit`` -- SIGTERM becomes
  ``SystemExit(143)``) inside *any* wrapped call brings that port to its full
  safe state, then re-raises.
* A failing safe state never masks the original exception: it is logged and
  added to the original as a note.

Choices
-------
* ``SafeDAQ.set_dc`` and ``safe_state`` ramps (``ramp_mode="auto"``) are
  **clocked**: written as one ``write_read`` at ``ramp_rate_hz`` (reading and
  discarding the first AI channel), so the hardware sample clock, not Python's
  scheduler, times every step -- on an NI DAQ that is one finite AO task, exact
  and fast.  A DAQ without AI channels (or ``ramp_mode="stepped"``) gets a
  software-timed ramp of ``set_dc`` calls, each step held at least
  ``1 / ramp_rate_hz`` (slower, never faster than the limit).  A move of a
  single step is one ``set_dc``.  If a clocked ramp fails during a safe state,
  the stepped ramp is tried.
* The safe tap of a pot defaults to the **highest-resistance** tap
  (``n_taps - 1``, or the top of the allowed tap range): at a given voltage it
  passes the least current.
* Limits are intersected with the DAQ's AO range.

Registry
--------
Every ``Safe*`` port registers itself in a process-wide
:class:`SafeStateRegistry` (functions :func:`register`, :func:`unregister`,
:func:`safe_all`) and unregisters on ``close()``.  An ``atexit`` hook brings
every port still registered to its safe state exactly once (the lock-in's sine
out first -- it drops to its minimum before any DC level moves under it --,
then the DAQ outputs, then pots), logging and swallowing errors so that one
failing port does not keep the others from their turn; a second Ctrl-C during
that final pass is ignored.  The first registration from the main thread
installs a SIGTERM handler (only if SIGTERM still has its default action)
that raises ``SystemExit(143)``: the stack unwinds through the wrapped calls
(each brings its port to the safe state) and the ``atexit`` hook does the
rest.  The run loop's own Ctrl-C handling is untouched.

Typical use::

    cfg = SafetyConfig.from_settings(max_abs_v=2.0, max_slew_v_per_s=1000.0,
                                     channels={"Dev1/ao3": {"max_abs_v": 0.5}})
    with SafeDAQ(NIDAQ(...), cfg) as daq, SafePotArray(bridge, cfg) as pots:
        chip = InstrumentChip(network, wiring, daq, pots)
"""

from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from labtrain.instruments.ports import (DAQ, Acquisition, Guarded, LockIn, LockInReading, PortIOError, PotArray,
                                       PotCalibration, SafeStatePort, check_ao_values)

__all__ = ["SafetyError", "ChannelLimits", "SafetyConfig", "SafeDAQ", "SafePotArray", "SafeLockIn",
           "SafeStateRegistry", "register", "unregister", "safe_all", "registered", "rate_limit"]

log = logging.getLogger(__name__)

#: relative tolerance of the slew check on caller waveforms (a ramp computed at exactly the limit passes)
SLEW_RTOL = 1e-9
#: longest ramp the layer builds, in samples (a mistyped slew limit must not allocate gigabytes)
MAX_RAMP_SAMPLES = 10_000_000


class SafetyError(ValueError):
    """A request violates a safety limit (or is malformed); nothing was sent. The message is one line."""


def _num(value: float) -> str:
    return f"{value:.6g}"


def _r(value: Any) -> str:
    """repr for messages: numpy scalars as plain Python numbers."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ------------------------------------------------------------------- limits
@dataclass(frozen=True)
class ChannelLimits:
    """Limits of one analog-output channel.

    Attributes
    ----------
    min_v, max_v : float
        Lowest / highest voltage the channel may be driven to, volts.
    max_slew_v_per_s : float
        Fastest allowed change, volts per second (> 0).
    safe_level_v : float
        Level of the safe state, volts (inside ``[min_v, max_v]``).
    """

    min_v: float
    max_v: float
    max_slew_v_per_s: float
    safe_level_v: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_v", "max_v", "max_slew_v_per_s", "safe_level_v"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise SafetyError(f"{name} must be a finite number, got {_r(value)}")
            object.__setattr__(self, name, float(value))
        if self.min_v > self.max_v:
            raise SafetyError(f"min_v = {_num(self.min_v)} V is above max_v = {_num(self.max_v)} V")
        if self.max_slew_v_per_s <= 0:
            raise SafetyError(f"max_slew_v_per_s must be > 0, got {_num(self.max_slew_v_per_s)}")
        if not self.min_v <= self.safe_level_v <= self.max_v:
            raise SafetyError(f"safe_level_v = {_num(self.safe_level_v)} V is outside "
                              f"[{_num(self.min_v)}, {_num(self.max_v)}] V")

    @classmethod
    def symmetric(cls, max_abs_v: float, max_slew_v_per_s: float, safe_level_v: float = 0.0) -> "ChannelLimits":
        """``[-max_abs_v, +max_abs_v]``."""
        if isinstance(max_abs_v, bool) or not isinstance(max_abs_v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(max_abs_v) or max_abs_v < 0:
            raise SafetyError(f"max_abs_v must be a finite number >= 0, got {_r(max_abs_v)}")
        return cls(-float(max_abs_v), float(max_abs_v), max_slew_v_per_s, safe_level_v)

    def max_step_v(self, rate_hz: float) -> float:
        """Largest change between two consecutive samples at ``rate_hz``."""
        return self.max_slew_v_per_s / rate_hz

    def to_dict(self) -> dict:
        return {"min_v": self.min_v, "max_v": self.max_v, "max_slew_v_per_s": self.max_slew_v_per_s,
                "safe_level_v": self.safe_level_v}


_OVERRIDE_KEYS = ("max_abs_v", "min_v", "max_v", "max_slew_v_per_s", "safe_level_v")


@dataclass(frozen=True)
class SafetyConfig:
    """Every safety limit of one bench.

    Attributes
    ----------
    default_limits : ChannelLimits
        Limits of every AO channel not named in ``channel_limits``.
    channel_limits : mapping of str to ChannelLimits
        Per-channel overrides, keyed by AO channel name.
    ramp_rate_hz : float
        Sample rate of the ramps of ``set_dc`` and ``safe_state`` (``write_read``
        ramps use the acquisition's own rate).
    safe_taps : int, sequence of int or None
        Pot taps of the safe state (one for all channels or one per channel);
        ``None``: the highest-resistance allowed tap.
    tap_ranges : (lo, hi) pair, sequence of pairs or None
        Allowed taps, inclusive (one pair for all channels or one per channel);
        ``None``: every tap.
    max_tap_step : int or None
        Most taps a pot channel may move in one ``set_taps`` call (``None``: any).
    allowed_do_lines : tuple of str or None
        Digital lines that may be set (``None``: every line of the DAQ).
    """

    default_limits: ChannelLimits
    channel_limits: Mapping[str, ChannelLimits] = field(default_factory=dict)
    ramp_rate_hz: float = 1000.0
    safe_taps: Any = None
    tap_ranges: Any = None
    max_tap_step: int | None = None
    allowed_do_lines: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.default_limits, ChannelLimits):
            raise SafetyError(f"default_limits must be a ChannelLimits, got {type(self.default_limits).__name__}")
        limits = dict(self.channel_limits)
        for name, lim in limits.items():
            if not isinstance(lim, ChannelLimits):
                raise SafetyError(f"{name}: limits must be a ChannelLimits, got {type(lim).__name__}")
        object.__setattr__(self, "channel_limits", limits)
        rate = self.ramp_rate_hz
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not math.isfinite(rate) or rate <= 0:
            raise SafetyError(f"ramp_rate_hz must be a finite number > 0, got {_r(rate)}")
        object.__setattr__(self, "ramp_rate_hz", float(rate))
        if self.max_tap_step is not None:
            step = self.max_tap_step
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
                raise SafetyError(f"max_tap_step must be an integer >= 1 or None, got {_r(step)}")
            object.__setattr__(self, "max_tap_step", int(step))
        if self.allowed_do_lines is not None:
            object.__setattr__(self, "allowed_do_lines", tuple(self.allowed_do_lines))

    @classmethod
    def from_settings(cls, max_abs_v: float, max_slew_v_per_s: float, *, ramp_rate_hz: float = 1000.0,
                      safe_level_v: float = 0.0,
                      channels: Mapping[str, Mapping[str, float] | ChannelLimits] | None = None,
                      safe_taps: Any = None, tap_ranges: Any = None, max_tap_step: int | None = None,
                      allowed_do_lines: Sequence[str] | None = None) -> "SafetyConfig":
        """Build a config from plain settings.

        ``channels`` maps an AO channel name to a :class:`ChannelLimits` or to a
        dict of overrides with keys ``max_abs_v``, ``min_v``, ``max_v``,
        ``max_slew_v_per_s``, ``safe_level_v`` (what is not given comes from
        the defaults; ``max_abs_v`` sets both ``min_v`` and ``max_v``).
        """
        default = ChannelLimits.symmetric(max_abs_v, max_slew_v_per_s, safe_level_v)
        per: dict[str, ChannelLimits] = {}
        for name, spec in (channels or {}).items():
            if isinstance(spec, ChannelLimits):
                per[name] = spec
                continue
            if not isinstance(spec, Mapping):
                raise SafetyError(f"{name}: channel limits must be a table of {', '.join(_OVERRIDE_KEYS)}")
            unknown = sorted(set(spec) - set(_OVERRIDE_KEYS))
            if unknown:
                raise SafetyError(f"{name}: unknown limit {_r(unknown[0])} (allowed: {', '.join(_OVERRIDE_KEYS)})")
            lo, hi = default.min_v, default.max_v
            if "max_abs_v" in spec:
                try:
                    sym = ChannelLimits.symmetric(spec["max_abs_v"], default.max_slew_v_per_s, 0.0)
                except SafetyError as exc:
                    raise SafetyError(f"{name}: {exc}") from None
                lo, hi = sym.min_v, sym.max_v
            try:
                per[name] = ChannelLimits(spec.get("min_v", lo), spec.get("max_v", hi),
                                          spec.get("max_slew_v_per_s", default.max_slew_v_per_s),
                                          spec.get("safe_level_v", default.safe_level_v))
            except SafetyError as exc:
                raise SafetyError(f"{name}: {exc}") from None
        return cls(default, per, ramp_rate_hz, safe_taps, tap_ranges, max_tap_step,
                   None if allowed_do_lines is None else tuple(allowed_do_lines))

    def limits_for(self, channel: str) -> ChannelLimits:
        return self.channel_limits.get(channel, self.default_limits)


# ------------------------------------------------------------------- ramps
def _ramp(start: np.ndarray, end: np.ndarray, max_step: np.ndarray, where: str) -> np.ndarray:
    """Samples of a common-length linear ramp from ``start`` (held, not included) to ``end`` (included).

    Shape ``(n_channels, n_steps)``; every step of channel ``c`` is at most
    ``max_step[c]``; empty when ``start == end`` everywhere.
    """
    dist = np.abs(end - start)
    if dist.size == 0 or not np.any(dist > 0):
        return np.empty((len(start), 0))
    n_steps = int(np.max(np.ceil(dist / max_step)))
    if n_steps > MAX_RAMP_SAMPLES:
        c = int(np.argmax(dist / max_step))
        raise SafetyError(f"{where}: a ramp from {_num(start[c])} V to {_num(end[c])} V would need {n_steps} "
                          f"samples (> {MAX_RAMP_SAMPLES}) at a step of {_num(max_step[c])} V; "
                          f"raise the slew limit or the ramp rate")
    frac = np.arange(1, n_steps + 1) / n_steps
    ramp = start[:, None] + (end - start)[:, None] * frac[None, :]
    ramp = np.clip(ramp, np.minimum(start, end)[:, None], np.maximum(start, end)[:, None])
    ramp[:, -1] = end
    return ramp


def rate_limit(ao_v: np.ndarray, max_step_v: np.ndarray | float, start_v: np.ndarray | None = None) -> np.ndarray:
    """A waveform that follows ``ao_v`` but moves at most ``max_step_v`` per sample (per channel).

    A helper for chips that build piecewise-constant waveforms (one plateau per
    example): every jump becomes a ramp that eats into the next plateau's
    settling samples, so the result passes ``SafeDAQ``'s slew check.  The
    first sample starts at ``start_v`` (default: ``ao_v[:, 0]``, i.e. no ramp
    into the waveform -- ``SafeDAQ`` adds that one).  Loops over the
    waveform's constant segments, not its samples.
    """
    x = np.asarray(ao_v, float)
    if x.ndim != 2:
        raise SafetyError(f"ao_v must be (n_channels, n_samples), got shape {x.shape}")
    step = np.broadcast_to(np.asarray(max_step_v, float), (x.shape[0],))
    if np.any(~(step > 0)):
        raise SafetyError("max_step_v must be > 0")
    y = np.empty_like(x)
    if x.shape[1] == 0:
        return y
    prev = x[:, 0].copy() if start_v is None else np.asarray(start_v, float).copy()
    change = np.flatnonzero(np.any(np.diff(x, axis=1) != 0, axis=0)) + 1
    bounds = np.concatenate([[0], change, [x.shape[1]]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        target = x[:, a]
        k = np.arange(1, b - a + 1)
        gap = target - prev
        moved = np.minimum(np.abs(gap)[:, None], step[:, None] * k[None, :])
        y[:, a:b] = prev[:, None] + np.sign(gap)[:, None] * moved
        prev = y[:, b - 1].copy()
    return y


# ----------------------------------------------------------------- registry
class SafeStateRegistry:
    """The ports to bring to their safe state when the process ends.

    ``safe_all`` calls every registered port's ``safe_state()`` once per call
    (ordered by the port's ``safe_priority``: lock-in, DAQ outputs, pots),
    logging and swallowing every failure -- ``KeyboardInterrupt`` included --
    so each port gets its turn; it returns the failures.  ``at_exit`` does the
    same exactly once per process (SIGTERM followed by ``atexit`` does not run
    it twice) and ignores Ctrl-C while it runs.
    """

    def __init__(self) -> None:
        self._ports: list[SafeStatePort] = []
        self._lock = threading.RLock()
        self._exit_started = False
        self._sigterm_installed = False

    def register(self, port: SafeStatePort) -> None:
        if not isinstance(port, SafeStatePort):
            raise TypeError(f"{type(port).__name__} has no safe_state() and safe_priority: it cannot be registered")
        with self._lock:
            if not any(p is port for p in self._ports):
                self._ports.append(port)
        self.install_sigterm_handler()

    def unregister(self, port: Any) -> None:
        with self._lock:
            self._ports = [p for p in self._ports if p is not port]

    def ports(self) -> list[Any]:
        with self._lock:
            return list(self._ports)

    def safe_all(self) -> list[tuple[Any, BaseException]]:
        ports = sorted(self.ports(), key=lambda p: p.safe_priority)
        failures: list[tuple[Any, BaseException]] = []
        for port in ports:
            try:
                port.safe_state()
            except BaseException as exc:  # noqa: BLE001 -- every port must get its turn
                log.error("safe state of %s failed: %s: %s", _describe(port), type(exc).__name__, exc)
                failures.append((port, exc))
        return failures

    @property
    def exiting(self) -> bool:
        return self._exit_started

    def at_exit(self) -> None:
        """Bring every registered port to its safe state, once per process."""
        with self._lock:
            if self._exit_started:
                return
            self._exit_started = True
        if not self.ports():
            return
        previous = None
        if threading.current_thread() is threading.main_thread():
            try:
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            except (ValueError, OSError):  # pragma: no cover - no signals here
                previous = None
        try:
            self.safe_all()
        finally:
            if previous is not None:
                try:
                    signal.signal(signal.SIGINT, previous)
                except (ValueError, OSError, TypeError):  # pragma: no cover
                    pass

    def install_sigterm_handler(self) -> bool:
        """Make SIGTERM raise ``SystemExit(143)`` (main thread only, only over the default action)."""
        if self._sigterm_installed or threading.current_thread() is not threading.main_thread():
            return self._sigterm_installed
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return False
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError, AttributeError):  # pragma: no cover - platform without SIGTERM
            return False
        self._sigterm_installed = True
        return True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._exit_started:  # the final safe pass is already running: let it finish
            return
        log.warning("SIGTERM: bringing instruments to their safe state and exiting")
        raise SystemExit(128 + signum)


def _describe(port: Any) -> str:
    try:
        return repr(port)
    except Exception:  # noqa: BLE001
        return type(port).__name__


_REGISTRY = SafeStateRegistry()
atexit.register(_REGISTRY.at_exit)


def register(port: Any) -> None:
    """Add ``port`` (anything with ``safe_state()``) to the process-wide registry."""
    _REGISTRY.register(port)


def unregister(port: Any) -> None:
    _REGISTRY.unregister(port)


def safe_all() -> list[tuple[Any, BaseException]]:
    """Bring every registered port to its safe state now; returns the failures (already logged)."""
    return _REGISTRY.safe_all()


def registered() -> list[Any]:
    """The ports registered now."""
    return _REGISTRY.ports()


# ------------------------------------------------------------------ wrappers
class _SafePort(Guarded):
    """Shared machinery: lock, registration, failure handling, close/context manager."""

    #: how long safe_state waits for a call in flight on another thread before going ahead anyway
    lock_timeout_s = 30.0

    def _setup(self, inner: Any, register_port: bool) -> None:
        self._inner = inner
        self._lock = threading.RLock()
        self._closed = False
        self._registered = register_port
        if register_port:
            register(self)

    @property
    def wrapped(self) -> Any:
        """The bare port behind this wrapper (to describe it; every write goes through the wrapper)."""
        return self._inner

    def snapshot(self) -> dict:
        snap = dict(self._inner.snapshot())
        snap["safety"] = self.limits_snapshot()
        return snap

    def _check_open(self) -> None:
        if self._closed:
            raise SafetyError(f"{type(self).__name__} over {type(self._inner).__name__} is closed")

    def _fail_safe(self, exc: BaseException) -> None:
        """After ``exc`` escaped a wrapped call: make the port safe, log any failure, never mask ``exc``."""
        try:
            if isinstance(exc, Exception):
                self._after_error()
            else:
                self.safe_state()
                log.warning("%s: brought to its safe state after %s", type(self).__name__, type(exc).__name__,
                            extra={"labtrain_event": "safe_state"})
        except BaseException as exc2:  # noqa: BLE001
            log.error("%s: safe state after %s failed: %s: %s", type(self).__name__, type(exc).__name__,
                      type(exc2).__name__, exc2, extra={"labtrain_event": "safety_failed"})
            try:
                exc.add_note(f"safety: bringing {type(self).__name__} to its safe state failed too: "
                             f"{type(exc2).__name__}: {exc2}")
            except Exception:  # noqa: BLE001  pragma: no cover
                pass
            if isinstance(exc, Exception) and not isinstance(exc2, Exception):
                raise exc2 from exc  # a Ctrl-C / exit during the recovery wins over a plain fault

    def _after_error(self) -> None:
        """What an ordinary exception inside a wrapped call triggers (default: nothing)."""

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        try:
            yield
        except SafetyError:  # a check refused the request: nothing was sent
            raise
        except BaseException as exc:
            self._fail_safe(exc)
            raise

    def close(self) -> None:
        """Safe state, then release the wrapped port and leave the registry.

        If the safe state fails the error propagates and the port stays open
        and registered, so ``safe_all`` / the exit hook try again.
        """
        if self._closed:
            return
        self.safe_state()
        self._closed = True
        if self._registered:
            unregister(self)
        self._inner.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.close()
        else:
            try:
                self.close()
            except BaseException as exc2:  # noqa: BLE001 -- never mask the exception in flight
                log.error("%s: close after %s failed: %s: %s", type(self).__name__, exc_type.__name__,
                          type(exc2).__name__, exc2)
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self._inner).__name__})"


class SafeDAQ(_SafePort, DAQ):
    """A :class:`~labtrain.instruments.ports.DAQ` behind voltage limits, slew-limited ramps and a safe state.

    Parameters
    ----------
    daq : DAQ
        The port to protect (driver or twin).
    config : SafetyConfig
        Limits (see :meth:`SafetyConfig.from_settings`).
    ramp_mode : {"auto", "clocked", "stepped"}
        How ``set_dc`` / ``safe_state`` ramps are written: ``clocked`` as one
        ``write_read`` at ``config.ramp_rate_hz``; ``stepped`` as ``set_dc``
        calls held ``1 / ramp_rate_hz`` each; ``auto`` clocked when the DAQ
        has an AI channel.
    register : bool
        Add to the process-wide registry (safe state at exit).
    """

    safe_priority = 0

    def __init__(self, daq: DAQ, config: SafetyConfig, *, ramp_mode: str = "auto", register: bool = True) -> None:
        if not isinstance(config, SafetyConfig):
            raise SafetyError(f"config must be a SafetyConfig, got {type(config).__name__}")
        if ramp_mode not in ("auto", "clocked", "stepped"):
            raise SafetyError(f"ramp_mode must be one of auto, clocked, stepped, got {_r(ramp_mode)}")
        channels = tuple(daq.ao_channels)
        unknown = [c for c in config.channel_limits if c not in channels]
        if unknown:
            raise SafetyError(f"limits given for {_r(unknown[0])}, which is not an AO channel of the DAQ "
                              f"(channels: {', '.join(channels)})")
        if config.allowed_do_lines is not None:
            bad = [line for line in config.allowed_do_lines if line not in daq.do_lines]
            if bad:
                raise SafetyError(f"allowed digital line {_r(bad[0])} is not a line of the DAQ "
                                  f"(lines: {', '.join(daq.do_lines)})")
        if config.ramp_rate_hz > daq.max_rate_hz:
            raise SafetyError(f"ramp_rate_hz = {_num(config.ramp_rate_hz)} Hz is above the DAQ's max_rate_hz = "
                              f"{_num(daq.max_rate_hz)} Hz")
        lo_r, hi_r = (float(v) for v in daq.ao_range_v)
        limits: dict[str, ChannelLimits] = {}
        for c in channels:
            lim = config.limits_for(c)
            lo, hi = max(lim.min_v, lo_r), min(lim.max_v, hi_r)
            if lo > hi or not lo <= lim.safe_level_v <= hi:
                raise SafetyError(f"{c}: limits [{_num(lim.min_v)}, {_num(lim.max_v)}] V with safe level "
                                  f"{_num(lim.safe_level_v)} V do not fit the AO range [{_num(lo_r)}, {_num(hi_r)}] V")
            limits[c] = ChannelLimits(lo, hi, lim.max_slew_v_per_s, lim.safe_level_v)
        self.config = config
        self.limits = limits
        self.ramp_rate_hz = config.ramp_rate_hz
        self.ramp_mode = ramp_mode if ramp_mode != "auto" else ("clocked" if daq.ai_channels else "stepped")
        if self.ramp_mode == "clocked" and not daq.ai_channels:
            raise SafetyError("ramp_mode='clocked' needs an AI channel to read during the ramp; use 'stepped'")
        self._last_write_s = -math.inf  # time.monotonic() at the end of the last AO write
        self._setup(daq, register)

    # ---- device description (from the wrapped DAQ)
    @property
    def daq(self) -> DAQ:
        return self._inner

    @property
    def ao_channels(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._inner.ao_channels)

    @property
    def ai_channels(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._inner.ai_channels)

    @property
    def do_lines(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._inner.do_lines)

    @property
    def ao_range_v(self) -> tuple[float, float]:  # type: ignore[override]
        return tuple(self._inner.ao_range_v)

    @property
    def ai_range_v(self) -> tuple[float, float]:  # type: ignore[override]
        return tuple(self._inner.ai_range_v)

    @property
    def max_rate_hz(self) -> float:  # type: ignore[override]
        return self._inner.max_rate_hz

    # ---- checks (no instrument is touched)
    def _ao_names(self, names: Sequence[str], where: str) -> tuple[str, ...]:
        if isinstance(names, str):
            raise SafetyError(f"{where}: AO channels must be a sequence of names, got the string {_r(names)}")
        names = tuple(names)
        for c in names:
            if c not in self.limits:
                raise SafetyError(f"{where}: {_r(c)} is not an AO channel of the DAQ "
                                  f"(channels: {', '.join(self.limits)})")
        if len(set(names)) != len(names):
            dup = next(c for c in names if names.count(c) > 1)
            raise SafetyError(f"{where}: AO channel {_r(dup)} named twice")
        return names

    def _check_rate(self, rate_hz: Any, where: str) -> float:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float, np.integer, np.floating)) \
                or not math.isfinite(rate_hz) or rate_hz <= 0:
            raise SafetyError(f"{where}: rate_hz must be a finite number > 0, got {_r(rate_hz)}")
        if rate_hz > self.max_rate_hz:
            raise SafetyError(f"{where}: rate_hz = {_num(rate_hz)} Hz is above the DAQ's max_rate_hz = "
                              f"{_num(self.max_rate_hz)} Hz")
        return float(rate_hz)

    def check_waveform(self, ao_channels: Sequence[str], ao_v: Any, rate_hz: float) -> np.ndarray:
        """Validate a waveform (limits of every sample, slew between samples); returns it as float64.

        Raises :class:`SafetyError` naming the channel, the sample, the value
        and the limit.  Touches no instrument.
        """
        names = self._ao_names(ao_channels, "write_read")
        rate = self._check_rate(rate_hz, "write_read")
        try:
            wave = np.array(ao_v, dtype=float)
        except (TypeError, ValueError):
            raise SafetyError(f"write_read: ao_v must be numbers, got {type(ao_v).__name__}") from None
        if wave.ndim != 2 or wave.shape[0] != len(names) or (names and wave.shape[1] < 1):
            raise SafetyError(f"write_read: ao_v must have shape ({len(names)}, n_samples >= 1) for "
                              f"{len(names)} AO channels, got {wave.shape}")
        if wave.size == 0:
            return wave
        self.check_ao_values(names, wave)
        if wave.shape[1] > 1:
            slew = np.abs(np.diff(wave, axis=1)) * rate
            lim_slew = np.array([self.limits[c].max_slew_v_per_s for c in names])[:, None]
            bad = slew > lim_slew * (1 + SLEW_RTOL)
            if bad.any():
                i, k = np.argwhere(bad)[0]
                raise SafetyError(
                    f"{names[i]}: step {_num(wave[i, k])} -> {_num(wave[i, k + 1])} V between samples {k} and "
                    f"{k + 1} at {_num(rate)} Hz is {_num(slew[i, k])} V/s, above max_slew_v_per_s = "
                    f"{_num(lim_slew[i, 0])} V/s; nothing was sent")
        return wave

    def check_ao_values(self, ao_channels: Sequence[str], values_v: Any, *, what: Sequence[str] | None = None,
                        where: str = "", columns: str | Sequence[str] = "sample") -> np.ndarray:
        """Check AO values against the channel limits (finite, inside ``[min_v, max_v]``); touches no instrument.

        See :meth:`labtrain.instruments.ports.DAQ.check_ao_values`: returns the
        values as float64 ``(n_channels, n)``; raises :class:`SafetyError` with
        one line naming ``where``, ``what`` and the channel, the column, the
        value and the allowed range.  Chips call it before they shape a
        waveform, so a ``nan`` or an out-of-range input is reported as such,
        not as a slew problem.
        """
        names = self._ao_names(ao_channels, where or "check_ao_values")
        return check_ao_values(names, values_v, np.array([self.limits[c].min_v for c in names]),
                               np.array([self.limits[c].max_v for c in names]), what=what, where=where,
                               columns=columns, error=SafetyError)

    def max_step_v(self, ao_channels: Sequence[str], rate_hz: float) -> np.ndarray:
        """Largest allowed change between consecutive samples at ``rate_hz``, one per channel."""
        names = self._ao_names(ao_channels, "max_step_v")
        rate = self._check_rate(rate_hz, "max_step_v")
        return np.array([self.limits[c].max_step_v(rate) for c in names])

    def shape_waveform(self, ao_channels: Sequence[str], ao_v: np.ndarray, rate_hz: float) -> np.ndarray:
        """``ao_v`` with every jump replaced by a ramp at the channel's slew limit (see :func:`rate_limit`).

        For piecewise-constant waveforms (one plateau per example): the ramps eat
        into the start of each plateau, so keep ``settle_samples`` at least
        ``largest jump / max_step_v``.  Levels are not clipped: out-of-limit
        values still raise in :meth:`write_read`.
        """
        return rate_limit(ao_v, self.max_step_v(ao_channels, rate_hz))

    def _check_levels(self, levels_v: Any, where: str) -> dict[str, float]:
        if not isinstance(levels_v, Mapping):
            raise SafetyError(f"{where}: levels must be a dict of AO channel -> volts, got {type(levels_v).__name__}")
        out: dict[str, float] = {}
        for c, v in levels_v.items():
            if c not in self.limits:
                raise SafetyError(f"{where}: {_r(c)} is not an AO channel of the DAQ "
                                  f"(channels: {', '.join(self.limits)})")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise SafetyError(f"{c}: {where} level {_r(v)} is not a finite voltage; nothing was sent")
            lim = self.limits[c]
            if v < lim.min_v:
                raise SafetyError(f"{c}: {where} level {_num(v)} V is below min_v = {_num(lim.min_v)} V; "
                                  f"nothing was sent")
            if v > lim.max_v:
                raise SafetyError(f"{c}: {where} level {_num(v)} V is above max_v = {_num(lim.max_v)} V; "
                                  f"nothing was sent")
            out[c] = float(v)
        return out

    # ---- moves
    def _wait_held(self, period_s: float) -> None:
        """Make sure the level written last has been held at least ``period_s`` before the next step."""
        wait = self._last_write_s + period_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _mark_written(self) -> None:
        self._last_write_s = time.monotonic()

    def _unknown_levels(self, held: Mapping[str, float], names: Sequence[str]) -> list[str]:
        """The channels among ``names`` whose held level the driver cannot tell (``nan``)."""
        return [c for c in names if not math.isfinite(float(held[c]))]

    def _ramp_to(self, targets: Mapping[str, float], mode: str | None = None, *, step_unknown: bool = False) -> None:
        """Move the named channels from the levels they really hold to ``targets`` in slew-limited steps.

        A channel whose held level is unknown (``nan``: a generation was
        aborted and the driver cannot tell where) cannot be ramped: with
        ``step_unknown`` (the way to the safe state) it is stepped to its target
        and the step is logged as an error; otherwise :class:`SafetyError`.
        """
        mode = mode or self.ramp_mode
        held = self._inner.dc_levels_v()
        unknown = self._unknown_levels(held, list(targets))
        if unknown and not step_unknown:
            raise SafetyError(f"{unknown[0]}: the level it holds is unknown (a generation was aborted and the driver "
                              f"cannot tell where it stopped); bring the DAQ to its safe state first; nothing was sent")
        rate = self.ramp_rate_hz
        period = 1.0 / rate
        if unknown:
            log.error("SafeDAQ: %s hold(s) an unknown level after an aborted generation: stepping (not ramping) "
                      "to the safe level", ", ".join(unknown))
            self._wait_held(period)
            self._inner.set_dc({c: targets[c] for c in unknown})
            self._mark_written()
            held = {**held, **{c: targets[c] for c in unknown}}
        names = [c for c in targets if float(held[c]) != targets[c]]
        if not names:
            return
        start = np.array([float(held[c]) for c in names])
        end = np.array([targets[c] for c in names])
        step = np.array([self.limits[c].max_step_v(rate) for c in names])
        ramp = _ramp(start, end, step, ", ".join(names))
        if ramp.shape[1] == 1 or mode == "stepped":
            for k in range(ramp.shape[1]):
                self._wait_held(period)
                self._inner.set_dc({c: float(ramp[i, k]) for i, c in enumerate(names)})
                self._mark_written()
            return
        self._wait_held(period)
        self._inner.write_read(tuple(names), ramp, (self.ai_channels[0],), rate, 10.0 + ramp.shape[1] / rate)
        self._mark_written()

    def _ramp_ao_to_safe(self) -> None:
        """Ramp every AO channel from the level it really holds to its safe level, then write the safe levels
        once more.

        The ramp starts at ``dc_levels_v()`` of the wrapped port: after an
        aborted waveform, the sample the device reached.  If the clocked ramp
        fails part-way (it is a waveform too), the stepped ramp continues from
        wherever that one stopped.  The final write is a no-op step when the
        levels are known, and a last guarantee that the device ends at the safe
        level when a driver misreports them.
        """
        targets = {c: lim.safe_level_v for c, lim in self.limits.items()}
        try:
            self._ramp_to(targets, step_unknown=True)
        except Exception as exc:
            if self.ramp_mode != "clocked":
                raise
            log.warning("SafeDAQ: clocked ramp to the safe level failed (%s: %s); stepping instead",
                        type(exc).__name__, exc)
            self._ramp_to(targets, mode="stepped", step_unknown=True)
        if targets:
            self._wait_held(1.0 / self.ramp_rate_hz)
            self._inner.set_dc(targets)
            self._mark_written()

    def _after_error(self) -> None:
        self._ramp_ao_to_safe()
        log.warning("SafeDAQ: analog outputs ramped to their safe levels after a failed call",
                    extra={"labtrain_event": "safe_state"})

    # ---- DAQ interface
    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        """Check, ramp in, acquire, ramp out to the safe level; return exactly the requested samples.

        The AO channels named here end at their safe level; the others hold
        their level.  ``timeout_s`` is extended by the ramps' duration.
        """
        wave = self.check_waveform(ao_channels, ao_v, rate_hz)
        names = tuple(ao_channels)
        rate = float(rate_hz)
        if isinstance(ai_channels, str):
            raise SafetyError(f"write_read: AI channels must be a sequence of names, got the string {_r(ai_channels)}")
        ai = tuple(ai_channels)
        for c in ai:
            if c not in self.ai_channels:
                raise SafetyError(f"write_read: {_r(c)} is not an AI channel of the DAQ "
                                  f"(channels: {', '.join(self.ai_channels)})")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float, np.integer, np.floating)) \
                or not timeout_s > 0:
            raise SafetyError(f"write_read: timeout_s must be > 0, got {_r(timeout_s)}")
        if not names and wave.ndim == 2 and wave.shape[1] < 1:
            raise SafetyError("write_read: at least one sample is needed")
        with self._lock:
            self._check_open()
            n = wave.shape[1]
            if names:
                held = self._inner.dc_levels_v()
                unknown = self._unknown_levels(held, names)
                if unknown:
                    raise SafetyError(f"{unknown[0]}: the level it holds is unknown (a generation was aborted and "
                                      f"the driver cannot tell where it stopped); bring the DAQ to its safe state "
                                      f"first; nothing was sent")
                start = np.array([float(held[c]) for c in names])
                rate_step = np.array([self.limits[c].max_step_v(rate) for c in names])
                safe = np.array([self.limits[c].safe_level_v for c in names])
                # the ramp's last sample is the waveform's first one: keep it once
                pre = _ramp(start, wave[:, 0], rate_step, ", ".join(names))[:, :-1]
                post = _ramp(wave[:, -1], safe, rate_step, ", ".join(names))
                full = np.hstack([pre, wave, post])
            else:
                pre = post = np.empty((0, 0))
                full = wave
            n_pre, n_post = pre.shape[1], post.shape[1]
            with self._guarded():
                if names:
                    self._wait_held(1.0 / rate)
                acq = self._inner.write_read(names, full, ai, rate, float(timeout_s) + (n_pre + n_post) / rate)
                if names:
                    self._mark_written()
        got = np.asarray(acq.ai_v)
        if got.ndim != 2 or got.shape[1] != full.shape[1]:
            raise PortIOError(f"DAQ returned {got.shape} AI samples for a waveform of {full.shape[1]} samples")
        return Acquisition(ai_v=got[:, n_pre:n_pre + n].copy(), rate_hz=acq.rate_hz,
                           start_time_s=acq.start_time_s + n_pre / acq.rate_hz, channels=tuple(acq.channels))

    def set_dc(self, levels_v: dict[str, float]) -> None:
        """Check the levels, then ramp each named channel there (slew-limited at ``ramp_rate_hz``)."""
        targets = self._check_levels(levels_v, "set_dc")
        with self._lock:
            self._check_open()
            with self._guarded():
                self._ramp_to(targets)

    def dc_levels_v(self) -> dict[str, float]:
        """The levels the wrapped port reports holding (``nan`` where it cannot tell)."""
        return self._inner.dc_levels_v()

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Reseed the wrapped port's noise (a twin's; no effect on a real instrument)."""
        self._inner.reseed(seed)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the wrapped port's clock (real time, or a twin's simulated clock)."""
        self._inner.sleep(seconds)

    def set_digital(self, states: dict[str, bool]) -> None:
        if not isinstance(states, Mapping):
            raise SafetyError(f"set_digital: states must be a dict of line -> bool, got {type(states).__name__}")
        allowed = self.config.allowed_do_lines
        for line, value in states.items():
            if line not in self.do_lines:
                raise SafetyError(f"set_digital: {_r(line)} is not a digital line of the DAQ "
                                  f"(lines: {', '.join(self.do_lines) or 'none'})")
            if allowed is not None and line not in allowed:
                raise SafetyError(f"set_digital: line {_r(line)} is not in allowed_do_lines "
                                  f"({', '.join(allowed) or 'none'})")
            if not isinstance(value, (bool, np.bool_)):
                raise SafetyError(f"{line}: state must be True or False, got {_r(value)}")
        with self._lock:
            self._check_open()
            with self._guarded():
                self._inner.set_digital({line: bool(v) for line, v in states.items()})

    def digital_states(self) -> dict[str, bool]:
        return self._inner.digital_states()

    def identify(self) -> str:
        return self._inner.identify()

    def limits_snapshot(self) -> dict:
        return {"channels": {c: lim.to_dict() for c, lim in self.limits.items()},
                "ramp_rate_hz": self.ramp_rate_hz, "ramp_mode": self.ramp_mode,
                "allowed_do_lines": None if self.config.allowed_do_lines is None
                else list(self.config.allowed_do_lines)}

    def safe_state(self) -> None:
        """Ramp every AO channel to its safe level and open every digital line; raise the first failure."""
        if self._closed:  # made safe before it was closed
            return
        got = self._lock.acquire(timeout=self.lock_timeout_s)
        if not got:
            log.warning("SafeDAQ: a call on another thread holds the DAQ; going to the safe state anyway")
        errors: list[BaseException] = []
        try:
            try:
                self._ramp_ao_to_safe()
            except BaseException as exc:  # noqa: BLE001 -- the lines must still be opened
                log.error("SafeDAQ: ramp to the safe level failed: %s: %s", type(exc).__name__, exc)
                errors.append(exc)
            if self.do_lines:
                try:
                    self._inner.set_digital({line: False for line in self.do_lines})
                except BaseException as exc:  # noqa: BLE001
                    log.error("SafeDAQ: opening the digital lines failed: %s: %s", type(exc).__name__, exc)
                    errors.append(exc)
        finally:
            if got:
                self._lock.release()
        if errors:
            raise errors[0]


class SafePotArray(_SafePort, PotArray):
    """A :class:`~labtrain.instruments.ports.PotArray` behind tap checks and a safe state.

    Parameters
    ----------
    pots : PotArray
        The port to protect.
    config : SafetyConfig, optional
        Supplies ``safe_taps``, ``tap_ranges`` and ``max_tap_step`` (the keyword
        arguments, when given, win).
    safe_taps : int or sequence of int, optional
        Taps of the safe state; default: the highest-resistance allowed tap of
        each channel (least current at a given voltage).
    tap_ranges : (lo, hi) or sequence of (lo, hi), optional
        Allowed taps per channel, inclusive.
    max_tap_step : int, optional
        Most taps a channel may move in one ``set_taps`` call (the safe state
        is exempt: it must always be reachable).
    """

    safe_priority = 20

    def __init__(self, pots: PotArray, config: SafetyConfig | None = None, *, safe_taps: Any = None,
                 tap_ranges: Any = None, max_tap_step: int | None = None, register: bool = True) -> None:
        n, n_taps = int(pots.n_channels), int(pots.n_taps)
        if config is not None:
            safe_taps = config.safe_taps if safe_taps is None else safe_taps
            tap_ranges = config.tap_ranges if tap_ranges is None else tap_ranges
            max_tap_step = config.max_tap_step if max_tap_step is None else max_tap_step
        if tap_ranges is None:
            ranges = np.tile([0, n_taps - 1], (n, 1))
        else:
            ranges = self._ints(tap_ranges, "tap_ranges")
            if ranges.shape == (2,):
                ranges = np.tile(ranges, (n, 1))
            if ranges.shape != (n, 2):
                raise SafetyError(f"tap_ranges must be one (lo, hi) pair or {n} pairs, got shape {ranges.shape}")
            for c, (lo, hi) in enumerate(ranges):
                if not 0 <= lo <= hi <= n_taps - 1:
                    raise SafetyError(f"pot channel {c}: tap range [{lo}, {hi}] is not inside [0, {n_taps - 1}]")
        if safe_taps is None:
            safe = ranges[:, 1].copy()
        else:
            safe = np.broadcast_to(self._ints(safe_taps, "safe_taps"), (n,)).copy() \
                if np.ndim(safe_taps) == 0 else self._ints(safe_taps, "safe_taps")
            if safe.shape != (n,):
                raise SafetyError(f"safe_taps must be one tap or {n} taps, got shape {safe.shape}")
            for c in range(n):
                if not ranges[c, 0] <= safe[c] <= ranges[c, 1]:
                    raise SafetyError(f"pot channel {c}: safe tap {safe[c]} is outside the allowed taps "
                                      f"[{ranges[c, 0]}, {ranges[c, 1]}]")
        if max_tap_step is not None and (isinstance(max_tap_step, bool) or
                                         not isinstance(max_tap_step, (int, np.integer)) or max_tap_step < 1):
            raise SafetyError(f"max_tap_step must be an integer >= 1 or None, got {_r(max_tap_step)}")
        self.tap_ranges = ranges
        self.safe_taps = safe
        self.max_tap_step = None if max_tap_step is None else int(max_tap_step)
        self._setup(pots, register)

    @staticmethod
    def _ints(values: Any, what: str) -> np.ndarray:
        try:
            arr = np.asarray(values)
        except Exception:  # noqa: BLE001
            raise SafetyError(f"{what} must be integers") from None
        if arr.dtype == bool or arr.dtype.kind not in "iuf":
            raise SafetyError(f"{what} must be integers, got {arr.dtype} values")
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if np.any(bad):
                idx = tuple(np.argwhere(bad)[0])
                where = f"pot channel {idx[0]}: " if arr.ndim == 1 else ""
                raise SafetyError(f"{where}{what} value {_r(arr[idx])} is not an integer; nothing was written")
        return arr.astype(np.int64)

    @property
    def pots(self) -> PotArray:
        return self._inner

    @property
    def n_channels(self) -> int:  # type: ignore[override]
        return int(self._inner.n_channels)

    @property
    def n_taps(self) -> int:  # type: ignore[override]
        return int(self._inner.n_taps)

    @property
    def calibration(self) -> PotCalibration:  # type: ignore[override]
        return self._inner.calibration

    def check_taps(self, taps: Any) -> np.ndarray:
        """Validate a tap vector (integers, allowed range); returns it as int64. Touches no instrument
        except, with ``max_tap_step`` set, reading the taps held now."""
        arr = self._ints(taps, "taps")
        n = self.n_channels
        if arr.shape != (n,):
            raise SafetyError(f"set_taps: taps must have shape ({n},), got {arr.shape}; nothing was written")
        lo, hi = self.tap_ranges[:, 0], self.tap_ranges[:, 1]
        bad = (arr < lo) | (arr > hi)
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            raise SafetyError(f"pot channel {c}: tap {arr[c]} is outside the allowed taps [{lo[c]}, {hi[c]}]; "
                              f"nothing was written")
        return arr

    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        arr = self.check_taps(taps)
        with self._lock:
            self._check_open()
            if self.max_tap_step is not None:
                held = np.asarray(self._inner.get_taps(), np.int64)
                move = np.abs(arr - held)
                if np.any(move > self.max_tap_step):
                    c = int(np.flatnonzero(move > self.max_tap_step)[0])
                    raise SafetyError(f"pot channel {c}: move from tap {held[c]} to {arr[c]} is {move[c]} taps, "
                                      f"above max_tap_step = {self.max_tap_step}; nothing was written")
            with self._guarded():
                return self._inner.set_taps(arr)

    def get_taps(self) -> np.ndarray:
        return self._inner.get_taps()

    def identify(self) -> str:
        return self._inner.identify()

    def limits_snapshot(self) -> dict:
        return {"safe_taps": self.safe_taps.tolist(), "tap_ranges": self.tap_ranges.tolist(),
                "max_tap_step": self.max_tap_step}

    def safe_state(self) -> None:
        """Set every channel to its safe tap."""
        if self._closed:  # made safe before it was closed
            return
        got = self._lock.acquire(timeout=self.lock_timeout_s)
        try:
            self._inner.set_taps(self.safe_taps.copy())
        finally:
            if got:
                self._lock.release()


class SafeLockIn(_SafePort, LockIn):
    """A :class:`~labtrain.instruments.ports.LockIn` whose sine out is limited, with a safe state.

    Parameters
    ----------
    lockin : LockIn
        The port to protect.
    max_amplitude_v : float
        Largest sine-out amplitude allowed, V RMS.
    frequency_range_hz : (low, high), optional
        Allowed reference frequencies, Hz; default: the wrapped lock-in's
        declared ``frequency_range_hz``.
    safe_amplitude_v : float, optional
        Amplitude of the safe state; default: the wrapped lock-in's declared
        ``min_amplitude_v`` (0.004 V for an SR830, 0 V for a lock-in that
        declares none).

    Notes
    -----
    Its safe state comes first at exit (``safe_priority`` below the DAQ's): a
    sine routed onto an electrode drops to its minimum before any DC level
    moves under it.
    """

    safe_priority = -10

    def __init__(self, lockin: LockIn, *, max_amplitude_v: float,
                 frequency_range_hz: tuple[float, float] | None = None,
                 safe_amplitude_v: float | None = None, register: bool = True) -> None:
        def number(v: Any, what: str) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise SafetyError(f"{what} must be a finite number, got {_r(v)}")
            return float(v)

        self.max_amplitude_v = number(max_amplitude_v, "max_amplitude_v")
        if self.max_amplitude_v < 0:
            raise SafetyError(f"max_amplitude_v must be >= 0, got {_r(max_amplitude_v)}")
        if frequency_range_hz is None:
            frequency_range_hz = lockin.frequency_range_hz
        lo, hi = (number(v, "frequency_range_hz") for v in frequency_range_hz)
        if not 0 < lo <= hi:
            raise SafetyError(f"frequency_range_hz must be 0 < low <= high, got ({lo:g}, {hi:g})")
        self.frequency_range_hz = (lo, hi)
        if safe_amplitude_v is None:
            safe_amplitude_v = lockin.min_amplitude_v
        self.safe_amplitude_v = number(safe_amplitude_v, "safe_amplitude_v")
        if not 0 <= self.safe_amplitude_v <= self.max_amplitude_v:
            raise SafetyError(f"safe_amplitude_v = {_num(self.safe_amplitude_v)} V is outside "
                              f"[0, max_amplitude_v = {_num(self.max_amplitude_v)}] V")
        self._setup(lockin, register)

    @property
    def lockin(self) -> LockIn:
        return self._inner

    @property
    def min_amplitude_v(self) -> float:  # type: ignore[override]
        """Smallest sine-out amplitude the wrapped instrument accepts, V RMS."""
        return float(self._inner.min_amplitude_v)

    def _set(self, name: str, value: Any) -> None:
        with self._lock:
            self._check_open()
            with self._guarded():
                setattr(self._inner, name, value)

    @property
    def frequency_hz(self) -> float:
        return self._inner.frequency_hz

    @frequency_hz.setter
    def frequency_hz(self, value: float) -> None:
        lo, hi = self.frequency_range_hz
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise SafetyError(f"lock-in frequency_hz must be a finite number, got {_r(value)}; nothing was sent")
        if not lo <= value <= hi:
            raise SafetyError(f"lock-in frequency_hz = {_num(value)} Hz is outside [{_num(lo)}, {_num(hi)}] Hz; "
                              f"nothing was sent")
        self._set("frequency_hz", float(value))

    @property
    def amplitude_v(self) -> float:
        return self._inner.amplitude_v

    @amplitude_v.setter
    def amplitude_v(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise SafetyError(f"lock-in amplitude_v must be a finite number, got {_r(value)}; nothing was sent")
        if value < 0:
            raise SafetyError(f"lock-in amplitude_v = {_num(value)} V is below 0 V; nothing was sent")
        if value > self.max_amplitude_v:
            raise SafetyError(f"lock-in amplitude_v = {_num(value)} V is above max_amplitude_v = "
                              f"{_num(self.max_amplitude_v)} V; nothing was sent")
        self._set("amplitude_v", float(value))

    @property
    def time_constant_s(self) -> float:
        return self._inner.time_constant_s

    @time_constant_s.setter
    def time_constant_s(self, value: float) -> None:
        self._set("time_constant_s", value)

    @property
    def sensitivity_v(self) -> float:
        return self._inner.sensitivity_v

    @sensitivity_v.setter
    def sensitivity_v(self, value: float) -> None:
        self._set("sensitivity_v", value)

    def read_xy(self) -> LockInReading:
        with self._lock:
            self._check_open()
            with self._guarded():
                return self._inner.read_xy()

    def identify(self) -> str:
        return self._inner.identify()

    def limits_snapshot(self) -> dict:
        return {"max_amplitude_v": self.max_amplitude_v, "frequency_range_hz": list(self.frequency_range_hz),
                "safe_amplitude_v": self.safe_amplitude_v}

    def safe_state(self) -> None:
        """Set the sine-out amplitude to the safe (minimum) amplitude."""
        if self._closed:  # made safe before it was closed
            return
        got = self._lock.acquire(timeout=self.lock_timeout_s)
        try:
            self._inner.amplitude_v = self.safe_amplitude_v
        finally:
            if got:
                self._lock.release()
