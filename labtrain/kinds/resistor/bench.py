"""InstrumentChip: a resistor-network chip on the bench (or its twin), seen through instrument ports.

The same class runs the ``twin`` backend (simulated DAQ and pots) and the
``hardware`` backend (nidaqmx DAQ, pot bridge): everything above the ports is
shared, so a dry run on the twin exercises exactly the code that will touch
the chip.  What every DAQ-and-pot bench does the same way -- DC plateaus and
phases (free, clamp, current), AC windows, retries, the safety layer's value
checks, pot writes, the safe state -- is :class:`~labtrain.kinds.dac_bench.chip.DACBenchChip`'s.

This bench joins consecutive examples by ramps at the safety layer's slew
limit *inside* each plateau's (or window's) settling samples: a jump whose
ramp does not fit is a ``ValueError`` before anything is written.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from labtrain.chip.base import ParameterSpec
from labtrain.instruments.ports import DAQ, PotArray
from labtrain.kinds.dac_bench.chip import AcquisitionSettings, DACBenchChip, PortErrorMismatch
from labtrain.kinds.resistor.model import LinearResistorNetwork
from labtrain.kinds.resistor.wiring import Wiring
from labtrain.physics.network import Network
from labtrain.protocols.analytic import adjoint_gradient

__all__ = ["InstrumentChip", "AcquisitionSettings", "PortErrorMismatch"]


class InstrumentChip(DACBenchChip):
    """Resistor-network chip driven through a DAQ and a potentiometer array.
    Parameters
    ----------
    network : Network
        Topology, terminals and the conductance bounds the experiment allows.
    wiring : Wiring
        Which node / edge is on which channel.
    daq : DAQ
        The data-acquisition port, already wrapped by the safety layer
        (:class:`~labtrain.instruments.safety.SafeDAQ`; a bare port is refused).
    pots : PotArray
        The potentiometer port (one rheostat per edge), already wrapped by the safety layer
        (:class:`~labtrain.instruments.safety.SafePotArray`; a bare port is refused).
    settings : AcquisitionSettings
        Sample clock, plateau, retries.
    conductance_s : ndarray, optional
        Initial conductances (default: geometric mean of the bounds).
    backend : str
        ``"twin"`` or ``"hardware"`` (for records and messages).
    on_fault : callable, optional
        Called with a one-line description of every retried fault (logging).
    """

    def __init__(self, network: Network, wiring: Wiring, daq: DAQ, pots: PotArray,
                 settings: AcquisitionSettings | None = None, conductance_s: np.ndarray | None = None, *,
                 backend: str = "twin", on_fault: Callable[[str], None] | None = None) -> None:
        wiring.check(network)
        self._attach(network, wiring, daq, pots, settings, backend, on_fault)
        quantizer, self._tap_lo, self._tap_hi = self._pot_window(np.arange(network.n_edges))
        self._spec = ParameterSpec("conductance", "S", quantizer.to_conductance(self._tap_hi),
                                   quantizer.to_conductance(self._tap_lo), quantizer)
        self._taps = np.zeros(network.n_edges, np.int64)
        self._g = np.zeros(network.n_edges)
        self._model: LinearResistorNetwork | None = None
        init = np.sqrt(self._spec.lower * self._spec.upper) if conductance_s is None else conductance_s
        self.set_parameters(init)

    # ------------------------------------------------------- parameters
    def get_parameters(self) -> np.ndarray:
        return self._g.copy()

    def set_parameters(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        if values.shape != (self.network.n_edges,):
            raise ValueError(f"expected {self.network.n_edges} conductances, got shape {values.shape}")
        bad = ~np.isfinite(values) | ~(values > 0)
        if np.any(bad):
            e = int(np.flatnonzero(bad)[0])
            raise ValueError(f"set_parameters: conductance of edge {e} is {float(values[e])!r} S; conductances must be "
                             f"finite and > 0 (allowed range [{self._spec.lower[e]:.6g}, {self._spec.upper[e]:.6g}] "
                             f"S after clipping); nothing was written")
        q = self._spec.quantizer
        taps = np.clip(q.to_taps(values), self._tap_lo, self._tap_hi)
        self._write_taps(taps)
        return self._g.copy()

    def reference_gradient(self, inputs: np.ndarray, targets: np.ndarray,
                           parameters: np.ndarray | None = None) -> np.ndarray:
        """Exact ``dC/dg`` of the nominal network model (what a gradient estimate on the bench is judged by)."""
        model = self.network_model() if parameters is None else LinearResistorNetwork(
            self.network, self.network.clip(np.asarray(parameters, float)), "voltage")
        return adjoint_gradient(model, inputs, model.steady_state(inputs).output_v - targets)

    def network_model(self) -> LinearResistorNetwork:
        """The network at the conductances the chip believes it holds (nominal pot calibration)."""
        if self._model is None:
            self._model = LinearResistorNetwork(self.network, self._g, "voltage")
        return self._model

    # -------------------------------------------------------- measuring
    def _acquire_plateaus(self, levels_v: np.ndarray, switches_closed: bool) -> tuple[np.ndarray, float]:
        """One plateau per example, the jumps between plateaus ramped inside the settling samples."""
        s = self.settings
        n_b = levels_v.shape[1]
        p = s.plateau_samples
        if self._pots_dirty:
            self._write_taps(self._taps)
        ao_v = self._slew_shaped(np.repeat(levels_v, p, axis=1), n_b)
        ai, duration = self._write_read(ao_v, switches_closed, s.settle_samples, p)
        windows = ai.reshape(ai.shape[0], n_b, p)[:, :, s.settle_samples:]
        return windows.mean(axis=2).T, duration

    def _acquire_windows(self, ao: np.ndarray, switches_closed: bool, settle_samples: int,
                         extra: dict | None = None) -> tuple[np.ndarray, float]:
        """The windows joined by ramps inside their settling samples (:meth:`_ramp_windows`)."""
        n_ch, n_b, n_s = ao.shape
        ao = self._ramp_windows(ao, settle_samples)
        if self._pots_dirty:
            self._write_taps(self._taps)
        ai, duration = self._write_read(ao.reshape(n_ch, n_b * n_s), switches_closed, settle_samples, n_s, extra)
        return ai.reshape(ai.shape[0], n_b, n_s).transpose(1, 0, 2), duration

    def _write_read(self, ao_v: np.ndarray, switches_closed: bool, settle_samples: int, plateau_samples: int,
                    extra: dict | None = None) -> tuple[np.ndarray, float]:
        """One acquisition of the AO waveform ``ao_v`` (n_ao, n) with the output switches open or closed.

        Returns the AI samples (n_read, n) and the acquisition's duration; keeps
        the waveforms for a scope view (``last_waveforms``).
        """
        ai, acq = self._switched_write_read(ao_v, switches_closed)
        self._keep_waveforms(self.wiring.ao_channels(), ao_v, ai, settle_samples, plateau_samples, extra)
        self._check_ai(ai, ao_v.shape[1])
        return ai, self._count(acq)

    def _slew_shaped(self, ao_v: np.ndarray, n_b: int) -> np.ndarray:
        """Replace the jumps between plateaus by ramps at the safety layer's slew limit.

        The ramps must end inside each plateau's settling samples, else the
        averaging window would see them: that is a settings error, raised
        before anything is written.
        """
        if n_b < 2:
            return ao_v
        s = self.settings
        channels = self.wiring.ao_channels()
        step = np.asarray(self.daq.max_step_v(channels, s.rate_hz), float)
        levels = ao_v[:, ::s.plateau_samples]
        jumps = np.abs(np.diff(levels, axis=1)).max(axis=1)
        need = int(np.ceil(np.max(jumps / step) - 1e-9))
        if need > s.settle_samples:
            c = int(np.argmax(jumps / step))
            raise ValueError(f"{channels[c]} jumps {jumps[c]:.3g} V between examples; at the slew limit "
                             f"({step[c] * s.rate_hz:.3g} V/s) that ramp takes {need} samples, more than "
                             f"settle_samples = {s.settle_samples}: raise settle_samples or max_slew_v_per_s")
        # Vectorised form of safety.rate_limit for plateau waveforms: the ramp into plateau k starts
        # from plateau k-1's level and fits inside the settling window (checked above).
        n_ch, p = ao_v.shape[0], s.plateau_samples
        prev = np.concatenate([levels[:, :1], levels[:, :-1]], axis=1)           # (n_ch, B)
        gap = levels - prev
        moved = np.minimum(np.abs(gap)[:, :, None], step[:, None, None] * np.arange(1, p + 1)[None, None, :])
        return (prev[:, :, None] + np.sign(gap)[:, :, None] * moved).reshape(n_ch, n_b * p)

    def _ramp_windows(self, ao: np.ndarray, settle: int) -> np.ndarray:
        """Join consecutive example windows (ao: n_ao x B x n_s) by linear ramps at the slew limit.

        The first ``r`` samples of every window after the first become a ramp
        from the previous window's last sample to the window's own sample
        ``r`` (``r`` the fewest samples, common to all windows, that keep every
        step within the limit); ``r`` must not exceed ``settle``.
        """
        n_ch, n_b, n_s = ao.shape
        if n_b < 2:
            return ao
        channels = self.wiring.ao_channels()
        step = np.asarray(self.daq.max_step_v(channels, self.rate_hz), float)[:, None]       # (n_ch, 1)
        prev = ao[:, :-1, -1]                                                                 # (n_ch, B-1)
        reach = min(settle, n_s - 1)
        # |target(r) - prev| <= (r + 1) step for every channel and window, r = 0..reach
        gap = np.abs(ao[:, 1:, :reach + 1] - prev[:, :, None]) / step[:, :, None]          # (n_ch, B-1, reach+1)
        ok = np.all(gap <= np.arange(1, reach + 2)[None, None, :] * (1 + 1e-12), axis=(0, 1))
        if not ok.any():
            worst = np.unravel_index(np.argmax(gap[:, :, -1]), gap.shape[:2])
            need = int(np.ceil(gap[worst[0], worst[1], -1])) - 1
            jump_v = gap[worst[0], worst[1], -1] * step[worst[0], 0]
            raise ValueError(f"measure_ac: {channels[worst[0]]} jumps {jump_v:.3g} V "
                             f"between examples; at the slew limit ({step[worst[0], 0] * self.rate_hz:.3g} V/s) that "
                             f"ramp takes more than settle_samples = {settle} samples (about {need}): raise "
                             f"settle_samples or max_slew_v_per_s")
        r = int(np.argmax(ok))
        if r == 0:
            return ao
        out = ao.copy()
        target = ao[:, 1:, r]
        frac = np.arange(1, r + 1) / (r + 1)
        out[:, 1:, :r] = prev[:, :, None] + (target - prev)[:, :, None] * frac[None, None, :]
        return out

    def snapshot(self) -> dict:
        return {
            "backend": self.backend,
            "chip": "linear resistor network on instruments",
            "network": self.network.describe(),
            "wiring": self.wiring.to_dict(),
            "acquisition": self.settings.describe(),
            "daq": self.daq.snapshot(),
            "pots": self.pots.snapshot(),
            "parameter": {"name": "conductance", "unit": "S", "lower_s": self._spec.lower.tolist(),
                          "upper_s": self._spec.upper.tolist()},
            "capabilities": sorted(self.capabilities),
        }
