"""Software lock-in and frequency planner for AC learning protocols.

Frequency propagation and homodyne gradient extraction put sinusoids on a
device and read back, per tone, the in-phase and quadrature parts of a
sampled response.  This module does both halves:

* :func:`plan_tones` picks tones on the FFT grid of a window (each tone an
  integer number of periods in the window, so tones are exactly orthogonal),
  such that no harmonic (2f, 3f) and no sum or difference ``f_i +- f_j`` of the
  planned tones lands on another tone, away from mains harmonics and below a
  bandwidth.  Products above Nyquist are folded back first (that is where an
  ADC puts them).
* :func:`demodulate` is the lock-in: drop the settling samples, keep a
  whole-period window, remove the mean, and project on ``sin`` and ``cos`` of
  every reference frequency.

Convention.  A tone is ``a sin(2 pi f t)`` with ``t = k / rate_hz`` counted from
the first sample of the acquisition (sample 0 of the settling part), so a
waveform that starts with its tones starts at its DC level.  A response

``s(t) = dc + sum_k [X_k sin(2 pi f_k t) + Y_k cos(2 pi f_k t)]``

demodulates to in-phase ``X_k`` and quadrature ``Y_k`` in *peak* units (a lock-in
that reports ``<s sin>`` gives ``X_k / 2``; the DNPU literature's ``2X/a`` is
``X_k / a`` here).  For a small tone of amplitude ``a_k`` on input ``k`` of a
memoryless device, ``X_k / a_k = dI/dV_k`` and ``Y_k ~ 0``; a large quadrature
part means a filter corner near the tone.

The noise of ``X_k`` from white noise of RMS ``sigma`` per sample is
``sigma sqrt(2 / N)`` for an ``N``-sample window (:func:`in_phase_noise`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Sequence

import numpy as np

__all__ = ["FrequencyPlan", "Demodulated", "ToneCollision", "plan_tones", "tone_collisions", "demodulate",
           "tone_waveforms", "in_phase_noise", "PUBLISHED_DNPU_TONES_HZ"]

#: Boon et al.'s bench tones at 10 kS/s with a 50 ms window (5, 9, 13, 19, 23 x 40 Hz)
PUBLISHED_DNPU_TONES_HZ = (200.0, 360.0, 520.0, 760.0, 920.0)


class ToneCollision(ValueError):
    """A tone set in which a harmonic or intermodulation product lands on a tone."""


def _fold(bins: np.ndarray, n: int) -> np.ndarray:
    """Alias bins of an ``n``-sample window into ``[0, n/2]``."""
    b = np.mod(bins, n)
    return np.minimum(b, n - b)


def tone_collisions(bins: Sequence[int], window_samples: int, third_order: bool = False) -> list[str]:
    """Every product of the tones (on bins ``bins`` of an ``window_samples`` window) that lands on a tone.

    Products checked: ``2 f_i``, ``3 f_i``, ``f_i + f_j``, ``|f_i - f_j|`` and,
    with ``third_order``, ``2 f_i +- f_j``; all folded about Nyquist.  Returns
    one readable line per collision (empty: collision-free).
    """
    b = [int(x) for x in bins]
    n = int(window_samples)
    tones = {int(_fold(np.array([x]), n)[0]): x for x in b}
    out: list[str] = []
    if len(tones) != len(b):
        out.append(f"two tones share a bin (after folding): {sorted(b)}")

    def hit(value: int, what: str) -> None:
        f = int(_fold(np.array([value]), n)[0])
        if f in tones:
            out.append(f"{what} lands on bin {tones[f]}")

    for i in b:
        hit(2 * i, f"2x bin {i}")
        hit(3 * i, f"3x bin {i}")
    for i, j in combinations(b, 2):
        hit(i + j, f"bin {i} + bin {j}")
        hit(abs(i - j), f"bin {i} - bin {j}")
        if third_order:
            for p, q in ((i, j), (j, i)):
                hit(2 * p + q, f"2x bin {p} + bin {q}")
                hit(abs(2 * p - q), f"2x bin {p} - bin {q}")
    return out


@dataclass(frozen=True)
class FrequencyPlan:
    """Tones on the FFT grid of one demodulation window.

    Attributes
    ----------
    rate_hz : float
        Sample clock.
    window_samples : int
        Samples demodulated per window (after settling).
    bins : tuple of int
        Tone ``k`` has frequency ``bins[k] * rate_hz / window_samples``.
    """

    rate_hz: float
    window_samples: int
    bins: tuple[int, ...]
    third_order: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.window_samples < 4:
            raise ValueError(f"need rate_hz > 0 and window_samples >= 4, got {self.rate_hz}, {self.window_samples}")
        bad = [b for b in self.bins if not 0 < b < self.window_samples / 2]
        if bad:
            raise ValueError(f"tone bins {bad} are not between DC and Nyquist of a {self.window_samples}-sample window")

    @classmethod
    def from_frequencies(cls, tones_hz: Sequence[float], rate_hz: float, window_s: float,
                         third_order: bool = False) -> "FrequencyPlan":
        """A plan for given tones; each must be a whole number of periods in ``window_s``."""
        n = int(round(window_s * rate_hz))
        if abs(n - window_s * rate_hz) > 1e-6 * n:
            raise ValueError(f"window_s = {window_s} is not a whole number of samples at {rate_hz} Hz")
        bins = []
        for f in tones_hz:
            b = f * n / rate_hz
            if abs(b - round(b)) > 1e-6:
                raise ValueError(f"tone {f} Hz is not a whole number of periods in a {window_s} s window "
                                 f"(resolution {rate_hz / n:g} Hz)")
            bins.append(int(round(b)))
        return cls(float(rate_hz), n, tuple(bins), third_order)

    @property
    def resolution_hz(self) -> float:
        return self.rate_hz / self.window_samples

    @property
    def window_s(self) -> float:
        return self.window_samples / self.rate_hz

    @property
    def tones_hz(self) -> np.ndarray:
        return np.asarray(self.bins, float) * self.resolution_hz

    @property
    def n_tones(self) -> int:
        return len(self.bins)

    def collisions(self) -> list[str]:
        """Harmonic / intermodulation collisions of this plan (see :func:`tone_collisions`)."""
        return tone_collisions(self.bins, self.window_samples, self.third_order)

    def to_dict(self) -> dict:
        return {"rate_hz": self.rate_hz, "window_samples": self.window_samples, "tones_hz": self.tones_hz.tolist(),
                "third_order_checked": self.third_order}


def plan_tones(n_tones: int, rate_hz: float, window_s: float, *, max_hz: float | None = None,
               min_hz: float | None = None, mains_hz: float = 50.0, mains_guard_hz: float | None = None,
               third_order: bool = False, odd_only: bool = False) -> FrequencyPlan:
    """Pick ``n_tones`` collision-free tones on the grid of a ``window_s`` window.

    Parameters
    ----------
    n_tones : int
        How many tones.
    rate_hz, window_s : float
        Sample clock and demodulation window; the grid is ``1 / window_s``.
    max_hz : float, optional
        Bandwidth: no tone (and, so harmonics stay on-grid and unaliased where
        possible, no tone above ``rate_hz / 6``).  Default ``rate_hz / 6``.
    min_hz : float, optional
        Lowest tone (default: two grid steps, so no tone sits next to DC).
    mains_hz : float
        Mains frequency; tones closer than ``mains_guard_hz`` to any of its
        harmonics are skipped (0 disables).
    mains_guard_hz : float, optional
        Default: one grid step (a harmonic between two bins leaks into both).
    third_order : bool
        Also forbid ``2 f_i +- f_j`` products.
    odd_only : bool
        Only odd multiples of the grid (sums, differences and second
        harmonics then fall on even bins automatically).

    Returns
    -------
    FrequencyPlan
        The lowest collision-free set found greedily (lowest tones first).

    Raises
    ------
    ToneCollision
        If the band cannot hold ``n_tones`` collision-free tones.
    """
    if n_tones < 1:
        raise ValueError(f"n_tones must be >= 1, got {n_tones}")
    n = int(round(window_s * rate_hz))
    if n < 4 or abs(n - window_s * rate_hz) > 1e-6 * max(n, 1):
        raise ValueError(f"window_s = {window_s} s at {rate_hz} Hz must be a whole number (>= 4) of samples")
    res = rate_hz / n
    top = rate_hz / 6 if max_hz is None else min(max_hz, rate_hz / 2)
    bottom = 2 * res if min_hz is None else max(min_hz, res)
    guard = res if mains_guard_hz is None else mains_guard_hz
    chosen: list[int] = []
    b = int(np.ceil(bottom / res - 1e-9))
    while len(chosen) < n_tones:
        f = b * res
        if f > top + 1e-9 or b >= n / 2:
            raise ToneCollision(f"only {len(chosen)} collision-free tones fit between {bottom:g} and {top:g} Hz on a "
                                f"{res:g} Hz grid; lengthen the window or widen the band")
        ok = not (odd_only and b % 2 == 0)
        if ok and mains_hz > 0:
            k = round(f / mains_hz)
            ok = k == 0 or abs(f - k * mains_hz) >= guard
        if ok and not tone_collisions(chosen + [b], n, third_order):
            chosen.append(b)
        b += 1
    return FrequencyPlan(float(rate_hz), n, tuple(chosen), third_order)


@dataclass
class Demodulated:
    """Demodulated response: per signal and per reference tone.

    Attributes
    ----------
    in_phase : ndarray, shape (..., n_tones)
        ``X`` (peak units, coefficient of ``sin``).
    quadrature : ndarray, shape (..., n_tones)
        ``Y`` (coefficient of ``cos``).
    dc : ndarray, shape (...)
        Mean of the window.
    frequencies_hz : ndarray, shape (n_tones,)
    window_samples : int
    """

    in_phase: np.ndarray
    quadrature: np.ndarray
    dc: np.ndarray
    frequencies_hz: np.ndarray
    window_samples: int

    @property
    def amplitude(self) -> np.ndarray:
        return np.hypot(self.in_phase, self.quadrature)

    @property
    def phase_rad(self) -> np.ndarray:
        """Phase relative to ``sin``: ``s = R sin(2 pi f t + phase)``."""
        return np.arctan2(self.quadrature, self.in_phase)

    def quadrature_ratio(self) -> np.ndarray:
        """``|Y| / |X|`` per tone over all signals (RMS ratio); a health diagnostic (~0 for a memoryless device)."""
        axes = tuple(range(self.in_phase.ndim - 1))
        x = np.sqrt(np.mean(self.in_phase**2, axis=axes))
        y = np.sqrt(np.mean(self.quadrature**2, axis=axes))
        return np.divide(y, x, out=np.full_like(y, np.inf), where=x > 0)


def _references(freqs_hz: np.ndarray, rate_hz: float, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = (start + np.arange(n)) / rate_hz
    arg = 2 * np.pi * np.outer(t, freqs_hz)
    return np.sin(arg), np.cos(arg)


def demodulate(signal: np.ndarray, rate_hz: float, frequencies_hz: Sequence[float], *, settle_samples: int = 0,
               window_samples: int | None = None, check_periods: bool = True) -> Demodulated:
    """Lock-in demodulation of sampled signals at several reference frequencies.

    Parameters
    ----------
    signal : ndarray, shape (..., n_samples)
        Sampled responses (any leading shape: examples, channels).
    rate_hz : float
        Sample clock.
    frequencies_hz : sequence of float
        Reference frequencies.
    settle_samples : int
        Samples discarded at the start (time still counts from sample 0).
    window_samples : int, optional
        Samples demodulated after settling (default: all that remain, cut to
        a whole number of periods of every tone when ``check_periods``).
    check_periods : bool
        Require every tone to fit a whole number of periods in the window
        (then tones and DC are exactly orthogonal); raise ``ValueError`` if not.

    Returns
    -------
    Demodulated
    """
    s = np.asarray(signal, float)
    freqs = np.atleast_1d(np.asarray(frequencies_hz, float))
    total = s.shape[-1]
    n = total - settle_samples if window_samples is None else int(window_samples)
    if settle_samples < 0 or n < 2 or settle_samples + n > total:
        raise ValueError(f"settle_samples = {settle_samples} + window of {n} samples does not fit in {total} samples")
    if check_periods:
        periods = freqs * n / rate_hz
        bad = np.abs(periods - np.round(periods)) > 1e-6 * np.maximum(periods, 1)
        if np.any(bad):
            raise ValueError(f"tones {freqs[bad].tolist()} Hz are not a whole number of periods in a "
                             f"{n}-sample window at {rate_hz} Hz (grid {rate_hz / n:g} Hz)")
    w = s[..., settle_samples:settle_samples + n]
    dc = w.mean(axis=-1)
    centred = w - dc[..., None]
    sin_ref, cos_ref = _references(freqs, rate_hz, settle_samples, n)
    x = (2.0 / n) * centred @ sin_ref
    y = (2.0 / n) * centred @ cos_ref
    return Demodulated(x, y, dc, freqs, n)


def tone_waveforms(frequencies_hz: Sequence[float], amplitudes: np.ndarray, rate_hz: float,
                   n_samples: int) -> np.ndarray:
    """``sum_k a_k sin(2 pi f_k t)`` sampled at ``t = k / rate_hz``.

    ``amplitudes`` has shape ``(..., n_tones)``; the result ``(..., n_samples)``.
    """
    freqs = np.atleast_1d(np.asarray(frequencies_hz, float))
    sin_ref, _ = _references(freqs, rate_hz, 0, int(n_samples))
    return np.asarray(amplitudes, float) @ sin_ref.T


def in_phase_noise(noise_rms: float, window_samples: int) -> float:
    """Standard deviation of ``X`` (or ``Y``) from white noise of RMS ``noise_rms`` per sample."""
    return float(noise_rms * np.sqrt(2.0 / window_samples))
