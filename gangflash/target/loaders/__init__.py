"""The flash loaders: small Thumb routines run in the target's SRAM, one per flash-controller
generation (``f1``: STM32F0/F1/F3 FPEC; ``f4``: F2/F4/F7; ``l4``: L4/G0/G4/WB), each with a
streaming programmer and a CRC-32 routine. A loader description is data: the machine code, its
entry offsets and the protocol constants, from which the host lays out SRAM and drives the run.

Sources: ``f1.s``, ``f4.s``, ``l4.s`` beside this file (with ``protocol.s``, the definitions they
share, and ``crc32.s``); the committed ``.bin`` files are their assembled bytes. Rebuild with
``python -m gangflash.target.loaders.build``; ``tests/target/loaders/test_reassemble.py``
reassembles the sources and compares.

Streaming protocol (the loader keeps running while the host feeds it, so USB transfers overlap
flash programming and the core is never halted between chunks):

* Start: PC = ``layout.program_pc``, r0 = the control block (CB), SP = ``layout.stack_top`` (the
  loaders use no stack; the area only catches a fault's frame), xPSR = 0x01000000, PRIMASK = 1.
  The host has unlocked the controller, cleared stale error flags, erased, ensured the F1 FPEC
  clock (HSI); the loader does none of that.
* CB (32-bit words): ``CB_WP`` host write pointer, ``CB_RP`` loader read pointer (both absolute
  addresses in the ring), ``CB_RING_START``, ``CB_RING_END`` (exclusive; size a multiple of 16),
  ``CB_DEST`` next flash address, ``CB_REMAINING`` bytes left (a multiple of the unit),
  ``CB_STATUS``, ``CB_FLASH_REGS`` controller base, ``CB_FLAGS`` (:data:`FLAG_IWDG`,
  :data:`FLAG_VERIFY`, F4 PSIZE in bits 9:8), ``CB_ERROR_SR`` SR at a flash error, ``CB_ABORT``
  (host: non-zero = stop at the next unit boundary), ``CB_SCRATCH`` (loader-owned).
* Ring: empty when WP == RP; the host never fills the last :data:`RING_GUARD` bytes, writes whole
  units, data before WP (:func:`ring_free` says how much fits). The loader wraps RP at RING_END.
  It publishes DEST, REMAINING, then RP: any triple the host reads is consistent ("the unit at
  DEST, data at RP, is the next to complete"), and a slot is released only once its unit
  programmed (and verified).
* Per unit: program at DEST (F1 halfword with PG; F4 CR = PG | PSIZE << 8 then a PSIZE-wide
  store; L4 two words, low first, with PG), wait for BSY (reloading the IWDG with FLAG_IWDG),
  check the error flags (:attr:`LoaderBlob.error_mask`), with FLAG_VERIFY read the unit back.
  Bookkeeping overlaps BSY; after BSY clears only "check, store" remains.
* Stop: STATUS :class:`Status` (1 done, 2 aborted, 3 flash error with CB_ERROR_SR, 4 verify
  mismatch, 5 bad request = F4 PSIZE 3); CR.PG cleared; CB_STATUS written last; halt at BKPT with
  r0 = STATUS, r1 = DEST (the failing unit, or the next one), r2 = REMAINING, r3 = SR now.

CRC routine: PC = ``layout.crc_pc``, r0 = a CRC job block (CJ, built by
:meth:`LoaderBlob.crc_job`): address, page size (multiple of 4), page count, flags (FLAG_IWDG:
reload before every page), 1 KiB table scratch, output array. Word i of the output becomes
``zlib.crc32(page i)``. Halts at BKPT with r0 = 0. The table and outputs reuse the ring's memory
(the two routines never run at once).
"""

from __future__ import annotations

import array
import enum
import struct
import sys
import zlib
from dataclasses import dataclass
from importlib import resources

# --- control block (CB): offsets of 32-bit words -------------------------------------------------
CB_WP = 0x00
CB_RP = 0x04
CB_RING_START = 0x08
CB_RING_END = 0x0C
CB_DEST = 0x10
CB_REMAINING = 0x14
CB_STATUS = 0x18
CB_FLASH_REGS = 0x1C
CB_FLAGS = 0x20
CB_ERROR_SR = 0x24
CB_ABORT = 0x28
CB_SCRATCH = 0x2C
CB_SIZE = 0x30

