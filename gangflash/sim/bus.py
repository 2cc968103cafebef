"""The chip's memory map, as both bus masters see it: the core (through Unicorn) and the
debugger (through the AHB-AP).

Plain memory (SRAM, main flash) lives in host buffers mapped into Unicorn, so code runs at
Unicorn speed; main flash is mapped twice (at its base and at the 0x00000000 boot alias with
BOOT0 = 0), from the same buffer. Register blocks are Unicorn MMIO regions whose callbacks reach
the Python models. A core store into flash cannot be refused by Unicorn, so the flash controller
decides what the cells hold and the bus rewrites them once the store has landed ("fix-ups",
settled before the next block, the next flash read and the next register access).
"""

from __future__ import annotations

import ctypes
import logging
import struct
from typing import Callable

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_PROT_ALL, UcError

from .chips import ChipSpec
from .cortex import CortexM
from .errors import BusFault
from .flash import FlashController, FlashMemory

log = logging.getLogger(__name__)

PPB_BASE, PPB_SIZE = 0xE0000000, 0x100000
PERIPH_BASE, PERIPH_SIZE = 0x40000000, 0x30000
SYSTEM_BASE, SYSTEM_SIZE = 0x1FFF0000, 0x10000

Reader = Callable[[int, int], int]              # (offset, size) -> value
Writer = Callable[[int, int, int], None]        # (offset, value, size)


