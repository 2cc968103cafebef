"""STM32F2/F4 flash interface (FLASH at 0x40023C00), modelled on RM0090 / RM0402 section 3 and
PM0059, for the single-bank sector layout of the F412 (4x16, 64, 7x128 KiB).

Choices where the manual is silent (each also in the report to the lead):
- Stale PGSERR, PGPERR or PGAERR block the next operation: a program store or STRT while one of
  them is set is not performed and raises PGSERR. RM0090 does not say so; field reports show
  operations failing until the flags are cleared (ST community "programming sequence error
  during flash erase", 2015), HAL and pyOCD's algorithm clear them first, and RM0394 documents
  the same rule for the next generation.
- A wrong KEYR/OPTKEYR sequence answers a bus error and locks until reset (RM0090 unlock text
  as recalled; the reference sheet confirms the bus error only for F3/L4/G0).
- RDP level 1 with the debugger connected: program/erase are refused with WRPERR (PM0059 2.6.3:
  "no access (read, erase, program)"; which flag is unconfirmed, WRPERR as on L4).
- STRT with both SER and MER does nothing and raises no flag (RM0090 3.5.3 note); STRT with an
  SNB beyond the last sector does nothing.
- OPTCR changes (RDP, nWRP, WDG_SW) take effect at the next system reset; OPTSTRT with RDP = 0xAA
  while level 1 is loaded mass-erases main flash within that BSY period (OpenOCD stm32f2x.c).
- Power cut during OPTSTRT leaves RDP level 1 and every sector write-protected, the state an F429
  user reported after losing power mid-OB_Launch (ST community, 2018).
- Option storage as the memory map shows it (0x1FFFC000): halfword at +0 = USER | RDP << 8,
  halfword at +8 = nWRP | SPRMOD << 15; other bytes read 0xFF (layout assumed, unconfirmed).
"""

from __future__ import annotations

import logging

from . import timing
from .common import KEY1, KEY2, OPTKEY1, OPTKEY2, FlashModel, KeySequence, Operation, bus_fault, merge

log = logging.getLogger(__name__)

ACR, KEYR, OPTKEYR, SR, CR, OPTCR, OPTCR1 = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18
# SR
EOP, OPERR, WRPERR, PGAERR, PGPERR, PGSERR, RDERR = 1, 2, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
BSY = 1 << 16
SR_W1C = EOP | OPERR | WRPERR | PGAERR | PGPERR | PGSERR | RDERR
BLOCKING = PGSERR | PGPERR | PGAERR
# CR
PG, SER, MER, MER1, STRT = 1, 2, 4, 1 << 15, 1 << 16
EOPIE, ERRIE, RDERRIE, LOCK = 1 << 24, 1 << 25, 1 << 26, 1 << 31
PSIZE_SHIFT, PSIZE_MASK = 8, 3 << 8
# OPTCR
OPTLOCK, OPTSTRT, WDG_SW = 1, 2, 1 << 5
RDP_SHIFT, NWRP_SHIFT = 8, 16
OPTCR_RW = 0x8FFF_FFEC                     # BOR_LEV, user bits, RDP, nWRP[11:0], SPRMOD
FACTORY_OPTCR = 0x0FFF_AAEC                # reset 0x0FFFAAED without OPTLOCK
RDP_LEVEL0, RDP_LEVEL2 = 0xAA, 0xCC
OPTION_BASE = 0x1FFFC000


