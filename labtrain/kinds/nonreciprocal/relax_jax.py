"""The relaxation of :class:`~labtrain.kinds.nonreciprocal.model.NonReciprocalNetwork` on JAX.

The same algorithm as the NumPy reference (:meth:`NonReciprocalNetwork.relax`):
Euler steps linearly implicit in each unit's self-coupling, a per-example step
that halves on overshoot, batched Newton with step halving, the same hand-over
thresholds and counters -- written for an accelerator.  Each phase (an Euler
run, a Newton polish) is one compiled ``lax.while_loop`` over the *whole*
batch: examples that are done are masked (``where``) instead of gathered, so
shapes never change, nothing is recompiled within a run and the device is
synchronised with the host once per phase, not once per step.  The Newton
solve is a dense batched LU (``jnp.linalg.solve``) of the full Jacobian
instead of the reference's Schur complement on the non-first layers; the
fixed points agree to the relaxation tolerance (tests compare the two).

Kernels are compiled once per (activation, dynamics, extra-force shape,
settings) and padded batch size: batches are padded with converged zero rows
to the next power of two (at least 8), so a run's full, partial and
evaluation batches share a few compilations (a few seconds each on a CPU).  JAX is imported on the first call
(:func:`labtrain.linalg.backend.load_jax`), never on import of this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from labtrain.linalg.backend import load_jax

__all__ = ["JaxRelaxResult", "relax_jax"]


@dataclass
class JaxRelaxResult:
    """What :func:`relax_jax` returns (NumPy arrays, on the host)."""

    states: np.ndarray
    residual: np.ndarray
    euler_steps: int
    newton_steps: int
    min_dt: float


def _activation(jnp: Any, name: str, s: Any) -> tuple[Any, Any, Any]:
    """``rho``, ``rho'``, ``rho''`` (the formulas of :func:`~labtrain.kinds.nonreciprocal.model.activation`)."""
    if name == "smooth_hard_sigmoid":
        th = jnp.tanh(2.0 * s - 1.0)
        d = 1.0 - th * th
        return 0.5 * (1.0 + th), d, -4.0 * th * d
    if name == "sigmoid":
        r = 1.0 / (1.0 + jnp.exp(-s))
        d = r * (1.0 - r)
        return r, d, d * (1.0 - 2.0 * r)
    if name == "tanh":
        th = jnp.tanh(s)
        d = 1.0 - th * th
        return th, d, -2.0 * th * d
    raise ValueError(f"unknown activation {name!r}")


@dataclass(frozen=True)
class _Kernels:
    euler: Callable
    newton: Callable
    force_diag: Callable


