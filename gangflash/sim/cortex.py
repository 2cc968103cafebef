"""The Cortex-M3/M4 core of a simulated chip.

Unicorn executes the Thumb instructions. What it does not give us in M-profile mode (exception
entry with stacking, priorities, lockup, the debug halt/step machinery, the Thumb bit as state a
debugger can corrupt) is modelled here, per the ARMv7-M Architecture Reference Manual (B1.5
exception model, C1 debug) as summarised in `shared/reference/cortex-m-debug.md`. The chip
(`target.py`) owns the bus and time; this class owns architectural state and runs code when the
chip tells it how many cycles it has.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import struct
from typing import Callable

from unicorn import (UC_ARCH_ARM, UC_HOOK_BLOCK, UC_HOOK_INTR, UC_HOOK_MEM_INVALID,
                     UC_MODE_MCLASS, UC_MODE_THUMB, Uc, UcError)
from unicorn import arm_const as A
from unicorn import unicorn_const as U

log = logging.getLogger(__name__)

# Exception numbers
RESET, NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 1, 2, 3, 4, 5, 6
SVCALL, DEBUGMON, PENDSV, SYSTICK = 11, 12, 14, 15

# CFSR bits (UFSR in 31:16, BFSR in 15:8)
CFSR_IBUSERR, CFSR_PRECISERR, CFSR_STKERR, CFSR_BFARVALID = 1 << 8, 1 << 9, 1 << 12, 1 << 15
CFSR_UNDEFINSTR, CFSR_INVSTATE, CFSR_INVPC, CFSR_NOCP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
HFSR_VECTTBL, HFSR_FORCED, HFSR_DEBUGEVT = 1 << 1, 1 << 30, 1 << 31
# DFSR bits
DFSR_HALTED, DFSR_BKPT, DFSR_DWTTRAP, DFSR_VCATCH, DFSR_EXTERNAL = 1, 2, 4, 8, 16
# DHCSR control bits
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL = 1, 2, 4, 8, 32
# DEMCR vector catch bits
VC_CORERESET, VC_HARDERR = 1 << 0, 1 << 10

LOCKUP_PC = 0xEFFFFFFE
_WFI, _WFE = 0xBF30, 0xBF20
_SPIN = b"\xfe\xe7"                 # "b .": B (encoding T2) to itself
_XPSR_IT = 0x0600FC00               # EPSR.IT/ICI: inside an IT block "b ." may not branch

# Unicorn interrupt numbers (QEMU's EXCP_* for ARM)
_EXCP_UDEF, _EXCP_SWI, _EXCP_PREFETCH_ABORT, _EXCP_DATA_ABORT = 1, 2, 3, 4
_EXCP_BKPT, _EXCP_EXCEPTION_EXIT, _EXCP_NOCP, _EXCP_INVSTATE = 7, 8, 17, 18

_REG_INDEX = {i: getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)}
_REG_INDEX.update({13: A.UC_ARM_REG_SP, 14: A.UC_ARM_REG_LR, 15: A.UC_ARM_REG_PC,
                   17: A.UC_ARM_REG_MSP, 18: A.UC_ARM_REG_PSP})


def _add_block_hook(uc: Uc, callback: Callable[[int, int, int, int], None]) -> None:
    """Register ``callback(handle, address, size, user)`` as Unicorn's block hook directly.

    The block hook runs once per executed translated block (thousands per millisecond of a
    busy core), and Unicorn's own ``hook_add`` puts two Python layers (an exception guard and
    an argument adapter) in front of it: about 0.35 µs of a 0.85 µs round trip. The callback
    must guard itself the way that wrapper does (``_hook_failed``). Falls back to ``hook_add``
    if a binding without these internals ever turns up.
    """
    try:
        from unicorn.unicorn_py3 import unicorn as binding
        cfunc, hook_handle, lib = binding.HOOK_CODE_CFUNC, binding.uc_hook_h, binding.uclib
        handle_store, engine = uc._callbacks, uc._uch
    except (ImportError, AttributeError):
        uc.hook_add(UC_HOOK_BLOCK, lambda _uc, address, size, _user: callback(0, address, size, 0))
        return
    fptr = cfunc(callback)
    handle = hook_handle()
    status = lib.uc_hook_add(engine, ctypes.byref(handle), UC_HOOK_BLOCK, fptr, None,
                             ctypes.c_uint64(1), ctypes.c_uint64(0))
    if status != U.UC_ERR_OK:
        raise UcError(status)
    handle_store[handle.value] = fptr        # the binding's keep-alive for callback pointers


def _in_host_memory(pc: int) -> bool:
    """Flash (and its boot alias) or SRAM: memory Unicorn reads without side effects. System
    memory, peripherals and the PPB are MMIO whose reads run the bus's callbacks."""
    return pc < 0x1FFF0000 or 0x20000000 <= pc < 0x40000000


