"""Ideal DNPU chip: a DNPU physics model (synthetic or surrogate) called directly.

A dopant-network processing unit has activation electrodes -- data inputs and
control electrodes -- and one output whose current is read through a
transimpedance amplifier (docs/algorithms.md, section 6).  As a :class:`Chip`:

* inputs are the data-electrode voltages ``(B, n_data)`` in volts (each must lie
  inside its electrode's range);
* the trainable parameters are the control-electrode voltages
  (``ParameterSpec("control_voltage", "V", ...)``, clipped into each control's
  range by :meth:`DNPUChip.set_parameters`);
* the output is the amplifier's output voltage ``clip(I) * gain_ohm`` (B, 1):
  what a DAQ reads; :attr:`DNPUMeasurement.output_current_a` gives the current.

``measure`` reads a settled DC level (``average_samples`` samples averaged,
white read noise of ``read_noise_a`` RMS on every sample).  ``measure_ac``
works in the time domain exactly as the bench does: for every example it
synthesises ``settle_samples + plan.window_samples`` samples of every electrode
(DC level + tones), evaluates the model at **every** sample, clips, adds the
read noise, and demodulates the sampled output with
:func:`labtrain.physics.demod.demodulate`.  There is no small-signal shortcut.

The same API is implemented by the instrument-backed
``labtrain.kinds.dnpu.bench.InstrumentDNPUChip``, so protocols run
unchanged on either.
"""

from __future__ import annotations

import abc

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from labtrain.physics.demod import FrequencyPlan, demodulate
from labtrain.kinds.dnpu.layout import DNPULayout, DNPUModel, default_layout
from labtrain.chip.base import (AC_TONES, REFERENCE_GRADIENT, ACMeasurement, CapabilityError, Chip, Measurement,
                                ParameterSpec, Tone)
from labtrain.protocols.homodyne import dnpu_exact_gradient

__all__ = ["DNPUChip", "DNPUControls", "DNPUMeasurement", "DNPU", "check_tones", "tone_electrode_waveforms"]

DNPU = "dnpu"  #: the chip is a DNPU: control-electrode voltages are its parameters, one output current


@dataclass
class DNPUMeasurement(Measurement):
    """A batch measurement of a DNPU.

    Attributes (besides :class:`~labtrain.chip.base.Measurement`'s)
    ----------
    output_v : ndarray, shape (B, 1)
        Amplifier output voltage, ``clip(I_out) * gain_ohm`` (plus read noise).
    gain_ohm : float
        Transimpedance gain used to convert (V per A).
    """

    gain_ohm: float = 1.0

    @property
    def output_current_a(self) -> np.ndarray:
        """Output current (B, 1) in amperes (clipped by the amplifier)."""
        return self.output_v / self.gain_ohm


def check_tones(tones: Sequence[Tone], plan: FrequencyPlan, n_data: int, n_controls: int) -> None:
    """Raise a one-line error for a tone set a DNPU cannot drive on ``plan``.

    Every tone must be on a data ("input") or control electrode that exists and
    fit a whole number of periods in the plan's window.
    """
    for i, tone in enumerate(tones):
        if tone.terminal == "output_current":
            raise CapabilityError(f"tone {i}: a DNPU cannot inject current into its output (terminal "
                                  f"'output_current'); use 'input' or 'control'")
        n = n_data if tone.terminal == "input" else n_controls
        if not 0 <= tone.index < n:
            raise ValueError(f"tone {i}: {tone.terminal} index {tone.index} out of range 0..{n - 1}")
        periods = tone.frequency_hz * plan.window_samples / plan.rate_hz
        if abs(periods - round(periods)) > 1e-6 * max(periods, 1.0):
            raise ValueError(f"tone {i}: {tone.frequency_hz} Hz is not a whole number of periods in the plan's "
                             f"{plan.window_s:g} s window (grid {plan.resolution_hz:g} Hz)")


