"""Hooks the GUI tests hand to the run's worker process (``labtrain.gui.worker``: ``child_init``, ``probe``).

They run in the worker process, where the chip lives: the test process cannot look at it directly.
"""

from __future__ import annotations


def dc_levels(run, moment: str) -> dict[str, float]:
    """The DC level every AO channel of the twin's simulated DAQ really holds (probe hook)."""
    return {str(k): float(v) for k, v in run.chip.daq.daq.dc_levels_v().items()}


def fail_in_every_step() -> None:
    """Make every training step raise (child_init hook): a run that fails after it has started."""
    from labtrain.training.run import Run

    def boom(self, step):
        raise RuntimeError("simulated failure in step")

    Run._one_step = boom
