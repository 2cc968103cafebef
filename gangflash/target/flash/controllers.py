"""Host-side driving of the flash controller, one class per controller generation.

What the loader does not do lives here: unlock, clear stale error flags, erase (page, sector,
mass), read the option bytes (readout and write protection), regress RDP level 1 to 0, and turn
a status register into a cause. Register maps and bits: `shared/reference/stm32-flash.md` (the
tool's own table; the simulator keeps its own).
"""

from __future__ import annotations

import logging
import anyio

from ..geometry import EraseUnit as Unit
from .errors import ClockMissing, EraseFailed, FlashError, FlashLocked, WriteProtected

log = logging.getLogger(__name__)

KEY1, KEY2 = 0x45670123, 0xCDEF89AB


class FlashInterface:
    """Common logic; subclasses give the register map and the erase sequences.

    ``mem`` is anything with async ``read32(address)`` / ``write32(address, value)`` (the core
    debug object)."""

    generation = ""
    keyr = sr = cr = 0
    optkeyr = 0
    bsy = 0
    lock = 0
    errors: dict[int, str] = {}
    erase_timeout_margin = 3.0

    def __init__(self, mem, base: int, *, erased: int = 0xFF) -> None:
        self.mem = mem
        self.base = base
        self.erased = erased

    async def read(self, offset: int) -> int:
        return await self.mem.read32(self.base + offset)

    async def write(self, offset: int, value: int) -> None:
        await self.mem.write32(self.base + offset, value)

    async def status(self) -> int:
        return await self.read(self.sr)

    def describe_status(self, sr: int) -> str:
        names = [name for bit, name in self.errors.items() if sr & bit]
        return "|".join(names) if names else "no error flags"

    @property
    def error_mask(self) -> int:
        return sum(self.errors)

    async def clear_errors(self, sr: int | None = None) -> int:
        """Clear stale error flags (write-1-to-clear); return what was set. ``sr``: a status
        the caller has just read (saves a USB round trip)."""
        if sr is None:
            sr = await self.status()
        stale = sr & self.error_mask
        if stale:
            log.info("clearing stale flash flags %s (SR 0x%08X)", self.describe_status(stale), sr)
            await self.write(self.sr, stale)
        return stale

    async def unlock(self) -> None:
        """Unlock CR if locked. A controller still locked after the keys was locked by a wrong
        key since the last reset; only a reset recovers it."""
        if not await self.read(self.cr) & self.lock:
            return
        await self.write(self.keyr, KEY1)
        await self.write(self.keyr, KEY2)
        if await self.read(self.cr) & self.lock:
            raise FlashLocked("flash controller stays locked after the unlock keys (a wrong key was "
                              "written since the last reset): reset the chip and retry")

    async def lock_cr(self) -> None:
        await self.write(self.cr, self.lock)

    # Work to do while waiting for BSY (the engine fills the loader's ring during an erase):
    # an async callable returning True when it did something, False when it has nothing left.
    idle = None

    async def wait_idle(self, timeout: float, *, what: str, address: int | None = None,
                        expected: float | None = None) -> int:
        """Poll SR until BSY clears; polls are spaced so long erases cost few USB commands, and
        the time between them goes to ``idle`` work when there is any.

        ``expected`` (the datasheet's typical duration) moves the first poll to when the operation
        should be done and tightens the polls after it: a poll costs a USB round trip, and on a
        page-by-page erase the overshoot of a coarse poll grid is paid on every page."""
        interval = min(max(timeout / 200, 0.0005), 0.02)
        first_poll = None
        if expected:
            interval = min(max(expected / 20, 0.0005), interval)
            first_poll = anyio.current_time() + expected
        with anyio.move_on_after(timeout):
            while True:
                if first_poll is not None and anyio.current_time() < first_poll:
                    if self.idle is None or not await self.idle():
                        await anyio.sleep(first_poll - anyio.current_time())
                        first_poll = None       # slept until then: poll now (clocks may round)
                    continue
                sr = await self.status()
                if not sr & self.bsy:
                    return sr
                if self.idle is None or not await self.idle():
                    await anyio.sleep(interval)
        sr = await self.status()
        if not sr & self.bsy:
            return sr                   # finished after all (the deadline passed in a slow poll)
        raise EraseFailed(f"flash controller still busy after {timeout:g} s ({what})", sr=sr, address=address)

    async def check(self, sr: int, *, what: str, address: int | None = None) -> None:
        bad = sr & self.error_mask
        if not bad:
            return
        await self.write(self.sr, bad)
        if bad & self.wrp_bits:
            where = f"0x{address:08X} is write-protected" if address is not None else "write-protected pages"
            raise WriteProtected(f"{what}: {where} (option bytes WRP; clear the protection or use "
                                 f"another image)", sr=sr, address=address)
        raise EraseFailed(f"{what} failed: {self.describe_status(bad)}", sr=sr, address=address)

    wrp_bits = 0

    # --- per generation ---------------------------------------------------------------------
    async def erase_unit(self, unit: Unit, timeout: float, *, expected: float | None = None) -> None:
        """Erase one unit. May leave the erase mode bits set in CR for the next unit (one USB
        command less per unit): call :meth:`end_erase` after the last one."""
        raise NotImplementedError

    async def _start(self, bits: int, timeout: float, *, what: str, address: int | None = None,
                     expected: float | None = None) -> int:
        """F4/L4 style: the operation's bits in CR, then the same with STRT, and wait for BSY to
        clear; returns SR (the caller checks it)."""
        await self.write(self.cr, bits)
        await self.write(self.cr, bits | self.STRT)
        return await self.wait_idle(timeout, what=what, address=address, expected=expected)

    async def end_erase(self) -> None:
        """Clear what :meth:`erase_unit` left in CR (before programming or locking)."""
        await self.write(self.cr, 0)

    async def mass_erase(self, timeout: float, *, expected: float | None = None) -> None:
        raise NotImplementedError

    async def rdp_level(self) -> int:
        raise NotImplementedError

    async def prepare(self, **_) -> None:
        """Generation-specific readiness (clocks, programming width)."""

    # --- programming without a loader (the last-resort fallback) ------------------------------
    direct_width = 4
    direct_chunk = 1024

    def direct_cr(self) -> int:
        return self.PG

    async def program_direct(self, dest: int, data: bytes, on_progress) -> None:
        """The debug port stores each unit with CR set up; the controller stalls the bus while
        busy. Slow (USB round trips per chunk), but independent of the core."""
        probe = self.mem.probe
        await self.write(self.cr, self.direct_cr())
        try:
            for offset in range(0, len(data), self.direct_chunk):
                chunk = data[offset:offset + self.direct_chunk]
                await probe.write_memory(dest + offset, chunk, width=self.direct_width)
                sr = await self.wait_idle(1.0, what="direct programming", address=dest + offset)
                await self.check(sr, what="direct programming", address=dest + offset)
                on_progress(offset + len(chunk))
        finally:
            await self.write(self.cr, 0)

    async def regress_rdp(self) -> None:
        """Readout protection level 1 -> 0; the chip mass-erases its flash on the way."""
        raise FlashError(f"removing readout protection is not supported on {self.generation}")

    async def set_rdp_level1(self) -> None:
        """Readout protection level 1 from the next reset (after programming and verifying)."""
        raise FlashError(f"setting readout protection is not supported on {self.generation}")


