"""Frequency propagation (FP): activation and error on two frequencies, one local product per edge.

Anisetti, Kandala, Scellier, Schwarz, Neural Computation 36(4) 596 (2024);
docs/algorithms.md, section 5.

The inputs carry the *activation*: a tone at ``omega_A`` whose amplitude is
the example's input value (``activation_hz > 0``), or the inputs held at their
DC levels (``activation_hz = 0``, "DC activation": what a nonlinear network
needs, so that the error below is a small signal around the operating point).
The outputs carry the *error*: a current ``gamma (t - v_O^A)`` injected at
``omega_B``.  Every edge demodulates its voltage drop at both: ``dv_e^A``
(in-phase at ``omega_A``, or the DC drop) and ``dv_e^B`` (in-phase at
``omega_B``), and the rule updates ``dg_e = -alpha dv_e^A dv_e^B``.

For a linear network ``dv^B = -gamma B^T u`` with ``u`` the adjoint state of
docs/algorithms.md, section 1 (sources shorted, ``v_O - t`` injected), so

    dC/dg_e = -(B^T u)_e (B^T v)_e = mean_b dv_e^A dv_e^B / gamma

exactly, whatever ``gamma``: that batch mean is the gradient this estimator
returns (``GradientEstimate.gradient`` is ``dC/dtheta``; an optimiser step
``-lr * gradient`` is the FP update).  For a nonlinear network ``dv^B / gamma``
is the linear response around the operating point up to O(gamma) corrections,
so the estimate tends to the exact gradient as ``gamma -> 0`` with DC
activation (and is limited by read noise from below).

One step is two acquisitions (``n_phases = 2``): the activation alone, which
measures ``v_O^A`` (it sets the error amplitudes and gives the loss), then
activation and error together, from which every edge's two coefficients are
read.

Modes
-----
``"time_domain"`` (default)
    Everything through :meth:`Chip.measure_ac`: the chip synthesises and
    samples real waveforms (ideal chip: the physics evaluated per sample;
    twin/hardware: a DAQ acquisition) and demodulates them.  Needs chip
    capabilities ``ac_tones`` and ``edge_drops``.
``"frequency_domain"``
    A shortcut for ideal linear chips, clearly *not* a measurement: the two
    phasors are computed from the chip's network model by linear response
    algebra (free state for ``dv^A``, the network's response to the output
    currents ``gamma (t - v_O^A)`` for ``dv^B``); no waveform is synthesised
    and ``n_phases = 0``.  Needs capability ``network_model``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from labtrain.chip.base import AC_TONES, EDGE_DROPS, LINEAR_NETWORK_MODEL, Chip, Tone
from labtrain.physics.demod import FrequencyPlan, plan_tones
from labtrain.protocols.base import GradientEstimate, GradientEstimator, half_squared_error

__all__ = ["FrequencyPropagation", "FP_MODES", "QUADRATURE_FALSE_ALARM", "phase_shift_check"]

FP_MODES = ("time_domain", "frequency_domain")

#: false-alarm probability of the quadrature check on noise alone (per tone and estimate)
QUADRATURE_FALSE_ALARM = 1e-3


def phase_shift_check(in_phase: np.ndarray, quadrature: np.ndarray,
                      false_alarm: float = QUADRATURE_FALSE_ALARM) -> tuple[float, float, bool]:
    """Is there a phase shift at a tone, or only noise in its quadrature?

    ``in_phase``, ``quadrature``: ``X``, ``Y`` of every signal at one tone, shape (B examples, ...signals).  A
    phase shift ``phi_s`` (a filter corner) makes ``Y_bs = tan(phi_s) X_bs`` in every example; noise gives a
    quadrature unrelated to ``X``.  Per example the quadrature along the in-phase pattern,
    ``q_b = sum_s X_bs Y_bs / |X_b|``, is regressed on ``|X_b|`` through the origin: the slope ``tau`` (the
    pooled ``sum X Y / sum X^2``, ``tan phi`` for a common phase) and its standard error from the residual
    spread over the examples -- the examples are independent acquisitions, the signals of one example need not
    be (edge drops share their nodes' noise).

    Returns ``(ratio, floor, significant)``: ``ratio = |tau|``; ``floor``, its standard error (what noise alone
    gives); ``significant``: ``|tau| / floor`` beyond Student's t (B - 1 degrees of freedom) at two-sided
    ``false_alarm``.  With one example the noise cannot be told apart: ``floor`` is nan and ``significant``
    True (``ratio`` alone decides).
    """
    x = np.asarray(in_phase, float).reshape(len(in_phase), -1)
    y = np.asarray(quadrature, float).reshape(len(quadrature), -1)
    norm = np.sqrt(np.sum(x**2, axis=1))                                       # |X_b|
    keep = norm > 0
    norm, q = norm[keep], np.sum(x * y, axis=1)[keep] / norm[keep]
    sxx = float(np.sum(norm**2))
    if sxx == 0:
        return 0.0, float("nan"), False
    tau = float(np.sum(q * norm) / sxx)
    dof = len(q) - 1
    if dof < 1:
        return abs(tau), float("nan"), True
    floor = float(np.sqrt(np.sum((q - tau * norm) ** 2) / dof / sxx))
    if floor == 0.0:
        return abs(tau), floor, tau != 0.0
    from scipy.stats import t as t_dist  # noqa: PLC0415 (scipy.stats: only when a check runs)

    return abs(tau), floor, bool(abs(tau) / floor > t_dist.isf(false_alarm / 2, dof))


class FrequencyPropagation(GradientEstimator):
    """Frequency-propagation gradient estimator.

    Parameters
    ----------
    gamma_a_per_v : float
        Error-current gain: ``gamma (t - v_O^A)`` amperes are injected per volt
        of output error (A/V, > 0).  Irrelevant to the result on a linear
        network except through noise and instrument limits (on a bench the
        output AO swings ``gamma * error * output_series_ohm``); on a nonlinear
        network the bias shrinks with ``gamma``.
    activation_hz : float or None
        Activation tone ``omega_A / 2 pi``; ``0``: DC activation; ``None``:
        planned with :func:`labtrain.physics.demod.plan_tones` (two collision-free tones,
        the lower one carries the activation).
    error_hz : float or None
        Error tone ``omega_B / 2 pi``; ``None``: planned.  Give both tones or
        neither (with ``activation_hz = 0`` only the error tone is planned or given).
    window_s : float
        Demodulation window per example (whole periods of every tone).
    settle_s : float
        Samples discarded at the start of each example's window (ramps between
        examples on a bench happen there), seconds.
    max_hz : float, optional
        Highest planned tone (default: ``rate / 6``).
    mode : {"time_domain", "frequency_domain"}
        Measure through ``chip.measure_ac`` (default), or the model-based shortcut
        for ideal chips (see the module docstring).
    plan : FrequencyPlan, optional
        Use this plan as it is (overrides ``window_s``, ``activation_hz``,
        ``error_hz``): tone 0 is the activation and tone 1 the error, or, for
        DC activation, tone 0 is the error.
    quadrature_warn : float
        Health check: warn (``RuntimeWarning``) when the edge drops at a tone
        carry a quadrature part in step with the in-phase part (a phase shift:
        a filter corner near the tone) larger than this fraction of it *and*
        significantly above the quadrature's noise floor
        (:func:`phase_shift_check`; ``last_quadrature_ratio`` keeps the plain
        RMS ratio, ``last_quadrature_floor`` the ratio noise alone gives).
    """

    name = "fp"

    def __init__(self, gamma_a_per_v: float = 1e-6, *, activation_hz: float | None = None,
                 error_hz: float | None = None, window_s: float = 0.05, settle_s: float = 0.005,
                 max_hz: float | None = None, mode: str = "time_domain", plan: FrequencyPlan | None = None,
                 quadrature_warn: float = 0.1) -> None:
        if not (np.isfinite(gamma_a_per_v) and gamma_a_per_v > 0):
            raise ValueError(f"FrequencyPropagation: gamma_a_per_v must be > 0, got {gamma_a_per_v!r}")
        if mode not in FP_MODES:
            raise ValueError(f"FrequencyPropagation: mode must be one of {FP_MODES}, got {mode!r}")
        if activation_hz is not None and not (np.isfinite(activation_hz) and activation_hz >= 0):
            raise ValueError(f"FrequencyPropagation: activation_hz must be >= 0 (0: DC activation), "
                             f"got {activation_hz!r}")
        if error_hz is not None and not (np.isfinite(error_hz) and error_hz > 0):
            raise ValueError(f"FrequencyPropagation: error_hz must be > 0, got {error_hz!r}")
        if activation_hz not in (None, 0.0, 0) and error_hz is None or (activation_hz is None and error_hz is not None):
            raise ValueError("FrequencyPropagation: give both activation_hz and error_hz, or neither (planned)")
        if not (np.isfinite(window_s) and window_s > 0):
            raise ValueError(f"FrequencyPropagation: window_s must be > 0, got {window_s!r}")
        if not (np.isfinite(settle_s) and settle_s >= 0):
            raise ValueError(f"FrequencyPropagation: settle_s must be >= 0, got {settle_s!r}")
        if plan is not None and not isinstance(plan, FrequencyPlan):
            raise ValueError(f"FrequencyPropagation: plan must be a FrequencyPlan, got {type(plan).__name__}")
        self.gamma_a_per_v = float(gamma_a_per_v)
        self.activation_hz = None if activation_hz is None else float(activation_hz)
        self.error_hz = None if error_hz is None else float(error_hz)
        self.window_s = float(window_s)
        self.settle_s = float(settle_s)
        self.max_hz = max_hz
        self.mode = mode
        self.plan = plan
        self.requires = frozenset({AC_TONES, EDGE_DROPS}) if mode == "time_domain" else frozenset({LINEAR_NETWORK_MODEL})
        self.last_plan: FrequencyPlan | None = None
        self.quadrature_warn = float(quadrature_warn)
        #: health of the last time-domain estimate: RMS ``|Y|/|X|`` of the edge drops per tone (Hz -> ratio)
        self.last_quadrature_ratio: dict[str, float] = {}
        #: the quadrature/in-phase ratio noise alone would give per tone (its standard error; nan: not estimable)
        self.last_quadrature_floor: dict[str, float] = {}

    # ------------------------------------------------------------ planning
    @property
    def dc_activation(self) -> bool:
        """Inputs held at DC (activation read as the DC edge drops)."""
        if self.plan is not None:
            return self.plan.n_tones == 1
        return self.activation_hz == 0.0

    def frequency_plan(self, rate_hz: float) -> FrequencyPlan:
        """The tones and window at sample clock ``rate_hz`` (activation first; one tone for DC activation)."""
        if self.plan is not None:
            want = 1 if self.dc_activation else 2
            if self.plan.n_tones != want:
                raise ValueError(f"FrequencyPropagation: plan must hold 1 tone (error, DC activation) or 2 "
                                 f"(activation, error), got {self.plan.n_tones}")
            if abs(self.plan.rate_hz - rate_hz) > 1e-9 * rate_hz:
                raise ValueError(f"FrequencyPropagation: plan's rate {self.plan.rate_hz:g} Hz differs from the "
                                 f"chip's {rate_hz:g} Hz")
            plan = self.plan
        else:
            n_tones = 1 if self.dc_activation else 2
            given = [f for f in (self.activation_hz, self.error_hz) if f]
            if given:
                plan = FrequencyPlan.from_frequencies(given, rate_hz, self.window_s)
            else:
                plan = plan_tones(n_tones, rate_hz, self.window_s, max_hz=self.max_hz)
        bad = plan.collisions()
        if bad:
            raise ValueError(f"FrequencyPropagation: tones {plan.tones_hz.tolist()} Hz collide: {bad[0]}")
        return plan

    # ----------------------------------------------------------- estimate
    def estimate(self, chip: Chip, inputs: np.ndarray, targets_v: np.ndarray) -> GradientEstimate:
        """Two acquisitions (activation; activation + error), then ``mean_b dv^A dv^B / gamma``."""
        self.check(chip)
        x = np.atleast_2d(np.asarray(inputs, float))
        t = np.atleast_2d(np.asarray(targets_v, float))
        if t.shape != (x.shape[0], chip.n_outputs):
            raise ValueError(f"FrequencyPropagation: targets_v must have shape ({x.shape[0]}, {chip.n_outputs}), "
                             f"got {t.shape}")
        if self.mode == "frequency_domain":
            return self._frequency_domain(chip, x, t)
        rate = chip.rate_hz
        if rate is None:
            raise ValueError(f"FrequencyPropagation: the {chip.backend} chip has no rate_hz (sample clock)")
        plan = self.frequency_plan(float(rate))
        self.last_plan = plan
        settle = int(round(self.settle_s * plan.rate_hz))
        if self.dc_activation:
            dc, activation, k_err = x, [], 0
        else:
            f_a = float(plan.tones_hz[0])
            dc = np.zeros_like(x)
            activation = [Tone("input", i, f_a, x[:, i].copy()) for i in range(chip.n_inputs)]
            k_err = 1
        f_b = float(plan.tones_hz[k_err])
        # phase 1: the activation alone -> v_O^A
        free = chip.measure_ac(dc, activation, plan, settle_samples=settle)
        out_a = free.output.dc if self.dc_activation else free.output.in_phase[..., 0]
        # phase 2: activation + error current gamma (t - v_O^A) at omega_B -> both coefficients on every edge
        error_a = self.gamma_a_per_v * (t - out_a)
        tones = activation + [Tone("output_current", j, f_b, error_a[:, j].copy()) for j in range(chip.n_outputs)]
        both = chip.measure_ac(dc, tones, plan, settle_samples=settle, edge_drops=True)
        drops = both.edge_drops
        dv_a = drops.dc if self.dc_activation else drops.in_phase[..., 0]
        dv_b = drops.in_phase[..., k_err]
        gradient = self.local_products(chip, dv_a, dv_b / self.gamma_a_per_v)
        self._health(drops, plan, k_err)
        return GradientEstimate(gradient, half_squared_error(out_a, t), out_a, 2)

    def _health(self, drops: Any, plan: FrequencyPlan, k_err: int) -> None:
        """Quadrature diagnostic: a resistive network answers in phase; a quadrature part in step with the
        in-phase part at a tone means a filter corner (node capacitance, amplifier bandwidth) near it, and the in-phase estimate is
        then biased.  Quadrature at the noise floor (small ``gamma``: the error response is tiny) is no phase
        shift and raises nothing."""
        ratio = drops.quadrature_ratio()
        used = range(k_err + 1) if not self.dc_activation else [k_err]
        names = {k: f"{plan.tones_hz[k]:g} Hz" for k in used}
        self.last_quadrature_ratio = {names[k]: float(ratio[k]) for k in used}
        checks = {k: phase_shift_check(drops.in_phase[..., k], drops.quadrature[..., k]) for k in used}
        self.last_quadrature_floor = {names[k]: checks[k][1] for k in used}
        high = {names[k]: round(c[0], 4) for k, c in checks.items() if c[0] > self.quadrature_warn and c[2]}
        if high:
            warnings.warn(f"frequency propagation: quadrature/in-phase ratio {high} above {self.quadrature_warn:g} "
                          "and above the noise floor: a filter corner is close to the tones; lower the tones or "
                          "raise the bandwidth", RuntimeWarning, stacklevel=3)

    @staticmethod
    def local_products(chip: Chip, dv_a: np.ndarray, response_b: np.ndarray) -> np.ndarray:
        """Batch mean of each trainable edge's local product, one entry per chip parameter.

        ``dv_a`` (B, n_edges) is the activation drop, ``response_b`` (B, n_edges)
        the error response per unit ``gamma``.  On a chip whose parameters are
        all its edges' conductances the product is ``dv_a * response_b``.  A
        chip with ``parameter_edges`` (a nonlinear network: parameters on some
        edges only) maps each parameter to its edge; the edge's own slope
        ``di_e/dtheta`` at the measured activation drop replaces ``dv_a`` when
        the chip's model provides it (``current_parameter_derivative``: equal to
        ``dv_a`` for a linear edge, the element characteristic for a
        transistor's gate).
        """
        edges = chip.parameter_edges
        if len(edges) != chip.parameter_spec.size:
            raise ValueError(f"FrequencyPropagation: the chip has {chip.parameter_spec.size} parameters but maps "
                             f"{len(edges)} of them to edges")
        slope = chip.edge_current_slope(dv_a)
        if len(edges) != response_b.shape[1] or np.any(edges != np.arange(len(edges))):
            response_b = response_b[:, edges]  # parameters on some edges only (a nonlinear network)
        return np.einsum("bp,bp->p", slope, response_b) / dv_a.shape[0]

    def _frequency_domain(self, chip: Chip, x: np.ndarray, t: np.ndarray) -> GradientEstimate:
        """Linear-response shortcut: phasors from the chip's network model, no waveforms."""
        if LINEAR_NETWORK_MODEL not in chip.capabilities:
            raise ValueError(f"FrequencyPropagation: mode 'frequency_domain' needs a linear network model; the "
                             f"{chip.backend} chip has none (use mode 'time_domain')")
        model = chip.network_model()
        free = model.steady_state(x)
        out_a = free.output_v
        error = model.steady_state(np.zeros_like(x), output_current_a=self.gamma_a_per_v * (t - out_a))
        gradient = free.edge_drops.mean_product(error.edge_drops) / self.gamma_a_per_v
        return GradientEstimate(gradient, half_squared_error(out_a, t), out_a, 0)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rule": self.name, "mode": self.mode, "gamma_a_per_v": self.gamma_a_per_v,
                             "activation": "dc" if self.dc_activation else "ac", "activation_hz": self.activation_hz,
                             "error_hz": self.error_hz, "window_s": self.window_s, "settle_s": self.settle_s,
                             "max_hz": self.max_hz}
        if self.last_quadrature_ratio:
            d["last_quadrature_ratio"] = dict(self.last_quadrature_ratio)
            d["last_quadrature_floor"] = dict(self.last_quadrature_floor)
        if self.plan is not None:
            d["plan"] = self.plan.to_dict()
        elif self.last_plan is not None:
            d["planned"] = self.last_plan.to_dict()
        return d
