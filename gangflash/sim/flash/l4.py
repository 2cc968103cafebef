"""STM32L4 flash interface (FLASH at 0x40022000), modelled on RM0394 section 3 (L43x/L44x, single
bank, 2 KiB pages, 64-bit programming with ECC).

Choices where the manual is silent (each also in the report to the lead):
- "Programming error flags" that block the next program or erase with PGSERR (RM0394 programming
  and erase sequences, step 2) are PROGERR, SIZERR, PGAERR, PGSERR, MISERR and FASTERR (the
  PGSERR bit description).
- PROGERR is judged on the double word's erased state, not its value: a double word programmed
  even with all ones (its ECC bits written) cannot be programmed again until erased, except with
  all zeros (ST forum, reference sheet).
- STRT with PER and MER together, or with PG/FSTPG still set, raises PGSERR and does nothing;
  STRT with none of them does nothing.
- Fast programming (FSTPG) is not modelled: a store with FSTPG set raises PGSERR (logged).
- A CR write while BSY is not stalled (unlike F4); STRT/OPTSTRT while BSY are ignored.
- Option registers keep what software wrote until the next option load (OBL_LAUNCH or power-on);
  a plain system reset reloads them from the last loaded values, not from storage.
- A wrong KEYR/OPTKEYR sequence answers a bus error and locks until reset (reference sheet;
  RM0444/RM0453 wording); OPTKEYR writes while LOCK is set are ignored.
- Power cut during OPTSTRT leaves value/complement mismatches: OPTVERR at the next load and the
  secure fallback (RDP level 1, whole flash write-protected).
"""

from __future__ import annotations

import logging

from . import timing
from .common import KEY1, KEY2, OPTKEY1, OPTKEY2, WORD, FlashModel, KeySequence, Operation, bus_fault, merge

log = logging.getLogger(__name__)

ACR, PDKEYR, KEYR, OPTKEYR, SR, CR, ECCR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18
OPTR, PCROP1SR, PCROP1ER, WRP1AR, WRP1BR = 0x20, 0x24, 0x28, 0x2C, 0x30
OPTION_REGS = (OPTR, PCROP1SR, PCROP1ER, WRP1AR, WRP1BR)
# SR
EOP, OPERR, PROGERR, WRPERR, PGAERR, SIZERR, PGSERR = 1, 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7
MISERR, FASTERR, RDERR, OPTVERR, BSY, PEMPTY = 1 << 8, 1 << 9, 1 << 14, 1 << 15, 1 << 16, 1 << 17
SR_W1C = EOP | OPERR | PROGERR | WRPERR | PGAERR | SIZERR | PGSERR | MISERR | FASTERR | RDERR | OPTVERR
BLOCKING = PROGERR | SIZERR | PGAERR | PGSERR | MISERR | FASTERR
# CR
PG, PER, MER1, BKER, MER2, STRT, OPTSTRT, FSTPG = 1, 2, 4, 1 << 11, 1 << 15, 1 << 16, 1 << 17, 1 << 18
EOPIE, ERRIE, RDERRIE, OBL_LAUNCH, OPTLOCK, LOCK = 1 << 24, 1 << 25, 1 << 26, 1 << 27, 1 << 30, 1 << 31
PNB_SHIFT, PNB_MASK = 3, 0xFF << 3
CR_RW = PG | PER | MER1 | PNB_MASK | BKER | MER2 | FSTPG | EOPIE | ERRIE | RDERRIE
# OPTR
IWDG_SW = 1 << 16
RDP_LEVEL0, RDP_LEVEL2 = 0xAA, 0xCC
OPTION_BASE = 0x1FFF7800
FACTORY = {OPTR: 0xFFEFF8AA, PCROP1SR: 0xFFFFFFFF, PCROP1ER: 0x00000000,
           WRP1AR: 0x000000FF, WRP1BR: 0x000000FF}      # WRP areas off: STRT 0xFF > END 0


def _ranges(indexes) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in sorted(set(indexes)):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