def _spin_check(uc: Uc) -> Callable[[], bool]:
    """``check()``: is the core at a "b ." in host memory, outside an IT block? It runs once per
    debugger poll while a core spins, so it goes straight into Unicorn's C API (about half the
    cost of the binding's calls); falls back to the binding like ``_add_block_hook``."""
    try:
        from unicorn.unicorn_py3 import unicorn as binding
        lib, engine = binding.uclib, uc._uch
        reg_read, mem_read = lib.uc_reg_read, lib.uc_mem_read
    except (ImportError, AttributeError):
        def check() -> bool:
            pc = uc.reg_read(A.UC_ARM_REG_PC)
            if not _in_host_memory(pc) or uc.reg_read(A.UC_ARM_REG_XPSR) & _XPSR_IT:
                return False
            try:
                return uc.mem_read(pc, 2) == _SPIN
            except UcError:
                return False
        return check
    value, code = ctypes.c_uint32(), ctypes.create_string_buffer(2)
    ref = ctypes.byref(value)

    def check() -> bool:
        reg_read(engine, A.UC_ARM_REG_PC, ref)
        pc = value.value
        if not _in_host_memory(pc):
            return False
        reg_read(engine, A.UC_ARM_REG_XPSR, ref)
        if value.value & _XPSR_IT:
            return False
        return mem_read(engine, pc, code, 2) == U.UC_ERR_OK and code.raw == _SPIN
    return check


class Stop(enum.Enum):
    """Why the core stopped executing before (or when) its cycle budget ran out."""

    BUDGET = "budget"        # used its cycles; nothing else happened
    HALTED = "halted"        # entered Debug state (BKPT, step done, vector catch)
    SLEEPING = "sleeping"    # WFI/WFE with nothing pending
    LOCKUP = "lockup"        # unrecoverable fault; waits for reset or halt
    BUSY = "busy"            # a bus master asked to stop early (e.g. reset request)