@lru_cache(maxsize=64)
def _kernels(activation: str, dynamics: str, matrix_ndim: int, tol: float, max_steps: int,
             max_newton: int) -> _Kernels:
    """Compiled Euler run, Newton polish and force of one configuration.

    ``matrix_ndim``: 0 (no extra-force matrix), 2 (one ``(n, n)`` matrix) or 3 (``(B, n, n)``).
    """
    jax, jnp = load_jax()
    lax = jax.lax
    hopfield = dynamics == "hopfield"

    def gain(d, d2):
        return (d, d2) if hopfield else (1.0, 0.0)

    def extra_matvec(m, s):
        if matrix_ndim == 0:
            return 0.0
        if matrix_ndim == 2:
            return s @ m.T
        return jnp.einsum("bij,bj->bi", m, s)

    def extra_diag(m):
        if matrix_ndim == 0:
            return 0.0
        if matrix_ndim == 2:
            return jnp.diag(m)
        return jnp.diagonal(m, axis1=1, axis2=2)

    def force_diag(s, W, w_diag, ext, m, off):
        r, d, d2 = _activation(jnp, activation, s)
        g, dg = gain(d, d2)
        z = r @ W.T + ext
        f = g * z - s + (off - extra_matvec(m, s))
        jd = dg * z + g * w_diag * d - 1.0 - extra_diag(m)
        return f, jd

    def jacobian(s, W, ext, m):
        r, d, d2 = _activation(jnp, activation, s)
        g, dg = gain(d, d2)
        g = jnp.broadcast_to(g, s.shape)
        J = g[:, :, None] * W[None, :, :] * d[:, None, :]
        diag = -1.0 + jnp.broadcast_to(dg, s.shape) * (r @ W.T + ext)
        idx = jnp.arange(s.shape[1])
        J = J.at[:, idx, idx].add(diag)
        if matrix_ndim:
            J = J - m
        return J

    def euler(s, f, jd, res, dt, switch_at, steps, W, w_diag, ext, m, off):
        far = res >= switch_at

        def cond(c):
            return (c[9] < max_steps) & jnp.any(c[8])

        def body(c):
            s, f, jd, f_old, f_prev, res, dt, checkpoint, far, steps = c
            mask = far[:, None]
            dtc = dt[:, None]
            si = s + dtc / (1.0 + dtc * jnp.maximum(-jd, 0.0)) * f
            fi, jdi = force_diag(si, W, w_diag, ext, m, off)
            s = jnp.where(mask, si, s)
            jd = jnp.where(mask, jdi, jd)
            f_prev = jnp.where(mask, f_old, f_prev)
            f_old = jnp.where(mask, f, f_old)
            f = jnp.where(mask, fi, f)
            ri = jnp.max(jnp.abs(fi), axis=1)
            res = jnp.where(far, jnp.where(jnp.isfinite(ri), ri, jnp.inf), res)
            overshoot = (jnp.sum(fi * f_old, axis=1) < 0) | (jnp.sum(fi * f_prev, axis=1) < 0)
            tenth = steps % 10 == 9
            overshoot = overshoot | (tenth & (res > 1.5 * checkpoint))
            checkpoint = jnp.where(far & tenth, res, checkpoint)
            dt = jnp.where(far & overshoot & (dt > 1e-3), 0.5 * dt, dt)
            far = far & (res >= switch_at)
            return s, f, jd, f_old, f_prev, res, dt, checkpoint, far, steps + 1

        out = lax.while_loop(cond, body, (s, f, jd, f, f, res, dt, res, far, steps))
        s, f, jd, _, _, res, dt, _, _, steps = out
        return s, f, jd, res, dt, steps

    def newton(s, f, res, switch_at, W, w_diag, ext, m, off):
        def cond(c):
            return (c[0] < max_newton) & ~c[4]

        def body(c):
            it, s, f, res, done, count = c
            active = (res >= tol) & (res < switch_at)
            none = ~jnp.any(active)
            delta = jnp.linalg.solve(jacobian(s, W, ext, m), -f[..., None])[..., 0]
            ra = jnp.linalg.norm(f, axis=1)

            def h_cond(h):
                return (h[0] < 9) & ~jnp.all(h[4] | ~active)

            def h_body(h):
                k, step, _, _, _ = h
                trial = s + step[:, None] * delta
                ft = force_diag(trial, W, w_diag, ext, m, off)[0]
                rt = jnp.linalg.norm(ft, axis=1)
                ok = jnp.isfinite(rt) & (rt < ra)
                return k + 1, jnp.where(ok, step, 0.5 * step), trial, ft, ok

            h0 = (jnp.asarray(0), jnp.ones_like(ra), s, f, jnp.zeros_like(active))
            _, _, trial, ft, ok = lax.while_loop(h_cond, h_body, h0)
            upd = active & ok
            s = jnp.where(upd[:, None], trial, s)
            f = jnp.where(upd[:, None], ft, f)
            res = jnp.where(upd, jnp.max(jnp.abs(ft), axis=1), res)
            done = none | ~jnp.any(upd)
            count = jnp.where(none, it, it + 1)
            return it + 1, s, f, res, done, count

        zero = jnp.asarray(0)
        out = lax.while_loop(cond, body, (zero, s, f, res, jnp.asarray(False), zero))
        return out[1], out[2], out[3], out[5]

    return _Kernels(jax.jit(euler), jax.jit(newton), jax.jit(force_diag))


