"""What a DNPU is, independent of whether it is a model, a surrogate or a chip on the bench.

A dopant-network processing unit has a few activation electrodes (typically
7: two data inputs and five controls) and one output electrode whose current
(tens of nA) is read through a transimpedance amplifier.  :class:`DNPULayout`
records which electrode does what and the ranges the device may see;
:class:`DNPUModel` is the duck-typed physics interface every DNPU model
(synthetic physics, fitted surrogate) implements.

Defaults follow the published DNPU bench (Boon, Ruiz Euler et al., see
docs/algorithms.md, section 6): activation ranges [-1.2, 0.6] V, narrower
[-0.35, 0.15] V next to the output, software abort at |V| >= 1.6 V, output
clipping near +-110 nA, Boolean inputs 0 -> -1.2 V and 1 -> +0.6 V.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["DNPULayout", "DNPUModel", "default_layout"]


@runtime_checkable
class DNPUModel(Protocol):
    """Physics of a DNPU: output current from activation-electrode voltages (duck-typed).

    ``current_a(electrode_v)`` maps an array of shape ``(..., n_electrodes)``
    (volts, electrodes in layout order) to the output current ``(...)`` in
    amperes *before* the amplifier clips it; it is vectorised over any
    leading shape (examples x samples).  ``snapshot()`` describes the model.
    """

    n_electrodes: int

    def current_a(self, electrode_v: np.ndarray) -> np.ndarray: ...

    def snapshot(self) -> dict: ...


@dataclass(frozen=True)
class DNPULayout:
    """Electrode roles, ranges and read-out chain of one DNPU.

    Attributes
    ----------
    low_v, high_v : tuple of float
        Allowed voltage range of every activation electrode (layout order).
    data_electrodes : tuple of int
        Electrodes that carry the data inputs (their values come from the task).
    control_electrodes : tuple of int
        Electrodes whose voltages are the trainable parameters.
    gain_ohm : float
        Transimpedance gain of the output amplifier (V out per A in).
    clip_a : float
        The amplifier's output saturates at +-``clip_a`` (amperes at the input).
    abort_abs_v : float
        No electrode may ever see ``|V| >= abort_abs_v`` (checked before anything is sent).
    names : tuple of str
        Electrode names for records and plots.
    """

    low_v: tuple[float, ...]
    high_v: tuple[float, ...]
    data_electrodes: tuple[int, ...]
    control_electrodes: tuple[int, ...]
    gain_ohm: float = 1e8
    clip_a: float = 110e-9
    abort_abs_v: float = 1.6
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.low_v)
        if len(self.high_v) != n or n < 2:
            raise ValueError(f"low_v and high_v must list the same electrodes (>= 2), got {len(self.low_v)} and "
                             f"{len(self.high_v)}")
        lo, hi = np.asarray(self.low_v, float), np.asarray(self.high_v, float)
        if np.any(lo >= hi):
            raise ValueError(f"every electrode needs low_v < high_v, got {list(zip(self.low_v, self.high_v))}")
        if np.any(np.maximum(np.abs(lo), np.abs(hi)) >= self.abort_abs_v):
            raise ValueError(f"electrode ranges reach the abort level |V| >= {self.abort_abs_v} V")
        roles = list(self.data_electrodes) + list(self.control_electrodes)
        if sorted(roles) != sorted(set(roles)) or any(not 0 <= r < n for r in roles):
            raise ValueError(f"data_electrodes {self.data_electrodes} and control_electrodes "
                             f"{self.control_electrodes} must be distinct electrodes in 0..{n - 1}")
        if not self.control_electrodes:
            raise ValueError("a DNPU needs at least one control electrode")
        if self.gain_ohm <= 0 or self.clip_a <= 0:
            raise ValueError(f"gain_ohm and clip_a must be > 0, got {self.gain_ohm}, {self.clip_a}")
        if not self.names:
            object.__setattr__(self, "names", tuple(f"e{i}" for i in range(n)))
        elif len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} electrodes")

    @property
    def n_electrodes(self) -> int:
        return len(self.low_v)

    @property
    def control_low_v(self) -> np.ndarray:
        return np.asarray(self.low_v, float)[list(self.control_electrodes)]

    @property
    def control_high_v(self) -> np.ndarray:
        return np.asarray(self.high_v, float)[list(self.control_electrodes)]

    def electrode_voltages(self, data_v: np.ndarray, control_v: np.ndarray) -> np.ndarray:
        """Assemble ``(..., n_electrodes)`` voltages from data ``(..., n_data)`` and controls ``(n_controls,)`` or
        ``(..., n_controls)``."""
        data_v = np.asarray(data_v, float)
        control_v = np.asarray(control_v, float)
        lead = np.broadcast_shapes(data_v.shape[:-1], control_v.shape[:-1])
        out = np.zeros(lead + (self.n_electrodes,))
        out[..., list(self.data_electrodes)] = data_v
        out[..., list(self.control_electrodes)] = control_v
        return out

    def clip(self, current_a: np.ndarray) -> np.ndarray:
        """What the amplifier passes (saturation at +-``clip_a``)."""
        return np.clip(current_a, -self.clip_a, self.clip_a)

    def to_dict(self) -> dict:
        return {"low_v": list(self.low_v), "high_v": list(self.high_v), "data_electrodes": list(self.data_electrodes),
                "control_electrodes": list(self.control_electrodes), "gain_ohm": self.gain_ohm,
                "clip_a": self.clip_a, "abort_abs_v": self.abort_abs_v, "names": list(self.names)}

    @classmethod
    def from_dict(cls, d: dict) -> "DNPULayout":
        return cls(tuple(d["low_v"]), tuple(d["high_v"]), tuple(d["data_electrodes"]),
                   tuple(d["control_electrodes"]), float(d["gain_ohm"]), float(d["clip_a"]),
                   float(d["abort_abs_v"]), tuple(d.get("names", ())))


def default_layout() -> DNPULayout:
    """The published 8-electrode device: electrodes 0..6 activation (data on 1 and 2), 5 controls; the
    electrode next to the output (6) has the narrow range [-0.35, 0.15] V."""
    low = (-1.2, -1.2, -1.2, -1.2, -1.2, -1.2, -0.35)
    high = (0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.15)
    return DNPULayout(low, high, data_electrodes=(1, 2), control_electrodes=(0, 3, 4, 5, 6), gain_ohm=1e8,
                      clip_a=110e-9, abort_abs_v=1.6)


def default_electrode_ao(n_electrodes: int, device: str = "Dev1") -> tuple[str, ...]:
    """``("Dev1/ao0", ..., "Dev1/ao{n-1}")``: electrode ``k`` on AO ``k``."""
    return tuple(f"{device}/ao{k}" for k in range(int(n_electrodes)))
