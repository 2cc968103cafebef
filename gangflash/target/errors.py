"""Typed target-layer errors.

Every error here stops one board (or, for image errors, the whole batch before any board is
touched). Each carries the context the layers above need to say *which* board failed *where*:
``board``, ``probe_serial``, ``stage`` and, where one exists, the ``address``. The target code
that raises usually knows only part of that (the image loader knows neither board nor probe), so
callers fill the rest in with :meth:`TargetError.add_context` on the way up, and ``str()`` always
shows whatever is known.

Image errors also name the ``path`` and, for text formats, the ``line``, and their messages say
what would have been accepted: the person reading them is at a bench with a file in hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self


class TargetError(Exception):
    """Something about the target (its identity, its flash, the image for it) stops the work."""

    def __init__(self, message: str, *, board: str | None = None,
                 probe_serial: str | None = None, stage: str | None = None,
                 address: int | None = None) -> None:
        super().__init__(message)
        self.detail = message
        self.board = board
        self.probe_serial = probe_serial
        self.stage = stage
        self.address = address

    def add_context(self, *, board: str | None = None, probe_serial: str | None = None,
                    stage: str | None = None) -> Self:
        """Fill in context the raiser did not know; fields already set are kept. Returns self so
        callers can write ``raise err.add_context(board=...)``."""
        self.board = self.board or board
        self.probe_serial = self.probe_serial or probe_serial
        self.stage = self.stage or stage
        return self

    def context(self) -> list[str]:
        """The known context as short phrases, in the order they are shown."""
        parts = []
        if self.board:
            parts.append(f"board {self.board}")
        if self.probe_serial:
            parts.append(f"probe {self.probe_serial}")
        if self.stage:
            parts.append(f"during {self.stage}")
        # The address is shown only if the message does not already name it.
        if self.address is not None and f"0x{self.address:08X}" not in self.detail:
            parts.append(f"at 0x{self.address:08X}")
        return parts

    def __str__(self) -> str:
        context = self.context()
        return f"{self.detail} ({', '.join(context)})" if context else self.detail


# --- identification and geometry -----------------------------------------------------------------

class IdentificationError(TargetError):
    """The chip behind the probe could not be identified as a part we know how to program."""


class UnknownDevice(IdentificationError):
    """DBGMCU_IDCODE names a DEV_ID missing from the family database."""

    def __init__(self, message: str, *, idcode: int, **context) -> None:
        super().__init__(message, **context)
        self.idcode = idcode
        self.dev_id = idcode & 0xFFF


class CoreMismatch(IdentificationError):
    """CPUID names a different core than the DEV_ID's line has: one of the two reads is wrong
    (wrong IDCODE register for this core, a clone, or a bus fault read as data)."""


class GeometryError(TargetError):
    """The flash layout asked for does not exist on this part (size, bank mode, address)."""


class FlashSizeError(GeometryError):
    """The flash-size register holds a value this line cannot have (erased, zero, too large)."""


class AddressNotInFlash(GeometryError):
    """An address lies outside every erase unit of the part's flash (or in a gap between banks)."""


# --- firmware images -----------------------------------------------------------------------------

class ImageError(TargetError):
    """The firmware image cannot be used. Names the file and, for text formats, the line."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 **context) -> None:
        super().__init__(message, **context)
        self.path = Path(path) if path is not None else None
        self.line = line


class ImageNotFound(ImageError):
    """The image file does not exist or is not a regular file."""


class ImageUnreadable(ImageError):
    """The image file exists but could not be read (permissions, I/O error)."""


class ImageFormatError(ImageError):
    """The format is unknown, cannot be detected, or the options do not suit it."""


class MissingBaseAddress(ImageFormatError):
    """A raw binary was given without the address it belongs at."""


class ImageCorrupt(ImageError):
    """The file does not parse as the format it claims to be."""


class ChecksumError(ImageCorrupt):
    """A record's checksum does not match its contents (Intel HEX, S-record)."""


class TruncatedImage(ImageCorrupt):
    """The file ends early: a missing end record, or an ELF shorter than its headers say."""


class ImageOverlap(ImageError):
    """Two records (or ELF segments) write the same address; the image is ambiguous."""


class EmptyImage(ImageError):
    """The image holds no bytes to program."""


class ImageOutOfRange(ImageError):
    """Part of the image lies outside the chip's flash; refused before anything is erased."""


__all__ = [
    "TargetError", "IdentificationError", "UnknownDevice", "CoreMismatch", "GeometryError",
    "FlashSizeError", "AddressNotInFlash", "ImageError", "ImageNotFound", "ImageUnreadable",
    "ImageFormatError", "MissingBaseAddress", "ImageCorrupt", "ChecksumError", "TruncatedImage",
    "ImageOverlap", "EmptyImage", "ImageOutOfRange",
]
