"""Virtual time for the simulator.

The simulator never reads the wall clock. Every sim object takes a ``Clock``: a zero-argument
callable returning seconds. In-process async users pass the event loop's clock
(``anyio.current_time``), so a looptime loop makes the whole process virtual; synchronous users
(the pyusb seam that pyOCD drives, the stlink-server) own a :class:`ManualClock` and advance it by
the cost that each USB transfer reports.
"""

from __future__ import annotations

from typing import Callable

Clock = Callable[[], float]


class ManualClock:
    """A clock that moves only when told to: deterministic time for synchronous drivers."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward) and return the new time."""
        if seconds > 0:
            self._now += seconds
        return self._now
