"""The AC rules of experiment files: frequency propagation (``fp``) and homodyne gradient extraction (``hge``).

Shared by the chip types that take them (``fp``: resistor_network and
nonlinear_resistor; ``hge``: dnpu).  :func:`check_ac_settings` runs once the
chip exists (``build_setup``): it plans the tones at the chip's sample clock
and checks the HGE amplitudes against the control ranges, so an off-grid or
colliding tone set, or a too large amplitude, is a one-line
:class:`~labtrain.config.ConfigError` naming the ``[learning]`` key -- before
anything is measured.
"""

from __future__ import annotations

import numpy as np

from labtrain.config import ConfigError, Experiment, _show
from labtrain.protocols.fidelity import compare_gradients
from labtrain.protocols.frequency_propagation import FrequencyPropagation
from labtrain.protocols.homodyne import HomodyneGradient
from labtrain.kinds import GradcheckReport, source_of

__all__ = ["fp_rule", "hge_rule", "check_ac_settings", "fp_gradcheck_rows"]


def fp_rule(exp: Experiment, gamma_a_per_v: float | None = None) -> FrequencyPropagation:
    """``[learning] rule = "fp"`` from its keys (``fp_activation`` already resolved by the config)."""
    lr = exp["learning"]
    dc = lr["fp_activation"] == "dc"
    return FrequencyPropagation(gamma_a_per_v or lr["gamma_a_per_v"],
                                activation_hz=0.0 if dc else (lr["activation_hz"] or None),
                                error_hz=lr["error_hz"] or None, window_s=lr["window_s"], settle_s=lr["settle_s"],
                                mode=lr["fp_mode"])


def hge_rule(exp: Experiment, mode: str | None = None) -> HomodyneGradient:
    """``[learning] rule = "hge"`` from its keys (``mode`` overrides ``hge_mode``)."""
    lr, t = exp["learning"], exp["task"]
    one_sided = lr["hge_loss"] == "one_sided"
    return HomodyneGradient(lr["amplitudes_v"], lr["tones_hz"] or None, window_s=lr["window_s"],
                            settle_s=lr["settle_s"], mode=mode or lr["hge_mode"], fd_step_v=lr["fd_step_v"],
                            central=lr["fd_central"], loss=lr["hge_loss"],
                            threshold_v=0.5 * (t["target_on_v"] + t["target_off_v"]) if one_sided else None)


def check_ac_settings(exp: Experiment, estimator, chip) -> None:
    """Plan the rule's tones on ``chip`` and check amplitudes; a ``ConfigError`` naming the key on failure."""
    where = f"{source_of(exp)}: [learning]"
    lr = exp["learning"]
    if isinstance(estimator, FrequencyPropagation) and estimator.mode == "time_domain":
        rate = float(getattr(chip, "rate_hz", exp["backend"]["rate_hz"]))
        try:
            plan = estimator.frequency_plan(rate)
        except ValueError as exc:
            given = [f for f in (lr["activation_hz"], lr["error_hz"]) if f]
            keys = "activation_hz / error_hz" if given else "window_s"
            raise ConfigError(f"{where} {keys} (window_s = {lr['window_s']!r}, [backend] rate_hz = {rate:g}): "
                              f"{_one_line(exc)}") from None
        estimator.plan = None  # keep the rule's own planning (same tones): describe() stays as configured
        estimator.last_plan = plan
    elif isinstance(estimator, HomodyneGradient) and estimator.mode != "finite_difference":
        try:
            plan = estimator.plan_for(chip)
        except ValueError as exc:
            key = f"tones_hz = {_show(lr['tones_hz'])}" if lr["tones_hz"] else "window_s"
            raise ConfigError(f"{where} {key}: {_one_line(exc)} (window {lr['window_s']:g} s at "
                              f"{float(getattr(chip, 'rate_hz', 0.0)):g} Hz: grid {1 / lr['window_s']:g} Hz)") \
                from None
        try:
            estimator._operating_point(chip, estimator._amplitudes(plan.n_tones))
        except ValueError as exc:
            raise ConfigError(f"{where} amplitudes_v = {_show(lr['amplitudes_v'])}: {_one_line(exc)}") from None
    elif isinstance(estimator, HomodyneGradient):
        n = chip.parameter_spec.size
        if len(lr["amplitudes_v"]) not in (1, n):
            raise ConfigError(f"{where} amplitudes_v = {_show(lr['amplitudes_v'])}: expected one amplitude or one "
                              f"per control electrode ({n})")
        if 2 * lr["fd_step_v"] >= float(np.min(chip.parameter_spec.span)):
            raise ConfigError(f"{where} fd_step_v = {lr['fd_step_v']!r}: not below half the narrowest control "
                              f"range ({float(np.min(chip.parameter_spec.span)):g} V)")


