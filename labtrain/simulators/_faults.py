"""Fault injection shared by the instrument twins: the next N calls raise PortTimeout or PortIOError.

When the fault strikes (``when``):

* ``"before"``: the call fails before anything reaches the instrument;
* ``"during"``: the call is cut off part-way -- a DAQ generation is aborted at
  a random sample and the outputs hold the sample reached (see
  :meth:`labtrain.simulators.daq_twin.SimulatedDAQ.inject_faults`); a call that
  cannot be cut in two (a DC write, a tap write) is lost either before or after
  it reached the instrument, at random;
* ``"after"``: the instrument did everything, then the answer was lost.
"""

from __future__ import annotations

from labtrain.instruments.ports import PortError, PortIOError, PortTimeout

__all__ = ["FaultInjector", "FAULT_KINDS", "FAULT_TIMES"]

#: fault kinds understood by ``inject_faults`` of every twin
FAULT_KINDS = {"timeout": PortTimeout, "io": PortIOError}
#: when an injected fault strikes, relative to what the call does
FAULT_TIMES = ("before", "during", "after")


class FaultInjector:
    """Raise a port fault on the next ``n`` calls of the named methods (shared by the twins)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._left = 0
        self._kind = "timeout"
        self._methods: frozenset[str] = frozenset()
        self._when = "before"
        self.raised = 0

    def arm(self, n: int, kind: str, methods: frozenset[str], when: str = "before") -> None:
        """Make the next ``n`` calls of ``methods`` fail with ``kind`` ("timeout" or "io") at ``when``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if int(n) != n or n < 0:
            raise ValueError(f"number of faults must be an integer >= 0, got {n!r}")
        if when not in FAULT_TIMES:
            raise ValueError(f"when must be one of {', '.join(FAULT_TIMES)}, got {when!r}")
        self._left, self._kind, self._methods, self._when = int(n), kind, methods, when

    def pending(self) -> int:
        return self._left

    def due(self, method: str, when: str) -> bool:
        """Whether a fault is armed for ``method`` at this point of the call; if so it is used up."""
        if self._left > 0 and method in self._methods and self._when == when:
            self._left -= 1
            self.raised += 1
            return True
        return False

    def error(self, method: str, detail: str = "") -> PortError:
        """The exception of a fault that is due (see :meth:`due`), ``detail`` added to its message."""
        exc = FAULT_KINDS[self._kind]
        what = "did not answer in time" if self._kind == "timeout" else "link failed"
        extra = f"; {detail}" if detail else ""
        return exc(f"{self._name}.{method}: injected fault ({what}{extra}; {self._left} more armed)")

    def check(self, method: str, when: str = "before") -> None:
        """Raise if a fault is armed for ``method`` at this point of the call."""
        if self.due(method, when):
            raise self.error(method)
