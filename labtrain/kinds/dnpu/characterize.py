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
* :func:`fit_surrogate` fits the MLP (inputs scaled to [-1, 1] over each
  electrode's range, output standardised) with a vectorised numpy trainer --
  Adam on mini-batches in float32 on one BLAS thread, early stopping on a
  validation split with the best weights restored, a tqdm progress bar of
  epochs and losses (``engine="sklearn"``: scikit-learn's ``MLPRegressor``,
  the former fitter, 20-80x slower per epoch), keeps a test split, records
  the test RMSE as a percentage of the output range, and returns a
  :class:`~labtrain.kinds.dnpu.surrogate.SurrogateDNPU` (which needs only
  numpy to run).  Measured (``benchmarks/bench_characterize.py``, 2 shared
  cores): a 2 s twin recording, 5 x 90 tanh, fits in 2-4 s to 1.5 % test RMSE,
  where ``MLPRegressor`` (5 x 90 ReLU, the former default) took 1.5-4 minutes
  for 5.1 %; ReLU nets extrapolate worse to the held-out stretch of the
  trajectory at these sample budgets (numpy ReLU: 5.6 %), hence tanh by default.
* :func:`characterize_cli` is ``labtrain characterize``; its arguments come
  from :func:`add_characterize_arguments`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from labtrain.kinds.dnpu.chip import DNPUControls
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.kinds.dnpu.surrogate import ACTIVATIONS, SurrogateDNPU

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
                 seed: int | None = 0, chunk_s: float = 1.0, progress: bool = False) -> CharacterizationData:
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
    progress : bool
        Show a tqdm bar of the recorded seconds on stderr (one step per acquisition).

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
    bar = _progress_bar(progress, total=round(n / rate, 3), unit="s", desc="acquire")
    try:
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            wave = triangle_waves(np.arange(a, b) / rate, lo, hi, freqs, phase)          # (n_el, m)
            i = chip_or_bench.acquire_electrodes(wave)
            electrode_v[a:b] = wave.T
            current[a:b] = i
            if bar is not None:
                bar.update(round((b - a) / rate, 3))
    finally:
        if bar is not None:
            bar.close()
    source = chip_or_bench.snapshot()
    return CharacterizationData(electrode_v, current, layout, rate, freqs, phase, chip_or_bench.backend, source,
                                time.perf_counter() - t_start)


