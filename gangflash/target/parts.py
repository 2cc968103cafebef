"""What the tool must know about one STM32 line (one DEV_ID) to program it safely.

A ``Part`` bundles, per DEV_ID: where its identity, flash size and unique ID are read, how its
flash is laid out and which controller drives it, how much SRAM a flash loader may assume (the
*smallest* member of the line, since the DEV_ID does not tell members apart), how to stop the
independent watchdog while the core is halted, which clock the F0/F1/F3 FPEC needs, how to clock
the CRC unit for on-target verification, and where readout protection is read.

The records themselves live in ``part_table.py``; lookups by IDCODE are in ``families.py``.
Sources for every value: ``shared/reference/stm32-flash.md`` (which cites stlink, OpenOCD, pyOCD,
probe-rs, CMSIS headers and ST manuals), OpenOCD ``stm32lx.c`` / ``stm32l4x.c`` / ``stm32h7x.c``,
and SVD-derived register maps; values not confirmed from a public text are listed in this issue's
report.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gangflash.target.flash_specs import FlashController
from gangflash.target.errors import FlashSizeError, GeometryError
from gangflash.target.geometry import FlashGeometry, FlashLayout


class Core(StrEnum):
    """Cortex-M core of a line, as CPUID PARTNO names it."""

    M0 = "M0"
    M0PLUS = "M0+"
    M3 = "M3"
    M4 = "M4"
    M7 = "M7"
    M33 = "M33"


# CPUID bits 15:4 (PARTNO) per core (ARMv6-M / ARMv7-M / ARMv8-M architecture manuals).
CPUID_PARTNO: dict[int, Core] = {
    0xC20: Core.M0, 0xC60: Core.M0PLUS, 0xC23: Core.M3, 0xC24: Core.M4, 0xC27: Core.M7,
    0xD21: Core.M33,
}


def core_from_cpuid(cpuid: int) -> Core | None:
    """The core a CPUID value names, or None for a part number we do not know."""
    return CPUID_PARTNO.get((cpuid >> 4) & 0xFFF)


@dataclass(frozen=True)
class BitRef:
    """One bit of one memory-mapped register."""

    register: int
    bit: int

    @property
    def mask(self) -> int:
        """The bit as a mask, for read-modify-write."""
        return 1 << self.bit


@dataclass(frozen=True)
class DebugSupport:
    """DBGMCU registers the tool writes before running a loader on a halted core.

    Freezing the IWDG counter only helps while the core is halted; a hardware-started IWDG keeps
    running while a loader runs, so loaders still reload it."""

    dbgmcu_cr: int
    iwdg_freeze: BitRef         # F1: DBGMCU_CR bit 8; others: an APB freeze register


@dataclass(frozen=True)
class ClockControl:
    """RCC base and, where the flash controller needs it, the HSI enable/ready bits."""

    rcc_base: int
    hsi_on: BitRef | None = None        # set before program/erase (F0/F1/F3 FPEC runs on HSI)
    hsi_ready: BitRef | None = None


@dataclass(frozen=True)
class CrcUnit:
    """The CRC peripheral (poly 0x04C11DB7) and the bit that clocks it."""

    base: int
    clock_enable: BitRef


@dataclass(frozen=True)
class ReadProtection:
    """Where the readout-protection level is read and what the option byte must hold.

    ``register`` / ``shift`` / ``width`` locate the field that reflects the *loaded* level
    (F1 FLASH_OBR.RDPRT is one bit, F0/F3 two bits, the others the whole RDP byte); ``level0`` /
    ``level2`` are that field's values for levels 0 and 2 (any other value is level 1).
    ``option_address`` is the RDP byte in the option-byte area (None where options are
    registers only, H7) and ``option_level0`` the byte programmed there for level 0."""

    register: int
    shift: int
    width: int
    level0: int
    level2: int | None
    option_address: int | None
    option_level0: int

    def level(self, register_value: int) -> int:
        """RDP level 0, 1 or 2 from a raw read of ``register``."""
        field = (register_value >> self.shift) & ((1 << self.width) - 1)
        if field == self.level0:
            return 0
        if self.level2 is not None and field == self.level2:
            return 2
        return 1


@dataclass(frozen=True)
class Part:
    """One STM32 line, keyed by its DBGMCU DEV_ID."""

    dev_id: int
    family: str                     # "F1", "F4", "L4", ...
    line: str                       # "F10x medium-density"
    core: Core
    idcode_address: int             # where DBGMCU_IDCODE is read on this line
    flash_size_register: int        # 16-bit, KiB (see decode_flash_size)
    max_flash_kib: int
    layout: FlashLayout
    controller: FlashController
    unique_id_address: int
    unique_id_offsets: tuple[int, int, int]     # the three 32-bit words (L0/L1: 0, 4, 0x14)
    sram_base: int
    sram_loader_kib: int            # contiguous SRAM at sram_base on the smallest member
    debug: DebugSupport
    clocks: ClockControl
    crc: CrcUnit
    rdp: ReadProtection
    flash_base: int = 0x08000000
    flash_size_codes: tuple[tuple[int, int], ...] = ()   # raw value -> KiB (L1 0x436)
    flash_size_mask: int = 0xFFFF                          # L1 0x429 uses the low byte only

    @property
    def name(self) -> str:
        """``STM32F4 F42x-F43x (DEV_ID 0x419)``: for logs and error messages."""
        return f"STM32{self.family} {self.line} (DEV_ID 0x{self.dev_id:03X})"

    @property
    def unique_id_addresses(self) -> tuple[int, int, int]:
        """Addresses of the three words of the 96-bit unique ID."""
        first, second, third = (self.unique_id_address + o for o in self.unique_id_offsets)
        return first, second, third

    def decode_flash_size(self, raw: int) -> int:
        """KiB of flash from a raw read of the flash-size register.

        Refuses the values a blank or mis-read register gives (0, 0xFFFF) and sizes above the
        line's largest member: a wrong size would erase or verify the wrong range."""
        value = raw & self.flash_size_mask
        codes = dict(self.flash_size_codes)
        if value in codes:
            return codes[value]
        if value in (0, 0xFFFF, self.flash_size_mask) or value > self.max_flash_kib:
            raise FlashSizeError(
                f"{self.name}: flash-size register 0x{self.flash_size_register:08X} reads "
                f"0x{raw:04X}, not a size this line has (1..{self.max_flash_kib} KiB)",
                address=self.flash_size_register)
        return value

    def geometry(self, size_kib: int, *, dual_bank: bool | None = None) -> FlashGeometry:
        """Erase units for ``size_kib`` KiB of flash (decoded), in the given bank mode
        (``None``: hardware-fixed or factory default)."""
        if not 0 < size_kib <= self.max_flash_kib:
            raise FlashSizeError(f"{self.name} has at most {self.max_flash_kib} KiB of flash, "
                                 f"{size_kib} KiB requested")
        try:
            return self.layout.build(self.flash_base, size_kib, dual_bank=dual_bank)
        except GeometryError as err:    # the layout does not know which part it serves
            err.detail = f"{self.name}: {err.detail}"
            raise

    def flash_end(self, size_kib: int, *, dual_bank: bool | None = None) -> int:
        """First address after the flash of a ``size_kib`` KiB member."""
        return self.geometry(size_kib, dual_bank=dual_bank).flash_end


__all__ = ["Core", "CPUID_PARTNO", "core_from_cpuid", "BitRef", "DebugSupport", "ClockControl",
           "CrcUnit", "ReadProtection", "Part"]