class Bus:
    """Routes accesses; owns the host buffers behind SRAM."""

    def __init__(self, chip: ChipSpec, core: CortexM, flash: FlashMemory) -> None:
        self.chip = chip
        self.core = core
        self.flash = flash
        self.controller: FlashController | None = None
        self.unique_id = chip.unique_id
        self.ppb_read: Callable[[int, int], int] = lambda a, s: 0
        self.ppb_write: Callable[[int, int, int], None] = lambda a, v, s: None
        self.ppb_gate: Callable[[], None] = lambda: None
        self._blocks: dict[int, tuple[int, Reader, Writer]] = {}
        self._fixups: list[tuple[int, bytes]] = []
        self._dirty: list[tuple[int, int]] = []
        self._dirty_ram: list[tuple[int, int]] = []      # SRAM the debugger wrote (core view)
        self._plain: list[tuple[int, int, int]] = []     # (base, size, host address) for SRAM
        self._buffers = []
        uc = core.uc
        uc.mem_map_ptr(chip.flash_base, flash.size, UC_PROT_ALL, flash.address)
        uc.mem_map_ptr(0, flash.size, UC_PROT_ALL, flash.address)
        for base in (chip.flash_base, 0):
            uc.hook_add(UC_HOOK_MEM_WRITE, self._on_flash_write, begin=base, end=base + flash.size - 1)
            uc.hook_add(UC_HOOK_MEM_READ, self._on_flash_read, begin=base, end=base + flash.size - 1)
        flash.on_change = lambda address, length: self._dirty.append((address, length))
        for base, size in chip.sram_regions:
            buffer = (ctypes.c_uint8 * size)()
            self._buffers.append(buffer)
            uc.mem_map_ptr(base, size, UC_PROT_ALL, ctypes.addressof(buffer))
            self._plain.append((base, size, ctypes.addressof(buffer)))
        for alias, target, size in chip.sram_aliases:
            host = next(h for b, s, h in self._plain if b == target)
            uc.mem_map_ptr(alias, size, UC_PROT_ALL, host)
            self._plain.append((alias, size, host))
        uc.mmio_map(PERIPH_BASE, PERIPH_SIZE, self._mmio_periph_read, None, self._mmio_periph_write, None)
        uc.mmio_map(SYSTEM_BASE, SYSTEM_SIZE, self._mmio_system_read, None, self._mmio_system_write, None)
        uc.mmio_map(PPB_BASE, PPB_SIZE, self._mmio_ppb_read, None, self._mmio_ppb_write, None)

    # ------------------------------------------------------------------ wiring
    def add_block(self, base: int, size: int, read: Reader, write: Writer) -> None:
        """Register a peripheral register block (base aligned to 0x400)."""
        for page in range(base, base + size, 0x400):
            self._blocks[page] = (base, read, write)

    def attach_controller(self, controller: FlashController) -> None:
        self.controller = controller
        self.add_block(controller.reg_base, controller.reg_size, controller.read_reg, controller.write_reg)

    # ------------------------------------------------------------------ fix-ups and code cache
    def settle(self) -> None:
        """Make flash cells hold what the controller decided, after Unicorn's raw store."""
        if self._fixups:
            fixups, self._fixups = self._fixups, []
            self.core.before_block = None       # nothing deferred left: the block hook skips it
            for address, data in fixups:
                off = address - self.flash.base
                self.flash.view[off:off + len(data)] = data

    def flush_code_cache(self) -> None:
        """Drop translated code for memory that changed behind Unicorn's back (call only while
        the core is stopped): flash the controller programmed, and SRAM the debugger wrote.

        The debugger's SRAM writes go straight into the host buffer, which Unicorn's
        self-modifying-code detection does not see; on hardware the core fetches what is in SRAM
        now. Without this a tool that loads a second algorithm where the first one ran (OpenOCD:
        flash loader, then its CRC routine, both at the working area's start) would execute the
        stale translation of the first.
        """
        if self._dirty_ram:
            ram, self._dirty_ram = self._dirty_ram, []
            for base, size, host in self._plain:
                hits = [(a, n) for a, n in ram if base <= a < base + size]
                if hits:
                    low = min(a for a, _ in hits)
                    high = min(max(a + n for a, n in hits), base + size)
                    self._flush_ram_host(host + low - base, high - low)
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, []
        low = min(a for a, _ in dirty)
        high = max(a + n for a, n in dirty)
        for base in (self.flash.base, 0):
            start = low - self.flash.base + base
            self.core.uc.ctl_remove_cache(start, start + (high - low))

    def _flush_ram_host(self, host: int, length: int) -> None:
        """Drop translations of SRAM at host address ``host``, under every core address that
        maps it (an SRAM region and its alias share one buffer)."""
        for base, size, h in self._plain:
            if h <= host < h + size:
                start = base + host - h
                self.core.uc.ctl_remove_cache(start, min(start + length, base + size))

    def _flash_address(self, address: int) -> int:
        return address if address >= self.flash.base else address + self.flash.base

    def _on_flash_write(self, uc, access, address, size, value, _user) -> None:
        self.settle()
        address = self._flash_address(address)
        try:
            self.controller.flash_store(address, value & ((1 << (8 * size)) - 1), size, False)
        except BusFault as fault:
            self.core.bus_fault_pending(fault.address)
        except Exception:                                   # never let Python errors into Unicorn
            log.exception("flash store at 0x%08X", address)
            self.core.bus_fault_pending(address)
        self._fixups.append((address, self.flash.read(address, size)))
        # settle at the next block boundary (the hook calls it only while a fix-up is deferred)
        self.core.before_block = self.settle

    def _on_flash_read(self, uc, access, address, size, value, _user) -> None:
        if self._fixups:
            self.settle()

    # ------------------------------------------------------------------ core-side MMIO
    def _mmio_periph_read(self, uc, offset, size, _user) -> int:
        self.settle()
        return self._guarded(self._periph_read, PERIPH_BASE + offset, size)

    def _mmio_periph_write(self, uc, offset, size, value, _user) -> None:
        self.settle()
        self._guarded(self._periph_write, PERIPH_BASE + offset, size, value)

    def _mmio_system_read(self, uc, offset, size, _user) -> int:
        return self._guarded(self._system_read, SYSTEM_BASE + offset, size)

    def _mmio_system_write(self, uc, offset, size, value, _user) -> None:
        self._guarded(self._system_write, SYSTEM_BASE + offset, size, value)

    def _mmio_ppb_read(self, uc, offset, size, _user) -> int:
        return self._guarded(self.ppb_read, PPB_BASE + offset, size)

    def _mmio_ppb_write(self, uc, offset, size, value, _user) -> None:
        self._guarded(self.ppb_write, PPB_BASE + offset, value, size)

    def _guarded(self, fn, address, *args):
        try:
            return fn(address, *args)
        except BusFault as fault:
            self.core.bus_fault_pending(fault.address)
        except Exception:
            log.exception("register access at 0x%08X", address)
            self.core.bus_fault_pending(address)
        return 0

    # ------------------------------------------------------------------ register blocks
    def _periph_read(self, address: int, size: int) -> int:
        block = self._blocks.get(address & ~0x3FF)
        if block is None:
            return 0
        base, read, _ = block
        return read(address - base, size)

    def _periph_write(self, address: int, size: int, value: int) -> None:
        block = self._blocks.get(address & ~0x3FF)
        if block is not None:
            base, _, write = block
            write(address - base, value, size)

    def _system_read(self, address: int, size: int) -> int:
        chip, ctl = self.chip, self.controller
        if ctl.option_size and ctl.option_base <= address < ctl.option_base + ctl.option_size:
            return ctl.read_option_area(address, size)
        data = bytearray(size)
        for i in range(size):
            a = address + i
            if chip.uid_addr <= a < chip.uid_addr + 12:
                data[i] = self.unique_id[a - chip.uid_addr]
            elif chip.flash_size_reg <= a < chip.flash_size_reg + 2:
                data[i] = ((chip.flash_size // 1024) >> (8 * (a - chip.flash_size_reg))) & 0xFF
        return int.from_bytes(data, "little")

    def _system_write(self, address: int, size: int, value: int, from_debugger: bool = False) -> None:
        ctl = self.controller
        if ctl.option_size and ctl.option_base <= address < ctl.option_base + ctl.option_size:
            ctl.option_store(address, value, size, from_debugger)

    # ------------------------------------------------------------------ debugger side
    def _plain_host(self, address: int, length: int) -> int | None:
        for base, size, host in self._plain:
            if base <= address and address + length <= base + size:
                return host + address - base
        return None

    def debug_read(self, address: int, length: int, width: int) -> bytes:
        """Read through the AHB-AP: ``length`` bytes in ``width``-byte accesses."""
        host = self._plain_host(address, length)
        if host is not None:
            return ctypes.string_at(host, length)
        flash_address = self._in_flash(address, length)
        if flash_address is not None:
            if not self.controller.flash_readable(flash_address, True):
                raise BusFault(address, "flash read-protected (RDP level 1)")
            self.settle()
            return self.flash.read(flash_address, length)
        out = bytearray()
        for a in range(address, address + length, width):
            out += self.debug_read_unit(a, width).to_bytes(width, "little")
        return bytes(out)

    def debug_read_unit(self, address: int, size: int) -> int:
        if PPB_BASE <= address < PPB_BASE + PPB_SIZE:
            return self.ppb_read(address, size)
        if PERIPH_BASE <= address < PERIPH_BASE + PERIPH_SIZE:
            return self._periph_read(address, size)
        if SYSTEM_BASE <= address < SYSTEM_BASE + SYSTEM_SIZE:
            return self._system_read(address, size)
        if self._plain_host(address, size) is None and self._in_flash(address, size) is None:
            raise BusFault(address, "no memory or register there")
        return int.from_bytes(self.debug_read(address, size, size), "little")

    def _in_flash(self, address: int, length: int) -> int | None:
        """The main-flash address behind [address, address+length), through the boot alias too."""
        flash = self.flash
        if flash.contains(address, length):
            return address
        if address + length <= flash.size:
            return address + flash.base
        return None

    def debug_write(self, address: int, data: bytes, width: int) -> None:
        """Write through the AHB-AP in ``width``-byte accesses."""
        host = self._plain_host(address, len(data))
        if host is not None:
            ctypes.memmove(host, data, len(data))
            self._dirty_ram.append((address, len(data)))
            return
        for i in range(0, len(data), width):
            value = int.from_bytes(data[i:i + width], "little")
            self.debug_write_unit(address + i, value, width)

    def debug_write_unit(self, address: int, value: int, size: int) -> None:
        flash_address = self._in_flash(address, size)
        if flash_address is not None:
            self.controller.flash_store(flash_address, value, size, True)
        elif PPB_BASE <= address < PPB_BASE + PPB_SIZE:
            self.ppb_write(address, value, size)
        elif PERIPH_BASE <= address < PERIPH_BASE + PERIPH_SIZE:
            self._periph_write(address, size, value)
        elif SYSTEM_BASE <= address < SYSTEM_BASE + SYSTEM_SIZE:
            self._system_write(address, size, value, True)
        elif self._plain_host(address, size) is not None:
            ctypes.memmove(self._plain_host(address, size), value.to_bytes(size, "little"), size)
            self._dirty_ram.append((address, size))
        else:
            raise BusFault(address, "no memory or register there")

    def read32(self, address: int) -> int:
        """Core-view word read used for vector fetches at reset."""
        try:
            return struct.unpack("<I", self.core.uc.mem_read(address, 4))[0]
        except UcError:
            return 0xFFFFFFFF