def relax_jax(W: np.ndarray, external: np.ndarray, start: np.ndarray, *, activation: str, dynamics: str,
              dt: float, tol: float, max_steps: int, newton_from: float, max_newton: int, newton_first: bool,
              extra_matrix: np.ndarray | None = None, extra_offset: np.ndarray | None = None) -> JaxRelaxResult:
    """Fixed points of ``F(s) + offset - matrix s = 0`` for a batch, on the default JAX device.

    Parameters
    ----------
    W : ndarray, shape (n, n)
        Recurrent couplings.
    external : ndarray, shape (B, n)
        ``U x + b``.
    start : ndarray, shape (B, n)
        Initial states.
    activation, dynamics, dt, tol, max_steps, newton_from, max_newton
        As in :class:`~labtrain.kinds.nonreciprocal.model.NonReciprocalNetwork`.
    newton_first : bool
        Newton polish before any Euler step (learning phases started at the free state).
    extra_matrix : ndarray, shape (n, n) or (B, n, n), optional
    extra_offset : ndarray, shape (n,) or (B, n), optional
        The extra (affine) force.
    """
    _, jnp = load_jax()
    n_b, n = start.shape
    n_pad = _bucket(n_b)
    m = None if extra_matrix is None else np.asarray(extra_matrix, float)
    kernels = _kernels(activation, dynamics, 0 if m is None else m.ndim, float(tol), int(max_steps),
                       int(max_newton))
    off = np.zeros((n_b, n)) if extra_offset is None else np.broadcast_to(np.asarray(extra_offset, float), (n_b, n))
    if m is not None and m.ndim == 3:
        m = _pad(m, n_pad)
    args = (jnp.asarray(W), jnp.asarray(np.diag(W).copy()), jnp.asarray(_pad(external, n_pad)),
            None if m is None else jnp.asarray(m), jnp.asarray(_pad(off, n_pad)))
    s = jnp.asarray(_pad(np.asarray(start, float), n_pad))
    f, jd = kernels.force_diag(s, *args)
    # padding rows start (and stay) converged: never stepped, never polished
    res = jnp.max(jnp.abs(f), axis=1).at[n_b:].set(0.0)
    switch = newton_from if newton_from > 0 else tol
    step_dt = jnp.full(n_pad, float(dt))
    switch_at = np.full(n_pad, np.inf if newton_first and newton_from > 0 else switch)
    steps, newton = jnp.asarray(0), 0
    while True:
        s, f, jd, res, step_dt, steps = kernels.euler(s, f, jd, res, step_dt, jnp.asarray(switch_at), steps, *args)
        if newton_from <= 0:
            break
        s, f, res, count = kernels.newton(s, f, res, jnp.asarray(switch_at), *args)
        newton += int(count)
        res_host = np.asarray(res)[:n_b]
        pending = np.isfinite(res_host) & (res_host >= tol)
        if not pending.any() or int(steps) >= max_steps:
            break
        lowered = switch_at[:n_b]  # a view: the padding rows keep theirs
        lowered[pending] = np.maximum(np.minimum(lowered[pending], switch) / 100.0, tol)
    return JaxRelaxResult(np.array(s)[:n_b], np.array(res)[:n_b], int(steps), newton,
                          float(jnp.min(step_dt[:n_b])))


def _bucket(n_b: int) -> int:
    """The padded batch size: the next power of two, at least 8 (one compilation serves many batch sizes)."""
    return max(8, 1 << (int(n_b) - 1).bit_length())


def _pad(a: np.ndarray, n_pad: int) -> np.ndarray:
    """``a`` with zero rows appended along the batch axis up to ``n_pad``."""
    if len(a) == n_pad:
        return np.ascontiguousarray(a)
    out = np.zeros((n_pad,) + a.shape[1:])
    out[:len(a)] = a
    return out
