"""Homodyne gradient extraction (HGE): the full control gradient of a DNPU from one AC acquisition.

docs/algorithms.md, section 6 (Boon, Ruiz Euler et al.).  A small sinusoid
``a_k sin(2 pi f_k t)`` of its own frequency is added to every control
electrode ``k`` at once; the sampled output is demodulated at every ``f_k``.
For a memoryless device the signed in-phase amplitude (peak units, see
:mod:`labtrain.physics.demod`) divided by the tone amplitude is the derivative,

    d v_out / d V_k = X_k / a_k          (the literature's 2 X / a for an RMS lock-in),

up to an O(a^2) bias from the third derivative (``X_k / a_k = v' + a_k^2 v''' / 8
+ ...``; sums/differences of tones land off the planned tones by
construction).  The derivatives of every input case are chained with the
loss ``C = mean_b 1/2 (v_out,b - t_b)^2``:

    dC/dV_k = mean_b (v_out,b - t_b) d v_out,b / d V_k      (volts: V^2 per V),

where ``v_out,b`` is the window's mean output (the DC part of the same
acquisition).  With ``loss="one_sided"`` (a squared hinge) a case whose target
lies above ``threshold_v`` is penalised only while ``v_out < t`` and one whose
target lies below only while ``v_out > t``: outputs already beyond their target
on the correct side are left alone, so the optimiser spends its steps on the
cases that are still wrong instead of pinning every case to one level
(what a Boolean gate needs; ``examples/dnpu_gates.py``).

HGE modes
---------
``parallel``
    All controls at once at distinct planned frequencies: one ``measure_ac`` per
    batch (each input case one window).  Default tones: the lowest
    collision-free set from :func:`labtrain.physics.demod.plan_tones` on the window's
    grid (no ``2f``, ``3f`` or ``f_i +- f_j`` on a tone, away from mains); the
    published set :data:`~labtrain.physics.demod.PUBLISHED_DNPU_TONES_HZ` can be passed
    as ``tones_hz``.  A harmonic set such as 8, 16, 24, 32, 40 Hz is refused
    (:class:`~labtrain.physics.demod.ToneCollision`).
``sequential``
    One control at a time (P acquisitions); the cross-check of the parallel
    mode and what a single-channel hardware lock-in can do.
``finite_difference``
    ``+- fd_step_v`` on each control through ``set_parameters`` and settled DC
    measurements (``2P`` central, ``P`` forward, plus one unperturbed
    measurement for the loss); the controls are restored afterwards.  Needs
    only ``measure``.

Safety.  A tone's peak must stay inside its electrode's range.  The estimator
**moves the DC operating point inward**: for the AC acquisition a control at
``V_k`` is held at ``clip(V_k, low_k + a_k, high_k - a_k)`` (the chip's
parameters are restored right after), so a control the optimiser parked on
its bound is still measured -- the gradient is then that of a point at most
``a_k`` inside the range.  An amplitude of half the range or more is refused
with a one-line ``ValueError``.  The chip itself checks DC + amplitude against
every electrode's range (and the safety layer the absolute abort level) before
anything is applied.

Health.  ``last_quadrature_ratio`` (RMS ``|Y|/|X|`` per tone over the batch)
is updated by every AC estimate and shown in :meth:`HomodyneGradient.describe`;
a ratio above ``quadrature_warn`` raises a ``RuntimeWarning`` (an RC corner
too close to the tone, or a gradient below the noise).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from labtrain.chip.base import AC_TONES, Chip, Tone
from labtrain.physics.demod import FrequencyPlan, plan_tones
from labtrain.protocols.base import GradientEstimate, GradientEstimator

__all__ = ["HomodyneGradient", "HGE_MODES", "HGE_LOSSES", "DEFAULT_AMPLITUDES_V", "dnpu_exact_gradient"]

HGE_MODES = ("parallel", "sequential", "finite_difference")
HGE_LOSSES = ("squared", "one_sided")
#: Boon et al.'s perturbation amplitudes for the 5 controls (V)
DEFAULT_AMPLITUDES_V = (0.03, 0.01, 0.01, 0.005, 0.005)


def dnpu_exact_gradient(chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
    """Exact ``dC/dV_control`` of an ideal DNPU chip's noise-free model (for fidelity checks).

    Uses the chip's ``output_jacobian`` (analytic Jacobian of the model) and
    its noise-free outputs; raises ``CapabilityError`` where there is none.
    """
    jac = chip.output_jacobian(inputs)                                   # (B, n_out, P)
    saved = chip.read_noise_a
    try:
        chip.read_noise_a = 0.0
        out = chip.measure(inputs).output_v
    finally:
        chip.read_noise_a = saved
    err = out - np.asarray(targets_v, float)
    return np.mean(np.sum(err[..., None] * jac, axis=1), axis=0)


class HomodyneGradient(GradientEstimator):
    """Homodyne gradient extraction on a DNPU's control electrodes (module docstring).

    Parameters
    ----------
    amplitudes_v : float or sequence of float
        Peak tone amplitude per control electrode (V); one value for all or one per control.
    tones_hz : sequence of float or FrequencyPlan, optional
        Tone per control (Hz, each a whole number of periods in ``window_s``) or a
        ready plan.  Default: :func:`labtrain.physics.demod.plan_tones` for the chip's
        controls at the chip's sample clock.
    window_s : float
        Demodulation window per input case (s).
    settle_s : float
        Samples discarded before the window (s, rounded to whole samples).
    mode : {"parallel", "sequential", "finite_difference"}
    fd_step_v : float
        Finite-difference step on each control (V).
    central : bool
        Central (``2P`` measurements) or forward (``P``) finite differences.
    max_hz : float, optional
        Highest planned tone (default: the planner's, ``rate_hz / 6``).
    rate_hz : float, optional
        Sample clock for planning (default: the chip's ``rate_hz`` attribute, else 10 kHz).
    quadrature_warn : float
        Warn when a tone's quadrature/in-phase ratio exceeds this.
    loss : {"squared", "one_sided"}
        ``C = mean_b 1/2 e_b^2`` with ``e = v_out - t`` (squared) or ``e`` set to 0
        for outputs beyond their target on the far side of ``threshold_v`` (one-sided).
    threshold_v : float, optional
        Decision level of the one-sided loss (V at the amplifier output); required for it.
    """

    name = "homodyne"

    def __init__(self, amplitudes_v: float | Sequence[float] = DEFAULT_AMPLITUDES_V,
                 tones_hz: Sequence[float] | FrequencyPlan | None = None, window_s: float = 0.05,
                 settle_s: float = 0.005, mode: str = "parallel", fd_step_v: float = 0.01, central: bool = True,
                 max_hz: float | None = None, rate_hz: float | None = None, quadrature_warn: float = 0.1,
                 loss: str = "squared", threshold_v: float | None = None) -> None:
        if mode not in HGE_MODES:
            raise ValueError(f"homodyne mode must be one of {HGE_MODES}, got {mode!r}")
        amp = np.atleast_1d(np.asarray(amplitudes_v, float))
        if amp.ndim != 1 or not np.all(amp > 0) or not np.all(np.isfinite(amp)):
            raise ValueError(f"amplitudes_v must be finite and > 0, got {amplitudes_v}")
        if not window_s > 0 or not settle_s >= 0:
            raise ValueError(f"window_s must be > 0 and settle_s >= 0, got {window_s}, {settle_s}")
        if not fd_step_v > 0:
            raise ValueError(f"fd_step_v must be > 0, got {fd_step_v}")
        if loss not in HGE_LOSSES:
            raise ValueError(f"homodyne loss must be one of {HGE_LOSSES}, got {loss!r}")
        if loss == "one_sided" and (threshold_v is None or not np.isfinite(threshold_v)):
            raise ValueError(f"loss 'one_sided' needs a finite threshold_v, got {threshold_v!r}")
        self.loss = loss
        self.threshold_v = None if threshold_v is None else float(threshold_v)
        self.amplitudes_v = amp
        self.tones = tones_hz
        self.window_s, self.settle_s = float(window_s), float(settle_s)
        self.mode = mode
        self.fd_step_v, self.central = float(fd_step_v), bool(central)
        self.max_hz, self.rate_hz = max_hz, rate_hz
        self.quadrature_warn = float(quadrature_warn)
        self.requires = frozenset() if mode == "finite_difference" else frozenset({AC_TONES})
        self.plan: FrequencyPlan | None = None if not isinstance(tones_hz, FrequencyPlan) else tones_hz
        self.last_quadrature_ratio: np.ndarray | None = None
        self.last_acquisition_s = 0.0

    # ------------------------------------------------------------ planning
    def _amplitudes(self, n: int) -> np.ndarray:
        if self.amplitudes_v.size == 1:
            return np.full(n, self.amplitudes_v[0])
        if self.amplitudes_v.size != n:
            raise ValueError(f"amplitudes_v lists {self.amplitudes_v.size} amplitudes for {n} control electrodes")
        return self.amplitudes_v

    def plan_for(self, chip: Chip) -> FrequencyPlan:
        """The tone plan used on ``chip`` (built once, then reused)."""
        n = chip.parameter_spec.size
        rate = float(self.rate_hz or chip.rate_hz or 10_000.0)
        if self.plan is None:
            if self.tones is None:
                self.plan = plan_tones(n, rate, self.window_s, max_hz=self.max_hz)
            else:
                self.plan = FrequencyPlan.from_frequencies(list(self.tones), rate, self.window_s)
            collisions = self.plan.collisions()
            if collisions:
                from labtrain.physics.demod import ToneCollision
                raise ToneCollision(f"homodyne tones {self.plan.tones_hz.tolist()} Hz collide: {collisions[0]}"
                                    f" ({len(collisions)} collisions)")
        if self.plan.n_tones != n:
            raise ValueError(f"homodyne plan has {self.plan.n_tones} tones for {n} control electrodes")
        return self.plan

    def _settle_samples(self, plan: FrequencyPlan) -> int:
        return int(round(self.settle_s * plan.rate_hz))

    def _operating_point(self, chip: Chip, amp: np.ndarray) -> np.ndarray:
        """Control DC levels moved inward by the tone amplitudes (module docstring, Safety)."""
        spec = chip.parameter_spec
        if np.any(2 * amp >= spec.span):
            k = int(np.argmax(2 * amp >= spec.span))
            raise ValueError(f"homodyne amplitude {amp[k]} V on control {k} is not below half its range "
                             f"[{spec.lower[k]}, {spec.upper[k]}] V")
        return np.clip(chip.get_parameters(), spec.lower + amp, spec.upper - amp)

    # ------------------------------------------------------------ estimate
    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        targets_v = np.asarray(targets_v, float)
        if self.mode == "finite_difference":
            return self._finite_difference(chip, inputs, targets_v)
        plan = self.plan_for(chip)
        amp = self._amplitudes(plan.n_tones)
        settle = self._settle_samples(plan)
        saved = chip.get_parameters()
        op = self._operating_point(chip, amp)
        try:
            if not np.array_equal(op, saved):
                chip.set_parameters(op)
            if self.mode == "parallel":
                tones = [Tone("control", k, float(f), float(a)) for k, (f, a) in enumerate(zip(plan.tones_hz, amp))]
                meas = chip.measure_ac(inputs, tones, plan, settle_samples=settle)
                x, y = meas.output.in_phase, meas.output.quadrature               # (B, n_out, P)
                dc = meas.output.dc                                                # (B, n_out)
                acq, n_acq = meas.acquisition_s, 1
            else:
                xs, ys, dcs, acq = [], [], [], 0.0
                for k, (b, a) in enumerate(zip(plan.bins, amp)):
                    single = FrequencyPlan(plan.rate_hz, plan.window_samples, (b,))
                    meas = chip.measure_ac(inputs, [Tone("control", k, float(single.tones_hz[0]), float(a))], single,
                                           settle_samples=settle)
                    xs.append(meas.output.in_phase[..., 0])
                    ys.append(meas.output.quadrature[..., 0])
                    dcs.append(meas.output.dc)
                    acq += meas.acquisition_s
                x, y = np.stack(xs, -1), np.stack(ys, -1)
                dc = np.mean(dcs, axis=0)
                n_acq = plan.n_tones
        finally:
            if not np.array_equal(op, saved):
                chip.set_parameters(saved)
        self.last_acquisition_s = float(acq)
        self._health(x, y)
        deriv = x / amp                                                            # d v_out / d V_k
        err = self.output_error(dc, targets_v)
        gradient = np.mean(np.sum(err[..., None] * deriv, axis=1), axis=0)
        return GradientEstimate(gradient, 0.5 * float(np.mean(np.sum(err**2, axis=1))), dc, n_acq)

    def output_error(self, output_v: np.ndarray, targets_v: np.ndarray) -> np.ndarray:
        """``dC/dv_out`` per example and output, (B, n_out) in volts (module docstring, ``loss``)."""
        err = np.asarray(output_v, float) - np.asarray(targets_v, float)
        if self.loss == "one_sided":
            high = np.asarray(targets_v, float) > self.threshold_v
            err = np.where(high, np.minimum(err, 0.0), np.maximum(err, 0.0))
        return err

    def _health(self, x: np.ndarray, y: np.ndarray) -> None:
        xr = np.sqrt(np.mean(x**2, axis=(0, 1)))
        yr = np.sqrt(np.mean(y**2, axis=(0, 1)))
        ratio = np.divide(yr, xr, out=np.full_like(yr, np.inf), where=xr > 0)
        ratio = np.where((xr == 0) & (yr == 0), 0.0, ratio)
        self.last_quadrature_ratio = ratio
        if np.any(ratio > self.quadrature_warn):
            k = int(np.argmax(ratio))
            f = self.plan.tones_hz[k] if self.plan is not None else float("nan")
            warnings.warn(f"homodyne: quadrature/in-phase ratio {ratio[k]:.3g} at {f:g} Hz (control {k}) exceeds "
                          f"{self.quadrature_warn}: a filter corner near the tone, or a gradient below the noise",
                          RuntimeWarning, stacklevel=3)

    def _finite_difference(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        spec = chip.parameter_spec
        saved = chip.get_parameters()
        n = spec.size
        h = self.fd_step_v
        deriv = []
        acq = 0.0
        try:
            base = chip.measure(inputs)
            acq += base.acquisition_s
            for k in range(n):
                up = saved.copy()
                up[k] = min(saved[k] + h, spec.upper[k])
                took_up = chip.set_parameters(up)[k]
                m_up = chip.measure(inputs)
                acq += m_up.acquisition_s
                if self.central:
                    down = saved.copy()
                    down[k] = max(saved[k] - h, spec.lower[k])
                    took_down = chip.set_parameters(down)[k]
                    m_down = chip.measure(inputs)
                    acq += m_down.acquisition_s
                    lower_v, step = m_down.output_v, took_up - took_down
                else:
                    lower_v, step = base.output_v, took_up - saved[k]
                    if step == 0.0:  # parked on the upper bound: step down instead
                        down = saved.copy()
                        down[k] = saved[k] - h
                        step = saved[k] - chip.set_parameters(down)[k]
                        m_up, lower_v = base, chip.measure(inputs).output_v
                deriv.append((m_up.output_v - lower_v) / step)
        finally:
            chip.set_parameters(saved)
        self.last_acquisition_s = float(acq)
        deriv = np.stack(deriv, -1)                                                # (B, n_out, P)
        err = self.output_error(base.output_v, targets_v)
        gradient = np.mean(np.sum(err[..., None] * deriv, axis=1), axis=0)
        phases = 1 + (2 * n if self.central else n)
        return GradientEstimate(gradient, 0.5 * float(np.mean(np.sum(err**2, axis=1))), base.output_v, phases)

    def describe(self) -> dict:
        d = {"rule": self.name, "mode": self.mode, "amplitudes_v": self.amplitudes_v.tolist(),
             "window_s": self.window_s, "settle_s": self.settle_s, "fd_step_v": self.fd_step_v,
             "central": self.central, "loss": self.loss}
        if self.threshold_v is not None:
            d["threshold_v"] = self.threshold_v
        if self.plan is not None:
            d["plan"] = self.plan.to_dict()
        elif self.tones is not None:
            d["tones_hz"] = list(self.tones)
        if self.last_quadrature_ratio is not None:
            d["quadrature_ratio"] = self.last_quadrature_ratio.tolist()
        return d
