"""Cortex-M debug through a probe: halt, run, step, reset-and-halt, registers, and a snapshot of
everything a failure diagnosis needs.

Register addresses and bits: ARMv7-M ARM C1 (`shared/reference/cortex-m-debug.md`). Single
words go through the probe's debug-register commands (one USB command each, where a memory read
costs two); DHCSR's sticky bits (S_RESET_ST, S_RETIRE_ST clear on read) are accumulated here so no
caller loses one to another's read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio

from .errors import TargetError

log = logging.getLogger(__name__)

DHCSR, DCRSR, DCRDR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC
CPUID, AIRCR, CFSR, HFSR, DFSR, BFAR = 0xE000ED00, 0xE000ED0C, 0xE000ED28, 0xE000ED2C, 0xE000ED30, 0xE000ED38
DBGKEY = 0xA05F0000
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS = 1, 2, 4, 8
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP, S_RETIRE_ST, S_RESET_ST = 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 24, 1 << 25
VC_CORERESET, VC_HARDERR = 1 << 0, 1 << 10
DFSR_HALTED, DFSR_BKPT, DFSR_DWTTRAP, DFSR_VCATCH, DFSR_EXTERNAL = 1, 2, 4, 8, 16
AIRCR_SYSRESETREQ = 0x05FA0004
REG_XPSR, REG_MSP, REG_SPECIAL = 16, 17, 20
XPSR_THUMB = 1 << 24
LOCKUP_PC = 0xEFFFFFFE

_CFSR_BITS = {0: "IACCVIOL", 1: "DACCVIOL", 3: "MUNSTKERR", 4: "MSTKERR", 8: "IBUSERR", 9: "PRECISERR",
              10: "IMPRECISERR", 11: "UNSTKERR", 12: "STKERR", 16: "UNDEFINSTR", 17: "INVSTATE",
              18: "INVPC", 19: "NOCP", 24: "UNALIGNED", 25: "DIVBYZERO"}
_HFSR_BITS = {1: "VECTTBL", 30: "FORCED", 31: "DEBUGEVT"}
_DFSR_BITS = {0: "HALTED", 1: "BKPT", 2: "DWTTRAP", 3: "VCATCH", 4: "EXTERNAL"}


class CoreError(TargetError):
    """The core did not do what the debugger asked (halt, reset, run to a breakpoint)."""

    def __init__(self, message: str, *, snapshot: "CoreSnapshot | None" = None, **context) -> None:
        super().__init__(message, **context)
        self.snapshot = snapshot


def _names(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if value & (1 << bit)]


@dataclass
class CoreSnapshot:
    """Core state at a moment of interest, read before anything else touches the core."""

    dhcsr: int = 0
    dfsr: int = 0
    cfsr: int = 0
    hfsr: int = 0
    bfar: int = 0
    regs: dict[str, int] = field(default_factory=dict)

    @property
    def locked_up(self) -> bool:
        return bool(self.dhcsr & S_LOCKUP) or self.regs.get("pc") == LOCKUP_PC

    @property
    def thumb_clear(self) -> bool:
        return "xpsr" in self.regs and not self.regs["xpsr"] & XPSR_THUMB

    def describe(self) -> str:
        """Registers decoded for a person: one line."""
        parts = [f"{name.upper()} 0x{value:08X}" for name, value in self.regs.items()]
        parts.append(f"DHCSR 0x{self.dhcsr:08X}")
        state = [n for n, bit in (("halted", S_HALT), ("sleeping", S_SLEEP), ("LOCKUP", S_LOCKUP))
                 if self.dhcsr & bit]
        if state:
            parts.append("(" + ", ".join(state) + ")")
        parts.append(f"DFSR 0x{self.dfsr:08X}" + (f" {'|'.join(_names(self.dfsr, _DFSR_BITS))}" if self.dfsr else ""))
        if self.cfsr:
            parts.append(f"CFSR 0x{self.cfsr:08X} {'|'.join(_names(self.cfsr, _CFSR_BITS))}")
        if self.hfsr:
            parts.append(f"HFSR 0x{self.hfsr:08X} {'|'.join(_names(self.hfsr, _HFSR_BITS))}")
        return " ".join(parts)


class CortexDebug:
    """One Cortex-M core behind one probe (the ``Stlink`` driver, or anything with its
    ``read_debug_register`` / ``write_debug_register`` / core-register / memory methods)."""

    def __init__(self, probe, *, serial: str | None = None) -> None:
        self.probe = probe
        self.serial = serial or getattr(probe, "serial", None)
        self._sticky = 0

    # ------------------------------------------------------------------ words and registers
    async def read32(self, address: int) -> int:
        return await self.probe.read_debug_register(address)

    async def write32(self, address: int, value: int) -> None:
        await self.probe.write_debug_register(address, value & 0xFFFFFFFF)

    async def dhcsr(self) -> int:
        """DHCSR with the sticky bits accumulated since the last ``take_sticky``."""
        value = await self.read32(DHCSR)
        self._sticky |= value & (S_RESET_ST | S_RETIRE_ST)
        return value | self._sticky

    def take_sticky(self) -> int:
        sticky, self._sticky = self._sticky, 0
        return sticky

    async def read_reg(self, index: int) -> int:
        return await self.probe.read_core_register(index)

    async def write_reg(self, index: int, value: int) -> None:
        await self.probe.write_core_register(index, value)

    # ------------------------------------------------------------------ run control
    async def halt(self, *, maskints: bool = False, timeout: float = 0.1) -> None:
        """Request Debug state and wait for S_HALT. C_MASKINTS is set in a second write: it may
        only change while the core is halted (ARMv7-M C1.6.3)."""
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT)
        await self.wait_for_halt(timeout, what="halt")
        if maskints:
            await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT | C_MASKINTS)

    async def resume(self, *, maskints: bool = False) -> None:
        """Leave Debug state; DFSR is cleared first so the next halt's reason is unambiguous."""
        await self.write32(DFSR, 0x1F)
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN | (C_MASKINTS if maskints else 0))

    async def step(self, *, maskints: bool = True) -> None:
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_STEP | (C_MASKINTS if maskints else 0))

    async def is_halted(self) -> bool:
        return bool(await self.dhcsr() & S_HALT)

    async def wait_for_halt(self, timeout: float, *, what: str = "halt") -> int:
        """Poll DHCSR until S_HALT; return DHCSR. A timeout raises CoreError with a snapshot."""
        with anyio.move_on_after(timeout):
            while True:
                value = await self.dhcsr()
                if value & S_HALT:
                    return value
                await anyio.sleep(0)
        snapshot = await self.snapshot(halt=True)
        raise CoreError(f"core did not {what} within {timeout:g} s", snapshot=snapshot, probe_serial=self.serial)

    async def reset_and_halt(self, *, timeout: float = 0.5) -> None:
        """Reset the whole chip and stop at the reset vector: DEMCR.VC_CORERESET, then
        AIRCR.SYSRESETREQ. Peripherals (watchdog started by software, SysTick, DMA, clocks) are
        back at their reset values; only debug-domain registers survive."""
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT)
        # DEMCR is written whole, not read-modify-written: no other catch or trace bit is ours
        # to keep (and a V2 probe spends a millisecond per read).
        await self.write32(DEMCR, VC_CORERESET)
        self.take_sticky()
        await self.write32(AIRCR, AIRCR_SYSRESETREQ)
        await self._wait_reset_halted(timeout)
        await self.write32(DEMCR, 0)

    async def reset_and_run(self) -> None:
        """Leave the debugger's hold and reset the chip into its (new) firmware: no vector catch,
        not halted, SYSRESETREQ."""
        await self.write32(DEMCR, 0)
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN)
        await self.write32(AIRCR, AIRCR_SYSRESETREQ)

    async def reset_and_halt_nrst(self, *, timeout: float = 0.5) -> None:
        """Fallback when SYSRESETREQ cannot halt the core: pulse NRST with the vector catch set
        (also works when the firmware sleeps with the debug clock gated)."""
        await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT)
        demcr = await self.read32(DEMCR)
        await self.write32(DEMCR, demcr | VC_CORERESET)
        self.take_sticky()
        await self.probe.drive_nrst(0)
        await anyio.sleep(0.001)
        await self.probe.drive_nrst(1)
        await self._wait_reset_halted(timeout)
        await self.write32(DEMCR, demcr & ~VC_CORERESET)

    async def _wait_reset_halted(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            while True:
                value = await self.dhcsr()
                if value & S_RESET_ST and value & S_HALT:
                    self.take_sticky()
                    return
                await anyio.sleep(0)
        snapshot = await self.snapshot(halt=True)
        raise CoreError(f"core did not stop at the reset vector within {timeout:g} s",
                        snapshot=snapshot, probe_serial=self.serial)

    # ------------------------------------------------------------------ diagnosis
    async def snapshot(self, *, halt: bool = True) -> CoreSnapshot:
        """DHCSR first (it shows sleep/lockup only while running), then halt and read the rest."""
        shot = CoreSnapshot()
        try:
            shot.dhcsr = await self.dhcsr()
            if halt and not shot.dhcsr & S_HALT:
                await self.write32(DHCSR, DBGKEY | C_DEBUGEN | C_HALT)
            shot.dfsr = await self.read32(DFSR)
            shot.cfsr = await self.read32(CFSR)
            shot.hfsr = await self.read32(HFSR)
            shot.bfar = await self.read32(BFAR)
            if halt:
                for name, index in (("r0", 0), ("r1", 1), ("r2", 2), ("r3", 3), ("sp", 13), ("lr", 14),
                                    ("pc", 15), ("xpsr", REG_XPSR)):
                    shot.regs[name] = await self.read_reg(index)
        except TargetError:
            raise
        except Exception as exc:                   # the probe may be gone: keep what we have
            log.debug("snapshot incomplete: %s", exc)
        return shot
