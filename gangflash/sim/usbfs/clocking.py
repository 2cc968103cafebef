"""The virtual clock of a board served over a usbfs node.

A tool under umockdev runs on the wall clock, the board on its own ``ManualClock``. Every served
transfer advances that clock by the cost the simulated probe reports (USB frames, firmware
overhead, SWD time), as the pyusb seam does. Tools also *wait* on the wall clock: st-flash sleeps
10 ms between DHCSR polls within a 500 ms wall deadline and expects the core to have run
meanwhile (``libusb-tools-under-umockdev.md``). So the wall-clock gap between transfers is
credited too, times ``pace``: 1.0 lets the chip live in real time while the tool idles, 0 counts
only modelled costs (the handler's own work is never credited).
"""

from __future__ import annotations

import time
from typing import Callable

from ..clock import ManualClock


class TransferClock:
    """Advances one board's clock around each transfer the node serves."""

    def __init__(self, clock: ManualClock, pace: float = 1.0,
                 wall: Callable[[], float] = time.monotonic) -> None:
        if pace < 0:
            raise ValueError(f"pace must be 0 or more, not {pace}")
        self.clock = clock
        self.pace = pace
        self._wall = wall
        self._last: float | None = None     # wall time the previous transfer ended

    def before(self) -> None:
        """A transfer starts: credit the tool's idle time since the last one, times pace."""
        now = self._wall()
        if self._last is not None and self.pace > 0:
            self.clock.advance((now - self._last) * self.pace)
        self._last = now

    def after(self, cost: float) -> None:
        """A transfer ended: charge its modelled cost; the next gap starts now."""
        self.clock.advance(cost)
        self._last = self._wall()
