"""What an ST-Link can answer besides OK, as exceptions the layers above can catch by meaning.

Every error carries the probe serial, the command name and, where one exists, the target address
(see ``transport.errors.TransportError``), so "which board failed doing what" survives up to the
journal and the dashboard. ``status_error`` is the single table from status byte to class.
"""

from __future__ import annotations

from ..errors import TransportError
from .constants import MEMORY_FAULT_STATUSES, STATUS_TEXT, Status


class StlinkError(TransportError):
    """The probe answered a command with a status other than OK."""

    def __init__(self, message: str, *, status: int | None = None, serial: str | None = None,
                 command: str | None = None, address: int | None = None) -> None:
        self.status = status
        if status is not None:
            message = f"{message} [status 0x{status:02X}]"
        super().__init__(message, serial=serial, command=command, address=address)


class StlinkFault(StlinkError):
    """Generic debug fault (0x81) or a probe-side error with no more specific meaning."""


class NoTarget(StlinkError):
    """The probe sees no target: not connected, unpowered, or its debug port does not power up."""


class ProbeModeError(StlinkError):
    """The probe is in a mode we cannot leave (held by another program, stuck in DFU...)."""


class UnknownCommand(StlinkError):
    """The firmware does not know the command (0x42): a missing feature, or firmware too old."""


class FrequencyNotSupported(StlinkError):
    """The requested interface clock cannot be set (0x41, or nothing at or below the request)."""


class SwvNotAvailable(StlinkError):
    """SWV trace capture is not available on this probe (0x20)."""


class SwdError(StlinkError):
    """An SWD transaction between the probe and the target failed."""


class SwdWait(SwdError):
    """The DP or AP kept answering WAIT (after our bounded retries): the target bus is busy."""


class ApWait(SwdWait):
    """The AP answered WAIT (0x10)."""


class DpWait(SwdWait):
    """The DP answered WAIT (0x14)."""


class ApFault(SwdError):
    """The AP answered FAULT (0x11)."""


class DpFault(SwdError):
    """The DP answered FAULT (0x15)."""


class ApError(SwdError):
    """AP protocol error (0x12)."""


class DpError(SwdError):
    """DP protocol error (0x16)."""


class ParityError(SwdError):
    """SWD parity error on an AP (0x13) or DP (0x17) read."""


class WriteDataError(SwdError):
    """The AP rejected write data (0x18)."""


class StickyError(SwdError):
    """A sticky error (0x19) or sticky overrun (0x1A) is set in the DP."""


class BadAp(SwdError):
    """The AP does not exist, was not initialised (0x1D) or is in use by another client (0x1B)."""


class MemoryFault(StlinkError):
    """A memory access faulted; ``address`` is where, as the probe reported it.

    Raised when GETLASTRWSTATUS(2) after a memory command reports a fault status; the driver has
    already cleared the DP sticky flags so the next access works.
    """


class FirmwareTooOld(TransportError):
    """The probe's firmware lacks commands gangflash needs; the message says which, and how to
    update it."""


class UnsupportedProbe(TransportError):
    """The device answers as an ST-Link generation we do not drive (V1, unknown)."""


class StlinkProtocolError(TransportError):
    """The probe's reply did not have the shape the protocol promises (short, wrong layout)."""


_STATUS_CLASSES: dict[int, type[StlinkError]] = {
    Status.JTAG_NO_DEVICE_CONNECTED: NoTarget,
    Status.JTAG_GET_IDCODE_ERROR: NoTarget,
    Status.JTAG_DBG_POWER_ERROR: NoTarget,
    Status.JTAG_ALREADY_OPENED_IN_OTHER_MODE: ProbeModeError,
    Status.SWD_AP_WAIT: ApWait,
    Status.SWD_DP_WAIT: DpWait,
    Status.SWD_AP_FAULT: ApFault,
    Status.SWD_DP_FAULT: DpFault,
    Status.SWD_AP_ERROR: ApError,
    Status.SWD_DP_ERROR: DpError,
    Status.SWD_AP_PARITY_ERROR: ParityError,
    Status.SWD_DP_PARITY_ERROR: ParityError,
    Status.SWD_AP_WDATA_ERROR: WriteDataError,
    Status.SWD_AP_STICKY_ERROR: StickyError,
    Status.SWD_AP_STICKY_ORUN_ERROR: StickyError,
    Status.AP_ALREADY_USED: BadAp,
    Status.TRACE_AP_TURNAROUND: SwdError,
    Status.BAD_AP_ERROR: BadAp,
    Status.SWV_NOT_AVAILABLE: SwvNotAvailable,
    Status.JTAG_FREQ_NOT_SUPPORTED: FrequencyNotSupported,
    Status.JTAG_UNKNOWN_CMD: UnknownCommand,
    Status.FAULT: StlinkFault,
}


def status_text(status: int) -> str:
    """Human text for a status byte, including codes no table knows."""
    return STATUS_TEXT.get(status, f"unknown status 0x{status:02X}")


def status_error(status: int, *, serial: str | None, command: str | None,
                 address: int | None = None, memory: bool = False) -> StlinkError:
    """The exception for a non-OK status. ``memory`` selects the memory-fault reading of the code
    (the status came from GETLASTRWSTATUS after a memory command)."""
    if memory and status in MEMORY_FAULT_STATUSES:
        cls: type[StlinkError] = MemoryFault
        message = f"memory access fault: {status_text(status)}"
    else:
        cls = _STATUS_CLASSES.get(status, StlinkFault)
        message = status_text(status)
    return cls(message, status=status, serial=serial, command=command, address=address)
