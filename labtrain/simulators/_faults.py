"""Fault injection shared by the instrument twins: the next N calls raise PortTimeout or PortIOError."""

from __future__ import annotations

from labtrain.instruments.ports import PortIOError, PortTimeout

__all__ = ["FaultInjector", "FAULT_KINDS"]

#: fault kinds understood by ``inject_faults`` of every twin
FAULT_KINDS = {"timeout": PortTimeout, "io": PortIOError}


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
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if int(n) != n or n < 0:
            raise ValueError(f"number of faults must be an integer >= 0, got {n!r}")
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        self._left, self._kind, self._methods, self._when = int(n), kind, methods, when

    def pending(self) -> int:
        return self._left

    def check(self, method: str, when: str = "before") -> None:
        """Raise if a fault is armed for ``method`` at this point of the call."""
        if self._left > 0 and method in self._methods and self._when == when:
            self._left -= 1
            self.raised += 1
            exc = FAULT_KINDS[self._kind]
            what = "did not answer in time" if self._kind == "timeout" else "link failed"
            raise exc(f"{self._name}.{method}: injected fault ({what}; {self._left} more armed)")
