"""Bench self-test, the parts every chip kind shares: thresholds, estimators, the report and its HDF5 file.

``labtrain selftest FILE --backend twin|hardware`` brings a bench up before the
first run: every analog output is ramped slowly and read back on the analog
inputs the wiring connects to it, pots are stepped, a lock-in reads a test tone.
The kind's procedure (``ChipKind.selftest``, e.g.
:mod:`labtrain.kinds.resistor.selftest`) knows what *should* be read; this
module holds what does not depend on the chip:

* :class:`Thresholds` -- every pass/fail limit, one named field each
  (``--limit NAME=VALUE`` on the command line);
* :func:`triangle_segments` -- the test waveform: each AO in turn goes
  ``0 -> +A -> -A -> 0`` while the others hold 0 V, slowly, inside the slew limit;
* :func:`fit_linear` -- per AI channel, least-squares slope against every AO,
  offset and the residual's RMS (the noise floor);
* :func:`row_misfit`, :func:`best_matches` -- which expected response each
  measured one looks like (a dead channel, two swapped channels);
* :func:`scale_factor`, :func:`complex_ratio` -- gain against the expected
  response, amplitude ratio and phase difference of two demodulated tones;
* :class:`SelfTestReport` of :class:`CheckTable` -- one row per channel with its
  measured values, what was expected, a status (``pass``, ``fail``, ``skip``,
  ``unreachable``) and a note naming the fault; printed as text
  (:meth:`SelfTestReport.text`) and written to HDF5 (:meth:`SelfTestReport.write_hdf5`,
  one group per table, one dataset per column with its ``units``).

Exit codes of the command (:attr:`SelfTestReport.exit_code`): 0 every check
passed, 1 a check failed, 3 an instrument did not answer (bad input is 2,
raised before anything is applied).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Thresholds", "Column", "Row", "CheckTable", "SelfTestReport", "InstrumentUnreachable", "TWIN_FAULTS",
           "STATUSES", "parse_limits", "parse_twin_faults", "triangle_segments", "fit_linear", "LinearFit",
           "row_misfit", "best_matches", "scale_factor", "complex_ratio", "REPORT_FORMAT", "read_report"]

#: a row's verdict: measured and within limits, outside them, not measurable here, instrument silent
STATUSES = ("pass", "fail", "skip", "unreachable")
#: ``format`` attribute of the HDF5 report (``labtrain runs`` leaves such files out)
REPORT_FORMAT = "labtrain-selftest-1"
#: twin faults ``--twin-fault`` accepts: name -> what its argument is
TWIN_FAULTS = {
    "dead_ai": "AI channel that reads nothing but noise (e.g. dead_ai=Dev1/ai3)",
    "swap_ai": "two AI channels whose cables are swapped (swap_ai=Dev1/ai2,Dev1/ai5)",
    "dead_ao": "AO channel whose output never reaches the chip (dead_ao=Dev1/ao1)",
    "stuck_pot": "pot channel that ignores writes and echoes what was written (stuck_pot=4)",
    "no_lockin": "the bench's lock-in does not answer (no argument)",
}


class InstrumentUnreachable(RuntimeError):
    """An instrument could not be opened or stopped answering before any check could run (exit code 3)."""


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits of the self-test (``--limit NAME=VALUE`` sets one).

    Attributes
    ----------
    ramp_fraction : float
        Ramp amplitude as a fraction of each AO channel's allowed range (``max_abs_v``, an electrode's range).
    leg_s : float
        Duration of one leg of the triangle ramp (s); four legs per AO channel.
    loopback_gain_tol : float
        ``|gain - 1|`` allowed on an AI channel that reads a driven node directly (a true loopback).
    model_gain_tol : float
        ``|gain - 1|`` and relative misfit allowed where the reading goes through the chip (the nominal model
        does not know the parts' tolerances); the kinds raise it to 1.5 x the pots' declared tolerance.
    offset_max_v : float
        Largest ``|offset|`` of an AI channel (V).
    noise_max_v : float
        Largest residual RMS of the ramp's fit (V): the noise floor plus anything the model does not explain.
    dead_fraction : float
        A response below this fraction of the expected one is "no response" (dead channel, stuck pot).
    min_snr : float
        An expected response below ``min_snr`` x the noise of the measurement is not observable: skipped.
    pot_step_tol : float
        ``|measured / expected - 1|`` allowed for a pot's conductance step.
    switch_leak_max : float
        Response of an output AO with its switch open, as a fraction of the closed-switch response.
    lockin_amplitude_tol : float
        ``|lock-in amplitude / DAQ amplitude - 1|`` allowed for the test tone.
    lockin_phase_tol_deg : float
        Phase difference allowed between the lock-in's and the DAQ's reading of the test tone (degrees).
    tone_amplitude_v : float
        Peak amplitude of the lock-in test tone (V).
    """

    ramp_fraction: float = 0.5
    leg_s: float = 0.02
    loopback_gain_tol: float = 0.02
    model_gain_tol: float = 0.05
    offset_max_v: float = 0.01
    noise_max_v: float = 0.005
    dead_fraction: float = 0.1
    min_snr: float = 10.0
    pot_step_tol: float = 0.5
    switch_leak_max: float = 0.05
    lockin_amplitude_tol: float = 0.1
    lockin_phase_tol_deg: float = 10.0
    tone_amplitude_v: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"limit {f.name} = {value!r}: expected a number > 0")
        if self.ramp_fraction > 1:
            raise ValueError(f"limit ramp_fraction = {self.ramp_fraction!r}: expected a number in (0, 1]")
        if self.dead_fraction >= 1:
            raise ValueError(f"limit dead_fraction = {self.dead_fraction!r}: expected a number in (0, 1)")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def parse_limits(items: Iterable[str] | None) -> Thresholds:
    """``["noise_max_v=0.002", ...]`` -> :class:`Thresholds` (``ValueError``, one line, for anything else)."""
    names = {f.name for f in fields(Thresholds)}
    given: dict[str, float] = {}
    for item in items or ():
        name, sep, text = str(item).partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--limit {item!r}: expected NAME=VALUE")
        if name not in names:
            raise ValueError(f"--limit {name}: unknown limit; limits: {', '.join(sorted(names))}")
        try:
            given[name] = float(text)
        except ValueError:
            raise ValueError(f"--limit {name}={text}: {text!r} is not a number") from None
    return Thresholds(**given)


