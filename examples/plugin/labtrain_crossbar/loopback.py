"""``loopback_daq``: a DAQ whose AI channel k reads back AO channel k through a wire (bench bring-up).

It implements labtrain's DAQ port contract (:class:`labtrain.instruments.ports.DAQ`) and is
described to labtrain by a :class:`~labtrain.instruments.drivers.DriverSpec`, registered through
the ``labtrain.drivers`` entry point of this package.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from labtrain.instruments.drivers import DriverSpec
from labtrain.instruments.ports import DAQ, Acquisition
from labtrain.schema import Field


class LoopbackDAQ(DAQ):
    """``n_channels`` AO channels ``<device>/ao<k>`` wired to AI channels ``<device>/ai<k>``."""

    def __init__(self, device: str, n_channels: int, ao_range_v: tuple[float, float] = (-10.0, 10.0)) -> None:
        self.device = device
        self.ao_channels = tuple(f"{device}/ao{k}" for k in range(n_channels))
        self.ai_channels = tuple(f"{device}/ai{k}" for k in range(n_channels))
        self.do_lines = ()
        self.ao_range_v = self.ai_range_v = tuple(ao_range_v)
        self._dc = {ch: 0.0 for ch in self.ao_channels}

    def write_read(self, ao_channels: Sequence[str], ao_v: np.ndarray, ai_channels: Sequence[str],
                   rate_hz: float, timeout_s: float = 10.0) -> Acquisition:
        ao_v = np.atleast_2d(np.asarray(ao_v, float))
        held = {ch: ao_v[k] for k, ch in enumerate(ao_channels)}
        ai = np.vstack([held.get(ch.replace("/ai", "/ao"), np.full(ao_v.shape[1], self._dc.get(
            ch.replace("/ai", "/ao"), 0.0))) for ch in ai_channels])
        for k, ch in enumerate(ao_channels):
            self._dc[ch] = float(ao_v[k, -1])
        return Acquisition(ai, rate_hz)

    def set_dc(self, levels_v: dict[str, float]) -> None:
        self._dc.update({ch: float(v) for ch, v in levels_v.items()})

    def dc_levels_v(self) -> dict[str, float]:
        return dict(self._dc)

    def set_digital(self, states: dict[str, bool]) -> None:
        if states:
            raise ValueError(f"loopback DAQ {self.device} has no digital lines")

    def digital_states(self) -> dict[str, bool]:
        return {}

    def identify(self) -> str:
        return f"labtrain-crossbar loopback DAQ {self.device} ({len(self.ao_channels)} AO -> AI)"

    def close(self) -> None:
        self._dc = {ch: 0.0 for ch in self.ao_channels}


def _open(resource: str, options: dict[str, Any]) -> LoopbackDAQ:
    return LoopbackDAQ(resource or "Loop1", options["n_channels"], (-options["range_v"], options["range_v"]))


def _channels(port: LoopbackDAQ) -> dict[str, Any]:
    return {"ao": list(port.ao_channels), "ai": list(port.ai_channels), "do": [], "ao_range_v": port.ao_range_v,
            "ai_range_v": port.ai_range_v, "product": "loopback"}


DRIVER = DriverSpec("loopback_daq", "daq", _open, "AO channel k wired to AI channel k (bench bring-up, example "
                    "plugin)", options={"n_channels": Field("int", 8, "number of AO/AI pairs", 1, 64),
                                        "range_v": Field("float", 10.0, "AO and AI range +- (V)", 0, 10,
                                                         low_open=True)},
                    extra="", channels=_channels, resource_doc="a device name, e.g. Loop1")