class F4FlashController(FlashModel):
    """FLASH interface of the F412 (sectors, PSIZE parallelism, OPTCR)."""

    sr_offset = SR
    option_base = OPTION_BASE
    option_size = 16
    stale_flags = PGSERR | PGPERR

    def __init__(self, chip, memory, env) -> None:
        super().__init__(chip, memory, env)
        nsectors = len(chip.sectors)
        self._snb_mask = (0x1F if nsectors > 16 else 0xF) << 3
        options = FACTORY_OPTCR
        faults = env.faults
        for sector in faults.write_protected:
            options &= ~(1 << (NWRP_SHIFT + sector))
        if faults.rdp_level1:
            options = (options & ~(0xFF << RDP_SHIFT)) | (0x55 << RDP_SHIFT)
        if faults.hardware_watchdog:
            options &= ~WDG_SW
        self._options = options                 # option storage, in OPTCR layout
        self._keys = KeySequence(KEY1, KEY2)
        self._optkeys = KeySequence(OPTKEY1, OPTKEY2)
        self.power_on_reset()

    # --- lifecycle ----------------------------------------------------------------------------
    def system_reset(self) -> None:
        self._abort_in_flight("system reset")
        self._sr = 0
        self._cr = LOCK
        self._acr = 0
        self._keys.reset()
        self._optkeys.reset()
        self._optcr = self._options | OPTLOCK   # OPTCR loaded from the option bytes at reset
        rdp = (self._options >> RDP_SHIFT) & 0xFF
        self._rdp = 0 if rdp == RDP_LEVEL0 else 2 if rdp == RDP_LEVEL2 else 1
        self._nwrp = (self._options >> NWRP_SHIFT) & 0xFFF
        self._wdg_sw = bool(self._options & WDG_SW)

    def _set_stale(self, locked: bool) -> None:
        self._sr |= self.stale_flags
        if not locked:
            self._cr &= ~LOCK

    def hardware_watchdog(self) -> bool:
        return not self._wdg_sw

    def read_option_area(self, address: int, size: int) -> int:
        raw = bytearray(b"\xFF" * 16)
        raw[0:2] = (self._options & 0xFFFF).to_bytes(2, "little")
        nwrp = ((self._options >> NWRP_SHIFT) & 0xFFF) | ((self._options >> 31) << 15)
        raw[8:10] = nwrp.to_bytes(2, "little")
        offset = address - OPTION_BASE
        return int.from_bytes(raw[offset:offset + size], "little")

    # --- helpers ------------------------------------------------------------------------------
    def _error(self, flags: int) -> None:
        """Raise error flags; OPERR accompanies them only with ERRIE (RM0090 SR bit text)."""
        self._sr |= flags | (OPERR if self._cr & ERRIE else 0)

    def _sector_protected(self, sector: int) -> bool:
        return self._debug_locked() or not (self._nwrp >> sector) & 1

    def _psize(self) -> int:
        return (self._cr & PSIZE_MASK) >> PSIZE_SHIFT

    def _finished(self, op: Operation) -> None:
        self._cr &= ~STRT
        self._optcr &= ~OPTSTRT
        if self._cr & EOPIE:
            self._sr |= EOP                     # EOP only with EOPIE (RM0090 SR bit text)

    # --- registers ----------------------------------------------------------------------------
    def _read_word(self, offset: int) -> int:
        if offset == ACR:
            return self._acr
        if offset == SR:
            return self._sr | (BSY if self._op is not None else 0)
        if offset == CR:
            return self._cr
        if offset == OPTCR:
            return self._optcr
        return 0                                # keys write-only; OPTCR1 absent on F412

    def _write_word(self, offset: int, value: int, mask: int) -> None:
        if offset == ACR:
            self._acr = merge(self._acr, value, mask) & 0x1F0F
        elif offset == KEYR:
            self._feed(self._keys, value, mask, offset)
        elif offset == OPTKEYR:
            self._feed(self._optkeys, value, mask, offset)
        elif offset == SR:
            self._sr &= ~(value & SR_W1C)
        elif offset == CR:
            self._write_cr(value, mask)
        elif offset == OPTCR:
            self._write_optcr(value, mask)

    def _feed(self, keys: KeySequence, value: int, mask: int, offset: int) -> None:
        result = keys.feed(value, mask)
        if result:
            if keys is self._keys:
                self._cr &= ~LOCK
            else:
                self._optcr &= ~OPTLOCK
        elif result is False:
            if keys is self._keys:
                self._cr |= LOCK
            else:
                self._optcr |= OPTLOCK
            raise bus_fault(self.reg_base + offset, "wrong key sequence: locked until reset")

    def _write_cr(self, value: int, mask: int) -> None:
        if self._op is not None:
            self._wait_idle()                   # CR write while BSY: the bus stalls (reference sheet)
        if self._cr & LOCK:
            return
        new = merge(self._cr, value, mask)
        writable = PG | SER | MER | MER1 | self._snb_mask | PSIZE_MASK | EOPIE | ERRIE | RDERRIE
        self._cr = (self._cr & ~writable) | (new & writable) | (new & LOCK)
        if value & mask & STRT:
            self._start_erase()

    def _start_erase(self) -> None:
        cr = self._cr
        if self._sr & BLOCKING:
            self._error(PGSERR)
            return
        mass = cr & (MER | MER1)
        if bool(mass) == bool(cr & SER):
            log.info("%s: STRT with CR=0x%08X: no single erase selected, nothing done", self.chip.name, cr)
            return
        psize = timing.f4_psize_index(self._psize())
        if cr & SER:
            sector = (cr & self._snb_mask) >> 3
            if sector >= len(self.chip.sectors):
                log.info("%s: SNB %d does not exist: nothing erased", self.chip.name, sector)
                return
            if self._sector_protected(sector):
                self._error(WRPERR)
                return
            start, size = self.unit(sector)
            duration = timing.F4_SECTOR_ERASE[size][psize]
            self._cr |= STRT
            self._begin(Operation(f"sector {sector} erase", duration, lambda: self._erase(start, size),
                                  region=(start, size)))
            return
        if any(self._sector_protected(s) for s in range(len(self.chip.sectors))):
            self._error(WRPERR)                 # mass erase refused if any sector is protected
            return
        self._cr |= STRT
        self._begin(Operation("mass erase", timing.F4_MASS_ERASE[psize], self._erase_all,
                              region=(self.chip.flash_base, self.chip.flash_size)))

    def _erase_all(self) -> None:
        self._erase(self.chip.flash_base, self.chip.flash_size)

    def _write_optcr(self, value: int, mask: int) -> None:
        if self._op is not None:
            self._wait_idle()
        if self._optcr & OPTLOCK:
            return
        new = merge(self._optcr, value, mask)
        self._optcr = (self._optcr & ~OPTCR_RW) | (new & OPTCR_RW) | (new & OPTLOCK)
        if value & mask & OPTSTRT and not self._optcr & OPTLOCK:
            self._start_option_change()

    def _start_option_change(self) -> None:
        if self._rdp == 2:
            log.info("%s: RDP level 2: option bytes are frozen", self.chip.name)
            return
        target = self._optcr & ~(OPTLOCK | OPTSTRT)
        duration = timing.F4_OPTION_CHANGE
        regress = self._rdp == 1 and (target >> RDP_SHIFT) & 0xFF == RDP_LEVEL0

        def commit() -> None:
            if regress:
                self._erase_all()
            self._options = target

        def damaged(rng) -> None:
            # RDP neither 0xAA nor 0xCC, every nWRP bit cleared: level 1, all sectors protected
            self._options = target & ~((0xFF << RDP_SHIFT) | (0xFFF << NWRP_SHIFT))

        region = None
        if regress:
            duration += timing.F4_MASS_ERASE[timing.f4_psize_index(self._psize())]
            region = (self.chip.flash_base, self.chip.flash_size)
            log.info("%s: RDP 1 -> 0: mass erase of main flash", self.chip.name)
        self._optcr |= OPTSTRT
        self._begin(Operation("option change", duration, commit, region=region, on_power_loss=damaged))

    # --- main flash ---------------------------------------------------------------------------
    def flash_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """Programming by PSIZE-wide stores while PG is set (RM0090 3.5.4)."""
        self._wait_idle()                       # a store while BSY is held by the bus
        if not self._cr & PG:
            self._error(PGSERR)                 # write with CR not set up
            return
        if self._sr & BLOCKING:
            self._error(PGSERR)
            return
        if size != 1 << self._psize():
            self._error(PGPERR)
            return
        if (address & 0xF) + size > 16:
            self._error(PGAERR)                 # crosses a 128-bit row
            return
        if self._sector_protected(self.unit_index(address)):
            self._error(WRPERR)
            return
        current = int.from_bytes(self.memory.read(address, size), "little")
        data = (current & value).to_bytes(size, "little")      # no erase check: cells AND
        self._begin(Operation(f"program 0x{address:08X}", timing.F4_PROGRAM,
                              lambda: self._program_cells(address, data), region=(address, size)))


__all__ = ["F4FlashController"]
