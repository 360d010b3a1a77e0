"""Physics of a DNPU on the bench: the circuit behind the DAQ twin, and the assembled twin.

:class:`DNPUBenchCircuit` is a *circuit* for
:class:`~labtrain.simulators.daq_twin.SimulatedDAQ` (duck-typed: ``ao_channels``,
``ai_channels``, ``do_lines``, ``ai_voltages(ao_v, do_states)``)::

    AO electrode_ao[k] ──────────── activation electrode k       (ideal voltage source)
    output electrode ──► TIA (virtual ground, feedback gain_ohm) ──► AI output_ai

The output current ``I`` (positive = flowing *out of* the device into the
amplifier's virtual-ground input, the convention of
:class:`~labtrain.kinds.dnpu.layout.DNPUModel`) is turned into a voltage by a
transimpedance amplifier.  Sign convention: the bench amplifier is
**inverting** by default (``inverting=True``), the usual op-amp TIA:
``V_ai = -gain_ohm * I``; the chip (:class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip`)
is told the same and reports ``output_v = +gain_ohm * I`` like the ideal chip.
The amplifier saturates at ``+-gain_ohm * clip_a`` (``DNPULayout.clip``).  All
samples of an acquisition are evaluated at once with one call of
``model.current_a`` (quasi-static: the device and amplifier are fast next to
the sample clock; the DAQ twin's ``rc_time_s`` adds a first-order response).

:func:`build_dnpu_twin` wires model, circuit, :class:`SimulatedDAQ`, the
safety layer (per-electrode ranges as AO limits, the layout's abort level as
the outer bound, a slew limit) and optionally a :class:`SimulatedLockIn` whose
sine out is routed onto one electrode at a time (:class:`TwinLockInRouter`),
and returns an :class:`~labtrain.kinds.dnpu.bench.InstrumentDNPUChip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from labtrain.kinds.dnpu.layout import DNPULayout, DNPUModel, default_electrode_ao, default_layout
from labtrain.simulators import next_event
from labtrain.simulators.lockin_twin import SimulatedLockIn

__all__ = ["DNPUBenchCircuit", "TwinLockInRouter", "RouteChange", "ACCoupledSimulatedLockIn", "DEFAULT_OUTPUT_AI"]

#: AI channel of the amplifier output in the default wiring
DEFAULT_OUTPUT_AI = "Dev1/ai0"





class DNPUBenchCircuit:
    """AO electrode voltages -> transimpedance-amplifier output voltage of a DNPU.

    Parameters
    ----------
    model : DNPUModel
        The device physics (``current_a`` of electrode voltages, amperes).
    layout : DNPULayout, optional
        Electrode roles, ranges, gain and clipping (default :func:`default_layout`).
    electrode_ao : sequence of str, optional
        AO channel of every activation electrode, layout order (default ``Dev1/ao0..``).
    output_ai : str
        AI channel reading the amplifier output.
    inverting : bool
        ``True``: ``V_ai = -gain_ohm * I`` (inverting TIA); ``False``: ``+gain_ohm * I``.
    warm_start_stride : int
        For models with an iterative solver (``internal_v(v)`` and ``current_a(v, guess=...)``, e.g.
        :class:`~labtrain.kinds.dnpu.model.HoppingDNPU`): solve every ``stride``-th sample first and start
        the others from the interpolated internal state (1: no warm start).  Same currents, less time.
    """

    do_lines: tuple[str, ...] = ()

    def __init__(self, model: DNPUModel, layout: DNPULayout | None = None, *,
                 electrode_ao: Sequence[str] | None = None, output_ai: str = DEFAULT_OUTPUT_AI,
                 inverting: bool = True, warm_start_stride: int = 20) -> None:
        self.layout = default_layout() if layout is None else layout
        n = self.layout.n_electrodes
        if int(getattr(model, "n_electrodes", n)) != n:
            raise ValueError(f"model has {model.n_electrodes} electrodes, layout has {n}")
        self.model = model
        self.ao_channels = default_electrode_ao(n) if electrode_ao is None else tuple(electrode_ao)
        if len(self.ao_channels) != n or len(set(self.ao_channels)) != n:
            raise ValueError(f"electrode_ao must name {n} distinct AO channels, got {list(self.ao_channels)}")
        self.ai_channels = (str(output_ai),)
        self.inverting = bool(inverting)
        if int(warm_start_stride) != warm_start_stride or warm_start_stride < 1:
            raise ValueError(f"warm_start_stride must be an integer >= 1, got {warm_start_stride!r}")
        self.warm_start_stride = int(warm_start_stride)
        self.n_evaluations = 0

    @property
    def sign(self) -> float:
        """``V_ai / (gain_ohm * I)``: -1 for an inverting amplifier."""
        return -1.0 if self.inverting else 1.0

    def output_current_a(self, ao_v: np.ndarray) -> np.ndarray:
        """Clipped output current (amperes), shape (n_samples,), for electrode voltages (n_electrodes, n_samples)."""
        ao_v = np.asarray(ao_v, float)
        if ao_v.ndim != 2 or ao_v.shape[0] != len(self.ao_channels):
            raise ValueError(f"ao_v must have shape ({len(self.ao_channels)}, n_samples), got {ao_v.shape}")
        self.n_evaluations += 1
        v = ao_v.T
        stride = self.warm_start_stride
        if stride > 1 and hasattr(self.model, "internal_v") and len(v) > 2 * stride:
            # consecutive samples are close: solve a decimated grid first and start every sample's solve from
            # the interpolated internal state (same answer, fewer Newton iterations)
            idx = np.unique(np.r_[np.arange(0, len(v), stride), len(v) - 1])
            coarse = np.asarray(self.model.internal_v(v[idx]), float)
            j = np.arange(len(v))
            lo = np.clip(np.searchsorted(idx, j, side="right") - 1, 0, len(idx) - 2)
            w = ((j - idx[lo]) / (idx[lo + 1] - idx[lo]))[:, None]
            guess = (1 - w) * coarse[lo] + w * coarse[lo + 1]
            current = self.model.current_a(v, guess=guess)
        else:
            current = self.model.current_a(v)
        return self.layout.clip(np.asarray(current, float))

    def ai_voltages(self, ao_v: np.ndarray, do_states: Mapping[str, bool]) -> np.ndarray:
        """Amplifier output, shape (1, n_samples), for AO levels (n_electrodes, n_samples)."""
        return (self.sign * self.layout.gain_ohm * self.output_current_a(ao_v))[None, :]

    def snapshot(self) -> dict:
        snap = getattr(self.model, "snapshot", None)
        return {"kind": type(self).__name__, "model": snap() if callable(snap) else type(self.model).__name__,
                "layout": self.layout.to_dict(), "electrode_ao": list(self.ao_channels),
                "output_ai": self.ai_channels[0], "inverting": self.inverting}


class ACCoupledSimulatedLockIn(SimulatedLockIn):
    """A :class:`SimulatedLockIn` with its input AC-coupled (SR830 "AC" coupling, 0.16 Hz corner).

    A DNPU's amplifier output carries volts of DC next to millivolt tone
    responses; a DC-coupled twin lock-in would need many more time constants
    to forget the DC times the reference (its filter starts in the steady
    state of the *mean* product, and the DC x reference term decays from
    there).  For tones far above the coupling corner, AC coupling removes the
    mean of the synthesised window (a whole number of reference periods),
    which is what this twin does.
    """

    def _input(self, t: np.ndarray) -> np.ndarray:
        s = super()._input(t)
        return s - s.mean()


@dataclass(frozen=True, slots=True)
class RouteChange:
    """The sine out was routed onto AO ``channel`` (``None``: onto none) at twin time ``t_s``; ``seq`` orders it
    among every twin's records (:func:`labtrain.simulators.next_event`)."""

    seq: int
    t_s: float
    channel: str | None


