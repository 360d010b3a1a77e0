"""Parallel homodyne derivatives vs finite differences on the ideal DNPU chip, at 1,000 random control points.

At ``--n`` random control points (uniform in the control ranges moved inward
by the tone amplitudes; one of the 4 Boolean input cases drawn at random per
point) the derivative vector ``d v_out / d V_control`` (5 controls, volts at
the amplifier output per volt) is taken three ways on the default device
(``HoppingDNPU()``):

* **parallel HGE**: one acquisition of ``settle + window`` = 50 + 500 samples
  at 10 kS/s with the published tones (200, 360, 520, 760, 920 Hz) and
  amplitudes (30, 10, 10, 5, 5 mV) on all 5 controls at once, every sample
  evaluated by the model, demodulated in software; ``d = X_k / a_k``;
* **central finite differences**: ``+-h`` on each control, ``2P = 10`` settled
  DC readings, each of the same length as the HGE acquisition (50 settling +
  500 averaged samples, so each reading has the same read-noise budget);
* the **exact** Jacobian (implicit function theorem, ``output_jacobian``).

The time-domain work is batched over control points (the chip's
``tone_electrode_waveforms`` accepts per-example control voltages, and the
model is vectorised over any leading shape); the first 3 points are checked
against ``DNPUChip.measure_ac`` / ``DNPUChip.measure`` (identical noise-free).
The wall-time ratio is measured on the chip API itself, per point, on the
first ``--wall-points`` points (the way a training loop would call it).

Statistics: relative error ``|d - ref| / |ref|`` (median, 90th percentile)
and cosine (median, 10th percentile); noise-free against FD (h = 1e-4 V) and
exact, with 0.1 nA RMS read noise per sample against the exact Jacobian, for
FD with h = 1e-4 V (swamped by noise) and h = 0.01 V (the
``HomodyneGradient`` default; noise-robust, O(h^2) bias).

Usage::

    python benchmarks/hge_vs_fd.py [--n 1000] [--wall-points 50]

Measured (n = 1000 points, default device, 2 shared CPU cores; total 46 s)::

    noise-free    HGE vs FD(h=1e-4) rel. err. median 1.35e-3, p90 7.1e-3;  cosine median 0.9999993, p10 0.9999882
                  HGE vs exact      the same to 3 digits (FD(1e-4) vs exact: median 2.7e-8, p90 1.0e-7)
    0.1 nA noise  HGE vs exact      rel. err. median 0.038,  p90 0.098;    cosine median 0.99947,   p10 0.9964
                  FD(1e-4) vs exact rel. err. median 1.4,    p90 3.6;      cosine median 0.65,      p10 -0.07
                  FD(1e-2) vs exact rel. err. median 0.014,  p90 0.035;    cosine median 0.99993,   p10 0.9995
    physical acquisition time FD / HGE = 10.0 (2P = 10 settled readings of 55 ms vs one 55 ms window)
    wall time FD / HGE (chip API, 50 points) = 0.47 noise-free, 0.53 noisy: on the ideal chip a DC
    reading evaluates the model once, an AC window at all 550 samples, so the simulation is *faster*
    with FD; on a bench the physical acquisition time is what counts.

The noise-free HGE error is the O(a^2) bias of finite tone amplitudes
(``X/a = v' + a^2 v^(3) / 8``; 30 mV on the first control).  With noise, FD
with a 100x larger step beats one HGE window in accuracy, but it spends 10x
the acquisition time (each reading averages 500 samples).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labtrain.chip.base import Tone
from labtrain.kinds.dnpu.chip import DNPUChip, tone_electrode_waveforms
from labtrain.physics.demod import PUBLISHED_DNPU_TONES_HZ, FrequencyPlan, demodulate
from labtrain.protocols.homodyne import DEFAULT_AMPLITUDES_V
from labtrain.kinds.dnpu.model import HoppingDNPU

CASES = np.array([[-1.2, -1.2], [-1.2, 0.6], [0.6, -1.2], [0.6, 0.6]])
RATE_HZ, SETTLE = 10_000.0, 50


def _stats(d: np.ndarray, ref: np.ndarray) -> dict:
    rel = np.linalg.norm(d - ref, axis=1) / np.linalg.norm(ref, axis=1)
    cos = np.sum(d * ref, axis=1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(ref, axis=1))
    return {"rel_err_median": float(np.median(rel)), "rel_err_p90": float(np.percentile(rel, 90)),
            "cosine_median": float(np.median(cos)), "cosine_p10": float(np.percentile(cos, 10))}


def hge_batch(chip: DNPUChip, x: np.ndarray, v: np.ndarray, plan: FrequencyPlan, amp: np.ndarray,
              rng: np.random.Generator, chunk: int = 50) -> np.ndarray:
    """Parallel-HGE derivatives (n, P) at control points ``v`` (n, P), inputs ``x`` (n, 2): ``measure_ac`` batched."""
    lay, model = chip.layout, chip.model
    tones = [Tone("control", k, float(f), float(a)) for k, (f, a) in enumerate(zip(plan.tones_hz, amp))]
    n_samp = SETTLE + plan.window_samples
    out = np.empty((len(v), len(amp)))
    for s in range(0, len(v), chunk):
        xs, vs = x[s:s + chunk], v[s:s + chunk]
        wave = tone_electrode_waveforms(lay, xs, vs, tones, RATE_HZ, n_samp)            # (b, n, 7)
        guess = model.internal_v(lay.electrode_voltages(xs, vs))[:, None, :]
        current = lay.clip(model.current_a(wave, guess=guess))
        if chip.read_noise_a:
            current = current + rng.normal(0.0, chip.read_noise_a, current.shape)
        dem = demodulate((current * lay.gain_ohm)[:, None, :], RATE_HZ, plan.tones_hz, settle_samples=SETTLE,
                         window_samples=plan.window_samples)
        out[s:s + chunk] = dem.in_phase[:, 0, :] / amp
    return out


def fd_batch(chip: DNPUChip, x: np.ndarray, v: np.ndarray, h_v: float, rng: np.random.Generator) -> np.ndarray:
    """Central-FD derivatives (n, P): ``2P`` settled readings per point (``measure`` batched)."""
    lay, model = chip.layout, chip.model
    p = v.shape[1]
    steps = np.concatenate([np.eye(p), -np.eye(p)]) * h_v                                  # (2P, P)
    ev = lay.electrode_voltages(x[:, None, :], v[:, None, :] + steps[None])                # (n, 2P, 7)
    current = lay.clip(model.current_a(ev))
    if chip.read_noise_a:
        current = current + rng.normal(0.0, chip.read_noise_a, current.shape + (chip.average_samples,)).mean(-1)
    out_v = current * lay.gain_ohm
    return (out_v[:, :p] - out_v[:, p:]) / (2 * h_v)


def exact_batch(chip: DNPUChip, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact ``d v_out / d V_control`` (n, P) (``output_jacobian`` batched over control points)."""
    lay = chip.layout
    current, d = chip.model.jacobian_a(lay.electrode_voltages(x, v))
    d = np.where((np.abs(current) < lay.clip_a)[:, None], d, 0.0)[:, list(lay.control_electrodes)]
    return d * lay.gain_ohm


