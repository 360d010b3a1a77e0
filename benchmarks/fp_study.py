"""Frequency propagation: gradient fidelity (ideal, twin, diode network) and time per step against EP.

Everything is measured in the time domain (waveforms synthesised, sampled and
demodulated by ``chip.measure_ac``) and compared with the exact gradient of
the noise-free model at the same parameters.

1. **Linear, ideal, noise-free** -- random 12-node / 30-edge network (2 in,
   2 out), conductances log-uniform over 1e-5..1e-3 S, batch 5, 10 kS/s,
   50 ms windows: relative error and cosine vs the exact gradient and vs
   central finite differences, AC and DC activation.
2. **Linear, ideal, 0.1 mV read noise per sample** for windows 0.05..1.6 s
   (``--noise-seeds`` seeds each): RMS relative error and mean cosine; the
   error times sqrt(window) is flat: the 1/sqrt(T) law of a lock-in.
3. **Linear, instrument twin** (resistor bench, safety layer, nominal pots):
   noise-free (no noise, 24-bit ADC, 1 MOhm output series resistor,
   gamma 1e-6 A/V) and the default twin noise (0.1 mV white, 16-bit ADC
   over +-10 V) with 100 kOhm / gamma 1e-5 and 1 MOhm / gamma 1e-6.  The
   ``scale`` column is the current source's accuracy ``1 / (1 + Z_out/R)``.
4. **Diode network** (``xor_diode_network(4)``, 34 trainable conductances, 8
   silicon diodes, XOR inputs, random log-uniform conductances), DC
   activation, gamma = 1e-2..1e-8 A/V (edges ~1e-4 S): noise-free and with
   0.1 mV read noise.
5. **Time per gradient estimate**, FP vs one-sided EP (beta = 1e-6 S), on the
   same network and backend: the 12/30 network (batch 5) and a 6x6 lattice
   with diagonals (3 in / 2 out, batch 32), ideal chip and twin; median of
   ``--repeats`` calls.
6. **Diode network on the bench twin** (``NonlinearBenchChip``: the
   example's bench, 2 kS/s, 80 Hz error tone in 50 ms, output series
   resistor 1 / gamma, nominal pots) with nominal parts, diodes spread
   +-5 % / +-10 % (forward voltage) and a 310 K bench (model: 300 K):
   FP against the nominal model's exact gradient (what the chip believes)
   and against the physical one (adjoint of the twin's true parts); the
   analytic rule against the physical one; noise-free and with the default
   twin noise (``--noise-seeds`` reseeds, same parts).

Measured (2-core machine shared with other jobs, load ~7; timings +-50 %):

1. linear ideal, noise-free (batch 5): relative error vs the exact gradient
   4.4e-12 (AC activation), 4.9e-14 (DC activation), 2.1e-16
   (frequency-domain mode); vs central finite differences 9.5e-10 for all
   three (the finite differences' own error); cosine 1 - O(1e-16).
2. linear ideal, 0.1 mV read noise per node sample (8 seeds, batch 5):

   ======  ============  ===========  ==================
   window  RMS rel. err  mean cosine  rel. err x sqrt(T)
   ======  ============  ===========  ==================
   0.05 s  0.197         0.9848       0.044
   0.1 s   0.177         0.9873       0.056
   0.2 s   0.112         0.9946       0.050
   0.4 s   0.074         0.9979       0.047
   0.8 s   0.050         0.9989       0.045
   1.6 s   0.034         0.9995       0.043
   ======  ============  ===========  ==================

   (err x sqrt(T) flat within the seed scatter: the lock-in's 1/sqrt(T)).
3. linear twin (batch 5):

   =============  ========  =====  ==========  =========  ========  ======
   twin           R_series  gamma  activation  cosine     rel. err  scale
   =============  ========  =====  ==========  =========  ========  ======
   noise-free     1 MOhm    1e-6   ac          0.9999995  2.7e-3    0.9975
   noise-free     1 MOhm    1e-6   dc          0.9999975  4.7e-3    0.9959
   default noise  100 kOhm  1e-5   ac          0.99983    3.1e-2    0.975
   default noise  100 kOhm  1e-5   dc          0.99964    4.2e-2    0.967
   default noise  1 MOhm    1e-6   ac          0.988      0.15      0.993
   =============  ========  =====  ==========  =========  ========  ======

   With 20 % pot tolerance unknown to the chip (noise-free, 1 MOhm, AC):
   cosine 0.99999998 against the physical device's gradient (adjoint of the
   true conductances) but 0.963 against the nominal model's: FP measures the
   chip itself, the analytic rule only its model.

   The scale is the Norton current source's ``1 / (1 + Z_out / R_series)``
   (a bias of the size, not of the direction, for one output); with 1 MOhm
   the error response is 10x smaller for the same AO swing, so noise wins.
   DC activation is slightly worse on the twin: without a large activation
   tone the 16-bit ADC (0.3 mV steps, 0.1 mV noise) is poorly dithered.
4. diode network vs gamma (DC activation, edges ~1e-4 S; 8 noise seeds):

   =======  ===================  ====================  ==============  ===============
   gamma    cosine, noise-free   rel. err, noise-free  cosine, 0.1 mV  rel. err, 0.1 mV
   =======  ===================  ====================  ==============  ===============
   1e-2     0.96755              0.36                  0.96755         0.36
   1e-3     0.99997              9.1e-3                0.99997         9.1e-3
   1e-4     1 - 3e-9             9.3e-5                0.99997         8.0e-3
   1e-5     1 - 4e-13            9.3e-7                0.9971          8.0e-2
   1e-6     1                    9.3e-9                0.738           0.80
   1e-7     1                    8.6e-11               -0.02           8.0
   1e-8     1                    2.8e-11               -0.13           80
   =======  ===================  ====================  ==============  ===============

   Noise-free the bias falls as gamma^2 (the in-phase part of the response
   to a sinusoid has no second-order term), down to the solver tolerance;
   with read noise the error grows as 1/gamma below the best gamma
   (1e-3..1e-4 A/V here, cosine 0.99997).
5. time per gradient estimate (median of 5, two runs at different load; twin: 0.1 mV noise, 16-bit,
   100 kOhm, settle 25 samples):

   ======================  =======  =======  =======  =====
   network                 backend  FP (ms)  EP (ms)  FP/EP
   ======================  =======  =======  =======  =====
   random 12/30, batch 5   ideal    1.3      0.10     11-14
   random 12/30, batch 5   twin     14-22    1.3-3.5  4-17
   lattice 6x6, batch 32   ideal    28-80    0.10     190-800
   lattice 6x6, batch 32   twin     190-430  16-24    12-18
   ======================  =======  =======  =======  =====

   FP synthesises, samples and demodulates 550 samples per example (50 ms
   window + 5 ms settling at 10 kS/s) where EP solves each example once
   (ideal) or averages a 35-sample plateau (twin).  In simulated bench time
   an FP step on the lattice (batch 32) is 2 x 32 x 55 ms = 3.5 s, an EP
   step 2 x 32 x 3.5 ms = 0.22 s: FP's price for reading every edge's
   gradient in one error acquisition without a second (nudged) DC phase per
   sign of beta, and for working on nonlinear edges with a small-signal error.

6. diode network on the bench twin (XOR batch 4, random log-uniform
   conductances; 8 noise seeds; FP / analytic / nominal cosines vs the
   physical gradient unless said):

   =============  ==========  =====  ==========  =========  ==========  ========  =======
   twin           parts       gamma  FP vs       FP vs      FP rel.     analytic  nominal
                                     nominal     physical   err (phys)
   =============  ==========  =====  ==========  =========  ==========  ========  =======
   noise-free     nominal     1e-6   1.00000     1 - 1e-7   5.0e-4      1.00000   1.00000
   noise-free     +-5 %       1e-6   0.99912     1 - 1e-7   5.0e-4      0.99967   0.99912
   noise-free     +-10 %      1e-6   0.99644     1 - 1e-7   5.0e-4      0.99858   0.99644
   noise-free     310 K       1e-6   0.99756     1 - 1e-7   5.0e-4      0.99964   0.99756
   default noise  nominal     1e-6   0.747       0.747      0.87        1.00000   1.00000
   default noise  +-10 %      1e-6   0.710       0.709      0.92        0.99858   0.99644
   default noise  nominal     1e-5   0.99660     0.99660    8.6e-2      1.00000   1.00000
   default noise  +-5 %       1e-5   0.99590     0.99676    8.2e-2      0.99967   0.99912
   default noise  +-10 %      1e-5   0.99332     0.99642    8.8e-2      0.99858   0.99644
   default noise  310 K       1e-5   0.99385     0.99667    8.4e-2      0.99964   0.99756
   =============  ==========  =====  ==========  =========  ==========  ========  =======

   FP measures the device: noise-free it matches the physical gradient to
   1e-7 (the 5e-4 relative error is the Norton source's scale
   ``1 / (1 + Z_out / R)``) whatever the parts, where the nominal model is
   off by up to 1 - 0.996.  With noise the physical advantage survives at
   gamma = 1e-5 A/V (0.9964..0.9968 vs the device whatever the parts,
   0.9933..0.9966 vs the model); at the example's 1e-6 A/V the error tone
   is a few ADC steps (16 bit over +-10 V) and one estimate has cosine ~0.7.
   Wall time per FP estimate ~40 ms for 0.40 s of bench time (two
   acquisitions of 4 windows of 50 ms).

Usage::

    python benchmarks/fp_study.py [--quick] [--noise-seeds 8] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from labtrain.kinds.resistor.ideal import IdealChip
from labtrain.kinds.resistor.bench import AcquisitionSettings, InstrumentChip
from labtrain.kinds.nonlinear.chip import NonlinearResistorChip
from labtrain.physics.network import lattice, random_graph
from labtrain.protocols.analytic import adjoint_gradient
from labtrain.protocols.base import half_squared_error
from labtrain.protocols.fidelity import (compare_gradients, exact_gradient, finite_difference_gradient)
from labtrain.protocols.frequency_propagation import FrequencyPropagation
from labtrain.protocols.gep import EquilibriumPropagation
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyConfig
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.nonlinear.bench import NonlinearBenchChip
from labtrain.kinds.nonlinear.hardware import nonlinear_safety_config
from labtrain.kinds.nonlinear.model import NonlinearResistorNetwork, xor_diode_network
from labtrain.kinds.nonlinear.twin import build_nonlinear_twin
from labtrain.kinds.nonlinear.wiring import default_nonlinear_wiring
from labtrain.protocols.analytic import AnalyticGradient
from labtrain.kinds.resistor.twin import build_resistor_twin
from labtrain.training.tasks import make_task
from labtrain.kinds.resistor.wiring import default_wiring
from labtrain.kinds.resistor.problems import random_linear_problem

RATE_HZ = 10_000.0
SECTIONS = ("linear_ideal", "linear_noise", "linear_twin", "diode_gamma", "timings", "diode_twin")


def linear_problem(seed: int = 0, batch: int = 5):
    net = random_graph(12, 30, seed=3, n_inputs=2, n_outputs=2)
    return (net, *random_linear_problem(net, seed=seed, batch=batch))


def lattice_problem(seed: int = 0, batch: int = 32):
    net = lattice(6, 6, diagonals=True, n_inputs=3, n_outputs=2)
    task = make_task("linear_regression", n_samples=200, n_features=3, n_targets=2, seed=seed)
    return net, None, task.x_train[:batch], task.t_train[:batch]


def twin_chip(net, g, *, noise_white_v=0.0, adc_bits=24, output_series_ohm=1e6, seed=0,
              pot_tolerance=0.0) -> InstrumentChip:
    wiring = default_wiring(net, output_series_ohm=output_series_ohm)
    twin = build_resistor_twin(net, wiring, seed=seed, pot_options={"tolerance": pot_tolerance},
                               daq_options={"noise_white_v": noise_white_v, "adc_bits": adc_bits,
                                            "ai_range_v": (-10.0, 10.0)})
    cfg = SafetyConfig.from_settings(2.0, 1000.0, ramp_rate_hz=RATE_HZ)
    chip = InstrumentChip(net, wiring, SafeDAQ(twin.daq, cfg), SafePotArray(twin.pots, cfg),
                          AcquisitionSettings(rate_hz=RATE_HZ, settle_samples=25), g, backend="twin")
    chip.twin_circuit = twin.circuit  # for the physical gradient of a twin with pot tolerances
    return chip


def fd_gradient(net, g, x, t, rel_step=1e-5) -> np.ndarray:
    return finite_difference_gradient(
        lambda gg: half_squared_error(LinearResistorNetwork(net, gg).steady_state(x).output_v, t), g, rel_step)


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------------------- sections
def linear_ideal() -> dict:
    net, g, x, t = linear_problem()
    chip = IdealChip(net, g, rate_hz=RATE_HZ)
    exact, fd = exact_gradient(chip, x, t), fd_gradient(net, g, x, t)
    out = {"fd_vs_exact": rel(fd, exact)}
    for name, fp in (("ac", FrequencyPropagation(1e-6)), ("dc", FrequencyPropagation(1e-6, activation_hz=0.0)),
                     ("frequency_domain", FrequencyPropagation(1e-6, mode="frequency_domain"))):
        est = fp.estimate(chip, x, t).gradient
        f = compare_gradients(est, exact)
        out[name] = {"rel_err_exact": f.relative_error, "rel_err_fd": rel(est, fd), "cosine": f.cosine}
    return out


def linear_noise(windows_s, n_seeds: int) -> list[dict]:
    net, g, x, t = linear_problem()
    rows = []
    for w in windows_s:
        errs, coss = [], []
        for seed in range(n_seeds):
            chip = IdealChip(net, g, read_noise_v=1e-4, seed=seed, rate_hz=RATE_HZ)
            est = FrequencyPropagation(1e-6, window_s=w, settle_s=0.0).estimate(chip, x, t).gradient
            f = compare_gradients(est, exact_gradient(chip, x, t))
            errs.append(f.relative_error)
            coss.append(f.cosine)
        rms = float(np.sqrt(np.mean(np.square(errs))))
        rows.append({"window_s": w, "rms_rel_err": rms, "mean_cosine": float(np.mean(coss)),
                     "rel_err_x_sqrt_window": rms * np.sqrt(w)})
    return rows


def linear_twin() -> list[dict]:
    net, g, x, t = linear_problem()
    rows = []
    cases = [("noise-free", dict(), 1e-6, None), ("noise-free", dict(), 1e-6, 0.0),
             ("default noise", dict(noise_white_v=1e-4, adc_bits=16, output_series_ohm=1e5), 1e-5, None),
             ("default noise", dict(noise_white_v=1e-4, adc_bits=16, output_series_ohm=1e5), 1e-5, 0.0),
             ("default noise", dict(noise_white_v=1e-4, adc_bits=16, output_series_ohm=1e6), 1e-6, None)]
    for label, kw, gamma, act in cases:
        chip = twin_chip(net, g, **kw)
        try:
            f = compare_gradients(FrequencyPropagation(gamma, activation_hz=act).estimate(chip, x, t).gradient,
                                  exact_gradient(chip, x, t))
        finally:
            chip.close()
        rows.append({"twin": label, "output_series_ohm": kw.get("output_series_ohm", 1e6), "gamma_a_per_v": gamma,
                     "activation": "dc" if act == 0.0 else "ac", "cosine": f.cosine,
                     "rel_err": f.relative_error, "scale": f.scale})
    # 20 % pot tolerance unknown to the chip: FP reads the physical gradient, the nominal model does not
    chip = twin_chip(net, g, pot_tolerance=0.2)
    try:
        est = FrequencyPropagation(1e-6).estimate(chip, x, t).gradient
        true = LinearResistorNetwork(net, chip.twin_circuit.edge_conductance_s())
        physical = adjoint_gradient(true, x, true.steady_state(x).output_v - t)
        for label, ref in (("20 % pots, vs physical", physical), ("20 % pots, vs nominal model",
                                                                     exact_gradient(chip, x, t))):
            f = compare_gradients(est, ref)
            rows.append({"twin": label, "output_series_ohm": 1e6, "gamma_a_per_v": 1e-6, "activation": "ac",
                         "cosine": f.cosine, "rel_err": f.relative_error, "scale": f.scale})
    finally:
        chip.close()
    return rows


def diode_gamma(gammas, noise_seeds: int) -> list[dict]:
    net, edges = xor_diode_network(4)
    task = make_task("xor", complementary_inputs=True, bias_inputs_v=[1.0])
    x, t = task.x_train, task.t_train
    rows = []
    for gamma in gammas:
        row = {"gamma_a_per_v": gamma}
        for noise, seeds in ((0.0, 1), (1e-4, noise_seeds)):
            cos, err = [], []
            for seed in range(seeds):
                chip = NonlinearResistorChip(net, edges, rate_hz=2000.0, read_noise_v=noise, seed=seed)
                spec = chip.parameter_spec
                rng = np.random.default_rng(0)
                chip.set_parameters(np.exp(rng.uniform(np.log(spec.lower), np.log(spec.upper))))
                est = FrequencyPropagation(gamma, activation_hz=0.0, settle_s=0.0).estimate(chip, x, t).gradient
                f = compare_gradients(est, chip.exact_gradient(x, t))
                cos.append(f.cosine)
                err.append(f.relative_error)
            key = "noise_free" if noise == 0 else "noise_0.1mV"
            row[key] = {"cosine": float(np.mean(cos)), "rel_err": float(np.sqrt(np.mean(np.square(err))))}
        rows.append(row)
    return rows


def diode_twin_chip(net, edges, params, *, gamma: float, diode_tolerance: float = 0.0, temperature_k: float = 0.0,
                    noise_white_v: float = 0.0, adc_bits: int | None = None, dac_bits: int | None = None,
                    rate_hz: float = 2000.0):
    """The diode network on the nonlinear bench twin: the example's bench (2 kS/s, +-2 V, 1000 V/s, nominal pots,
    output series resistor 1 / gamma), parts varied by ``diode_tolerance`` / ``temperature_k`` (seed 0)."""
    wiring = default_nonlinear_wiring(net, edges, output_series_ohm=1.0 / gamma)
    twin = build_nonlinear_twin(net, edges, wiring, seed=0, diode_tolerance=diode_tolerance,
                                temperature_k=temperature_k, pot_options={"tolerance": 0.0},
                                daq_options={"noise_white_v": noise_white_v, "adc_bits": adc_bits,
                                             "dac_bits": dac_bits, "ai_range_v": (-10.0, 10.0)})
    cfg = nonlinear_safety_config({"max_abs_v": 2.0, "max_slew_v_per_s": 1000.0}, wiring, edges, rate_hz)
    chip = NonlinearBenchChip(net, edges, wiring, SafeDAQ(twin.daq, cfg, register=False),
                              SafePotArray(twin.pots, cfg, register=False), AcquisitionSettings(rate_hz=rate_hz),
                              params, backend="twin")
    return chip, twin


def diode_twin(noise_seeds: int) -> list[dict]:
    """FP (DC activation, the example's 80 Hz tone in 50 ms at 2 kS/s) on the diode network's bench twin, against
    the nominal model's exact gradient (what the chip believes) and the physical one (adjoint of the twin's true
    parts); the analytic rule (measured outputs + nominal model) against the physical gradient for contrast."""
    net, edges = xor_diode_network(4)
    task = make_task("xor", complementary_inputs=True, bias_inputs_v=[1.0])
    x, t = task.x_train, task.t_train
    nominal = NonlinearResistorNetwork(net, edges)
    rng = np.random.default_rng(0)
    params = np.exp(rng.uniform(np.log(nominal.lower), np.log(nominal.upper)))
    parts = (("nominal parts", 0.0, 0.0), ("diodes +-5 %", 0.05, 0.0), ("diodes +-10 %", 0.1, 0.0),
             ("310 K (model: 300 K)", 0.0, 310.0))
    twins = (("noise-free", {}, 1e-6, 1),
             ("default noise", {"noise_white_v": 1e-4, "adc_bits": 16, "dac_bits": 16}, 1e-6, noise_seeds),
             ("default noise", {"noise_white_v": 1e-4, "adc_bits": 16, "dac_bits": 16}, 1e-5, noise_seeds))
    rows = []
    for label, daq, gamma, seeds in twins:
        for name, tolerance, temperature in parts:
            chip, twin = diode_twin_chip(net, edges, params, gamma=gamma, diode_tolerance=tolerance,
                                         temperature_k=temperature, **daq)
            try:
                believed = chip.reference_gradient(x, t)
                physical = NonlinearResistorNetwork(net, twin.circuit.edges, chip.get_parameters()).exact_gradient(x, t)
                fits = {"nominal": [], "physical": [], "analytic": []}
                wall, simulated = [], []
                for seed in range(seeds):
                    chip.reseed([seed, 9])
                    t0, s0 = time.perf_counter(), chip.acquired_time_s
                    est = FrequencyPropagation(gamma, activation_hz=0.0, settle_s=0.0).estimate(chip, x, t).gradient
                    wall.append(time.perf_counter() - t0)
                    simulated.append(chip.acquired_time_s - s0)
                    fits["nominal"].append(compare_gradients(est, believed))
                    fits["physical"].append(compare_gradients(est, physical))
                    fits["analytic"].append(compare_gradients(AnalyticGradient().estimate(chip, x, t).gradient,
                                                              physical))
            finally:
                chip.close()
            row = {"twin": label, "parts": name, "gamma_a_per_v": gamma, "output_series_ohm": 1.0 / gamma,
                   "seeds": seeds, "fp_ms": 1e3 * float(np.median(wall)), "simulated_s": float(np.median(simulated)),
                   "believed_vs_physical": compare_gradients(believed, physical).cosine}
            for key, fs in fits.items():
                row[key] = {"cosine": float(np.mean([f.cosine for f in fs])),
                            "rel_err": float(np.sqrt(np.mean([f.relative_error ** 2 for f in fs])))}
            rows.append(row)
    return rows


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (factorisations, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def timings(repeats: int) -> list[dict]:
    rows = []
    for label, make in (("random 12/30, batch 5", linear_problem), ("lattice 6x6, batch 32", lattice_problem)):
        net, g, x, t = make()
        for backend in ("ideal", "twin"):
            chip = IdealChip(net, g, rate_hz=RATE_HZ) if backend == "ideal" else \
                twin_chip(net, g, noise_white_v=1e-4, adc_bits=16, output_series_ohm=1e5)
            try:
                fp = FrequencyPropagation(1e-5)
                ep = EquilibriumPropagation(1e-6)
                t_fp = _median_time(lambda: fp.estimate(chip, x, t), repeats)
                t_ep = _median_time(lambda: ep.estimate(chip, x, t), repeats)
            finally:
                chip.close()
            rows.append({"network": label, "backend": backend, "fp_ms": 1e3 * t_fp, "ep_ms": 1e3 * t_ep,
                         "ratio": t_fp / t_ep})
    return rows


# ---------------------------------------------------------------------- report
def report(res: dict) -> str:
    res = {k: [] for k in SECTIONS} | res
    li = res["linear_ideal"] or {"fd_vs_exact": float("nan")}
    lines = ["## 1. linear ideal, noise-free (random 12/30, batch 5)", "",
             f"finite differences vs exact: rel. err {li['fd_vs_exact']:.1e}", "",
             "| mode | rel. err vs exact | rel. err vs FD | cosine |", "|---|---|---|---|"]
    for k in ("ac", "dc", "frequency_domain"):
        if k not in li:
            continue
        r = li[k]
        lines.append(f"| {k} | {r['rel_err_exact']:.1e} | {r['rel_err_fd']:.1e} | {r['cosine']:.9f} |")
    lines += ["", "## 2. linear ideal, 0.1 mV read noise", "",
              "| window | RMS rel. err | mean cosine | rel. err x sqrt(T / 1 s) |", "|---|---|---|---|"]
    for r in res["linear_noise"]:
        lines.append(f"| {r['window_s']:g} s | {r['rms_rel_err']:.3f} | {r['mean_cosine']:.4f} | "
                     f"{r['rel_err_x_sqrt_window']:.3f} |")
    lines += ["", "## 3. linear twin", "", "| twin | R_series | gamma (A/V) | activation | cosine | rel. err | scale |",
              "|---|---|---|---|---|---|---|"]
    for r in res["linear_twin"]:
        lines.append(f"| {r['twin']} | {r['output_series_ohm']:.0e} | {r['gamma_a_per_v']:.0e} | {r['activation']} | "
                     f"{r['cosine']:.7f} | {r['rel_err']:.2e} | {r['scale']:.4f} |")
    lines += ["", "## 4. diode network vs gamma (DC activation)", "",
              "| gamma (A/V) | cosine, noise-free | rel. err, noise-free | cosine, 0.1 mV | rel. err, 0.1 mV |",
              "|---|---|---|---|---|"]
    for r in res["diode_gamma"]:
        a, b = r["noise_free"], r["noise_0.1mV"]
        lines.append(f"| {r['gamma_a_per_v']:.0e} | {a['cosine']:.9f} | {a['rel_err']:.1e} | {b['cosine']:.5f} | "
                     f"{b['rel_err']:.1e} |")
    lines += ["", "## 5. time per gradient estimate, FP vs one-sided EP", "",
              "| network | backend | FP (ms) | EP (ms) | FP / EP |", "|---|---|---|---|---|"]
    for r in res["timings"]:
        lines.append(f"| {r['network']} | {r['backend']} | {r['fp_ms']:.1f} | {r['ep_ms']:.2f} | {r['ratio']:.0f} |")
    lines += ["", "## 6. diode network on the bench twin (FP, DC activation, XOR batch 4)", "",
              "| twin | parts | gamma (A/V) | R_series | FP vs nominal model: cosine, rel. err | FP vs physical: "
              "cosine, rel. err | analytic vs physical: cosine | nominal vs physical: cosine | FP (ms) | "
              "bench time (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["diode_twin"]:
        n, p, a = r["nominal"], r["physical"], r["analytic"]
        lines.append(f"| {r['twin']} | {r['parts']} | {r['gamma_a_per_v']:.0e} | {r['output_series_ohm']:.0e} | "
                     f"{n['cosine']:.5f}, {n['rel_err']:.1e} | {p['cosine']:.7f}, {p['rel_err']:.1e} | "
                     f"{a['cosine']:.5f} | {r['believed_vs_physical']:.5f} | {r['fp_ms']:.0f} | "
                     f"{r['simulated_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows, seeds and repeats")
    parser.add_argument("--noise-seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these sections")
    args = parser.parse_args(argv)
    windows = (0.05, 0.2, 0.8) if args.quick else (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    gammas = (1e-2, 1e-4, 1e-6) if args.quick else (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    seeds = 2 if args.quick else args.noise_seeds
    repeats = 2 if args.quick else args.repeats
    res = {}
    for name, fn in (("linear_ideal", linear_ideal), ("linear_noise", lambda: linear_noise(windows, seeds)),
                     ("linear_twin", linear_twin), ("diode_gamma", lambda: diode_gamma(gammas, seeds)),
                     ("timings", lambda: timings(repeats)), ("diode_twin", lambda: diode_twin(seeds))):
        if name not in args.sections:
            continue
        t0 = time.perf_counter()
        res[name] = fn()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
