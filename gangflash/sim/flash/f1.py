"""STM32F0/F1/F3 flash program/erase controller (FPEC) at 0x40022000, modelled on PM0075
(STM32F10xxx flash programming manual) and the F103 datasheets.

Choices where the manual is silent (each also in the report to the lead):
- A store to main flash with CR.PG clear is ignored: no flag (F1 has no sequence-error flag),
  no bus error. Field reports agree that plain stores to STM32 flash do nothing visible.
- STRT with more than one operation selected (PER/MER/OPTER, or PG left set) does nothing and
  raises no flag: the failure field reports describe (libopencm3 #253, stlink #773/#876: "erase
  does nothing while PG is still set").
- LOCK protects CR only: a PG bit left set keeps programming after LOCK is set (ST forum
  "Illegal Flash Memory writes possible?", 2011).
- HSI stopped (the FPEC clock, RM0008 clock tree): an operation is accepted and BSY rises but it
  does not progress and changes no cell until HSI runs again; it then runs for its full duration.
- Mass erase (MER) with any write-protected page, including the first 4 KiB at RDP level 1,
  is refused with WRPRTERR (assumed, as F4/L4 document for their controllers).
- RDP 1 -> 0: programming RDP = 0xA5 (after OPTER) while level 1 is loaded first mass-erases main
  flash (PM0075, read protection); the level itself changes at the next system reset.
"""

from __future__ import annotations

import logging

from . import timing
from .common import KEY1, KEY2, FlashModel, KeySequence, Operation, bus_fault, half_done, merge

log = logging.getLogger(__name__)

# registers (PM0075 register descriptions)
ACR, KEYR, OPTKEYR, SR, CR, AR, OBR, WRPR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20
# SR
BSY, PGERR, WRPRTERR, EOP = 1 << 0, 1 << 2, 1 << 4, 1 << 5
SR_W1C = PGERR | WRPRTERR | EOP
# CR
PG, PER, MER, OPTPG, OPTER, STRT, LOCK = 1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 5, 1 << 6, 1 << 7
OPTWRE, ERRIE, EOPIE = 1 << 9, 1 << 10, 1 << 12
CR_RW = PG | PER | MER | OPTPG | OPTER | ERRIE | EOPIE
ERASE_OPS = PER | MER | OPTER

RDP_LEVEL0 = 0xA5
OPTION_BASE = 0x1FFFF800
# 8 halfwords: value byte, complement byte. RDP, USER, Data0, Data1, WRP0..3 (factory values)
FACTORY_OPTIONS = bytes([0xA5, 0x5A] + [0xFF, 0x00] * 7)
RDP_PROTECTED_BYTES = 4096          # RDP level 1 write-protects the first 4 KiB (PM0075)


