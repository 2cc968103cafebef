"""The private peripheral bus (0xE0000000-0xE00FFFFF) of the simulated core: system control
block, NVIC, SysTick, the debug registers (DHCSR, DCRSR, DCRDR, DEMCR), DWT, FPB, ITM, TPIU and
the ROM table. Register addresses and bits: `shared/reference/cortex-m-debug.md` (ARMv7-M ARM
B3 and C1). The chip supplies DBGMCU (0xE0042000) and the reset request through callbacks.
"""

from __future__ import annotations

import logging
from typing import Callable

from . import cortex as C
from .coresight import component_id_read

log = logging.getLogger(__name__)

DBGKEY = 0xA05F
VECTKEY = 0x05FA
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
S_RETIRE_ST, S_RESET_ST = 1 << 24, 1 << 25
SYSTICK_ENABLE, SYSTICK_TICKINT, SYSTICK_CLKSOURCE, SYSTICK_COUNTFLAG = 1, 2, 4, 1 << 16


class SysTick:
    """The 24-bit SysTick timer. It counts while the core runs (it stops in Debug state), so the
    chip hands it running time only; ``until_wrap`` lets the chip stop the core exactly at a tick."""

    def __init__(self, core: C.CortexM, core_hz: float, slice_elapsed: Callable[[], float]) -> None:
        self.core = core
        self.core_hz = core_hz
        # Time the core has already run in the current slice: the chip hands SysTick whole
        # slices afterwards, so a (re)start inside a slice is credited with it.
        self.slice_elapsed = slice_elapsed
        self.reset()

    def reset(self) -> None:
        self.ctrl = 0
        self.load = 0
        self._remaining = 0.0       # seconds until the counter reaches zero
        self.countflag = False

    def _tick_period(self) -> float:
        hz = self.core_hz if self.ctrl & SYSTICK_CLKSOURCE else self.core_hz / 8
        return (self.load + 1) / hz

    def until_wrap(self) -> float | None:
        if not self.ctrl & SYSTICK_ENABLE or self.load == 0:
            return None
        return max(self._remaining, 0.0)

    def elapse(self, seconds: float) -> None:
        if not self.ctrl & SYSTICK_ENABLE or self.load == 0 or seconds <= 0:
            return
        self._remaining -= seconds
        period = self._tick_period()
        while self._remaining <= 1e-12:
            self.countflag = True
            if self.ctrl & SYSTICK_TICKINT:
                self.core.set_pending(C.SYSTICK)
            self._remaining += period

    def read(self, offset: int) -> int:
        if offset == 0x0:
            value = self.ctrl | (SYSTICK_COUNTFLAG if self.countflag else 0)
            self.countflag = False
            return value
        if offset == 0x4:
            return self.load
        if offset == 0x8:
            if not self.ctrl & SYSTICK_ENABLE:
                return 0
            hz = self.core_hz if self.ctrl & SYSTICK_CLKSOURCE else self.core_hz / 8
            return min(self.load, int(self._remaining * hz)) & 0xFFFFFF
        if offset == 0xC:
            return 0x40000000 | int(self.core_hz / 8 / 1000)   # NOREF=0, SKEW=1, 1 ms reference
        return 0

    def write(self, offset: int, value: int) -> None:
        if offset == 0x0:
            was_enabled = self.ctrl & SYSTICK_ENABLE
            self.ctrl = value & 0x7
            if self.ctrl & SYSTICK_ENABLE and not was_enabled:
                self._remaining = self._tick_period() + self.slice_elapsed()
        elif offset == 0x4:
            self.load = value & 0xFFFFFF
        elif offset == 0x8:
            self.countflag = False
            if self.ctrl & SYSTICK_ENABLE:
                self._remaining = self._tick_period() + self.slice_elapsed()