def tone_electrode_waveforms(layout: DNPULayout, data_v: np.ndarray, control_v: np.ndarray,
                             tones: Sequence[Tone], rate_hz: float, n_samples: int) -> np.ndarray:
    """Electrode waveforms ``(B, n_samples, n_electrodes)``: DC levels plus tones, range-checked.

    Parameters
    ----------
    layout : DNPULayout
    data_v : ndarray, shape (B, n_data)
        DC level of every data electrode.
    control_v : ndarray, shape (n_controls,)
        DC level of every control electrode.
    tones : sequence of Tone
        Terminals ``"input"`` (data electrode ``index``) or ``"control"``; amplitude in volts.
    rate_hz : float
    n_samples : int

    Raises
    ------
    ValueError
        If DC level +- the summed tone amplitudes leaves an electrode's range
        (checked before anything is synthesised or applied).
    """
    data_v = np.asarray(data_v, float)
    b = data_v.shape[0]
    dc = layout.electrode_voltages(data_v, np.broadcast_to(np.asarray(control_v, float),
                                                           (b, len(layout.control_electrodes))))
    n_el = layout.n_electrodes
    amp = np.zeros((b, len(tones)))
    which = np.zeros(len(tones), int)
    for i, tone in enumerate(tones):
        group = layout.data_electrodes if tone.terminal == "input" else layout.control_electrodes
        which[i] = group[tone.index]
        a = np.broadcast_to(np.asarray(tone.amplitude, float), (b,))
        if not np.all(np.isfinite(a)):
            raise ValueError(f"tone {i}: amplitude must be finite")
        amp[:, i] = a
    # worst-case excursion of every electrode: sum of |amplitude| of its tones
    excursion = np.zeros((b, n_el))
    np.add.at(excursion.T, which, np.abs(amp).T)
    lo, hi = np.asarray(layout.low_v), np.asarray(layout.high_v)
    bad = (dc - excursion < lo - 1e-12) | (dc + excursion > hi + 1e-12)
    if np.any(bad):
        ex, el = np.argwhere(bad)[0]
        raise ValueError(f"electrode {layout.names[el]} (example {ex}): DC {dc[ex, el]:+.4f} V +- tone amplitude "
                         f"{excursion[ex, el]:.4f} V leaves its range [{lo[el]}, {hi[el]}] V")
    t = np.arange(int(n_samples)) / rate_hz
    freqs = np.array([tone.frequency_hz for tone in tones], float)
    sines = np.sin(2 * np.pi * np.outer(t, freqs))            # (n, T)
    wave = np.broadcast_to(dc[:, None, :], (b, int(n_samples), n_el)).copy()
    if len(tones):
        # (B, n, T) * scatter onto electrodes: mix[T, n_el] one-hot
        mix = np.zeros((len(tones), n_el))
        mix[np.arange(len(tones)), which] = 1.0
        wave += np.einsum("nt,bt,te->bne", sines, amp, mix)
    return wave


