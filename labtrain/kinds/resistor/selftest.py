"""``labtrain selftest`` on a resistor-network bench: loopback/continuity of every channel, then every pot.

What it does, within the file's limits and through the same safety layer as a run
(:class:`~labtrain.instruments.safety.SafeDAQ`, :class:`~labtrain.instruments.safety.SafePotArray`,
the run's retries), on the twin or the hardware:

1. **Instruments**: every instrument's identity (queries only).
2. **Pots to the file's starting point**: the taps of ``[chip] g_init`` (what a run starts from), read back.
3. **AO -> AI (loopback, continuity, gain, offset, noise)**: two acquisitions, output switches open and
   closed; in each, every AO channel in turn ramps ``0 -> +A -> -A -> 0`` (``A = ramp_fraction x max_abs_v``,
   four legs of ``leg_s``, inside the slew limit) while the others hold 0 V.  A least-squares fit per AI
   channel gives its slope against every AO (the node's transfer coefficients), its offset and the residual
   RMS (the noise floor).  The slopes are compared with the nominal network model at the pots' taps
   (:class:`~labtrain.kinds.resistor.twin.ResistorBenchCircuit` over the datasheet calibration):

   * an AO channel whose response is missing on every node (median ratio ~ 0) is dead; its gain is read on the
     AI channel of the node it drives (a true loopback, ``loopback_gain_tol``) where that channel passed, else
     against the model; an output AO that responds with its switch open, or not with it closed, names its
     switch;
   * an AI channel on a driven node is a true loopback (gain 1 within ``loopback_gain_tol``); elsewhere the
     gain and the shape of the slope vector are judged against the model (``model_gain_tol``, raised to
     1.5 x the pots' declared tolerance);
   * an AI channel with no response where one is expected is dead; one whose slopes are another node's is
     miswired -- two such channels reading each other's node are named as a swapped pair (the measured
     slope vectors are matched to the model's per-node vectors by a Hungarian assignment); two nodes whose
     responses agree within the model tolerance cannot be told apart;
   * offset (``offset_max_v``) and noise (``noise_max_v``) per AI channel.

4. **Pots**: every pot is stepped up and down from its starting tap -- towards the ends of its allowed window
   (the ``[chip]`` conductance bounds) but by at most ``1 / R_eff`` (the resistance the rest of the network
   presents across the edge: beyond it the nodes barely move more) -- and back; at each tap one acquisition
   holds every input AO alone at ``+A`` in turn (switches open).  The change of the node voltages (AI channels that passed step 3) is compared with the
   model's: the ratio gives, through the edge's effective resistance (Sherman-Morrison: a conductance step
   ``dg`` moves the nodes by ``dg / (1 + dg R_eff)`` times a fixed vector), the conductance step measured
   through the network.  No change is a stuck pot; a change that looks like another edge's names that edge;
   a readback other than the tap written is named too.  A step the wiring cannot see (an edge between two
   driven nodes, a change below ``min_snr`` x the noise) is skipped.

Every exit path -- success, a failed check, an instrument that stops answering, an exception, Ctrl-C -- ends
with the safe state (AO ramped to 0 V, switches open, pots at their safe taps), read back into the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from labtrain.config import ConfigError, Experiment
from labtrain.instruments.bench_file import BenchError
from labtrain.instruments.ports import PortError, PotCalibration
from labtrain.instruments.retry import call_with_retries
from labtrain.instruments.safety import SafeDAQ, SafePotArray, SafetyError, rate_limit
from labtrain.instruments.selftest import (CheckTable, Column, InstrumentUnreachable, SelfTestReport, Thresholds,
                                           best_matches, fit_linear, row_misfit, scale_factor, triangle_segments)
from labtrain.kinds import source_of
from labtrain.kinds.common import build_network, build_task, initial_conductances, with_install_hint
from labtrain.kinds.resistor.hardware import (acquisition_settings, build_wiring, open_resistor_bench,
                                              safety_config)
from labtrain.kinds.resistor.twin import ResistorBenchCircuit
from labtrain.kinds.resistor.wiring import Wiring, WiringError
from labtrain.physics.network import Network

__all__ = ["resistor_selftest", "ResistorBenchSelfTest"]

AO_COLUMNS = (Column("gain", "1", "gain"), Column("gain_expected", "1", "expected", printed=False),
              Column("switch_leak", "1", "leak (switch open)"),
              Column("amplitude_v", "V", "ramp"))
AI_COLUMNS = (Column("gain", "1", "gain"), Column("misfit", "1", "misfit"),
              Column("offset_v", "V", "offset"), Column("noise_v", "V", "noise"),
              Column("matched_node", "1", "matches node", fmt=".0f"))
POT_COLUMNS = (Column("tap_start", "1", "tap", fmt=".0f"),
               Column("tap_up", "1", "tap up", fmt=".0f"), Column("response_up", "1", "response"),
               Column("step_up_s", "S", "dg"), Column("step_up_expected_s", "S", "expected"),
               Column("tap_down", "1", "tap down", fmt=".0f"), Column("response_down", "1", "response"),
               Column("step_down_s", "S", "dg"), Column("step_down_expected_s", "S", "expected"),
               Column("r_eff_ohm", "ohm", "R_eff", printed=False))
INSTRUMENT_COLUMNS: tuple[Column, ...] = ()


class _NominalPots:
    """What the chip believes the pots are: the datasheet calibration at the taps written (for the model)."""

    def __init__(self, calibration: PotCalibration, taps: np.ndarray) -> None:
        self.calibration = calibration
        self.n_channels = len(calibration.r_total_ohm)
        self.held_taps = np.asarray(taps, np.int64).copy()

    def true_conductance_s(self, taps: np.ndarray) -> np.ndarray:
        return 1.0 / self.calibration.resistance_ohm(np.asarray(taps))


@dataclass
class _Loopback:
    """Step 3's results that step 4 needs."""

    good_ai: np.ndarray        # bool per AI channel: passed
    good_ao: np.ndarray        # bool per AO channel: passed
    noise_v: np.ndarray        # per AI channel
    amplitude_v: np.ndarray    # per AO channel


