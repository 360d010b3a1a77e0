"""Hooks the run-event tests hand to the GUI's worker process (``labtrain.gui.worker``: ``child_init``)."""

from __future__ import annotations


def flaky_daq() -> None:
    """Every simulated DAQ built in this process times out on its first two acquisitions (then recovers)."""
    from labtrain.simulators.daq_twin import SimulatedDAQ

    original = SimulatedDAQ.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.inject_faults(2, "timeout", methods=("write_read",))

    SimulatedDAQ.__init__ = init
