"""``labtrain selftest`` on a DNPU bench: every electrode ramped and seen at the amplifier, then the lock-in.

What it does, within the file's electrode ranges and through the same chip, safety layer and retries as a run
(:class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip` over :class:`~labtrain.instruments.safety.SafeDAQ`
and :class:`~labtrain.instruments.safety.SafeLockIn`), on the twin or the hardware:

1. **Instruments**: every instrument's identity (queries only); on hardware, a lock-in that cannot be opened is
   named and the DAQ checks still run without it.
2. **Electrodes -> amplifier (continuity, noise, offset)**: one acquisition; the electrodes sit at the operating
   point a run starts from (data electrodes at 0 V, controls mid-range) and each in turn ramps
   ``op -> op + f (high - op) -> op - f (op - low) -> op`` (``f = ramp_fraction``, four legs of ``leg_s``, inside
   the slew limit).  Per electrode: the output swing over its ramp (``response``) from a cubic fit of output vs
   electrode voltage, the small-signal slope at the operating point, the noise (from the second differences of
   the output: the slow ramp's own curvature drops out).  A response below
   ``min_snr`` x the noise, or below ``dead_fraction`` of the model's, is "no response": the electrode (its AO,
   its wire) is dead.  Where the device model is the device (the twin; a surrogate fitted to this chip), the
   swing is also compared with the model's (``gain``).  The amplifier's AI row: noise at the operating point,
   the offset from the model there, and "dead" when no electrode moves it.
3. **Lock-in** (a bench with one): the control electrode that moved the output most gets a test tone
   (``tone_amplitude_v`` peak, a frequency on the plan's grid); the same tone is demodulated twice -- in software
   from the DAQ's samples and by the lock-in through its relay (``measure_ac`` with ``demodulator = "software"``
   and ``"lockin"``) -- and the lock-in's amplitude and phase are compared with the DAQ's
   (``lockin_amplitude_tol``, ``lockin_phase_tol_deg``).  A lock-in that does not answer is named (exit 3).

Every exit path ends with the chip's safe state (sine out parked at its minimum and routed nowhere, electrodes
ramped to 0 V, relays open), read back into the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labtrain.chip.base import Tone
from labtrain.config import ConfigError, Experiment
from labtrain.instruments.bench_file import BenchError, has_role
from labtrain.instruments.ports import PortError
from labtrain.instruments.retry import call_with_retries
from labtrain.instruments.safety import SafetyError
from labtrain.instruments.selftest import (CheckTable, Column, InstrumentUnreachable, SelfTestReport, Thresholds,
                                           complex_ratio, scale_factor, triangle_segments)
from labtrain.kinds import source_of
from labtrain.kinds.common import with_install_hint
from labtrain.kinds.dnpu.bench import InstrumentDNPUChip
from labtrain.kinds.dnpu.builder import build_dnpu_chip, dnpu_layout, dnpu_model
from labtrain.kinds.dnpu.hardware import build_dnpu_hardware
from labtrain.kinds.dnpu.layout import DNPULayout
from labtrain.kinds.dnpu.twin import DNPUBenchCircuit
from labtrain.physics.demod import FrequencyPlan

__all__ = ["dnpu_selftest", "DNPUBenchSelfTest"]

ELECTRODE_COLUMNS = (Column("operating_point_v", "V", "at"), Column("low_v", "V", "ramp low"),
                     Column("high_v", "V", "ramp high"), Column("response_v", "V", "response"),
                     Column("response_expected_v", "V", "expected"), Column("gain", "1", "gain"),
                     Column("slope", "1", "slope (V/V)"), Column("noise_v", "V", "noise"))
OUTPUT_COLUMNS = (Column("level_v", "V", "reading"), Column("level_expected_v", "V", "expected"),
                  Column("offset_v", "V", "offset"), Column("noise_v", "V", "noise"))
LOCKIN_COLUMNS = (Column("frequency_hz", "Hz", "tone"), Column("tone_v", "V", "tone peak"),
                  Column("amplitude_v", "V", "lock-in"), Column("amplitude_expected_v", "V", "DAQ"),
                  Column("amplitude_ratio", "1", "ratio"), Column("phase_deg", "deg", "phase"),
                  Column("phase_expected_deg", "deg", "DAQ phase"))
#: demodulation window of the lock-in test tone (s) and the tone's target frequency (Hz, moved onto the grid)
TONE_WINDOW_S = 0.1
TONE_TARGET_HZ = 137.0


class DNPUBenchSelfTest:
    """The procedure on an opened DNPU bench chip (see the module docstring).

    Parameters
    ----------
    chip : InstrumentDNPUChip
        The chip over its safety-wrapped ports (twin or hardware).
    thresholds : Thresholds
        Pass/fail limits.
    model : object, optional
        The device model to compare with (``current_a`` of electrode voltages), or ``None`` where no model
        describes this device (a synthetic model on hardware).
    model_name : str
        What the model is, for the report.
    """

    def __init__(self, chip: InstrumentDNPUChip, thresholds: Thresholds, model: Any = None,
                 model_name: str = "") -> None:
        self.chip, self.th, self.model, self.model_name = chip, thresholds, model, model_name
        self.layout: DNPULayout = chip.layout
        lay = self.layout
        self.operating_point_v = lay.electrode_voltages(np.zeros((1, len(lay.data_electrodes))),
                                                        chip.get_parameters())[0]
        lo, hi = np.asarray(lay.low_v, float), np.asarray(lay.high_v, float)
        f = thresholds.ramp_fraction
        self.ramp_v = np.stack([f * (lo - self.operating_point_v), f * (hi - self.operating_point_v)], axis=1)
        self.circuit = None if model is None else DNPUBenchCircuit(model, lay, electrode_ao=chip.electrode_ao,
                                                                   output_ai=chip.output_ai, inverting=chip.inverting)
        self.fault_log: list[str] = []

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        return call_with_retries(what, fn, args, retries=self.chip.retries, wait_s=self.chip.retry_wait_s,
                                 fault_log=self.fault_log)

    def _expected_output_v(self, electrode_v: np.ndarray) -> np.ndarray:
        """The model's amplifier output in the chip's convention (``+gain * I``), per sample."""
        assert self.circuit is not None
        return self.layout.gain_ohm * self.circuit.output_current_a(electrode_v)

    # ----------------------------------------------------------------- step 2
    def electrodes(self, el_table: CheckTable, out_table: CheckTable) -> np.ndarray:
        """Ramp every electrode in turn around the operating point; fill both tables.  Returns each electrode's
        slope at the operating point (V at the output per V on the electrode; ``nan`` where it failed)."""
        th, chip, lay = self.th, self.chip, self.layout
        rate = chip.rate_hz
        step = chip.max_step_v()
        peak = np.max(np.abs(self.ramp_v), axis=1)
        leg = int(max(np.ceil(th.leg_s * rate), np.max(np.ceil(2 * peak / step)), 8))
        gap = max(chip.settle_samples, 20)
        offsets, which = triangle_segments(self.ramp_v, leg, gap)
        wave = self.operating_point_v[:, None] + offsets
        out_v = chip.acquire_electrodes(wave) * lay.gain_ohm                    # +gain * I, volts
        expected = self._expected_output_v(wave) if self.circuit is not None else None
        n_el = lay.n_electrodes
        seg_len = gap + 4 * leg
        hold = np.concatenate([np.arange(k * seg_len + gap // 2, k * seg_len + gap) for k in range(n_el)])
        level = float(np.mean(out_v[hold]))
        hold_noise = float(np.std(out_v[hold]))
        responses, slopes = np.zeros(n_el), np.full(n_el, np.nan)
        results = []
        for k in range(n_el):
            seg = which == k
            x = wave[k, seg] - self.operating_point_v[k]
            y = out_v[seg]
            coef = np.polyfit(x, y, 3)
            fitted = np.polyval(coef, x)
            # white noise from second differences (var = 6 sigma^2): the slow, nonlinear response drops out,
            # where a cubic's residual would count the device's curvature as noise
            noise = float(np.std(np.diff(y, 2)) / np.sqrt(6))
            response = float(np.ptp(fitted))
            slope = float(np.polyval(np.polyder(coef), 0.0))
            exp_resp = gain = np.nan
            if expected is not None:
                e = expected[seg]
                exp_resp = float(np.ptp(np.polyval(np.polyfit(x, e, 3), x)))
                gain = scale_factor(y - y.mean(), e - e.mean())
            responses[k], slopes[k] = response, slope
            results.append((k, response, exp_resp, gain, slope, noise))
        floor = th.min_snr * max(hold_noise, 1e-12)
        alive = [k for k, r, e, *_ in results if r >= floor and not (np.isfinite(e) and r < th.dead_fraction * e)]
        for k, response, exp_resp, gain, slope, noise in results:
            notes, status = [], "pass"
            role = f"electrode {lay.names[k] if lay.names else k} (" + (
                "data" if k in lay.data_electrodes else "control") + ")"
            if np.isfinite(exp_resp) and exp_resp < floor:
                status, notes = "skip", ["the model expects no response above the noise here"]
            elif k not in alive:
                status = "fail"
                notes.append(f"no response at the output (swing {response:.3g} V, noise {hold_noise:.2g} V): "
                             "the electrode's AO or wire is dead, or the amplifier is" if not alive else
                             f"no response at the output (swing {response:.3g} V, noise {hold_noise:.2g} V): the "
                             "electrode's AO or wire is dead")
            elif np.isfinite(gain) and abs(gain - 1) > th.model_gain_tol:
                status = "fail"
                notes.append(f"response {gain:.3g} x the model's ({self.model_name}; limit 1 +- "
                             f"{th.model_gain_tol:g})")
            if noise > th.noise_max_v:
                status = "fail"
                notes.append(f"noise {noise:.3g} V above {th.noise_max_v:g} V")
            if status == "pass" and self.circuit is None:
                notes.append("continuity only: no model of this device")
            el_table.add(chip.electrode_ao[k], role, status, "; ".join(notes),
                         operating_point_v=self.operating_point_v[k],
                         low_v=self.operating_point_v[k] + self.ramp_v[k, 0],
                         high_v=self.operating_point_v[k] + self.ramp_v[k, 1], response_v=response,
                         response_expected_v=exp_resp, gain=gain, slope=slope, noise_v=noise)
        dead = [chip.electrode_ao[k] for k in range(n_el) if alive and k not in alive]
        if dead:   # a dead electrode sits at 0 V, not at the operating point: the others' model comparison is off
            hint = f"{', '.join(dead)} dead: the operating point differs from the model's; re-run after fixing it"
            for row in el_table.rows:
                if row.status == "fail" and not row.note.startswith("no response"):
                    row.note = f"{row.note}; {hint}"
        # the amplifier's AI channel
        level_expected = float(np.mean(expected[hold])) if expected is not None else np.nan
        offset = level - level_expected if expected is not None else np.nan
        notes, status = [], "pass"
        if not alive:
            status = "fail"
            notes.append(f"dead: no electrode moves it (largest swing {np.max(responses):.3g} V, noise "
                         f"{hold_noise:.2g} V)")
        if np.isfinite(offset) and abs(offset) > max(th.offset_max_v, th.model_gain_tol * abs(level_expected)):
            status = "fail"
            notes.append(f"reads {level:.4g} V at the operating point, the model {level_expected:.4g} V")
        if hold_noise > th.noise_max_v:
            status = "fail"
            notes.append(f"noise {hold_noise:.3g} V above {th.noise_max_v:g} V")
        if dead and status == "fail" and alive:
            notes.append(f"{', '.join(dead)} dead: the operating point differs from the model's")
        out_table.add(chip.output_ai, "amplifier output (+gain x I)", status, "; ".join(notes), level_v=level,
                      level_expected_v=level_expected, offset_v=offset, noise_v=hold_noise)
        return np.where([k in alive for k in range(n_el)], slopes, np.nan)

    # ----------------------------------------------------------------- step 3
    def lockin(self, table: CheckTable, slopes: np.ndarray, name: str) -> None:
        """Test tone demodulated by the DAQ (software) and by the lock-in; fill ``table``."""
        th, chip, lay = self.th, self.chip, self.layout
        lockin = chip.lockin
        assert lockin is not None
        controls = list(lay.control_electrodes)
        usable = [i for i, k in enumerate(controls) if np.isfinite(slopes[k])]
        try:
            self._call("read lock-in", lockin.read_xy)       # a query: the sine out is parked, routed nowhere
        except PortError as exc:
            table.add(name, "lock-in", "unreachable", f"does not answer: {exc}")
            return
        if not usable:
            table.add(name, "lock-in", "skip", "no control electrode moved the output: no tone to read")
            return
        i = max(usable, key=lambda i: abs(slopes[controls[i]]))
        k = controls[i]
        n = int(round(TONE_WINDOW_S * chip.rate_hz))
        bins = max(1, int(round(TONE_TARGET_HZ * n / chip.rate_hz)))
        plan = FrequencyPlan(chip.rate_hz, n, (bins,))
        freq = float(plan.tones_hz[0])
        lo_rms, hi_rms = float(lockin.min_amplitude_v), float(lockin.max_amplitude_v)
        amp = float(np.clip(th.tone_amplitude_v, np.sqrt(2) * lo_rms * (1 + 1e-6), np.sqrt(2) * hi_rms))
        tone = Tone("control", i, freq, amp)
        x = np.zeros((1, len(lay.data_electrodes)))
        role = f"{amp:g} V at {freq:g} Hz on {chip.electrode_ao[k]} ({lay.names[k] if lay.names else k})"
        sw = chip.measure_ac(x, [tone], plan, settle_samples=chip.settle_samples, demodulator="software")
        z_daq = complex(sw.output.in_phase[0, 0, 0], sw.output.quadrature[0, 0, 0])
        try:
            li = chip.measure_ac(x, [tone], plan, demodulator="lockin")
        except PortError as exc:
            # the lock-in's settings are plain port calls: whoever failed, the DAQ is asked whether it answers
            try:
                chip.daq.identify()
            except PortError:
                raise exc from None
            table.add(name, role, "unreachable", f"does not answer: {exc}")
            return
        z_li = complex(li.output.in_phase[0, 0, 0], li.output.quadrature[0, 0, 0])
        ratio, phase = complex_ratio(z_li, z_daq)
        values = {"frequency_hz": freq, "tone_v": amp, "amplitude_v": abs(z_li), "amplitude_expected_v": abs(z_daq),
                  "amplitude_ratio": ratio, "phase_deg": float(np.degrees(np.angle(z_li))),
                  "phase_expected_deg": float(np.degrees(np.angle(z_daq)))}
        notes, status = [], "pass"
        if abs(z_daq) < th.min_snr * th.noise_max_v / np.sqrt(n):
            status, notes = "skip", ["the tone's response is below the DAQ's noise floor"]
        else:
            if not abs(ratio - 1) <= th.lockin_amplitude_tol:
                status = "fail"
                notes.append(f"amplitude {ratio:.3g} x the DAQ's (limit 1 +- {th.lockin_amplitude_tol:g}): gain, "
                             "sensitivity or routing")
            if not abs(phase) <= th.lockin_phase_tol_deg:
                status = "fail"
                notes.append(f"phase {phase:+.1f} deg from the DAQ's (limit +- {th.lockin_phase_tol_deg:g} deg): "
                             "reference, relay or coupling")
        table.add(name, role, status, "; ".join(notes), **values)


# ---------------------------------------------------------------------------------------------------- entry point
def _without_lockin(instruments: dict) -> dict:
    return {n: e for n, e in (instruments or {}).items() if e.get("port") != "lockin"}


def _open_hardware(exp: Experiment, layout: DNPULayout) -> tuple[InstrumentDNPUChip, str | None]:
    """The hardware chip; a lock-in that cannot be opened is left out and its error returned."""
    b = exp["backend"]
    kwargs = dict(rate_hz=b["rate_hz"], settle_samples=b["settle_samples"], average_samples=b["average_samples"],
                  max_slew_v_per_s=b["max_slew_v_per_s"], ai_max_abs_v=b["ai_max_abs_v"], retries=b["retries"])
    try:
        return build_dnpu_hardware(b["daq_device"], layout, instruments=exp["instruments"], **kwargs), None
    except (PortError, OSError) as exc:
        if not has_role(exp["instruments"], "lockin"):
            raise
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    chip = build_dnpu_hardware(b["daq_device"], layout, instruments=_without_lockin(exp["instruments"]), **kwargs)
    return chip, first


def dnpu_selftest(exp: Experiment, options: dict) -> SelfTestReport:
    """``labtrain selftest`` for ``[chip] type = "dnpu"`` on twin or hardware.

    ``options``: ``thresholds`` (:class:`~labtrain.instruments.selftest.Thresholds`), ``twin_faults`` (twin
    only: ``dead_ai``, ``dead_ao``, ``no_lockin``).  Raises :class:`~labtrain.config.ConfigError` for bad input
    (before anything is applied) and :class:`~labtrain.instruments.selftest.InstrumentUnreachable` when the DAQ
    cannot be opened.
    """
    src, b = source_of(exp), exp["backend"]
    th = options.get("thresholds") or Thresholds()
    faults = dict(options.get("twin_faults") or {})
    if b["kind"] not in ("twin", "hardware"):
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r}: selftest needs a bench (twin or hardware)")
    if faults and b["kind"] != "twin":
        raise ConfigError(f"{src}: --twin-fault applies to the twin only (backend {b['kind']!r})")
    if "stuck_pot" in faults:
        raise ConfigError(f"{src}: --twin-fault stuck_pot: a dnpu bench has no pots")
    if "swap_ai" in faults:
        raise ConfigError(f"{src}: --twin-fault swap_ai: a dnpu bench reads one AI channel (the amplifier)")
    with_lockin = has_role(exp["instruments"], "lockin")
    if "no_lockin" in faults and not with_lockin:
        raise ConfigError(f"{src}: --twin-fault no_lockin: the file's bench has no lock-in ([instruments.<name>] "
                          "with a lock-in driver)")
    layout = dnpu_layout(exp)
    lockin_error = None
    try:
        if b["kind"] == "twin":
            chip = build_dnpu_chip(exp, None, None)
            model, model_name = dnpu_model(exp, layout), f"the twin's {exp['chip']['model']} model"
        else:
            chip, lockin_error = _open_hardware(exp, layout)
            surrogate = exp["chip"]["model"] == "surrogate"
            model = dnpu_model(exp, layout) if surrogate else None
            model_name = f"surrogate {exp['chip']['surrogate_path']}" if surrogate else ""
    except BenchError as exc:
        raise ConfigError(f"{src}: [{exc.section}] {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{with_install_hint(exc)}") from None
    except (PortError, OSError) as exc:
        raise InstrumentUnreachable(f"{src}: instrument not reachable: {str(exc).splitlines()[0]}") from None
    except SafetyError as exc:
        raise ConfigError(f"{src}: [backend] {exc}") from None
    daq_raw = chip.daq.wrapped
    names = {e.get("port"): n for n, e in (exp["instruments"] or {}).items()}
    lockin_name = names.get("lockin", "lockin")
    try:
        dead_ai, dead_ao = faults.get("dead_ai", []), faults.get("dead_ao", [])
        for c in dead_ai:
            if c != chip.output_ai:
                raise ConfigError(f"{src}: --twin-fault dead_ai={c}: the bench reads {chip.output_ai} only")
        for c in dead_ao:
            if c not in chip.electrode_ao:
                raise ConfigError(f"{src}: --twin-fault dead_ao={c}: not an electrode AO "
                                  f"({', '.join(chip.electrode_ao)})")
        if dead_ai or dead_ao:
            daq_raw.set_wiring_faults(dead_ai=dead_ai, dead_ao=dead_ao)
        if "no_lockin" in faults:
            chip.lockin.wrapped.inject_faults(10 ** 9, "timeout")       # the lock-in never answers a reading
        test = DNPUBenchSelfTest(chip, th, model, model_name)
    except BaseException:
        chip.close()
        raise
    settings = {"rate_hz": chip.rate_hz, "ramp_fraction": th.ramp_fraction, "leg_s": th.leg_s,
                "operating_point_v": test.operating_point_v.round(6).tolist(),
                "model": model_name or "none (continuity only)"}
    report = SelfTestReport(src, exp["chip"]["type"], b["kind"], settings, th, twin_faults=faults)
    inst = CheckTable("instruments", "instruments (identity queries only)", ())
    report.tables.append(inst)
    step = "identify"
    try:
        for role, port in (("daq", chip.daq), ("lockin", chip.lockin)):
            if port is None:
                continue
            try:
                inst.add(names.get(role, role), role, "pass", str(port.identify()))
            except PortError as exc:
                inst.add(names.get(role, role), role, "unreachable", f"does not answer: {exc}")
        if lockin_error is not None:
            inst.add(lockin_name, "lockin", "unreachable", f"could not be opened: {lockin_error}")
        if any(r.status == "unreachable" and r.role == "daq" for r in inst.rows):
            return report
        el = CheckTable("electrodes", "electrodes: each ramped around the operating point in turn; the amplifier "
                                      "output's swing (cubic fit), slope at the operating point, noise",
                        ELECTRODE_COLUMNS)
        out = CheckTable("output", "amplifier AI channel: reading and noise at the operating point", OUTPUT_COLUMNS)
        report.tables += [el, out]
        step = "electrode ramps"
        slopes = test.electrodes(el, out)
        if chip.lockin is not None:
            li = CheckTable("lockin", "lock-in: a test tone on one control electrode, demodulated by the lock-in "
                                      "and by the DAQ (software)", LOCKIN_COLUMNS)
            report.tables.append(li)
            step = "lock-in tone"
            test.lockin(li, slopes, lockin_name)
    except PortError as exc:
        inst.mark(names.get("daq", "daq"), "daq", "unreachable", f"stopped answering ({step}): {exc}")
    finally:
        report.safe_state = _finish(chip)
    return report


def _finish(chip: InstrumentDNPUChip) -> str:
    """The chip's safe state, read back, close: one line saying what the bench holds (or what failed)."""
    parts, errors = [], []
    try:
        chip.safe_state()
    except Exception as exc:  # noqa: BLE001 -- reported; the safety layer's exit hook tries again
        errors.append(f"{type(exc).__name__}: {exc}")
    errors += [line for line in chip.fault_log if line.startswith("safe state")]
    try:
        daq = chip.daq
        off = {c: v for c, v in daq.dc_levels_v().items() if c in daq.limits
               and not abs(v - daq.limits[c].safe_level_v) <= 1e-9}
        parts.append("electrodes at their safe levels (0 V)" if not off else
                     "electrodes NOT at their safe levels: " + ", ".join(f"{c} {v:g} V" for c, v in off.items()))
        on = [line for line, state in daq.digital_states().items() if state]
        parts.append("relays open" if not on else "relays still closed: " + ", ".join(on))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"DAQ read back: {type(exc).__name__}: {exc}")
    if chip.lockin is not None:
        try:
            amp = float(chip.lockin.amplitude_v)
            parts.append(f"lock-in sine out at {amp:g} V RMS" + (" (its minimum)" if amp <= chip.lockin.safe_amplitude_v
                                                                 + 1e-12 else " (NOT its minimum)"))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"lock-in read back: {type(exc).__name__}: {exc}")
    chip.close()
    text = "; ".join(parts)
    if errors:
        text = (text + "; " if text else "") + "safe state NOT confirmed: " + "; ".join(errors)
    return text
