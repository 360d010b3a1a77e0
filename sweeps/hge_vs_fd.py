"""HGE vs finite differences (sweeps/hge_vs_fd.toml): the member function and the README table.

:func:`member` is what each member of the measurement sweep runs: the batched HGE / FD / exact
derivatives of benchmarks/hge_vs_fd.py at ``n`` random control points (seeded by ``seed``) with
``read_noise_na`` nA RMS read noise per sample, and the chip API (``measure_ac`` vs ``2P`` settled
``measure`` calls) on the first ``wall_points`` points for the acquisition and wall times.  It returns
every point's relative error and cosine, so :func:`table` pools all seeds of a noise level before
taking medians and percentiles, as the script did over its 1,000 points.

Usage::

    labtrain sweep sweeps/hge_vs_fd.toml --out runs/hge_vs_fd && python sweeps/hge_vs_fd.py runs/hge_vs_fd
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from labtrain.training.sweep import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hge_vs_fd.py"
FD_STEPS = {"fd4": 1e-4, "fd2": 1e-2}


def _study():
    """benchmarks/hge_vs_fd.py as a module (its batched HGE, FD and exact derivatives)."""
    return load_module(SCRIPT)


def _rel_cos(d: np.ndarray, ref: np.ndarray) -> tuple[list, list]:
    rel = np.linalg.norm(d - ref, axis=1) / np.linalg.norm(ref, axis=1)
    cos = np.sum(d * ref, axis=1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(ref, axis=1))
    return rel.tolist(), cos.tolist()


def member(read_noise_na: float = 0.0, seed: int = 0, n: int = 100, wall_points: int = 5) -> dict:
    """One member: derivatives at ``n`` random control points three ways; per-point errors and times."""
    from labtrain.chip.base import Tone
    from labtrain.kinds.dnpu.chip import DNPUChip
    from labtrain.kinds.dnpu.model import HoppingDNPU
    from labtrain.physics.demod import PUBLISHED_DNPU_TONES_HZ, FrequencyPlan
    from labtrain.protocols.homodyne import DEFAULT_AMPLITUDES_V

    st = _study()
    plan = FrequencyPlan.from_frequencies(PUBLISHED_DNPU_TONES_HZ, st.RATE_HZ, 0.05)
    amp = np.asarray(DEFAULT_AMPLITUDES_V)
    chip = DNPUChip(HoppingDNPU(), read_noise_a=read_noise_na * 1e-9, rate_hz=st.RATE_HZ,
                    average_samples=plan.window_samples, settle_samples=st.SETTLE, seed=seed)
    rng = np.random.default_rng(seed)
    spec = chip.parameter_spec
    v = rng.uniform(spec.lower + amp, spec.upper - amp, (n, spec.size))
    x = st.CASES[rng.integers(4, size=n)]
    d_hge = st.hge_batch(chip, x, v, plan, amp, rng)
    d_fd = {name: st.fd_batch(chip, x, v, h, rng) for name, h in FD_STEPS.items()}
    exact = st.exact_batch(chip, x, v)
    out: dict = {}
    out["hge_vs_exact_rel"], out["hge_vs_exact_cos"] = _rel_cos(d_hge, exact)
    for name, d in d_fd.items():
        out[f"{name}_vs_exact_rel"], out[f"{name}_vs_exact_cos"] = _rel_cos(d, exact)
    out["hge_vs_fd4_rel"], out["hge_vs_fd4_cos"] = _rel_cos(d_hge, d_fd["fd4"])
    # the chip API, per point: physical acquisition time and wall time, HGE window vs 2P settled readings
    tones = [Tone("control", k, float(f), float(a)) for k, (f, a) in enumerate(zip(plan.tones_hz, amp))]
    h = FD_STEPS["fd4"]
    times = dict.fromkeys(("wall_hge_s", "wall_fd_s", "acquisition_hge_s", "acquisition_fd_s"), 0.0)
    for i in range(min(wall_points, n)):
        chip.set_parameters(v[i])
        t0 = time.perf_counter()
        m = chip.measure_ac(x[i:i + 1], tones, plan, settle_samples=st.SETTLE)
        times["wall_hge_s"] += time.perf_counter() - t0
        times["acquisition_hge_s"] += m.acquisition_s
        t0 = time.perf_counter()
        for k in range(spec.size):
            for sign in (1, -1):
                step = np.zeros(spec.size)
                step[k] = sign * h
                chip.set_parameters(v[i] + step)
                times["acquisition_fd_s"] += chip.measure(x[i:i + 1]).acquisition_s
        times["wall_fd_s"] += time.perf_counter() - t0
    return out | times | {"wall_points": min(wall_points, n)}


def _pooled(ds, noise_index: int, name: str) -> np.ndarray:
    sub = ds.isel(read_noise_na=noise_index)
    done = sub["status"].values == "completed"
    values = np.asarray(sub[name].values)[done].ravel()
    return values[np.isfinite(values)]


def table(ds) -> str:
    lines = ["| read noise | comparison | points | rel. error median / p90 | cosine median / p10 |", "|---|---|---|---|---|"]
    pairs = [("hge_vs_fd4", "HGE vs FD (h = 1e-4 V)"), ("hge_vs_exact", "HGE vs exact"),
             ("fd4_vs_exact", "FD h = 1e-4 V vs exact"), ("fd2_vs_exact", "FD h = 1e-2 V vs exact")]
    ratios = []
    for i, noise in enumerate(ds["read_noise_na"].values):
        for key, label in pairs:
            if key == "hge_vs_fd4" and noise > 0:  # FD at h = 1e-4 V is swamped by the noise: no reference
                continue
            rel, cos = _pooled(ds, i, f"{key}_rel"), _pooled(ds, i, f"{key}_cos")
            if len(rel) == 0:
                continue
            lines.append(f"| {noise:g} nA | {label} | {len(rel)} | {np.median(rel):.3g} / {np.percentile(rel, 90):.3g} | "
                         f"{np.median(cos):.7f} / {np.percentile(cos, 10):.7f} |")
        sums = {k: _pooled(ds, i, k).sum() for k in ("acquisition_fd_s", "acquisition_hge_s", "wall_fd_s", "wall_hge_s",
                                                     "wall_points")}
        if sums["acquisition_hge_s"] > 0:
            ratios.append(f"{noise:g} nA: physical acquisition time FD / HGE = "
                          f"{sums['acquisition_fd_s'] / sums['acquisition_hge_s']:.2f}, wall time FD / HGE "
                          f"(chip API, {int(sums['wall_points'])} points) = {sums['wall_fd_s'] / sums['wall_hge_s']:.2f}")
    return "\n".join(lines + [""] + ratios)


def main(argv: list[str] | None = None) -> int:
    from labtrain.training.sweep_summary import summary_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder of sweeps/hge_vs_fd.toml")
    args = parser.parse_args(argv)
    ds = summary_dataset(args.folder)
    print(ds.attrs.get("description", ""))
    print()
    print(table(ds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