class F1FlashController(FlashModel):
    """FPEC of the F103 parts (halfword programming, 1 or 2 KiB pages)."""

    sr_offset = SR
    option_base = OPTION_BASE
    option_size = 16
    stale_flags = PGERR | WRPRTERR

    def __init__(self, chip, memory, env) -> None:
        super().__init__(chip, memory, env)
        self._options = bytearray(FACTORY_OPTIONS)
        faults = env.faults
        wrp = 0xFFFFFFFF
        for page in faults.write_protected:
            wrp &= ~(1 << self._wrp_bit(page))
        for n in range(4):
            self._set_option(8 + 2 * n, (wrp >> (8 * n)) & 0xFF)
        if faults.rdp_level1:
            self._set_option(0, 0x00)
        if faults.hardware_watchdog:
            self._set_option(2, 0xFE)           # USER bit 0 WDG_SW = 0
        self._keys = KeySequence(KEY1, KEY2)
        self._optkeys = KeySequence(KEY1, KEY2)
        self.power_on_reset()

    # --- option bytes -------------------------------------------------------------------------
    def _set_option(self, offset: int, value: int) -> None:
        self._options[offset] = value
        self._options[offset + 1] = ~value & 0xFF

    def _wrp_bit(self, page: int) -> int:
        """WRPR bit covering a page: 4 pages per bit with 1 KiB pages (LD/MD), 2 pages per bit
        with 2 KiB pages and bit 31 for all the rest (HD/CL/XL) (PM0075, OpenOCD stm32f1x.c)."""
        per_bit = 4 if self.chip.sectors[0] <= 1024 else 2
        return min(page // per_bit, 31)

    def _load_options(self) -> None:
        """Option byte loader: complement check, OBR/WRPR (PM0075, RM0364 option bytes)."""
        values, error = [], False
        for n in range(8):
            value, complement = self._options[2 * n], self._options[2 * n + 1]
            if not (value == 0xFF and complement == 0xFF) and value ^ complement != 0xFF:
                error, value = True, 0xFF       # mismatch: OPTERR and the byte reads 0xFF
            values.append(value)
        rdp, user, data0, data1 = values[:4]
        self._rdp = 0 if rdp == RDP_LEVEL0 else 1
        self._user = user
        self._obr = int(error) | self._rdp << 1 | user << 2 | data0 << 10 | data1 << 18
        self._wrpr = values[4] | values[5] << 8 | values[6] << 16 | values[7] << 24

    def read_option_area(self, address: int, size: int) -> int:
        offset = address - OPTION_BASE
        return int.from_bytes(self._options[offset:offset + size], "little")

    def hardware_watchdog(self) -> bool:
        return not self._user & 1

    # --- lifecycle ----------------------------------------------------------------------------
    def system_reset(self) -> None:
        self._abort_in_flight("system reset")
        self._sr = 0
        self._cr = LOCK
        self._ar = 0
        self._acr = 0x30
        self._keys.reset()
        self._optkeys.reset()
        self._load_options()

    def _set_stale(self, locked: bool) -> None:
        self._sr |= self.stale_flags
        if not locked:
            self._cr &= ~LOCK

    # --- protection ---------------------------------------------------------------------------
    def _page_protected(self, page: int) -> bool:
        start, _ = self.unit(page)
        if self._rdp >= 1 and start < self.chip.flash_base + RDP_PROTECTED_BYTES:
            return True
        return not (self._wrpr >> self._wrp_bit(page)) & 1

    # --- registers ----------------------------------------------------------------------------
    def _read_word(self, offset: int) -> int:
        if offset == ACR:
            return (self._acr & 0x1F) | ((self._acr & 0x10) << 1)   # PRFTBS mirrors PRFTBE
        if offset == SR:
            return self._sr | (BSY if self._op is not None else 0)
        if offset == CR:
            return self._cr | (STRT if self._op is not None and self._cr & ERASE_OPS else 0)
        if offset == AR:
            return self._ar
        if offset == OBR:
            return self._obr
        if offset == WRPR:
            return self._wrpr
        return 0                                # KEYR/OPTKEYR are write-only; reserved reads 0

    def _write_word(self, offset: int, value: int, mask: int) -> None:
        if offset == ACR:
            self._acr = merge(self._acr, value, mask) & 0x1F
        elif offset == KEYR:
            if self._keys.feed(value, mask):
                self._cr &= ~LOCK
            elif self._keys.frozen:
                self._cr |= LOCK                # wrong key: locked until reset, no bus error
                log.info("%s: wrong FLASH_KEYR sequence, FPEC locked until reset", self.chip.name)
        elif offset == OPTKEYR:
            if self._cr & LOCK:
                return
            if self._optkeys.feed(value, mask):
                self._cr |= OPTWRE
        elif offset == SR:
            self._sr &= ~(value & SR_W1C)
        elif offset == CR:
            self._write_cr(value, mask)
        elif offset == AR:
            if self._op is None and not self._cr & LOCK:
                self._ar = merge(self._ar, value, mask)

    def _write_cr(self, value: int, mask: int) -> None:
        if self._cr & LOCK:
            return                              # CR is locked: writes ignored
        new = merge(self._cr, value, mask)
        cr = (self._cr & ~CR_RW) | (new & CR_RW)
        if not new & OPTWRE:
            cr &= ~OPTWRE                       # OPTWRE: software can only clear it
        if new & LOCK:
            cr |= LOCK
        self._cr = cr
        if value & mask & STRT:
            self._start_erase()

    def _start_erase(self) -> None:
        if self._op is not None:
            log.info("%s: STRT while BSY ignored", self.chip.name)
            return
        cr = self._cr
        selected = cr & (ERASE_OPS | PG | OPTPG)
        if selected not in (PER, MER, OPTER):
            log.info("%s: STRT with CR=0x%04X: no single erase selected, nothing done",
                     self.chip.name, cr)
            return
        if selected == PER:
            if not self.memory.contains(self._ar):
                log.info("%s: PER with AR=0x%08X outside flash: nothing erased", self.chip.name, self._ar)
                return
            page = self.unit_index(self._ar)
            if self._page_protected(page):
                self._sr |= WRPRTERR
                return
            start, size = self.unit(page)
            self._begin(Operation(f"page {page} erase", timing.F1_PAGE_ERASE,
                                  lambda: self._erase(start, size), region=(start, size)))
        elif selected == MER:
            if any(self._page_protected(p) for p in range(len(self.chip.sectors))):
                self._sr |= WRPRTERR
                return
            self._begin(Operation("mass erase", timing.F1_MASS_ERASE, self._erase_all,
                                  region=(self.chip.flash_base, self.chip.flash_size)))
        elif cr & OPTWRE:
            old = bytes(self._options)
            self._begin(Operation("option erase", timing.F1_OPTION_ERASE, self._erase_options,
                                  on_power_loss=lambda rng: self._damage_options(old, rng)))

    def _erase_all(self) -> None:
        self._erase(self.chip.flash_base, self.chip.flash_size)

    def _erase_options(self) -> None:
        self._options[:] = b"\xFF" * len(self._options)

    def _damage_options(self, old: bytes, rng) -> None:
        self._options[:] = half_done(old, bytes(self._options), rng)

    def _finished(self, op: Operation) -> None:
        self._sr |= EOP                         # F1: EOP on every completed operation

    def _clock_running(self) -> bool:
        return self.env.hsi_on()            # the FPEC is clocked by HSI only (RM0008 clock tree)

    # --- main flash ---------------------------------------------------------------------------
    def flash_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """Halfword programming (PM0075); the store is held while BSY."""
        if not self._wait_idle():
            log.info("%s: store to 0x%08X dropped: FPEC clock (HSI) stopped", self.chip.name, address)
            return
        if not self._cr & PG:
            log.debug("%s: store to 0x%08X without PG ignored", self.chip.name, address)
            return
        if size != 2 or address & 1:
            raise bus_fault(address, f"FPEC programs halfwords only ({size}-byte store)")
        if self._page_protected(self.unit_index(address)):
            self._sr |= WRPRTERR
            return
        current = int.from_bytes(self.memory.read(address, 2), "little")
        value &= 0xFFFF
        if current != 0xFFFF and value != 0:
            self._sr |= PGERR                   # not erased: skipped (0x0000 is the exception)
            return
        data = (current & value).to_bytes(2, "little")
        self._begin(Operation(f"program 0x{address:08X}", timing.F1_HALFWORD_PROGRAM,
                              lambda: self._program_cells(address, data), region=(address, 2)))

    def option_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """Option byte programming with OPTPG: the low byte is written, the hardware writes its
        complement in the high byte (RM0364; OpenOCD writes only low bytes)."""
        if not self._wait_idle():
            return
        if not (self._cr & OPTPG and self._cr & OPTWRE):
            log.debug("%s: option store without OPTPG/OPTWRE ignored", self.chip.name)
            return
        if size != 2 or address & 1:
            raise bus_fault(address, "option bytes are programmed by halfwords")
        offset = address - OPTION_BASE
        if self._options[offset] != 0xFF or self._options[offset + 1] != 0xFF:
            self._sr |= PGERR
            return
        low = value & 0xFF
        old = bytes(self._options)

        def program() -> None:
            self._set_option(offset, low)

        if offset == 0 and low == RDP_LEVEL0 and self._rdp >= 1:
            def regress() -> None:
                self._erase_all()
                program()
            log.info("%s: RDP 1 -> 0: mass erase of main flash", self.chip.name)
            self._begin(Operation("RDP regression", timing.F1_MASS_ERASE + timing.F1_OPTION_PROGRAM,
                                  regress, region=(self.chip.flash_base, self.chip.flash_size),
                                  on_power_loss=lambda rng: self._damage_options(old, rng)))
            return
        self._begin(Operation(f"option program +{offset}", timing.F1_OPTION_PROGRAM, program,
                              on_power_loss=lambda rng: self._damage_options(old, rng)))


__all__ = ["F1FlashController"]