def fit_surrogate(data: CharacterizationData, hidden_layer_sizes: Sequence[int] = (90,) * 5, *,
                  activation: str = "tanh", test_fraction: float = 0.1, max_samples: int | None = None,
                  max_iter: int = 200, batch_size: int = 256, learning_rate_init: float = 1e-3,
                  early_stopping: bool = True, n_iter_no_change: int = 10, validation_fraction: float = 0.1,
                  drop_clipped: bool = True, seed: int = 0, verbose: bool = False, progress: bool = False,
                  engine: str = "numpy") -> SurrogateDNPU:
    """Fit an MLP surrogate to characterisation data (numpy Adam; ``engine="sklearn"``: ``MLPRegressor``).

    Parameters
    ----------
    data : CharacterizationData
    hidden_layer_sizes : sequence of int
        Hidden widths (published: five layers of 90).
    activation : str
        ``tanh`` (default: on a few seconds of data it reaches a 3-5x smaller test
        RMSE than ReLU), ``relu`` (published), ``logistic`` or ``identity``.
    test_fraction : float
        Held-out fraction for the test RMSE: the *last* part of the recording (a
        stretch of the space-filling trajectory not used for the fit).
    max_samples : int, optional
        Fit on at most this many (randomly chosen) training samples.
    max_iter, batch_size, learning_rate_init, early_stopping, n_iter_no_change, validation_fraction
        Adam: at most ``max_iter`` epochs of mini-batches of ``batch_size``; with
        ``early_stopping`` a random ``validation_fraction`` of the training samples
        is held out and the fit stops after ``n_iter_no_change`` epochs without a
        0.01 % improvement of its loss, keeping the best epoch's weights.
    drop_clipped : bool
        Leave out samples where the amplifier saturated (they only bound the
        current; the surrogate models the current *before* clipping, the chip clips).
    seed : int
        Split, subsampling and weight initialisation.
    verbose : bool
        Print one line per epoch (epoch, training and validation loss).
    progress : bool
        Show a tqdm bar of epochs with the losses on stderr.
    engine : str
        ``numpy`` (default) or ``sklearn`` (the former fitter: ``MLPRegressor``
        with the same settings; no progress bar).

    Returns
    -------
    SurrogateDNPU
        ``provenance`` holds the characterisation's provenance, the fit
        settings, ``test_rmse_a`` and ``test_rmse_percent_of_range`` (RMSE over
        the test split, in percent of the measured output range ``max - min``).
    """
    from labtrain import __version__

    if engine not in ("numpy", "sklearn"):
        raise ValueError(f"engine must be 'numpy' or 'sklearn', got {engine!r}")
    if activation not in _SLOPE_OF_OUTPUT:
        raise ValueError(f"activation must be one of {sorted(_SLOPE_OF_OUTPUT)}, got {activation!r}")
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
    t0, c0 = time.perf_counter(), time.process_time()
    xs, ys = (x[train] - x_off) / x_scale, (y[train] - y_off) / y_scale
    extra: dict[str, Any] = {}
    if engine == "sklearn":
        from sklearn.neural_network import MLPRegressor

        reg = MLPRegressor(hidden_layer_sizes=sizes, activation=activation, solver="adam", batch_size=batch_size,
                           learning_rate_init=learning_rate_init, max_iter=max_iter, early_stopping=early_stopping,
                           n_iter_no_change=n_iter_no_change, validation_fraction=validation_fraction,
                           random_state=int(seed), verbose=verbose, tol=1e-6)
        reg.fit(xs, ys)
        weights = [np.asarray(w, float) for w in reg.coefs_]
        biases = [np.asarray(b, float) for b in reg.intercepts_]
        n_iter = int(reg.n_iter_)
    else:
        weights, biases, n_iter, extra = _fit_mlp_adam(
            xs, ys, sizes, activation, max_iter=int(max_iter), batch_size=int(batch_size),
            learning_rate=float(learning_rate_init), early_stopping=bool(early_stopping),
            n_iter_no_change=int(n_iter_no_change), validation_fraction=float(validation_fraction),
            seed=int(seed), verbose=verbose, progress=progress)
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    surrogate = SurrogateDNPU(weights, biases, x_off, x_scale, y_off, y_scale, layout, activation=activation)
    pred = surrogate.current_a(x[test])
    rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
    span = float(np.ptp(y))
    surrogate.provenance = {
        "characterization": data.provenance(),
        "fit": {"hidden_layer_sizes": list(sizes), "activation": activation, "n_train": int(len(train)),
                "n_test": int(len(test)), "drop_clipped": bool(drop_clipped), "max_iter": int(max_iter),
                "n_iter": n_iter, "batch_size": int(batch_size),
                "learning_rate_init": float(learning_rate_init), "early_stopping": bool(early_stopping),
                "n_iter_no_change": int(n_iter_no_change), "validation_fraction": float(validation_fraction),
                "seed": int(seed), "engine": engine, "fit_wall_s": fit_s, "fit_cpu_s": fit_cpu_s, **extra},
        "test_rmse_a": rmse,
        "output_range_a": span,
        "test_rmse_percent_of_range": 100.0 * rmse / span if span > 0 else float("inf"),
        "labtrain_version": __version__,
    }
    return surrogate


#: slope of every activation as a function of its output ``a`` (ReLU: 0 at 0, as in the surrogate's Jacobian)
_SLOPE_OF_OUTPUT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda a: (a > 0).astype(a.dtype),
    "tanh": lambda a: 1 - a * a,
    "logistic": lambda a: a * (1 - a),
    "identity": lambda a: np.ones_like(a),
}


