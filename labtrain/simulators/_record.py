"""One process-wide order for everything the instrument twins record.

Every record entry of a twin (an AO write of the DAQ twin, a lock-in amplitude
change, a routing change) carries ``seq = next_event()``, so records of
different twins can be merged in the order things happened even when their
simulated timestamps tie (a DC write takes no simulated time by default).
"""

from __future__ import annotations

import itertools

__all__ = ["next_event"]

_COUNTER = itertools.count()


def next_event() -> int:
    """The next number of the process-wide twin event order (strictly increasing)."""
    return next(_COUNTER)