class Ppb:
    """Register file of the private peripheral bus."""

    def __init__(self, core: C.CortexM, *, dev_id: int, core_hz: float,
                 system_reset: Callable[[], None], vect_reset: Callable[[], None],
                 external: Callable[[int, int, int | None], int | None],
                 slice_elapsed: Callable[[], float] = lambda: 0.0) -> None:
        self.core = core
        self.dev_id = dev_id
        self.systick = SysTick(core, core_hz, slice_elapsed)
        self._system_reset = system_reset
        self._vect_reset = vect_reset
        self._external = external          # DBGMCU and other chip registers in the PPB range
        self.ccr = 0x200 if core.core == "M4" else 0
        self.scr = 0
        self.cpacr = 0
        self.dwt_ctrl = 0x40000000
        self.dwt_regs: dict[int, int] = {}
        self.fp_ctrl = 0x260
        self.fp_regs: dict[int, int] = {}
        self.itm_regs: dict[int, int] = {}
        self.irq_pending_latch: set[int] = set()

    def system_reset(self) -> None:
        """Registers outside the debug domain go back to reset values."""
        self.systick.reset()
        self.ccr = 0x200 if self.core.core == "M4" else 0
        self.scr = 0
        self.cpacr = 0

    def power_on(self) -> None:
        self.system_reset()
        self.dwt_ctrl = 0x40000000
        self.dwt_regs.clear()
        self.fp_ctrl = 0x260
        self.fp_regs.clear()
        self.itm_regs.clear()

    # ------------------------------------------------------------------ access
    def read(self, address: int, size: int) -> int:
        word = self._read_word(address & ~3)
        shift = 8 * (address & 3)
        return (word >> shift) & ((1 << (8 * size)) - 1)

    def write(self, address: int, value: int, size: int) -> None:
        if size != 4:
            shift = 8 * (address & 3)
            mask = ((1 << (8 * size)) - 1) << shift
            if (address & ~3) in (0xE000ED18, 0xE000ED1C, 0xE000ED20) or 0xE000E400 <= address < 0xE000E4F0:
                old = self._read_word(address & ~3)      # byte-accessible priority registers
                value = (old & ~mask) | ((value << shift) & mask)
            else:
                value = (value << shift) & mask
        self._write_word(address & ~3, value & 0xFFFFFFFF)

    # ------------------------------------------------------------------ reads
    def _read_word(self, a: int) -> int:
        if a == 0xE000EDF0:
            # DHCSR first: debuggers busy-poll it (OpenOCD ~13,000 reads/s), and no ID register,
            # chip register or earlier range below covers its address
            return self._read_dhcsr()
        core = self.core
        ident = component_id_read(core.core, self.dev_id, a)
        if ident is not None:
            if a & ~0xFFF in (0xE0001000, 0xE0000000) and not core.demcr & (1 << 24) and core.core == "M3":
                return 0                      # F103: DWT/ITM IDs read 0 while TRCENA = 0
            return ident
        external = self._external(a, 4, None)
        if external is not None:
            return external
        if 0xE000E010 <= a <= 0xE000E01C:
            return self.systick.read(a - 0xE000E010)
        if a == 0xE000E004:
            return 2                           # ICTR: 96 interrupt lines
        if 0xE000E100 <= a < 0xE000E140 or 0xE000E180 <= a < 0xE000E1C0:
            return self._irq_bits(a & 0x3F, core.irq_enabled)
        if 0xE000E200 <= a < 0xE000E240 or 0xE000E280 <= a < 0xE000E2C0:
            return self._irq_bits(a & 0x3F, {n for n in core.pending if n >= 16})
        if 0xE000E300 <= a < 0xE000E340:
            return self._irq_bits(a & 0x3F, {n for n in core.active if n >= 16})
        if 0xE000E400 <= a < 0xE000E4F0:
            base = 16 + (a - 0xE000E400)
            return sum(core.priorities.get(base + i, 0) << (8 * i) for i in range(4))
        return self._read_scb(a)

    @staticmethod
    def _irq_bits(offset: int, numbers: set[int]) -> int:
        first = 16 + 8 * offset
        return sum(1 << (n - first) for n in numbers if first <= n < first + 32)

    def _read_scb(self, a: int) -> int:
        core = self.core
        if a == 0xE000ED00:
            return core.cpuid
        if a == 0xE000ED04:
            active = core.active[-1] if core.active else 0
            pend = min(core.pending, default=0)
            return (active & 0x1FF) | ((pend & 0x1FF) << 12) | ((1 << 22) if any(n >= 16 for n in core.pending) else 0) \
                | ((1 << 26) if C.SYSTICK in core.pending else 0) | ((1 << 28) if C.PENDSV in core.pending else 0)
        if a == 0xE000ED08:
            return core.vtor
        if a == 0xE000ED0C:
            return 0xFA050000
        if a == 0xE000ED10:
            return self.scr
        if a == 0xE000ED14:
            return self.ccr
        if 0xE000ED18 <= a <= 0xE000ED20:
            base = 4 + (a - 0xE000ED18)
            return sum(core.priorities.get(base + i, 0) << (8 * i) for i in range(4))
        if a == 0xE000ED24:
            return core.shcsr
        if a == 0xE000ED28:
            return core.cfsr
        if a == 0xE000ED2C:
            return core.hfsr
        if a == 0xE000ED30:
            return core.dfsr
        if a == 0xE000ED34:
            return core.mmfar
        if a == 0xE000ED38:
            return core.bfar
        if a == 0xE000ED6C:
            return 0x01111131 if core.core == "M4" else 0x01111110     # ID_ISAR3
        if a == 0xE000ED88:
            return self.cpacr
        if a == 0xE000ED90:
            return 0x800 if core.core == "M4" else 0                    # MPU_TYPE
        if a == 0xE000EDF0:
            return self._read_dhcsr()
        if a == 0xE000EDF8:
            return core.dcrdr
        if a == 0xE000EDFC:
            return core.demcr
        if a == 0xE000EF40:
            return 0x10110021 if core.core == "M4" else 0
        if a == 0xE000EF44:
            return 0x11000011 if core.core == "M4" else 0
        if 0xE0001000 <= a < 0xE0002000:
            return self._read_dwt(a - 0xE0001000)
        if 0xE0002000 <= a < 0xE0003000:
            if a == 0xE0002000:
                return self.fp_ctrl
            return self.fp_regs.get(a, 0)
        if 0xE0000000 <= a < 0xE0001000:
            return self.itm_regs.get(a, 0)
        return 0

    def _read_dhcsr(self) -> int:
        core = self.core
        value = (core.dhcsr_ctrl & 0x2F) | S_REGRDY
        if core.halted:
            value |= S_HALT
        if core.sleeping and not core.halted:
            value |= S_SLEEP
        if core.lockup:
            value |= S_LOCKUP
        if core.s_retire_st:
            value |= S_RETIRE_ST
        if core.s_reset_st:
            value |= S_RESET_ST
        core.s_retire_st = False
        core.s_reset_st = False
        return value

    def _read_dwt(self, offset: int) -> int:
        if offset == 0x0:
            return self.dwt_ctrl
        if offset == 0x4:
            return self.core.cyccnt
        if offset == 0x1C:
            return self.core.pc
        return self.dwt_regs.get(offset, 0)

    # ------------------------------------------------------------------ writes
    def _write_word(self, a: int, v: int) -> None:
        core = self.core
        if self._external(a, 4, v) is not None:
            return
        if 0xE000E010 <= a < 0xE000E500 or 0xE000ED04 <= a <= 0xE000ED24 or a == 0xE000EF00:
            # Timer, NVIC and exception-control writes change what happens next: end the
            # current run slice so the chip re-plans its events.
            core.request_stop(C.Stop.BUSY)
        if 0xE000E010 <= a <= 0xE000E01C:
            self.systick.write(a - 0xE000E010, v)
        elif 0xE000E100 <= a < 0xE000E140:
            core.irq_enabled |= self._bits_to_irqs(a & 0x3F, v)
            for n in list(self.irq_pending_latch):
                if n in core.irq_enabled:
                    core.set_pending(n)
                    self.irq_pending_latch.discard(n)
        elif 0xE000E180 <= a < 0xE000E1C0:
            core.irq_enabled -= self._bits_to_irqs(a & 0x3F, v)
        elif 0xE000E200 <= a < 0xE000E240:
            for n in self._bits_to_irqs(a & 0x3F, v):
                if n in core.irq_enabled:
                    core.set_pending(n)
                else:
                    self.irq_pending_latch.add(n)
        elif 0xE000E280 <= a < 0xE000E2C0:
            clear = self._bits_to_irqs(a & 0x3F, v)
            core.pending -= clear
            self.irq_pending_latch -= clear
        elif 0xE000E400 <= a < 0xE000E4F0:
            base = 16 + (a - 0xE000E400)
            for i in range(4):
                core.priorities[base + i] = (v >> (8 * i)) & 0xF0
        elif a == 0xE000EF00:
            n = 16 + (v & 0x1FF)
            if n in core.irq_enabled:
                core.set_pending(n)
        else:
            self._write_scb(a, v)

    @staticmethod
    def _bits_to_irqs(offset: int, value: int) -> set[int]:
        first = 16 + 8 * offset
        return {first + i for i in range(32) if value & (1 << i)}

    def _write_scb(self, a: int, v: int) -> None:
        core = self.core
        if a == 0xE000ED04:
            if v & (1 << 26):
                core.pending.add(C.SYSTICK)
            if v & (1 << 25):
                core.pending.discard(C.SYSTICK)
            if v & (1 << 28):
                core.pending.add(C.PENDSV)
            if v & (1 << 27):
                core.pending.discard(C.PENDSV)
            if v & (1 << 31):
                core.pending.add(C.NMI)
        elif a == 0xE000ED08:
            core.vtor = v & 0xFFFFFF80
        elif a == 0xE000ED0C:
            if v >> 16 != VECTKEY:
                return
            if v & 4:
                log.debug("SYSRESETREQ")
                self._system_reset()
            elif v & 1:
                self._vect_reset()
            elif v & 2:
                core.active.clear()
        elif a == 0xE000ED10:
            self.scr = v & 0x16
        elif a == 0xE000ED14:
            self.ccr = v & 0x31B
        elif 0xE000ED18 <= a <= 0xE000ED20:
            base = 4 + (a - 0xE000ED18)
            for i in range(4):
                core.priorities[base + i] = (v >> (8 * i)) & 0xF0
        elif a == 0xE000ED24:
            core.shcsr = v & 0x7FFFF
        elif a == 0xE000ED28:
            core.cfsr &= ~v
        elif a == 0xE000ED2C:
            core.hfsr &= ~v
        elif a == 0xE000ED30:
            core.dfsr &= ~v
        elif a == 0xE000ED88:
            self.cpacr = v & 0x00F00000
        elif a == 0xE000EDF0:
            self._write_dhcsr(v)
        elif a == 0xE000EDF4:
            self._write_dcrsr(v)
        elif a == 0xE000EDF8:
            core.dcrdr = v
        elif a == 0xE000EDFC:
            core.demcr = v & 0x010F07F1
        elif 0xE0001000 <= a < 0xE0002000:
            offset = a - 0xE0001000
            if offset == 0x0:
                self.dwt_ctrl = (self.dwt_ctrl & 0xFFFF0000) | (v & 0xFFFF)
            elif offset == 0x4:
                core.cyccnt = v
            else:
                self.dwt_regs[offset] = v
        elif 0xE0002000 <= a < 0xE0003000:
            if a == 0xE0002000:
                if v & 2:                              # KEY must be written as 1
                    self.fp_ctrl = (self.fp_ctrl & ~1) | (v & 1)
            else:
                self.fp_regs[a] = v
        elif 0xE0000000 <= a < 0xE0001000:
            self.itm_regs[a] = v

    def _write_dhcsr(self, v: int) -> None:
        core = self.core
        if v >> 16 != DBGKEY:
            return                                     # writes without the key are ignored
        ctrl = v & 0x2F
        if not ctrl & C.C_DEBUGEN:
            core.dhcsr_ctrl = 0
            if core.halted:
                core.resume()
            return
        if not core.halted:
            ctrl = (ctrl & ~C.C_MASKINTS) | (core.dhcsr_ctrl & C.C_MASKINTS)  # C_MASKINTS only changes while halted
        core.dhcsr_ctrl = ctrl
        if ctrl & C.C_HALT:
            if not core.halted:
                core.enter_debug(C.DFSR_HALTED)
        elif core.halted:
            core.resume()

    def _write_dcrsr(self, v: int) -> None:
        core = self.core
        if not core.halted:
            return                                     # transfers only happen in Debug state
        index = v & 0x7F
        if v & (1 << 16):
            core.write_reg(index, core.dcrdr)
        else:
            core.dcrdr = core.read_reg(index)
