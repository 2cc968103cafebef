"""Parsers for the four firmware formats, each returning raw chunks for ``image.py`` to assemble.

A chunk is (address, bytes, origin); ``origin`` says where in the file it came from ("line 12",
"ELF program header 1") so overlaps can be reported against the file. The parsers check each
format's own integrity (record checksums, end records, header bounds); ``image.py`` checks what
is common (overlap, emptiness) and builds the ``Image``.

* Intel HEX: parsed by ``intelhex``; its overlap check (any address written twice, same data or
  not) is kept, and its errors are mapped to ours with the line number. ``intelhex`` stops at the
  end-of-file record and does not mind its absence, so both are checked here: a HEX file without
  one is treated as truncated, and records after it (two files concatenated) are refused.
* ELF: ``pyelftools``; the flash content is every PT_LOAD segment's file bytes placed at its
  *physical* address (p_paddr: where a ``.data`` initialiser lives, AT> FLASH), never the zero
  fill up to p_memsz (that is RAM the startup code clears).
* Motorola S-record: our own parser (S0 header, S1/S2/S3 data, S5/S6 counts, S7/S8/S9 start),
  every record's checksum verified; a file must end with a termination record.
* Raw binary: one chunk at the given base address.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import intelhex
from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.elffile import ELFFile

from gangflash.target.errors import (ChecksumError, ImageCorrupt, ImageFormatError,
                                     ImageOverlap, TruncatedImage)

log = logging.getLogger(__name__)

ADDRESS_LIMIT = 1 << 32
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Chunk:
    """Bytes at an address, as one record or segment of the file gave them."""

    address: int
    data: bytes
    origin: str


@dataclass(frozen=True)
class Parsed:
    """What a parser found: chunks in file order and the start address, if the file has one."""

    chunks: list[Chunk]
    entry_point: int | None = None


# --- raw binary ----------------------------------------------------------------------------------

def parse_binary(data: bytes, path: Path, base_address: int) -> Parsed:
    """The whole file at ``base_address``."""
    if not 0 <= base_address < ADDRESS_LIMIT or base_address + len(data) > ADDRESS_LIMIT:
        raise ImageFormatError(
            f"{path}: a {len(data)}-byte binary at base 0x{base_address:X} does not fit the "
            "32-bit address space", path=path, address=base_address)
    return Parsed([Chunk(base_address, data, f"file offset 0 ({len(data)} bytes)")])


# --- Intel HEX -----------------------------------------------------------------------------------

def _text_lines(data: bytes, path: Path, kind: str) -> list[str]:
    """Decode a text format as ASCII and split it at LF (CR LF tolerated), so line numbers match
    what an editor shows; names the first line holding a non-ASCII byte."""
    try:
        lines = [line.removesuffix("\r") for line in data.decode("ascii").split("\n")]
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ImageCorrupt(f"{path}, line {line}: byte 0x{data[err.start]:02X} is not ASCII; "
                           f"{kind} files are plain ASCII text", path=path, line=line) from None
    if lines and not lines[-1]:
        lines.pop()                 # the newline ending the last line opens no new one
    return lines


# intelhex error class -> what was wrong, for our message (its own text repeats the line).
_HEX_PROBLEMS = {
    "RecordLengthError": "the byte count does not match the record's length",
    "RecordTypeError": "record type outside 00-05",
    "EOFRecordError": "malformed end-of-file record",
    "ExtendedSegmentAddressRecordError": "malformed extended segment address (type 02)",
    "ExtendedLinearAddressRecordError": "malformed extended linear address (type 04)",
    "StartSegmentAddressRecordError": "malformed start segment address (type 03)",
    "StartLinearAddressRecordError": "malformed start linear address (type 05)",
    "DuplicateStartAddressRecordError": "a second start address record",
}


def parse_intel_hex(data: bytes, path: Path) -> Parsed:
    """Intel HEX via ``intelhex``, plus end-of-file checks ``intelhex`` does not make."""
    lines = _text_lines(data, path, "Intel HEX")
    eof_line = None
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if eof_line is None:
            if len(text) >= 9 and text[0] == ":" and text[7:9] == "01":
                eof_line = number
        elif text:
            raise ImageCorrupt(
                f"{path}, line {number}: record after the end-of-file record of line "
                f"{eof_line} (two HEX files concatenated?); merge images with a tool that "
                "rewrites the records, or program them as separate images", path=path,
                line=number)
    hexfile = intelhex.IntelHex()
    try:
        hexfile.loadhex(io.StringIO("\n".join(lines) + "\n"))
    except intelhex.AddressOverlapError as err:
        raise ImageOverlap(
            f"{path}, line {err.line}: address 0x{err.address:08X} is written again (an earlier "
            "record already wrote it); each address may be written once, even with the same "
            "data", path=path, line=err.line, address=err.address) from None
    except intelhex.RecordChecksumError as err:
        raise ChecksumError(
            f"{path}, line {err.line}: Intel HEX record checksum does not match "
            f"({_snippet(lines, err.line)}); the file is corrupt, re-export it", path=path,
            line=err.line) from None
    except intelhex.HexRecordError as err:
        line = getattr(err, "line", None)
        where = f", line {line}" if line else ""
        why = _HEX_PROBLEMS.get(type(err).__name__, "not a ':' record of hex digits")
        raise ImageCorrupt(
            f"{path}{where}: invalid Intel HEX record ({_snippet(lines, line)}): {why}; records "
            "are ':', byte count, 16-bit address, type 00-05, data, checksum", path=path,
            line=line) from None
    if eof_line is None:
        raise TruncatedImage(
            f"{path}: no end-of-file record (:00000001FF) after line {len(lines)}; the file is "
            "truncated or not Intel HEX", path=path, line=len(lines))
    entry = None
    start = hexfile.start_addr or {}
    if "EIP" in start:
        entry = start["EIP"]
    elif "CS" in start:
        entry = start["CS"] * 16 + start["IP"]
    chunks = [Chunk(s, bytes(hexfile.tobinarray(start=s, size=e - s)), "records")
              for s, e in hexfile.segments()]
    return Parsed(chunks, entry)


def _snippet(lines: list[str], line: int | None) -> str:
    if not line or line > len(lines):
        return "no record text"
    text = lines[line - 1].strip()
    return repr(text if len(text) <= 48 else text[:45] + "...")


# --- ELF ---------------------------------------------------------------------------------------

def parse_elf(data: bytes, path: Path) -> Parsed:
    """PT_LOAD segments with file bytes, at their physical addresses."""
    if not data.startswith(ELF_MAGIC):
        raise ImageCorrupt(
            f"{path}: not an ELF file (starts {data[:4]!r}, ELF starts b'\\x7fELF'); if it is "
            "a raw binary give format='bin' and a base address", path=path)
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        entry = elf["e_entry"]
        headers = [segment.header for segment in elf.iter_segments()]
    except (ELFError, ELFParseError, struct.error, ValueError, EOFError, IndexError) as err:
        # A short file fails inside pyelftools' struct parsing with ELFParseError.
        raise TruncatedImage(f"{path}: ELF headers cannot be read ({err}); the file is "
                             "truncated or corrupt", path=path) from None
    if machine != "EM_ARM":
        raise ImageFormatError(f"{path}: ELF for {machine}, not ARM (EM_ARM); gangflash "
                               "programs Cortex-M images", path=path)
    chunks = []
    for number, header in enumerate(headers):
        if header["p_type"] != "PT_LOAD" or header["p_filesz"] == 0:
            continue
        offset, size, paddr = header["p_offset"], header["p_filesz"], header["p_paddr"]
        if offset + size > len(data):
            raise TruncatedImage(
                f"{path}: program header {number} wants bytes 0x{offset:X}-0x{offset + size:X} "
                f"but the file has {len(data)} bytes; the file is truncated", path=path,
                address=paddr)
        if paddr + size > ADDRESS_LIMIT:
            raise ImageFormatError(f"{path}: program header {number} at 0x{paddr:X} runs past "
                                   "the 32-bit address space", path=path, address=paddr)
        origin = (f"ELF program header {number} (vaddr 0x{header['p_vaddr']:08X}, "
                  f"paddr 0x{paddr:08X})")
        chunks.append(Chunk(paddr, data[offset:offset + size], origin))
    return Parsed(chunks, entry)


# --- Motorola S-record -------------------------------------------------------------------------

_SREC_ADDRESS_BYTES = {"0": 2, "1": 2, "2": 3, "3": 4, "5": 2, "6": 3, "7": 4, "8": 3, "9": 2}


def parse_srec(data: bytes, path: Path) -> Parsed:
    """Motorola S-records, every checksum and count verified."""
    lines = _text_lines(data, path, "S-record")
    chunks: list[Chunk] = []
    entry: int | None = None
    end_line: int | None = None
    data_records = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        corrupt = partial(_corrupt, path, number)
        kind = text[1:2]
        if text[:1] != "S" or kind not in _SREC_ADDRESS_BYTES:
            what = "S4 is reserved" if text[:2] == "S4" else f"starts {text[:2]!r}"
            raise corrupt(f"not an S-record ({what}); records are S0-S3, S5-S9")
        try:
            body = bytes.fromhex(text[2:])
        except ValueError:
            raise corrupt("record holds characters that are not hex digits") from None
        if not body or body[0] != len(body) - 1:
            raise corrupt(f"byte count {body[0] if body else 'missing'} does not match the "
                          f"{max(len(body) - 1, 0)} bytes after it (truncated line?)")
        if (~sum(body[:-1])) & 0xFF != body[-1]:
            raise corrupt(f"S-record checksum 0x{body[-1]:02X} does not match the record "
                          f"(expected 0x{(~sum(body[:-1])) & 0xFF:02X}); the file is corrupt",
                          ChecksumError)
        width = _SREC_ADDRESS_BYTES[kind]
        if len(body) < 1 + width + 1:
            raise corrupt(f"S{kind} record too short for its {width}-byte address")
        address = int.from_bytes(body[1:1 + width], "big")
        payload = body[1 + width:-1]
        if end_line is not None and kind != "0":
            raise corrupt(f"record after the termination record of line {end_line} (two files "
                          "concatenated?)")
        if kind == "0":
            log.debug("%s: S-record header %r", path, payload.decode("ascii", "replace"))
        elif kind in "123":
            data_records += 1
            if address + len(payload) > ADDRESS_LIMIT:
                raise corrupt(f"data at 0x{address:08X} runs past the 32-bit address space")
            if payload:
                chunks.append(Chunk(address, payload, f"line {number}"))
        elif kind in "56":
            if address != data_records:
                raise corrupt(f"S{kind} count says {address} data records, the file has "
                              f"{data_records} before it (records lost?)")
        else:
            entry = address
            end_line = number
    if end_line is None:
        raise TruncatedImage(f"{path}: no S7/S8/S9 termination record after line {len(lines)}; "
                             "the file is truncated", path=path, line=len(lines))
    return Parsed(chunks, entry)


def _corrupt(path: Path, line: int, why: str,
             cls: type[ImageCorrupt] = ImageCorrupt) -> ImageCorrupt:
    return cls(f"{path}, line {line}: {why}", path=path, line=line)


__all__ = ["Chunk", "Parsed", "parse_binary", "parse_intel_hex", "parse_elf", "parse_srec",
           "ELF_MAGIC"]
