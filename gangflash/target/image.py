"""Firmware images: what to write where, read once from the file and checked before any board.

``load_image(path)`` reads a raw binary, Intel HEX, ELF or Motorola S-record file (parsers in
``image_formats.py``) into an :class:`Image`: sorted, non-overlapping segments of (address,
bytes). Gaps between segments stay gaps: nothing here invents fill bytes, because what happens to
unwritten flash (erased, or preserved from the old contents) is the flash planner's decision.
Adjacent pieces are merged into one segment. Anything ambiguous is refused with the file, line
and address named: two records writing the same address (even with the same data), a record that
fails its checksum, a file that ends early, an image with no bytes.

Two hashes, for two questions:

* ``Image.file_sha256``: SHA-256 of the file's bytes as read. This is what a person can compute
  with ``sha256sum`` and write into a batch config to pin "this exact file".
* ``Image.sha256``: SHA-256 of the *content*, format-independent: for each segment in address
  order, its address and its length as 8-byte big-endian integers, then its bytes. The same
  firmware as HEX, BIN (at the same base) or ELF hashes the same; an ELF rebuilt with other debug
  info but identical flash content hashes the same; moving a byte or a gap changes it. The entry
  point is not included (it is not flash content). The journal records this one as "what went on
  the chip".
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gangflash.target.errors import (EmptyImage, ImageCorrupt, ImageFormatError, ImageNotFound,
                                     ImageOutOfRange, ImageOverlap, ImageUnreadable,
                                     MissingBaseAddress)
from gangflash.target.image_formats import (ELF_MAGIC, Chunk, Parsed, parse_binary, parse_elf,
                                            parse_intel_hex, parse_srec)

log = logging.getLogger(__name__)

FORMATS = ("bin", "hex", "elf", "srec")
"""Canonical format names accepted by ``load_image(format=...)``."""

_ALIASES = {
    "bin": "bin", "binary": "bin", "raw": "bin",
    "hex": "hex", "ihex": "hex", "intelhex": "hex", "intel-hex": "hex",
    "elf": "elf", "axf": "elf",
    "srec": "srec", "s19": "srec", "s28": "srec", "s37": "srec", "mot": "srec", "motorola": "srec",
}
_EXTENSIONS = {
    ".bin": "bin", ".hex": "hex", ".ihx": "hex", ".ihex": "hex", ".elf": "elf", ".axf": "elf",
    ".out": "elf", ".srec": "srec", ".s19": "srec", ".s28": "srec", ".s37": "srec",
    ".mot": "srec", ".mhx": "srec",
}


@dataclass(frozen=True)
class Segment:
    """Contiguous bytes to write, starting at ``address``."""

    address: int
    data: bytes

    @property
    def end(self) -> int:
        """First address after the segment."""
        return self.address + len(self.data)

    @property
    def size(self) -> int:
        """Bytes in the segment."""
        return len(self.data)


@dataclass(frozen=True)
class Image:
    """A firmware image: sorted, non-overlapping, non-adjacent segments (gaps kept as gaps)."""

    path: Path
    format: str
    segments: tuple[Segment, ...]
    file_sha256: str                # hex digest of the file's bytes
    entry_point: int | None = None  # ELF e_entry, HEX start address, S7/S8/S9 address

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def size(self) -> int:
        """Bytes of data (gaps not counted)."""
        return sum(segment.size for segment in self.segments)

    @property
    def start(self) -> int:
        """Lowest address written."""
        return self.segments[0].address

    @property
    def end(self) -> int:
        """First address after the highest byte written."""
        return self.segments[-1].end

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the content (see the module docstring for the exact form hashed)."""
        digest = hashlib.sha256()
        for segment in self.segments:
            digest.update(struct.pack(">QQ", segment.address, segment.size))
            digest.update(segment.data)
        return digest.hexdigest()

    def clipped(self, start: int, end: int) -> list[Segment]:
        """The parts of the image inside [start, end), as segments."""
        result = []
        for segment in self.segments:
            low, high = max(segment.address, start), min(segment.end, end)
            if low < high:
                offset = low - segment.address
                result.append(Segment(low, segment.data[offset:offset + high - low]))
        return result

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk], *, path: str | Path, format: str,
                    file_sha256: str = "", entry_point: int | None = None) -> Image:
        """Assemble chunks: refuse overlaps and emptiness, merge what touches."""
        path = Path(path)
        ordered = sorted((c for c in chunks if c.data), key=lambda c: c.address)
        if not ordered:
            raise EmptyImage(f"{path}: the image holds no data bytes (a {format} file with no "
                             "data records or loadable segments); nothing to program", path=path)
        merged: list[tuple[int, bytearray]] = []
        previous: Chunk | None = None
        for chunk in ordered:
            if previous is not None and chunk.address < previous.address + len(previous.data):
                overlap_end = min(previous.address + len(previous.data),
                                  chunk.address + len(chunk.data))
                raise ImageOverlap(
                    f"{path}: addresses 0x{chunk.address:08X}-0x{overlap_end - 1:08X} are "
                    f"written twice, by {previous.origin} and by {chunk.origin}; each address "
                    "may be written once, even with the same data", path=path,
                    line=_line_of(chunk.origin), address=chunk.address)
            if merged and merged[-1][0] + len(merged[-1][1]) == chunk.address:
                merged[-1][1].extend(chunk.data)
            else:
                merged.append((chunk.address, bytearray(chunk.data)))
            previous = chunk
        segments = tuple(Segment(address, bytes(data)) for address, data in merged)
        return cls(path=path, format=format, segments=segments, file_sha256=file_sha256,
                   entry_point=entry_point)