FLAG_IWDG = 1 << 0              # reload the IWDG every unit and while spinning
FLAG_VERIFY = 1 << 1            # read every unit back after programming
FLAG_PSIZE_SHIFT = 8            # F4: PSIZE in bits 9:8 (0 x8, 1 x16, 2 x32)

RING_GUARD = 8                  # bytes the host never fills, so that full != empty
RING_ALIGN = 16                 # ring start and size

# --- CRC job block (CJ) --------------------------------------------------------------------------
CJ_ADDRESS = 0x00
CJ_PAGE_SIZE = 0x04
CJ_COUNT = 0x08
CJ_FLAGS = 0x0C
CJ_TABLE = 0x10
CJ_OUT = 0x14
CJ_SCRATCH = 0x18
CJ_SIZE = 0x1C
CRC_TABLE_SIZE = 1024

# --- blob layout ----------------------------------------------------------------------------------
PROGRAM_ENTRY = 0x0             # b.w program_entry
CRC_ENTRY = 0x4                 # b.w crc_entry
EXIT_BKPT = 0x8                 # bkpt #0, for hosts that set LR = blob + 8 + 1
CRC_UNIT_ENTRY = 0xC            # b.w crc_unit_entry (CRC-32/MPEG-2 through the chip's CRC unit)

IWDG_KR = 0x40003000
IWDG_RELOAD = 0xAAAA

# --- SRAM layout policy ---------------------------------------------------------------------------
MAX_RING = 16 * 1024            # OpenOCD's F4/L4 cap; 0.4 s of F103 programming, ~60 ms at F4 x32
MIN_RING = CRC_TABLE_SIZE + 256  # the CRC table and 64 result words live in the ring's memory
STACK_SIZE = 64                 # no loader uses a stack; room for one exception frame


class Status(enum.IntEnum):
    RUNNING = 0
    DONE = 1
    ABORTED = 2
    FLASH_ERROR = 3
    VERIFY = 4
    BAD_REQUEST = 5