def parse_twin_faults(items: Iterable[str] | None) -> dict[str, list[Any]]:
    """``["dead_ai=Dev1/ai3", "swap_ai=Dev1/ai1,Dev1/ai2", "stuck_pot=4", "no_lockin"]`` -> fault -> arguments.

    ``dead_ai``/``dead_ao``: channel names; ``swap_ai``: pairs of channel names; ``stuck_pot``: channel numbers;
    ``no_lockin``: ``[True]``.  Raises ``ValueError`` (one line) for an unknown fault or a malformed argument.
    """
    out: dict[str, list[Any]] = {}
    for item in items or ():
        name, sep, arg = str(item).partition("=")
        name, arg = name.strip(), arg.strip()
        if name not in TWIN_FAULTS:
            raise ValueError(f"--twin-fault {name}: unknown fault; faults: {', '.join(TWIN_FAULTS)}")
        if name == "no_lockin":
            if sep:
                raise ValueError("--twin-fault no_lockin takes no argument")
            out[name] = [True]
            continue
        if not arg:
            raise ValueError(f"--twin-fault {name}: needs an argument, {TWIN_FAULTS[name]}")
        if name == "swap_ai":
            pair = tuple(p.strip() for p in arg.split(","))
            if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
                raise ValueError(f"--twin-fault swap_ai={arg}: expected two different channels, CH1,CH2")
            out.setdefault(name, []).append(pair)
        elif name == "stuck_pot":
            if not arg.isdigit():
                raise ValueError(f"--twin-fault stuck_pot={arg}: expected a pot channel number >= 0")
            out.setdefault(name, []).append(int(arg))
        else:
            out.setdefault(name, []).append(arg)
    return out