def run(n: int = 1000, read_noise_a: float = 0.0, seed: int = 0, fd_steps_v: tuple[float, ...] = (1e-4,),
        wall_points: int = 50) -> dict:
    """Compare parallel HGE with central FD at ``n`` random control points; return the statistics."""
    model = HoppingDNPU()
    plan = FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, RATE_HZ, 0.05)
    amp = np.asarray(DEFAULT_AMPLITUDES_V)
    chip = DNPUChip(model, read_noise_a=read_noise_a, rate_hz=RATE_HZ, average_samples=plan.window_samples,
                    settle_samples=SETTLE, seed=seed)
    rng = np.random.default_rng(seed)
    spec = chip.parameter_spec
    v = rng.uniform(spec.lower + amp, spec.upper - amp, (n, spec.size))
    x = CASES[rng.integers(4, size=n)]
    t0 = time.perf_counter()
    d_hge = hge_batch(chip, x, v, plan, amp, rng)
    t_hge = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_fd = {h: fd_batch(chip, x, v, h, rng) for h in fd_steps_v}
    t_fd = time.perf_counter() - t0
    exact = exact_batch(chip, x, v)
    res: dict = {"n": n, "read_noise_a": read_noise_a, "batched_wall_s": {"hge": t_hge, "fd": t_fd},
                 "hge_vs_exact": _stats(d_hge, exact)}
    for h, d in d_fd.items():
        res[f"fd_{h:g}_vs_exact"] = _stats(d, exact)
        if read_noise_a == 0.0:
            res[f"hge_vs_fd_{h:g}"] = _stats(d_hge, d)
    # the chip API, per point: consistency of the batched path (noise-free) and the wall-time ratio
    tones = [Tone("control", k, float(f), float(a)) for k, (f, a) in enumerate(zip(plan.tones_hz, amp))]
    h = fd_steps_v[0]
    t_h = t_f = acq_h = acq_f = 0.0
    for i in range(min(wall_points, n)):
        chip.set_parameters(v[i])
        t0 = time.perf_counter()
        m = chip.measure_ac(x[i:i + 1], tones, plan, settle_samples=SETTLE)
        d_chip = m.output.in_phase[0, 0] / amp
        t_h += time.perf_counter() - t0
        acq_h += m.acquisition_s
        t0 = time.perf_counter()
        d_f = np.empty(spec.size)
        for k in range(spec.size):
            e = np.zeros(spec.size)
            e[k] = h
            chip.set_parameters(v[i] + e)
            up = chip.measure(x[i:i + 1])
            chip.set_parameters(v[i] - e)
            down = chip.measure(x[i:i + 1])
            acq_f += up.acquisition_s + down.acquisition_s
            d_f[k] = (up.output_v[0, 0] - down.output_v[0, 0]) / (2 * h)
        t_f += time.perf_counter() - t0
        if read_noise_a == 0.0 and i < 3:
            assert np.allclose(d_chip, d_hge[i], rtol=1e-9, atol=1e-9), "batched HGE differs from measure_ac"
            assert np.allclose(d_f, d_fd[h][i], rtol=1e-6, atol=1e-6), "batched FD differs from measure"
    res["acquisition_ratio_fd_over_hge"] = acq_f / acq_h
    res["wall_ratio_fd_over_hge"] = t_f / t_h
    res["wall_points"] = min(wall_points, n)
    return res


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--wall-points", type=int, default=50)
    args = p.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    out = []
    for noise, steps in ((0.0, (1e-4,)), (0.1e-9, (1e-4, 1e-2))):
        t0 = time.perf_counter()
        r = run(args.n, noise, fd_steps_v=steps, wall_points=args.wall_points)
        r["total_wall_s"] = time.perf_counter() - t0
        out.append(r)
        print(f"\nread noise {noise * 1e9:g} nA RMS per sample, n = {r['n']} points "
              f"({r['total_wall_s']:.0f} s; batched HGE {r['batched_wall_s']['hge']:.1f} s, "
              f"FD {r['batched_wall_s']['fd']:.1f} s)")
        for key, st in r.items():
            if isinstance(st, dict) and "rel_err_median" in st:
                print(f"  {key:18s} rel. err. median {st['rel_err_median']:.3g}, p90 {st['rel_err_p90']:.3g};  "
                      f"cosine median {st['cosine_median']:.7f}, p10 {st['cosine_p10']:.7f}")
        print(f"  physical acquisition time FD / HGE = {r['acquisition_ratio_fd_over_hge']:.2f}; "
              f"wall time FD / HGE (chip API, {r['wall_points']} points) = {r['wall_ratio_fd_over_hge']:.2f}")
    return out


if __name__ == "__main__":
    main()