class DNPUControls(abc.ABC):
    """Control-voltage parameters and data-electrode checks shared by the ideal :class:`DNPUChip` and the
    instrument-backed ``InstrumentDNPUChip`` (list it before :class:`Chip` in the bases).

    The chip sets ``self.layout`` and calls :meth:`_init_controls` at the end of its ``__init__``.
    """

    layout: DNPULayout
    _spec: ParameterSpec
    _v: np.ndarray
    #: the device model behind the chip (ideal: its model; twin: the simulated device), for exact gradients
    reference_model: DNPUModel | None = None

    @abc.abstractmethod
    def acquire_electrodes(self, electrode_v: np.ndarray) -> np.ndarray:
        """Drive arbitrary electrode waveforms ``(n_electrodes, n_samples)``; the output current (A) per sample."""

    def max_step_v(self) -> np.ndarray:
        """Largest change per sample allowed on every electrode at ``rate_hz`` (inf: no limit)."""
        return np.full(self.layout.n_electrodes, np.inf)

    def parameter_labels(self) -> list[str]:
        """The control electrodes' names (``e0``, ``e3``, ...)."""
        return [self.layout.names[k] for k in self.layout.control_electrodes]

    def attach_reference_model(self, model: DNPUModel) -> None:
        """Declare the noise-free device model behind this chip; with an analytic Jacobian
        (``jacobian_a``) the chip gains capability ``reference_gradient``."""
        self.reference_model = model
        if hasattr(model, "jacobian_a"):
            self.capabilities = frozenset(self.capabilities) | {REFERENCE_GRADIENT}

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dV_control`` of the reference model (its analytic Jacobian chained with dC/dI)."""
        if self.reference_model is None or REFERENCE_GRADIENT not in self.capabilities:
            raise CapabilityError(f"the {self.backend} DNPU chip has no reference model with an analytic Jacobian")
        control = self.get_parameters() if parameters is None else np.asarray(parameters, float)
        ideal = DNPUChip(self.reference_model, self.layout, control, rate_hz=self.rate_hz)
        return dnpu_exact_gradient(ideal, inputs, targets)

    def _init_controls(self, control_v: np.ndarray | None) -> None:
        """Parameter spec from the layout's control ranges; start at ``control_v`` (default: mid-range)."""
        lay = self.layout
        self._spec = ParameterSpec("control_voltage", "V", lay.control_low_v, lay.control_high_v)
        init = 0.5 * (lay.control_low_v + lay.control_high_v) if control_v is None else control_v
        self._v = np.empty(len(lay.control_electrodes))
        self.set_parameters(init)

    # ---------------------------------------------------------------- shape
    @property
    def n_inputs(self) -> int:
        return len(self.layout.data_electrodes)

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def parameter_spec(self) -> ParameterSpec:
        return self._spec

    # ----------------------------------------------------------- parameters
    def get_parameters(self) -> np.ndarray:
        return self._v.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        """Clip control voltages into their ranges (an instrument applies them with its next acquisition)."""
        self._v = self._spec.validated(values, "control voltages")
        return self._v.copy()

    # ----------------------------------------------------------- inputs
    def _check_dc_request(self, inputs: np.ndarray, nudge: Any, edge_drops: bool) -> np.ndarray:
        """The inputs of a DC ``measure``, checked by the chip's ``_check_inputs``; a nudge or edge drops (a DNPU
        has neither) are refused first."""
        if nudge is not None:
            raise CapabilityError("a DNPU has no output nudge (no current injection or clamp at its output)")
        if edge_drops:
            raise CapabilityError("a DNPU has no edge-drop readout")
        return self._check_inputs(inputs)

    def _check_data_range(self, x: np.ndarray, note: str = "") -> None:
        """Raise a one-line ``ValueError`` (ending in ``note``) if any input ``x`` (B, n_data) leaves its
        data electrode's range."""
        data = list(self.layout.data_electrodes)
        lo, hi = np.asarray(self.layout.low_v)[data], np.asarray(self.layout.high_v)[data]
        bad = (x < lo - 1e-12) | (x > hi + 1e-12)
        if np.any(bad):
            b, k = np.argwhere(bad)[0]
            raise ValueError(f"input {k} (electrode {self.layout.names[data[k]]}), example {b}: {x[b, k]:+.4f} V "
                             f"outside its range [{lo[k]}, {hi[k]}] V{note}")


