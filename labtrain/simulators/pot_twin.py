"""Twin of a digital-potentiometer array used as rheostats (one channel per network edge).

:class:`SimulatedPotArray` behaves like a bank of real digital pots:

* every part's true end-to-end resistance deviates from the datasheet value,
  drawn once (seeded) from ``N(1, tolerance)`` -- that is the
  :attr:`~SimulatedPotArray.true_calibration` the physics uses;
* the chip only knows the datasheet, :attr:`~SimulatedPotArray.calibration`
  (the *nominal* :class:`~labtrain.instruments.ports.PotCalibration`), unless a measured
  calibration table is loaded on top;
* taps are integers ``0 .. n_taps - 1``; anything else is a ``ValueError``
  (nothing is written);
* every write is recorded in :attr:`~SimulatedPotArray.history` with its
  timestamp, so tests can replay what reached the chip -- up to
  ``history_max_taps`` stored taps (like the DAQ twin's ``history_max_samples``:
  an hours-long dry run cannot exhaust memory), then
  :attr:`~SimulatedPotArray.history_truncated` is set;
* :meth:`~SimulatedPotArray.inject_faults` makes the next calls raise
  :class:`~labtrain.instruments.ports.PortTimeout` or :class:`~labtrain.instruments.ports.PortIOError`;
* :meth:`~SimulatedPotArray.set_stuck` makes parts ignore writes (for self-tests),
  echoing either what was written (a write-only part: the host cannot tell) or
  the tap they hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from labtrain.instruments.ports import PotArray, PotCalibration
from labtrain.simulators._faults import FaultInjector

__all__ = ["SimulatedPotArray", "PotWrite"]


@dataclass(frozen=True, slots=True)
class PotWrite:
    """One ``set_taps`` that reached the parts: when (twin clock and wall clock) and the taps held afterwards."""

    t_s: float
    wall_s: float
    taps: np.ndarray


class SimulatedPotArray(PotArray):
    """Twin of an array of ``n_channels`` digital potentiometers wired as rheostats.

    Parameters
    ----------
    n_channels : int
        Number of pots (channel ``c`` is edge ``e`` where ``wiring.pot_channels[e] == c``).
    n_taps : int
        Taps per pot (e.g. 256 or 1024).
    r_total_ohm : float
        Datasheet end-to-end resistance (ohms).
    r_wiper_ohm : float
        Wiper resistance (ohms), in series at every tap.
    r_end_ohm : float
        Fixed series resistance at the zero end (ohms), e.g. an external resistor.
    tolerance : float
        Relative standard deviation of each part's true ``r_total_ohm`` (e.g. 0.2
        for the +-20 % of typical digital pots).  Draws are clipped to
        ``[0.05, 3]`` times nominal so no part is unphysical.
    seed : int
        Seed of the per-part draws.
    initial_tap : int, optional
        Tap every part holds at power-up (default mid-scale, as most parts do).
    clock : callable, optional
        Returns the twin's time in seconds (e.g. ``lambda: daq.simulated_time_s``)
        for the timestamps of :attr:`history`; default ``time.monotonic``.
    name : str
        Identity suffix.
    record_history : bool
        Keep every write in :attr:`history`.
    history_max_taps : int
        Stop appending to :attr:`history` (and set :attr:`history_truncated`)
        once this many taps are stored (writes x channels; 5e6 taps = 40 MB of
        tap values), so hours-long dry runs cannot exhaust memory.
    """

    def __init__(self, n_channels: int, n_taps: int = 1024, r_total_ohm: float = 1e5, r_wiper_ohm: float = 50.0,
                 r_end_ohm: float = 0.0, tolerance: float = 0.2, seed: int = 0, initial_tap: int | None = None,
                 clock: Callable[[], float] | None = None, name: str = "", record_history: bool = True,
                 history_max_taps: int = 5_000_000) -> None:
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be an integer >= 1, got {n_channels!r}")
        if int(n_taps) != n_taps or n_taps < 2:
            raise ValueError(f"n_taps must be an integer >= 2, got {n_taps!r}")
        if not (np.isfinite(tolerance) and 0 <= tolerance < 1):
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
        if int(history_max_taps) != history_max_taps or history_max_taps < 0:
            raise ValueError(f"history_max_taps must be an integer >= 0, got {history_max_taps!r}")
        self.n_channels = int(n_channels)
        self.n_taps = int(n_taps)
        self.seed = int(seed)
        self.name = name
        self.calibration = PotCalibration.nominal(self.n_channels, self.n_taps, r_total_ohm, r_wiper_ohm,
                                                  r_end_ohm, tolerance)
        factor = np.clip(np.random.default_rng(seed).normal(1.0, tolerance, self.n_channels), 0.05, 3.0)
        nominal = self.calibration
        self.true_calibration = PotCalibration(self.n_taps, nominal.r_total_ohm * factor, nominal.r_wiper_ohm.copy(),
                                               nominal.r_end_ohm.copy(), 0.0)
        start = self.n_taps // 2 if initial_tap is None else initial_tap
        self._taps = self._validated(np.full(self.n_channels, start))
        self.clock = clock if clock is not None else time.monotonic
        self.record_history = bool(record_history)
        self.history_max_taps = int(history_max_taps)
        self.history: list[PotWrite] = []
        self.history_truncated = False
        self._faults = FaultInjector("SimulatedPotArray")
        self.n_writes = 0
        self._stuck = np.zeros(self.n_channels, bool)
        self._echo_written = True
        self._reported = self._taps.copy()   # what set_taps/get_taps report (differs only for stuck parts)

    # ------------------------------------------------------------------ port
    def set_taps(self, taps: np.ndarray) -> np.ndarray:
        """Set every channel's tap (integers ``0 .. n_taps-1``, shape ``(n_channels,)``); returns the taps held."""
        asked = self._validated(taps)
        self._faults.check("set_taps", "before")
        new = np.where(self._stuck, self._taps, asked)
        self._taps = new
        self._reported = asked.copy() if self._echo_written else new.copy()
        self.n_writes += 1
        if self.record_history and not self.history_truncated:
            if (len(self.history) + 1) * self.n_channels > self.history_max_taps:
                self.history_truncated = True
            else:
                self.history.append(PotWrite(float(self.clock()), time.monotonic(), new.copy()))
        self._faults.check("set_taps", "after")
        return self._reported.copy()

    def get_taps(self) -> np.ndarray:
        """Read back every channel's tap."""
        self._faults.check("get_taps", "before")
        return self._reported.copy()

    def identify(self) -> str:
        suffix = f" {self.name}" if self.name else ""
        return f"labtrain SimulatedPotArray {self.n_channels}ch {self.n_taps} taps{suffix}"

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update({"taps": self._taps.tolist(), "seed": self.seed, "history_truncated": self.history_truncated,
                     "twin_true_calibration": self.true_calibration.to_dict()})
        return snap

    # ------------------------------------------------------------- twin only
    @property
    def held_taps(self) -> np.ndarray:
        """Taps the parts hold now (twin-side truth: no I/O, never faults)."""
        return self._taps.copy()

    def true_resistance_ohm(self, taps: np.ndarray | None = None) -> np.ndarray:
        """True resistance of every channel (ohms) at ``taps`` (default: the held taps)."""
        return self.true_calibration.resistance_ohm(self._taps if taps is None else np.asarray(taps))

    def true_conductance_s(self, taps: np.ndarray | None = None) -> np.ndarray:
        """True conductance of every channel (siemens) at ``taps`` (default: the held taps)."""
        return 1.0 / self.true_resistance_ohm(taps)

    def taps_record(self) -> tuple[np.ndarray, np.ndarray]:
        """``(t_s, taps)`` of every recorded write: shapes ``(n_recorded,)`` and ``(n_recorded, n_channels)``."""
        if not self.history:
            return np.zeros(0), np.zeros((0, self.n_channels), np.int64)
        return np.array([w.t_s for w in self.history]), np.stack([w.taps for w in self.history])

    def set_stuck(self, channels: tuple[int, ...] | list[int] = (), echo: str = "written") -> None:
        """Twin of stuck parts (for self-tests): ``channels`` keep the tap they hold whatever is written.

        ``echo="written"``: ``set_taps``/``get_taps`` report the taps written, as a write-only part (MCP4xxxx)
        does -- the host cannot see the fault, only the chip can.  ``echo="held"``: they report the tap the part
        holds, as a part that reads back (AD5293) does.  ``set_stuck()`` frees every part.  Raises
        ``ValueError`` for a channel outside ``0 .. n_channels - 1`` or an unknown ``echo``.
        """
        if echo not in ("written", "held"):
            raise ValueError(f"echo must be 'written' or 'held', got {echo!r}")
        stuck = np.zeros(self.n_channels, bool)
        for c in channels:
            if isinstance(c, bool) or int(c) != c or not 0 <= c < self.n_channels:
                raise ValueError(f"pot channel {c!r} is outside 0..{self.n_channels - 1}")
            stuck[int(c)] = True
        self._stuck = stuck
        self._echo_written = echo == "written"
        self._reported = self._taps.copy()

    @property
    def stuck_channels(self) -> tuple[int, ...]:
        """Channels :meth:`set_stuck` made ignore writes."""
        return tuple(int(c) for c in np.flatnonzero(self._stuck))

    def inject_faults(self, n: int, kind: str = "timeout", methods: tuple[str, ...] = ("set_taps", "get_taps"),
                      when: str = "before") -> None:
        """Make the next ``n`` calls of ``methods`` raise ``PortTimeout`` or ``PortIOError`` (kind "timeout" or "io").

        ``when="before"``: the call fails before anything reaches the parts;
        ``when="after"`` (``set_taps`` only): the taps were written, then the
        acknowledgement was lost.  ``n = 0`` disarms.
        """
        self._faults.arm(n, kind, frozenset(methods), when)

    @property
    def faults_pending(self) -> int:
        return self._faults.pending()

    # -------------------------------------------------------------- helpers
    def _validated(self, taps: np.ndarray) -> np.ndarray:
        arr = np.asarray(taps)
        if arr.shape != (self.n_channels,):
            raise ValueError(f"expected {self.n_channels} taps, got shape {arr.shape}")
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"taps must be integers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.rint(arr))):
            bad = arr[~(np.isfinite(arr) & (arr == np.rint(arr)))][0]
            raise ValueError(f"taps must be integers, got {bad!r}")
        out = arr.astype(np.int64)
        if out.min() < 0 or out.max() >= self.n_taps:
            bad = int(out[(out < 0) | (out >= self.n_taps)][0])
            raise ValueError(f"tap {bad} is outside 0..{self.n_taps - 1}")
        return out
