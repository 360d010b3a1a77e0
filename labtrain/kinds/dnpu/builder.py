"""``[chip] type = "dnpu"``: a dopant-network processing unit, rule ``hge`` (homodyne gradient extraction).

The chip's trainable parameters are the control-electrode voltages (V, each
within its electrode's range); the task's inputs drive the data electrodes
(Boolean gates: ``[task] input_low_v = -1.2``, ``input_high_v = 0.6``); the
output and the targets are the transimpedance amplifier's output voltage
(``gain_ohm`` x current, clipped at ``clip_a``).

Backends:

* ``ideal`` -- :class:`~labtrain.kinds.dnpu.chip.DNPUChip` over the device model:
  ``model = "hopping"`` (:class:`~labtrain.kinds.dnpu.model.HoppingDNPU`, seed
  ``model_seed``) or ``model = "surrogate"`` (a fitted
  :class:`~labtrain.kinds.dnpu.surrogate.SurrogateDNPU` file from
  ``labtrain characterize``: the surrogate as a twin);
* ``twin`` -- :func:`~labtrain.kinds.dnpu.twin.build_dnpu_twin`: the same
  model behind a simulated DAQ (16-bit converters, noise, slew-limited
  ramps) and the safety layer, i.e. an
  :class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip` on the code path
  of the bench;
* ``hardware`` -- :func:`~labtrain.kinds.dnpu.hardware.build_dnpu_hardware`:
  the same chip class over the NI-DAQmx driver (electrodes on
  ``<daq_device>/ao0..``, the amplifier on ``ai0``).
"""

from __future__ import annotations

import numpy as np

from labtrain.config import ConfigError, Experiment
from labtrain.kinds.common import build_task
from labtrain.schema import show as _show
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.training.tasks import Task
from labtrain.chip.base import REFERENCE_GRADIENT
from labtrain.kinds import GradcheckReport, source_of
from labtrain.protocols.fidelity import compare_gradients, fidelity_row
from labtrain.kinds.ac_rules import hge_rule
from labtrain.instruments.bench_file import BenchError, has_role
from labtrain.kinds.dnpu.hardware import build_dnpu_hardware, build_dnpu_twin
from labtrain.kinds.dnpu.chip import DNPUChip
from labtrain.kinds.dnpu.surrogate_npz import load_surrogate

#: [chip] keys of a DNPU that describe the device; a surrogate file brings its own.
DNPU_LAYOUT_KEYS = ("electrode_low_v", "electrode_high_v", "data_electrodes", "control_electrodes", "gain_ohm",
                    "clip_a", "abort_abs_v")

__all__ = ["dnpu_layout", "dnpu_model", "build_dnpu_chip"]


def build_dnpu_task(exp: Experiment) -> Task:

    task = build_task(exp)
    src = source_of(exp)
    layout = dnpu_layout(exp)
    n_data = len(layout.data_electrodes)
    if task.n_inputs != n_data:
        raise ConfigError(f"{src}: [task] name = {exp['task']['name']!r} feeds {task.n_inputs} input value(s) per "
                          f"example (features + bias inputs), the DNPU has {n_data} data electrodes "
                          f"(data_electrodes = {list(layout.data_electrodes)})")
    if task.n_outputs != 1:
        raise ConfigError(f"{src}: [task] name = {exp['task']['name']!r} needs {task.n_outputs} outputs; a DNPU "
                          "has one output current")
    lo = np.asarray(layout.low_v)[list(layout.data_electrodes)]
    hi = np.asarray(layout.high_v)[list(layout.data_electrodes)]
    x = np.concatenate([task.x_train, task.x_test])
    below, above = x < lo - 1e-12, x > hi + 1e-12
    if np.any(below | above):
        k = int(np.argwhere(below | above)[0][1])
        key = "input_low_v" if np.any(below) else "input_high_v"
        raise ConfigError(f"{src}: [task] {key} = {exp['task'][key]!r}: the inputs span "
                          f"[{x[:, k].min():g}, {x[:, k].max():g}] V, data electrode "
                          f"{layout.data_electrodes[k]} allows [{lo[k]:g}, {hi[k]:g}] V")
    return task


def _surrogate(exp: Experiment):
    """The surrogate file's model: labtrain HDF5, a Twente ``.npz`` or a PyTorch checkpoint (by suffix)."""
    path = exp.resolve(exp["chip"]["surrogate_path"])
    try:
        return load_surrogate(path)
    except (ValueError, OSError, KeyError) as exc:
        raise ConfigError(f"{source_of(exp)}: [chip] surrogate_path = {exp['chip']['surrogate_path']!r}: "
                          f"{str(exc).splitlines()[0]}") from None