class TwinLockInRouter:
    """Route a :class:`~labtrain.simulators.lockin_twin.SimulatedLockIn`'s sine out onto one electrode's AO.

    The twin of a relay box that connects the lock-in's sine out to the
    summing input of one electrode's driver: ``router(channel)`` sums the sine
    onto AO ``channel`` (``None``: onto nothing).  The lock-in always reads
    ``input_channel`` (the amplifier output).  Every routing is kept in
    :attr:`record` (at most ``max_records``; then :attr:`record_truncated`), so
    that with the DAQ twin's history and the lock-in's ``amplitude_record`` a
    test can replay what each electrode saw: its DC level plus the sine routed
    onto it.
    """

    def __init__(self, lockin: Any, daq: Any, input_channel: str, max_records: int = 1_000_000) -> None:
        self.lockin, self.daq, self.input_channel = lockin, daq, input_channel
        self.channel: str | None = None
        self.record: list[RouteChange] = []
        self.max_records = int(max_records)
        self.record_truncated = False
        lockin.attach(daq, input_channel, None)

    def __call__(self, channel: str | None) -> None:
        self.lockin.attach(self.daq, self.input_channel, channel)
        self.channel = channel
        if len(self.record) >= self.max_records:
            self.record_truncated = True
        elif not self.record_truncated:
            self.record.append(RouteChange(next_event(), float(self.daq.simulated_time_s), channel))