def _one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def fp_gradcheck_rows(exp: Experiment, chip, inputs: np.ndarray, targets: np.ndarray, exact: np.ndarray,
                      seed: int, gammas: list[float]) -> list[list[str]]:
    """One gradcheck row per error-current gain: the file's FP settings at ``gamma`` against ``exact``."""
    rows = []
    for gamma in gammas:
        est = fp_rule(exp, gamma)
        if hasattr(chip, "reseed"):
            chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        f = compare_gradients(e.gradient, exact)
        plan = est.last_plan
        tones = "" if plan is None else "tones " + ", ".join(f"{t:g}" for t in plan.tones_hz) + " Hz"
        act = "dc" if est.dc_activation else "ac"
        rows.append([f"fp ({est.mode}, {act} activation)", f"gamma = {gamma:g} A/V", f"{f.cosine:.6f}",
                     f"{f.relative_error:.2e}", f"{f.scale:.4g}", f"{f.scaled_error:.2e}", str(e.n_phases), tones])
    return rows


def hge_gradcheck(setup, inputs: np.ndarray, targets: np.ndarray, seed: int, options: dict) -> GradcheckReport:
    """Parallel and sequential HGE and finite differences against the exact Jacobian-chained gradient.

    The exact gradient is :func:`~labtrain.protocols.homodyne.dnpu_exact_gradient` of an ideal,
    noise-free :class:`~labtrain.kinds.dnpu.chip.DNPUChip` over the same device model, layout and control
    voltages (on a twin: the model behind its simulated DAQ).
    """
    from labtrain.kinds.dnpu.chip import DNPUChip
    from labtrain.protocols.homodyne import dnpu_exact_gradient

    exp, chip = setup.experiment, setup.chip
    if options.get("beta"):
        raise ConfigError(f"{source_of(exp)}: --beta is the nudge of xy / nonreciprocal chips; the dnpu's hge "
                          "takes its settings from [learning] (amplitudes_v, tones_hz, fd_step_v)")
    model = getattr(chip, "model", None)
    if model is None:  # a twin: the device model behind the simulated DAQ
        model = getattr(getattr(getattr(getattr(chip, "daq", None), "daq", None), "circuit", None), "model", None)
    exact, why = None, ""
    if model is not None and hasattr(model, "jacobian_a"):
        ideal = DNPUChip(model, chip.layout, chip.get_parameters(), rate_hz=chip.rate_hz)
        exact = dnpu_exact_gradient(ideal, inputs, targets)
    else:
        why = f"the {chip.backend} chip's model has no analytic Jacobian"
    rows, ests = [], []
    for mode in ("parallel", "sequential", "finite_difference"):
        est = hge_rule(exp, mode)
        if hasattr(chip, "reseed"):
            chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        ests.append((est, e))
    reference = exact if exact is not None else ests[-1][1].gradient
    for est, e in ests:
        f = compare_gradients(e.gradient, reference)
        if est.mode == "finite_difference":
            setting = f"step {est.fd_step_v:g} V, {'central' if est.central else 'forward'}"
        else:
            amps = ", ".join(f"{1e3 * a:g}" for a in est._amplitudes(est.plan.n_tones))
            setting = f"{amps} mV at " + ", ".join(f"{t:g}" for t in est.plan.tones_hz) + " Hz"
        note = f"{e.n_phases} acquisition(s), {est.last_acquisition_s:.3g} s of device time"
        rows.append([f"hge {est.mode}", setting, f"{f.cosine:.6f}", f"{f.relative_error:.2e}", f"{f.scale:.4g}",
                     f"{f.scaled_error:.2e}", str(e.n_phases), note])
    ref_name = ("the exact gradient (analytic Jacobian of the noise-free model, chained with dC/dI)"
                if exact is not None else f"finite differences ({why})")
    intro = (f"against {ref_name}; {chip.backend} DNPU, controls "
             + ", ".join(f"{v:+.3f}" for v in chip.get_parameters()) + f" V; |reference| = "
             f"{np.linalg.norm(reference):.3g} V")
    note = ("cosine 1 = same direction.  Parallel HGE reads every control's derivative from one window per input "
            "case (bias O(a^2) from the tone amplitude a); sequential uses one window per control, finite "
            "differences 2P + 1 settled DC measurements.")
    return GradcheckReport(intro, rows, note)
