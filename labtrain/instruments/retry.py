"""Port helper shared by the instrument-backed chips: retrying a call after a port fault.

(Reseeding a twin's noise is the port contract's ``DAQ.reseed``; no helper probes for it.)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from labtrain.instruments.ports import PortError

__all__ = ["call_with_retries"]

log = logging.getLogger(__name__)


def call_with_retries(what: str, fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None, *,
                      retries: int, wait_s: float, fault_log: list[str],
                      on_fault: Callable[[str], None] | None = None) -> Any:
    """``fn(*args, **kwargs)``, attempted ``retries + 1`` times while it raises a :class:`~labtrain.instruments.ports.PortError`.

    Every fault appends a line ``"{what}: {type}: {message} (attempt i of n)"`` to ``fault_log``, is passed
    to ``on_fault`` and logged (a warning with ``labtrain_event = "retry"``, or ``"fault"`` for the last
    attempt: a running :class:`~labtrain.training.run.Run` records it in the run file); attempts are
    ``wait_s`` apart.  After the last attempt the fault is re-raised as the same type,
    ``"{what} failed n times: {message}"``, chained to the original.
    """
    kwargs = {} if kwargs is None else kwargs
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except PortError as exc:
            line = f"{what}: {type(exc).__name__}: {exc} (attempt {attempt} of {attempts})"
            fault_log.append(line)
            last = attempt == attempts
            log.warning("instrument fault (%s): %s", "giving up" if last else f"retrying in {wait_s:g} s", line,
                        extra={"labtrain_event": "fault" if last else "retry"})
            if on_fault is not None:
                on_fault(line)
            if last:
                raise type(exc)(f"{what} failed {attempts} times: {exc}") from exc
            if wait_s:
                time.sleep(wait_s)
    raise AssertionError("unreachable")