def _line_of(origin: str) -> int | None:
    """The line number in an origin like "line 12", for the error's ``line`` field."""
    words = origin.split()
    if len(words) == 2 and words[0] == "line" and words[1].isdigit():
        return int(words[1])
    return None


def detect_format(path: Path, head: bytes) -> str | None:
    """Format from the extension, else from the content; None if neither tells.

    The extension wins (a ``.elf`` that is not ELF is then reported as a corrupt ELF, rather than
    quietly read as something else); content decides for unknown extensions: ELF magic, a ':'
    record (HEX) or an 'S0'..'S9' record (S-record) at the first non-blank character."""
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    if head.startswith(ELF_MAGIC):
        return "elf"
    text = head.lstrip()
    if text[:1] == b":":
        return "hex"
    if text[:1] == b"S" and text[1:2].isdigit():
        return "srec"
    return None


def load_image(path: str | Path, *, format: str | None = None,
               base_address: int | None = None) -> Image:
    """Read a firmware image file (see the module docstring for what is checked).

    ``format`` is one of ``FORMATS`` (or an alias such as "ihex", "s19", "binary"); ``None``
    detects it. ``base_address`` places a raw binary and is refused for the other formats, which
    carry their own addresses."""
    path = Path(path)
    data = _read(path)
    if format is not None:
        chosen = _ALIASES.get(format.lower())
        if chosen is None:
            raise ImageFormatError(f"{path}: unknown format {format!r}; use one of "
                                   f"{', '.join(FORMATS)}", path=path)
    else:
        chosen = detect_format(path, data[:64])
        if chosen is None:
            if base_address is None:
                raise ImageFormatError(
                    f"{path}: cannot tell the format (extension {path.suffix or 'none'}, content "
                    "neither ELF, Intel HEX nor S-record); name it with format= (bin, hex, elf, "
                    "srec), a raw binary also needs base_address", path=path)
            chosen = "bin"
    parsed = _parse(chosen, data, path, base_address)
    image = Image.from_chunks(parsed.chunks, path=path, format=chosen,
                              file_sha256=hashlib.sha256(data).hexdigest(),
                              entry_point=parsed.entry_point)
    log.info("%s: %s image, %d bytes in %d segment(s) 0x%08X-0x%08X, sha256 %s", path, chosen,
             image.size, len(image.segments), image.start, image.end - 1, image.sha256[:16])
    return image


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageNotFound(f"{path}: no such image file", path=path) from None
    except IsADirectoryError:
        raise ImageNotFound(f"{path}: is a directory, not an image file", path=path) from None
    except OSError as err:
        raise ImageUnreadable(f"{path}: cannot read the image file ({err.strerror or err})",
                              path=path) from None


def _parse(chosen: str, data: bytes, path: Path, base_address: int | None) -> Parsed:
    if chosen == "bin":
        if base_address is None:
            raise MissingBaseAddress(
                f"{path}: a raw binary has no addresses; give base_address (usually the flash "
                "base, 0x08000000)", path=path)
        if not data:
            raise _empty(path, "bin")
        return parse_binary(data, path, base_address)
    if base_address is not None:
        raise ImageFormatError(
            f"{path}: base_address 0x{base_address:08X} applies to raw binaries only; a {chosen} "
            "file carries its own addresses", path=path)
    if not data.strip():
        raise _empty(path, chosen)
    if chosen == "hex":
        return parse_intel_hex(data, path)
    if chosen == "elf":
        return parse_elf(data, path)
    if chosen == "srec":
        return parse_srec(data, path)
    raise ImageCorrupt(f"{path}: no parser for format {chosen!r}", path=path)


def _empty(path: Path, chosen: str) -> EmptyImage:
    return EmptyImage(f"{path}: the file is empty; a {chosen} image needs at least one data "
                      "byte", path=path)


def check_fits(image: Image, flash_start: int, flash_end: int, *, part_name: str,
               regions: Sequence[tuple[int, int]] | None = None) -> None:
    """Refuse an image that writes outside the chip's flash, before anything is erased.

    ``flash_end`` is exclusive. ``regions`` (e.g. ``FlashGeometry.regions``) narrows the check
    to the spans that exist when the banks leave a gap; by default the whole range counts.
    Raises ImageOutOfRange naming the first address outside and the chip's flash range."""
    spans = sorted(regions) if regions is not None else [(flash_start, flash_end)]
    described = ", ".join(f"0x{s:08X}-0x{e - 1:08X}" for s, e in spans)
    total_kib = sum(e - s for s, e in spans) // 1024
    for segment in image.segments:
        address = segment.address
        while address < segment.end:
            span = next(((s, e) for s, e in spans if s <= address < e), None)
            if span is None:
                raise ImageOutOfRange(
                    f"{image.path}: writes 0x{address:08X}, outside the flash of {part_name} "
                    f"({described}, {total_kib} KiB); the image was "
                    "built for another part or another load address", path=image.path,
                    address=address)
            address = span[1]


__all__ = ["FORMATS", "Segment", "Image", "load_image", "detect_format", "check_fits"]
