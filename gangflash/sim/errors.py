"""Conditions the simulated hardware signals.

Two families: what the USB cable shows a host (``UsbFault`` and subclasses, raised by the
simulated probe's endpoints), and what the SWD link / AHB bus shows the probe firmware
(``SwdFault`` and subclasses, raised by the simulated target, turned into ST-Link status codes by
the probe model). Hosts never see the second family directly.
"""

from __future__ import annotations


class SimError(Exception):
    """Base of every simulator condition."""


# --- USB side: what a host's USB stack reports ------------------------------------------------
class UsbFault(SimError):
    """A USB transfer did not complete normally."""


class UsbTimeout(UsbFault):
    """The endpoint did not answer within the host's timeout (the transfer is lost)."""


class UsbStall(UsbFault):
    """The endpoint answered STALL."""


class UsbGone(UsbFault):
    """The device was unplugged: every transfer from now on fails with 'no device'."""


# --- SWD / bus side: what the probe firmware sees from the target ------------------------------
class SwdFault(SimError):
    """The target did not complete a debug access."""


class SwdNoTarget(SwdFault):
    """No answer on SWDIO (unpowered, not connected, held in reset without debug)."""


class SwdWait(SwdFault):
    """The DP or AP answered WAIT (the probe firmware retries a bounded number of times)."""

    def __init__(self, dp: bool = False) -> None:
        super().__init__("DP WAIT" if dp else "AP WAIT")
        self.dp = dp


class BusFault(SwdFault):
    """A memory access through the AHB-AP faulted (unmapped, protected, wrong size)."""

    def __init__(self, address: int, reason: str = "") -> None:
        super().__init__(f"bus fault at 0x{address:08X}{': ' + reason if reason else ''}")
        self.address = address
        self.reason = reason