class DNPUChip(DNPUControls, Chip):
    """A DNPU physics model as a chip (ideal backend).

    Parameters
    ----------
    model : DNPUModel
        Output current from electrode voltages (e.g.
        :class:`labtrain.kinds.dnpu.model.HoppingDNPU` or a fitted
        ``SurrogateDNPU``).
    layout : DNPULayout, optional
        Electrode roles, ranges, gain and clipping (default: :func:`default_layout`).
    control_v : ndarray, optional
        Initial control voltages (default: the middle of each control's range).
    read_noise_a : float
        White read noise, amperes RMS per sample, added to every sample of the output current.
    rate_hz : float
        Sample clock (AC plans must use it).
    average_samples : int
        Samples averaged per example by :meth:`measure` (its noise is
        ``read_noise_a / sqrt(average_samples)``).
    settle_samples : int
        Samples a DC reading waits before averaging (counted in ``acquisition_s`` only;
        the ideal device settles instantly).
    seed : int, optional
        Seed of the read-noise generator.
    """

    backend = "ideal"
    capabilities = frozenset({AC_TONES, DNPU})

    def __init__(self, model: DNPUModel, layout: DNPULayout | None = None, control_v: np.ndarray | None = None, *,
                 read_noise_a: float = 0.0, rate_hz: float = 10_000.0, average_samples: int = 1,
                 settle_samples: int = 0, seed: int | None = None) -> None:
        self.layout = default_layout() if layout is None else layout
        if getattr(model, "n_electrodes", None) != self.layout.n_electrodes:
            raise ValueError(f"model has {getattr(model, 'n_electrodes', None)} electrodes, layout "
                             f"{self.layout.n_electrodes}")
        if not read_noise_a >= 0:
            raise ValueError(f"read_noise_a must be >= 0 A, got {read_noise_a}")
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if int(average_samples) < 1 or int(settle_samples) < 0:
            raise ValueError(f"average_samples must be >= 1 and settle_samples >= 0, got {average_samples}, "
                             f"{settle_samples}")
        self.model = model
        self.read_noise_a = float(read_noise_a)
        self.rate_hz = float(rate_hz)
        self.average_samples = int(average_samples)
        self.settle_samples = int(settle_samples)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._init_controls(control_v)
        self.attach_reference_model(model)

    # ----------------------------------------------------------- parameters
    def reseed(self, seed: int | list[int]) -> None:
        """Reset the read-noise generator (the run loop does this per step, for exact resumes)."""
        self.rng = np.random.default_rng(seed)

    def acquire_electrodes(self, electrode_v: np.ndarray) -> np.ndarray:
        """The model's output current (A) for electrode waveforms ``(n_electrodes, n_samples)``, clipped by the
        amplifier, plus read noise."""
        wave = np.asarray(electrode_v, float)
        if wave.ndim != 2 or wave.shape[0] != self.layout.n_electrodes:
            raise ValueError(f"electrode_v must have shape ({self.layout.n_electrodes}, n_samples), got {wave.shape}")
        current = self.layout.clip(np.asarray(self.model.current_a(wave.T), float))
        if self.read_noise_a:
            current = current + self.rng.normal(0.0, self.read_noise_a, current.shape)
        return current

    # ----------------------------------------------------------- measuring
    def _check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        x = np.asarray(inputs, float)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must have shape (B, {self.n_inputs}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("DNPU inputs must be finite")
        self._check_data_range(x)
        return x

    def _noise(self, shape: tuple[int, ...]) -> np.ndarray | float:
        if self.read_noise_a == 0.0:
            return 0.0
        return self.rng.normal(0.0, self.read_noise_a, size=shape)

    def measure(self, inputs: np.ndarray, nudge: Any = None, edge_drops: bool = False) -> DNPUMeasurement:
        """Settled DC output of every example: ``(B, 1)`` volts at the amplifier output."""
        x = self._check_dc_request(inputs, nudge, edge_drops)
        current = self.layout.clip(self.model.current_a(self.layout.electrode_voltages(x, self._v)))
        n = self.average_samples
        if self.read_noise_a:
            current = current + self.rng.normal(0.0, self.read_noise_a, size=(len(x), n)).mean(axis=1)
        acq = len(x) * (self.settle_samples + n) / self.rate_hz
        return DNPUMeasurement(current[:, None] * self.layout.gain_ohm, gain_ohm=self.layout.gain_ohm,
                               acquisition_s=acq)

    def measure_ac(self, inputs: np.ndarray, tones: Sequence[Tone], plan: FrequencyPlan, *, settle_samples: int = 0,
                   edge_drops: bool = False) -> ACMeasurement:
        """Drive DC ``inputs`` and the controls plus ``tones``; sample, evaluate the model per sample, demodulate.

        Returns an :class:`ACMeasurement` whose ``output`` is in volts at the
        amplifier output, ``in_phase`` of shape ``(B, 1, n_tones)`` at
        ``plan.tones_hz``; ``waveforms`` holds the sampled output ``(B, 1, n_samples)``.
        """
        if edge_drops:
            raise CapabilityError("a DNPU has no edge-drop readout")
        if abs(plan.rate_hz - self.rate_hz) > 1e-9 * self.rate_hz:
            raise ValueError(f"plan rate_hz {plan.rate_hz} differs from the chip's sample clock {self.rate_hz} Hz")
        if int(settle_samples) < 0:
            raise ValueError(f"settle_samples must be >= 0, got {settle_samples}")
        x = self._check_inputs(inputs)
        check_tones(tones, plan, self.n_inputs, len(self._v))
        n = int(settle_samples) + plan.window_samples
        wave = tone_electrode_waveforms(self.layout, x, self._v, tones, self.rate_hz, n)   # (B, n, n_el)
        guess = None
        if hasattr(self.model, "internal_v"):
            # warm start: every sample's Newton solve starts from the example's DC operating point
            guess = self.model.internal_v(self.layout.electrode_voltages(x, self._v))[:, None, :]
            current = self.model.current_a(wave, guess=guess)
        else:
            current = self.model.current_a(wave)
        current = self.layout.clip(current)
        current = current + self._noise(current.shape)
        out_v = (current * self.layout.gain_ohm)[:, None, :]                               # (B, 1, n)
        demod = demodulate(out_v, plan.rate_hz, plan.tones_hz, settle_samples=int(settle_samples),
                           window_samples=plan.window_samples)
        return ACMeasurement(demod, plan, None, len(x) * n / self.rate_hz, out_v)

    # ----------------------------------------------------- exact reference
    def output_jacobian(self, inputs: np.ndarray) -> np.ndarray:
        """Exact ``d output_v / d control_v`` (B, 1, n_controls) of the noise-free model (clipping included).

        Needs a model with an analytic Jacobian (``jacobian_a``); for tests and
        gradient-fidelity checks, never used by a learning protocol.
        """
        jac = getattr(self.model, "jacobian_a", None)
        if jac is None:
            raise CapabilityError(f"model {type(self.model).__name__} has no analytic Jacobian")
        x = self._check_inputs(inputs)
        ev = self.layout.electrode_voltages(x, self._v)
        current, d = jac(ev)                                             # (B,), (B, n_el)
        inside = (np.abs(current) < self.layout.clip_a)[:, None]
        d = np.where(inside, d, 0.0)[:, list(self.layout.control_electrodes)]
        return (d * self.layout.gain_ohm)[:, None, :]

    # ------------------------------------------------------------ records
    def safe_state(self) -> None:
        """Nothing to ramp on an ideal chip."""

    def snapshot(self) -> dict:
        model_snap = self.model.snapshot() if hasattr(self.model, "snapshot") else {"model": type(self.model).__name__}
        return {
            "backend": self.backend,
            "chip": "DNPU",
            "layout": self.layout.to_dict(),
            "model": model_snap,
            "control_v": self._v.tolist(),
            "read_noise_a": self.read_noise_a,
            "rate_hz": self.rate_hz,
            "average_samples": self.average_samples,
            "settle_samples": self.settle_samples,
            "seed": self.seed,
            "parameter": {"name": "control_voltage", "unit": "V"},
            "capabilities": sorted(self.capabilities),
        }