@dataclass(frozen=True)
class Layout:
    """Where a loader and its data sit in SRAM (all absolute addresses)."""

    code_addr: int
    cb_addr: int
    crc_job_addr: int
    ring_start: int
    ring_end: int
    crc_table_addr: int         # overlays the ring
    crc_out_addr: int           # overlays the ring, after the table
    crc_max_pages: int          # result words that fit
    stack_top: int
    program_pc: int
    crc_pc: int
    exit_lr: int                # address of a BKPT in the blob, Thumb bit set
    crc_unit_pc: int = 0

    @property
    def ring_size(self) -> int:
        return self.ring_end - self.ring_start


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class LoaderBlob:
    """One generation's loader: code and everything the host needs to run it."""

    name: str                   # "f1", "f4", "l4"
    code: bytes
    unit: int                   # bytes per programming unit (F4: at the default PSIZE x32)
    error_mask: int             # SR bits the loader treats as a flash error
    bsy_mask: int
    sr_offset: int              # flash register offsets, for decoding r3 / CB_ERROR_SR
    cr_offset: int
    flash_regs: int             # default controller base (F1 XL bank 2: +0x40)
    program_entry: int = PROGRAM_ENTRY
    crc_entry: int = CRC_ENTRY
    exit_bkpt: int = EXIT_BKPT
    psize_units: tuple[int, ...] = ()   # F4: unit per PSIZE value (x8, x16, x32)

    @property
    def min_ram(self) -> int:
        """Smallest SRAM :meth:`layout` accepts: code, CB, CRC job, minimum ring, stack."""
        return self._ring_start(0) + MIN_RING + STACK_SIZE

    def _ring_start(self, code_addr: int) -> int:
        cb = _align_up(code_addr + len(self.code), RING_ALIGN)
        return _align_up(cb + CB_SIZE + CJ_SIZE, RING_ALIGN)

    def layout(self, ram_base: int, ram_size: int, ring_size: int | None = None) -> Layout:
        """Code at the bottom of SRAM, then the CB and the CRC job block, then the ring (the
        biggest multiple of 16 up to :data:`MAX_RING` that fits, or ``ring_size``), a small
        stack at the top. The CRC table and results reuse the ring's memory."""
        code_addr = _align_up(ram_base, 8)
        cb_addr = _align_up(code_addr + len(self.code), RING_ALIGN)
        crc_job_addr = cb_addr + CB_SIZE
        ring_start = self._ring_start(code_addr)
        stack_top = (ram_base + ram_size) & ~7
        room = (stack_top - STACK_SIZE - ring_start) // RING_ALIGN * RING_ALIGN
        if ring_size is None:
            ring_size = min(MAX_RING, room)
        if ring_size % RING_ALIGN or ring_size < MIN_RING:
            raise ValueError(f"ring size {ring_size} must be a multiple of {RING_ALIGN} and at least {MIN_RING}")
        if ring_size > room:
            raise ValueError(f"{self.name} loader needs {self.min_ram + ring_size - MIN_RING} bytes of "
                             f"SRAM for a {ring_size}-byte ring; 0x{ram_base:08X} has {ram_size}")
        ring_end = ring_start + ring_size
        return Layout(code_addr=code_addr, cb_addr=cb_addr, crc_job_addr=crc_job_addr,
                      ring_start=ring_start, ring_end=ring_end,
                      crc_table_addr=ring_start, crc_out_addr=ring_start + CRC_TABLE_SIZE,
                      crc_max_pages=(ring_size - CRC_TABLE_SIZE) // 4, stack_top=stack_top,
                      program_pc=code_addr + self.program_entry, crc_pc=code_addr + self.crc_entry,
                      exit_lr=(code_addr + self.exit_bkpt) | 1,
                      crc_unit_pc=code_addr + CRC_UNIT_ENTRY)

    def unit_for(self, psize: int | None = None) -> int:
        """Programming unit in bytes; on F4 for the given PSIZE (None: the default x32)."""
        if psize is None or not self.psize_units:
            return self.unit
        if not 0 <= psize < len(self.psize_units):
            raise ValueError(f"PSIZE {psize} is not supported (x64 needs external VPP)")
        return self.psize_units[psize]

    def flags(self, iwdg: bool = False, verify: bool = False, psize: int | None = None) -> int:
        """A CB_FLAGS value. ``psize`` is F4-only (default x32 = 2)."""
        value = (FLAG_IWDG if iwdg else 0) | (FLAG_VERIFY if verify else 0)
        if self.psize_units:
            psize = 2 if psize is None else psize
            self.unit_for(psize)
            value |= psize << FLAG_PSIZE_SHIFT
        elif psize is not None:
            raise ValueError(f"{self.name} has no PSIZE")
        return value

    def control_block(self, layout: Layout, dest: int, length: int, flags: int | None = None,
                      flash_regs: int | None = None) -> bytes:
        """The initial CB: empty ring (WP = RP = ring start), ``length`` bytes to program at
        ``dest``, status running, no abort. ``flags`` None: :meth:`flags` defaults (F4 x32)."""
        if flags is None:
            flags = self.flags()
        unit = self.unit_for((flags >> FLAG_PSIZE_SHIFT) & 3 if self.psize_units else None)
        if length % unit or dest % unit:
            raise ValueError(f"{self.name}: destination and length must be multiples of {unit}")
        words = [0] * (CB_SIZE // 4)
        words[CB_WP // 4] = words[CB_RP // 4] = layout.ring_start
        words[CB_RING_START // 4] = layout.ring_start
        words[CB_RING_END // 4] = layout.ring_end
        words[CB_DEST // 4] = dest
        words[CB_REMAINING // 4] = length
        words[CB_FLASH_REGS // 4] = self.flash_regs if flash_regs is None else flash_regs
        words[CB_FLAGS // 4] = flags
        return struct.pack(f"<{len(words)}I", *words)

    def crc_job(self, layout: Layout, address: int, page_size: int, count: int,
                iwdg: bool = False) -> bytes:
        """A CJ block for ``count`` pages of ``page_size`` bytes from ``address``; results go
        to ``layout.crc_out_addr``."""
        if address % 4 or page_size % 4 or page_size <= 0:
            raise ValueError("CRC address and page size must be multiples of 4, page size > 0")
        if count > layout.crc_max_pages:
            raise ValueError(f"{count} pages: the layout has room for {layout.crc_max_pages} results")
        return struct.pack("<7I", address, page_size, count, FLAG_IWDG if iwdg else 0,
                           layout.crc_table_addr, layout.crc_out_addr, 0)

    def crc_unit_job(self, layout: Layout, address: int, page_size: int, count: int, crc_base: int,
                     iwdg: bool = False) -> bytes:
        """A CJ block for the CRC-unit routine (entry ``layout.crc_unit_pc``): CJ_TABLE carries
        the CRC unit's base; results (CRC-32/MPEG-2 per page) go to ``layout.crc_out_addr``."""
        if address % 4 or page_size % 16 or page_size <= 0:
            raise ValueError("CRC-unit address must be a multiple of 4, page size of 16")
        if count > layout.crc_max_pages:
            raise ValueError(f"{count} pages: the layout has room for {layout.crc_max_pages} results")
        return struct.pack("<7I", address, page_size, count, FLAG_IWDG if iwdg else 0,
                           crc_base, layout.crc_out_addr, 0)


def crc32_mpeg2(data: bytes) -> int:
    """What the STM32 CRC unit computes over ``data`` fed as little-endian words: CRC-32/MPEG-2
    (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final XOR) of each word's bytes taken
    most significant first. Computed with zlib (C speed): byte-swap the words, reflect each
    byte, take zlib's reflected CRC-32, undo its final XOR and reflect the result."""
    if len(data) % 4:
        raise ValueError("the CRC unit takes whole words")
    words = array.array("I", data)
    if sys.byteorder == "little":
        words.byteswap()
    reflected = words.tobytes().translate(_REFLECT)
    crc = zlib.crc32(reflected) ^ 0xFFFFFFFF
    return int(f"{crc:032b}"[::-1], 2)


_REFLECT = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ring_free(wp: int, rp: int, ring_start: int, ring_end: int) -> int:
    """Bytes the host may write at WP now (wrapping included), keeping :data:`RING_GUARD` free."""
    size = ring_end - ring_start
    used = (wp - rp) % size
    return max(size - used - RING_GUARD, 0)


_SPECS: dict[str, dict] = {
    "f1": dict(unit=2, error_mask=0x14, bsy_mask=1 << 0, sr_offset=0x0C, cr_offset=0x10,
               flash_regs=0x40022000),
    "f4": dict(unit=4, error_mask=0xF2, bsy_mask=1 << 16, sr_offset=0x0C, cr_offset=0x10,
               flash_regs=0x40023C00, psize_units=(1, 2, 4)),
    "l4": dict(unit=8, error_mask=0x43FA, bsy_mask=1 << 16, sr_offset=0x10, cr_offset=0x14,
               flash_regs=0x40022000),
}
_ALIASES = {"f0": "f1", "f3": "f1", "f2": "f4", "f7": "f4", "g0": "l4", "g4": "l4", "wb": "l4"}
_loaded: dict[str, LoaderBlob] = {}


def loader_for(family: str) -> LoaderBlob:
    """The loader of a family or generation name: ``F1``/``f1``, ``F0``/``F3`` (FPEC), ``F2``/
    ``F7`` (F4 interface), ``G0``/``G4``/``WB`` (L4 interface)."""
    key = family.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        raise KeyError(f"no flash loader for {family!r}; known: {', '.join(_SPECS)}")
    if key not in _loaded:
        path = resources.files(__package__).joinpath(f"{key}.bin")
        try:
            code = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{key}.bin missing: run python -m gangflash.target.loaders.build") from None
        _loaded[key] = LoaderBlob(name=key, code=code, **_SPECS[key])
    return _loaded[key]


def __getattr__(name: str):
    # F1, F4, L4 and LOADERS load their .bin on first use, so that the build module (a
    # submodule) can run before the .bin files exist.
    if name in ("F1", "F4", "L4"):
        return loader_for(name)
    if name == "LOADERS":
        return {key: loader_for(key) for key in _SPECS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")] + [
    "F1", "F4", "L4", "LOADERS", "Layout", "LoaderBlob", "Status", "loader_for", "ring_free"]