class F1Flash(FlashInterface):
    """F0/F1/F3 FPEC: halfword programming, PER/MER + STRT erase, OBR/WRPR options."""

    generation = "f1"
    keyr, optkeyr, sr, cr, ar, obr, wrpr = 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20
    bsy, lock = 1 << 0, 1 << 7
    PG, PER, MER, OPTPG, OPTER, STRT, OPTWRE = 1, 2, 4, 16, 32, 64, 1 << 9
    errors = {1 << 2: "PGERR", 1 << 4: "WRPRTERR"}
    wrp_bits = 1 << 4
    EOP = 1 << 5

    def __init__(self, mem, base: int = 0x40022000, *, rcc_base: int = 0x40021000, **kw) -> None:
        super().__init__(mem, base, **kw)
        self.rcc_base = rcc_base

    async def prepare(self, **_) -> None:
        """The FPEC runs on HSI only: switch it on if the firmware stopped it."""
        rcc_cr = await self.mem.read32(self.rcc_base)
        if not rcc_cr & 1:
            log.info("HSI was off (RCC_CR 0x%08X): switching it on for the flash controller", rcc_cr)
            await self.mem.write32(self.rcc_base, rcc_cr | 1)
            with anyio.move_on_after(0.01):
                while not await self.mem.read32(self.rcc_base) & 2:
                    await anyio.sleep(0)
            if not await self.mem.read32(self.rcc_base) & 2:
                raise ClockMissing("HSI oscillator does not start: the flash controller has no clock")

    async def _erase(self, bits: int, address: int | None, timeout: float, what: str,
                     expected: float | None = None) -> None:
        await self.write(self.cr, bits)
        if address is not None:
            await self.write(self.ar, address)
        await self.write(self.cr, bits | self.STRT)
        sr = await self.wait_idle(timeout, what=what, address=address, expected=expected)
        await self.write(self.cr, 0)
        await self.write(self.sr, self.EOP)
        await self.check(sr, what=what, address=address)

    async def erase_unit(self, unit: Unit, timeout: float, *, expected: float | None = None) -> None:
        await self._erase(self.PER, unit.start, timeout, f"erase page {unit.index}", expected)

    async def mass_erase(self, timeout: float, *, expected: float | None = None) -> None:
        await self._erase(self.MER, None, timeout, "mass erase")

    direct_width = 2

    async def rdp_level(self) -> int:
        return 1 if await self.read(self.obr) & 2 else 0

    async def regress_rdp(self) -> None:
        """PM0075: unlock the option bytes (OPTKEYR, CR.OPTWRE), erase them (OPTER), program
        RDP = 0xA5: the FPEC mass-erases main flash first. The new level loads at the next reset."""
        await self.write(self.optkeyr, KEY1)
        await self.write(self.optkeyr, KEY2)
        if not await self.read(self.cr) & self.OPTWRE:
            raise FlashLocked("option bytes stay write-locked after the OPTKEYR keys")
        await self.write(self.cr, self.OPTER | self.OPTWRE)
        await self.write(self.cr, self.OPTER | self.OPTWRE | self.STRT)
        sr = await self.wait_idle(2.0, what="option byte erase")
        await self.check(sr, what="option byte erase")
        await self.write(self.cr, self.OPTPG | self.OPTWRE)
        await self.mem.probe.write_memory(0x1FFFF800, b"\xa5\x00", width=2)
        sr = await self.wait_idle(5.0, what="RDP level 0 (mass erase)")
        await self.write(self.cr, 0)
        await self.check(sr, what="RDP level 0 (mass erase)")

    async def set_rdp_level1(self) -> None:
        """Erase the option bytes (RDP reads 0xFF: any value but 0xA5 is level 1) and program
        RDP = 0x00 explicitly; loaded at the next reset."""
        await self.unlock()                     # OPTER/OPTPG are CR bits: CR must be unlocked
        await self.write(self.optkeyr, KEY1)
        await self.write(self.optkeyr, KEY2)
        await self.write(self.cr, self.OPTER | self.OPTWRE)
        await self.write(self.cr, self.OPTER | self.OPTWRE | self.STRT)
        await self.check(await self.wait_idle(2.0, what="option byte erase"), what="option byte erase")
        await self.write(self.cr, self.OPTPG | self.OPTWRE)
        await self.mem.probe.write_memory(0x1FFFF800, b"\x00\x00", width=2)
        sr = await self.wait_idle(2.0, what="RDP level 1")
        await self.write(self.cr, 0)
        await self.check(sr, what="RDP level 1")

    async def protected_units(self, units: list[Unit]) -> list[Unit]:
        """Units whose WRP bit is 0 (F1: 4 pages per bit with 1 KiB pages, 2 with 2 KiB, bit 31
        covers the rest)."""
        wrpr = await self.read(self.wrpr)
        if wrpr == 0xFFFFFFFF:
            return []
        per_bit = 4 if units and units[0].size == 1024 else 2
        return [u for u in units if not wrpr >> min(u.index // per_bit, 31) & 1]


class F4Flash(FlashInterface):
    """F2/F4/F7: PSIZE-wide programming, sector erase by SNB, OPTCR options."""

    generation = "f4"
    keyr, optkeyr, sr, cr, optcr = 0x04, 0x08, 0x0C, 0x10, 0x14
    bsy, lock = 1 << 16, 1 << 31
    PG, SER, MER, MER1, STRT = 1, 2, 4, 1 << 15, 1 << 16
    errors = {1 << 1: "OPERR", 1 << 4: "WRPERR", 1 << 5: "PGAERR", 1 << 6: "PGPERR", 1 << 7: "PGSERR"}
    wrp_bits = 1 << 4

    def __init__(self, mem, base: int = 0x40023C00, **kw) -> None:
        super().__init__(mem, base, **kw)
        self.psize = 2

    async def prepare(self, *, volts: float | None = None, **_) -> None:
        """Programming/erase width from the supply: x32 needs 2.7-3.6 V (RM0090 Table 6)."""
        self.psize = 2 if volts is None or volts >= 2.7 else (1 if volts >= 2.1 else 0)

    async def erase_unit(self, unit: Unit, timeout: float, *, expected: float | None = None) -> None:
        """SER + SNB, then STRT. CR keeps SER/SNB/PSIZE afterwards (STRT clears with BSY); the
        next unit's write replaces them, and :meth:`end_erase` clears them after the last."""
        snb = unit.index if unit.bank == 0 else 0x10 + unit.bank_index
        bits = self.SER | (snb << 3) | (self.psize << 8)
        sr = await self._start(bits, timeout, what=f"erase sector {unit.index}", address=unit.start,
                               expected=expected)
        await self.check(sr, what=f"erase sector {unit.index}", address=unit.start)

    async def mass_erase(self, timeout: float, *, dual_bank: bool = False,
                         expected: float | None = None) -> None:
        bits = self.MER | (self.MER1 if dual_bank else 0) | (self.psize << 8)
        sr = await self._start(bits, timeout, what="mass erase", expected=expected)
        await self.write(self.cr, 0)
        await self.check(sr, what="mass erase")

    def direct_cr(self) -> int:
        return self.PG | (self.psize << 8)

    async def rdp_level(self) -> int:
        rdp = (await self.read(self.optcr) >> 8) & 0xFF
        return 0 if rdp == 0xAA else (2 if rdp == 0xCC else 1)

    async def regress_rdp(self) -> None:
        """RM0090 3.7: OPTCR with RDP = 0xAA and OPTSTRT; the chip mass-erases inside that BSY
        period (up to the mass-erase time), the new level loads at the next reset."""
        await self.write(self.optkeyr, 0x08192A3B)
        await self.write(self.optkeyr, 0x4C5D6E7F)
        optcr = await self.read(self.optcr)
        if optcr & 1:
            raise FlashLocked("option bytes stay locked after the OPTKEYR keys")
        optcr = (optcr & ~0xFF03) | (0xAA << 8)
        await self.write(self.optcr, optcr)
        await self.write(self.optcr, optcr | 2)
        sr = await self.wait_idle(40.0, what="RDP level 0 (mass erase)")
        await self.check(sr, what="RDP level 0 (mass erase)")

    async def set_rdp_level1(self) -> None:
        """OPTCR.RDP = 0x55 (neither 0xAA nor 0xCC: level 1), OPTSTRT; loaded at the next reset."""
        await self.unlock()                     # the option keys are refused while CR is locked
        await self.write(self.optkeyr, 0x08192A3B)
        await self.write(self.optkeyr, 0x4C5D6E7F)
        optcr = (await self.read(self.optcr) & ~0xFF03) | (0x55 << 8)
        await self.write(self.optcr, optcr)
        await self.write(self.optcr, optcr | 2)
        await self.check(await self.wait_idle(2.0, what="RDP level 1"), what="RDP level 1")
        await self.write(self.optcr, optcr | 1)                 # OPTLOCK again

    async def protected_units(self, units: list[Unit]) -> list[Unit]:
        nwrp = (await self.read(self.optcr) >> 16) & 0xFFF
        return [u for u in units if u.index < 12 and not nwrp >> u.index & 1]


class L4Flash(FlashInterface):
    """L4/G0/G4/WB: double-word programming, page erase by PNB (+BKER), OPTR options."""

    generation = "l4"
    keyr, optkeyr, sr, cr, optr, wrp1ar, wrp1br = 0x08, 0x0C, 0x10, 0x14, 0x20, 0x2C, 0x30
    bsy, lock = 1 << 16, 1 << 31
    PG, PER, MER1, BKER, MER2, STRT = 1, 2, 4, 1 << 11, 1 << 15, 1 << 16
    errors = {1 << 1: "OPERR", 1 << 3: "PROGERR", 1 << 4: "WRPERR", 1 << 5: "PGAERR", 1 << 6: "SIZERR",
              1 << 7: "PGSERR", 1 << 8: "MISERR", 1 << 9: "FASTERR", 1 << 14: "RDERR", 1 << 15: "OPTVERR"}
    wrp_bits = 1 << 4

    async def erase_unit(self, unit: Unit, timeout: float, *, expected: float | None = None) -> None:
        """PER + PNB (+BKER), then STRT. CR keeps PER/PNB afterwards (STRT clears with BSY,
        RM0394 3.7.5); the next page's write replaces them, :meth:`end_erase` clears them."""
        bits = self.PER | (unit.bank_index << 3) | (self.BKER if unit.bank else 0)
        sr = await self._start(bits, timeout, what=f"erase page {unit.index}", address=unit.start,
                               expected=expected)
        await self.check(sr, what=f"erase page {unit.index}", address=unit.start)

    async def mass_erase(self, timeout: float, *, dual_bank: bool = True,
                         expected: float | None = None) -> None:
        bits = self.MER1 | (self.MER2 if dual_bank else 0)
        sr = await self._start(bits, timeout, what="mass erase", expected=expected)
        await self.write(self.cr, 0)
        await self.check(sr, what="mass erase")

    async def rdp_level(self) -> int:
        rdp = await self.read(self.optr) & 0xFF
        return 0 if rdp == 0xAA else (2 if rdp == 0xCC else 1)

    async def regress_rdp(self) -> None:
        """RM0394 3.7: OPTR.RDP = 0xAA, OPTSTRT (mass erase inside BSY), then OBL_LAUNCH
        reloads the options (a system reset)."""
        await self.write(self.optkeyr, 0x08192A3B)
        await self.write(self.optkeyr, 0x4C5D6E7F)
        if await self.read(self.cr) & (1 << 30):
            raise FlashLocked("option bytes stay locked after the OPTKEYR keys")
        optr = await self.read(self.optr)
        await self.write(self.optr, (optr & ~0xFF) | 0xAA)
        await self.write(self.cr, 1 << 17)
        sr = await self.wait_idle(2.0, what="RDP level 0 (mass erase)")
        await self.check(sr, what="RDP level 0 (mass erase)")
        await self._launch_option_load()

    async def _launch_option_load(self) -> None:
        """OBL_LAUNCH: reload the option bytes, which resets the chip."""
        try:
            await self.write(self.cr, 1 << 27)
        except Exception as exc:                          # noqa: BLE001 - the reset may cut the access
            log.debug("OBL_LAUNCH: %s", exc)

    async def set_rdp_level1(self) -> None:
        """OPTR.RDP = 0xBB (level 1), OPTSTRT, then OBL_LAUNCH: on the L4 a plain system reset
        does not reload the option bytes (RM0394 3.4.2), the option loader does (and resets)."""
        await self.unlock()                     # the option keys are refused while CR is locked
        await self.write(self.optkeyr, 0x08192A3B)
        await self.write(self.optkeyr, 0x4C5D6E7F)
        optr = await self.read(self.optr)
        await self.write(self.optr, (optr & ~0xFF) | 0xBB)
        await self.write(self.cr, 1 << 17)
        await self.check(await self.wait_idle(2.0, what="RDP level 1"), what="RDP level 1")
        await self._launch_option_load()

    async def protected_units(self, units: list[Unit]) -> list[Unit]:
        protected = []
        for reg in (self.wrp1ar, self.wrp1br):
            value = await self.read(reg)
            start, end = value & 0xFF, (value >> 16) & 0xFF
            if start <= end:
                protected += [u for u in units if u.bank == 0 and start <= u.bank_index <= end]
        return protected


GENERATIONS = {"f1": F1Flash, "f4": F4Flash, "l4": L4Flash}


def make_interface(generation: str, mem, base: int, **kw) -> FlashInterface:
    try:
        cls = GENERATIONS[generation]
    except KeyError:
        raise FlashError(f"no flash driver for controller generation {generation!r} yet") from None
    return cls(mem, base, **kw)
