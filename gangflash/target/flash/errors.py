"""Why programming failed, in words a technician can act on, with the registers behind it.

Every error names the flash address concerned where there is one, and carries the flash status
register and a core snapshot when they were read, so the journal and the dashboard can show both
the one-line cause and the evidence.
"""

from __future__ import annotations

from ..errors import TargetError


class FlashError(TargetError):
    """Programming, erasing or verifying flash failed."""

    def __init__(self, message: str, *, sr: int | None = None, snapshot=None, **context) -> None:
        super().__init__(message, **context)
        self.sr = sr
        self.snapshot = snapshot

    @property
    def diagnostics(self) -> str:
        parts = []
        if self.sr is not None:
            parts.append(f"flash SR 0x{self.sr:08X}")
        if self.snapshot is not None:
            parts.append(self.snapshot.describe())
        return "; ".join(parts)


class FlashLocked(FlashError):
    """The controller stayed locked after the key sequence (a wrong key earlier locks it until reset)."""


class WriteProtected(FlashError):
    """A page or sector the image needs is write-protected by the option bytes."""


class ReadoutProtected(FlashError):
    """Readout protection (RDP level 1) is on: the debug port cannot program or read flash."""


class ProgramFailed(FlashError):
    """The controller reported an error while programming."""


class EraseFailed(FlashError):
    """The controller reported an error, or never finished, while erasing."""


class VerifyFailed(FlashError):
    """Flash content differs from the image after programming."""


class LoaderFailed(FlashError):
    """The flash loader did not finish: it faulted, the chip reset under it, or it timed out."""


class ClockMissing(FlashError):
    """The flash controller's clock is not running (F1: HSI off)."""