class L4FlashController(FlashModel):
    """FLASH interface of the L432 (double-word programming, 2 KiB pages, two WRP areas)."""

    sr_offset = SR
    option_base = OPTION_BASE
    option_size = 0x28                          # five 64-bit entries: value, complement
    stale_flags = PROGERR | PGSERR

    def __init__(self, chip, memory, env) -> None:
        super().__init__(chip, memory, env)
        stored = dict(FACTORY)
        faults = env.faults
        ranges = _ranges(faults.write_protected)
        if len(ranges) > 2:                     # two areas only: B covers the hull of the rest
            log.warning("%s: WRP of %d separate page ranges needs more than two areas; area B "
                        "protects pages %d..%d", chip.name, len(ranges), ranges[1][0], ranges[-1][1])
            ranges = [ranges[0], (ranges[1][0], ranges[-1][1])]
        for reg, (first, last) in zip((WRP1AR, WRP1BR), ranges):
            stored[reg] = first | last << 16
        if faults.rdp_level1:
            stored[OPTR] = (stored[OPTR] & ~0xFF) | 0xBB
        if faults.hardware_watchdog:
            stored[OPTR] &= ~IWDG_SW
        self._storage = {reg: (value, ~value & WORD) for reg, value in stored.items()}
        self._loaded = dict(stored)
        self._keys = KeySequence(KEY1, KEY2)
        self._optkeys = KeySequence(OPTKEY1, OPTKEY2)
        self._programmed: set[int] = set()      # double words written since their last erase
        self._buffer: tuple[int, int] | None = None
        self._obl_pending = False
        self._optverr = False
        self._pempty = False
        self.power_on_reset()

    # --- option loading and lifecycle -------------------------------------------------------
    def _load_options(self) -> None:
        """Option byte loader (power-on or OBL_LAUNCH): complement check, OPTVERR, PEMPTY."""
        self._optverr = False
        for reg, (value, complement) in self._storage.items():
            if value ^ complement != WORD:
                self._optverr = True
                if reg == OPTR:
                    value = (value & ~0xFF) | 0xFF          # secure fallback: RDP level 1
                elif reg in (WRP1AR, WRP1BR):
                    value = 0x00FF0000                      # whole bank protected
            self._loaded[reg] = value
        rdp = self._loaded[OPTR] & 0xFF
        self._rdp = 0 if rdp == RDP_LEVEL0 else 2 if rdp == RDP_LEVEL2 else 1
        self._pempty = self.memory.read(self.chip.flash_base, 4) == b"\xFF" * 4

    def _power_on_load(self) -> None:
        self._load_options()

    def system_reset(self) -> None:
        self._abort_in_flight("system reset")
        if self._obl_pending:
            self._obl_pending = False
            self._load_options()
        self._sr = OPTVERR if self._optverr else 0
        self._cr = LOCK | OPTLOCK
        self._acr = 0x600
        self._regs = dict(self._loaded)
        self._keys.reset()
        self._optkeys.reset()
        self._buffer = None

    def _power_down(self) -> None:
        self._buffer = None

    def _set_stale(self, locked: bool) -> None:
        self._sr |= self.stale_flags
        if not locked:
            self._cr &= ~LOCK

    def hardware_watchdog(self) -> bool:
        return not self._loaded[OPTR] & IWDG_SW

    def read_option_area(self, address: int, size: int) -> int:
        raw = bytearray()
        for reg in OPTION_REGS:
            value, complement = self._storage[reg]
            raw += value.to_bytes(4, "little") + complement.to_bytes(4, "little")
        offset = address - OPTION_BASE
        return int.from_bytes(raw[offset:offset + size], "little")

    # --- protection ---------------------------------------------------------------------------
    def _page_protected(self, page: int) -> bool:
        if self._debug_locked():
            return True
        for reg in (WRP1AR, WRP1BR):
            area = self._loaded[reg]
            if (area & 0xFF) <= page <= (area >> 16) & 0xFF:
                return True
        return False

    def _error(self, flags: int) -> None:
        """Raise error flags; OPERR accompanies them only with ERRIE (RM0394 SR bit text)."""
        self._sr |= flags | (OPERR if self._cr & ERRIE else 0)

    def _finished(self, op: Operation) -> None:
        self._cr &= ~(STRT | OPTSTRT)
        if self._cr & EOPIE:
            self._sr |= EOP

    # --- registers ----------------------------------------------------------------------------
    def _read_word(self, offset: int) -> int:
        if offset == ACR:
            return self._acr
        if offset == SR:
            return self._sr | (BSY if self._op is not None else 0) | (PEMPTY if self._pempty else 0)
        if offset == CR:
            return self._cr
        if offset in self._regs:
            return self._regs[offset]
        return 0                                # keys write-only, ECCR and bank 2 not modelled

    def _write_word(self, offset: int, value: int, mask: int) -> None:
        if offset == ACR:
            self._acr = merge(self._acr, value, mask) & 0x7F07
        elif offset == KEYR:
            if self._feed(self._keys, value, mask, offset):
                self._cr &= ~LOCK
        elif offset == OPTKEYR:
            if not self._cr & LOCK and self._feed(self._optkeys, value, mask, offset):
                self._cr &= ~OPTLOCK
        elif offset == SR:
            self._sr &= ~(value & SR_W1C)
        elif offset == CR:
            self._write_cr(value, mask)
        elif offset in self._regs and not self._cr & OPTLOCK:
            self._regs[offset] = merge(self._regs[offset], value, mask)

    def _feed(self, keys: KeySequence, value: int, mask: int, offset: int) -> bool:
        result = keys.feed(value, mask)
        if result is False:
            self._cr |= (LOCK | OPTLOCK) if keys is self._keys else OPTLOCK
            raise bus_fault(self.reg_base + offset, "wrong key sequence: locked until reset")
        return bool(result)

    def _write_cr(self, value: int, mask: int) -> None:
        if self._cr & LOCK:
            return
        new = merge(self._cr, value, mask)
        self._cr = (self._cr & ~CR_RW) | (new & CR_RW)
        if new & LOCK:
            self._cr |= LOCK | OPTLOCK          # setting LOCK sets OPTLOCK too
        elif new & OPTLOCK:
            self._cr |= OPTLOCK
        written = value & mask
        if written & STRT:
            self._start_erase()
        if written & OPTSTRT and not self._cr & OPTLOCK:
            self._start_option_change()
        if written & OBL_LAUNCH and not self._cr & OPTLOCK:
            log.info("%s: OBL_LAUNCH: option reload and system reset", self.chip.name)
            self._obl_pending = True
            self.env.system_reset()

    def _start_erase(self) -> None:
        if self._op is not None:
            log.info("%s: STRT while BSY ignored", self.chip.name)
            return
        cr = self._cr
        per, mer = bool(cr & PER), bool(cr & (MER1 | MER2))
        if not per and not mer:
            return
        if self._sr & BLOCKING or (per and mer) or cr & (PG | FSTPG):
            self._error(PGSERR)
            return
        npages = len(self.chip.sectors)
        if per:
            page = (cr & PNB_MASK) >> PNB_SHIFT
            if page >= npages:
                log.info("%s: PNB %d does not exist: nothing erased", self.chip.name, page)
                return
            if self._page_protected(page):
                self._error(WRPERR)
                return
            start, size = self.unit(page)
            self._cr |= STRT
            self._begin(Operation(f"page {page} erase", timing.L4_PAGE_ERASE,
                                  lambda: self._erase_range(start, size), region=(start, size)))
            return
        if any(self._page_protected(p) for p in range(npages)):
            self._error(WRPERR)                 # mass erase aborted if any page is protected
            return
        self._cr |= STRT
        self._begin(Operation("mass erase", timing.L4_MASS_ERASE, self._erase_all,
                              region=(self.chip.flash_base, self.chip.flash_size)))

    def _erase_range(self, start: int, size: int) -> None:
        self._erase(start, size)
        self._programmed -= set(range(start, start + size, 8))

    def _erase_all(self) -> None:
        self._erase(self.chip.flash_base, self.chip.flash_size)
        self._programmed.clear()

    def _start_option_change(self) -> None:
        if self._op is not None or self._rdp == 2:
            log.info("%s: OPTSTRT ignored (busy or RDP level 2)", self.chip.name)
            return
        target = {reg: self._regs[reg] for reg in OPTION_REGS}
        regress = self._rdp == 1 and target[OPTR] & 0xFF == RDP_LEVEL0
        duration = timing.L4_OPTION_CHANGE + (timing.L4_MASS_ERASE if regress else 0.0)

        def commit() -> None:
            if regress:
                self._erase_all()
            self._storage = {reg: (value, ~value & WORD) for reg, value in target.items()}

        def damaged(rng) -> None:
            self._storage = {reg: (value, (~value ^ (rng.getrandbits(32) | 1)) & WORD)
                             for reg, value in target.items()}   # complements never match

        if regress:
            log.info("%s: RDP 1 -> 0: mass erase of main flash", self.chip.name)
        self._cr |= OPTSTRT
        self._begin(Operation("option change", duration, commit, on_power_loss=damaged,
                              region=(self.chip.flash_base, self.chip.flash_size) if regress else None))

    # --- main flash ---------------------------------------------------------------------------
    def flash_store(self, address: int, value: int, size: int, from_debugger: bool) -> None:
        """Double-word programming: two 32-bit stores, low address first (RM0394)."""
        self._wait_idle()
        cr = self._cr
        if not cr & PG or cr & FSTPG or self._sr & BLOCKING:
            if cr & FSTPG:
                log.warning("%s: fast programming is not modelled", self.chip.name)
            self._buffer = None
            self._error(PGSERR)
            return
        if size != 4:
            self._buffer = None
            self._error(SIZERR)
            return
        if self._buffer is None:
            if address & 7:
                self._error(PGAERR)
            else:
                self._buffer = (address, value & WORD)
            return
        first, low = self._buffer
        self._buffer = None
        if address != first + 4:
            self._error(PGAERR)
            return
        if self._page_protected(self.unit_index(first)):
            self._error(WRPERR)
            return
        data = low | (value & WORD) << 32
        current = int.from_bytes(self.memory.read(first, 8), "little")
        erased = current == (1 << 64) - 1 and first not in self._programmed
        if not erased and data != 0:
            self._error(PROGERR)
            return
        cells = (current & data).to_bytes(8, "little")

        def program() -> None:
            self._program_cells(first, cells)
            self._programmed.add(first)

        self._begin(Operation(f"program 0x{first:08X}", timing.L4_DOUBLEWORD_PROGRAM, program,
                              region=(first, 8)))


__all__ = ["L4FlashController"]