def _progress_bar(enabled: bool, **kwargs: Any) -> Any:
    """A tqdm bar on stderr, or ``None`` (tqdm imported only when one is shown)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, leave=True, **kwargs)


def _fit_mlp_adam(x: np.ndarray, y: np.ndarray, sizes: Sequence[int], activation: str, *, max_iter: int,
                  batch_size: int, learning_rate: float, early_stopping: bool, n_iter_no_change: int,
                  validation_fraction: float, seed: int, verbose: bool = False, progress: bool = False,
                  tol: float = 1e-4) -> tuple[list[np.ndarray], list[np.ndarray], int, dict]:
    """Least-squares fit of ``x (N, n_in) -> y (N,)`` by an MLP (linear output) with Adam on mini-batches.

    float32 arithmetic on one BLAS thread (the matrices of a 256-sample batch are too small to share out;
    the machine's other cores stay free), Glorot-uniform weights (scikit-learn's initialisation), zero
    biases (ReLU: uniform like the weights), Adam
    (beta 0.9 / 0.999, eps 1e-8) on the mean squared error.  With ``early_stopping`` a random
    ``validation_fraction`` is held out, the fit stops after ``n_iter_no_change`` epochs whose
    validation loss is not ``tol`` (relative) below the best, and the best epoch's weights are
    returned.  Returns ``(weights, biases, epochs run, info)`` with float64 arrays in
    ``SurrogateDNPU``'s layout (``weights[k]`` of shape ``(fan_in, fan_out)``).
    """
    rng = np.random.default_rng([int(seed), 29])
    f32 = np.float32
    x = np.ascontiguousarray(x, f32)
    y = np.ascontiguousarray(y, f32).reshape(-1, 1)
    n_val = int(round(validation_fraction * len(y))) if early_stopping else 0
    if early_stopping and not (0 < validation_fraction < 1 and 1 <= n_val < len(y) - 1):
        raise ValueError(f"validation_fraction {validation_fraction!r} leaves no validation or training samples")
    order = rng.permutation(len(y))
    x_val, y_val = x[order[:n_val]], y[order[:n_val]]
    x_fit, y_fit = x[order[n_val:]], y[order[n_val:]]
    dims = [x.shape[1], *[int(h) for h in sizes], 1]
    weights, biases = [], []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = np.sqrt((2.0 if activation == "logistic" else 6.0) / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(f32))
        # ReLU: random biases as well (fewer dead units; measured 4.2-5.2 % test RMSE against 6.7-7.2 % with
        # He weights and zero biases on a 2 s recording); tanh: zero biases (1.2-1.4 % against 1.4-1.5 %)
        biases.append((rng.uniform(-bound, bound, fan_out) if activation == "relu" else np.zeros(fan_out)).astype(f32))
    params = weights + biases
    moment1 = [np.zeros_like(p) for p in params]
    moment2 = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    act: Callable[[np.ndarray], np.ndarray] = ACTIVATIONS[activation]  # type: ignore[assignment]
    slope: Callable[[np.ndarray], np.ndarray] = _SLOPE_OF_OUTPUT[activation]
    n_layers = len(weights)

    def forward(h: np.ndarray) -> np.ndarray:
        for k in range(n_layers - 1):
            h = act(h @ weights[k] + biases[k])
        return h @ weights[-1] + biases[-1]

    best, best_params, stale, t, epoch, train_loss, val_loss = np.inf, None, 0, 0, 0, np.nan, np.nan
    history: list[float] = []
    n_fit = len(y_fit)
    bar = _progress_bar(progress, total=max_iter, unit="epoch", desc="fit")
    try:
        with _one_blas_thread():
            for epoch in range(1, max_iter + 1):
                perm = rng.permutation(n_fit)
                sse = 0.0
                for start in range(0, n_fit, batch_size):
                    idx = perm[start:start + batch_size]
                    hs = [x_fit[idx]]
                    for k in range(n_layers - 1):
                        hs.append(act(hs[-1] @ weights[k] + biases[k]))
                    err = hs[-1] @ weights[-1] + biases[-1] - y_fit[idx]
                    sse += float(np.dot(err[:, 0], err[:, 0]))
                    g = err * f32(2.0 / len(idx))
                    grads: list[np.ndarray] = [None] * (2 * n_layers)  # type: ignore[list-item]
                    for k in range(n_layers - 1, -1, -1):
                        grads[k] = hs[k].T @ g
                        grads[n_layers + k] = g.sum(axis=0)
                        if k:
                            g = (g @ weights[k].T) * slope(hs[k])
                    t += 1
                    step = f32(learning_rate * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t))
                    for p, grad, m1, m2 in zip(params, grads, moment1, moment2):
                        m1 *= beta1
                        m1 += (1 - beta1) * grad
                        m2 *= beta2
                        m2 += (1 - beta2) * grad * grad
                        p -= step * m1 / (np.sqrt(m2) + eps)
                train_loss = sse / n_fit
                if early_stopping:
                    r = forward(x_val) - y_val
                    val_loss = float(np.mean(r * r))
                monitored = val_loss if early_stopping else train_loss
                if not np.isfinite(monitored):
                    raise ValueError(f"the fit diverged at epoch {epoch} (loss {monitored}); lower the learning rate")
                history.append(monitored)
                if monitored < best * (1 - tol):
                    best, stale = monitored, 0
                    if early_stopping:
                        best_params = [p.copy() for p in params]
                else:
                    stale += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"train {train_loss:.2e} val {val_loss:.2e} best {best:.2e}", refresh=False)
                if verbose:
                    line = f"epoch {epoch}: train loss {train_loss:.4e}, validation loss {val_loss:.4e}"
                    if bar is not None:
                        bar.write(line, file=sys.stderr)
                    else:
                        print(line, flush=True)
                if early_stopping and stale >= n_iter_no_change:
                    break
    finally:
        if bar is not None:
            bar.close()
    if best_params is not None:
        for p, b in zip(params, best_params):
            p[...] = b
    info = {"n_validation": int(n_val), "final_train_loss": float(train_loss),
            "best_validation_loss": float(best) if early_stopping else None}
    return ([np.asarray(w, float) for w in weights], [np.asarray(b, float) for b in biases], int(epoch), info)


class _one_blas_thread:
    """Context manager: one BLAS thread while it is open (no-op without threadpoolctl)."""

    def __enter__(self) -> "_one_blas_thread":
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            self._limits = None
        else:
            self._limits = threadpool_limits(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()


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
    parser.add_argument("--activation", choices=("tanh", "relu", "logistic"), default="tanh",
                        help="hidden activation (default tanh; relu is the published one, 3-5x larger test error "
                             "on a few seconds of data)")
    parser.add_argument("--max-iter", type=int, default=200,
                        help="most training epochs of the MLP (it stops earlier when 10 epochs bring no "
                             "improvement on a validation split)")
    parser.add_argument("--max-fit-samples", type=int, default=None, help="fit on at most this many samples")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--verbose", action="store_true", help="print the MLP's loss after every training epoch")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (acquisition seconds, fit epochs and losses) on stderr")
    return parser


def _error(message: str) -> int:
    print(f"labtrain characterize: error: {message}", file=sys.stderr)
    return 2


def characterize_cli(args: argparse.Namespace) -> int:
    """Run ``labtrain characterize``: sample the chip, fit, save; returns the exit code (2 for bad arguments)."""
    activation = str(getattr(args, "activation", "tanh"))
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
    quiet = bool(getattr(args, "quiet", False))
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
                            seed=args.seed, progress=not quiet)
    except (ValueError, ImportError) as exc:
        return _error(str(exc).splitlines()[0])
    finally:
        if chip is not None:
            chip.close()
    print(f"{data.n_samples} samples in {data.wall_s:.1f} s ({100 * np.mean(data.clipped):.2f} % clipped); "
          f"fitting a {len(hidden)} x {max(hidden)} {activation} MLP (up to {args.max_iter} epochs, early stopping) "
          f"...", flush=True)
    surrogate = fit_surrogate(data, hidden, activation=activation, max_iter=args.max_iter,
                              max_samples=args.max_fit_samples, seed=args.seed,
                              verbose=bool(getattr(args, "verbose", False)), progress=not quiet)
    surrogate.save(out)
    p = surrogate.provenance
    print(f"test RMSE {p['test_rmse_a'] * 1e9:.3g} nA = {p['test_rmse_percent_of_range']:.2f} % of the output "
          f"range ({p['fit']['n_iter']} epochs in {p['fit']['fit_wall_s']:.1f} s); wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labtrain.kinds.dnpu.characterize ...`` (same as ``labtrain characterize``)."""
    parser = add_characterize_arguments(argparse.ArgumentParser(
        prog="labtrain characterize", description="sample a DNPU with incommensurate triangle waves and fit a "
                                                  "surrogate twin"))
    return characterize_cli(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
