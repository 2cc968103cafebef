"""Chip peripherals a flasher meets: RCC (clocks, reset flags), IWDG, DBGMCU and the CRC unit.

Addresses, reset values and bits from `shared/reference/stm32-flash.md` ("Clocks, resets, IWDG",
"CRC peripheral") and `cortex-m-debug.md` ("Debug in low-power modes and watchdog freeze").
Anything a flasher does not touch is plain read/write storage.
"""

from __future__ import annotations

import logging
from typing import Callable

from .chips import ChipSpec

log = logging.getLogger(__name__)

# RCC register offsets and reset values per family: CR, the AHB enable register holding CRCEN,
# the reset-flag register CSR and its value after power-on.
_RCC = {
    "F1": dict(cr_reset=0x00008083, ahbenr=0x14, ahbenr_reset=0x14, crc_bit=6, csr=0x24, por_flags=0x0C000000),
    "F4": dict(cr_reset=0x00008083, ahbenr=0x30, ahbenr_reset=0x00100000, crc_bit=12, csr=0x74, por_flags=0x0E000000),
    "L4": dict(cr_reset=0x00000063, ahbenr=0x48, ahbenr_reset=0x00000100, crc_bit=12, csr=0x94, por_flags=0x0C000600),
}
RESET_FLAG_PIN, RESET_FLAG_SFT, RESET_FLAG_IWDG = 1 << 26, 1 << 28, 1 << 29
HSION, HSIRDY = 1 << 0, 1 << 1


class Rcc:
    """Reset and clock control: what clocks run (HSI for the F1 FPEC, the CRC clock) and why
    the chip last reset."""

    def __init__(self, chip: ChipSpec) -> None:
        self.chip = chip
        self.base = chip.rcc_base
        self.layout = _RCC[chip.family]
        self.regs: dict[int, int] = {}
        self.csr_flags = self.layout["por_flags"]
        self.system_reset()

    def system_reset(self) -> None:
        self.regs = {0x00: self.layout["cr_reset"], self.layout["ahbenr"]: self.layout["ahbenr_reset"]}

    def record_reset(self, flag: int) -> None:
        self.csr_flags |= flag

    def hsi_on(self) -> bool:
        return bool(self.regs.get(0, 0) & HSION)

    def crc_clock_on(self) -> bool:
        return bool(self.regs.get(self.layout["ahbenr"], 0) & (1 << self.layout["crc_bit"]))

    def stop_hsi(self) -> None:
        self.regs[0] = self.regs.get(0, 0) & ~(HSION | HSIRDY)

    def read(self, offset: int) -> int:
        if offset == self.layout["csr"]:
            return self.csr_flags | self.regs.get(offset, 0)
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset == 0x00:
            # HSIRDY follows HSION at once (its start-up time, ~2 µs, is below our resolution)
            value = (value & ~HSIRDY) | (HSIRDY if value & HSION else 0)
        elif offset == self.layout["csr"]:
            if value & (1 << 24):                                   # RMVF clears the flags
                self.csr_flags = 0
            value &= 0xFF
        self.regs[offset] = value


class Iwdg:
    """Independent watchdog at 0x40003000. Once started only a reset stops it; it counts on LSI
    whether or not the core runs, unless DBGMCU freezes it while the core is halted."""

    BASE = 0x40003000

    def __init__(self, chip: ChipSpec, on_expire: Callable[[], None],
                 slice_elapsed: Callable[[], float] = lambda: 0.0) -> None:
        self.lsi_hz = 40_000 if chip.family == "F1" else 32_000
        self.on_expire = on_expire
        # The chip hands the watchdog whole run slices afterwards; a (re)load by running code in
        # the middle of a slice is credited with the part of the slice already gone.
        self.slice_elapsed = slice_elapsed
        self.running = False
        self.pr = 0
        self.rlr = 0xFFF
        self.unlocked = False
        self.remaining = 0.0

    def period(self) -> float:
        """Timeout = 4 * 2^min(PR, 6) * (RLR + 1) / f_LSI (RM0008 / RM0090)."""
        return 4 * (1 << min(self.pr, 6)) * (self.rlr + 1) / self.lsi_hz

    def system_reset(self, hardware_watchdog: bool) -> None:
        self.pr, self.rlr, self.unlocked = 0, 0xFFF, False
        self.running = hardware_watchdog
        self.remaining = self.period()

    def start(self) -> None:
        if not self.running:
            self.running = True
            self.remaining = self.period() + self.slice_elapsed()

    def until_expiry(self, frozen: bool) -> float | None:
        return None if not self.running or frozen else max(self.remaining, 0.0)

    def elapse(self, seconds: float, frozen: bool) -> None:
        if not self.running or frozen or seconds <= 0:
            return
        self.remaining -= seconds
        if self.remaining <= 1e-12:
            log.debug("IWDG expired")
            self.on_expire()

    def read(self, offset: int) -> int:
        return {0x04: self.pr, 0x08: self.rlr}.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        value &= 0xFFFF
        if offset == 0x00:
            if value == 0xCCCC:
                self.start()
            elif value == 0xAAAA:
                self.remaining = self.period() + self.slice_elapsed()
            self.unlocked = value == 0x5555
        elif offset == 0x04 and self.unlocked:
            self.pr = value & 0x7
        elif offset == 0x08 and self.unlocked:
            self.rlr = value & 0xFFF


class Dbgmcu:
    """Debug MCU configuration: IDCODE, low-power debug and peripheral freeze. Reset by power-on
    only, so a debugger's settings survive the system resets it causes."""

    BASE = 0xE0042000

    def __init__(self, chip: ChipSpec) -> None:
        self.chip = chip
        self.regs: dict[int, int] = {}

    def power_on(self) -> None:
        self.regs.clear()

    @property
    def cr(self) -> int:
        return self.regs.get(0x04, 0)

    def keeps_debug_in_sleep(self) -> bool:
        return bool(self.cr & 1)

    def iwdg_frozen(self) -> bool:
        if self.chip.family == "F1":
            return bool(self.cr & (1 << 8))
        return bool(self.regs.get(0x08, 0) & (1 << 12))

    def read(self, offset: int) -> int:
        if offset == 0x00:
            return self.chip.idcode
        return self.regs.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset != 0x00:
            self.regs[offset] = value


class Crc:
    """CRC calculation unit: CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, MSB first, no
    reflection), one 32-bit word per write to DR. Needs its AHB clock enabled."""

    BASE = 0x40023000

    def __init__(self, clock_on: Callable[[], bool]) -> None:
        self.clock_on = clock_on
        self.dr = 0xFFFFFFFF
        self.idr = 0

    def system_reset(self) -> None:
        self.dr, self.idr = 0xFFFFFFFF, 0

    def read(self, offset: int) -> int:
        if not self.clock_on():
            return 0
        return {0x0: self.dr, 0x4: self.idr}.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if not self.clock_on():
            return
        if offset == 0x0:
            crc = self.dr ^ (value & 0xFFFFFFFF)
            for _ in range(32):
                crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
                crc &= 0xFFFFFFFF
            self.dr = crc
        elif offset == 0x4:
            self.idr = value & 0xFF
        elif offset == 0x8 and value & 1:
            self.dr = 0xFFFFFFFF
