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
* ``hardware`` -- :func:`~labtrain.kinds.dnpu.bench.build_dnpu_hardware`:
  the same chip class over the NI-DAQmx driver (electrodes on
  ``<daq_device>/ao0..``, the amplifier on ``ai0``).
"""

from __future__ import annotations

import numpy as np

from labtrain.config import DNPU_LAYOUT_KEYS, ConfigError, Experiment, _show
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.training.tasks import Task
from labtrain.kinds import ChipBuilder, source_of
from labtrain.kinds.ac_rules import hge_gradcheck, hge_rule

__all__ = ["BUILDER", "dnpu_layout", "dnpu_model", "build_dnpu_chip"]


def _task(exp: Experiment) -> Task:
    from labtrain.build import build_task  # here, not at import: labtrain.build imports this module

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
    from labtrain.kinds.dnpu.surrogate import SurrogateDNPU

    path = exp.resolve(exp["chip"]["surrogate_path"])
    try:
        return SurrogateDNPU.load(path)
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


def _no_network(exp: Experiment, task: Task) -> None:
    return None


def build_dnpu_chip(exp: Experiment, net: None, task: Task):
    """Ideal, twin or hardware DNPU chip with its controls at the middle of their ranges."""
    b, src = exp["backend"], source_of(exp)
    layout = dnpu_layout(exp)
    seed = exp["run"]["seed"]
    try:
        if b["kind"] == "hardware":
            from labtrain.kinds.dnpu.bench import build_dnpu_hardware

            return build_dnpu_hardware(b["daq_device"], layout, rate_hz=b["rate_hz"],
                                       settle_samples=b["settle_samples"], average_samples=b["average_samples"],
                                       max_slew_v_per_s=b["max_slew_v_per_s"], ai_max_abs_v=b["ai_max_abs_v"],
                                       retries=b["retries"])
        model = dnpu_model(exp, layout)
        if b["kind"] == "twin":
            from labtrain.kinds.dnpu.twin import build_dnpu_twin

            return build_dnpu_twin(model, layout, rate_hz=b["rate_hz"], settle_samples=b["settle_samples"],
                                   average_samples=b["average_samples"], noise_white_v=b["twin_noise_white_v"],
                                   noise_1f_v=b["twin_noise_1f_v"], adc_bits=b["twin_adc_bits"],
                                   ai_max_abs_v=b["ai_max_abs_v"], rc_time_s=b["twin_rc_time_s"],
                                   max_slew_v_per_s=b["max_slew_v_per_s"], seed=seed, retries=b["retries"],
                                   device=b["daq_device"])
        from labtrain.kinds.dnpu.chip import DNPUChip

        return DNPUChip(model, layout, read_noise_a=b["read_noise_a"], rate_hz=b["rate_hz"],
                        average_samples=b["average_samples"], seed=seed)
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: {exc} "
                          "(pip install 'labtrain[hardware]')") from None
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r}: instrument not reachable: "
                          f"{str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ConfigError(f"{src}: [backend] {str(exc).splitlines()[0]}") from None


BUILDER = ChipBuilder(_task, _no_network, build_dnpu_chip, {"hge": hge_rule}, gradcheck=hge_gradcheck)
