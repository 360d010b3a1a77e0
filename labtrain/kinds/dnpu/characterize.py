"""Characterise a DNPU and fit a surrogate twin to it (``labtrain characterize``).

The field's recipe (docs/algorithms.md, section 6): drive every activation
electrode with a slow triangle wave spanning its allowed range, each at its
own frequency ``sqrt(p_k) * base_hz`` for the ``k``-th prime ``p_k`` (square
roots of distinct primes are linearly independent over the rationals, so the
frequencies are incommensurate: the trajectory never closes and fills the
7-dimensional box of allowed voltages densely), record the output current at
every sample, and fit a multilayer perceptron to (voltages -> current).  The
published surrogates are 7 -> 5 x 90 (ReLU) -> 1, fitted to 1e6-1e7 samples,
with a test RMSE near 1 % of the output range.

* :func:`characterize` samples a chip: an
  :class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip` (twin or hardware)
  through its DAQ and the safety layer -- chunked acquisitions (memory stays
  bounded; each chunk ramps in from 0 V and back to 0 V, the triangle wave
  continues where the last chunk stopped) -- or an ideal
  :class:`~labtrain.kinds.dnpu.chip.DNPUChip` by calling its model on the same
  waveforms (plus its read noise).
* :func:`fit_surrogate` fits scikit-learn's ``MLPRegressor`` (inputs scaled to
  [-1, 1] over each electrode's range, output standardised), keeps a test
  split, records the test RMSE as a percentage of the output range, and
  returns a :class:`~labtrain.kinds.dnpu.surrogate.SurrogateDNPU` (which
  needs only numpy to run).
* :func:`characterize_cli` is ``labtrain characterize``; its arguments come
  from :func:`add_characterize_arguments`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from labtrain.kinds.dnpu.chip import DNPUControls
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.kinds.dnpu.surrogate import SurrogateDNPU

__all__ = ["CharacterizationData", "characterize", "fit_surrogate", "triangle_frequencies_hz", "triangle_waves",
           "first_primes", "add_characterize_arguments", "characterize_cli", "main"]


def first_primes(n: int) -> np.ndarray:
    """The first ``n`` primes (2, 3, 5, ...)."""
    primes: list[int] = []
    k = 2
    while len(primes) < n:
        if all(k % p for p in primes if p * p <= k):
            primes.append(k)
        k += 1
    return np.array(primes, int)


def triangle_frequencies_hz(n_electrodes: int, base_hz: float = 5.0) -> np.ndarray:
    """``sqrt(p_k) * base_hz`` for the first ``n_electrodes`` primes: pairwise incommensurate frequencies."""
    return np.sqrt(first_primes(int(n_electrodes)).astype(float)) * float(base_hz)


def triangle_waves(t_s: np.ndarray, low_v: np.ndarray, high_v: np.ndarray, frequencies_hz: np.ndarray,
                   phase: np.ndarray) -> np.ndarray:
    """Triangle waves ``(n_electrodes, n_samples)`` between ``low_v`` and ``high_v``.

    Electrode ``k`` is ``low + (high - low) * (1 - |2 frac(f_k t + phase_k) - 1|)``: at
    phase ``u`` in ``[0, 0.5]`` it rises from ``low`` to ``high``, then falls back.
    """
    u = np.mod(np.outer(frequencies_hz, np.asarray(t_s, float)) + np.asarray(phase, float)[:, None], 1.0)
    lo, hi = np.asarray(low_v, float)[:, None], np.asarray(high_v, float)[:, None]
    return lo + (hi - lo) * (1.0 - np.abs(2.0 * u - 1.0))


@dataclass
class CharacterizationData:
    """What :func:`characterize` recorded.

    Attributes
    ----------
    electrode_v : ndarray, shape (N, n_electrodes)
        Voltage written to every activation electrode at every sample (V).
    current_a : ndarray, shape (N,)
        Output current read at the same samples (A; clipped by the amplifier where it saturates).
    layout : DNPULayout
        The device's electrode ranges, roles, gain and clipping.
    rate_hz : float
        Sample clock.
    frequencies_hz : ndarray, shape (n_electrodes,)
        Triangle frequency of every electrode.
    phase : ndarray, shape (n_electrodes,)
        Starting phase of every triangle (fraction of a period).
    backend : str
        ``ideal``, ``twin`` or ``hardware``.
    source : dict
        Snapshot of the characterised chip.
    wall_s : float
        Wall-clock time the characterisation took.
    """

    electrode_v: np.ndarray
    current_a: np.ndarray
    layout: DNPULayout
    rate_hz: float
    frequencies_hz: np.ndarray
    phase: np.ndarray
    backend: str
    source: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def n_samples(self) -> int:
        return len(self.current_a)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz

    @property
    def clipped(self) -> np.ndarray:
        """Samples where the amplifier saturated (``|I| >= 0.999 clip_a``)."""
        return np.abs(self.current_a) >= 0.999 * self.layout.clip_a

    def coverage(self, bins: int = 10) -> np.ndarray:
        """Fraction of ``bins`` equal bins of every electrode's range that hold at least one sample."""
        lo, hi = np.asarray(self.layout.low_v), np.asarray(self.layout.high_v)
        k = np.clip(((self.electrode_v - lo) / (hi - lo) * bins).astype(int), 0, bins - 1)
        return np.array([len(np.unique(k[:, e])) / bins for e in range(k.shape[1])])

    def provenance(self) -> dict:
        return {"backend": self.backend, "n_samples": self.n_samples, "rate_hz": self.rate_hz,
                "duration_s": self.duration_s, "triangle_frequencies_hz": self.frequencies_hz.tolist(),
                "triangle_phase": self.phase.tolist(), "clipped_fraction": float(np.mean(self.clipped)),
                "current_range_a": [float(self.current_a.min()), float(self.current_a.max())],
                "source": self.source, "wall_s": self.wall_s}


