"""Tones on a network chip's terminals: validation and waveform synthesis for ``measure_ac``.

A network chip (linear resistor network, ideal or on instruments) takes
:class:`~labtrain.chip.base.Tone` objects on two kinds of terminal: an input's
voltage (``"input"``; amperes on a current-driven ideal chip) and a current
injected into an output node (``"output_current"``).  :func:`network_tone_drive`
checks a tone set against a chip and a
:class:`~labtrain.physics.demod.FrequencyPlan` (one-line ``ValueError`` naming the
tone) and turns it into per-example amplitude tables; :func:`synthesise`
samples ``DC + sum of tones`` with time counted from the first sample of each
example's window (so every tone starts at phase 0 and each window starts at
its DC level).  :func:`concat_demodulated` joins demodulated blocks of
examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from labtrain.physics.demod import Demodulated, FrequencyPlan, tone_waveforms
from labtrain.chip.base import Tone

__all__ = ["NetworkToneDrive", "network_tone_drive", "synthesise", "concat_demodulated", "check_ac_request",
           "edge_demodulated"]


@dataclass
class NetworkToneDrive:
    """Amplitude tables of a tone set, per example.

    Attributes
    ----------
    frequencies_hz : ndarray, shape (n_f,)
        Distinct tone frequencies.
    input_amplitude : ndarray, shape (B, n_inputs, n_f)
        Peak amplitude of each input's tone at each frequency (V, or A for current inputs).
    output_current_a : ndarray, shape (B, n_outputs, n_f)
        Peak current injected into each output node at each frequency.
    """

    frequencies_hz: np.ndarray
    input_amplitude: np.ndarray
    output_current_a: np.ndarray

    @property
    def injects_current(self) -> bool:
        """Whether any output-current tone has a non-zero amplitude."""
        return bool(np.any(self.output_current_a != 0))


def check_ac_request(inputs: np.ndarray, n_inputs: int, plan: FrequencyPlan, rate_hz: float,
                     settle_samples: int) -> np.ndarray:
    """Validate the common arguments of a network chip's ``measure_ac``; returns inputs as (B, n_inputs)."""
    x = np.atleast_2d(np.asarray(inputs, float))
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ValueError(f"measure_ac: expected inputs of shape (B, {n_inputs}), got {np.shape(inputs)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("measure_ac: inputs must be finite")
    if not isinstance(plan, FrequencyPlan):
        raise ValueError(f"measure_ac: plan must be a labtrain.physics.demod.FrequencyPlan, got {type(plan).__name__}")
    if abs(plan.rate_hz - rate_hz) > 1e-9 * rate_hz:
        raise ValueError(f"measure_ac: plan sample clock {plan.rate_hz:g} Hz differs from the chip's {rate_hz:g} Hz")
    if isinstance(settle_samples, bool) or int(settle_samples) != settle_samples or settle_samples < 0:
        raise ValueError(f"measure_ac: settle_samples must be an integer >= 0, got {settle_samples!r}")
    return x


def network_tone_drive(tones: Sequence[Tone], plan: FrequencyPlan, n_examples: int, n_inputs: int,
                       n_outputs: int) -> NetworkToneDrive:
    """Check ``tones`` against a network chip and ``plan``; tabulate their amplitudes per example.

    Every tone must be on an existing input or output (``"control"`` tones are
    refused), be a whole number of periods in the plan's window (else the
    demodulated tones would leak into each other) and have a finite amplitude,
    a scalar or one per example.  Two tones on the same terminal and frequency add.
    """
    tones = list(tones)
    freqs = sorted({float(t.frequency_hz) for t in tones if isinstance(t, Tone)})
    col = {f: k for k, f in enumerate(freqs)}
    amp_in = np.zeros((n_examples, n_inputs, len(freqs)))
    amp_out = np.zeros((n_examples, n_outputs, len(freqs)))
    for i, tone in enumerate(tones):
        if not isinstance(tone, Tone):
            raise ValueError(f"tone {i}: expected a labtrain.chip.Tone, got {type(tone).__name__}")
        if tone.terminal == "control":
            raise ValueError(f"tone {i}: a resistor-network chip has no control electrodes "
                             f"(terminals: 'input', 'output_current')")
        size = n_inputs if tone.terminal == "input" else n_outputs
        if isinstance(tone.index, bool) or int(tone.index) != tone.index or not 0 <= tone.index < size:
            raise ValueError(f"tone {i}: {tone.terminal} index {tone.index!r} out of range 0..{size - 1}")
        periods = tone.frequency_hz * plan.window_samples / plan.rate_hz
        if abs(periods - round(periods)) > 1e-6 * max(1.0, periods):
            raise ValueError(f"tone {i}: {tone.frequency_hz:g} Hz is not on the window grid ({plan.resolution_hz:g} Hz "
                             f"steps: {plan.window_samples} samples at {plan.rate_hz:g} Hz)")
        a = np.asarray(tone.amplitude, float)
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != n_examples):
            raise ValueError(f"tone {i}: amplitude must be a scalar or one per example ({n_examples}), "
                             f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"tone {i}: amplitude must be finite")
        table = amp_in if tone.terminal == "input" else amp_out
        table[:, int(tone.index), col[float(tone.frequency_hz)]] += a
    return NetworkToneDrive(np.asarray(freqs, float), amp_in, amp_out)


def synthesise(dc: np.ndarray, amplitude: np.ndarray, frequencies_hz: np.ndarray, rate_hz: float,
               n_samples: int) -> np.ndarray:
    """``dc + sum_f a_f sin(2 pi f t)``, ``t = k / rate_hz`` from each window's first sample.

    ``dc`` (B, n_ch), ``amplitude`` (B, n_ch, n_f); returns (B, n_ch, n_samples).
    """
    dc = np.asarray(dc, float)
    if len(frequencies_hz) == 0:
        return np.repeat(dc[:, :, None], n_samples, axis=2)
    return dc[:, :, None] + tone_waveforms(frequencies_hz, amplitude, rate_hz, n_samples)


def concat_demodulated(parts: Sequence[Demodulated]) -> Demodulated:
    """Join demodulated blocks of examples along the first axis."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return Demodulated(np.concatenate([p.in_phase for p in parts]), np.concatenate([p.quadrature for p in parts]),
                       np.concatenate([p.dc for p in parts]), first.frequencies_hz, first.window_samples)


def edge_demodulated(nodes: Demodulated, edges: np.ndarray) -> Demodulated:
    """Demodulated edge drops ``v_tail - v_head`` from demodulated node voltages ``(B, n_nodes, n_tones)``.

    The lock-in is linear, so demodulating each node's samples and taking
    differences gives exactly (to rounding) what demodulating the sampled
    drops would, at a fraction of the work on networks with more edges than nodes.
    """
    tail, head = edges[:, 0], edges[:, 1]
    return Demodulated(nodes.in_phase[:, tail] - nodes.in_phase[:, head],
                       nodes.quadrature[:, tail] - nodes.quadrature[:, head],
                       nodes.dc[:, tail] - nodes.dc[:, head], nodes.frequencies_hz, nodes.window_samples)
