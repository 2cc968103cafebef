"""The contract between the simulated target and a flash controller model.

The target owns the bus: it routes every access in the controller's register block and in main
flash (from the core running in Unicorn, or from the debugger through the probe) to the
controller. The controller owns flash semantics: what a store to flash does, how long BSY stays
set, which flags rise, what option bytes say. Time comes from ``FlashEnv.now``, which is the
target's own virtual time (the core's local time while it runs), so BSY and the watchdog agree.
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from ..chips import ChipSpec
from ..errors import BusFault
from ..faults import TargetFaults


class FlashMemory:
    """Main flash contents in one host buffer.

    The same buffer is mapped into Unicorn twice (at the flash base and at the 0x00000000 boot
    alias), so what the controller writes here is what the core fetches. ``on_change`` tells the
    target to drop Unicorn's translated-code cache for the range.
    """

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.size = size
        self.buffer = (ctypes.c_uint8 * size)()
        ctypes.memset(self.buffer, 0xFF, size)
        self.view = memoryview(self.buffer).cast("B")
        self.on_change: Callable[[int, int], None] = lambda address, length: None

    @property
    def address(self) -> int:
        """Host address of the buffer, for ``Uc.mem_map_ptr``."""
        return ctypes.addressof(self.buffer)

    def contains(self, address: int, length: int = 1) -> bool:
        return self.base <= address and address + length <= self.base + self.size

    def read(self, address: int, length: int) -> bytes:
        off = address - self.base
        return bytes(self.view[off:off + length])

    def write_raw(self, address: int, data: bytes) -> None:
        """Store bytes as given (the controller has already applied cell semantics)."""
        off = address - self.base
        self.view[off:off + len(data)] = data
        self.on_change(address, len(data))

    def fill(self, address: int, length: int, value: int = 0xFF) -> None:
        off = address - self.base
        self.view[off:off + length] = bytes([value]) * length
        self.on_change(address, length)


@dataclass
class FlashEnv:
    """What a controller needs from the rest of the chip."""

    now: Callable[[], float]            # the target's virtual time, seconds
    stall: Callable[[float], None]      # charge the current bus master this many seconds of wait (core: bus stall / polling time)
    hsi_on: Callable[[], bool]          # F1: the FPEC clock (HSI) is running
    debugger_connected: Callable[[], bool]  # RDP level 1 blocks flash access from the debug port while this is true
    system_reset: Callable[[], None]    # OBL_LAUNCH and similar: ask the target for a system reset
    faults: TargetFaults


class FlashController(ABC):
    """One flash interface (FPEC / FLASH) of one chip.

    Register accesses arrive with their byte offset inside the block and their width (1, 2, 4).
    ``BusFault`` (from ``..errors``) is raised for accesses the hardware answers with a bus error.
    """

    reg_base: int
    reg_size: int = 0x400
    sr_offset: int               # status register offset: the core polling it while BSY is charged wait time

    def __init__(self, chip: ChipSpec, memory: FlashMemory, env: FlashEnv) -> None:
        self.chip = chip
        self.memory = memory
        self.env = env

    # --- register block --------------------------------------------------------------------
    @abstractmethod
    def read_reg(self, offset: int, size: int) -> int:
        """Value of the register at ``offset`` (settles any operation that finished by now)."""

    @abstractmethod
    def write_reg(self, offset: int, value: int, size: int) -> None:
        """A store into the register block (keys, CR bits, SR write-1-to-clear, options)."""

    # --- main flash --------------------------------------------------------------------------
    @abstractmethod
    def flash_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """A store of ``size`` bytes into main flash: programs when the controller is set up
        for it, otherwise raises the flag (and/or BusFault) the reference manual specifies."""

    @abstractmethod
    def flash_readable(self, address: int, from_debugger: bool) -> bool:
        """False where a read must bus-fault (RDP level 1 with a debugger attached)."""

    # --- option bytes area (e.g. 0x1FFFF800 on F1) ----------------------------------------------
    option_base: int = 0
    option_size: int = 0

    @abstractmethod
    def read_option_area(self, address: int, size: int) -> int:
        """Raw read of the option-byte storage as the memory map shows it."""

    def option_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """A store into the option-byte area. F0/F1/F3 program option bytes this way (halfword
        stores with CR.OPTPG set); families that change options through registers (F4 OPTCR,
        L4 OPTR) answer a bus error, which is the default here."""
        raise BusFault(address, "option bytes are not writable through the bus")

    # --- lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def system_reset(self) -> None:
        """Registers to reset values, LOCK set, option bytes (re)loaded into OBR/OPTCR/OPTR."""

    def power_on_reset(self) -> None:
        """Power-on: like a system reset; the default keeps option storage as programmed."""
        self.system_reset()

    @abstractmethod
    def power_lost(self) -> None:
        """Supply gone: an operation in flight leaves its unit half-done (neither old nor erased)."""

    @abstractmethod
    def busy(self) -> bool:
        """BSY as of ``env.now()``."""

    @abstractmethod
    def rdp_level(self) -> int:
        """Active readout protection level (0, 1 or 2) as loaded at the last reset."""

    @abstractmethod
    def hardware_watchdog(self) -> bool:
        """Loaded option says the IWDG starts by itself at reset (WDG_SW / IWDG_SW = 0)."""

    def next_event(self) -> float | None:
        """Virtual time at which BSY will drop (so the target can run the core up to it)."""
        return None


def make_controller(chip: ChipSpec, memory: FlashMemory, env: FlashEnv) -> FlashController:
    """The controller model for ``chip.family``."""
    if chip.family == "F1":
        from .f1 import F1FlashController
        return F1FlashController(chip, memory, env)
    if chip.family == "F4":
        from .f4 import F4FlashController
        return F4FlashController(chip, memory, env)
    if chip.family == "L4":
        from .l4 import L4FlashController
        return L4FlashController(chip, memory, env)
    raise ValueError(f"no flash controller model for family {chip.family}")
