"""A chip attached through a probe: identified, and brought to a known state before any code of
ours runs on it.

The known-state recipe is the seed bug's lesson made code (`shared/reference/cortex-m-debug.md`,
"Known state"): halt before touching the system bus (a sleeping core may have gated it), reset
and halt so the previous firmware's watchdog, interrupts, clocks and flash-controller state are
gone, keep debug alive in low-power modes and freeze the watchdogs while halted, clear the fault
and debug status registers, switch on the flash clock where the family needs it, wait for the
controller to be idle, clear stale error flags and unlock it.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from ..debug import CFSR, DFSR, HFSR, CoreError, CortexDebug
from ..families import identify
from ..geometry import FlashGeometry
from ..parts import Part
from .controllers import FlashInterface, make_interface
from .errors import FlashError, ReadoutProtected

log = logging.getLogger(__name__)

CPUID = 0xE000ED00
# Reset SYSCLK per family (RM0008 HSI 8 MHz, RM0090 HSI 16 MHz, RM0394 MSI 4 MHz, ...)
RESET_CLOCK_HZ = {"F0": 8e6, "F1": 8e6, "F3": 8e6, "F2": 16e6, "F4": 16e6, "F7": 16e6, "L4": 4e6,
                  "G0": 16e6, "G4": 16e6, "L0": 2.1e6, "L1": 2.1e6, "H7": 64e6}
DBG_SLEEP_STOP_STANDBY = 0x7


@dataclass
class Target:
    """One identified chip behind one probe."""

    probe: object
    core: CortexDebug
    part: Part
    idcode: int
    flash_kib: int
    geometry: FlashGeometry
    uid: bytes
    flash: FlashInterface
    notes: list[str] = field(default_factory=list)

    @property
    def serial(self) -> str:
        return getattr(self.probe, "serial", "?")

    @classmethod
    async def attach(cls, probe, *, swd_khz: int | None = 24000, connect_under_reset: bool = False) -> "Target":
        """Connect, halt (a sleeping core wakes; its bus may be gated until then) and identify."""
        await probe.connect(swd_khz=swd_khz)
        core = CortexDebug(probe)
        if connect_under_reset:
            await probe.drive_nrst(0)
            try:
                await core.halt()
            finally:
                await probe.drive_nrst(1)
        try:
            await core.halt()
        except CoreError:
            log.info("%s: halt failed, trying NRST with vector catch", core.serial)
            await core.reset_and_halt_nrst()
        cpuid = await core.read32(CPUID)
        from ..families import idcode_addresses_for
        idcode, part = 0, None
        last_error: Exception | None = None
        for address in idcode_addresses_for(cpuid):
            try:
                idcode = await core.read32(address)
                if idcode & 0xFFF:
                    part = identify(idcode, cpuid=cpuid)
                    break
            except Exception as exc:                      # noqa: BLE001 - try the next location
                last_error = exc
        if part is None:
            if last_error:
                raise last_error
            raise FlashError(f"no STM32 DBGMCU IDCODE found (CPUID 0x{cpuid:08X})")
        raw_size = struct.unpack("<H", await probe.read_memory(part.flash_size_register & ~1, 2, width=2))[0]
        flash_kib = part.decode_flash_size(raw_size)
        uid = b"".join([struct.pack("<I", await core.read32(a)) for a in part.unique_id_addresses])
        geometry = part.geometry(flash_kib)
        flash = make_interface(part.controller.generation, core, part.controller.register_base,
                               erased=part.controller.erased_value, **_interface_options(part))
        log.info("%s: %s, %d KiB flash, UID %s", core.serial, part.name, flash_kib, uid.hex())
        return cls(probe, core, part, idcode, flash_kib, geometry, uid, flash)

    async def bring_to_known_state(self, *, reset: bool = True, unlock_rdp: bool = False) -> None:
        """Everything the previous firmware could have left behind, put right."""
        core, part, flash = self.core, self.part, self.flash
        if reset:
            try:
                await core.reset_and_halt()
            except CoreError:
                self.notes.append("reset request did not halt the core: used NRST")
                await core.reset_and_halt_nrst()
        else:
            await core.halt(maskints=True)
        dbg = part.debug
        cr = await core.read32(dbg.dbgmcu_cr)
        await core.write32(dbg.dbgmcu_cr, cr | DBG_SLEEP_STOP_STANDBY)
        freeze = dbg.iwdg_freeze
        value = await core.read32(freeze.register)
        await core.write32(freeze.register, value | freeze.mask)
        for register in (DFSR, CFSR, HFSR):
            await core.write32(register, 0xFFFFFFFF)
        # Only the F2/F4/F7 programming width depends on the supply: skip the USB command elsewhere.
        volts = await self.probe.target_voltage() if part.controller.generation == "f4" else None
        await flash.prepare(volts=volts)
        sr = await flash.wait_idle(1.0, what="waiting for a previous flash operation")
        stale = await flash.clear_errors(sr)
        if stale:
            self.notes.append(f"cleared stale flash flags {flash.describe_status(stale)}")
        await flash.unlock()
        level = await flash.rdp_level()
        if level:
            if not unlock_rdp:
                raise ReadoutProtected("readout protection is on (RDP level %d): set unlock = true to "
                                       "mass-erase the chip and remove it" % level)
            await self.regress_rdp()

    async def regress_rdp(self) -> None:
        """RDP level 1 -> 0: the hardware mass-erases flash first; the new level loads at a
        reset, after which the known state is restored."""
        self.notes.append("readout protection was on: regressing to level 0 (mass erase)")
        await self.flash.regress_rdp()
        await self.core.reset_and_halt()
        await self.flash.wait_idle(1.0, what="after RDP regression")
        await self.flash.clear_errors()
        await self.flash.unlock()
        level = await self.flash.rdp_level()
        if level:
            raise ReadoutProtected(f"readout protection still level {level} after regression")

    @property
    def core_hz(self) -> float:
        """Reset clock of the family (HSI or MSI): how fast the loader's CRC runs."""
        return RESET_CLOCK_HZ.get(self.part.family, 8e6)


def _interface_options(part: Part) -> dict:
    if part.controller.generation == "f1":
        return {"rcc_base": part.clocks.rcc_base}
    return {}
