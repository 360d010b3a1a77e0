"""Twin of a data-acquisition device (NI-DAQ-like): AO and AI on one sample clock, digital lines.

:class:`SimulatedDAQ` implements :class:`labtrain.instruments.ports.DAQ` on top of a
*circuit*: any object with

``ao_channels``, ``ai_channels``, ``do_lines`` (tuples of str)
    the channels it is wired to;
``ai_voltages(ao_v, do_states) -> ndarray``
    the voltages at its AI channels, shape ``(len(ai_channels), n_samples)``,
    for AO levels ``ao_v`` of shape ``(len(ao_channels), n_samples)`` (rows in
    the circuit's AO order) and the digital states ``do_states`` (line -> bool).

:class:`~labtrain.kinds.resistor.twin.ResistorBenchCircuit` is the
circuit of a resistor-network chip; :class:`LinearCircuit` is a fixed matrix
(loopbacks, tests); a DNPU circuit can plug in the same way.

What one ``write_read`` does, in order:

1. validate the request (channel names, shape, finite values inside
   ``ao_range_v``, ``0 < rate_hz <= max_rate_hz``) -- a bad request raises
   ``ValueError`` and writes nothing;
2. record every AO sample sent (:attr:`SimulatedDAQ.history`), quantise it with
   the ``dac_bits`` DAC, and build the level of every circuit AO channel at
   every sample (written waveform, or the held DC level);
3. evaluate the circuit for all samples at once (for a resistor network: one
   matrix product);
4. low-pass every AI node with a first-order response of time constant
   ``rc_time_s`` (exact for piecewise-constant AO: ``y[k] = a y[k-1] + (1-a) x[k]``,
   ``a = exp(-1 / (rate_hz * rc_time_s))``), continuing from the node voltages
   the previous call left; ``rc_time_s = 0`` is quasi-static, so AO sample ``k``
   shows up in AI sample ``k`` exactly;
5. add noise: white (``noise_white_v`` RMS per sample) plus a 1/f component
   (``noise_1f_v`` RMS), clip to ``ai_range_v`` and quantise with the
   ``adc_bits`` ADC (step ``(high - low) / 2**adc_bits``; a reading above the
   range saturates at the top code, ``high - 1 LSB``);
6. advance the simulated clock by ``n_samples / rate_hz`` and return an
   :class:`~labtrain.instruments.ports.Acquisition` stamped with the simulated start time.

An aborted generation (:meth:`SimulatedDAQ.inject_faults` with
``when="during"``) behaves like an NI device whose task fails mid-waveform:
only the samples generated before the abort reach the circuit and the record
(marked ``aborted``), the clock advances by them, every AO channel holds the
last sample it generated (``dc_levels_v`` reports it: the true held level),
and the call raises.

A broken or miswired bench (:meth:`SimulatedDAQ.set_wiring_faults`, for
self-tests): a dead AI channel reads only noise, two swapped AI channels read
each other's node, a dead AO channel never reaches the circuit.

The 1/f noise is a sum of Ornstein-Uhlenbeck (AR(1)) processes per AI channel
with corner frequencies spaced one per decade over ``noise_1f_band_hz``, each
with the same variance: a superposition of Lorentzians with log-uniform
corners has a ``1/f`` power spectrum between the band edges (0.4 dB ripple).
The processes are advanced exactly for any sample interval
(``a = exp(-2 pi f_k dt)``), so changing the sample rate or sleeping keeps the
noise continuous and its RMS per sample equal to ``noise_1f_v``.  For speed,
processes with a corner above the sample rate are drawn as white noise and
processes with a corner far below it are drawn exactly on a coarser grid and
linearly interpolated.  Sampling slower than twice the band's upper edge
aliases the power above Nyquist into a white floor, as on an ADC without an
anti-alias filter; for a clean 1/f record put the upper edge at or below
``rate_hz / 2``.

The simulated clock advances only with acquisitions, :meth:`SimulatedDAQ.sleep`
and (``dc_write_s``) each ``set_dc``; with ``realtime_gaps=True`` the wall time
that passes between port calls is added too, for callers that wait with
``time.sleep``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.signal import lfilter

from labtrain.instruments.ports import DAQ, Acquisition
from labtrain.simulators._faults import FaultInjector
from labtrain.simulators._record import next_event

__all__ = ["SimulatedDAQ", "Circuit", "LinearCircuit", "AOWrite", "DOWrite"]


class Circuit(Protocol):
    """What :class:`SimulatedDAQ` needs from the physics behind its channels (duck-typed)."""

    ao_channels: tuple[str, ...]
    ai_channels: tuple[str, ...]
    do_lines: tuple[str, ...]

    def ai_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray: ...


class LinearCircuit:
    """A fixed linear map from AO levels to AI voltages: ``ai = matrix @ ao + offset_v`` (digital lines ignored).

    ``LinearCircuit.loopback(pairs)`` wires each AI channel straight to one AO
    channel (a BNC cable), the simplest way to see exactly what the DAQ wrote.
    """

    def __init__(self, ao_channels: Sequence[str], ai_channels: Sequence[str], matrix: np.ndarray,
                 offset_v: np.ndarray | None = None, do_lines: Sequence[str] = ()) -> None:
        self.ao_channels = tuple(ao_channels)
        self.ai_channels = tuple(ai_channels)
        self.do_lines = tuple(do_lines)
        self.matrix = np.asarray(matrix, float).reshape(len(self.ai_channels), len(self.ao_channels))
        self.offset_v = np.zeros(len(self.ai_channels)) if offset_v is None else np.asarray(offset_v, float)

    @classmethod
    def loopback(cls, pairs: Mapping[str, str], gain: float = 1.0) -> "LinearCircuit":
        """``pairs`` maps AI channel -> the AO channel it is cabled to."""
        ao = tuple(dict.fromkeys(pairs.values()))
        ai = tuple(pairs)
        matrix = np.zeros((len(ai), len(ao)))
        for i, name in enumerate(ai):
            matrix[i, ao.index(pairs[name])] = gain
        return cls(ao, ai, matrix)

    def ai_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        return self.matrix @ ao_v + self.offset_v[:, None]


@dataclass(frozen=True)
class AOWrite:
    """Analog-output samples sent to the device in one call.

    ``kind`` is ``"waveform"`` (``write_read``: sample ``k`` of row ``c`` went out
    at ``t_s + k / rate_hz``) or ``"dc"`` (``set_dc``: one level per channel at
    ``t_s``).  ``values_v`` are the values the caller sent (before DAC
    quantisation), shape ``(len(channels), n_samples)``; for an ``aborted``
    generation only the samples generated before the abort.  ``seq`` orders
    the entry among every twin's records (:mod:`labtrain.simulators._record`).
    """

    kind: str
    t_s: float
    wall_s: float
    rate_hz: float | None
    channels: tuple[str, ...]
    values_v: np.ndarray
    seq: int = -1
    aborted: bool = False


@dataclass(frozen=True)
class DOWrite:
    """Digital lines set in one ``set_digital`` call, at twin time ``t_s`` (``seq``: see :class:`AOWrite`)."""

    t_s: float
    wall_s: float
    states: dict
    seq: int = -1


_WHITE_DECAY = 0.05    # a 1/f process decaying more than this per sample counts as white
_OU_OVERSAMPLE = 10    # coarse-grid points per corner period of a slow 1/f process


def _quantise(v: np.ndarray, low: float, high: float, bits: int | None) -> np.ndarray:
    """Clip to ``[low, high]`` and round to the nearest of ``2**bits`` codes ``low + k * (high - low) / 2**bits``."""
    if bits is None:
        return np.clip(v, low, high)
    n_codes = 2 ** int(bits)
    step = (high - low) / n_codes
    code = np.subtract(v, low, dtype=float)
    code *= 1.0 / step
    code += 0.5
    np.floor(code, out=code)
    np.clip(code, 0, n_codes - 1, out=code)
    code *= step
    code += low
    return code


class SimulatedDAQ(DAQ):
    """Twin of an NI-DAQ-like device driving a simulated circuit.

    Parameters
    ----------
    circuit : object, optional
        Physics behind the channels (see the module docstring).  ``None``: every
        AI channel reads 0 V plus noise.
    ao_channels, ai_channels, do_lines : sequence of str, optional
        The device's channels; default: exactly the circuit's.  They must include
        every channel the circuit is wired to.
    ao_range_v, ai_range_v : (float, float)
        Converter ranges (volts).  AO values outside ``ao_range_v`` are refused
        (``ValueError``), as nidaqmx refuses them; AI readings are clipped to
        ``ai_range_v``.
    max_rate_hz : float
        Highest sample clock accepted.
    adc_bits, dac_bits : int or None
        Converter resolutions; ``None`` disables quantisation.
    noise_white_v : float
        RMS of independent Gaussian noise per AI sample (volts).
    noise_1f_v : float
        RMS of the 1/f noise component per AI sample (volts).
    noise_1f_band_hz : (float, float or None)
        Band over which the 1/f component has its 1/f spectrum; the upper edge
        defaults to ``max_rate_hz / 2``.
    rc_time_s : float
        Time constant of the first-order response of every AI node (0 = quasi-static).
    seed : int
        Seed of all noise.
    device : str
        Device name reported by :meth:`identify`.
    start_time_s : float
        Initial value of the simulated clock.
    dc_write_s : float
        Simulated time one ``set_dc`` or ``set_digital`` call takes.
    realtime_gaps : bool
        Also advance the simulated clock by the wall time between port calls.
    record_history : bool
        Keep every sample sent in :attr:`history` (the running per-channel
        :meth:`ao_summary` is kept regardless).
    history_max_samples : int
        Stop appending to :attr:`history` (and set :attr:`history_truncated`)
        once this many AO samples and digital-line states are stored (5e6
        samples = 40 MB), so hours-long dry runs cannot exhaust memory.
    """

    def __init__(self, circuit: Any = None, *, ao_channels: Sequence[str] | None = None,
                 ai_channels: Sequence[str] | None = None, do_lines: Sequence[str] | None = None,
                 ao_range_v: tuple[float, float] = (-10.0, 10.0), ai_range_v: tuple[float, float] = (-10.0, 10.0),
                 max_rate_hz: float = 1e5, adc_bits: int | None = 16, dac_bits: int | None = 16,
                 noise_white_v: float = 0.0, noise_1f_v: float = 0.0,
                 noise_1f_band_hz: tuple[float, float | None] = (1e-2, None), rc_time_s: float = 0.0,
                 seed: int = 0, device: str = "SimDev1", start_time_s: float = 0.0, dc_write_s: float = 0.0,
                 realtime_gaps: bool = False, record_history: bool = True,
                 history_max_samples: int = 5_000_000) -> None:
        self.circuit = circuit
        c_ao = tuple(getattr(circuit, "ao_channels", ())) if circuit is not None else ()
        c_ai = tuple(getattr(circuit, "ai_channels", ())) if circuit is not None else ()
        c_do = tuple(getattr(circuit, "do_lines", ())) if circuit is not None else ()
        self.ao_channels = _names("ao_channels", c_ao if ao_channels is None else ao_channels)
        self.ai_channels = _names("ai_channels", c_ai if ai_channels is None else ai_channels)
        self.do_lines = _names("do_lines", c_do if do_lines is None else do_lines)
        for group, wired, have in (("AO", c_ao, self.ao_channels), ("AI", c_ai, self.ai_channels),
                                   ("DO", c_do, self.do_lines)):
            missing = [c for c in wired if c not in have]
            if missing:
                raise ValueError(f"the circuit is wired to {group} channel {missing[0]!r}, which the DAQ lacks")
        self.ao_range_v = _range("ao_range_v", ao_range_v)
        self.ai_range_v = _range("ai_range_v", ai_range_v)
        self.max_rate_hz = _positive("max_rate_hz", max_rate_hz)
        for name, bits in (("adc_bits", adc_bits), ("dac_bits", dac_bits)):
            if bits is not None and (int(bits) != bits or not 1 <= bits <= 32):
                raise ValueError(f"{name} must be an integer in 1..32 or None, got {bits!r}")
        self.adc_bits = None if adc_bits is None else int(adc_bits)
        self.dac_bits = None if dac_bits is None else int(dac_bits)
        self.noise_white_v = _non_negative("noise_white_v", noise_white_v)
        self.noise_1f_v = _non_negative("noise_1f_v", noise_1f_v)
        f_lo, f_hi = noise_1f_band_hz
        f_hi = self.max_rate_hz / 2 if f_hi is None else f_hi
        if not (np.isfinite(f_lo) and np.isfinite(f_hi) and 0 < f_lo < f_hi):
            raise ValueError(f"noise_1f_band_hz must satisfy 0 < low < high, got ({f_lo}, {f_hi})")
        self.noise_1f_band_hz = (float(f_lo), float(f_hi))
        self.rc_time_s = _non_negative("rc_time_s", rc_time_s)
        self.dc_write_s = _non_negative("dc_write_s", dc_write_s)
        self.seed = int(seed)
        self.device = device
        self.realtime_gaps = bool(realtime_gaps)
        self.record_history = bool(record_history)
        self.history_max_samples = int(history_max_samples)

        self._rng = np.random.default_rng(seed)
        self._clock = float(start_time_s)
        self._start_time_s = float(start_time_s)
        self._last_wall = time.monotonic()
        self._ao_index = {c: i for i, c in enumerate(self.ao_channels)}
        self._ai_index = {c: i for i, c in enumerate(self.ai_channels)}
        self._dc = np.zeros(len(self.ao_channels))          # levels as sent
        self._digital = {line: False for line in self.do_lines}
        self._circuit_ao = np.array([self._ao_index[c] for c in c_ao], dtype=np.int64)
        self._circuit_ai = {c: i for i, c in enumerate(c_ai)}
        # bench wiring faults (set_wiring_faults): AI channel -> the circuit AI it really reads (None: nothing)
        self._ai_source: dict[str, str | None] = {}
        self._dead_ao: frozenset[str] = frozenset()
        # 1/f: one corner per decade (0.4 dB ripple), equal variance each.
        n_corner = max(1, int(np.ceil(np.log10(f_hi / f_lo))) + 1)
        self._corner_hz = np.geomspace(f_lo, f_hi, n_corner)
        self._sigma_1f = self.noise_1f_v / np.sqrt(n_corner)
        self._f1_state = self._rng.normal(0.0, self._sigma_1f, (len(self.ai_channels), n_corner))
        # Node voltages the RC response starts from: the circuit at 0 V, switches open.
        self._rc_state = self._circuit_at(np.zeros((len(c_ao), 1)))[:, 0] if circuit is not None else np.zeros(0)

        self.history: list[AOWrite | DOWrite] = []
        self.history_truncated = False
        self._history_samples = 0
        n_ao = len(self.ao_channels)
        self._min = np.zeros(n_ao)
        self._max = np.zeros(n_ao)
        self._max_step = np.zeros(n_ao)
        self._max_slew = np.zeros(n_ao)
        self.n_acquisitions = 0
        self._faults = FaultInjector("SimulatedDAQ")
        self._fault_rng = np.random.default_rng([self.seed, 0xFA17])

    # ------------------------------------------------------------------ port
    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        """Write ``ao_v`` (n_ao x n_samples) to ``ao_channels``, read ``ai_channels`` on the same clock.

        Raises ``ValueError`` for a bad request (unknown or repeated channel,
        wrong shape, non-finite or out-of-range value, ``rate_hz`` outside
        ``(0, max_rate_hz]``, an acquisition longer than ``timeout_s``; ``None``
        or a negative ``timeout_s`` waits forever, as in nidaqmx).
        """
        ao_idx = self._lookup(ao_channels, self._ao_index, "AO")
        ai_idx = self._lookup(ai_channels, self._ai_index, "AI")
        ao_v = np.asarray(ao_v, dtype=float)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(ao_idx):
            raise ValueError(f"ao_v must have shape ({len(ao_idx)}, n_samples) for {len(ao_idx)} AO channels, "
                             f"got {ao_v.shape}")
        n = ao_v.shape[1]
        if n < 1:
            raise ValueError("an acquisition needs at least one sample")
        rate = float(rate_hz)
        if not (np.isfinite(rate) and 0 < rate <= self.max_rate_hz):
            raise ValueError(f"rate_hz = {rate_hz!r} is outside (0, {self.max_rate_hz:g}] Hz")
        self._check_levels(ao_v, ao_channels)
        if timeout_s is not None and timeout_s >= 0 and not n / rate <= timeout_s:
            raise ValueError(f"an acquisition of {n} samples at {rate:g} Hz takes {n / rate:g} s, "
                             f"longer than timeout_s = {timeout_s:g} s")
        self._faults.check("write_read", "before")
        abort_at = int(self._fault_rng.integers(0, n)) if self._faults.due("write_read", "during") else None
        self._gap()
        t0 = self._clock
        if abort_at is not None:
            self._abort_generation(t0, rate, tuple(ao_channels), ao_idx, ao_v[:, :abort_at])
            raise self._faults.error("write_read", f"generation aborted after {abort_at} of {n} samples")

        self._record_ao("waveform", t0, rate, tuple(ao_channels), ao_idx, ao_v)
        levels = np.repeat(_quantise(self._dc, *self.ao_range_v, self.dac_bits)[:, None], n, axis=1)
        if len(ao_idx):
            levels[ao_idx] = _quantise(ao_v, *self.ao_range_v, self.dac_bits)
            self._dc[ao_idx] = ao_v[:, -1]

        dt = 1.0 / rate
        out = np.zeros((len(ai_idx), n))
        if self.circuit is not None:
            nodes = self._circuit_at(levels[self._circuit_ao])
            nodes = self._rc_filter(nodes, dt)
            self._fill_ai(out, ai_channels, nodes)
        out += self._noise(ai_idx, n, dt)
        out = _quantise(out, *self.ai_range_v, self.adc_bits)
        self._clock = t0 + n * dt
        self.n_acquisitions += 1
        self._last_wall = time.monotonic()
        self._faults.check("write_read", "after")
        return Acquisition(out, rate, t0, tuple(ai_channels))

    def set_dc(self, levels_v: dict[str, float]) -> None:
        """Set and hold static levels on the named AO channels (a step: no ramp)."""
        names = list(levels_v)
        idx = self._lookup(names, self._ao_index, "AO")
        try:
            values = np.array([float(levels_v[c]) for c in names]).reshape(-1, 1)
        except (TypeError, ValueError):
            raise ValueError(f"set_dc: levels must be numbers in volts, got {levels_v!r}") from None
        self._check_levels(values, names)
        self._faults.check("set_dc", "before")
        lost = self._lost_during("set_dc")
        self._gap()
        self._record_ao("dc", self._clock, None, tuple(names), idx, values)
        self._dc[idx] = values[:, 0]
        self._advance_idle(self.dc_write_s)
        self._last_wall = time.monotonic()
        if lost:
            raise self._faults.error("set_dc", "the acknowledgement was lost")
        self._faults.check("set_dc", "after")

    def dc_levels_v(self) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.ao_channels, self._dc)}

    def set_digital(self, states: dict[str, bool]) -> None:
        """Set digital-output lines (``True`` = high = switch closed)."""
        names = list(states)
        self._lookup(names, {c: i for i, c in enumerate(self.do_lines)}, "DO")
        clean = {}
        for name in names:
            value = states[name]
            if not isinstance(value, (bool, np.bool_)) and value not in (0, 1):
                raise ValueError(f"digital line {name!r}: expected True/False, got {value!r}")
            clean[name] = bool(value)
        self._faults.check("set_digital", "before")
        lost = self._lost_during("set_digital")
        self._gap()
        if self.record_history and not self.history_truncated:
            if self._history_samples + len(clean) > self.history_max_samples:
                self.history_truncated = True
            else:
                self._history_samples += len(clean)
                self.history.append(DOWrite(self._clock, time.monotonic(), dict(clean), next_event()))
        self._digital.update(clean)
        self._advance_idle(self.dc_write_s)
        self._last_wall = time.monotonic()
        if lost:
            raise self._faults.error("set_digital", "the acknowledgement was lost")
        self._faults.check("set_digital", "after")

    def digital_states(self) -> dict[str, bool]:
        return dict(self._digital)

    def identify(self) -> str:
        adc = f"{self.adc_bits}-bit" if self.adc_bits else "ideal"
        return f"labtrain SimulatedDAQ {self.device} ({len(self.ao_channels)} AO, {len(self.ai_channels)} AI, " \
               f"{len(self.do_lines)} DO, {adc} ADC)"

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"adc_bits": self.adc_bits, "dac_bits": self.dac_bits, "noise_white_v": self.noise_white_v,
                     "noise_1f_v": self.noise_1f_v, "noise_1f_band_hz": list(self.noise_1f_band_hz),
                     "rc_time_s": self.rc_time_s, "seed": self.seed, "simulated_time_s": self._clock,
                     "dc_levels_v": self.dc_levels_v(), "digital_states": self.digital_states(),
                     "history_truncated": self.history_truncated,
                     "circuit": type(self.circuit).__name__ if self.circuit is not None else None})
        return snap

    # ------------------------------------------------------------- twin only
    @property
    def simulated_time_s(self) -> float:
        """The twin's clock (seconds): advanced by acquisitions, :meth:`sleep` and ``dc_write_s``."""
        return self._clock

    def reseed(self, seed: int | Sequence[int]) -> None:
        """Restart the noise generator (the run loop reseeds per step, so twin runs resume exactly).

        The 1/f processes keep their present state; with ``noise_1f_v = 0`` and
        ``rc_time_s = 0`` every reading after a reseed depends only on the seed
        and on what is written.
        """
        self._rng = np.random.default_rng(seed)

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (nodes relax, noise evolves); returns at once."""
        self._advance_idle(_non_negative("seconds", seconds))

    def inject_faults(self, n: int, kind: str = "timeout",
                      methods: tuple[str, ...] = ("write_read", "set_dc", "set_digital"),
                      when: str = "before", seed: int | None = None) -> None:
        """Make the next ``n`` calls of ``methods`` raise ``PortTimeout`` or ``PortIOError`` (kind "timeout" or "io").

        ``when="before"``: the call fails before anything is written (nothing
        recorded, clock unchanged).  ``when="during"``: a ``write_read`` is
        aborted after a random number of samples ``k`` (uniform in
        ``0 .. n_samples - 1``): samples ``0 .. k-1`` went out (recorded, marked
        ``aborted``), the clock advanced by them and every written channel holds
        sample ``k - 1`` (its previous level if ``k = 0``), as an NI AO holds
        the last sample it generated; ``dc_levels_v`` reports that true level.
        A ``set_dc`` / ``set_digital`` is lost either before or after it reached
        the device (at random).  ``when="after"``: the output happened (it is
        in :attr:`history`, levels and clock moved on) and then the read or the
        acknowledgement was lost.  Later calls work again.  ``n = 0`` disarms.
        ``seed`` restarts the generator of the abort points (which never touches
        the noise).
        """
        self._faults.arm(n, kind, frozenset(methods), when)
        if seed is not None:
            self._fault_rng = np.random.default_rng([int(seed), 0xFA17])

    @property
    def faults_pending(self) -> int:
        """Injected faults still armed."""
        return self._faults.pending()

    @property
    def faults_raised(self) -> int:
        """Injected faults that struck so far (every kind, every ``when``)."""
        return self._faults.raised

    def set_wiring_faults(self, dead_ai: Sequence[str] = (), swapped_ai: Sequence[tuple[str, str]] = (),
                          dead_ao: Sequence[str] = ()) -> None:
        """Twin of a miswired or broken bench (for self-tests); called again with no arguments, it heals.

        ``dead_ai``: these AI channels read only noise (an open cable, a dead input).  ``swapped_ai``: each pair
        of AI channels reads each other's node (two cables swapped).  ``dead_ao``: the circuit sees 0 V on these
        AO channels whatever is written (a broken output); the DAQ still records what was sent and reports it in
        ``dc_levels_v``.  Nothing else changes: limits, noise, clock, records.  Raises ``ValueError`` for an
        unknown channel or a channel named twice.
        """
        source: dict[str, str | None] = {}
        for a, b in swapped_ai:
            for c in (a, b):
                if c not in self._ai_index:
                    raise ValueError(f"unknown AI channel {c!r} (this device has: {', '.join(self.ai_channels)})")
                if c in source:
                    raise ValueError(f"AI channel {c!r} is named twice in the wiring faults")
            if a == b:
                raise ValueError(f"cannot swap AI channel {a!r} with itself")
            source[a], source[b] = b, a
        for c in dead_ai:
            if c not in self._ai_index:
                raise ValueError(f"unknown AI channel {c!r} (this device has: {', '.join(self.ai_channels)})")
            if c in source:
                raise ValueError(f"AI channel {c!r} is named twice in the wiring faults")
            source[c] = None
        for c in dead_ao:
            if c not in self._ao_index:
                raise ValueError(f"unknown AO channel {c!r} (this device has: {', '.join(self.ao_channels)})")
        self._ai_source = source
        self._dead_ao = frozenset(dead_ao)

    @property
    def wiring_faults(self) -> dict[str, list]:
        """The faults :meth:`set_wiring_faults` set: ``dead_ai``, ``swapped_ai`` (each pair once), ``dead_ao``."""
        swapped = sorted({tuple(sorted((a, b))) for a, b in self._ai_source.items() if b is not None})
        return {"dead_ai": sorted(c for c, s in self._ai_source.items() if s is None),
                "swapped_ai": [list(p) for p in swapped], "dead_ao": sorted(self._dead_ao)}

    def ao_record(self, channel: str, quantized: bool = False, include_initial: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(t_s, v)``: every sample sent to ``channel``, in order, on the twin clock.

        Waveform sample ``k`` of an acquisition starting at ``t0`` has time
        ``t0 + k / rate_hz``; a ``set_dc`` level has the time of the call.  With
        ``include_initial`` the power-up level (0 V at the start time) comes
        first.  ``quantized=True`` gives what the DAC produced instead of what
        was sent.
        """
        if channel not in self._ao_index:
            raise ValueError(f"unknown AO channel {channel!r}")
        ts, vs = ([np.array([self._start_time_s])], [np.zeros(1)]) if include_initial else ([], [])
        for event in self.history:
            if isinstance(event, AOWrite) and channel in event.channels:
                row = event.values_v[event.channels.index(channel)]
                n = len(row)
                ts.append(event.t_s + np.arange(n) / event.rate_hz if event.rate_hz else np.full(n, event.t_s))
                vs.append(row)
        t = np.concatenate(ts) if ts else np.zeros(0)
        v = np.concatenate(vs) if vs else np.zeros(0)
        return t, (_quantise(v, *self.ao_range_v, self.dac_bits) if quantized else v.copy())

    def digital_record(self, line: str) -> tuple[np.ndarray, np.ndarray]:
        """``(t_s, state)`` of every ``set_digital`` that named ``line``."""
        if line not in self._digital:
            raise ValueError(f"unknown digital line {line!r}")
        hits = [(e.t_s, e.states[line]) for e in self.history if isinstance(e, DOWrite) and line in e.states]
        return np.array([h[0] for h in hits], float), np.array([h[1] for h in hits], bool)

    def ao_summary(self) -> dict[str, dict[str, float]]:
        """Per AO channel, over everything ever sent (kept even when :attr:`history` is off or truncated).

        ``min_v``/``max_v``: extreme values sent (the power-up 0 V included);
        ``max_step_v``: largest jump between consecutive values of the channel
        (a ``set_dc`` jump or a waveform step, from whatever level it held);
        ``max_slew_v_per_s``: largest ``|dv| * rate_hz`` inside waveforms,
        including the step from the held level to the first sample.
        """
        return {c: {"min_v": float(self._min[i]), "max_v": float(self._max[i]),
                    "max_step_v": float(self._max_step[i]), "max_slew_v_per_s": float(self._max_slew[i])}
                for i, c in enumerate(self.ao_channels)}

    def probe_ai(self, ai_channels: Sequence[str], t_s: np.ndarray,
                 extra_ao_v: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Noise-free AI-node voltages over the uniform times ``t_s``, with optional extra AO signals.

        Every AO channel holds its DC level plus ``extra_ao_v[channel]`` (e.g. a
        lock-in's sine out summed onto it); the RC response starts from the
        present node state.  Records nothing, quantises nothing, does not move
        the clock: this is how an instrument other than the DAQ (a lock-in)
        sees the chip.
        """
        ai_idx = self._lookup(ai_channels, self._ai_index, "AI")
        t_s = np.asarray(t_s, float)
        n = len(t_s)
        out = np.zeros((len(ai_idx), n))
        if self.circuit is None or n == 0:
            return out
        levels = np.repeat(_quantise(self._dc, *self.ao_range_v, self.dac_bits)[:, None], n, axis=1)
        for name, wave in (extra_ao_v or {}).items():
            (k,) = self._lookup([name], self._ao_index, "AO")
            levels[k] = levels[k] + np.broadcast_to(np.asarray(wave, float), (n,))
        nodes = self._circuit_at(levels[self._circuit_ao])
        if self.rc_time_s > 0 and n > 1:
            a = np.exp(-(t_s[1] - t_s[0]) / self.rc_time_s)
            nodes = lfilter([1 - a], [1, -a], nodes, axis=1, zi=(a * self._rc_state)[:, None])[0]
        self._fill_ai(out, ai_channels, nodes)
        return out

    # -------------------------------------------------------------- internals
    def _lookup(self, names: Sequence[str], index: dict[str, int], group: str) -> np.ndarray:
        if isinstance(names, str):
            raise ValueError(f"{group} channels must be a sequence of names, got the string {names!r}")
        names = list(names)
        for name in names:
            if name not in index:
                known = ", ".join(index) or "none"
                raise ValueError(f"unknown {group} channel {name!r} (this device has: {known})")
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise ValueError(f"{group} channel {dup[0]!r} named twice")
        return np.array([index[c] for c in names], dtype=np.int64)

    def _check_levels(self, values: np.ndarray, names: Sequence[str]) -> None:
        low, high = self.ao_range_v
        finite = np.isfinite(values)
        if not np.all(finite):
            row = int(np.argwhere(~finite)[0, 0])
            raise ValueError(f"AO channel {list(names)[row]!r}: non-finite value")
        bad = (values < low) | (values > high)
        if np.any(bad):
            row, col = np.argwhere(bad)[0]
            raise ValueError(f"AO channel {list(names)[row]!r}: {values[row, col]:g} V is outside the output "
                             f"range [{low:g}, {high:g}] V")

    def _lost_during(self, method: str) -> bool:
        """For a ``"during"`` fault on a call that cannot be cut in two: raise now (lost before it reached the
        device) or return True (it reaches the device, then the acknowledgement is lost), at random."""
        if not self._faults.due(method, "during"):
            return False
        if self._fault_rng.random() < 0.5:
            raise self._faults.error(method, "the command was lost")
        return True

    def _abort_generation(self, t0: float, rate: float, names: tuple[str, ...], idx: np.ndarray,
                          generated: np.ndarray) -> None:
        """An acquisition aborted after ``generated.shape[1]`` samples: they reach the circuit and the record,
        the clock moves on by them, each written channel holds the last one (no AI is returned)."""
        k = generated.shape[1]
        if k and len(idx):
            self._record_ao("waveform", t0, rate, names, idx, generated, aborted=True)
            self._dc[idx] = generated[:, -1]
        if k and self.circuit is not None:
            levels = np.repeat(_quantise(self._dc, *self.ao_range_v, self.dac_bits)[:, None], k, axis=1)
            if len(idx):
                levels[idx] = _quantise(generated, *self.ao_range_v, self.dac_bits)
            self._rc_filter(self._circuit_at(levels[self._circuit_ao]), 1.0 / rate)
        self._clock = t0 + k / rate
        self._last_wall = time.monotonic()

    def _record_ao(self, kind: str, t0: float, rate: float | None, names: tuple[str, ...], idx: np.ndarray,
                   values: np.ndarray, aborted: bool = False) -> None:
        if len(idx) == 0:
            return
        prev = self._dc[idx][:, None]
        steps = np.abs(np.diff(np.concatenate([prev, values], axis=1), axis=1))
        self._min[idx] = np.minimum(self._min[idx], values.min(axis=1))
        self._max[idx] = np.maximum(self._max[idx], values.max(axis=1))
        self._max_step[idx] = np.maximum(self._max_step[idx], steps.max(axis=1))
        if rate is not None:
            self._max_slew[idx] = np.maximum(self._max_slew[idx], steps.max(axis=1) * rate)
        if not self.record_history or self.history_truncated:
            return
        if self._history_samples + values.size > self.history_max_samples:
            self.history_truncated = True
            return
        self._history_samples += values.size
        self.history.append(AOWrite(kind, t0, time.monotonic(), rate, names, values.copy(), next_event(), aborted))

    def _fill_ai(self, out: np.ndarray, ai_channels: Sequence[str], nodes: np.ndarray) -> None:
        """Rows of ``out`` for ``ai_channels`` from the circuit's node voltages (honouring wiring faults)."""
        for row, name in enumerate(ai_channels):
            source = self._ai_source.get(name, name)
            k = self._circuit_ai.get(source) if source is not None else None
            if k is not None:
                out[row] = nodes[k]

    def _circuit_at(self, levels: np.ndarray) -> np.ndarray:
        if self._dead_ao:
            dead = [k for k, c in enumerate(self.circuit.ao_channels) if c in self._dead_ao]
            if dead:
                levels = np.array(levels, float, copy=True)
                levels[dead] = 0.0
        nodes = np.asarray(self.circuit.ai_voltages(levels, dict(self._digital)), float)
        expected = (len(self.circuit.ai_channels), levels.shape[1])
        if nodes.shape != expected:
            raise ValueError(f"circuit returned shape {nodes.shape}, expected {expected}")
        return nodes

    def _rc_filter(self, nodes: np.ndarray, dt: float) -> np.ndarray:
        if self.rc_time_s > 0:
            a = np.exp(-dt / self.rc_time_s)
            nodes = lfilter([1 - a], [1, -a], nodes, axis=1, zi=(a * self._rc_state)[:, None])[0]
        self._rc_state = nodes[:, -1].copy()
        return nodes

    def _noise(self, ai_idx: np.ndarray, n: int, dt: float) -> np.ndarray:
        shape = (len(ai_idx), n)
        white_var = self.noise_white_v ** 2
        slow: list[int] = []
        if self.noise_1f_v > 0:
            # Corners far above the sample rate decorrelate within one sample: add them as white noise.
            decay = np.exp(-2 * np.pi * self._corner_hz * dt)
            fast = decay < _WHITE_DECAY
            white_var += self._sigma_1f ** 2 * int(fast.sum())
            slow = [k for k in range(len(decay)) if not fast[k]]
            if np.any(fast):
                self._f1_state[:, fast] = self._rng.normal(0.0, self._sigma_1f, (len(self.ai_channels),
                                                                                  int(fast.sum())))
        out = self._rng.normal(0.0, np.sqrt(white_var), shape) if white_var > 0 else np.zeros(shape)
        if slow and len(ai_idx):
            for k in slow:
                out += self._ou_path(ai_idx, k, n, dt)
        if slow:
            others = np.setdiff1d(np.arange(len(self.ai_channels)), ai_idx)
            if len(others):
                self._evolve_1f(others, n * dt)
        return out

    def _ou_path(self, rows: np.ndarray, k: int, n: int, dt: float) -> np.ndarray:
        """``n`` samples of 1/f process ``k`` on the AI channels ``rows``, continuing from its state.

        A process whose corner is well below the sample rate is drawn exactly on
        a coarser grid (at least ``_OU_OVERSAMPLE`` points per corner period,
        last point on the last sample) and linearly interpolated in between;
        its power above ``rate / (2 * decimation)`` is negligible next to the
        faster processes'.  Fast processes are drawn at every sample.
        """
        f, sigma = self._corner_hz[k], self._sigma_1f
        state = self._f1_state[rows, k]
        step = max(1, int(1.0 / (_OU_OVERSAMPLE * f * dt)))
        if step == 1:
            a = np.exp(-2 * np.pi * f * dt)
            y = lfilter([sigma * np.sqrt(1 - a * a)], [1, -a], self._rng.standard_normal((len(rows), n)), axis=1,
                        zi=(a * state)[:, None])[0]
            self._f1_state[rows, k] = y[:, -1]
            return y
        m = -(-n // step)
        points = n - 1 - step * np.arange(m - 1, -1, -1)          # coarse grid, ends on the last sample
        e = self._rng.standard_normal((len(rows), m))
        a0 = np.exp(-2 * np.pi * f * dt * (points[0] + 1))
        coarse = np.empty((len(rows), m + 1))
        coarse[:, 0] = state
        coarse[:, 1] = a0 * state + sigma * np.sqrt(1 - a0 * a0) * e[:, 0]
        if m > 1:
            a = np.exp(-2 * np.pi * f * dt * step)
            coarse[:, 2:] = lfilter([sigma * np.sqrt(1 - a * a)], [1, -a], e[:, 1:], axis=1,
                                    zi=(a * coarse[:, 1])[:, None])[0]
        self._f1_state[rows, k] = coarse[:, -1]
        return np.asarray(coarse @ _interpolation(n, step))

    def _evolve_1f(self, rows: np.ndarray, seconds: float) -> None:
        """Advance the 1/f processes of ``rows`` by ``seconds`` exactly (one OU step)."""
        if self.noise_1f_v <= 0 or seconds <= 0 or len(rows) == 0:
            return
        sigma = self._sigma_1f
        a = np.exp(-2 * np.pi * self._corner_hz * seconds)
        e = self._rng.standard_normal((len(rows), len(a)))
        self._f1_state[rows] = a * self._f1_state[rows] + sigma * np.sqrt(1 - a * a) * e

    def _advance_idle(self, seconds: float) -> None:
        """Let time pass with the AO holding its DC levels."""
        if seconds <= 0:
            return
        if self.circuit is not None and self.rc_time_s > 0:
            target = self._circuit_at(_quantise(self._dc, *self.ao_range_v, self.dac_bits)[self._circuit_ao, None])
            a = np.exp(-seconds / self.rc_time_s)
            self._rc_state = target[:, 0] + (self._rc_state - target[:, 0]) * a
        elif self.circuit is not None:
            self._rc_state = self._circuit_at(
                _quantise(self._dc, *self.ao_range_v, self.dac_bits)[self._circuit_ao, None])[:, 0]
        self._evolve_1f(np.arange(len(self.ai_channels)), seconds)
        self._clock += seconds

    def _gap(self) -> None:
        if self.realtime_gaps:
            self._advance_idle(max(0.0, time.monotonic() - self._last_wall))


# ----------------------------------------------------------------- helpers
@lru_cache(maxsize=32)
def _interpolation(n: int, step: int) -> sp.csr_matrix:
    """Sparse (m + 1, n) linear interpolation from the coarse grid ``[-1, n-1-step*(m-1), ..., n-1]`` to ``0..n-1``."""
    m = -(-n // step)
    grid = np.r_[-1, n - 1 - step * np.arange(m - 1, -1, -1)]
    j = np.arange(n)
    seg = np.searchsorted(grid, j, side="left") - 1
    w = (j - grid[seg]) / (grid[seg + 1] - grid[seg])
    return sp.csr_matrix((np.r_[1 - w, w], (np.r_[seg, seg + 1], np.r_[j, j])), shape=(m + 1, n))


def _names(what: str, names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ValueError(f"{what} must be a sequence of channel names, got the string {names!r}")
    out = tuple(str(n) for n in names)
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise ValueError(f"{what} lists {dup[0]!r} twice")
    return out


def _range(what: str, pair: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(x) for x in pair)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"{what} must be (low, high) with low < high, got {pair!r}")
    return low, high


def _positive(what: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be > 0, got {value!r}")
    return value


def _non_negative(what: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    return value