def characterize(chip_or_bench: Any, *, duration_s: float, rate_hz: float | None = None, base_hz: float = 5.0,
                 seed: int | None = 0, chunk_s: float = 1.0) -> CharacterizationData:
    """Sample a DNPU with incommensurate triangle waves over every electrode's range.

    Parameters
    ----------
    chip_or_bench : InstrumentDNPUChip or DNPUChip
        An instrument-backed chip (twin/hardware: through its DAQ and safety
        layer) or an ideal chip (its model evaluated on the same waveforms).
    duration_s : float
        Recording length (the number of samples is ``duration_s * rate_hz``).
    rate_hz : float, optional
        Sample clock; default the chip's.  An instrument chip samples at its own clock only.
    base_hz : float
        Electrode ``k`` runs at ``sqrt(p_k) * base_hz``.
    seed : int or None
        Seeds the starting phases (``None``: every triangle starts at 0 V,
        rising) and the twin's noise.
    chunk_s : float
        Length of one acquisition.

    Returns
    -------
    CharacterizationData

    Raises
    ------
    ValueError
        One line, before anything is written: bad durations or rates, a chip
        that is not a DNPU, triangles faster than the safety layer's slew limit.
    """
    if not isinstance(chip_or_bench, DNPUControls):
        raise ValueError(f"characterize needs a DNPU chip, got {type(chip_or_bench).__name__}")
    layout = chip_or_bench.layout
    instrument = chip_or_bench.backend != "ideal"
    chip_rate = float(chip_or_bench.rate_hz)
    rate = chip_rate if rate_hz is None else float(rate_hz)
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
    if instrument and abs(rate - chip_rate) > 1e-9 * chip_rate:
        raise ValueError(f"rate_hz = {rate:g} Hz differs from the instrument chip's sample clock {chip_rate:g} Hz")
    for name, value in (("duration_s", duration_s), ("base_hz", base_hz), ("chunk_s", chunk_s)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be > 0, got {value!r}")
    n = int(round(duration_s * rate))
    if n < 2:
        raise ValueError(f"duration_s = {duration_s} s at {rate:g} Hz is fewer than 2 samples")
    lo, hi = np.asarray(layout.low_v, float), np.asarray(layout.high_v, float)
    freqs = triangle_frequencies_hz(layout.n_electrodes, base_hz)
    if np.any(freqs >= rate / 20):
        raise ValueError(f"triangle frequencies up to {freqs.max():.3g} Hz are not slow next to the {rate:g} Hz clock "
                         f"(keep them below rate / 20): lower base_hz")
    slew = 2.0 * (hi - lo) * freqs
    step = np.asarray(chip_or_bench.max_step_v(), float) * rate
    if np.any(slew > step * (1 - 1e-9)):
        e = int(np.argmax(slew / step))
        raise ValueError(f"electrode {layout.names[e]}: a triangle at {freqs[e]:.3g} Hz over "
                         f"[{lo[e]}, {hi[e]}] V slews {slew[e]:.3g} V/s, above the safety limit "
                         f"{step[e]:.3g} V/s: lower base_hz")
    if seed is None:
        # start at 0 V, rising: 1 - |2u - 1| = -lo / (hi - lo) on the rising half
        phase = np.where((lo <= 0) & (hi >= 0), 0.5 * (-lo) / (hi - lo), 0.0)
    else:
        phase = np.random.default_rng([int(seed), 17]).uniform(0.0, 1.0, layout.n_electrodes)
        chip_or_bench.reseed([int(seed), 18])
    chunk = max(2, int(round(chunk_s * rate)))
    electrode_v = np.empty((n, layout.n_electrodes))
    current = np.empty(n)
    t_start = time.perf_counter()
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        wave = triangle_waves(np.arange(a, b) / rate, lo, hi, freqs, phase)          # (n_el, m)
        i = chip_or_bench.acquire_electrodes(wave)
        electrode_v[a:b] = wave.T
        current[a:b] = i
    source = chip_or_bench.snapshot()
    return CharacterizationData(electrode_v, current, layout, rate, freqs, phase, chip_or_bench.backend, source,
                                time.perf_counter() - t_start)


def fit_surrogate(data: CharacterizationData, hidden_layer_sizes: Sequence[int] = (90,) * 5, *,
                  activation: str = "relu", test_fraction: float = 0.1, max_samples: int | None = None,
                  max_iter: int = 200, batch_size: int = 256, learning_rate_init: float = 1e-3,
                  early_stopping: bool = True, n_iter_no_change: int = 10, drop_clipped: bool = True,
                  seed: int = 0, verbose: bool = False) -> SurrogateDNPU:
    """Fit an MLP surrogate (scikit-learn ``MLPRegressor``) to characterisation data.

    Parameters
    ----------
    data : CharacterizationData
    hidden_layer_sizes : sequence of int
        Hidden widths (published: five layers of 90).
    activation : str
        ``relu`` (published), ``tanh`` or ``logistic``.
    test_fraction : float
        Held-out fraction for the test RMSE: the *last* part of the recording (a
        stretch of the space-filling trajectory not used for the fit).
    max_samples : int, optional
        Fit on at most this many (randomly chosen) training samples.
    max_iter, batch_size, learning_rate_init, early_stopping, n_iter_no_change
        Passed to ``MLPRegressor`` (Adam).
    drop_clipped : bool
        Leave out samples where the amplifier saturated (they only bound the
        current; the surrogate models the current *before* clipping, the chip clips).
    seed : int
        Split, subsampling and weight initialisation.
    verbose : bool
        Print the fit's progress.

    Returns
    -------
    SurrogateDNPU
        ``provenance`` holds the characterisation's provenance, the fit
        settings, ``test_rmse_a`` and ``test_rmse_percent_of_range`` (RMSE over
        the test split, in percent of the measured output range ``max - min``).
    """
    from sklearn.neural_network import MLPRegressor

    from labtrain import __version__

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    sizes = tuple(int(h) for h in hidden_layer_sizes)
    if not sizes or any(h < 1 for h in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {hidden_layer_sizes!r}")
    layout = data.layout
    x, y = np.asarray(data.electrode_v, float), np.asarray(data.current_a, float)
    keep = ~data.clipped if drop_clipped else np.ones(len(y), bool)
    # test split: the last test_fraction of the recording, a stretch of the trajectory the fit never saw
    # (a random split would test on near-copies of neighbouring training samples)
    n_test = max(1, int(round(test_fraction * len(y))))
    test = np.flatnonzero(keep[len(y) - n_test:]) + (len(y) - n_test)
    train = np.flatnonzero(keep[:len(y) - n_test])
    if len(train) < 20 or len(test) < 1:
        raise ValueError(f"only {len(train)} training / {len(test)} test samples left (of {len(y)}); "
                         f"characterise longer")
    rng = np.random.default_rng([int(seed), 23])
    train = rng.permutation(train)
    if max_samples is not None and len(train) > max_samples:
        train = train[:int(max_samples)]
    lo, hi = np.asarray(layout.low_v, float), np.asarray(layout.high_v, float)
    x_off, x_scale = 0.5 * (lo + hi), 0.5 * (hi - lo)
    y_off, y_scale = float(np.mean(y[train])), float(np.std(y[train]) or 1.0)
    reg = MLPRegressor(hidden_layer_sizes=sizes, activation=activation, solver="adam", batch_size=batch_size,
                       learning_rate_init=learning_rate_init, max_iter=max_iter, early_stopping=early_stopping,
                       n_iter_no_change=n_iter_no_change, random_state=int(seed), verbose=verbose, tol=1e-6)
    t0 = time.perf_counter()
    reg.fit((x[train] - x_off) / x_scale, (y[train] - y_off) / y_scale)
    fit_s = time.perf_counter() - t0
    weights = [np.asarray(w, float) for w in reg.coefs_]
    biases = [np.asarray(b, float) for b in reg.intercepts_]
    surrogate = SurrogateDNPU(weights, biases, x_off, x_scale, y_off, y_scale, layout, activation=activation)
    pred = surrogate.current_a(x[test])
    rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
    span = float(np.ptp(y))
    surrogate.provenance = {
        "characterization": data.provenance(),
        "fit": {"hidden_layer_sizes": list(sizes), "activation": activation, "n_train": int(len(train)),
                "n_test": int(len(test)), "drop_clipped": bool(drop_clipped), "max_iter": int(max_iter),
                "n_iter": int(reg.n_iter_), "batch_size": int(batch_size),
                "learning_rate_init": float(learning_rate_init), "early_stopping": bool(early_stopping),
                "seed": int(seed), "fit_wall_s": fit_s},
        "test_rmse_a": rmse,
        "output_range_a": span,
        "test_rmse_percent_of_range": 100.0 * rmse / span if span > 0 else float("inf"),
        "labtrain_version": __version__,
    }
    return surrogate


# ----------------------------------------------------------------------- CLI
def add_characterize_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``labtrain characterize`` (the lead hooks this into the CLI)."""
    parser.add_argument("--backend", choices=("twin", "ideal", "hardware"), default="twin",
                        help="chip to characterise: the synthetic DNPU as a twin (DAQ path) or called directly, "
                             "or a DNPU on a real NI DAQ")
    parser.add_argument("--duration-s", type=float, default=20.0, help="recording length in seconds (default 20)")
    parser.add_argument("--rate-hz", type=float, default=10_000.0, help="sample clock (default 10 kHz)")
    parser.add_argument("--base-hz", type=float, default=5.0,
                        help="triangle of electrode k at sqrt(p_k) * base_hz (default 5)")
    parser.add_argument("--out", required=True, help="surrogate file to write (HDF5)")
    parser.add_argument("--model-seed", type=int, default=None,
                        help="seed of the synthetic DNPU (twin/ideal; default: its default device)")
    parser.add_argument("--seed", type=int, default=0, help="triangle phases, twin noise, fit")
    parser.add_argument("--daq-device", default="Dev1", help="NI DAQ device (hardware backend)")
    parser.add_argument("--hidden", default="90,90,90,90,90", help="hidden layer widths, comma-separated")
    parser.add_argument("--max-iter", type=int, default=200, help="most training epochs of the MLP")
    parser.add_argument("--max-fit-samples", type=int, default=None, help="fit on at most this many samples")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--verbose", action="store_true", help="print the MLP's loss after every training epoch")
    return parser


def _error(message: str) -> int:
    print(f"labtrain characterize: error: {message}", file=sys.stderr)
    return 2


def characterize_cli(args: argparse.Namespace) -> int:
    """Run ``labtrain characterize``: sample the chip, fit, save; returns the exit code (2 for bad arguments)."""
    try:
        hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
    except ValueError:
        return _error(f"--hidden {args.hidden!r}: expected comma-separated integers, e.g. 90,90,90,90,90")
    checks = [(args.duration_s > 0, f"--duration-s must be > 0, got {args.duration_s}"),
              (args.rate_hz > 0, f"--rate-hz must be > 0, got {args.rate_hz}"),
              (args.base_hz > 0, f"--base-hz must be > 0, got {args.base_hz}"),
              (bool(hidden) and min(hidden) >= 1, f"--hidden must list widths >= 1, got {args.hidden!r}"),
              (args.max_iter >= 1, f"--max-iter must be >= 1, got {args.max_iter}"),
              (args.max_fit_samples is None or args.max_fit_samples >= 20,
               f"--max-fit-samples must be >= 20, got {args.max_fit_samples}")]
    for ok, message in checks:
        if not ok:
            return _error(message)
    out = Path(args.out)
    if out.exists() and not args.force:
        return _error(f"--out {out} exists (use --force to overwrite)")
    if not out.parent.exists():
        return _error(f"--out {out}: folder {out.parent} does not exist")
    chip = None
    try:
        if args.backend == "hardware":
            from labtrain.kinds.dnpu.hardware import build_dnpu_hardware
            chip = build_dnpu_hardware(args.daq_device, rate_hz=args.rate_hz)
        else:
            from labtrain.kinds.dnpu.model import HoppingDNPU
            model = HoppingDNPU() if args.model_seed is None else HoppingDNPU(seed=args.model_seed)
            if args.backend == "twin":
                from labtrain.kinds.dnpu.hardware import build_dnpu_twin
                chip = build_dnpu_twin(model, rate_hz=args.rate_hz, seed=args.seed)
            else:
                from labtrain.kinds.dnpu.chip import DNPUChip
                chip = DNPUChip(model, rate_hz=args.rate_hz, seed=args.seed)
        print(f"characterising the {args.backend} DNPU: {args.duration_s:g} s at {args.rate_hz:g} Hz ...",
              flush=True)
        data = characterize(chip, duration_s=args.duration_s, rate_hz=args.rate_hz, base_hz=args.base_hz,
                            seed=args.seed)
    except (ValueError, ImportError) as exc:
        return _error(str(exc).splitlines()[0])
    finally:
        if chip is not None:
            chip.close()
    print(f"{data.n_samples} samples in {data.wall_s:.1f} s ({100 * np.mean(data.clipped):.2f} % clipped); "
          f"fitting {len(hidden)} x {max(hidden)} MLP (up to {args.max_iter} epochs; minutes on a 2-core machine"
          f"{'' if args.verbose else ', --verbose prints every epoch'}) ...", flush=True)
    surrogate = fit_surrogate(data, hidden, max_iter=args.max_iter, max_samples=args.max_fit_samples,
                              seed=args.seed, verbose=bool(getattr(args, "verbose", False)))
    surrogate.save(out)
    p = surrogate.provenance
    print(f"test RMSE {p['test_rmse_a'] * 1e9:.3g} nA = {p['test_rmse_percent_of_range']:.2f} % of the output "
          f"range; wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labtrain.kinds.dnpu.characterize ...`` (same as ``labtrain characterize``)."""
    parser = add_characterize_arguments(argparse.ArgumentParser(
        prog="labtrain characterize", description="sample a DNPU with incommensurate triangle waves and fit a "
                                                  "surrogate twin"))
    return characterize_cli(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
