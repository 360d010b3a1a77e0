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

from labtrain.config import MAX_EXAMPLE_S, ConfigError, Experiment, _show
from labtrain.protocols.fidelity import compare_gradients, fidelity_row
from labtrain.protocols.frequency_propagation import FrequencyPropagation
from labtrain.protocols.homodyne import HomodyneGradient
from labtrain.kinds import source_of
from labtrain.resources import check_memory

__all__ = ["fp_rule", "hge_rule", "check_ac_settings", "fp_gradcheck_rows", "one_line"]


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
    """Plan the rule's tones on ``chip`` and check amplitudes; a ``ConfigError`` naming the key on failure.

    ``chip`` None (``labtrain check`` on a bench, which builds no chip): what needs no chip -- the waveforms'
    memory and the fp tone plan at ``[backend] rate_hz``."""
    where = f"{source_of(exp)}: [learning]"
    lr = exp["learning"]
    if isinstance(estimator, (FrequencyPropagation, HomodyneGradient)) and getattr(estimator, "mode", "") not in (
            "frequency_domain", "finite_difference"):
        rate = float((chip.rate_hz if chip is not None else None) or exp["backend"]["rate_hz"])
        samples = rate * (lr["window_s"] + lr["settle_s"])
        net = chip.network if chip is not None else None  # waveforms per parameter, edge or node, the most
        channels = max(16, int(chip.parameter_spec.size) if chip is not None else 16,
                       *((int(net.n_edges), int(net.n_nodes)) if net is not None else ()))
        seconds = lr["window_s"] + lr["settle_s"]
        if exp["backend"]["kind"] != "ideal" and seconds > MAX_EXAMPLE_S:
            raise ConfigError(f"{where} window_s = {lr['window_s']!r}, settle_s = {lr['settle_s']!r}: one example "
                              f"takes {seconds:g} s on {exp['backend']['kind']}, more than {MAX_EXAMPLE_S:g} s")
        check_memory(f"{where} window_s = {lr['window_s']!r}, settle_s = {lr['settle_s']!r}",
                     f"one example's acquisition ({samples:.3g} samples at {rate:g} Hz on {channels} channels)",
                     6 * 8 * samples * channels)
    if isinstance(estimator, FrequencyPropagation) and estimator.mode == "time_domain":
        rate = float((chip.rate_hz if chip is not None else None) or exp["backend"]["rate_hz"])
        try:
            plan = estimator.frequency_plan(rate)
        except ValueError as exc:
            given = [f for f in (lr["activation_hz"], lr["error_hz"]) if f]
            keys = "activation_hz / error_hz" if given else "window_s"
            raise ConfigError(f"{where} {keys} (window_s = {lr['window_s']!r}, [backend] rate_hz = {rate:g}): "
                              f"{one_line(exc)}") from None
        estimator.plan = None  # keep the rule's own planning (same tones): describe() stays as configured
        estimator.last_plan = plan
    elif chip is None:  # labtrain check on a bench: no chip is built; the tone plan of hge needs one
        return
    elif isinstance(estimator, HomodyneGradient) and estimator.mode != "finite_difference":
        try:
            plan = estimator.plan_for(chip)
        except ValueError as exc:
            key = f"tones_hz = {_show(lr['tones_hz'])}" if lr["tones_hz"] else "window_s"
            raise ConfigError(f"{where} {key}: {one_line(exc)} (window {lr['window_s']:g} s at "
                              f"{float(chip.rate_hz or 0.0):g} Hz: grid {1 / lr['window_s']:g} Hz)") \
                from None
        try:
            estimator._operating_point(chip, estimator._amplitudes(plan.n_tones))
        except ValueError as exc:
            raise ConfigError(f"{where} amplitudes_v = {_show(lr['amplitudes_v'])}: {one_line(exc)}") from None
    elif isinstance(estimator, HomodyneGradient):
        n = chip.parameter_spec.size
        if len(lr["amplitudes_v"]) not in (1, n):
            raise ConfigError(f"{where} amplitudes_v = {_show(lr['amplitudes_v'])}: expected one amplitude or one "
                              f"per control electrode ({n})")
        if 2 * lr["fd_step_v"] >= float(np.min(chip.parameter_spec.span)):
            raise ConfigError(f"{where} fd_step_v = {lr['fd_step_v']!r}: not below half the narrowest control "
                              f"range ({float(np.min(chip.parameter_spec.span)):g} V)")


def one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def fp_gradcheck_rows(exp: Experiment, chip, inputs: np.ndarray, targets: np.ndarray, exact: np.ndarray,
                      seed: int, gammas: list[float]) -> list[list[str]]:
    """One gradcheck row per error-current gain: the file's FP settings at ``gamma`` against ``exact``."""
    rows = []
    for gamma in gammas:
        est = fp_rule(exp, gamma)
        chip.reseed([seed, 9])
        e = est.estimate(chip, inputs, targets)
        f = compare_gradients(e.gradient, exact)
        plan = est.last_plan
        tones = "" if plan is None else "tones " + ", ".join(f"{t:g}" for t in plan.tones_hz) + " Hz"
        act = "dc" if est.dc_activation else "ac"
        rows.append(fidelity_row(f"fp ({est.mode}, {act} activation)", f"gamma = {gamma:g} A/V", f, e.n_phases,
                                 tones))
    return rows