class CortexM:
    """Architectural state plus an executor. Debug-visible state is plain attributes so the
    system control space (``scs.py``) can present it as registers."""

    def __init__(self, core: str, cpuid: int) -> None:
        self.core = core
        self.cpuid = cpuid
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4 if core == "M4" else A.UC_CPU_ARM_CORTEX_M3)
        _add_block_hook(self.uc, self._on_block)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid)
        # Exception state
        self.tbit = True
        self.active: list[int] = []
        self.pending: set[int] = set()
        self.priorities: dict[int, int] = {}       # configurable exceptions and IRQs (16+)
        self.irq_enabled: set[int] = set()          # external IRQs enabled in the NVIC
        self.vtor = 0
        self.shcsr = 0
        self.cfsr = self.hfsr = self.mmfar = self.bfar = 0
        # Run state
        self.halted = False
        self.sleeping = False
        self.lockup = False
        self.step_pending = False
        # Debug registers (debug domain: kept across system reset, cleared at power-on)
        self.dhcsr_ctrl = 0
        self.s_reset_st = False
        self.s_retire_st = False
        self.dfsr = 0
        self.demcr = 0
        self.dcrdr = 0
        self.cyccnt = 0
        # Executor bookkeeping
        self.cycles_used = 0.0
        self._budget = 0.0
        self._stop: Stop | None = None
        self._faulted = False
        self._bad_address: int | None = None
        self._pending_bus_fault: int | None = None
        self.before_block = None     # set by the bus while a flash store awaits settling
        self.spin_fast_path = True   # skip Unicorn for a slice parked on "b ." (tests turn it off)
        self._at_spin = _spin_check(self.uc)

    # ------------------------------------------------------------------ registers
    def read_reg(self, index: int) -> int:
        """A core register by DCRSR index, as a debugger sees it."""
        uc = self.uc
        if index == 15:
            return LOCKUP_PC if self.lockup else uc.reg_read(A.UC_ARM_REG_PC) & ~1
        if index == 16:
            return self.xpsr
        if index in _REG_INDEX:
            return uc.reg_read(_REG_INDEX[index]) & 0xFFFFFFFF
        if index == 20:
            return ((uc.reg_read(A.UC_ARM_REG_CONTROL) & 0xFF) << 24
                    | (uc.reg_read(A.UC_ARM_REG_FAULTMASK) & 1) << 16
                    | (uc.reg_read(A.UC_ARM_REG_BASEPRI) & 0xFF) << 8
                    | (uc.reg_read(A.UC_ARM_REG_PRIMASK) & 1))
        if index == 33 and self.core == "M4":
            return uc.reg_read(A.UC_ARM_REG_FPSCR) & 0xFFFFFFFF
        if 64 <= index <= 95 and self.core == "M4":
            return uc.reg_read(A.UC_ARM_REG_S0 + index - 64) & 0xFFFFFFFF
        return 0

    def write_reg(self, index: int, value: int) -> None:
        """Write a core register by DCRSR index (only meaningful while halted)."""
        uc = self.uc
        value &= 0xFFFFFFFF
        if index == 15:
            uc.reg_write(A.UC_ARM_REG_PC, value & ~1)
        elif index == 16:
            self.xpsr = value
        elif index in _REG_INDEX:
            uc.reg_write(_REG_INDEX[index], value)
        elif index == 20:
            uc.reg_write(A.UC_ARM_REG_PRIMASK, value & 1)
            uc.reg_write(A.UC_ARM_REG_BASEPRI, (value >> 8) & 0xFF)
            uc.reg_write(A.UC_ARM_REG_FAULTMASK, (value >> 16) & 1)
            uc.reg_write(A.UC_ARM_REG_CONTROL, (value >> 24) & 0x3)
        elif index == 33 and self.core == "M4":
            uc.reg_write(A.UC_ARM_REG_FPSCR, value)
        elif 64 <= index <= 95 and self.core == "M4":
            uc.reg_write(A.UC_ARM_REG_S0 + index - 64, value)

    @property
    def xpsr(self) -> int:
        raw = self.uc.reg_read(A.UC_ARM_REG_XPSR) & ~(1 << 24)
        return (raw | (int(self.tbit) << 24)) & 0xFFFFFFFF

    @xpsr.setter
    def xpsr(self, value: int) -> None:
        self.tbit = bool(value & (1 << 24))
        self.uc.reg_write(A.UC_ARM_REG_XPSR, (value & ~(1 << 24)) | (1 << 24))

    @property
    def pc(self) -> int:
        return self.read_reg(15)

    # ------------------------------------------------------------------ reset
    def reset(self, read32) -> None:
        """Core part of a reset: registers from the vector table at VTOR=0, exceptions cleared.
        Debug-domain registers (DHCSR control bits, DEMCR, DFSR) survive; S_RESET_ST is set."""
        uc = self.uc
        for i in range(13):
            uc.reg_write(_REG_INDEX[i], 0)
        uc.reg_write(A.UC_ARM_REG_CONTROL, 0)
        uc.reg_write(A.UC_ARM_REG_PRIMASK, 0)
        uc.reg_write(A.UC_ARM_REG_FAULTMASK, 0)
        uc.reg_write(A.UC_ARM_REG_BASEPRI, 0)
        self.vtor = 0
        self.active.clear()
        self.pending.clear()
        self.priorities.clear()
        self.irq_enabled.clear()
        self.shcsr = 0
        self.cfsr = self.hfsr = self.mmfar = self.bfar = 0
        self.sleeping = False
        self.lockup = False
        self.step_pending = False
        sp, entry = read32(0), read32(4)
        uc.reg_write(A.UC_ARM_REG_MSP, sp & ~3)
        uc.reg_write(A.UC_ARM_REG_SP, sp & ~3)
        uc.reg_write(A.UC_ARM_REG_LR, 0xFFFFFFFF)
        self.xpsr = (1 << 24) if entry & 1 else 0
        uc.reg_write(A.UC_ARM_REG_PC, entry & ~1)
        self.s_reset_st = True
        if self.dhcsr_ctrl & C_DEBUGEN and self.demcr & VC_CORERESET:
            self.enter_debug(DFSR_VCATCH)
        else:
            self.halted = False
            self.dhcsr_ctrl &= ~C_HALT

    def power_on(self) -> None:
        """Power-on reset of the debug domain too."""
        self.dhcsr_ctrl = 0
        self.demcr = 0
        self.dfsr = 0
        self.dcrdr = 0
        self.halted = False

    # ------------------------------------------------------------------ debug
    def enter_debug(self, reason: int) -> None:
        """Enter Debug state: stop executing, record why in DFSR."""
        self.halted = True
        self.sleeping = False
        if self.lockup:
            # A halt takes a locked-up core into Debug state; PC keeps the lockup address
            # until the debugger writes a new one.
            self.lockup = False
            self.uc.reg_write(A.UC_ARM_REG_PC, LOCKUP_PC)
        self.dhcsr_ctrl |= C_HALT
        self.dfsr |= reason

    def resume(self) -> None:
        """Leave Debug state per the current DHCSR control bits."""
        self.halted = False
        if self.dhcsr_ctrl & C_STEP:
            self.step_pending = True

    # ------------------------------------------------------------------ exceptions
    def priority_of(self, number: int) -> int:
        if number == RESET:
            return -3
        if number == NMI:
            return -2
        if number == HARDFAULT:
            return -1
        return self.priorities.get(number, 0)

    def execution_priority(self) -> int:
        uc = self.uc
        prio = min((self.priority_of(n) for n in self.active), default=256)
        if uc.reg_read(A.UC_ARM_REG_FAULTMASK) & 1:
            prio = min(prio, -1)
        if uc.reg_read(A.UC_ARM_REG_PRIMASK) & 1:
            prio = min(prio, 0)
        basepri = uc.reg_read(A.UC_ARM_REG_BASEPRI) & 0xFF
        if basepri:
            prio = min(prio, basepri)
        return prio

    def ready_exception(self) -> int | None:
        """The pending exception that would preempt now, if any."""
        if not self.pending:
            return None
        candidates = [n for n in self.pending if n in (NMI, HARDFAULT) or not self._masked_by_debugger(n)]
        if not candidates:
            return None
        best = min(candidates, key=lambda n: (self.priority_of(n), n))
        return best if self.priority_of(best) < self.execution_priority() else None

    def wake_pending(self) -> bool:
        """WFI wakes on any pending exception that is not masked by the debugger."""
        return any(n in (NMI, HARDFAULT) or not self._masked_by_debugger(n) for n in self.pending)

    def _masked_by_debugger(self, number: int) -> bool:
        return bool(self.dhcsr_ctrl & C_MASKINTS) and number >= SVCALL

    def set_pending(self, number: int) -> None:
        if number >= 16 and number not in self.irq_enabled:
            return
        self.pending.add(number)

    def _fault(self, cfsr_bits: int = 0, hfsr_bits: int = HFSR_FORCED, bad_address: int | None = None) -> None:
        """A synchronous fault: escalate to HardFault (configurable handlers are disabled after
        reset), or lock up when already at priority -1 or higher."""
        self._faulted = True
        self.cfsr |= cfsr_bits
        if bad_address is not None:
            self.bfar = bad_address
            self.cfsr |= CFSR_BFARVALID
        if self.execution_priority() <= -1:
            self._lock_up()
            return
        self.hfsr |= hfsr_bits
        if self.demcr & VC_HARDERR and self.dhcsr_ctrl & C_DEBUGEN:
            self.enter_debug(DFSR_VCATCH)
            return
        self.take_exception(HARDFAULT)

    def _lock_up(self) -> None:
        log.debug("core lockup (active exceptions %s)", self.active)
        self.lockup = True
        self.sleeping = False
        self.uc.reg_write(A.UC_ARM_REG_PC, LOCKUP_PC)

    def take_exception(self, number: int) -> None:
        """Exception entry: stack the frame on the current stack, load the vector."""
        uc = self.uc
        self.pending.discard(number)
        sp = uc.reg_read(A.UC_ARM_REG_SP)
        frame_sp = (sp - 0x20) & 0xFFFFFFFF
        realign = frame_sp & 4
        frame_sp -= realign
        return_pc = uc.reg_read(A.UC_ARM_REG_PC) & ~1
        xpsr = (self.xpsr & ~(1 << 9)) | ((1 << 9) if realign else 0)
        regs = [uc.reg_read(r) & 0xFFFFFFFF for r in
                (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
                 A.UC_ARM_REG_R12, A.UC_ARM_REG_LR)]
        try:
            uc.mem_write(frame_sp, struct.pack("<8I", *regs, return_pc, xpsr))
            vector = struct.unpack("<I", uc.mem_read(self.vtor + 4 * number, 4))[0]
        except UcError:
            if number == HARDFAULT or self.execution_priority() <= -1:
                self._lock_up()
            else:
                self.cfsr |= CFSR_STKERR
                self.hfsr |= HFSR_FORCED
                self.take_exception(HARDFAULT)
            return
        uc.reg_write(A.UC_ARM_REG_SP, frame_sp)
        uc.reg_write(A.UC_ARM_REG_LR, 0xFFFFFFF1 if self.active else 0xFFFFFFF9)
        self.active.append(number)
        self.xpsr = number | ((1 << 24) if vector & 1 else 0)
        uc.reg_write(A.UC_ARM_REG_PC, vector & ~1)
        self.sleeping = False

    def _exception_return(self, exc_return: int) -> None:
        uc = self.uc
        if not self.active:
            self._fault(CFSR_INVPC)
            return
        self.active.pop()
        sp = uc.reg_read(A.UC_ARM_REG_SP)
        try:
            r0, r1, r2, r3, r12, lr, pc, xpsr = struct.unpack("<8I", uc.mem_read(sp, 32))
        except UcError:
            self._fault(CFSR_INVPC)
            return
        for reg, value in zip((A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
                               A.UC_ARM_REG_R12, A.UC_ARM_REG_LR), (r0, r1, r2, r3, r12, lr)):
            uc.reg_write(reg, value)
        sp += 0x20 + (4 if xpsr & (1 << 9) else 0)
        uc.reg_write(A.UC_ARM_REG_SP, sp)
        self.xpsr = xpsr & ~(1 << 9)
        uc.reg_write(A.UC_ARM_REG_PC, pc & ~1)

    # ------------------------------------------------------------------ execution
    def execute(self, budget_cycles: float) -> Stop:
        """Run from the current PC for about ``budget_cycles`` core cycles.

        Time is counted per translated block as one cycle per halfword of code (an
        approximation of single-cycle Thumb execution from zero-wait-state memory), plus the
        wait cycles the bus charges (``charge``: flash BSY polling, stalls). ``cycles_used``
        says how much was used, so the chip can advance its clock by exactly that.
        """
        self.cycles_used = 0.0
        self._budget = budget_cycles
        self._stop = None
        if self.halted:
            return Stop.HALTED
        if self.lockup:
            return Stop.LOCKUP
        if self.step_pending:
            return self._step()
        if self.spin_fast_path and budget_cycles > 0 and self._parked_on_spin():
            self._spin_rest_of_slice()
            return Stop.BUDGET
        while self._stop is None and self.cycles_used < self._budget:
            if not self.tbit:
                # Executing with EPSR.T = 0 faults on the first instruction (INVSTATE)
                self._fault(CFSR_INVSTATE)
                self.cycles_used += 1
                if self.lockup:
                    return Stop.LOCKUP
                continue
            pc = self.uc.reg_read(A.UC_ARM_REG_PC)
            self._bad_address = None
            self._faulted = False
            try:
                self.uc.emu_start(pc | 1, 0xFFFFFFFF)
            except UcError as exc:
                self._on_error(exc)
            if self._pending_bus_fault is not None:
                address, self._pending_bus_fault = self._pending_bus_fault, None
                self._fault(CFSR_PRECISERR, bad_address=address)
            if self.lockup:
                return Stop.LOCKUP
            if self._stop is None and not self._faulted and self._at_wait_instruction():
                self.sleeping = True
                return Stop.SLEEPING
            self._faulted = False
        return self._stop or Stop.BUDGET

    def _step(self) -> Stop:
        self.step_pending = False
        if not self.tbit:
            self._fault(CFSR_INVSTATE)
        else:
            pc = self.uc.reg_read(A.UC_ARM_REG_PC)
            try:
                self.uc.emu_start(pc | 1, 0xFFFFFFFF, count=1)
            except UcError as exc:
                self._on_error(exc)
        self.cycles_used += 1
        if self.lockup:
            return Stop.LOCKUP
        if not self.halted:
            self.enter_debug(DFSR_HALTED)
        return Stop.HALTED

    def request_stop(self, reason: Stop = Stop.BUSY) -> None:
        """Stop execution at the next block boundary (called from bus callbacks).

        Never ``emu_stop`` from inside a memory callback: Unicorn then leaves PC on the
        instruction whose side effect already happened, and it would run twice."""
        if self._stop is None:
            self._stop = reason

    def charge(self, cycles: float) -> None:
        """Wait cycles charged by the bus (stalls, polling of a busy peripheral); the budget
        is enforced at the next block boundary."""
        self.cycles_used += cycles

    def bus_fault_pending(self, address: int) -> None:
        """A bus callback refused an access: fault once the instruction has completed."""
        self._pending_bus_fault = address
        self.uc.emu_stop()

    def _parked_on_spin(self) -> bool:
        """Would ``emu_start`` stop at once in the block hook's "b ." branch?

        OpenOCD polls DHCSR ~13,000 times a second while a core spins in "b .", and starting
        Unicorn for each slice costs more than the poll itself. Unicorn's first block at PC is
        then "b ." alone, and the hook charges the whole slice without running anything, so the
        result is the hook's: same cycles, CYCCNT, PC and stop reason. Everything outside the
        slice (pending exceptions taken at its start, SysTick, IWDG and flash events capping
        its end, halt requests between slices) is the chip's in either case. It only applies
        when nothing else could happen in that first block: Thumb state, no deferred flash
        fix-up (the hook would settle it first), outside an IT block, and PC in flash or SRAM,
        host memory whose read has no side effects (system memory and registers are MMIO).
        """
        if not self.tbit or self.before_block is not None or self._pending_bus_fault is not None:
            return False
        return self._at_spin()

    def _spin_rest_of_slice(self) -> None:
        """Charge the rest of the slice to "b .": it spins until an exception or a halt, and both
        are only taken at slice boundaries, so the whole rest of the slice is spent spinning."""
        cycles = max(1.0, self._budget - self.cycles_used)
        self.cycles_used += cycles
        self.cyccnt = (self.cyccnt + int(cycles)) & 0xFFFFFFFF
        self._stop = Stop.BUDGET

    def _at_wait_instruction(self) -> bool:
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        try:
            previous = struct.unpack("<H", self.uc.mem_read(pc - 2, 2))[0]
        except UcError:
            return False
        return previous in (_WFI, _WFE)

    def _on_block(self, _handle: int, address: int, size: int, _user: int) -> None:
        """Unicorn's block hook (registered raw by ``_add_block_hook``): budget, "b ." and
        cycle accounting. The hottest Python in a running simulation: kept to attribute reads
        and integer arithmetic on the common path."""
        try:
            settle = self.before_block
            if settle is not None:
                settle()
            if self._stop is None and self.cycles_used >= self._budget:
                self._stop = Stop.BUDGET
            if self._stop is not None:
                self.uc.emu_stop()
                return
            if size == 2 and self.uc.mem_read(address, 2) == _SPIN:
                self._spin_rest_of_slice()           # instead of block by block
                self.uc.emu_stop()
                return
            cycles = size >> 1 or 1                  # max(1, size // 2) for sizes >= 0
            self.cycles_used += cycles
            self.cyccnt = (self.cyccnt + cycles) & 0xFFFFFFFF
            self.s_retire_st = True
        except BaseException as exc:       # what Unicorn's own hook wrapper does
            self._hook_failed(exc)

    def _hook_failed(self, exc: BaseException) -> None:
        """An exception inside a raw hook: stop, and let ``emu_start`` re-raise it."""
        if getattr(self.uc, "_hook_exception", None) is None:
            self.uc._hook_exception = exc
        self.uc.emu_stop()

    def _on_intr(self, uc, intno, _user) -> None:
        pc = uc.reg_read(A.UC_ARM_REG_PC)
        if intno == _EXCP_BKPT:
            if self.dhcsr_ctrl & C_DEBUGEN:
                self.enter_debug(DFSR_BKPT)
                self._stop = Stop.HALTED
            else:
                self._fault(hfsr_bits=HFSR_DEBUGEVT)
        elif intno == _EXCP_EXCEPTION_EXIT:
            self._exception_return(pc | 1)
        elif intno == _EXCP_SWI:
            self.take_exception(SVCALL)
        elif intno == _EXCP_INVSTATE:
            self._fault(CFSR_INVSTATE)
        elif intno == _EXCP_NOCP:
            self._fault(CFSR_NOCP)
        elif intno in (_EXCP_PREFETCH_ABORT,):
            self._fault(CFSR_IBUSERR)
        elif intno == _EXCP_DATA_ABORT:
            self._fault(CFSR_PRECISERR, bad_address=self._bad_address)
        else:
            self._fault(CFSR_UNDEFINSTR)
        uc.emu_stop()

    def _on_invalid(self, uc, access, address, size, value, _user) -> bool:
        self._bad_address = address
        return False

    def _on_error(self, exc: UcError) -> None:
        errno = exc.errno
        if errno in (U.UC_ERR_FETCH_UNMAPPED, U.UC_ERR_FETCH_PROT):
            self._fault(CFSR_IBUSERR)
        elif errno in (U.UC_ERR_READ_UNMAPPED, U.UC_ERR_WRITE_UNMAPPED, U.UC_ERR_READ_PROT,
                       U.UC_ERR_WRITE_PROT, U.UC_ERR_READ_UNALIGNED, U.UC_ERR_WRITE_UNALIGNED):
            self._fault(CFSR_PRECISERR, bad_address=self._bad_address)
        elif errno == U.UC_ERR_INSN_INVALID:
            self._fault(CFSR_UNDEFINSTR)
        else:
            log.warning("unexpected Unicorn error %s at PC 0x%08X", exc, self.uc.reg_read(A.UC_ARM_REG_PC))
            self._fault(CFSR_UNDEFINSTR)