# ------------------------------------------------------------------ waveforms and estimators
def triangle_segments(amplitude_v: np.ndarray, leg_samples: int, gap_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Each channel in turn ramps ``0 -> +A -> -A -> 0`` while every other channel holds 0 V.

    Parameters
    ----------
    amplitude_v : ndarray, shape (n_ch,) or (n_ch, 2)
        Peak of each channel's ramp (V): one value (``+A`` and ``-A``) or ``(low, high)`` per channel
        (``0 -> high -> low -> 0``; ``low <= 0 <= high``).
    leg_samples : int
        Samples from 0 to the peak (the ramp ``high -> low`` takes two legs).
    gap_samples : int
        Samples at 0 V before every segment (the chip settles; they are part of the fit).

    Returns
    -------
    ao_v : ndarray, shape (n_ch, n_ch * (gap + 4 * leg))
        The waveform: 0 V in the gaps and at the end, never beyond ``low``/``high``, never a step larger than
        ``max(|low|, |high|) / leg_samples``.
    segment : ndarray, shape (n_samples,)
        Which channel is ramping at each sample (``-1`` in the gaps).
    """
    amp = np.asarray(amplitude_v, float)
    if amp.ndim == 1:
        amp = np.stack([-amp, amp], axis=1)
    n_ch = amp.shape[0]
    if int(leg_samples) != leg_samples or leg_samples < 1 or int(gap_samples) != gap_samples or gap_samples < 0:
        raise ValueError(f"leg_samples must be >= 1 and gap_samples >= 0, got {leg_samples!r}, {gap_samples!r}")
    up = np.arange(1, leg_samples + 1) / leg_samples
    seg_len = gap_samples + 4 * leg_samples
    ao = np.zeros((n_ch, n_ch * seg_len))
    which = np.full(n_ch * seg_len, -1, np.int64)
    for c, (low, high) in enumerate(amp):
        shape = np.r_[np.zeros(gap_samples), high * up, high + (low - high) * np.r_[up, 1 + up] / 2,
                      low * (1 - up)]
        np.clip(shape, low, high, out=shape)      # no rounding past the peaks: they may sit on a limit
        ao[c, c * seg_len:(c + 1) * seg_len] = shape
        which[c * seg_len + gap_samples:(c + 1) * seg_len] = c
    return ao, which


@dataclass(frozen=True)
class LinearFit:
    """``read = slope @ drive + offset`` per AI channel, fitted by least squares.

    Attributes
    ----------
    slope : ndarray, shape (n_ai, n_ao)
        Volts read per volt driven (dimensionless).
    offset_v : ndarray, shape (n_ai,)
        Reading with every drive at 0 V.
    noise_v : ndarray, shape (n_ai,)
        RMS of the residual: the noise floor plus anything not linear in the drive.
    """

    slope: np.ndarray
    offset_v: np.ndarray
    noise_v: np.ndarray


def fit_linear(drive_v: np.ndarray, read_v: np.ndarray) -> LinearFit:
    """Least-squares ``read_v ≈ slope @ drive_v + offset`` for every AI row at once.

    ``drive_v`` (n_ao, n) is what was written (the levels the DAQ produced), ``read_v`` (n_ai, n) what was
    read on the same clock.  Drives that are 0 V throughout get a slope of 0.
    """
    x = np.asarray(drive_v, float)
    y = np.asarray(read_v, float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"drive_v (n_ao, n) and read_v (n_ai, n) must share n, got {x.shape} and {y.shape}")
    design = np.vstack([x, np.ones(x.shape[1])]).T                      # (n, n_ao + 1)
    coef, *_ = np.linalg.lstsq(design, y.T, rcond=None)                 # (n_ao + 1, n_ai)
    residual = y.T - design @ coef
    dof = max(x.shape[1] - design.shape[1], 1)
    return LinearFit(coef[:-1].T.copy(), coef[-1].copy(), np.sqrt((residual ** 2).sum(axis=0) / dof))


def scale_factor(measured: np.ndarray, expected: np.ndarray) -> float:
    """Least-squares ``s`` with ``measured ≈ s * expected`` (``nan`` when nothing is expected)."""
    e = np.ravel(np.asarray(expected, float))
    m = np.ravel(np.asarray(measured, float))
    den = float(e @ e)
    return float(m @ e) / den if den > 0 else float("nan")


def row_misfit(measured: np.ndarray, expected: np.ndarray, floor: float) -> np.ndarray:
    """Relative distance of every measured row to every expected row, shape (n_measured, n_expected).

    ``||m_i - e_j|| / max(||m_i||, ||e_j||, floor)``: 0 for a perfect match, about 1 for unrelated rows or for
    a row against zero.  ``floor`` keeps rows that are both (near) zero from matching by their noise.
    """
    m = np.asarray(measured, float)
    e = np.asarray(expected, float)
    dist = np.linalg.norm(m[:, None, :] - e[None, :, :], axis=2)
    norm = np.maximum(np.maximum(np.linalg.norm(m, axis=1)[:, None], np.linalg.norm(e, axis=1)[None, :]), floor)
    return dist / norm


def best_matches(misfit: np.ndarray) -> np.ndarray:
    """The expected row each measured row fits best, as one assignment (no two measured rows share one).

    Uses the Hungarian algorithm on the misfit matrix, so two swapped channels come out as each other's
    match; returns ``match[i]`` = index of the expected row of measured row ``i``.
    """
    rows, cols = linear_sum_assignment(np.asarray(misfit, float))
    match = np.arange(misfit.shape[0])
    match[rows] = cols
    return match


def complex_ratio(measured: complex, reference: complex) -> tuple[float, float]:
    """``(|measured / reference|, phase difference in degrees, wrapped to (-180, 180])``."""
    if reference == 0:
        return float("nan"), float("nan")
    r = complex(measured) / complex(reference)
    return abs(r), float(np.degrees(np.angle(r)))


# ------------------------------------------------------------------ the report
@dataclass(frozen=True)
class Column:
    """One measured quantity of a table: its key, unit (SI; ``"1"`` dimensionless) and printed header."""

    name: str
    unit: str
    header: str
    fmt: str = ".4g"
    printed: bool = True


@dataclass
class Row:
    """One channel's result: its name, what it is wired to, values by column name, verdict and a note."""

    channel: str
    role: str
    values: dict[str, float]
    status: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


@dataclass
class CheckTable:
    """The rows of one check (AI channels, AO channels, pots, lock-in, instruments) with their columns."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[Row] = field(default_factory=list)

    def mark(self, channel: str, role: str, status: str, note: str) -> Row:
        """Set the verdict of ``channel``'s row (its earlier note kept after the new one), or add the row."""
        for row in self.rows:
            if row.channel == channel:
                row.status, row.note = status, f"{note}; {row.note}" if row.note else note
                return row
        return self.add(channel, role, status, note)

    def add(self, channel: str, role: str, status: str, note: str = "", **values: float) -> Row:
        """Append a row; ``values`` are keyed by column name (missing ones are ``nan``)."""
        unknown = sorted(set(values) - {c.name for c in self.columns})
        if unknown:
            raise ValueError(f"table {self.name}: unknown column {unknown[0]!r}")
        row = Row(channel, role, {c.name: float(values.get(c.name, np.nan)) for c in self.columns}, status, note)
        self.rows.append(row)
        return row

    def text(self) -> str:
        """The table as aligned text (printed columns only; ``-`` for a value not measured)."""
        if not self.rows:
            return f"{self.title}\n  (not run)"
        shown = [c for c in self.columns if c.printed]
        header = ["channel", "wired to", *[c.header + (f" ({c.unit})" if c.unit not in ("", "1") else "")
                                          for c in shown], "status", "note"]
        body = [[r.channel, r.role, *[_cell(r.values[c.name], c.fmt) for c in shown], r.status.upper(), r.note]
                for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        return "\n".join([f"{self.title}", line(header), line(["-" * w for w in widths]), *map(line, body)])


def _cell(value: float, fmt: str) -> str:
    return "-" if not np.isfinite(value) else format(value, fmt)


@dataclass
class SelfTestReport:
    """Everything ``labtrain selftest`` found: settings, instrument identities, one table per check.

    Attributes
    ----------
    source : str
        The experiment file.
    kind : str
        ``[chip] type``.
    backend : str
        ``twin`` or ``hardware``.
    settings : dict
        What the procedure used (ramp amplitudes, sample clock, taps, tone), for the record.
    thresholds : Thresholds
        The limits the verdicts are based on.
    tables : list of CheckTable
        In the order they ran.
    safe_state : str
        How the bench was left (what was read back after the final safe state, or why that failed).
    twin_faults : dict
        Faults injected into the twin (empty on hardware and on a healthy twin).
    """

    source: str
    kind: str
    backend: str
    settings: dict[str, Any]
    thresholds: Thresholds
    tables: list[CheckTable] = field(default_factory=list)
    safe_state: str = ""
    twin_faults: dict[str, list[Any]] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def table(self, name: str) -> CheckTable:
        """The table called ``name`` (``KeyError`` if the procedure did not produce it)."""
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name!r} in the report (tables: {', '.join(t.name for t in self.tables)})")

    def rows(self, status: str | None = None) -> list[tuple[str, Row]]:
        """``(table name, row)`` of every row, or of those with ``status``."""
        return [(t.name, r) for t in self.tables for r in t.rows if status is None or r.status == status]

    @property
    def status(self) -> str:
        """``unreachable`` if an instrument stopped answering, else ``fail`` if a check failed, else ``pass``."""
        seen = {r.status for _, r in self.rows()}
        return "unreachable" if "unreachable" in seen else "fail" if "fail" in seen else "pass"

    @property
    def exit_code(self) -> int:
        """0 every check passed (or was skipped), 1 a check failed, 3 an instrument did not answer."""
        return {"pass": 0, "fail": 1, "unreachable": 3}[self.status]

    def problems(self) -> list[str]:
        """One line per failed or unreachable row: ``"<table> <channel> (<wired to>): <note>"``."""
        return [f"{t} {r.channel} ({r.role}): {r.note or r.status}" for t, r in self.rows()
                if r.status in ("fail", "unreachable")]

    def text(self) -> str:
        """The printed report: a header, every table, the safe state and the verdict."""
        counts = {s: len(self.rows(s)) for s in STATUSES}
        lines = [f"selftest {self.source}: [chip] type {self.kind}, backend {self.backend}"]
        if self.twin_faults:
            lines.append("twin faults injected: "
                         + "; ".join(f"{k}={_show_arg(v)}" for k, v in self.twin_faults.items()))
        lines.append("settings: " + "; ".join(f"{k} {_show_arg(v)}" for k, v in self.settings.items()))
        for t in self.tables:
            lines += ["", t.text()]
        lines += ["", f"safe state: {self.safe_state or 'not recorded'}"]
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines.append(f"result: {self.status.upper()} ({summary})")
        lines += [f"  {p}" for p in self.problems()]
        return "\n".join(lines)

    def write_hdf5(self, path: str | Path) -> Path:
        """Write the report to ``path`` (HDF5; any existing file is replaced) and return the path.

        Layout: root attributes ``format`` (:data:`REPORT_FORMAT`), ``source``, ``kind``, ``backend``,
        ``created``, ``status``, ``exit_code``, ``safe_state``, ``settings`` / ``thresholds`` /
        ``twin_faults`` (JSON); one group per table (attributes ``title``) with one 1-D dataset per column,
        every dataset with a ``units`` attribute (``""`` for text, ``"1"`` dimensionless): ``channel``,
        ``wired_to``, ``status``, ``note`` and the measured quantities (``nan`` = not measured).
        """
        import h5py

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        text = h5py.string_dtype("utf-8")
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": REPORT_FORMAT, "source": self.source, "kind": self.kind,
                            "backend": self.backend, "created": self.created, "status": self.status,
                            "exit_code": self.exit_code, "safe_state": self.safe_state,
                            "settings": json.dumps(_jsonable(self.settings)),
                            "thresholds": json.dumps(self.thresholds.to_dict()),
                            "twin_faults": json.dumps(_jsonable(self.twin_faults))})
            for t in self.tables:
                g = f.create_group(t.name)
                g.attrs["title"] = t.title
                for name, values in (("channel", [r.channel for r in t.rows]), ("wired_to", [r.role for r in t.rows]),
                                     ("status", [r.status for r in t.rows]), ("note", [r.note for r in t.rows])):
                    d = g.create_dataset(name, data=np.array(values, dtype=object), dtype=text)
                    d.attrs["units"] = ""
                for c in t.columns:
                    d = g.create_dataset(c.name, data=np.array([r.values[c.name] for r in t.rows], float))
                    d.attrs.update({"units": c.unit, "long_name": c.header})
        tmp.replace(path)
        return path


def read_report(path: str | Path) -> dict[str, Any]:
    """A report file back as ``{"attrs": {...}, "<table>": {"<column>": (values, units)}}`` (for tests, notebooks)."""
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != REPORT_FORMAT:
            raise ValueError(f"{path}: not a labtrain self-test report")
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for name, g in f.items():
            out[name] = {col: (d.asstr()[()] if d.dtype.kind == "O" else d[()], str(d.attrs["units"]))
                         for col, d in g.items()}
    return out


def _show_arg(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show_arg(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