class ResistorBenchSelfTest:
    """The procedure on opened, safety-wrapped ports (see the module docstring).

    Parameters
    ----------
    network : Network
        The chip.
    wiring : Wiring
        Its channels.
    daq : SafeDAQ
        The DAQ behind the safety layer.
    pots : SafePotArray
        The pots behind the safety layer.
    rate_hz, settle_samples, average_samples, timeout_s, retries, retry_wait_s
        The file's acquisition settings (the same retries as a run).
    conductance_s : ndarray
        The starting conductances (``[chip] g_init``).
    thresholds : Thresholds
        Pass/fail limits.
    """

    def __init__(self, network: Network, wiring: Wiring, daq: SafeDAQ, pots: SafePotArray, *, rate_hz: float,
                 settle_samples: int, average_samples: int, timeout_s: float, retries: int, retry_wait_s: float,
                 conductance_s: np.ndarray, thresholds: Thresholds) -> None:
        self.net, self.wiring, self.daq, self.pots = network, wiring, daq, pots
        self.rate_hz, self.settle, self.average = float(rate_hz), int(settle_samples), max(int(average_samples), 1)
        self.timeout_s, self.retries, self.retry_wait_s = float(timeout_s), int(retries), float(retry_wait_s)
        self.th = thresholds
        self.fault_log: list[str] = []
        self.ao = wiring.ao_channels()
        self.n_in = len(wiring.input_ao)
        self.channels = np.asarray(wiring.pot_channels, np.int64)
        cal = pots.calibration
        self.calibration = cal
        self.model_tol = max(thresholds.model_gain_tol, 2.0 * float(cal.tolerance))
        self.pot_tol = max(thresholds.pot_step_tol, 3.0 * float(cal.tolerance))
        # tap window of every edge inside the [chip] conductance bounds (lower tap = higher conductance)
        r_min = (cal.r_end_ohm + cal.r_wiper_ohm)[self.channels]
        r_span = cal.r_total_ohm[self.channels]
        n_taps = cal.n_taps
        pos = lambda g: (1.0 / g - r_min) / r_span * (n_taps - 1)  # noqa: E731
        g_hi = np.minimum(network.g_max_s, 1.0 / r_min)
        g_lo = np.maximum(network.g_min_s, 1.0 / (r_min + r_span))
        self.tap_low_r = np.clip(np.ceil(pos(g_hi) - 1e-9), 0, n_taps - 1).astype(np.int64)
        self.tap_high_r = np.clip(np.floor(pos(g_lo) + 1e-9), 0, n_taps - 1).astype(np.int64)
        g0 = np.clip(np.asarray(conductance_s, float), g_lo, g_hi)
        self.start_taps = np.clip(np.rint(pos(g0)), self.tap_low_r, self.tap_high_r).astype(np.int64)
        self.nominal = _NominalPots(cal, np.zeros(pots.n_channels, np.int64))
        self.circuit = ResistorBenchCircuit(network, wiring, self.nominal)
        self.device_taps: np.ndarray | None = None     # read from the pots before the first write
        self.readback_errors: dict[int, str] = {}
        limits = [daq.limits[c] for c in self.ao]
        ai_v = float(max(abs(v) for v in daq.ai_range_v))
        self.amplitude_v = np.array([thresholds.ramp_fraction * min(-lim.min_v, lim.max_v, 0.95 * ai_v)
                                     for lim in limits])
        if np.any(self.amplitude_v <= 0):
            c = self.ao[int(np.argmin(self.amplitude_v))]
            raise SafetyError(f"{c}: its limits leave no room for a ramp around 0 V")
        self.max_step_v = np.asarray(daq.max_step_v(self.ao, self.rate_hz), float)

    # ---------------------------------------------------------------- plumbing
    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return call_with_retries(what, fn, args, retries=self.retries, wait_s=self.retry_wait_s,
                                 fault_log=self.fault_log)

    def _switches(self, closed: bool) -> None:
        if self.wiring.output_switch_do:
            self._call("set output switches", self.daq.set_digital,
                       {line: bool(closed) for line in self.wiring.output_switch_do})

    def _acquire(self, ao_v: np.ndarray, closed: bool) -> np.ndarray:
        """One acquisition with the output switches open or closed (opened again afterwards)."""
        self.daq.check_ao_values(self.ao, ao_v, where="selftest")
        self._switches(closed)
        try:
            acq = self._call("acquire", self.daq.write_read, self.ao, ao_v, self.wiring.node_ai, self.rate_hz,
                             self.timeout_s + ao_v.shape[1] / self.rate_hz)
        finally:
            if closed:
                self._switches(False)
        return np.asarray(acq.ai_v, float)

    def set_taps(self, edge_taps: np.ndarray) -> np.ndarray:
        """Write the edges' taps (other channels keep theirs), in moves of at most ``max_tap_step``; the taps
        read back, per edge.  A readback other than the tap written is remembered per pot channel; channels
        wired to no edge keep what they hold."""
        if self.device_taps is None:
            self.device_taps = np.asarray(self._call("read pot taps", self.pots.get_taps), np.int64).copy()
        target = self.device_taps.copy()
        target[self.channels] = edge_taps
        step = self.pots.max_tap_step
        while True:
            move = target - self.device_taps
            if step is not None:
                move = np.clip(move, -step, step)
            request = self.device_taps + move
            took = np.asarray(self._call("set pot taps", self.pots.set_taps, request), np.int64)
            self.device_taps = request
            if not np.any(target - request):
                break
        self.nominal.held_taps = self.device_taps.copy()
        bad = np.flatnonzero(took != request)
        for c in bad:
            self.readback_errors.setdefault(int(c), f"reads back tap {int(took[c])} after tap {int(request[c])} "
                                                    "was written")
        return took[self.channels]

    # ------------------------------------------------------------- the model
    def expected_transfer(self, closed: bool) -> np.ndarray:
        """Nominal AI slopes per AO volt at the taps written, shape (n_ai, n_ao)."""
        states = {line: closed for line in self.wiring.output_switch_do}
        return np.array(self.circuit.transfer(states))

    def _labels(self) -> list[str]:
        out = []
        for node in self.wiring.read_nodes:
            what = (f"input {self.net.inputs.index(node)}" if node in self.net.inputs else
                    f"output {self.net.outputs.index(node)}" if node in self.net.outputs else
                    "ground" if node in self.net.grounds else "")
            out.append(f"node {node}" + (f" ({what})" if what else ""))
        return out

    # -------------------------------------------------------------- step 3
    def loopback(self, ao_table: CheckTable, ai_table: CheckTable) -> _Loopback:
        """Ramps on every AO, read on every AI, switches open then closed; fills both tables."""
        th = self.th
        leg = int(max(np.ceil(th.leg_s * self.rate_hz), np.max(np.ceil(2 * self.amplitude_v / self.max_step_v)), 8))
        gap = max(self.settle, 10)
        wave, _ = triangle_segments(self.amplitude_v, leg, gap)
        fits, measured, expected = [], [], []
        for closed in (False, True):
            ai = self._acquire(wave, closed)
            fit = fit_linear(wave, ai)
            fits.append(fit)
            measured.append(fit.slope)
            expected.append(self.expected_transfer(closed))
        m = np.hstack(measured)                                         # (n_ai, 2 n_ao)
        e = np.hstack(expected)
        offset = (fits[0].offset_v + fits[1].offset_v) / 2
        noise = np.sqrt((fits[0].noise_v ** 2 + fits[1].noise_v ** 2) / 2)
        n_ai, n_ao = len(self.wiring.node_ai), len(self.ao)
        labels = self._labels()
        tol = self.model_tol
        # -- AO channels first, robustly (median over nodes): a dead AO would spoil every node's slopes
        significant = np.abs(e) > th.dead_fraction * np.max(np.abs(e))
        col_ratio = np.full(2 * n_ao, np.nan)
        for j in range(2 * n_ao):
            rows = significant[:, j]
            if rows.any():
                col_ratio[j] = float(np.median(m[rows, j] / e[rows, j]))
        ao_bad = np.zeros(n_ao, bool)
        for j in range(n_ao):
            r = col_ratio[[j, n_ao + j]]
            r = r[np.isfinite(r)]
            ao_bad[j] = bool(r.size) and bool(np.any(np.abs(r - 1) > 0.5))    # gross: dead, not a pot's doing
        keep = np.r_[~ao_bad, ~ao_bad]
        # -- AI channels on the good AO columns
        mk, ek = m[:, keep], e[:, keep]
        norm_e = np.linalg.norm(ek, axis=1)
        norm_m = np.linalg.norm(mk, axis=1)
        floor = th.dead_fraction * float(np.max(norm_e)) if norm_e.size else 1.0
        misfit = row_misfit(mk, ek, floor)
        match = best_matches(misfit)
        good = np.zeros(n_ai, bool)
        for k, (ch, label) in enumerate(zip(self.wiring.node_ai, labels)):
            notes, status = [], "pass"
            loop = bool(np.any(np.isclose(ek[k], 1.0, atol=1e-6))) and self.wiring.read_nodes[k] in self.net.inputs
            k_tol = th.loopback_gain_tol if loop else tol
            gain = scale_factor(mk[k], ek[k]) if norm_e[k] >= floor else np.nan
            j = int(match[k])
            if norm_e[k] < floor and np.linalg.norm(e[k]) >= floor:
                bad = ", ".join(self.ao[j] for j in np.flatnonzero(ao_bad))
                status, notes = "skip", [f"its node responds only to AO channels that failed ({bad})"]
            elif norm_e[k] < floor:
                if norm_m[k] >= floor:
                    status, notes = "fail", [f"responds (|slope| {norm_m[k]:.3g}) where the model expects none"]
                else:
                    notes = ["no response expected (a ground or isolated node): continuity not testable"]
            elif norm_m[k] < th.dead_fraction * norm_e[k]:
                status, notes = "fail", [f"dead: no response (|slope| {norm_m[k]:.2g}, expected {norm_e[k]:.3g})"]
            elif j != k and (misfit[k, j] + misfit[j, k] < 0.5 * (misfit[k, k] + misfit[j, j]) if match[j] == k
                             else misfit[k, j] < 0.5 * misfit[k, k] and misfit[k, k] > k_tol):
                # the other node's model explains this channel (and, for a pair, that channel) twice as well
                other = self.wiring.node_ai[j]
                if match[j] == k:
                    status, notes = "fail", [f"swapped with {other}: reads node {self.wiring.read_nodes[j]}"]
                else:
                    status, notes = "fail", [f"reads node {self.wiring.read_nodes[j]} (the node of {other})"]
            else:
                if abs(gain - 1) > k_tol:
                    status = "fail"
                    notes.append(f"gain {gain:.4g} outside 1 +- {k_tol:g}" + ("" if loop else " (nominal model)"))
                elif misfit[k, k] > k_tol:
                    status = "fail"
                    notes.append(f"slopes differ from the model by {misfit[k, k]:.2g} (limit {k_tol:g})")
            if abs(offset[k]) > th.offset_max_v:
                status = "fail"
                notes.append(f"offset {offset[k]:.3g} V above {th.offset_max_v:g} V")
            if noise[k] > th.noise_max_v:
                status = "fail"
                notes.append(f"noise {noise[k]:.3g} V above {th.noise_max_v:g} V")
            if status == "pass" and loop:
                notes.insert(0, "loopback")
            good[k] = status == "pass"
            ai_table.add(ch, label, status, "; ".join(notes), gain=gain, misfit=misfit[k, k], offset_v=offset[k],
                         noise_v=noise[k], matched_node=float(self.wiring.read_nodes[j]))
        # -- AO channels on the good AI rows
        rows = good if good.any() else np.ones(n_ai, bool)
        e_open, e_closed = expected
        m_open, m_closed = measured
        for j, ch in enumerate(self.ao):
            is_out = j >= self.n_in
            switch = self.wiring.output_switch_do[j - self.n_in] if is_out else ""
            role = f"output {j - self.n_in} (switch {switch})" if is_out else f"input {j}"
            e_j = e_closed[:, j] if is_out else e_open[:, j]
            m_j = m_closed[:, j] if is_out else m_open[:, j]
            # a direct loopback: a good AI channel on the node this AO holds (an input, a stiffly clamped output)
            loops = np.flatnonzero(rows & (e_j > 0.99))
            if is_out:
                ref = float(np.linalg.norm(e_closed[rows, j]))
                leak = float(np.linalg.norm(m_open[rows, j])) / ref if ref > 0 else np.nan
            else:
                leak = np.nan
            notes, status = [], "pass"
            if loops.size:
                gain, j_tol = float(m_j[loops[0]] / e_j[loops[0]]), th.loopback_gain_tol
                notes.append(f"loopback on {self.wiring.node_ai[loops[0]]}")
            else:
                gain, j_tol = scale_factor(m_j[rows], e_j[rows]), tol
            if ao_bad[j] and abs(col_ratio[n_ao + j if is_out else j]) < th.dead_fraction:
                gain = col_ratio[n_ao + j if is_out else j]
            if not np.isfinite(gain):
                status, notes = "skip", ["no AI channel that passed sees it"]
            elif abs(gain) < th.dead_fraction:
                status = "fail"
                notes = ["no response on any AI channel: the AO is dead or not connected"
                         if not is_out else f"no response with switch {switch} "
                         "closed: the switch does not close, or the AO is dead"]
            elif abs(gain - 1) > j_tol:
                status = "fail"
                notes.append(f"gain {gain:.4g} outside 1 +- {j_tol:g}" + ("" if loops.size else " (nominal model)"))
            if is_out and np.isfinite(leak) and leak > th.switch_leak_max:
                status = "fail"
                notes.append(f"responds with switch {switch} open "
                             f"({leak:.2g} of the closed response): the switch does not open")
            ao_table.add(ch, role, status, "; ".join(notes), gain=gain, gain_expected=1.0, switch_leak=leak,
                         amplitude_v=self.amplitude_v[j])
        good_ao = np.array([r.status == "pass" for r in ao_table.rows[-n_ao:]])
        return _Loopback(good_ai=good, good_ao=good_ao, noise_v=noise, amplitude_v=self.amplitude_v)

    # -------------------------------------------------------------- step 4
    def _plateaus(self, amplitude_v: np.ndarray) -> np.ndarray:
        """Every input AO alone at +A, one plateau each (ramps between them inside the settling samples)."""
        n_in = self.n_in
        ramp = int(np.ceil(np.max(amplitude_v[:n_in] / self.max_step_v[:n_in]) - 1e-9))
        settle = max(self.settle, ramp + 1)
        plateau = settle + self.average
        ao = np.zeros((len(self.ao), n_in * plateau))
        for i in range(n_in):
            level = np.zeros(len(self.ao))
            level[i] = amplitude_v[i]
            ao[:, i * plateau:(i + 1) * plateau] = level[:, None]
        self._plateau_layout = (settle, plateau)
        # slew-limited moves between plateaus (the safety layer would refuse the jumps); they end inside the
        # settling samples, which the averages leave out
        return rate_limit(ao, self.max_step_v, np.zeros(len(self.ao)))

    def _measure_plateaus(self, ao: np.ndarray) -> np.ndarray:
        """Mean of every plateau's averaging window, shape (n_ai, n_in)."""
        settle, plateau = self._plateau_layout
        ai = self._acquire(ao, closed=False)
        out = np.empty((ai.shape[0], self.n_in))
        for i in range(self.n_in):
            out[:, i] = ai[:, i * plateau + settle:(i + 1) * plateau].mean(axis=1)
        return out

    def _expected_plateaus(self, amplitude_v: np.ndarray) -> np.ndarray:
        return self.expected_transfer(False)[:, :self.n_in] * amplitude_v[:self.n_in][None, :]

    def effective_resistance_ohm(self) -> np.ndarray:
        """Per edge, the resistance the nominal network at the taps written (drives held, switches open)
        presents across it, the edge itself included (ohms); ``inf`` when both ends are held (no node voltage
        depends on the edge).  A step ``dg`` of the edge moves the free nodes by ``dg / (1 + dg R)`` times a
        fixed vector (Sherman-Morrison)."""
        aug = self.circuit.augmented
        g = np.r_[self.nominal.true_conductance_s(self.nominal.held_taps)[self.channels],
                  self.circuit.switch_conductance_s({})]
        held = np.zeros(aug.n_nodes, bool)
        held[list(aug.inputs) + list(aug.grounds)] = True
        free = np.flatnonzero(~held)
        index = np.full(aug.n_nodes, -1, np.int64)
        index[free] = np.arange(len(free))
        tails, heads = aug.edges[:, 0], aug.edges[:, 1]
        lap = sp.coo_matrix((np.r_[g, g, -g, -g], (np.r_[tails, heads, tails, heads],
                                                     np.r_[tails, heads, heads, tails])),
                            shape=(aug.n_nodes, aug.n_nodes)).tocsr()[free][:, free].tocsc()
        n_e = self.net.n_edges
        a, b = index[tails[:n_e]], index[heads[:n_e]]
        cols = np.arange(n_e)
        d = np.zeros((len(free), n_e))
        d[a[a >= 0], cols[a >= 0]] += 1.0
        d[b[b >= 0], cols[b >= 0]] -= 1.0
        r = np.einsum("ij,ij->j", d, splu(lap).solve(d)) if len(free) else np.zeros(n_e)
        return np.where((a < 0) & (b < 0), np.inf, r)

    def step_taps(self, r_eff_ohm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per edge, the taps of a conductance step up and down from the starting tap: as far as the edge's
        window allows, but at most ``1 / R_eff`` (beyond it the nodes barely move more and the step cannot be
        read back); at least one tap."""
        up, down = np.empty_like(self.start_taps), np.empty_like(self.start_taps)
        for e, c in enumerate(self.channels):
            t0 = int(self.start_taps[e])
            g0 = self._conductance_s(c, t0)
            reach = 1.0 / r_eff_ohm[e] if np.isfinite(r_eff_ohm[e]) and r_eff_ohm[e] > 0 else np.inf
            for out, end, sign in ((up, int(self.tap_low_r[e]), 1.0), (down, int(self.tap_high_r[e]), -1.0)):
                g_end = self._conductance_s(c, end)
                target = g0 + sign * min(abs(g_end - g0), reach)
                tap = self._tap_for(c, target)
                tap = min(max(tap, min(end, t0)), max(end, t0))
                if tap == t0 and end != t0:
                    tap = t0 - 1 if end < t0 else t0 + 1
                out[e] = tap
        return up, down

    def pots_check(self, table: CheckTable, loop: _Loopback) -> None:
        """Step every pot up and down from its starting tap and back; fill ``table`` (one row per pot)."""
        th = self.th
        rows = loop.good_ai
        n_ok_in = int(np.sum(loop.good_ao[:self.n_in]))
        if not rows.any() or n_ok_in == 0:
            why = "no AI channel passed" if not rows.any() else "no input AO channel passed"
            for e, c in enumerate(self.channels):
                table.add(f"pot {c}", self._edge_label(e), "skip", f"{why} the loopback check")
            return
        amplitude_v = np.where(loop.good_ao, loop.amplitude_v, 0.0)
        ao = self._plateaus(amplitude_v)
        patterns = np.flatnonzero(loop.good_ao[:self.n_in])
        sigma = np.sqrt(2.0 / self.average) * loop.noise_v[rows]          # noise of one plateau difference
        base_taps = self.start_taps.copy()
        self.set_taps(base_taps)
        r_eff = self.effective_resistance_ohm()
        tap_up, tap_down = self.step_taps(r_eff)
        base = self._measure_plateaus(ao)[:, patterns]
        base_expected = self._expected_plateaus(amplitude_v)[:, patterns]
        noise_norm = float(np.linalg.norm(sigma)) * np.sqrt(len(patterns))
        self._other = (rows, patterns, amplitude_v, base_expected, tap_up, tap_down)
        directions: dict[tuple[int, bool], np.ndarray] = {}
        for e, c in enumerate(self.channels):
            values: dict[str, float] = {"tap_start": float(base_taps[e]), "tap_up": float(tap_up[e]),
                                        "tap_down": float(tap_down[e]), "r_eff_ohm": float(r_eff[e])}
            notes, status, measured, skipped = [], "pass", [], []
            g0 = self._conductance_s(c, base_taps[e])
            for key, target in (("up", int(tap_up[e])), ("down", int(tap_down[e]))):
                dg_e = self._conductance_s(c, target) - g0
                values[f"step_{key}_expected_s"] = dg_e
                if target == base_taps[e]:
                    skipped.append("the starting tap is at the end of the window")
                    continue
                if not np.isfinite(r_eff[e]):
                    skipped.append("between two driven nodes: no node voltage depends on it")
                    continue
                taps = base_taps.copy()
                taps[e] = target
                self.set_taps(taps)
                got = self._measure_plateaus(ao)[:, patterns]
                exp = self._expected_plateaus(amplitude_v)[:, patterns]
                self.set_taps(base_taps)
                dm, de = (got - base)[rows], (exp - base_expected)[rows]
                directions[(e, key == "up")] = de
                if np.linalg.norm(de) < th.min_snr * noise_norm:
                    skipped.append("the change is below the noise floor here")
                    continue
                ratio = scale_factor(dm, de)
                x = ratio * dg_e / (1 + dg_e * r_eff[e])
                values[f"response_{key}"] = ratio
                values[f"step_{key}_s"] = x / (1 - x * r_eff[e]) if x * r_eff[e] < 1 else np.inf
                measured.append((key, target, ratio, dm))
            if not measured:
                status = "skip"
                notes.append("; ".join(dict.fromkeys(skipped)))
            elif all(abs(r) < th.dead_fraction for _, _, r, _ in measured):
                status = "fail"
                moves = ", ".join(f"tap {int(base_taps[e])} -> {t}" for _, t, _, _ in measured)
                notes.append(f"stuck: the network does not change when it is stepped ({moves})")
            else:
                for key, target, ratio, dm in measured:
                    if not abs(ratio - 1) <= self.pot_tol:
                        status = "fail"
                        notes.append(f"step {key} to tap {target}: the nodes move {ratio:.3g} x as much as the "
                                     f"model says (limit 1 +- {self.pot_tol:g})")
                        own = directions[(e, key == "up")]
                        den = float(np.linalg.norm(own) * np.linalg.norm(dm))
                        cos_own = float(np.sum(own * dm)) / den if den > 0 else 0.0
                        other = self._looks_like(dm, e, key == "up", directions) if cos_own < 0.8 else None
                        if other is not None:
                            notes.append(f"the change looks like edge {other}'s ({self._edge_label(other)}, "
                                         f"pot {int(self.channels[other])}): pot channels swapped?")
            if int(c) in self.readback_errors:
                status = "fail"
                notes.append(self.readback_errors[int(c)])
            table.add(f"pot {int(c)}", self._edge_label(e), status, "; ".join(notes), **values)

    def explain_stuck(self, tables: list[CheckTable]) -> None:
        """A stuck pot holds a tap the model does not know: the checks around it fail too.  Add a note naming it
        to every failed row within two edges of a stuck pot (AI channels and other pots) and to failed AO rows."""
        pot_table = next((t for t in tables if t.name == "pots"), None)
        if pot_table is None:
            return
        stuck = [e for e, row in enumerate(pot_table.rows) if row.note.startswith("stuck")]
        if not stuck:
            return
        names = ", ".join(f"pot {int(self.channels[e])}" for e in stuck)
        hint = f"{names} stuck: the network around it differs from the model; re-run after fixing it"
        near = {int(n) for e in stuck for n in self.net.edges[e]}
        for _ in range(2):
            near |= {int(n) for a, b in self.net.edges for n in (a, b) if a in near or b in near}
        for t in tables:
            for i, row in enumerate(t.rows):
                if row.status != "fail" or row.note.startswith(("stuck", "dead", "swapped", "reads node")):
                    continue
                if t.name == "pots":
                    close = bool(near & {int(n) for n in self.net.edges[i]})
                elif t.name == "ai":
                    close = self.wiring.read_nodes[i] in near
                else:
                    close = t.name == "ao"
                if close:
                    row.note = f"{row.note}; {hint}" if row.note else hint

    def _looks_like(self, dm: np.ndarray, edge: int, up: bool,
                    directions: dict[tuple[int, bool], np.ndarray]) -> int | None:
        """The other edge whose model change (a step the same way) is most parallel to ``dm`` (cosine > 0.95)."""
        rows, patterns, amplitude_v, base_expected, tap_up, tap_down = self._other
        best, best_cos = None, 0.95
        for f in range(len(self.channels)):
            if f == edge:
                continue
            d = directions.get((f, up))
            if d is None:
                held = self.nominal.held_taps.copy()
                self.nominal.held_taps[self.channels[f]] = tap_up[f] if up else tap_down[f]
                d = (self._expected_plateaus(amplitude_v)[:, patterns] - base_expected)[rows]
                self.nominal.held_taps = held
                directions[(f, up)] = d
            den = float(np.linalg.norm(d) * np.linalg.norm(dm))
            cos = float(np.sum(d * dm)) / den if den > 0 else 0.0
            if cos > best_cos:
                best, best_cos = f, cos
        return best

    def _conductance_s(self, channel: int, tap: int) -> float:
        """Datasheet conductance of pot ``channel`` at ``tap`` (S)."""
        taps = np.zeros(self.pots.n_channels, np.int64)
        taps[channel] = tap
        return float(1.0 / self.calibration.resistance_ohm(taps)[channel])

    def _tap_for(self, channel: int, conductance_s: float) -> int:
        """Nearest tap (in resistance) of pot ``channel`` for ``conductance_s``."""
        cal = self.calibration
        r = 1.0 / conductance_s - cal.r_end_ohm[channel] - cal.r_wiper_ohm[channel]
        return int(np.clip(np.rint(r / cal.r_total_ohm[channel] * (cal.n_taps - 1)), 0, cal.n_taps - 1))

    def _edge_label(self, e: int) -> str:
        a, b = (int(x) for x in self.net.edges[e])
        return f"edge {e} ({a}-{b})"


# ---------------------------------------------------------------------------------------------------- entry point
def resistor_selftest(exp: Experiment, options: dict) -> SelfTestReport:
    """``labtrain selftest`` for ``[chip] type = "resistor_network"`` on twin or hardware.

    ``options``: ``thresholds`` (:class:`~labtrain.instruments.selftest.Thresholds`), ``twin_faults``
    (from :func:`~labtrain.instruments.selftest.parse_twin_faults`; twin only: ``dead_ai``, ``swap_ai``,
    ``dead_ao``, ``stuck_pot``).  Raises :class:`~labtrain.config.ConfigError` for bad input (before anything
    is applied) and :class:`~labtrain.instruments.selftest.InstrumentUnreachable` when the bench cannot be
    opened.
    """
    src, b = source_of(exp), exp["backend"]
    th = options.get("thresholds") or Thresholds()
    faults = dict(options.get("twin_faults") or {})
    if b["kind"] not in ("twin", "hardware"):
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r}: selftest needs a bench (twin or hardware)")
    if faults and b["kind"] != "twin":
        raise ConfigError(f"{src}: --twin-fault applies to the twin only (backend {b['kind']!r})")
    if "no_lockin" in faults:
        raise ConfigError(f"{src}: --twin-fault no_lockin: a resistor_network bench has no lock-in")
    task = build_task(exp)
    net = build_network(exp, task.n_inputs, task.n_outputs)
    try:
        wiring = build_wiring(b, exp["wiring"], net, exp["instruments"])
    except BenchError as exc:
        raise ConfigError(f"{src}: [{exc.section}] {exc}") from None
    except WiringError as exc:
        raise ConfigError(f"{src}: [wiring] {exc}") from None
    _check_faults(src, faults, wiring)
    settings = acquisition_settings(b)
    config = safety_config(b, settings.rate_hz)
    try:
        bench = open_resistor_bench(b, net, wiring, exp["instruments"], seed=exp["run"]["seed"])
    except BenchError as exc:
        raise ConfigError(f"{src}: [{exc.section}] {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"{src}: [backend] kind = {b['kind']!r} needs an optional driver: "
                          f"{with_install_hint(exc)}") from None
    except (PortError, OSError) as exc:
        raise InstrumentUnreachable(f"{src}: instrument not reachable: {str(exc).splitlines()[0]}") from None
    names = {p.role: p.name for p in bench.ports.values()}
    daq = pots = None
    try:
        daq = SafeDAQ(bench["daq"], config)
        pots = SafePotArray(bench["pots"], config)
        if faults:
            bench["daq"].set_wiring_faults(dead_ai=faults.get("dead_ai", ()), swapped_ai=faults.get("swap_ai", ()),
                                           dead_ao=faults.get("dead_ao", ()))
            bench["pots"].set_stuck(faults.get("stuck_pot", ()))
        test = ResistorBenchSelfTest(net, wiring, daq, pots, rate_hz=settings.rate_hz,
                                     settle_samples=settings.settle_samples, average_samples=settings.average_samples,
                                     timeout_s=settings.timeout_s, retries=settings.retries,
                                     retry_wait_s=settings.retry_wait_s,
                                     conductance_s=initial_conductances(exp, net), thresholds=th)
    except SafetyError as exc:
        _close(daq, pots, bench)
        raise ConfigError(f"{src}: [backend] {exc}") from None
    except BaseException:
        _close(daq, pots, bench)
        raise
    report = SelfTestReport(src, exp["chip"]["type"], b["kind"], _settings(test, settings), th, twin_faults=faults)
    inst = CheckTable("instruments", "instruments (identity queries only)", INSTRUMENT_COLUMNS)
    report.tables.append(inst)
    step = "identify"
    try:
        for p in bench.ports.values():
            try:
                inst.add(p.name, p.role, "pass", str(p.port.identify()))
            except PortError as exc:
                inst.add(p.name, p.role, "unreachable", f"does not answer: {exc}")
        if any(r.status == "unreachable" for r in inst.rows):
            return report
        step = "pots to the starting taps"
        test.set_taps(test.start_taps)
        ao_table = CheckTable("ao", "AO channels: ramps 0 -> +A -> -A -> 0 V, one AO at a time, switches open "
                                    "and closed; gain on the AI channel that reads the driven node (loopback), "
                                    "else against the nominal model", AO_COLUMNS)
        ai_table = CheckTable("ai", "AI channels: slopes against every AO (least squares), offset, residual RMS; "
                                    "misfit = |measured - model| / |model| of the slope vector", AI_COLUMNS)
        report.tables += [ao_table, ai_table]
        step = "AO -> AI ramps"
        loop = test.loopback(ao_table, ai_table)
        pot_table = CheckTable("pots", "pots: stepped up and down from the starting tap (at most 1/R_eff, inside the "
                                       "[chip] window) and back; node response vs the model's, conductance step "
                                       "measured through the network vs the datasheet's", POT_COLUMNS)
        report.tables.append(pot_table)
        step = "pot steps"
        test.pots_check(pot_table, loop)
        test.explain_stuck(report.tables)
    except PortError as exc:
        role = "pots" if "pot" in str(exc).split(":")[0] else "daq"
        inst.mark(names.get(role, role), role, "unreachable", f"stopped answering ({step}): {exc}")
    finally:
        report.safe_state = _finish(daq, pots, bench)
    return report


def _check_faults(src: str, faults: dict, wiring: Wiring) -> None:
    for c in faults.get("dead_ai", []) + [x for pair in faults.get("swap_ai", []) for x in pair]:
        if c not in wiring.node_ai:
            raise ConfigError(f"{src}: --twin-fault: {c!r} is not an AI channel of the wiring "
                              f"({', '.join(wiring.node_ai)})")
    for c in faults.get("dead_ao", []):
        if c not in wiring.ao_channels():
            raise ConfigError(f"{src}: --twin-fault dead_ao={c}: not an AO channel of the wiring "
                              f"({', '.join(wiring.ao_channels())})")
    for c in faults.get("stuck_pot", []):
        if c not in wiring.pot_channels:
            raise ConfigError(f"{src}: --twin-fault stuck_pot={c}: not a pot channel of the wiring "
                              f"(0..{max(wiring.pot_channels)})")


def _settings(test: ResistorBenchSelfTest, settings: Any) -> dict[str, Any]:
    return {"rate_hz": settings.rate_hz, "ramp_amplitude_v": test.amplitude_v.round(6).tolist(),
            "leg_s": test.th.leg_s, "average_samples": test.average,
            "model_tolerance": test.model_tol, "pot_step_tolerance": test.pot_tol, "pot_taps": test.calibration.n_taps}


def _close(daq: Any, pots: Any, bench: Any) -> None:
    for port in (daq, pots):
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 -- the original error is the one to report
                pass
    bench.close()


def _finish(daq: SafeDAQ | None, pots: SafePotArray | None, bench: Any) -> str:
    """Safe state, read back, close: one line saying what the bench holds (or what failed)."""
    parts, errors = [], []
    for name, port in (("DAQ", daq), ("pots", pots)):
        if port is None:
            continue
        try:
            port.safe_state()
        except Exception as exc:  # noqa: BLE001 -- the other port still gets its turn
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    try:
        if daq is not None:
            levels = daq.dc_levels_v()
            off = {c: v for c, v in levels.items() if c in daq.limits
                   and not abs(v - daq.limits[c].safe_level_v) <= 1e-9}
            parts.append("AO at their safe levels" if not off else
                         "AO NOT at their safe levels: " + ", ".join(f"{c} {v:g} V" for c, v in off.items()))
            on = [line for line, state in daq.digital_states().items() if state]
            parts.append("digital lines open" if not on else "digital lines still closed: " + ", ".join(on))
        if pots is not None:
            taps = np.asarray(pots.get_taps())
            wrong = np.flatnonzero(taps != pots.safe_taps)
            parts.append("pots at their safe taps (reported)" if not wrong.size else
                         "pots NOT at their safe taps: " + ", ".join(f"pot {c} at {taps[c]}" for c in wrong))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"read back: {type(exc).__name__}: {exc}")
    _close(daq, pots, bench)
    text = "; ".join(parts)
    if errors:
        text = (text + "; " if text else "") + "safe state NOT confirmed: " + "; ".join(errors)
    return text