def dnpu_layout(exp: Experiment) -> DNPULayout:
    """Electrode ranges, roles, gain and clipping: the ``[chip]`` keys, or the surrogate file's."""
    c = exp["chip"]
    if c["model"] == "surrogate":
        return _surrogate(exp).layout
    try:
        return DNPULayout(tuple(c["electrode_low_v"]), tuple(c["electrode_high_v"]), tuple(c["data_electrodes"]),
                          tuple(c["control_electrodes"]), gain_ohm=c["gain_ohm"], clip_a=c["clip_a"],
                          abort_abs_v=c["abort_abs_v"])
    except ValueError as exc:
        given = ", ".join(f"{k} = {_show(c[k])}" for k in DNPU_LAYOUT_KEYS[:4])
        raise ConfigError(f"{source_of(exp)}: [chip] {exc} ({given})") from None


def dnpu_model(exp: Experiment, layout: DNPULayout):
    """The device physics: ``HoppingDNPU(seed=model_seed)`` or the surrogate file's MLP."""
    c = exp["chip"]
    if c["model"] == "surrogate":
        return _surrogate(exp)
    from labtrain.kinds.dnpu.model import HoppingDNPU

    model = HoppingDNPU(seed=c["model_seed"])
    if model.n_electrodes != layout.n_electrodes:
        raise ConfigError(f"{source_of(exp)}: [chip] electrode_low_v / electrode_high_v list "
                          f"{layout.n_electrodes} electrodes; the hopping model has {model.n_electrodes} "
                          "activation electrodes")
    return model


def no_network(exp: Experiment, task: Task) -> None:
    return None


def build_dnpu_chip(exp: Experiment, net: None, task: Task):
    """Ideal, twin or hardware DNPU chip with its controls at the middle of their ranges."""
    b, src = exp["backend"], source_of(exp)
    layout = dnpu_layout(exp)
    seed = exp["run"]["seed"]
    try:
        if b["kind"] == "hardware":
            return build_dnpu_hardware(b["daq_device"], layout, rate_hz=b["rate_hz"],
                                       settle_samples=b["settle_samples"], average_samples=b["average_samples"],
                                       max_slew_v_per_s=b["max_slew_v_per_s"], ai_max_abs_v=b["ai_max_abs_v"],
                                       retries=b["retries"], instruments=exp["instruments"])
        model = dnpu_model(exp, layout)
        lockin = has_role(exp["instruments"], "lockin")  # the file's bench has a lock-in: the twin simulates one
        if b["kind"] == "twin":
            chip = build_dnpu_twin(model, layout, rate_hz=b["rate_hz"], settle_samples=b["settle_samples"],
                                   average_samples=b["average_samples"], noise_white_v=b["twin_noise_white_v"],
                                   noise_1f_v=b["twin_noise_1f_v"], adc_bits=b["twin_adc_bits"],
                                   ai_max_abs_v=b["ai_max_abs_v"], rc_time_s=b["twin_rc_time_s"],
                                   max_slew_v_per_s=b["max_slew_v_per_s"], seed=seed, retries=b["retries"],
                                   device=b["daq_device"], lockin=lockin,
                                   demodulator="lockin" if lockin else "software")
            chip.attach_reference_model(model)  # the twin's device, for gradient-fidelity checks
            return chip
        return DNPUChip(model, layout, read_noise_a=b["read_noise_a"], rate_hz=b["rate_hz"],
                        average_samples=b["average_samples"], seed=seed)
    except BenchError as exc:
        raise ConfigError(f"{src}: [{exc.section}] {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: {exc} "
                          "(pip install -e '.[hardware]' in the labtrain checkout)") from None
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r}: instrument not reachable: "
                          f"{str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ConfigError(f"{src}: [backend] {str(exc).splitlines()[0]}") from None


def hge_gradcheck(setup, inputs: np.ndarray, targets: np.ndarray, seed: int, options: dict) -> GradcheckReport:
    """Parallel and sequential HGE and finite differences against the exact Jacobian-chained gradient.

    The exact gradient is :func:`~labtrain.protocols.homodyne.dnpu_exact_gradient` of an ideal,
    noise-free :class:`~labtrain.kinds.dnpu.chip.DNPUChip` over the same device model, layout and control
    voltages (on a twin: the model behind its simulated DAQ).
    """
    exp, chip = setup.experiment, setup.chip
    exact, why = None, ""
    if REFERENCE_GRADIENT in chip.capabilities:
        exact = chip.reference_gradient(inputs, targets)
    else:
        why = f"the {chip.backend} chip has no reference model with an analytic Jacobian"
    rows, ests = [], []
    for mode in ("parallel", "sequential", "finite_difference"):
        est = hge_rule(exp, mode)
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
        rows.append(fidelity_row(f"hge {est.mode}", setting, f, e.n_phases, note))
    ref_name = ("the exact gradient (analytic Jacobian of the noise-free model, chained with dC/dI)"
                if exact is not None else f"finite differences ({why})")
    intro = (f"against {ref_name}; {chip.backend} DNPU, controls "
             + ", ".join(f"{v:+.3f}" for v in chip.get_parameters()) + f" V; |reference| = "
             f"{np.linalg.norm(reference):.3g} V")
    note = ("cosine 1 = same direction.  Parallel HGE reads every control's derivative from one window per input "
            "case (bias O(a^2) from the tone amplitude a); sequential uses one window per control, finite "
            "differences 2P + 1 settled DC measurements.")
    return GradcheckReport(intro, rows, note)
